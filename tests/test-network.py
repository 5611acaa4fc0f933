#!/usr/bin/python3
# From Python: a task enqueued while the network is down, or metered, waits without using
# attempts and says why (BG_WAIT_REASON_NETWORK, BG_WAIT_REASON_METERED), and finishes with one
# result once the network monitor says it may go on. The monitor is the fake from the test-only
# typelib BgTest-1: a PyGObject class cannot implement Gio.NetworkMonitor for the library.

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gi_helpers import (Bg, GLib, Gio, Soup, FaultServer, run_until,  # noqa: E402
                        write_random, sha256_file)

import gi  # noqa: E402
gi.require_version('BgTest', '1')
from gi.repository import BgTest  # noqa: E402


def run_for(ms):
    """Spins the main context for ms milliseconds. Only for watching that nothing happens
    meanwhile: there is no event to wait for then, so a bounded window is all a test can do."""
    done = []

    def over():
        done.append(True)
        return GLib.SOURCE_REMOVE

    GLib.timeout_add(ms, over)
    run_until(lambda: done, timeout=ms // 1000 + 10)


class NetworkTest(unittest.TestCase):
    def setUp(self):
        self.server = FaultServer()
        self.tmp = tempfile.mkdtemp(prefix='bg-net-')
        self.digest = write_random(os.path.join(self.server.root, 'n.bin'), 300000, seed=9)
        self.monitor = BgTest.FakeNetworkMonitor.new()
        self.downloader = Bg.Downloader(session_id='net', network_monitor=self.monitor,
                                        database_path=os.path.join(self.tmp, 'db.sqlite'))
        self.downloader.init(None)
        self.finished = []
        self.downloader.connect('task-finished', lambda d, t, r: self.finished.append(r))

    def tearDown(self):
        self.downloader = None
        self.server.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        shutil.rmtree(self.server.root, ignore_errors=True)

    def start(self, identifier):
        results = []
        msg = Soup.Message.new('GET', self.server.url('/files/n.bin'))
        dest = os.path.join(self.tmp, identifier)
        self.downloader.download_async(msg, Gio.File.new_for_path(dest), identifier, None, None,
                                       lambda d, res: results.append(d.download_finish(res)))
        return self.downloader.lookup_task(identifier), dest, results

    def wait_for_reason(self, task, reason):
        run_until(lambda: (task.props.state == Bg.TaskState.WAITING and
                           task.props.wait_reason == reason), timeout=10)

    def assert_still_waiting(self, task, reason):
        run_for(500)
        self.assertEqual(task.props.state, Bg.TaskState.WAITING)
        self.assertEqual(task.props.wait_reason, reason)
        self.assertEqual(task.props.attempts, 0)
        self.assertEqual(self.server.stats()['requests'], 0)

    def assert_done(self, task, dest, results):
        run_until(lambda: results, timeout=30)
        self.assertEqual(len(results), 1)
        self.assertEqual(len(self.finished), 1)
        self.assertEqual(results[0].get_kind(), Bg.ResponseKind.SUCCESS)
        self.assertEqual(task.props.attempts, 1)
        self.assertEqual(self.server.stats()['requests'], 1)
        self.assertEqual(sha256_file(dest), self.digest)

    def test_offline_then_online(self):
        self.monitor.set_online(False)
        self.assertFalse(self.monitor.props.network_available)
        task, dest, results = self.start('net-1')
        self.wait_for_reason(task, Bg.WaitReason.NETWORK)
        self.assert_still_waiting(task, Bg.WaitReason.NETWORK)

        self.monitor.set_online(True)
        self.assert_done(task, dest, results)

    def test_metered_then_not(self):
        self.monitor.set_metered(True)
        task, dest, results = self.start('net-m')
        self.wait_for_reason(task, Bg.WaitReason.METERED)
        self.assert_still_waiting(task, Bg.WaitReason.METERED)

        self.monitor.set_metered(False)
        self.assert_done(task, dest, results)

    def test_offline_then_metered(self):
        # Back online but metered: the task waits on, now for the other reason.
        self.monitor.set_online(False)
        self.monitor.set_metered(True)
        task, dest, results = self.start('net-om')
        self.wait_for_reason(task, Bg.WaitReason.NETWORK)

        self.monitor.set_online(True)
        self.wait_for_reason(task, Bg.WaitReason.METERED)
        self.assert_still_waiting(task, Bg.WaitReason.METERED)

        self.monitor.set_metered(False)
        self.assert_done(task, dest, results)


if __name__ == '__main__':
    unittest.main(verbosity=2)
