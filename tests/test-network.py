#!/usr/bin/python3
# From Python: a task enqueued while the network is down waits without using attempts, and
# finishes with one result once the network comes back. The network monitor is a Python object
# implementing Gio.NetworkMonitor, handed to the downloader.

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gi_helpers import (Bg, GLib, GObject, Gio, Soup, FaultServer, run_until,  # noqa: E402
                        write_random, sha256_file)


class FakeMonitor(GObject.Object, Gio.Initable, Gio.NetworkMonitor):
    __gtype_name__ = 'BgTestFakeMonitor'

    network_available = GObject.Property(type=bool, default=True)
    network_metered = GObject.Property(type=bool, default=False)
    connectivity = GObject.Property(type=Gio.NetworkConnectivity,
                                    default=Gio.NetworkConnectivity.FULL)

    def do_init(self, cancellable):
        return True

    def do_can_reach(self, connectable, cancellable):
        if not self.network_available:
            raise GLib.Error('offline', 'g-io-error-quark', Gio.IOErrorEnum.NETWORK_UNREACHABLE)
        return True

    def go(self, online):
        self.network_available = online
        self.emit('network-changed', online)


class NetworkTest(unittest.TestCase):
    def test_offline_then_online(self):
        server = FaultServer()
        tmp = tempfile.mkdtemp(prefix='bg-net-')
        try:
            digest = write_random(os.path.join(server.root, 'n.bin'), 300000, seed=9)
            monitor = FakeMonitor()
            downloader = Bg.Downloader(session_id='net', network_monitor=monitor,
                                       database_path=os.path.join(tmp, 'db.sqlite'))
            downloader.init(None)
            finished = []
            results = []
            downloader.connect('task-finished', lambda d, t, r: finished.append(r))

            monitor.go(False)
            msg = Soup.Message.new('GET', server.url('/files/n.bin'))
            dest = os.path.join(tmp, 'n.bin')
            downloader.download_async(msg, Gio.File.new_for_path(dest), 'net-1', None,
                                      None,
                                      lambda d, res: results.append(d.download_finish(res)))
            task = downloader.lookup_task('net-1')
            run_until(lambda: task.props.state == Bg.TaskState.WAITING, timeout=10)
            self.assertEqual(task.props.wait_reason, Bg.WaitReason.NETWORK)
            self.assertEqual(task.props.attempts, 0)

            # Still waiting a little later, with nothing sent.
            deadline = GLib.get_monotonic_time() + 500000
            run_until(lambda: GLib.get_monotonic_time() > deadline, timeout=5)
            self.assertEqual(task.props.state, Bg.TaskState.WAITING)
            self.assertEqual(server.stats()['requests'], 0)

            monitor.go(True)
            run_until(lambda: results, timeout=30)
            self.assertEqual(len(results), 1)
            self.assertEqual(len(finished), 1)
            self.assertEqual(results[0].get_kind(), Bg.ResponseKind.SUCCESS)
            self.assertEqual(task.props.attempts, 1)
            self.assertEqual(sha256_file(dest), digest)
        finally:
            server.close()
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(server.root, ignore_errors=True)


if __name__ == '__main__':
    unittest.main(verbosity=2)
