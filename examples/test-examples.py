#!/usr/bin/python3
# test-examples.py: runs the examples against the fault server, so that they cannot rot
#
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Usage: test-examples.py --fault-server PATH --srcdir DIR --docdir DIR [--download BIN]
#                         [--gjs GJS] [--python3 PYTHON] [--screenshot PATH] WHICH
#
# WHICH is one of:
#   download-c   examples/download.c: a download, a download after one 503, a 404, a second run
#                refused because the file exists, and a run killed midway then resumed
#   fetch-js     examples/fetch.js: a download and a 404
#   sync-folder  examples/sync-folder.py: five files uploaded once each, a rerun that sends
#                nothing, then a run killed midway and rerun
#   doc-python   the first ```python block of doc/python-and-gjs.md, run as a program
#   doc-gjs      the first ```js block of doc/python-and-gjs.md, run as a program
#   downloads-window
#                examples/downloads-window.py under Xvfb (xvfb-run, in a private D-Bus session):
#                three throttled downloads, one after a 503, all with the right sha256, and a
#                screenshot of the window mid-transfer written to --screenshot PATH.  Skipped
#                when xvfb-run, dbus-run-session, ImageMagick's import or GTK 4's typelib is
#                missing.
#
# Output is TAP.  Every wait is bounded; each part takes a few seconds.

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

RUN_TIMEOUT = 30


class Tap:
    def __init__(self):
        self.count = 0
        self.failed = 0

    def ok(self, cond, what, detail=None):
        self.count += 1
        print('%s %d - %s' % ('ok' if cond else 'not ok', self.count, what))
        if not cond:
            self.failed += 1
            if detail:
                for line in str(detail).splitlines():
                    print('# ' + line)
        sys.stdout.flush()
        return cond

    def note(self, text):
        for line in str(text).splitlines():
            print('# ' + line)
        sys.stdout.flush()

    def bail(self, why):
        print('Bail out! ' + why)
        sys.exit(1)

    def done(self):
        print('1..%d' % self.count)
        return 1 if self.failed else 0


tap = Tap()


def write_random(path, size, seed):
    data = random.Random(seed).randbytes(size)
    with open(path, 'wb') as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def run(argv, env, timeout=RUN_TIMEOUT):
    try:
        p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return -1, (e.stdout or b'').decode(errors='replace'), 'timed out after %d s' % timeout
    out, err = p.stdout.decode(errors='replace'), p.stderr.decode(errors='replace')
    # An exception in a Python or GJS callback is printed, not fatal: treat it as a failure.
    if any(sign in err for sign in ('Traceback', 'JS ERROR', '-CRITICAL', '-WARNING')):
        return -2, out, err
    return p.returncode, out, err


def wait_for(predicate, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def describe(rc, out, err):
    return 'exit status %s\nstdout:\n%s\nstderr:\n%s' % (rc, out, err)


# --- download.c and fetch.js ----------------------------------------------------------------

def check_download_program(command, env, server, tmp, name):
    """Runs a URL DEST [SESSION] download program through the cases both examples share."""
    digest = write_random(os.path.join(server.root, 'example.bin'), 3 * 1024 * 1024 + 17, 1)
    dest = os.path.join(tmp, 'example.bin')

    rc, out, err = run(command + [server.url('/files/example.bin'), dest], env)
    tap.ok(rc == 0 and out.startswith('success: HTTP 200'),
           '%s downloads a file' % name, describe(rc, out, err))
    tap.ok(os.path.exists(dest) and sha256_file(dest) == digest,
           '%s: the file has the right sha256' % name)
    leftovers = [f for f in os.listdir(tmp) if f.endswith('.part')]
    tap.ok(not leftovers, '%s: no partial file is left' % name, leftovers)

    rc, out, err = run(command + [server.url('/files/example.bin'), dest], env)
    tap.ok(rc == 1 and 'already exists' in err,
           '%s refuses to overwrite the destination' % name, describe(rc, out, err))
    tap.ok(sha256_file(dest) == digest, '%s: the existing file is untouched' % name)

    missing = os.path.join(tmp, 'missing.bin')
    rc, out, err = run(command + [server.url('/files/no-such-file'), missing], env)
    tap.ok(rc == 2 and out.startswith('rejected: HTTP 404'),
           '%s reports a 404 as rejected' % name, describe(rc, out, err))
    tap.ok(not os.path.exists(missing) and not [f for f in os.listdir(tmp) if f.endswith('.part')],
           '%s: a rejected download leaves no file' % name)


def test_download_c(args, env, server, tmp):
    command = [args.download]
    check_download_program(command, env, server, tmp, 'download.c')

    # One 503 first: the library waits (about 2 s) and tries again by itself.
    dest = os.path.join(tmp, 'retried.bin')
    rc, out, err = run(command + [server.url('/files/example.bin?fail-first=1'), dest], env)
    tap.ok(rc == 0 and out.startswith('success: HTTP 200'),
           'download.c succeeds after a 503', describe(rc, out, err))

    # Killed midway, then run again with the same arguments: the download resumes.
    # The server sends 2 MiB a second, so the transfer takes 3 s; the kill comes 1.5 s after
    # the partial file appears, well after the first checkpoint (taken every second).
    size = 6 * 1024 * 1024
    digest = write_random(os.path.join(server.root, 'slow.bin'), size, 2)
    dest = os.path.join(tmp, 'slow.bin')
    url = server.url('/files/slow.bin?rate=%d' % (2 * 1024 * 1024))
    proc = subprocess.Popen(command + [url, dest], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def partial():
        parts = [f for f in os.listdir(tmp) if f.startswith('.bg-') and f.endswith('.part')]
        return os.path.join(tmp, parts[0]) if parts else None

    try:
        part = wait_for(partial, 15, step=0.01)
        tap.ok(part, 'download.c writes a partial file beside the destination')
        if part:
            time.sleep(1.5)
            mode = os.stat(part).st_mode & 0o777
            tap.ok(mode == 0o600, 'the partial file has mode 0600', oct(mode))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    tap.ok(not os.path.exists(dest), 'a killed download leaves no destination file')

    rc, out, err = run(command + [url, dest], env)
    tap.ok(rc == 0 and sha256_file(dest) == digest,
           'download.c run again completes the file', describe(rc, out, err))
    ranged = [r for r in server.stats()['log']
              if r['path'] == '/files/slow.bin' and r.get('range')]
    tap.ok(ranged, 'the second run asked for the rest with Range',
           json.dumps(server.stats()['log'][-4:], indent=1))


def test_fetch_js(args, env, server, tmp):
    script = os.path.join(args.srcdir, 'fetch.js')
    check_download_program([args.gjs, '-m', script], env, server, tmp, 'fetch.js')


# --- sync-folder.py -------------------------------------------------------------------------

def complete_uploads(server):
    return [u for u in server.stats()['uploads'] if u['complete']]


def idempotency_key(upload):
    for name, value in upload['headers']:
        if name.lower() == 'idempotency-key':
            return value
    return None


def test_sync_folder(args, env, server, tmp):
    script = os.path.join(args.srcdir, 'sync-folder.py')
    folder = os.path.join(tmp, 'folder')
    os.mkdir(folder)
    digests = {}
    for i, name in enumerate(['a.txt', 'b.bin', 'c d.bin', 'e+f.dat', 'notes.md']):
        digests[name] = write_random(os.path.join(folder, name), 1000 + i * 150000, 10 + i)
    os.mkdir(os.path.join(folder, 'subfolder'))
    database = os.path.join(tmp, 'sync.sqlite')
    command = [args.python3, script, folder, server.url('/upload/'),
               '--session', 'example-sync', '--database', database]

    rc, out, err = run(command, env)
    tap.ok(rc == 0, 'sync-folder.py uploads a folder', describe(rc, out, err))
    tap.ok(len(out.splitlines()) == 5 and all(line.startswith('uploaded ')
                                              for line in out.splitlines()),
           'it prints one line per file', out)
    done = complete_uploads(server)
    names = sorted(u['name'] for u in done)
    tap.ok(names == sorted(digests), 'the server got each file once', names)
    tap.ok(all(u['sha256'] == digests[u['name']] for u in done),
           'every upload has the right sha256')
    tap.ok(all(idempotency_key(u) for u in done), 'every upload carries an Idempotency-Key')
    state = os.path.join(tmp, 'example-sync.sync-folder.json')
    tap.ok(os.path.exists(state), 'the state file lives beside the database')

    rc, out, err = run(command, env)
    tap.ok(rc == 0 and len(out.splitlines()) == 5 and
           all(line.startswith('skipped ') for line in out.splitlines()),
           'a rerun skips every file', describe(rc, out, err))
    tap.ok(len(complete_uploads(server)) == 5 and len(server.stats()['uploads']) == 5,
           'a rerun sends nothing')

    # A second batch, sent slowly (the server waits before reading each body) by a run that is
    # killed once the first of them is complete.
    batch = {}
    for i in range(8):
        name = 'batch-%d.bin' % i
        batch[name] = write_random(os.path.join(folder, name), 200000 + i * 1000, 100 + i)
    slow = command[:3] + [server.url('/upload/?delay=300')] + command[4:] + \
        ['--max-concurrent', '2']
    proc = subprocess.Popen(slow, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = wait_for(lambda: [u for u in complete_uploads(server) if u['name'] in batch],
                         20, step=0.01)
        tap.ok(first, 'the slow run completes at least one upload')
    finally:
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
    got = sorted({u['name'] for u in complete_uploads(server) if u['name'] in batch})
    tap.ok(0 < len(got) < len(batch), 'the run was killed midway', got)
    tap.note('complete before the kill: %s' % ', '.join(got))

    rc, out, err = run(slow, env)
    tap.ok(rc == 0, 'the run after the kill succeeds', describe(rc, out, err))
    lines = out.splitlines()
    tap.ok(len(lines) == 13, 'it prints one line per file', out)

    done = complete_uploads(server)
    every_name_once = True
    for name, digest in list(digests.items()) + list(batch.items()):
        mine = [u for u in done if u['name'] == name]
        keys = {idempotency_key(u) for u in mine}
        # A kill can land after the server stored a body but before its answer reached the app:
        # then the same task sends it again, with the same Idempotency-Key, which a real server
        # would drop.  Counted by key, every file is complete exactly once.
        if not (mine and len(keys) == 1 and all(u['sha256'] == digest for u in mine)):
            every_name_once = False
            tap.note('%s: %s' % (name, json.dumps(mine)))
        if len(mine) > 1:
            tap.note('%s was stored %d times with one Idempotency-Key' % (name, len(mine)))
    tap.ok(every_name_once, 'each file is complete exactly once, by Idempotency-Key')
    tap.ok(len({u['name'] for u in done}) == 13, 'all 13 files reached the server')

    before = len(server.stats()['uploads'])
    rc, out, err = run(command, env)
    tap.ok(rc == 0 and all(line.startswith('skipped ') for line in out.splitlines()) and
           len(server.stats()['uploads']) == before,
           'a final rerun sends nothing', describe(rc, out, err))

    # A file that changes is new work.
    with open(os.path.join(folder, 'a.txt'), 'ab') as f:
        f.write(b'more')
    rc, out, err = run(command, env)
    tap.ok(rc == 0 and 'uploaded a.txt: HTTP 201' in out.splitlines() and
           len(server.stats()['uploads']) == before + 1,
           'a changed file is uploaded again', describe(rc, out, err))

    # A rejected upload makes the exit status non-zero.
    write_random(os.path.join(folder, 'z.txt'), 100, 99)
    rc, out, err = run(command[:3] + [server.url('/upload/?status=403')] + command[4:], env)
    tap.ok(rc == 1 and any(line.startswith('REJECTED ') for line in out.splitlines()),
           'rejected uploads give a non-zero exit status', describe(rc, out, err))


# --- the snippets of doc/python-and-gjs.md --------------------------------------------------

def first_block(docdir, language):
    with open(os.path.join(docdir, 'python-and-gjs.md'), encoding='utf-8') as f:
        text = f.read()
    m = re.search(r'^```%s\n(.*?)^```' % re.escape(language), text, re.S | re.M)
    if m is None:
        tap.bail('no ```%s block in python-and-gjs.md' % language)
    return m.group(1)


def test_doc_snippet(command, suffix, language, args, env, server, tmp):
    script = os.path.join(tmp, 'snippet' + suffix)
    with open(script, 'w', encoding='utf-8') as f:
        f.write(first_block(args.docdir, language))
    digest = write_random(os.path.join(server.root, 'doc.bin'), 1024 * 1024 + 5, 3)
    dest = os.path.join(tmp, 'doc.bin')
    rc, out, err = run(command + [script, server.url('/files/doc.bin'), dest], env)
    tap.ok(rc == 0 and out.startswith('success'),
           'the %s snippet downloads a file' % language, describe(rc, out, err))
    tap.ok(os.path.exists(dest) and sha256_file(dest) == digest,
           'the %s snippet: the file has the right sha256' % language)


# --- downloads-window.py --------------------------------------------------------------------

# The screen, and the window, which asks for the same size.
SCREEN = (720, 400)


def downloads_window_missing(args):
    """Why the GTK example cannot run here, or None."""
    for tool, package in (('xvfb-run', 'xvfb'), ('xauth', 'xauth'), ('import', 'imagemagick'),
                          ('dbus-run-session', 'dbus-daemon')):
        if shutil.which(tool) is None:
            return 'no %s (Debian package %s)' % (tool, package)
    probe = subprocess.run([args.python3, '-c',
                            'import gi; gi.require_version("Gtk", "4.0")'],
                           capture_output=True)
    if probe.returncode != 0:
        return "no GTK 4 typelib (Debian package gir1.2-gtk-4.0)"
    return None


def test_downloads_window(args, env, server, tmp):
    script = os.path.join(args.srcdir, 'downloads-window.py')
    shot = os.path.abspath(args.screenshot)
    if os.path.exists(shot):
        os.unlink(shot)
    # Throttled so that the transfers last a few seconds; b.bin is refused once first, so
    # that its row shows a wait.
    files = {'a.bin': (1500000, 300000, ''), 'b.bin': (1200000, 250000, '&fail-first=1'),
             'c.bin': (2000000, 400000, '')}
    digests, urls = {}, []
    for i, (name, (size, rate, extra)) in enumerate(sorted(files.items())):
        digests[name] = write_random(os.path.join(server.root, name), size, 20 + i)
        urls.append(server.url('/files/%s?rate=%d%s' % (name, rate, extra)))
    dest = os.path.join(tmp, 'downloads')
    os.mkdir(dest)

    window_env = dict(env)
    # Drawn with cairo: the picture does not depend on an OpenGL stack inside Xvfb.
    window_env['GSK_RENDERER'] = 'cairo'
    command = ['dbus-run-session', '--',
               'xvfb-run', '-a', '-s', '-screen 0 %dx%dx24' % SCREEN,
               args.python3, script, '--database', os.path.join(tmp, 'window.sqlite'),
               '--screenshot', shot, '--quit-when-done', dest] + urls
    rc, out, err = run(command, window_env, timeout=90)
    lines = out.splitlines()
    tap.ok(rc == 0, 'downloads-window.py downloads three files and quits',
           describe(rc, out, err))
    for name in sorted(files):
        path = os.path.join(dest, name)
        tap.ok('%s: success, HTTP 200' % name in lines and os.path.exists(path) and
               sha256_file(path) == digests[name],
               'downloads-window.py: %s has the right sha256' % name, out)

    said = 'screenshot: %s' % shot
    tap.ok(said in lines, 'it says where the screenshot is', out)
    # Taken while the downloads ran: before the last result came in.
    results = [i for i, line in enumerate(lines) if ': success' in line]
    tap.ok(said in lines and results and lines.index(said) < results[-1],
           'the screenshot was taken mid-transfer', out)
    magic = b''
    if os.path.exists(shot):
        with open(shot, 'rb') as f:
            magic = f.read(8)
    tap.ok(magic == b'\x89PNG\r\n\x1a\n', 'the screenshot is a PNG: %s' % shot)
    identify = shutil.which('identify')
    if identify and magic.startswith(b'\x89PNG'):
        p = subprocess.run([identify, '-format', '%w %h %k', shot], capture_output=True,
                           timeout=30)
        fields = p.stdout.decode().split()
        # The window fills the screen; rows of text, bars and frames make many colours, a
        # blank or black screen one or two.
        tap.ok(len(fields) == 3 and (int(fields[0]), int(fields[1])) == SCREEN and
               int(fields[2]) > 32,
               'the screenshot shows the window, not an empty screen', p.stdout + p.stderr)
    tap.note('screenshot: %s' % shot)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--fault-server', required=True)
    parser.add_argument('--srcdir', required=True)
    parser.add_argument('--docdir', required=True)
    parser.add_argument('--download')
    parser.add_argument('--gjs')
    parser.add_argument('--python3', default='/usr/bin/python3')
    parser.add_argument('--screenshot', default='downloads-window.png')
    parser.add_argument('which', choices=['download-c', 'fetch-js', 'sync-folder',
                                          'doc-python', 'doc-gjs', 'downloads-window'])
    args = parser.parse_args()

    if args.which == 'downloads-window':
        missing = downloads_window_missing(args)
        if missing:
            print('1..0 # SKIP %s' % missing)
            return 0

    tmp = tempfile.mkdtemp(prefix='bg-examples-')
    env = dict(os.environ)
    # Each part gets its own data folder, so that the default session databases are fresh.
    env['XDG_DATA_HOME'] = os.path.join(tmp, 'xdg-data')
    work = os.path.join(tmp, 'work')
    os.mkdir(work)
    os.mkdir(os.path.join(tmp, 'server'))
    # The test suites' client for the fault server, beside the server itself.
    sys.path.insert(0, os.path.dirname(os.path.abspath(args.fault_server)))
    from fault_client import FaultServer
    try:
        server = FaultServer(os.path.join(tmp, 'server'))
    except RuntimeError as e:
        tap.bail(str(e))
    try:
        if args.which == 'download-c':
            test_download_c(args, env, server, work)
        elif args.which == 'fetch-js':
            test_fetch_js(args, env, server, work)
        elif args.which == 'sync-folder':
            test_sync_folder(args, env, server, work)
        elif args.which == 'doc-python':
            test_doc_snippet([args.python3], '.py', 'python', args, env, server, work)
        elif args.which == 'doc-gjs':
            test_doc_snippet([args.gjs, '-m'], '.js', 'js', args, env, server, work)
        elif args.which == 'downloads-window':
            test_downloads_window(args, env, server, work)
    finally:
        server.close()
    status = tap.done()
    if status == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print('# kept %s' % tmp)
    return status


if __name__ == '__main__':
    sys.exit(main())
