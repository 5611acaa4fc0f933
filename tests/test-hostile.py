#!/usr/bin/python3
# Hostile input through GObject Introspection: every case gives a clear GLib.Error or a FAILED
# response, and loses nothing.

import base64
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gi_helpers import (Bg, GLib, Gio, Soup, FaultServer, run_until, sha256_file,  # noqa: E402
                        write_random)


def is_bg_error(err, code):
    return isinstance(err, GLib.Error) and err.matches(Bg.error_quark(), code)


class HostileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = FaultServer()
        write_random(os.path.join(cls.server.root, 'h.bin'), 64 * 1024, seed=3)

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        shutil.rmtree(cls.server.root, ignore_errors=True)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='bg-hostile-')
        self.db = os.path.join(self.tmp, 'db.sqlite')

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def downloader(self, db=None):
        d = Bg.Downloader(session_id='hostile', database_path=db or self.db, max_attempts=1)
        d.init(None)
        return d

    def uploader(self, db=None):
        u = Bg.Uploader(session_id='hostile', database_path=db or self.db, max_attempts=1)
        u.init(None)
        return u

    def db_bytes(self):
        """The raw bytes of the database and of its -wal."""
        data = b''
        for path in (self.db, self.db + '-wal'):
            if os.path.exists(path):
                with open(path, 'rb') as f:
                    data += f.read()
        return data

    def finish(self, start, finish):
        out = []

        def done(obj, res):
            try:
                out.append(finish(obj, res))
            except GLib.Error as e:
                out.append(e)
        start(done)
        run_until(lambda: out, timeout=60)
        return out[0]

    def download(self, d, uri, dest, ident):
        msg = Soup.Message.new_from_uri('GET', GLib.Uri.parse(uri, GLib.UriFlags.NONE))
        return self.finish(
            lambda cb: d.download_async(msg, Gio.File.new_for_path(dest), ident, None, None, cb),
            lambda obj, res: obj.download_finish(res))

    def test_session_ids(self):
        for bad in ['../x', 'a/b', '', '..', 'x' * 201, 'sp ace', 'quo"te', 'ü']:
            with self.assertRaises(GLib.Error) as cm:
                Bg.Downloader.new(bad, None)
            self.assertTrue(is_bg_error(cm.exception, Bg.Error.INVALID_ARGUMENT), bad)
            with self.assertRaises(GLib.Error) as cm:
                Bg.Uploader.new(bad, None)
            self.assertTrue(is_bg_error(cm.exception, Bg.Error.INVALID_ARGUMENT), bad)

    def test_schemes_and_identifiers(self):
        d = self.downloader()
        dest = os.path.join(self.tmp, 'never.bin')
        url = self.server.url('/files/h.bin')
        for uri in ['file:///etc/passwd', 'ftp://127.0.0.1/x']:
            try:
                msg = Soup.Message.new_from_uri('GET', GLib.Uri.parse(uri, GLib.UriFlags.NONE))
            except Exception:
                msg = None
            if msg is None:
                continue
            err = self.finish(
                lambda cb: d.download_async(msg, Gio.File.new_for_path(dest), 'x', None, None, cb),
                lambda obj, res: obj.download_finish(res))
            self.assertTrue(is_bg_error(err, Bg.Error.INVALID_ARGUMENT), uri)
        for ident in ['', 'i' * (1024 * 1024)]:
            err = self.download(d, url, dest, ident)
            self.assertTrue(is_bg_error(err, Bg.Error.INVALID_ARGUMENT), len(ident))
        # libsoup itself refuses URIs it cannot parse: no message can be made.
        for bad in ['http://', 'http://[::1', 'not a uri', 'data:text/plain,hi']:
            with self.assertRaises(Exception):
                uri = GLib.Uri.parse(bad, GLib.UriFlags.NONE)
                if Soup.Message.new_from_uri('GET', uri) is None:
                    raise ValueError(bad)
        self.assertFalse(os.path.exists(dest))
        self.assertEqual(d.get_tasks().get_n_items(), 0)

    def test_destinations(self):
        d = self.downloader()
        url = self.server.url('/files/h.bin')
        unwritable = os.path.join(self.tmp, 'ro')
        os.mkdir(unwritable, 0o500)
        existing = os.path.join(self.tmp, 'exists.bin')
        with open(existing, 'wb') as f:
            f.write(b'precious')
        cases = [
            os.path.join(self.tmp, 'missing', 'dir', 'x.bin'),
            self.tmp,
            existing,
        ]
        if os.getuid() != 0:
            cases.append(os.path.join(unwritable, 'x.bin'))
        for dest in cases:
            err = self.download(d, url, dest, 'dest:' + dest)
            self.assertTrue(is_bg_error(err, Bg.Error.INVALID_ARGUMENT), dest)
        with open(existing, 'rb') as f:
            self.assertEqual(f.read(), b'precious')

    def test_paths_not_in_utf8(self):
        # A path need not be UTF-8, but a GError's message must be: PyGObject could not convert
        # the error at all ("Converting the GError failed"), so the app never saw it.
        d = self.downloader()
        url = self.server.url('/files/h.bin')
        raw = os.fsencode(self.tmp)
        existing = raw + b'/here-\xff.bin'
        with open(existing, 'wb') as f:
            f.write(b'precious')
        cases = [
            (raw + b'/missing-\xfe/x.bin', 'does not exist'),
            (existing + b'/x.bin', 'is not a folder'),
            (existing, 'already exists'),
        ]
        for dest, words in cases:
            err = self.download(d, url, os.fsdecode(dest), 'utf8:%r' % dest)
            self.assertTrue(is_bg_error(err, Bg.Error.INVALID_ARGUMENT), (dest, err))
            self.assertIn(words, err.message)
            self.assertIn('\ufffd', err.message)
        with open(existing, 'rb') as f:
            self.assertEqual(f.read(), b'precious')

    def test_upload_sources(self):
        u = self.uploader()
        fifo = os.path.join(self.tmp, 'fifo')
        os.mkfifo(fifo)
        for src in [self.tmp, fifo, os.path.join(self.tmp, 'missing')]:
            msg = Soup.Message.new('PUT', self.server.url('/upload/x'))
            err = self.finish(
                lambda cb: u.upload_async(msg, Gio.File.new_for_path(src), 'src:' + src, None, None, cb),
                lambda obj, res: obj.upload_finish(res))
            self.assertTrue(is_bg_error(err, Bg.Error.INVALID_ARGUMENT), src)

    def test_corrupt_database(self):
        db = os.path.join(self.tmp, 'corrupt.sqlite')
        with open(db, 'wb') as f:
            f.write(b'SQLite format 3\x00' + os.urandom(4000))
        before = hashlib.sha256(open(db, 'rb').read()).hexdigest()
        with self.assertRaises(GLib.Error) as cm:
            self.downloader(db)
        self.assertTrue(is_bg_error(cm.exception, Bg.Error.STORE))
        self.assertIn(db, cm.exception.message)
        self.assertEqual(hashlib.sha256(open(db, 'rb').read()).hexdigest(), before)

    def test_database_path_nonsense(self):
        # An empty path crashed the command-line tool and gave no error; nothing is created.
        for bad in ['', '/', '.', '..', os.path.join(self.tmp, 'sub') + '/']:
            for cls in (Bg.Downloader, Bg.Uploader):
                obj = cls(session_id='hostile', database_path=bad)
                with self.assertRaises(GLib.Error) as cm:
                    obj.init(None)
                self.assertTrue(is_bg_error(cm.exception, Bg.Error.INVALID_ARGUMENT), repr(bad))
                self.assertIn('database-path', cm.exception.message)
        self.assertEqual(os.listdir(self.tmp), [])

    def test_two_processes(self):
        d = self.downloader()
        self.assertIsNotNone(d)
        code = ('import gi, sys\n'
                'gi.require_version("Bg", "1")\n'
                'from gi.repository import Bg, GLib\n'
                'try:\n'
                '    d = Bg.Downloader(session_id="other", database_path=sys.argv[1])\n'
                '    d.init(None)\n'
                '    print("opened")\n'
                'except GLib.Error as e:\n'
                '    print("busy" if e.matches(Bg.error_quark(), Bg.Error.BUSY) else "other",'
                ' e.message)\n')
        out = subprocess.run(['/usr/bin/python3', '-c', code, self.db], capture_output=True,
                             text=True, timeout=60)
        self.assertTrue(out.stdout.startswith('busy'), out.stdout + out.stderr)
        self.assertIn(self.db, out.stdout)

    def test_hostile_identifiers_round_trip(self):
        d = self.downloader()
        url = self.server.url('/files/h.bin')
        for i, ident in enumerate(["'; DROP TABLE tasks; --", '../../x', '%s%n', 'a\\b"c',
                                   '日本語 🚀', 'line\nbreak']):
            dest = os.path.join(self.tmp, 'id-%d.bin' % i)
            resp = self.download(d, url, dest, ident)
            self.assertIsInstance(resp, Bg.Response, ident)
            self.assertEqual(resp.get_kind(), Bg.ResponseKind.SUCCESS)
            self.assertEqual(resp.get_identifier(), ident)
            self.assertTrue(os.path.exists(dest))


    def test_planted_symlink_partial(self):
        """A link planted at the partial file's predictable name is never followed."""
        d = self.downloader()
        dest = os.path.join(self.tmp, 'planted.bin')
        name = hashlib.sha256(('planted\n' + dest).encode()).hexdigest()[:32]
        partial = os.path.join(self.tmp, '.bg-%s.part' % name)
        outside = tempfile.mkdtemp(prefix='bg-hostile-outside-')
        try:
            victim = os.path.join(outside, 'victim')
            victim_sha = write_random(victim, 4096, seed=9)
            os.symlink(victim, partial)
            resp = self.download(d, self.server.url('/files/h.bin'), dest, 'planted')
            self.assertEqual(resp.get_kind(), Bg.ResponseKind.SUCCESS)
            self.assertFalse(os.path.islink(dest))
            self.assertEqual(sha256_file(dest),
                             sha256_file(os.path.join(self.server.root, 'h.bin')))
            self.assertEqual(sha256_file(victim), victim_sha)
            self.assertEqual(os.readlink(partial), victim)
        finally:
            shutil.rmtree(outside, ignore_errors=True)

    def test_server_ignores_if_range(self):
        """A resume answered with 206 of a newer version never publishes a mix of the two."""
        d = Bg.Downloader(session_id='hostile', database_path=self.db, max_attempts=3,
                          retry_delay=0)
        d.init(None)
        write_random(os.path.join(self.server.root, 'v.bin'), 4 << 20, seed=10)
        new = os.urandom(4 << 20)

        def prepare(downloader, task, msg):
            if task.get_attempts() == 2:
                self.server.replace('v.bin', data=new)
        d.connect('prepare-request', prepare)
        dest = os.path.join(self.tmp, 'v.bin')
        url = self.server.url('/files/v.bin?ifrange=ignore&rate=4000000&drop=2097152&cut-first=1')
        resp = self.download(d, url, dest, 'if-range')
        self.assertEqual(resp.get_kind(), Bg.ResponseKind.SUCCESS)
        self.assertEqual(resp.get_status(), 200)
        self.assertEqual(sha256_file(dest), hashlib.sha256(new).hexdigest())
    def test_credentials_at_rest(self):
        """Authorization and Cookie headers and a URL password never reach the database; after a
        restart the task waits for them, and a Python prepare-request handler supplies them."""
        bearer = 'Bearer py-s3cret-token'
        cookie = 'sid=py-c00kie-secret'
        password = 'py-pa55word'
        secrets = [b'py-s3cret-token', b'py-c00kie-secret', password.encode()]
        basic = 'Basic ' + base64.b64encode(('user:' + password).encode()).decode()

        def sha(text):
            return hashlib.sha256(text.encode()).hexdigest()

        # Files behind a URL password live in a folder of their own: libsoup sends a Basic
        # authorization it learnt to every URL under the same folder.
        os.makedirs(os.path.join(self.server.root, 'pw'), exist_ok=True)
        sums = {
            'h': write_random(os.path.join(self.server.root, 'cred.bin'), 50000, seed=5),
            'p': write_random(os.path.join(self.server.root, 'pw', 'cred.bin'), 50000, seed=6),
        }
        url_h = self.server.url('/files/cred.bin?auth=' + sha(bearer))
        url_p = self.server.url('/files/pw/cred.bin?auth=' + sha(basic)).replace(
            'http://', 'http://user:%s@' % password, 1)

        def request(ident):
            msg = Soup.Message.new('GET', url_h if ident == 'h' else url_p)
            if ident == 'h':
                msg.get_request_headers().append('Authorization', bearer)
                msg.get_request_headers().append('Cookie', cookie)
            return msg

        def db_holds_secret():
            return any(secret in self.db_bytes() for secret in secrets)

        # In this run the credentials are used: one attempt each.
        d = self.downloader()
        for ident in ('h', 'p'):
            dest = os.path.join(self.tmp, 'now-' + ident)
            resp = self.finish(
                lambda cb: d.download_async(request(ident), Gio.File.new_for_path(dest),
                                            'now-' + ident, None, None, cb),
                lambda obj, res: obj.download_finish(res))
            self.assertIsInstance(resp, Bg.Response, ident)
            self.assertEqual(resp.get_status(), 200, ident)
            self.assertEqual(sha256_file(dest), sums[ident])
        self.assertFalse(db_holds_secret())

        # The app stops before the next two tasks make an attempt.
        cancelled = []
        for ident in ('h', 'p'):
            d.download_async(request(ident), Gio.File.new_for_path(os.path.join(self.tmp, ident)),
                             ident, None, None, lambda obj, res: cancelled.append(res))
        tasks = [d.get_tasks().get_item(i) for i in range(d.get_tasks().get_n_items())]
        self.assertTrue(all(password not in t.props.uri for t in tasks))
        self.assertFalse(any(t.props.keep_credentials for t in tasks))
        d.run_dispose()
        run_until(lambda: len(cancelled) == 2)
        del d, tasks, cancelled
        self.assertFalse(db_holds_secret())
        with sqlite3.connect(self.db) as con:
            rows = dict((r[0], r[1:]) for r in con.execute(
                'SELECT identifier, uri, request_headers, withheld_headers, withheld_password '
                'FROM tasks'))
        self.assertEqual(rows['h'][2], 'Authorization, Cookie')
        self.assertEqual(rows['p'][3], 1)
        self.assertTrue(rows['p'][0].startswith('http://user@127.0.0.1:'), rows['p'][0])

        # The next run: no attempt without them, then a handler supplies them.
        d = self.downloader()
        done = {}
        d.connect('task-finished', lambda obj, task, resp: done.update({
            task.get_identifier(): resp}))
        out = []
        d.restore_async(None, lambda obj, res: out.append(obj.restore_finish(res)))
        run_until(lambda: out)
        tasks = {}
        for i in range(d.get_tasks().get_n_items()):
            task = d.get_tasks().get_item(i)
            tasks[task.get_identifier()] = task
        run_until(lambda: all(t.get_wait_reason() == Bg.WaitReason.CREDENTIALS
                              for t in tasks.values()))
        self.assertEqual([t.get_attempts() for t in tasks.values()], [0, 0])

        def supply(obj, task, msg):
            if task.get_identifier() == 'h':
                msg.get_request_headers().replace('Authorization', bearer)
            else:
                msg.set_uri(GLib.Uri.parse(url_p, GLib.UriFlags(Soup.HTTP_URI_FLAGS)))
        d.connect('prepare-request', supply)
        run_until(lambda: len(done) == 2)
        for ident in ('h', 'p'):
            self.assertEqual(done[ident].get_status(), 200, ident)
            self.assertEqual(tasks[ident].get_attempts(), 1)
            self.assertEqual(sha256_file(os.path.join(self.tmp, ident)), sums[ident])
        self.assertFalse(db_holds_secret())

    def test_credentials_kept(self):
        """keep-credentials stores them, so that the next run needs no handler."""
        bearer = 'Bearer py-kept-token'
        digest = write_random(os.path.join(self.server.root, 'kept.bin'), 30000, seed=7)
        url = self.server.url('/files/kept.bin?auth=' + hashlib.sha256(bearer.encode()).hexdigest())
        msg = Soup.Message.new('GET', url)
        msg.get_request_headers().append('Authorization', bearer)
        dest = os.path.join(self.tmp, 'kept.bin')

        d = self.downloader()
        cancelled = []
        d.download_async(msg, Gio.File.new_for_path(dest), 'kept', None,
                         None,
                         lambda obj, res: cancelled.append(res))
        d.get_tasks().get_item(0).props.keep_credentials = True
        d.run_dispose()
        run_until(lambda: cancelled)
        del d, cancelled
        self.assertIn(b'py-kept-token', self.db_bytes())

        d = self.downloader()
        done = []
        d.connect('task-finished', lambda obj, task, resp: done.append(resp))
        d.restore_async(None, None)
        run_until(lambda: done)
        self.assertEqual(done[0].get_status(), 200)
        self.assertTrue(d.get_tasks().get_item(0).props.keep_credentials)
        self.assertEqual(sha256_file(dest), digest)

if __name__ == '__main__':
    unittest.main(verbosity=2)
