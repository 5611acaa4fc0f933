#!/usr/bin/python3
# The library in service mode, across processes: apps that are killed, a service that is
# killed, and credentials that a client's handler supplies over the bus.  Each test runs on a
# private bus (tests/service_bus.py) where the built bg-transferd is activated.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

if shutil.which('dbus-daemon') is None:
    print('1..0 # SKIP dbus-daemon is not installed')
    sys.exit(77)

from service_bus import PrivateBus  # noqa: E402
from gi_helpers import GLib, Gio  # noqa: E402

TRANSFERD = os.environ['BG_TRANSFERD']
APP = os.path.join(HERE, 'service-app.py')
MiB = 1024 * 1024


def name_has_owner(name):
    conn = Gio.bus_get_sync(Gio.BusType.SESSION, None)
    reply = conn.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus',
                           'org.freedesktop.DBus', 'NameHasOwner', GLib.Variant('(s)', (name,)),
                           None, Gio.DBusCallFlags.NONE, -1, None)
    return reply.unpack()[0]


class App:
    """An app process of its own; lines() reads what it says."""

    def __init__(self, bus, *args):
        self.proc = subprocess.Popen(['/usr/bin/python3', APP] + list(args), env=bus.env(),
                                     stdout=subprocess.PIPE, text=True)

    def line(self, timeout=60):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError('the app said nothing for %d s' % timeout)
        line = self.proc.stdout.readline()
        if not line:
            raise EOFError('the app ended (status %s)' % self.proc.wait())
        return line.strip()

    def wait_for(self, predicate, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(max(1, deadline - time.monotonic()))
            if predicate(line):
                return line

    def all_lines(self, timeout=60):
        out, _ = self.proc.communicate(timeout=timeout)
        return [line for line in out.splitlines() if line]

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stdout.close()


def wait_until(predicate, timeout=60, what='the condition'):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError('timed out waiting for %s' % what)
        time.sleep(0.05)


# One bus for the whole suite: the library's connection to the session bus is made once per
# process, and a bus that went away would leave it closed.
BUS = None


def setUpModule():
    global BUS
    BUS = PrivateBus(TRANSFERD, app_id='org.bgglib.ClientTest')
    BUS.__enter__()
    os.environ.update({k: v for k, v in BUS.env().items()
                       if k in ('DBUS_SESSION_BUS_ADDRESS', 'BG_TEST_MODE', 'BG_TEST_APP_ID')})


def tearDownModule():
    BUS.__exit__(None, None, None)


class ServiceClientTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='bg-svc-')
        self.bus = BUS
        from fault_client import FaultServer
        self.server = FaultServer(root=os.path.join(self.tmp, 'root'))
        self.db = os.path.join(self.tmp, 'tasks.sqlite')

    def tearDown(self):
        self.server.close()
        # Each test starts with no service running.
        for pid in self.bus.service_pids():
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not self.bus.service_pids(), 10, 'the service to go')
        wait_until(lambda: not name_has_owner(self.bus.app_id + '.Transfers'), 10,
                   'the bus to see the service go')
        shutil.rmtree(self.tmp, ignore_errors=True)

    def serve(self, name, size):
        from gi_helpers import write_random
        return write_random(os.path.join(self.server.root, name), size, seed=size % 251)

    def test_app_killed_service_finishes_and_result_comes_once(self):
        from gi_helpers import sha256_file
        digest = self.serve('a.bin', 6 * MiB)
        dest = os.path.join(self.tmp, 'a.bin')
        url = self.server.url('/files/a.bin?rate=3000000')

        app = App(self.bus, 'download', self.db, url, dest, 'a')
        app.wait_for(lambda line: line.startswith('progress ') and int(line.split()[1]) > MiB)
        app.kill()

        # The service goes on without the app, and publishes the whole file.
        wait_until(lambda: os.path.exists(dest), 60, 'the service to finish the file')
        self.assertEqual(sha256_file(dest), digest)

        # The next process of the app gets the result, once; the one after it, nothing.
        second = App(self.bus, 'restore', self.db).all_lines()
        self.assertEqual(second, ['finished a 200', 'restored 1'])
        third = App(self.bus, 'restore', self.db).all_lines()
        self.assertEqual(third, ['restored 0'])

        # One transfer of the file in all: the app's death cost no byte.
        sent = self.server.stats()['per_path']['/files/a.bin']['file_bytes_sent']
        self.assertEqual(sent, 6 * MiB)

    def test_service_killed_resumes_from_checkpoint(self):
        from gi_helpers import Bg, Gio, Soup, mode_args, run_until, sha256_file
        digest = self.serve('k.bin', 24 * MiB)
        dest = os.path.join(self.tmp, 'k.bin')
        downloader = Bg.Downloader(**mode_args(), session_id='kill', database_path=self.db)
        downloader.init(None)
        self.assertEqual(downloader.props.mode, Bg.Mode.SERVICE)
        results = []
        msg = Soup.Message.new('GET', self.server.url('/files/k.bin?rate=6000000'))
        downloader.download_async(msg, Gio.File.new_for_path(dest), 'k', None, None,
                                  lambda d, res: results.append(d.download_finish(res)))
        task = downloader.lookup_task('k')
        # Past the first checkpoint (8 MiB), so the next service has something to resume from.
        run_until(lambda: task.props.bytes_transferred > 12 * MiB, 60)
        pids = self.bus.service_pids()
        self.assertEqual(len(pids), 1)
        os.kill(pids[0], signal.SIGKILL)

        # The pending call brings a new service up; the task resumes and finishes.
        run_until(lambda: results, 90)
        self.assertEqual(results[0].get_kind(), Bg.ResponseKind.SUCCESS)
        self.assertEqual(sha256_file(dest), digest)
        self.assertNotIn(pids[0], self.bus.service_pids())
        ranges = [entry['range'] for entry in self.server.stats()['log']
                  if entry['path'] == '/files/k.bin' and entry.get('range')]
        self.assertTrue(ranges, 'the new service did not resume with a Range request')
        start = int(ranges[-1].split('=')[1].split('-')[0])
        self.assertGreater(start, 0)
        self.assertTrue(task.props.restarts == 0)
        downloader.close()

    def test_service_killed_restored_client_carries_on_others_tasks(self):
        """A client that restored sees the service go with a task of another (killed) app
        process still running: it brings up a new service, which carries the task on."""
        from gi_helpers import Bg, mode_args, run_until, sha256_file
        digest = self.serve('o.bin', 6 * MiB)
        dest = os.path.join(self.tmp, 'o.bin')
        app = App(self.bus, 'download', self.db, self.server.url('/files/o.bin?rate=2000000'),
                  dest, 'o')
        app.wait_for(lambda line: line.startswith('progress ') and int(line.split()[1]) > 0)
        app.kill()

        # The same session as the app's.
        downloader = Bg.Downloader(**mode_args(), session_id='service-app',
                                   database_path=self.db)
        downloader.init(None)
        finished = []
        downloader.connect('task-finished',
                           lambda d, task, response: finished.append(response.get_status()))
        restored = []
        downloader.restore_async(None, lambda d, res: restored.append(d.restore_finish(res)))
        run_until(lambda: restored, 30)
        task = downloader.lookup_task('o')
        self.assertIsNotNone(task)
        self.assertNotEqual(task.props.state, Bg.TaskState.FINISHED)

        for pid in self.bus.service_pids():
            os.kill(pid, signal.SIGKILL)
        run_until(lambda: finished, 90)
        self.assertEqual(finished, [200])
        self.assertEqual(sha256_file(dest), digest)
        downloader.close()

    def test_unattended_result_activates_the_app(self):
        """A result that finishes while no client is connected makes the service activate the
        app's bg-task-finished action with its identifier; one a client waits for does not."""
        from gi_helpers import Bg, Gio, Soup, mode_args, run_until
        activations = []

        def app_call(conn, sender, path, iface, method, params, invocation):
            activations.append((method, params.unpack()))
            invocation.return_value(None)

        conn = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        info = Gio.DBusNodeInfo.new_for_xml(
            "<node><interface name='org.freedesktop.Application'>"
            "<method name='ActivateAction'><arg type='s' direction='in'/>"
            "<arg type='av' direction='in'/><arg type='a{sv}' direction='in'/></method>"
            "</interface></node>")
        reg = conn.register_object('/org/bgglib/ClientTest', info.interfaces[0], app_call)
        conn.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus',
                       'RequestName', GLib.Variant('(su)', ('org.bgglib.ClientTest', 4)), None,
                       Gio.DBusCallFlags.NONE, -1, None)
        try:
            self.serve('w.bin', 200000)
            self.serve('u.bin', 3 * MiB)
            # A client waits for this one: no activation.
            downloader = Bg.Downloader(**mode_args(), session_id='attended',
                                       database_path=os.path.join(self.tmp, 'attended.sqlite'))
            downloader.init(None)
            results = []
            downloader.download_async(Soup.Message.new('GET', self.server.url('/files/w.bin')),
                                      Gio.File.new_for_path(os.path.join(self.tmp, 'w.bin')),
                                      'watched', None, None,
                                      lambda d, res: results.append(d.download_finish(res)))
            run_until(lambda: results, 30)

            # The app that asked for this one is gone when it finishes.
            app = App(self.bus, 'download', self.db,
                      self.server.url('/files/u.bin?rate=3000000'),
                      os.path.join(self.tmp, 'u.bin'), 'unattended')
            app.wait_for(lambda line: line.startswith('progress '))
            app.kill()
            run_until(lambda: activations, 60)
            self.assertEqual(activations, [('ActivateAction',
                                            ('bg-task-finished', [['unattended']], {}))])
            downloader.close()
        finally:
            conn.unregister_object(reg)
            conn.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus',
                           'org.freedesktop.DBus', 'ReleaseName',
                           GLib.Variant('(s)', ('org.bgglib.ClientTest',)), None,
                           Gio.DBusCallFlags.NONE, -1, None)

    def test_service_terminated_keeps_its_tasks(self):
        from gi_helpers import Bg, Gio, Soup, mode_args, run_until, sha256_file
        digest = self.serve('t.bin', 12 * MiB)
        dest = os.path.join(self.tmp, 't.bin')
        downloader = Bg.Downloader(**mode_args(), session_id='term', database_path=self.db)
        downloader.init(None)
        results = []
        msg = Soup.Message.new('GET', self.server.url('/files/t.bin?rate=3000000'))
        downloader.download_async(msg, Gio.File.new_for_path(dest), 't', None, None,
                                  lambda d, res: results.append(d.download_finish(res)))
        task = downloader.lookup_task('t')
        # Past a checkpoint (one second of work at most), so that there is one to go on from.
        run_until(lambda: task.props.bytes_transferred > 5 * MiB, 60)
        pids = self.bus.service_pids()
        self.assertEqual(len(pids), 1)

        # SIGTERM: the service stops its attempts, keeping the partial file and the record,
        # and exits; the pending call brings up a new one, which goes on from there.
        os.kill(pids[0], signal.SIGTERM)
        run_until(lambda: results, 90)
        self.assertEqual(results[0].get_kind(), Bg.ResponseKind.SUCCESS)
        self.assertEqual(sha256_file(dest), digest)
        self.assertNotIn(pids[0], self.bus.service_pids())
        ranges = [entry['range'] for entry in self.server.stats()['log']
                  if entry['path'] == '/files/t.bin' and entry.get('range')]
        self.assertTrue(ranges, 'the new service did not resume with a Range request')
        self.assertGreater(int(ranges[-1].split('=')[1].split('-')[0]), 0)
        downloader.close()

    def test_resume_all_after_a_reboot(self):
        """Every process gone, the session runs `bg-transferd --resume-all`: the pending
        download of the app's default database finishes with no client at all."""
        from gi_helpers import sha256_file
        digest = self.serve('r.bin', 4 * MiB)
        dest = os.path.join(self.tmp, 'r.bin')
        data_home = os.path.join(self.tmp, 'data')
        db = os.path.join(data_home, 'bg-glib', 'service-app.sqlite')
        env = {'XDG_DATA_HOME': data_home}

        app = App(self.bus, 'download', db, self.server.url('/files/r.bin?rate=1500000'),
                  dest, 'r')
        app.wait_for(lambda line: line.startswith('progress ') and int(line.split()[1]) > 0)
        app.kill()
        for pid in self.bus.service_pids():
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not self.bus.service_pids(), 10, 'the service to die')
        wait_until(lambda: not name_has_owner(self.bus.app_id + '.Transfers'), 10,
                   'the bus to see the service go')
        self.assertFalse(os.path.exists(dest))

        # As the autostart entry runs it: straight from the session, not by activation.
        service_env = dict(self.bus.env())
        service_env.update(env)
        service = subprocess.Popen([TRANSFERD, '--app-id', self.bus.app_id, '--resume-all',
                                    '--idle-timeout', '1'], env=service_env)
        try:
            wait_until(lambda: os.path.exists(dest), 60, 'the resumed download')
            self.assertEqual(sha256_file(dest), digest)
            # With nothing left to do and no client, it goes away on its own.
            service.wait(30)
        finally:
            if service.poll() is None:
                service.kill()
                service.wait()

        # The result waits in the database for the app's next run, once.
        restored = App(self.bus, 'restore', db).all_lines()
        self.assertEqual(restored, ['finished r 200', 'restored 1'])

    def test_prepare_request_handler_over_the_bus(self):
        import hashlib
        from gi_helpers import Bg, Gio, Soup, mode_args, run_until
        self.serve('p.bin', 300000)
        secret = 'Bearer over-the-bus-secret'
        auth = hashlib.sha256(secret.encode()).hexdigest()
        downloader = Bg.Downloader(**mode_args(), session_id='prep', database_path=self.db)
        downloader.init(None)
        prepared = []

        def prepare(d, task, msg):
            prepared.append(task.get_identifier())
            msg.get_request_headers().replace('Authorization', secret)

        downloader.connect('prepare-request', prepare)
        results = []
        msg = Soup.Message.new('GET', self.server.url('/files/p.bin?auth=' + auth))
        downloader.download_async(msg, Gio.File.new_for_path(os.path.join(self.tmp, 'p.bin')),
                                  'p', None, None,
                                  lambda d, res: results.append(d.download_finish(res)))
        run_until(lambda: results, 60)
        self.assertEqual(results[0].get_status(), 200)
        self.assertEqual(prepared, ['p'])
        downloader.close()
        for suffix in ('', '-wal', '-shm'):
            path = self.db + suffix
            if os.path.exists(path):
                with open(path, 'rb') as f:
                    self.assertNotIn(b'over-the-bus-secret', f.read())


FAKE_XML = open(os.path.join(HERE, '..', 'data', 'org.gnome.BgGlib.Transfers1.xml')).read()


class FakeServiceTest(unittest.TestCase):
    """A service written here, on the test's own connection, to send what a real one may send
    at an awkward moment."""

    def setUp(self):
        from gi_helpers import Gio
        self.tmp = tempfile.mkdtemp(prefix='bg-fake-')
        # No activation file names this app: the test owns its service name.
        self.conn = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        info = Gio.DBusNodeInfo.new_for_xml(FAKE_XML)
        self.queue_path = '/org/gnome/BgGlib/Transfers1/queue/0'
        self.ids = [
            self.conn.register_object('/org/gnome/BgGlib/Transfers1',
                                      info.lookup_interface('org.gnome.BgGlib.Transfers1'),
                                      self.manager_call),
            self.conn.register_object(self.queue_path,
                                      info.lookup_interface(
                                          'org.gnome.BgGlib.Transfers1.Queue'),
                                      self.queue_call),
        ]
        reply = self.conn.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus',
                                    'org.freedesktop.DBus', 'RequestName',
                                    GLib.Variant('(su)', ('org.bgglib.FakeTest.Transfers', 4)),
                                    None, Gio.DBusCallFlags.NONE, -1, None)
        self.assertEqual(reply.unpack()[0], 1)

    def tearDown(self):
        for i in self.ids:
            self.conn.unregister_object(i)
        self.conn.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus',
                            'org.freedesktop.DBus', 'ReleaseName',
                            GLib.Variant('(s)', ('org.bgglib.FakeTest.Transfers',)),
                            None, Gio.DBusCallFlags.NONE, -1, None)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def manager_call(self, conn, sender, path, iface, method, params, invocation):
        invocation.return_value(GLib.Variant('(o)', (self.queue_path,)))

    def queue_call(self, conn, sender, path, iface, method, params, invocation):
        if method in ('Restore', 'List'):
            invocation.return_value(GLib.Variant('(a(sa{sv}))', ([],)))
        else:
            invocation.return_value(None)

    def emit_changed(self, identifier, snapshot):
        self.conn.emit_signal(None, '/org/gnome/BgGlib/Transfers1', 'org.gnome.BgGlib.Transfers1',
                              'Changed', GLib.Variant('(a(osa{sv}))',
                                                      ([(self.queue_path, identifier,
                                                         snapshot)],)))

    def test_late_change_of_another_clients_collected_task_is_not_listed(self):
        """A Changed that tells of a result another process collected, arriving just after
        this client restored, does not put that task in this client's list."""
        from gi_helpers import Bg, run_until
        downloader = Bg.Downloader(mode=Bg.Mode.SERVICE, app_id='org.bgglib.FakeTest',
                                   session_id='fake',
                                   database_path=os.path.join(self.tmp, 'db.sqlite'))
        # Asynchronously: the fake service answers from this thread's main loop.
        made = []
        downloader.init_async(GLib.PRIORITY_DEFAULT, None,
                              lambda d, res: made.append(d.init_finish(res)))
        run_until(lambda: made, 30)
        restored = []
        downloader.restore_async(None, lambda d, res: restored.append(d.restore_finish(res)))
        run_until(lambda: restored, 30)
        finished = []
        downloader.connect('task-finished', lambda *args: finished.append(args))

        response = {'kind': GLib.Variant('u', 0), 'status': GLib.Variant('u', 200)}
        self.emit_changed('elsewhere', {
            'state': GLib.Variant('u', 3), 'uri': GLib.Variant('s', 'http://127.0.0.1/x'),
            'file': GLib.Variant('s', os.path.join(self.tmp, 'x')),
            'response': GLib.Variant('a{sv}', response),
            'collected': GLib.Variant('b', True)})
        # A second change, of a running task, shows that the first one was taken in.
        self.emit_changed('running', {
            'state': GLib.Variant('u', 1), 'uri': GLib.Variant('s', 'http://127.0.0.1/y'),
            'file': GLib.Variant('s', os.path.join(self.tmp, 'y'))})
        run_until(lambda: downloader.lookup_task('running') is not None, 30)
        self.assertIsNone(downloader.lookup_task('elsewhere'))
        self.assertEqual(downloader.get_tasks().get_n_items(), 1)
        self.assertEqual(finished, [])
        downloader.close()


if __name__ == '__main__':
    unittest.main(verbosity=2)
