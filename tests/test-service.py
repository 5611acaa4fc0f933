#!/usr/bin/python3
# bg-transferd, the per-app transfer service, driven with raw D-Bus calls on a private bus.
#
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The suite starts its own dbus-daemon with a service folder that makes the built bg-transferd
# activatable; the developer's session bus is never touched.  The downloads come from
# tests/fault-server.py.

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

DBUS_DAEMON = shutil.which('dbus-daemon')
if DBUS_DAEMON is None:
    print('1..0 # SKIP dbus-daemon is not installed')
    sys.exit(77)

import gi  # noqa: E402
gi.require_version('Gio', '2.0')
from gi.repository import GLib, Gio  # noqa: E402

from fault_client import FaultServer  # noqa: E402
import service_bus  # noqa: E402

TRANSFERD = os.environ.get('BG_TRANSFERD', '')
XML = os.path.join(HERE, '..', 'data', 'org.gnome.BgGlib.Transfers1.xml')

APP_ID = 'org.gnome.BgGlibTest'
BUS_NAME = APP_ID + '.Transfers'
MANAGER_PATH = '/org/gnome/BgGlib/Transfers1'
MANAGER_IFACE = 'org.gnome.BgGlib.Transfers1'
QUEUE_IFACE = 'org.gnome.BgGlib.Transfers1.Queue'
CLIENT_IFACE = 'org.gnome.BgGlib.Transfers1.Client'

# BgTaskState and BgResponseKind
RUNNING, WAITING, FINISHED, CANCELLED = 1, 2, 3, 4
WAIT_CREDENTIALS = 6  # BgWaitReason
SUCCESS = 0

# Each wait of the suite is bounded by this.
WAIT = 60


def spin_until(predicate, timeout=WAIT):
    """Iterates the default main context until predicate() holds; a tick keeps the deadline."""
    ctx = GLib.MainContext.default()
    deadline = time.monotonic() + timeout
    tick = GLib.timeout_add(50, lambda: True)
    try:
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError('timed out after %d s' % timeout)
            ctx.iteration(True)
    finally:
        GLib.source_remove(tick)


def write_random(path, size, seed=1):
    import random
    data = random.Random(seed).randbytes(size)
    with open(path, 'wb') as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


class PrivateBus(service_bus.PrivateBus):
    """tests/service_bus.py's bus, with the service's messages going to a log that the suite
    prints at its end, its own data folder, and no critical let pass."""

    def __init__(self, root):
        os.makedirs(root)
        self.log = os.path.join(root, 'service.log')
        self.data_home = os.path.join(root, 'data')
        super().__init__(TRANSFERD, APP_ID, extra_env={
            'XDG_DATA_HOME': self.data_home,
            'G_DEBUG': 'fatal-criticals',
            # BG_SERVICE_DEBUG=all shows the service's debug messages in its log.
            'G_MESSAGES_DEBUG': os.environ.get('BG_SERVICE_DEBUG', ''),
        })
        self.__enter__()
        wrapper = os.path.join(root, 'bg-transferd.sh')
        with open(wrapper, 'w') as f:
            f.write('#!/bin/sh\nexec "%s" --app-id %s --idle-timeout 5 >>"%s" 2>&1\n'
                    % (TRANSFERD, APP_ID, self.log))
        os.chmod(wrapper, 0o755)
        self.write_service_file(wrapper)

    def connect(self):
        return Gio.DBusConnection.new_for_address_sync(
            self.address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
            Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)

    def close(self):
        self.__exit__(None, None, None)
        if os.path.exists(self.log):
            with open(self.log) as f:
                text = f.read()
            if text:
                sys.stderr.write('--- bg-transferd said:\n' + text)


def call(conn, path, iface, method, args=None, reply=None, timeout=WAIT):
    return conn.call_sync(BUS_NAME, path, iface, method, args,
                          GLib.VariantType(reply) if reply else None,
                          Gio.DBusCallFlags.NONE, timeout * 1000, None)


def open_queue(conn, session, db, settings=None, client='/', kind='download'):
    return call(conn, MANAGER_PATH, MANAGER_IFACE, 'OpenQueue',
                GLib.Variant('(sssa{sv}o)', (kind, session, db, settings or {}, client)),
                '(o)').unpack()[0]


class Submit:
    """Submit, which returns only once the task finished: an asynchronous call."""

    def __init__(self, conn, queue, identifier, uri, dest, headers=(), options=None):
        self.done = False
        self.response = None
        self.error = None
        args = GLib.Variant('(sssa(ss)sa{sv})',
                            (identifier, 'GET', uri, list(headers), dest, options or {}))
        conn.call(BUS_NAME, queue, QUEUE_IFACE, 'Submit', args, GLib.VariantType('(a{sv})'),
                  Gio.DBusCallFlags.NONE, GLib.MAXINT, None, self._done, conn)

    def _done(self, source, result, conn):
        try:
            self.response = conn.call_finish(result).unpack()[0]
        except GLib.Error as e:
            self.error = e
        self.done = True

    def wait(self, timeout=WAIT):
        spin_until(lambda: self.done, timeout)
        return self


class Changes:
    """Counts Changed emissions and keeps the newest snapshot of every task."""

    def __init__(self, conn):
        self.conn = conn
        self.emissions = 0
        self.tasks = {}
        self.id = conn.signal_subscribe(None, MANAGER_IFACE, 'Changed', MANAGER_PATH, None,
                                        Gio.DBusSignalFlags.NONE, self._changed)

    def _changed(self, conn, sender, path, iface, signal_name, params):
        self.emissions += 1
        for queue, identifier, snapshot in params.unpack()[0]:
            self.tasks[(queue, identifier)] = snapshot

    def close(self):
        self.conn.signal_unsubscribe(self.id)


def service_pid(conn):
    return conn.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus',
                          'GetConnectionUnixProcessID', GLib.Variant('(s)', (BUS_NAME,)),
                          GLib.VariantType('(u)'), Gio.DBusCallFlags.NONE, 10000,
                          None).unpack()[0]


class ServiceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix='bg-service-')
        cls.bus = PrivateBus(os.path.join(cls.root, 'bus'))
        cls.server = FaultServer(root=os.path.join(cls.root, 'www'))

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.bus.close()
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.conn = self.bus.connect()
        self.tmp = tempfile.mkdtemp(prefix=self._testMethodName + '-', dir=self.root)
        self.db = os.path.join(self.tmp, 'tasks.sqlite')

    def tearDown(self):
        self.conn.close_sync(None)

    def serve(self, name, size, seed=1):
        return write_random(os.path.join(self.server.root, name), size, seed)

    def list_tasks(self, conn, queue, method='List'):
        return dict(call(conn, queue, QUEUE_IFACE, method, None, '(a(sa{sv}))').unpack()[0])

    def test_download_collect_restore(self):
        digest = self.serve('one.bin', 300 * 1024 + 5)
        queue = open_queue(self.conn, 'svc-one', self.db)
        self.assertTrue(queue.startswith(MANAGER_PATH + '/queue/'))
        dest = os.path.join(self.tmp, 'one.bin')

        submit = Submit(self.conn, queue, 'one', self.server.url('/files/one.bin'), dest).wait()
        self.assertIsNone(submit.error)
        self.assertEqual(submit.response['kind'], SUCCESS)
        self.assertEqual(submit.response['status'], 200)
        self.assertEqual(sha256_file(dest), digest)

        # Not collected yet: listed, with its response.
        tasks = self.list_tasks(self.conn, queue)
        self.assertEqual(tasks['one']['state'], FINISHED)
        self.assertIn('response', tasks['one'])
        self.assertFalse(tasks['one'].get('collected', False))

        call(self.conn, queue, QUEUE_IFACE, 'Collect', GLib.Variant('(s)', ('one',)))

        # Another client's Restore lists it as collected history at most.
        other = self.bus.connect()
        try:
            queue2 = open_queue(other, 'svc-one', self.db)
            self.assertEqual(queue2, queue)
            tasks = self.list_tasks(other, queue2, 'Restore')
            if 'one' in tasks:
                self.assertTrue(tasks['one'].get('collected', False))
        finally:
            other.close_sync(None)

    def test_bad_calls_are_errors(self):
        with self.assertRaises(GLib.Error) as cm:
            open_queue(self.conn, '../evil', '')
        self.assertIn('InvalidArgument', cm.exception.message)
        with self.assertRaises(GLib.Error) as cm:
            open_queue(self.conn, 'svc-bad', 'relative.sqlite')
        self.assertIn('InvalidArgument', cm.exception.message)
        with self.assertRaises(GLib.Error) as cm:
            open_queue(self.conn, 'svc-bad', self.db, kind='sideways')
        self.assertIn('InvalidArgument', cm.exception.message)
        with self.assertRaises(GLib.Error) as cm:
            open_queue(self.conn, 'svc-bad', self.db,
                       settings={'max-concurrent': GLib.Variant('s', 'many')})
        self.assertIn('InvalidArgument', cm.exception.message)

        queue = open_queue(self.conn, 'svc-bad', self.db)
        with self.assertRaises(GLib.Error) as cm:
            call(self.conn, queue, QUEUE_IFACE, 'SetTaskOptions',
                 GLib.Variant('(sa{sv})', ('nobody', {})))
        self.assertIn('NotFound', cm.exception.message)
        bad = Submit(self.conn, queue, 'bad', self.server.url('/files/x'),
                     os.path.join(self.tmp, 'x'), headers=[('Bad\r\nName', 'v')]).wait()
        self.assertIn('InvalidArgument', bad.error.message)
        bad = Submit(self.conn, queue, 'bad', 'ftp://127.0.0.1/x',
                     os.path.join(self.tmp, 'x')).wait()
        self.assertIsNotNone(bad.error)
        bad = Submit(self.conn, queue, 'bad', self.server.url('/files/x'), 'relative').wait()
        self.assertIn('InvalidArgument', bad.error.message)

    def test_changed_batched_with_many_tasks(self):
        n = 40
        for i in range(n):
            self.serve('many-%d.bin' % i, 64 * 1024, seed=i)
        changes = Changes(self.conn)
        queue = open_queue(self.conn, 'svc-many', self.db,
                           settings={'max-concurrent': GLib.Variant('u', n)})
        start = time.monotonic()
        submits = [Submit(self.conn, queue, 'many-%d' % i,
                          self.server.url('/files/many-%d.bin?rate=40000' % i),
                          os.path.join(self.tmp, 'many-%d.bin' % i))
                   for i in range(n)]
        spin_until(lambda: all(s.done for s in submits))
        # The last emission comes at most 100 ms after the last change.
        spin_until(lambda: all(changes.tasks.get((queue, 'many-%d' % i), {}).get('state')
                               == FINISHED for i in range(n)))
        seconds = time.monotonic() - start
        changes.close()
        print('%d emissions in %.2f s for %d tasks' % (changes.emissions, seconds, n),
              file=sys.stderr)
        for s in submits:
            self.assertEqual(s.response['kind'], SUCCESS)
        self.assertGreater(changes.emissions, 0)
        self.assertLessEqual(changes.emissions, 10 * seconds + 2,
                             '%d emissions in %.1f s' % (changes.emissions, seconds))

    def test_cancel(self):
        self.serve('cancel.bin', 2 * 1024 * 1024)
        changes = Changes(self.conn)
        queue = open_queue(self.conn, 'svc-cancel', self.db)
        dest = os.path.join(self.tmp, 'cancel.bin')
        submit = Submit(self.conn, queue, 'cancel', self.server.url('/files/cancel.bin?rate=100000'),
                        dest)
        spin_until(lambda: changes.tasks.get((queue, 'cancel'), {}).get('bytes-transferred', 0)
                   > 0)
        call(self.conn, queue, QUEUE_IFACE, 'Cancel', GLib.Variant('(s)', ('cancel',)))
        submit.wait()
        changes.close()
        self.assertFalse(os.path.exists(dest))
        self.assertNotIn('cancel', self.list_tasks(self.conn, queue))
        if submit.error is None:
            self.assertNotEqual(submit.response['kind'], SUCCESS)

    def test_service_killed_resumes_with_range(self):
        size = 3 * 1024 * 1024
        digest = self.serve('kill.bin', size)
        path = '/files/kill.bin'
        url = self.server.url(path + '?rate=1000000')
        changes = Changes(self.conn)
        queue = open_queue(self.conn, 'svc-kill', self.db)
        dest = os.path.join(self.tmp, 'kill.bin')
        first = Submit(self.conn, queue, 'kill', url, dest)
        # Past a checkpoint (one a second) and well before the end.
        spin_until(lambda: changes.tasks.get((queue, 'kill'), {}).get('bytes-transferred', 0)
                   >= 3 * size // 4)
        changes.close()
        os.kill(service_pid(self.conn), signal.SIGKILL)
        first.wait()
        self.assertIsNotNone(first.error)

        # The next call starts the service again, and the task carries on from its checkpoint.
        queue = open_queue(self.conn, 'svc-kill', self.db)
        self.assertIn('kill', self.list_tasks(self.conn, queue, 'Restore'))
        again = Submit(self.conn, queue, 'kill', url, dest).wait()
        self.assertIsNone(again.error)
        self.assertEqual(again.response['kind'], SUCCESS)
        self.assertEqual(sha256_file(dest), digest)
        ranges = [r['range'] for r in self.server.stats()['log']
                  if r['path'] == path and r['range']]
        self.assertTrue(any(r.startswith('bytes=') and not r.startswith('bytes=0-')
                            for r in ranges), ranges)

    def register_client(self, secret, asked):
        """Exports a Client whose prepare-request handler adds Authorization: @secret."""
        with open(XML) as f:
            info = Gio.DBusNodeInfo.new_for_xml(f.read()).lookup_interface(CLIENT_IFACE)

        def method_call(conn, sender, path, iface, method, params, invocation):
            queue, identifier, http_method, uri, headers = params.unpack()
            asked.append(identifier)
            headers = [h for h in headers if h[0].lower() != 'authorization']
            headers.append(('Authorization', secret))
            invocation.return_value(GLib.Variant('(bsa(ss))', (True, uri, headers)))

        return self.conn.register_object('/test/Client', info, method_call, None, None)

    def test_lost_credentials_wait_for_a_client_handler(self):
        secret = 'Bearer waiting-secret-5678'
        auth = hashlib.sha256(secret.encode()).hexdigest()
        size = 2 * 1024 * 1024
        digest = self.serve('cred.bin', size)
        url = self.server.url('/files/cred.bin?rate=1000000&auth=' + auth)
        dest = os.path.join(self.tmp, 'cred.bin')
        changes = Changes(self.conn)
        queue = open_queue(self.conn, 'svc-cred', self.db)
        first = Submit(self.conn, queue, 'cred', url, dest, headers=[('Authorization', secret)])
        spin_until(lambda: changes.tasks.get((queue, 'cred'), {}).get('bytes-transferred', 0)
                   >= size // 2)
        os.kill(service_pid(self.conn), signal.SIGKILL)
        first.wait()

        # A new run restores the task without its credentials: it waits for them.
        changes.tasks.clear()
        queue = open_queue(self.conn, 'svc-cred', self.db)
        self.assertIn('cred', self.list_tasks(self.conn, queue, 'Restore'))
        spin_until(lambda: changes.tasks.get((queue, 'cred'), {}).get('wait-reason')
                   == WAIT_CREDENTIALS)
        self.assertEqual(changes.tasks[(queue, 'cred')]['state'], WAITING)

        # A client with a handler arrives: the task goes on with what the handler adds.
        asked = []
        reg = self.register_client(secret, asked)
        try:
            queue = open_queue(self.conn, 'svc-cred', self.db, client='/test/Client')
            # Opening the queue wakes the task, before anyone submits it again.
            spin_until(lambda: 'cred' in asked, timeout=20)
            again = Submit(self.conn, queue, 'cred', url, dest).wait()
        finally:
            self.conn.unregister_object(reg)
        changes.close()
        self.assertIsNone(again.error)
        self.assertEqual(again.response['kind'], SUCCESS)
        self.assertIn('cred', asked)
        self.assertEqual(sha256_file(dest), digest)
        for suffix in ('', '-wal', '-shm', '-journal'):
            if os.path.exists(self.db + suffix):
                with open(self.db + suffix, 'rb') as f:
                    self.assertNotIn(b'waiting-secret', f.read(), self.db + suffix)

    def test_prepare_request_adds_credentials(self):
        secret = 'Bearer service-secret-1234'
        auth = hashlib.sha256(secret.encode()).hexdigest()
        self.serve('auth.bin', 100 * 1024)
        asked = []
        reg = self.register_client(secret, asked)
        try:
            queue = open_queue(self.conn, 'svc-auth', self.db, client='/test/Client')
            dest = os.path.join(self.tmp, 'auth.bin')
            submit = Submit(self.conn, queue, 'auth',
                            self.server.url('/files/auth.bin?auth=' + auth), dest).wait()
        finally:
            self.conn.unregister_object(reg)
        self.assertIsNone(submit.error)
        self.assertEqual(submit.response['status'], 200)
        self.assertIn('auth', asked)
        for suffix in ('', '-wal', '-shm', '-journal'):
            if os.path.exists(self.db + suffix):
                with open(self.db + suffix, 'rb') as f:
                    self.assertNotIn(b'service-secret', f.read(), self.db + suffix)


if __name__ == '__main__':
    if not TRANSFERD:
        print('1..0 # SKIP BG_TRANSFERD is not set')
        sys.exit(77)
    # Nothing in this process may reach the developer's own session bus.
    os.environ.pop('DBUS_SESSION_BUS_ADDRESS', None)
    unittest.main(verbosity=2)
