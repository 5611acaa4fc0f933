#!/usr/bin/python3
# test-bg-transfer.py: runs the built bg-transfer against the fault server
#
# The environment gives the tool (BG_TRANSFER), and optionally its manual page
# (BG_TRANSFER_MAN), the test app that leaves a result uncollected (TRANSFER_HELPER) and the
# transfer service (BG_TRANSFERD), which the service-mode tests activate on a private bus: none
# of them touches the developer's session bus.
# Every wait here is bounded.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import fcntl
import hashlib
import json
import os
import pty
import random
import re
import select
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import termios
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
TOOL = os.environ.get('BG_TRANSFER', '')
TOOL_MAN = os.environ.get('BG_TRANSFER_MAN', '')
TRANSFER_HELPER = os.environ.get('TRANSFER_HELPER', '')
TRANSFERD = os.environ.get('BG_TRANSFERD', '')
APP_ID = 'org.bgglib.ToolTest'
NO_BUS = 'unix:path=/nonexistent'

sys.path.insert(0, TESTS)
from fault_client import FaultServer  # noqa: E402
from service_bus import PrivateBus  # noqa: E402

EXIT_SUCCESS, EXIT_REJECTED, EXIT_RETRY, EXIT_FAILED, EXIT_USAGE = 0, 2, 3, 4, 64
EXIT_INTERRUPTED = 130

ID_RE = re.compile(r'\b((?:download|upload)-[0-9a-f]{16})\b')
BIG_SIZE = 1024 * 1024


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def write_random(path, size, seed):
    data = random.Random(seed).randbytes(size)
    with open(path, 'wb') as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def read_some(fd, deadline):
    """Waits until @deadline for data on @fd: returns the bytes, b'' at the end of the file,
    or None when nothing came in time."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                return os.read(fd, 65536)
            except OSError:   # a pty whose other side has gone
                return b''


@unittest.skipUnless(TOOL and os.path.exists(TOOL), 'BG_TRANSFER does not name the built tool')
class ToolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix='bg-transfer-root-')
        cls.big_sha = write_random(os.path.join(cls.root, 'big.bin'), BIG_SIZE, 1)
        cls.small_sha = write_random(os.path.join(cls.root, 'small.bin'), 64 * 1024, 2)
        cls.server = FaultServer(cls.root)
        cls.tls_server = None

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        if cls.tls_server is not None:
            cls.tls_server.close()
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='bg-transfer-test-')
        self.work = os.path.join(self.dir, 'work')
        os.mkdir(self.work)
        self.db = os.path.join(self.dir, 'tasks.sqlite')
        self.env = dict(os.environ)
        self.env['XDG_DATA_HOME'] = os.path.join(self.dir, 'xdg')
        self.env.pop('TERM', None)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- running the tool ------------------------------------------------------------------

    def command(self, args, database=True):
        return [TOOL] + (['--database', self.db] if database else []) + list(args)

    def run_tool(self, *args, timeout=60, database=True):
        """Runs the tool in a pipe; checks that no escape sequence is printed."""
        proc = subprocess.run(self.command(args, database), cwd=self.work, env=self.env,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        out, err = proc.stdout.decode(), proc.stderr.decode()
        self.assertNotIn('\x1b', out)
        self.assertNotIn('\x1b', err)
        return proc.returncode, out, err

    def run_json(self, *args, **kwargs):
        code, out, err = self.run_tool('--json', *args, **kwargs)
        events = [json.loads(line) for line in out.splitlines()]
        for event in events:
            self.assertIsInstance(event, dict)
            self.assertIn('event', event)
        return code, events, err

    def start_tool(self, *args):
        return subprocess.Popen(self.command(args), cwd=self.work, env=self.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def finish(self, proc, timeout=30):
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode(), err.decode()

    def interrupt_when(self, proc, predicate, timeout=30):
        """Reads JSON lines from @proc until @predicate(event) holds, then sends SIGINT."""
        deadline = time.monotonic() + timeout
        buf = b''
        events = []
        fd = proc.stdout.fileno()
        while True:
            data = read_some(fd, deadline)
            if data is None:
                proc.kill()
                self.fail('no matching event within %d s: %r' % (timeout, events))
            if data == b'':
                self.fail('the tool ended before it could be interrupted: %r' % events)
            buf += data
            while b'\n' in buf:
                line, buf = buf.split(b'\n', 1)
                event = json.loads(line.decode())
                events.append(event)
                if predicate(event):
                    proc.send_signal(signal.SIGINT)
                    return events

    def interrupted_download(self, name, rate=262144, min_bytes=300000, url=None):
        """Starts a throttled download (of big.bin, unless @url is given), stops it with
        SIGINT once a checkpoint is likely on disk, and returns (identifier, url, events)."""
        url = url or self.server.url('/files/big.bin?rate=%d' % rate)
        proc = self.start_tool('--json', 'download', url, '-o', name)
        started = time.monotonic()
        events = self.interrupt_when(
            proc, lambda e: e['event'] == 'progress' and e['bytes'] >= min_bytes and
            time.monotonic() - started > 1.6)
        code, out, err = self.finish(proc)
        self.assertEqual(code, EXIT_INTERRUPTED, err)
        events += [json.loads(line) for line in out.splitlines()]
        interrupted = [e for e in events if e['event'] == 'interrupted']
        self.assertEqual(len(interrupted), 1, events)
        self.assertIn('bg-transfer resume', interrupted[0]['message'])
        identifier = events[0]['identifier']
        self.assertEqual(interrupted[0]['identifier'], identifier)
        self.assertFalse(os.path.exists(os.path.join(self.work, name)))
        return identifier, url, events

    def range_requests(self, path):
        return [r for r in self.server.stats()['log']
                if r['path'] == path and r.get('range')]

    def uploads_named(self, name):
        return [u for u in self.server.stats()['uploads'] if u['name'] == name]

    # -- downloads -------------------------------------------------------------------------

    def test_download_success(self):
        code, out, err = self.run_tool('download', self.server.url('/files/big.bin'))
        self.assertEqual(code, EXIT_SUCCESS, err)
        path = os.path.join(self.work, 'big.bin')
        self.assertEqual(sha256_file(path), self.big_sha)
        self.assertIn('200 OK', out)
        self.assertRegex(out, ID_RE)
        self.assertEqual(err, '')
        self.assertEqual([n for n in os.listdir(self.work) if n.startswith('.')], [])

    def test_derived_identifier_is_stable_and_nothing_is_overwritten(self):
        url = self.server.url('/files/small.bin')
        code, out, err = self.run_tool('download', url)
        self.assertEqual(code, EXIT_SUCCESS, err)
        first_id = ID_RE.search(out).group(1)
        self.assertTrue(first_id.startswith('download-'))

        code, out2, err2 = self.run_tool('download', url)
        self.assertEqual(code, EXIT_FAILED)
        self.assertEqual(ID_RE.search(out2).group(1), first_id)
        self.assertIn('already exists', err2)
        self.assertIn('--output', err2)
        self.assertEqual(sha256_file(os.path.join(self.work, 'small.bin')), self.small_sha)

        # Another destination is another task.
        code, out3, err3 = self.run_tool('download', url, '-o', 'other.bin')
        self.assertEqual(code, EXIT_SUCCESS, err3)
        self.assertNotEqual(ID_RE.search(out3).group(1), first_id)

    def test_output_option_and_explicit_id(self):
        os.mkdir(os.path.join(self.work, 'sub'))
        code, out, err = self.run_tool('download', self.server.url('/files/small.bin?x=1'),
                                       '--output', 'sub/renamed.bin', '--id', 'my-task')
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn('my-task', out)
        self.assertEqual(sha256_file(os.path.join(self.work, 'sub', 'renamed.bin')),
                         self.small_sha)

    def test_default_name_is_sanitised(self):
        code, out, err = self.run_tool('download', self.server.url('/files/'))
        self.assertEqual(code, EXIT_USAGE)
        self.assertIn('--output', err)
        code, out, err = self.run_tool('download', self.server.url('/files/..%2Fevil%0Aname'))
        self.assertEqual(code, EXIT_REJECTED)
        self.assertIn(os.path.join(self.work, '_evil_name') + '\u201d', out)
        code, out, err = self.run_tool('download', self.server.url('/files/small.bin?a=b/c'))
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertTrue(os.path.exists(os.path.join(self.work, 'small.bin')))

    def test_rejected_404(self):
        code, out, err = self.run_tool('download', self.server.url('/files/missing.bin'))
        self.assertEqual(code, EXIT_REJECTED)
        self.assertIn('404 Not Found', err)
        self.assertIn('Check the URL', err)
        self.assertFalse(os.path.exists(os.path.join(self.work, 'missing.bin')))

    def test_retry_503_prints_retry_after(self):
        started = time.monotonic()
        code, out, err = self.run_tool('--max-attempts', '1', 'download',
                                       self.server.url('/files/small.bin?status=503&retry-after=7'),
                                       timeout=30)
        self.assertEqual(code, EXIT_RETRY)
        self.assertIn('503 Service Unavailable', err)
        self.assertIn('7 seconds', err)
        self.assertLess(time.monotonic() - started, 20)

    def test_transient_failure_is_retried(self):
        code, out, err = self.run_tool(
            'download', self.server.url('/files/small.bin?fail-first=1&retry-after=1'),
            '-o', 'retried.bin')
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn('attempt 1 did not complete', out)
        self.assertEqual(sha256_file(os.path.join(self.work, 'retried.bin')), self.small_sha)

    def test_quiet(self):
        code, out, err = self.run_tool('-q', 'download', self.server.url('/files/small.bin'))
        self.assertEqual((code, out, err), (EXIT_SUCCESS, '', ''))
        code, out, err = self.run_tool('--quiet', 'download', self.server.url('/files/none.bin'))
        self.assertEqual(code, EXIT_REJECTED)
        self.assertEqual(out, '')
        self.assertIn('404 Not Found', err)

    def test_failed_tls(self):
        if self.__class__.tls_server is None:
            self.__class__.tls_server = FaultServer(self.root, tls=True)
        code, out, err = self.run_tool('download', self.tls_server.url('/files/small.bin'),
                                       '-o', 'tls.bin')
        self.assertEqual(code, EXIT_FAILED)
        self.assertIn('certificate', err)
        self.assertFalse(os.path.exists(os.path.join(self.work, 'tls.bin')))

    # -- uploads ---------------------------------------------------------------------------

    def test_upload_put_with_header(self):
        source = os.path.join(self.work, 'up.bin')
        sha = write_random(source, 200000, 3)
        code, out, err = self.run_tool('upload', 'up.bin', self.server.url('/upload/put.bin'),
                                       '-H', 'X-Bg-Test: hello there')
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn('201 Created', out)
        self.assertRegex(out, r'\bupload-[0-9a-f]{16}\b')
        uploads = self.uploads_named('put.bin')
        self.assertEqual(len(uploads), 1)
        self.assertEqual(uploads[0]['method'], 'PUT')
        self.assertTrue(uploads[0]['complete'])
        self.assertEqual(uploads[0]['sha256'], sha)
        self.assertIn(['X-Bg-Test', 'hello there'], uploads[0]['headers'])

    def test_upload_post_json(self):
        source = os.path.join(self.work, 'post.bin')
        sha = write_random(source, 100000, 4)
        code, events, err = self.run_json('upload', '-X', 'POST', 'post.bin',
                                          self.server.url('/upload/post.bin'))
        self.assertEqual(code, EXIT_SUCCESS, err)
        result = [e for e in events if e['event'] == 'result'][0]
        self.assertEqual(result['kind'], 'success')
        self.assertEqual(result['status'], 201)
        self.assertEqual(result['operation'], 'upload')
        self.assertEqual(json.loads(result['body'])['sha256'], sha)
        upload = self.uploads_named('post.bin')[0]
        self.assertEqual(upload['method'], 'POST')
        self.assertEqual(upload['sha256'], sha)

    def test_resumable_upload_url_is_never_printed(self):
        source = os.path.join(self.work, 'resumable.bin')
        sha = write_random(source, 3 * 1024 * 1024, 5)
        before = len(self.server.stats()['resumable']['uploads'])
        # A drop mid-way: the tool goes on from the server's offset, and says nothing of where.
        url = self.server.url('/resumable?drop-at=1000000')
        code, events, err = self.run_json('upload', '-X', 'POST', '--protocol', 'ietf',
                                          '--chunk-size', '1048576', 'resumable.bin', url)
        self.assertEqual(code, EXIT_SUCCESS, err)
        result = [e for e in events if e['event'] == 'result'][0]
        self.assertEqual(result['protocol'], 'ietf')
        self.assertEqual(json.loads(result['body'])['sha256'], sha)
        code, out, err2 = self.run_tool('upload', '--id', 'again', '--protocol', 'ietf',
                                        'resumable.bin', self.server.url('/resumable'))
        self.assertEqual(code, EXIT_SUCCESS, err2)
        uploads = self.server.stats()['resumable']['uploads'][before:]
        self.assertEqual(len(uploads), 2)
        for upload in uploads:
            self.assertEqual(upload['sha256'], sha)
            # The server's own answer names its token; the upload URL is nowhere.
            for text in (json.dumps(events), err, out, err2):
                self.assertNotIn(upload['path'], text)

    def test_upload_protocol_usage_errors(self):
        code, out, err = self.run_tool('upload', '--protocol', 'ftp', 'x', self.server.url('/x'))
        self.assertEqual(code, EXIT_USAGE)
        self.assertIn('ftp', err)
        code, out, err = self.run_tool('upload', '--chunk-size', 'lots', 'x',
                                       self.server.url('/x'))
        self.assertEqual(code, EXIT_USAGE)
        self.assertIn('lots', err)

    def test_upload_missing_source_fails(self):
        code, out, err = self.run_tool('upload', 'nothing-here.bin',
                                       self.server.url('/upload/nothing.bin'))
        self.assertEqual(code, EXIT_FAILED)
        self.assertIn('does not exist', err)
        self.assertEqual(self.uploads_named('nothing.bin'), [])

    # -- the command line ------------------------------------------------------------------

    def test_usage_errors(self):
        url = self.server.url('/files/small.bin')
        cases = [
            [],
            ['frobnicate'],
            ['download'],
            ['download', url, 'extra'],
            ['download', 'ftp://127.0.0.1/x'],
            ['download', 'not a url'],
            ['download', url, '-H', 'no colon here'],
            ['download', url, '-H', 'Bad Name: x'],
            ['download', url, '--id', ''],
            ['upload', 'f'],
            ['upload', 'f', url, '-X', 'GET'],
            ['upload', 'f', url, '-o', 'x'],
            ['list', 'extra'],
            ['list', '--id', 'x'],
            ['cancel'],
            ['pause'],
            ['unpause'],
            ['pause', 'a', 'b'],
            ['pause', ''],
            ['--max-concurrent', '0', 'list'],
            ['--max-attempts', 'many', 'list'],
            ['--no-such-option', 'list'],
            ['--session', 'bad/name', 'list'],
            ['--mode', 'bogus', 'list'],
            ['list', '--mode', ''],
            ['--mode', 'service', 'list'],
            ['--app-id', 'not an app id', 'list'],
        ]
        for args in cases:
            with self.subTest(args=args):
                code, out, err = self.run_tool(*args)
                self.assertEqual(code, EXIT_USAGE, (out, err))
                self.assertIn('bg-transfer', err)

    def test_max_bandwidth_rejects_junk(self):
        url = self.server.url('/files/small.bin')
        def small_requests():
            return len([r for r in self.server.stats()['log'] if r['path'] == '/files/small.bin'])
        requests = small_requests()
        for value in ['', 'fast', '-5M', '5X', '1e6', '0x10', '5 M', '5MB', 'M', '.', '1.2.3',
                      '0.1', '99999999999G', 'inf', 'nan']:
            with self.subTest(value=value):
                code, out, err = self.run_tool('download', url, '-o', 'never.bin',
                                               '--max-bandwidth', value)
                self.assertEqual(code, EXIT_USAGE, (out, err))
                self.assertIn('--max-bandwidth', err)
                self.assertIn('“%s”' % value, err)
        self.assertFalse(os.path.exists(os.path.join(self.work, 'never.bin')))
        self.assertEqual(small_requests(), requests)

    def test_max_bandwidth_suffixes_in_json(self):
        url = self.server.url('/files/small.bin')
        cases = [('500K', 500000), ('5M', 5000000), ('1.5MiB', 1572864), ('2kib', 2048),
                 ('1G', 1000000000), ('12345', 12345), ('0', 0)]
        for i, (value, rate) in enumerate(cases):
            with self.subTest(value=value):
                code, events, err = self.run_json('download', url, '-o', 's%d.bin' % i,
                                                  '--max-bandwidth', value)
                self.assertEqual(code, EXIT_SUCCESS, err)
                self.assertEqual(events[0]['event'], 'start')
                self.assertEqual(events[0]['max_bandwidth'], rate)
                self.assertEqual(events[-1]['event'], 'result')
                self.assertEqual(events[-1]['max_bandwidth'], rate)
                self.assertEqual(sha256_file(os.path.join(self.work, 's%d.bin' % i)),
                                 self.small_sha)

    def test_max_bandwidth_caps_download_and_upload(self):
        # 1 MiB at 512 KiB/s: about two seconds, never much less.
        started = time.monotonic()
        code, events, err = self.run_json('download', self.server.url('/files/big.bin'),
                                          '-o', 'capped.bin', '--max-bandwidth', '512KiB')
        elapsed = time.monotonic() - started
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertGreaterEqual(elapsed, 1.5)
        self.assertEqual(sha256_file(os.path.join(self.work, 'capped.bin')), self.big_sha)

        source = os.path.join(self.work, 'up.bin')
        sha = write_random(source, BIG_SIZE, 5)
        started = time.monotonic()
        code, events, err = self.run_json('upload', 'up.bin',
                                          self.server.url('/upload/capped.bin'),
                                          '--max-bandwidth', '512KiB')
        elapsed = time.monotonic() - started
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertGreaterEqual(elapsed, 1.5)
        self.assertEqual(events[-1]['max_bandwidth'], 524288)
        uploads = self.uploads_named('capped.bin')
        self.assertEqual(len(uploads), 1)
        self.assertTrue(uploads[0]['complete'])
        self.assertEqual(uploads[0]['sha256'], sha)

    def test_database_option_nonsense(self):
        # --database '' ended in SIGSEGV.
        for path in ['', '/', os.path.join(self.dir, 'sub') + '/']:
            with self.subTest(path=path):
                code, out, err = self.run_tool('--database', path, 'list', database=False)
                self.assertEqual(code, EXIT_USAGE, (out, err))
                self.assertIn('bg-transfer', err)
                self.assertIn('database', err)
        self.assertFalse(os.path.exists(os.path.join(self.dir, 'sub')))

    def test_help_documents_exit_statuses(self):
        code, out, err = self.run_tool('--help', database=False)
        self.assertEqual(code, EXIT_SUCCESS)
        for word in ('download', 'upload', 'list', 'resume', 'cancel', 'forget', 'pause ID',
                     'unpause ID',
                     '--session', '--database', '--max-concurrent', '--json', '--quiet',
                     '--app-id', '--mode', 'in-process', 'Exit status'):
            self.assertIn(word, out)
        for status in ('0 ', '2 ', '3 ', '4 ', '64 ', '130 '):
            self.assertRegex(out, r'\n  %s' % status)
        self.assertNotIn('help-man', out)

    def test_manual_page(self):
        code, page, err = self.run_tool('--help-man', database=False)
        self.assertEqual(code, EXIT_SUCCESS)
        self.assertTrue(page.startswith('.\\"'))
        self.assertIn('.TH BG\\-TRANSFER 1', page)
        for section in ('NAME', 'SYNOPSIS', 'COMMANDS', 'OPTIONS', 'EXIT STATUS', 'EXAMPLES'):
            self.assertIn('.SH %s\n' % section, page)
        for option in ('session', 'database', 'max\\-concurrent', 'json', 'quiet', 'output',
                       'app\\-id', 'mode'):
            self.assertIn('\\fB\\-\\-%s\\fR' % option, page)
        for status in ('0', '2', '3', '4', '64', '130'):
            self.assertIn('.TP\n.B %s\n' % status, page)
        if TOOL_MAN:
            with open(TOOL_MAN) as f:
                self.assertEqual(f.read(), page)

    # -- JSON and the terminal -------------------------------------------------------------

    def test_json_lines(self):
        code, events, err = self.run_json('download',
                                          self.server.url('/files/big.bin?rate=700000'))
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertEqual(events[0]['event'], 'start')
        self.assertEqual(events[-1]['event'], 'result')
        result = events[-1]
        self.assertEqual(result['kind'], 'success')
        self.assertEqual(result['status'], 200)
        self.assertEqual(result['reason'], 'OK')
        self.assertEqual(result['identifier'], events[0]['identifier'])
        self.assertEqual(result['exit_code'], 0)
        progress = [e for e in events if e['event'] == 'progress']
        self.assertGreaterEqual(len(progress), 1)
        self.assertLessEqual(len(progress), 10)   # throttled
        for e in progress:
            self.assertEqual(e['identifier'], result['identifier'])
            self.assertEqual(e['total'], BIG_SIZE)

        code, events, err = self.run_json('download', self.server.url('/files/gone.bin'))
        self.assertEqual(code, EXIT_REJECTED)
        result = events[-1]
        self.assertEqual((result['kind'], result['status'], result['exit_code']),
                         ('rejected', 404, EXIT_REJECTED))
        self.assertIn('404 Not Found', result['message'])

    def run_in_pty(self, args, term, timeout=30):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 100, 0, 0))
        env = dict(self.env, TERM=term)
        proc = subprocess.Popen(self.command(args), cwd=self.work, env=env,
                                stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
        os.close(slave)
        deadline = time.monotonic() + timeout
        output = b''
        try:
            while True:
                data = read_some(master, deadline)
                if data is None:
                    proc.kill()
                    self.fail('the tool did not finish on the terminal: %r' % output)
                if data == b'':
                    break
                output += data
            code = proc.wait(timeout=10)
        finally:
            os.close(master)
        return code, output.decode('utf-8', 'replace')

    def test_progress_bar_on_terminal(self):
        code, output = self.run_in_pty(
            ['download', self.server.url('/files/big.bin?rate=1000000'), '-o', 'tty.bin'],
            'xterm')
        self.assertEqual(code, EXIT_SUCCESS, output)
        self.assertIn('\x1b[', output)
        bars = [line for line in re.split(r'[\r\n]', output) if '%' in line and '[' in line]
        self.assertTrue(bars, output)
        self.assertRegex(output, r'\d+%')
        self.assertIn('200 OK', output)
        self.assertEqual(sha256_file(os.path.join(self.work, 'tty.bin')), self.big_sha)

    def test_dumb_terminal_gets_no_escapes(self):
        code, output = self.run_in_pty(
            ['download', self.server.url('/files/small.bin'), '-o', 'dumb.bin'], 'dumb')
        self.assertEqual(code, EXIT_SUCCESS, output)
        self.assertNotIn('\x1b', output)

    # -- interruption, list, resume, cancel, forget ----------------------------------------

    def test_interrupt_then_resume(self):
        identifier, url, events = self.interrupted_download('resumed.bin')
        self.assertTrue(identifier.startswith('download-'))

        code, events, err = self.run_json('list')
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertEqual(len(events), 1, events)
        task = events[0]
        self.assertEqual(task['event'], 'task')
        self.assertEqual(task['identifier'], identifier)
        self.assertEqual(task['operation'], 'download')
        self.assertIn(task['state'], ('queued', 'running', 'waiting'))
        self.assertGreater(task['bytes'], 0)
        self.assertEqual(task['total'], BIG_SIZE)
        self.assertGreaterEqual(task['attempts'], 1)
        checkpoint = task['bytes']

        code, out, err = self.run_tool('list')
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn(identifier, out)

        code, out, err = self.run_tool('resume')
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn('resumed.bin: resuming from', out)
        self.assertNotIn('starts over', out)
        self.assertIn(identifier, out)
        self.assertIn('206 Partial Content', out)
        self.assertEqual(sha256_file(os.path.join(self.work, 'resumed.bin')), self.big_sha)
        self.assertTrue(any(r['range'].startswith('bytes=%d-' % checkpoint)
                            for r in self.range_requests('/files/big.bin')))

        code, out, err = self.run_tool('list')
        self.assertEqual(code, EXIT_SUCCESS)
        self.assertNotIn(identifier, out)
        code, out, err = self.run_tool('resume')
        self.assertEqual(code, EXIT_SUCCESS)
        self.assertIn('Nothing to resume', out)

    def test_interrupt_then_same_command(self):
        identifier, url, events = self.interrupted_download('again.bin')
        code, out, err = self.run_tool('download', url, '-o', 'again.bin')
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn(identifier, out)
        self.assertIn('again.bin: resuming from', out)
        self.assertEqual(sha256_file(os.path.join(self.work, 'again.bin')), self.big_sha)

    # A server that ignores Range answers the resume with 200 and the whole file: the tool
    # must not claim a resume that did not happen.
    def assert_starts_over(self, out, name):
        self.assertNotIn('resuming', out.lower())
        self.assertIn('%s: the ' % name, out)
        self.assertIn('could not be used; the download starts over from the first byte', out)
        self.assertIn('200 OK', out)
        self.assertEqual(sha256_file(os.path.join(self.work, name)), self.big_sha)

    def test_resume_of_server_ignoring_range_says_it_starts_over(self):
        url = self.server.url('/files/big.bin?rate=262144&norange=1&for=resume')
        identifier, url, events = self.interrupted_download('norange.bin', url=url)
        code, out, err = self.run_tool('resume')
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn(identifier, out)
        self.assert_starts_over(out, 'norange.bin')
        # It did ask for the rest.
        self.assertTrue([r for r in self.range_requests('/files/big.bin')
                         if 'for=resume' in r['query']])

    def test_same_command_on_server_ignoring_range_says_it_starts_over(self):
        url = self.server.url('/files/big.bin?rate=262144&norange=1&for=download')
        identifier, url, events = self.interrupted_download('norange2.bin', url=url)
        code, out, err = self.run_tool('download', url, '-o', 'norange2.bin')
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn('asking the server for the rest', out)
        self.assert_starts_over(out, 'norange2.bin')

    def test_json_tells_resumed_or_restarted_after_the_answer(self):
        url = self.server.url('/files/big.bin?rate=262144&norange=1&for=json')
        lost, _, _ = self.interrupted_download('lost.bin', url=url)
        kept, _, _ = self.interrupted_download('kept.bin')
        code, events, err = self.run_json('resume')
        self.assertEqual(code, EXIT_SUCCESS, err)
        starts = {e['identifier']: e for e in events if e['event'] == 'start'}
        self.assertGreater(starts[lost]['checkpoint'], 0)
        self.assertGreater(starts[kept]['checkpoint'], 0)
        self.assertNotIn('resumed_from', starts[lost])
        resumed = [e for e in events if e['event'] == 'resumed']
        restarted = [e for e in events if e['event'] == 'restarted']
        self.assertEqual([e['identifier'] for e in resumed], [kept])
        self.assertEqual(resumed[0]['resumed_from'], starts[kept]['checkpoint'])
        self.assertEqual([e['identifier'] for e in restarted], [lost])
        self.assertGreaterEqual(restarted[0]['restarts'], 1)
        results = {e['identifier']: e for e in events if e['event'] == 'result'}
        self.assertEqual((results[lost]['status'], results[kept]['status']), (200, 206))

    def test_url_password_is_never_printed(self):
        secret = 'pw-s3cr3t-9f2c'
        base = 'http://someone:%s@127.0.0.1:%d' % (secret, self.server.port)
        outputs = []

        def run(*args, **kwargs):
            code, out, err = self.run_tool(*args, **kwargs)
            outputs.append((args, out + err))
            return code, out, err

        code, out, err = run('download', base + '/files/small.bin', '-o', 'pw1.bin')
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn('someone@127.0.0.1', out)
        self.assertEqual(run('--json', 'download', base + '/files/small.bin', '-o', 'pw2.bin')[0],
                         EXIT_SUCCESS)
        self.assertEqual(run('download', base + '/files/none.bin')[0], EXIT_REJECTED)
        self.assertEqual(run('--json', 'download', base + '/files/none.bin', '-o', 'n2')[0],
                         EXIT_REJECTED)
        # Text that is not a URL the tool takes, with a password in it.
        for url in ('ftp://someone:%s@127.0.0.1/x' % secret,
                    'http://someone:%s@127.0.0.1:99999/x' % secret):
            self.assertEqual(run('download', url, '-o', 'x')[0], EXIT_USAGE)

        identifier, url, events = self.interrupted_download(
            'pw3.bin', url=base + '/files/big.bin?rate=262144')
        outputs.append(('interrupted download', json.dumps(events)))
        code, out, err = run('list')
        self.assertIn(identifier, out)
        self.assertIn('someone@127.0.0.1', out)
        code, out, err = run('--json', 'list')
        self.assertIn(identifier, out)
        # The password was not stored: resume has none to give and says so, keeping the task.
        code, out, err = run('resume', timeout=30)
        self.assertEqual(code, EXIT_RETRY, out + err)
        self.assertIn(identifier, out + err)
        self.assertIn('credentials', out + err)
        self.assertFalse(os.path.exists(os.path.join(self.work, 'pw3.bin')))
        # The same command, with its password, carries it on.
        code, out, err = run('download', base + '/files/big.bin?rate=262144', '-o', 'pw3.bin')
        self.assertEqual(code, EXIT_SUCCESS, out + err)
        self.assertEqual(sha256_file(os.path.join(self.work, 'pw3.bin')), self.big_sha)

        for args, text in outputs:
            self.assertNotIn(secret, text, args)

    def test_list_does_not_wait_for_transfers(self):
        identifier, url, events = self.interrupted_download('slow.bin', rate=200000)
        started = time.monotonic()
        code, out, err = self.run_tool('list', timeout=20)
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertLess(time.monotonic() - started, 5)
        self.assertFalse(os.path.exists(os.path.join(self.work, 'slow.bin')))

    def stored_tasks(self):
        """What the database holds, read while no tool runs: {identifier: (attempts, paused)}.
        Unlike list, this starts nothing."""
        conn = sqlite3.connect('file:%s?mode=ro' % self.db, uri=True)
        try:
            return {row[0]: (row[1], bool(row[2]))
                    for row in conn.execute('SELECT identifier, attempts, paused FROM tasks')}
        finally:
            conn.close()

    def test_list_starts_no_transfer(self):
        # The downloads were loaded first, and started while the uploads loaded.
        write_random(os.path.join(self.work, 'listed.bin'), 150000, 8)
        proc = self.start_tool('--json', 'upload', 'listed.bin',
                               self.server.url('/upload/listed.bin?delay=1500&for=list-up'))
        upload = self.interrupt_when(proc, lambda e: e['event'] == 'start')[0]['identifier']
        self.assertEqual(self.finish(proc)[0], EXIT_INTERRUPTED)
        url = self.server.url('/files/big.bin?rate=262144&for=list-down')
        download, url, events = self.interrupted_download('listed-down.bin', url=url)
        stored = self.stored_tasks()

        for i in range(3):
            code, events, err = self.run_json('list')
            self.assertEqual(code, EXIT_SUCCESS, err)
            self.assertEqual([(e['identifier'], e['state'], e['attempts']) for e in events],
                             [(download, 'queued', stored[download][0]),
                              (upload, 'queued', stored[upload][0])])
            self.assertEqual(self.stored_tasks(), stored)

    def test_cancel(self):
        identifier, url, events = self.interrupted_download('cancelled.bin')
        self.assertTrue([n for n in os.listdir(self.work) if n.endswith('.part')])

        code, events, err = self.run_json('cancel', identifier)
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertEqual(events[-1]['event'], 'cancelled')
        self.assertEqual(events[-1]['identifier'], identifier)
        self.assertEqual(os.listdir(self.work), [])

        code, out, err = self.run_tool('cancel', identifier)
        self.assertEqual(code, EXIT_FAILED)
        self.assertIn('No task has the identifier', err)
        code, out, err = self.run_tool('list')
        self.assertNotIn(identifier, out)

    def test_forget(self):
        code, out, err = self.run_tool('forget', 'no-such-task')
        self.assertEqual(code, EXIT_FAILED)
        self.assertIn('No task has the identifier', err)

        identifier, url, events = self.interrupted_download('unfinished.bin')
        code, out, err = self.run_tool('forget', identifier)
        self.assertEqual(code, EXIT_FAILED)
        self.assertIn('not finished', err)

    def requests_for(self, query):
        return [r for r in self.server.stats()['log'] if query in r['query']]

    def partial_files(self):
        """The partial files in the work folder, each with its bytes' sha256."""
        return {n: sha256_file(os.path.join(self.work, n))
                for n in os.listdir(self.work) if n.endswith('.part')}

    def test_paused_download_stays_until_unpaused(self):
        url = self.server.url('/files/big.bin?rate=262144&for=pause')
        identifier, url, events = self.interrupted_download('paused.bin', url=url)
        partial = self.partial_files()
        self.assertEqual(len(partial), 1, os.listdir(self.work))
        n_requests = len(self.requests_for('for=pause'))
        attempts = self.stored_tasks()[identifier][0]

        code, events, err = self.run_json('pause', identifier)
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertEqual(events[-1]['event'], 'paused')
        self.assertEqual(events[-1]['identifier'], identifier)
        self.assertEqual(events[-1]['operation'], 'download')
        code, out, err = self.run_tool('pause', identifier)
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn('Paused the download %s' % identifier, out)
        # Committed, and the pause itself started no attempt.
        stored = self.stored_tasks()
        self.assertEqual(stored, {identifier: (attempts, True)})

        # Kept across runs: each of these is a new process.
        code, events, err = self.run_json('list')
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertEqual(len(events), 1, events)
        self.assertEqual((events[0]['identifier'], events[0]['state'], events[0]['wait_reason'],
                          events[0]['paused']), (identifier, 'waiting', 'paused', True))
        checkpoint = events[0]['bytes']
        self.assertGreater(checkpoint, 0)
        code, out, err = self.run_tool('list')
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn('%s  download  paused  ' % identifier, out)

        # resume leaves it as it is, and ends: the subprocess timeout bounds the wait.
        code, events, err = self.run_json('resume', timeout=30)
        self.assertEqual(code, EXIT_SUCCESS, err)
        kept = [e for e in events if e['event'] == 'kept']
        self.assertEqual([(e['identifier'], e['paused']) for e in kept], [(identifier, True)])
        self.assertEqual([e for e in events if e['event'] in ('start', 'result')], [])
        code, out, err = self.run_tool('resume', timeout=30)
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn('%s of %s to' % (identifier, url), out)
        self.assertIn('is paused', out)
        self.assertIn('1 paused transfer is kept', out)
        self.assertNotIn('Nothing to resume', out)

        # The same download command again keeps it paused and ends, rather than wait for ever.
        code, out, err = self.run_tool('download', url, '-o', 'paused.bin', timeout=30)
        self.assertEqual(code, EXIT_RETRY, out + err)
        self.assertIn('is paused and kept', out + err)
        self.assertIn('unpause %s' % identifier, out + err)

        # Not one byte or request moved since the pause.
        self.assertEqual(len(self.requests_for('for=pause')), n_requests)
        self.assertEqual(self.partial_files(), partial)
        code, events, err = self.run_json('list')
        self.assertEqual((events[0]['paused'], events[0]['bytes']), (True, checkpoint))
        self.assertEqual(self.stored_tasks(), stored)

        code, events, err = self.run_json('unpause', identifier)
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertEqual((events[-1]['event'], events[-1]['identifier']),
                         ('unpaused', identifier))
        self.assertEqual(self.stored_tasks(), {identifier: (stored[identifier][0], False)})
        code, events, err = self.run_json('list')
        self.assertFalse(events[0]['paused'])
        self.assertNotEqual(events[0].get('wait_reason'), 'paused')

        code, out, err = self.run_tool('resume')
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn('paused.bin: resuming from', out)
        self.assertIn('206 Partial Content', out)
        self.assertEqual(sha256_file(os.path.join(self.work, 'paused.bin')), self.big_sha)
        self.assertTrue([r for r in self.requests_for('for=pause')
                         if (r['range'] or '').startswith('bytes=%d-' % checkpoint)])

    def test_paused_upload_keeps_the_downloads_still(self):
        # An upload is found after the downloads were loaded: none of them may start meanwhile.
        source = os.path.join(self.work, 'held.bin')
        sha = write_random(source, 150000, 7)
        proc = self.start_tool('--json', 'upload', 'held.bin',
                               self.server.url('/upload/held.bin?delay=1500&for=pause-up'))
        upload = self.interrupt_when(proc, lambda e: e['event'] == 'start')[0]['identifier']
        self.assertEqual(self.finish(proc)[0], EXIT_INTERRUPTED)
        url = self.server.url('/files/big.bin?rate=262144&for=pause-down')
        download, url, events = self.interrupted_download('moving.bin', url=url)
        n_uploads = len(self.requests_for('for=pause-up'))
        n_downloads = len(self.requests_for('for=pause-down'))
        stored = self.stored_tasks()
        self.assertEqual(set(stored), {upload, download})

        code, events, err = self.run_json('pause', upload)
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertEqual((events[-1]['event'], events[-1]['operation']), ('paused', 'upload'))
        self.assertEqual(len(self.requests_for('for=pause-up')), n_uploads)
        self.assertEqual(len(self.requests_for('for=pause-down')), n_downloads)
        # A started attempt is counted in the database at once, before any request reaches
        # the server.
        self.assertEqual(self.stored_tasks(),
                         {upload: (stored[upload][0], True), download: stored[download]})

        code, events, err = self.run_json('resume', timeout=60)
        self.assertEqual(code, EXIT_SUCCESS, err)
        results = [e for e in events if e['event'] == 'result']
        self.assertEqual([(e['identifier'], e['kind']) for e in results], [(download, 'success')])
        self.assertEqual([e['identifier'] for e in events if e['event'] == 'kept'], [upload])
        self.assertEqual(len(self.requests_for('for=pause-up')), n_uploads)

        code, out, err = self.run_tool('unpause', upload)
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn('Unpaused the upload %s' % upload, out)
        code, out, err = self.run_tool('resume')
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn('201 Created', out)
        self.assertEqual(self.uploads_named('held.bin')[-1]['sha256'], sha)

    def test_pause_of_unknown_or_finished_task(self):
        for command in ('pause', 'unpause'):
            with self.subTest(command=command):
                code, out, err = self.run_tool(command, 'no-such-task')
                self.assertEqual(code, EXIT_FAILED, (out, err))
                self.assertIn('No task has the identifier “no-such-task”', err)
                code, events, err = self.run_json(command, 'no-such-task')
                self.assertEqual(code, EXIT_FAILED)
                self.assertEqual(events[-1]['event'], 'error')

        if not (TRANSFER_HELPER and os.path.exists(TRANSFER_HELPER)):
            self.skipTest('TRANSFER_HELPER does not name the test app')
        identifier, dest = self.held_result('done-pause.bin')
        code, out, err = self.run_tool('pause', identifier)
        self.assertEqual(code, EXIT_FAILED, (out, err))
        self.assertIn('has finished', err)

    def test_interrupted_upload_resumes_with_its_headers(self):
        source = os.path.join(self.work, 'later.bin')
        sha = write_random(source, 150000, 5)
        url = self.server.url('/upload/later.bin?delay=1500')
        proc = self.start_tool('--json', 'upload', 'later.bin', url, '-H', 'X-Bg-Kept: yes')
        self.interrupt_when(proc, lambda e: e['event'] == 'start')
        code, out, err = self.finish(proc)
        self.assertEqual(code, EXIT_INTERRUPTED, err)

        code, out, err = self.run_tool('resume')
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn('201 Created', out)
        # The interrupted attempt may have delivered its body too; every copy is whole.
        done = [u for u in self.uploads_named('later.bin') if u['complete']]
        self.assertGreaterEqual(len(done), 1)
        for upload in done:
            self.assertEqual(upload['sha256'], sha)
            self.assertIn(['X-Bg-Kept', 'yes'], upload['headers'])

    def test_resume_exit_status_is_the_worst(self):
        write_random(os.path.join(self.work, 'refused.bin'), 50000, 6)
        proc = self.start_tool('--json', 'upload', 'refused.bin',
                               self.server.url('/upload/refused.bin?delay=1500&status=403'))
        self.interrupt_when(proc, lambda e: e['event'] == 'start')
        self.assertEqual(self.finish(proc)[0], EXIT_INTERRUPTED)
        identifier, url, events = self.interrupted_download('fine.bin')

        code, events, err = self.run_json('resume')
        self.assertEqual(code, EXIT_REJECTED, err)
        results = {e['operation']: e for e in events if e['event'] == 'result'}
        self.assertEqual(results['download']['kind'], 'success')
        self.assertEqual(results['download']['identifier'], identifier)
        self.assertEqual((results['upload']['kind'], results['upload']['status']),
                         ('rejected', 403))
        self.assertIn('403 Forbidden', results['upload']['message'])
        self.assertEqual(sha256_file(os.path.join(self.work, 'fine.bin')), self.big_sha)
        starts = [e for e in events if e['event'] == 'start']
        self.assertEqual(len(starts), 2)
        self.assertTrue(all(e['joined'] for e in starts))

    def held_result(self, name):
        """A download that finished in another process without its result being collected."""
        dest = os.path.join(self.work, name)
        proc = subprocess.run([TRANSFER_HELPER, 'hold', self.db,
                               self.server.url('/files/small.bin'), dest, 'held-' + name],
                              env=self.env, capture_output=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stdout)
        self.assertIn(b'finished held-' + name.encode(), proc.stdout)
        return 'held-' + name, dest

    def test_same_command_reports_a_result_from_an_earlier_run(self):
        if not (TRANSFER_HELPER and os.path.exists(TRANSFER_HELPER)):
            self.skipTest('TRANSFER_HELPER does not name the test app')
        identifier, dest = self.held_result('done.bin')
        code, out, err = self.run_tool('download', self.server.url('/files/small.bin'),
                                       '-o', dest, '--id', identifier)
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn('earlier run', out)
        self.assertEqual(sha256_file(dest), self.small_sha)
        code, out, err = self.run_tool('list')
        self.assertNotIn(identifier, out)

    def test_forget_and_resume_of_finished_results(self):
        if not (TRANSFER_HELPER and os.path.exists(TRANSFER_HELPER)):
            self.skipTest('TRANSFER_HELPER does not name the test app')
        first, _ = self.held_result('one.bin')
        second, _ = self.held_result('two.bin')

        code, events, err = self.run_json('list')
        self.assertEqual({(e['identifier'], e['state'], e['kind']) for e in events},
                         {(first, 'finished', 'success'), (second, 'finished', 'success')})

        code, events, err = self.run_json('forget', first)
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertEqual(events[-1]['event'], 'forgotten')

        code, out, err = self.run_tool('resume')
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertIn('two.bin', out)
        self.assertNotIn('one.bin', out)
        code, out, err = self.run_tool('list')
        self.assertIn('no tasks', out)

    # -- the transfer service --------------------------------------------------------------

    def test_bad_mode_names_the_value_and_the_choices(self):
        code, out, err = self.run_tool('--mode', 'bogus', 'download',
                                       self.server.url('/files/small.bin'))
        self.assertEqual(code, EXIT_USAGE, (out, err))
        self.assertIn('“bogus”', err)
        for choice in ('auto', 'in-process', 'service'):
            self.assertIn('“%s”' % choice, err)
        self.assertEqual(os.listdir(self.work), [])

    def test_service_mode_without_a_service_fails_clearly(self):
        self.env['DBUS_SESSION_BUS_ADDRESS'] = NO_BUS
        url = self.server.url('/files/small.bin')
        code, out, err = self.run_tool('--app-id', APP_ID, '--mode', 'service', 'download', url)
        self.assertEqual(code, EXIT_FAILED, (out, err))
        self.assertIn('service', err)
        self.assertIn(APP_ID, err)
        self.assertIn('--mode in-process', err)
        self.assertEqual(os.listdir(self.work), [])

        code, events, err = self.run_json('--app-id', APP_ID, '--mode', 'service', 'list')
        self.assertEqual(code, EXIT_FAILED, err)
        self.assertEqual(events[-1]['event'], 'error')
        self.assertEqual(events[-1]['exit_code'], EXIT_FAILED)
        self.assertIn('Cannot reach the session bus for the transfer service',
                      events[-1]['message'])

        # The default with --app-id is auto: with no service, the tool does the work itself.
        code, events, err = self.run_json('--app-id', APP_ID, 'download', url)
        self.assertEqual(code, EXIT_SUCCESS, err)
        self.assertEqual(events[0]['mode'], 'in-process')
        self.assertEqual(sha256_file(os.path.join(self.work, 'small.bin')), self.small_sha)

    @unittest.skipUnless(TRANSFERD and os.path.exists(TRANSFERD) and shutil.which('dbus-daemon'),
                         'needs the built bg-transferd (BG_TRANSFERD) and dbus-daemon')
    def test_service_mode_download_and_list(self):
        service = ['--app-id', APP_ID, '--mode', 'service']
        with PrivateBus(TRANSFERD, APP_ID) as bus:
            self.env['DBUS_SESSION_BUS_ADDRESS'] = bus.address

            code, events, err = self.run_json(*service, 'download',
                                              self.server.url('/files/small.bin'))
            self.assertEqual(code, EXIT_SUCCESS, err)
            self.assertEqual(events[0]['event'], 'start')
            self.assertEqual(events[0]['mode'], 'service')
            self.assertEqual(events[-1]['kind'], 'success')
            self.assertEqual(sha256_file(os.path.join(self.work, 'small.bin')), self.small_sha)
            self.assertEqual(len(bus.service_pids()), 1)

            # Interrupted, the tool leaves the download to the service, where list finds it.
            url = self.server.url('/files/big.bin?rate=262144')
            proc = self.start_tool('--json', *service, 'download', url, '-o', 'big.bin')
            events = self.interrupt_when(proc, lambda e: e['event'] == 'progress')
            code, out, err = self.finish(proc)
            self.assertEqual(code, EXIT_INTERRUPTED, err)
            identifier = events[0]['identifier']
            self.assertEqual(events[0]['mode'], 'service')

            code, events, err = self.run_json(*service, 'list')
            self.assertEqual(code, EXIT_SUCCESS, err)
            self.assertEqual([(e['event'], e['identifier'], e['mode']) for e in events],
                             [('task', identifier, 'service')])
            self.assertEqual(events[0]['total'], BIG_SIZE)

            # With --app-id alone (auto), the same command finds the running service.
            code, events, err = self.run_json('--app-id', APP_ID, 'download', url,
                                              '-o', 'big.bin')
            self.assertEqual(code, EXIT_SUCCESS, err)
            self.assertEqual(events[0]['mode'], 'service')
            self.assertEqual(events[-1]['identifier'], identifier)
            self.assertEqual(events[-1]['kind'], 'success')
            self.assertEqual(sha256_file(os.path.join(self.work, 'big.bin')), self.big_sha)


if __name__ == '__main__':
    unittest.main(verbosity=2)
