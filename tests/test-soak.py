#!/usr/bin/python3
# Crash soak: a worker app is SIGKILLed at 20 random moments over a mix of downloads and uploads,
# and restarted each time. Between two kills a partial file is swapped for a symbolic link to a
# file outside the test folder. Afterwards every file is right, no destination was ever seen
# half-written, the link's target is untouched, every result reached the app exactly once, and
# SQLite says the database is sound.

import glob
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gi_helpers import FaultServer, write_random, sha256_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MiB = 1024 * 1024
KILLS = int(os.environ.get('BG_SOAK_KILLS', '20'))


class Poller(threading.Thread):
    """Watches the destinations: one that exists must already be whole."""

    def __init__(self, expected):
        super().__init__(daemon=True)
        self.expected = expected
        self.violations = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for path, size in self.expected.items():
                try:
                    seen = os.stat(path).st_size
                except FileNotFoundError:
                    continue
                if seen != size:
                    self.violations.append((path, seen, size))
            time.sleep(0.002)


class SoakTest(unittest.TestCase):
    def test_soak(self):
        rng = random.Random(int(os.environ.get('BG_SOAK_SEED', '0')) or None)
        server = FaultServer()
        tmp = tempfile.mkdtemp(prefix='bg-soak-')
        outside = tempfile.mkdtemp(prefix='bg-soak-outside-')
        try:
            self.run_soak(rng, server, tmp, outside)
        finally:
            server.close()
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(outside, ignore_errors=True)
            shutil.rmtree(server.root, ignore_errors=True)

    def swap_partial_for_link(self, tmp, victim):
        """Replaces one partial file by a link to @victim, as an attacker would while the app is
        dead. Returns the link's path, or None when no partial file exists yet."""
        partials = sorted(p for p in glob.glob(os.path.join(tmp, '.bg-*.part'))
                          if not os.path.islink(p))
        if not partials:
            return None
        os.unlink(partials[0])
        os.symlink(victim, partials[0])
        return partials[0]

    def run_soak(self, rng, server, tmp, outside):
        manifest, digests, sizes = [], {}, {}
        for i, size in enumerate([6 * MiB, 10 * MiB, 16 * MiB + 3, 24 * MiB]):
            name = 'd%d.bin' % i
            digests[name] = write_random(os.path.join(server.root, name), size, seed=100 + i)
            dest = os.path.join(tmp, name)
            sizes[dest] = size
            manifest.append({'id': 'download-%d' % i, 'kind': 'download', 'method': 'GET',
                             'url': server.url('/files/%s?rate=2500000' % name), 'file': dest})
        os.mkdir(os.path.join(tmp, 'src'))
        for i, size in enumerate([2 * MiB, 4 * MiB, 8 * MiB + 5]):
            name = 'u%d.bin' % i
            src = os.path.join(tmp, 'src', name)
            digests[name] = write_random(src, size, seed=200 + i)
            manifest.append({'id': 'upload-%d' % i, 'kind': 'upload', 'method': 'PUT',
                             'url': server.url('/upload/%s?delay=400' % name), 'file': src})

        manifest_path = os.path.join(tmp, 'manifest.json')
        with open(manifest_path, 'w') as f:
            json.dump(manifest, f)
        db = os.path.join(tmp, 'soak.sqlite')
        log = os.path.join(tmp, 'delivered.log')
        worker = [sys.executable, os.path.join(HERE, 'soak-worker.py'), db, manifest_path, log]

        victim = os.path.join(outside, 'victim')
        victim_sha = write_random(victim, 1 * MiB, seed=300)
        victim_mtime = os.stat(victim).st_mtime_ns
        planted = None

        poller = Poller(sizes)
        poller.start()
        kills = 0
        deadline = time.monotonic() + 240
        while kills < KILLS and time.monotonic() < deadline:
            proc = subprocess.Popen(worker, stdout=subprocess.PIPE)
            try:
                proc.wait(timeout=rng.uniform(0.3, 2.0))
                break  # everything finished before this kill
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                proc.stdout.close()
                kills += 1
                if planted is None and kills >= KILLS // 4:
                    planted = self.swap_partial_for_link(tmp, victim)
        print('# %d kills, partial file swapped for a link: %s' % (kills, planted))

        final = subprocess.run(worker, stdout=subprocess.PIPE, timeout=180)
        poller.stop.set()
        poller.join()
        self.assertEqual(final.returncode, 0)

        self.assertEqual(poller.violations, [], 'a destination was seen half-written')
        for t in manifest:
            if t['kind'] == 'download':
                self.assertEqual(sha256_file(t['file']), digests[os.path.basename(t['file'])])
        # Only the planted link is left, untouched, and its target never changed.
        self.assertEqual(glob.glob(os.path.join(tmp, '.bg-*.part')), [planted] if planted else [])
        if planted:
            self.assertEqual(os.readlink(planted), victim)
        self.assertEqual(sha256_file(victim), victim_sha)
        self.assertEqual(os.stat(victim).st_mtime_ns, victim_mtime)
        self.assertEqual(sorted(os.listdir(outside)), ['victim'])

        uploads = server.stats()['uploads']
        for t in manifest:
            if t['kind'] != 'upload':
                continue
            name = os.path.basename(t['file'])
            complete = [u for u in uploads if u['name'] == name and u['complete']]
            self.assertGreaterEqual(len(complete), 1, name)
            self.assertEqual(complete[-1]['sha256'], digests[name])
            keys = {dict(u['headers']).get('Idempotency-Key') for u in uploads if u['name'] == name}
            self.assertEqual(len(keys), 1, 'one Idempotency-Key per task: %r' % keys)

        with open(log) as f:
            lines = [line.split() for line in f if line.strip()]
        ids = [line[1] for line in lines]
        for t in manifest:
            self.assertEqual(ids.count(t['id']), 1, 'result of %s delivered %d times'
                             % (t['id'], ids.count(t['id'])))
        self.assertTrue(all(line[2] == 'success' for line in lines), lines)

        conn = sqlite3.connect('file:%s?mode=ro' % db, uri=True)
        self.assertEqual(conn.execute('PRAGMA integrity_check').fetchone()[0], 'ok')
        self.assertEqual(conn.execute('SELECT count(*) FROM tasks').fetchone()[0], 0)
        conn.close()


if __name__ == '__main__':
    unittest.main(verbosity=2)
