#!/usr/bin/python3
# Hostile input through GObject Introspection: every case gives a clear GLib.Error or a FAILED
# response, and loses nothing.

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gi_helpers import Bg, GLib, Gio, Soup, FaultServer, run_until, write_random  # noqa: E402


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
            lambda cb: d.download_async(msg, Gio.File.new_for_path(dest), ident, None, cb),
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
                lambda cb: d.download_async(msg, Gio.File.new_for_path(dest), 'x', None, cb),
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

    def test_upload_sources(self):
        u = self.uploader()
        fifo = os.path.join(self.tmp, 'fifo')
        os.mkfifo(fifo)
        for src in [self.tmp, fifo, os.path.join(self.tmp, 'missing')]:
            msg = Soup.Message.new('PUT', self.server.url('/upload/x'))
            err = self.finish(
                lambda cb: u.upload_async(msg, Gio.File.new_for_path(src), 'src:' + src, None, cb),
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


if __name__ == '__main__':
    unittest.main(verbosity=2)
