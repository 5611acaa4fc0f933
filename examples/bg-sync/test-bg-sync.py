#!/usr/bin/python3
# test-bg-sync.py: runs examples/bg-sync against WebDAV servers on 127.0.0.1
#
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Usage: test-bg-sync.py --app PATH [--python3 PYTHON] [--transferd PATH] [--screenshot PATH]
#
#   headless   --headless --mode in-process against a small WebDAV server of this script
#              (PROPFIND, GET, PUT): every local file reaches the server and every server file
#              the folder lacked reaches the folder, byte for byte; a rerun sends nothing
#   nginx      the same uploads against a private nginx with dav_methods PUT, which answers
#              PROPFIND with 405: the app only uploads, and says so
#   service    --headless --mode service --quit-after-submit on a private session bus where
#              org.example.BgSync.Transfers activates the built bg-transferd: the app exits at
#              once, the service finishes every upload, and then wakes the app (D-Bus
#              activation, --gapplication-service, no display) with "bg-task-finished", which
#              shows "Synced N files" through the notification portal (a mock of this script)
#   action     the action alone, called as the service calls it
#   window     the window under xvfb-run, mid-sync against a throttled server, with a
#              screenshot written to --screenshot PATH
#
# The portal mock answers ProxyResolver and NetworkMonitor too: with GTK_USE_PORTAL=1 (as inside
# Flatpak) GLib asks the portal for proxies and for the network's state, in the app and in the
# service alike, and a service that cannot tell the network is up waits for it.
#
# Parts whose tools are missing (nginx, xvfb-run, dbus-daemon, GTK 4 or libadwaita) are
# skipped with one line saying what is missing.  Output is TAP; every wait is bounded.

import argparse
import hashlib
import http.server
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

RUN_TIMEOUT = 30
APP_ID = 'org.example.BgSync'


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

    def skip(self, what, why):
        self.count += 1
        print('ok %d - %s # SKIP %s' % (self.count, what, why))
        sys.stdout.flush()

    def note(self, text):
        for line in str(text).splitlines():
            print('# ' + line)
        sys.stdout.flush()

    def done(self):
        print('1..%d' % self.count)
        return 1 if self.failed else 0


tap = Tap()


def write_random(path, size, seed):
    data = random.Random(seed).randbytes(size)
    with open(path, 'wb') as f:
        f.write(data)
    return data


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def sha(data):
    return hashlib.sha256(data).hexdigest()[:16]


def wait_for(predicate, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def run(argv, env, timeout=RUN_TIMEOUT):
    try:
        p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return -1, (e.stdout or b'').decode(errors='replace'), 'timed out after %d s' % timeout
    out, err = p.stdout.decode(errors='replace'), p.stderr.decode(errors='replace')
    # An exception in a callback is printed, not fatal: treat it as a failure.
    if any(sign in err for sign in ('Traceback', '-CRITICAL', '-WARNING')):
        return -2, out, err
    return p.returncode, out, err


def describe(rc, out, err):
    return 'exit status %s\nstdout:\n%s\nstderr:\n%s' % (rc, out[-3000:], err[-3000:])


def events(out):
    """The JSON lines of a --headless run; None when one line is not JSON."""
    values = []
    for line in out.splitlines():
        try:
            values.append(json.loads(line))
        except ValueError:
            return None
    return values


# --- a small WebDAV server ---------------------------------------------------------------------

class DavServer:
    """PROPFIND (Depth 1), GET and PUT on /dav/, from and into a folder.  With a rate, bodies go
    both ways at about that many bytes a second."""

    def __init__(self, root, rate=0):
        self.root = root
        self.rate = rate
        self.puts = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def name(self):
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                if not path.startswith('/dav/'):
                    return None
                name = path[len('/dav/'):]
                return name if name and '/' not in name and name not in ('.', '..') else None

            def reply(self, status, body=b'', content_type='text/plain'):
                self.send_response(status)
                self.send_header('Content-Type', content_type)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                server.pace_write(self.wfile, body)

            def do_PUT(self):
                name = self.name()
                length = int(self.headers.get('Content-Length') or 0)
                data = server.pace_read(self.rfile, length)
                if name is None:
                    self.reply(403)
                    return
                tmp = os.path.join(server.root, '.put-' + name)
                with open(tmp, 'wb') as f:
                    f.write(data)
                os.replace(tmp, os.path.join(server.root, name))
                server.puts.append(name)
                self.reply(201)

            def do_GET(self):
                name = self.name()
                path = os.path.join(server.root, name) if name else None
                if path is None or not os.path.isfile(path):
                    self.reply(404)
                    return
                self.reply(200, read(path), 'application/octet-stream')

            def do_PROPFIND(self):
                self.rfile.read(int(self.headers.get('Content-Length') or 0))
                if urllib.parse.urlsplit(self.path).path != '/dav/':
                    self.reply(404)
                    return
                entries = ['<D:response><D:href>/dav/</D:href><D:propstat><D:prop>'
                           '<D:resourcetype><D:collection/></D:resourcetype></D:prop>'
                           '<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>']
                for name in sorted(os.listdir(server.root)):
                    if name.startswith('.'):
                        continue
                    folder = os.path.isdir(os.path.join(server.root, name))
                    entries.append(
                        '<D:response><D:href>/dav/%s%s</D:href><D:propstat><D:prop>'
                        '<D:resourcetype>%s</D:resourcetype></D:prop>'
                        '<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>'
                        % (urllib.parse.quote(name), '/' if folder else '',
                           '<D:collection/>' if folder else ''))
                # Names the app must not write: outside the collection, or a path.
                entries.append('<D:response><D:href>/elsewhere/x.bin</D:href></D:response>')
                entries.append('<D:response><D:href>/dav/..%2Fescape.bin</D:href>'
                               '</D:response>')
                body = ('<?xml version="1.0" encoding="utf-8"?>\n'
                        '<D:multistatus xmlns:D="DAV:">%s</D:multistatus>\n'
                        % ''.join(entries)).encode()
                self.reply(207, body, 'application/xml; charset=utf-8')

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def pace_write(self, wfile, body):
        step = max(self.rate // 10, 1) if self.rate else len(body) or 1
        for i in range(0, len(body), step):
            wfile.write(body[i:i + step])
            wfile.flush()
            if self.rate:
                time.sleep(0.1)

    def pace_read(self, rfile, length):
        chunks, left = [], length
        step = max(self.rate // 10, 1) if self.rate else max(length, 1)
        while left > 0:
            chunk = rfile.read(min(step, left))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
            if self.rate:
                time.sleep(0.1)
        return b''.join(chunks)

    def url(self):
        return 'http://127.0.0.1:%d/dav/' % self.httpd.server_address[1]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def make_folders(tmp, seed):
    """A local folder and a server folder, each with files the other lacks."""
    local = os.path.join(tmp, 'local')
    remote = os.path.join(tmp, 'remote')
    os.makedirs(local)
    os.makedirs(remote)
    os.mkdir(os.path.join(local, 'a subfolder'))
    os.mkdir(os.path.join(remote, 'a folder'))
    ups = {}
    for i, (name, size) in enumerate([('notes.txt', 700), ('photo 1.jpg', 400000),
                                      ('data+x.bin', 1500000)]):
        ups[name] = write_random(os.path.join(local, name), size, seed + i)
    downs = {}
    for i, (name, size) in enumerate([('from server.bin', 300000), ('readme.md', 90)]):
        downs[name] = write_random(os.path.join(remote, name), size, seed + 10 + i)
    return local, remote, ups, downs


def app_env(base, tmp):
    env = dict(base)
    env['XDG_DATA_HOME'] = os.path.join(tmp, 'data')
    env['XDG_CONFIG_HOME'] = os.path.join(tmp, 'config')
    for name in ('DISPLAY', 'WAYLAND_DISPLAY', 'DBUS_SESSION_BUS_ADDRESS'):
        env.pop(name, None)
    return env


def check_files(where, expected, what):
    bad = []
    for name, data in sorted(expected.items()):
        path = os.path.join(where, name)
        if not os.path.isfile(path) or read(path) != data:
            bad.append('%s: %s' % (name, 'missing' if not os.path.exists(path) else
                                   'differs (%s, want %s)' % (sha(read(path)), sha(data))))
    tap.ok(not bad, what, '\n'.join(bad))


# --- headless, in process ----------------------------------------------------------------------

def test_headless(args, base_env, tmp):
    local, remote, ups, downs = make_folders(tmp, 1)
    server = DavServer(remote)
    env = app_env(base_env, tmp)
    try:
        command = [args.python3, args.app, '--headless', '--mode', 'in-process']
        rc, out, err = run(command + ['--folder', local, '--server', server.url()], env)
        tap.ok(rc == 0, 'bg-sync --headless --mode in-process syncs and exits',
               describe(rc, out, err))
        evs = events(out)
        tap.ok(evs is not None, 'every line it prints is JSON', out)
        evs = evs or []
        tap.ok(evs[:1] == [{'event': 'mode', 'mode': 'in-process'}],
               'the first event says the mode', out)
        submitted = {e['identifier'] for e in evs if e['event'] == 'submitted'}
        finished = {e['identifier']: e for e in evs if e['event'] == 'finished'}
        want = {'down:' + n for n in downs} | {i for i in submitted if i.startswith('up:')}
        tap.ok(sorted(i.split(':')[1] for i in submitted if i.startswith('up:')) == sorted(ups)
               and {i for i in submitted if i.startswith('down:')} == {'down:' + n
                                                                      for n in downs},
               'one upload per local file and one download per file only the server has',
               '\n'.join(sorted(submitted)))
        tap.ok(set(finished) == want and
               all(finished[i]['status'] == (200 if i.startswith('down:') else 201) and
                   'error' not in finished[i] for i in finished),
               'each task finished once, with 201 or 200', out)
        tap.ok(any(e['event'] == 'progress' for e in evs), 'progress events are printed')
        tap.ok(evs[-1:] == [{'event': 'done', 'synced': 5}], 'the last event is done', out)
        check_files(remote, ups, 'the server has every local file, byte for byte')
        check_files(local, downs, 'the folder has every server file, byte for byte')
        tap.ok(not os.path.exists(os.path.join(tmp, 'escape.bin')) and
               not os.path.exists(os.path.join(local, 'x.bin')),
               'names outside the collection are not fetched')
        config = os.path.join(tmp, 'config', 'bg-sync', 'config.json')
        tap.ok(os.path.exists(config) and json.load(open(config)) ==
               {'folder': local, 'server': server.url()},
               'the folder and the server are remembered in config.json')
        database = os.path.join(tmp, 'data', 'bg-glib', 'bg-sync.sqlite')
        tap.ok(os.path.exists(database), 'the database is in the data folder: %s'
               % os.path.relpath(database, tmp))

        # Again, with the remembered folder and server: nothing to do.
        puts = len(server.puts)
        rc, out, err = run(command, env)
        evs = events(out) or []
        tap.ok(rc == 0 and not [e for e in evs if e['event'] == 'submitted'] and
               len(server.puts) == puts and evs[-1:] == [{'event': 'done', 'synced': 0}],
               'a rerun sends and fetches nothing', describe(rc, out, err))

        # A changed file is a new task.
        ups['notes.txt'] += b'more'
        with open(os.path.join(local, 'notes.txt'), 'ab') as f:
            f.write(b'more')
        rc, out, err = run(command, env)
        evs = events(out) or []
        tap.ok(rc == 0 and [e['identifier'].split(':')[1] for e in evs
                            if e['event'] == 'submitted'] == ['notes.txt'],
               'a changed file is uploaded again, alone', describe(rc, out, err))
        check_files(remote, ups, 'the server has the new version')
    finally:
        server.close()


# --- nginx: uploads, and a 405 for PROPFIND ------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_nginx(tmp):
    conf_dir = os.path.join(tmp, 'nginx')
    dav = os.path.join(tmp, 'dav')
    os.makedirs(os.path.join(conf_dir, 'body'))
    os.makedirs(dav)
    for _ in range(5):
        port = free_port()
        user = 'user root;' if os.geteuid() == 0 else ''
        conf = os.path.join(conf_dir, 'nginx.conf')
        with open(conf, 'w') as f:
            f.write('''%s
daemon off;
master_process off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %s/body;
  proxy_temp_path %s/body; fastcgi_temp_path %s/body; uwsgi_temp_path %s/body;
  scgi_temp_path %s/body;
  server {
    listen 127.0.0.1:%d;
    location /dav/ {
      alias %s/;
      dav_methods PUT DELETE MKCOL;
      dav_access user:rw;
      client_max_body_size 0;
    }
  }
}
''' % ((user, conf_dir, conf_dir) + (conf_dir,) * 5 + (port, dav)))
        proc = subprocess.Popen(['nginx', '-e', os.path.join(conf_dir, 'error.log'), '-c', conf,
                                 '-p', conf_dir + '/'], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def listening():
            try:
                with socket.create_connection(('127.0.0.1', port), timeout=1):
                    return True
            except OSError:
                return proc.poll() is not None

        wait_for(listening, 10)
        if proc.poll() is None:
            return proc, 'http://127.0.0.1:%d/dav/' % port, dav
        proc.communicate(timeout=5)
    return None, None, None


def test_nginx(args, base_env, tmp):
    if shutil.which('nginx') is None:
        tap.skip('uploads to nginx', 'no nginx (Debian package nginx-core)')
        return
    local, remote, ups, downs = make_folders(tmp, 2)
    proc, url, dav = start_nginx(tmp)
    if proc is None:
        tap.ok(False, 'a private nginx starts')
        return
    try:
        env = app_env(base_env, tmp)
        rc, out, err = run([args.python3, args.app, '--headless', '--mode', 'in-process',
                            '--folder', local, '--server', url], env)
        evs = events(out) or []
        tap.ok(rc == 0 and evs[-1:] == [{'event': 'done', 'synced': 3}],
               'bg-sync uploads to nginx and exits', describe(rc, out, err))
        tap.ok('PROPFIND: HTTP 405' in err and 'only uploading' in err and
               len(err.strip().splitlines()) == 1,
               'a server without PROPFIND is said in one line', err)
        check_files(dav, ups, 'nginx has every local file, byte for byte')
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


# --- a private session bus, with a notification portal mock -------------------------------------

PORTAL_XML = '''
<node>
  <interface name="org.freedesktop.portal.Notification">
    <method name="AddNotification">
      <arg type="s" name="id" direction="in"/>
      <arg type="a{sv}" name="notification" direction="in"/>
    </method>
    <method name="RemoveNotification">
      <arg type="s" name="id" direction="in"/>
    </method>
    <property name="version" type="u" access="read"/>
  </interface>
  <interface name="org.freedesktop.portal.ProxyResolver">
    <method name="Lookup">
      <arg type="s" name="uri" direction="in"/>
      <arg type="as" name="proxies" direction="out"/>
    </method>
    <property name="version" type="u" access="read"/>
  </interface>
  <interface name="org.freedesktop.portal.NetworkMonitor">
    <method name="GetAvailable"><arg type="b" direction="out"/></method>
    <method name="GetMetered"><arg type="b" direction="out"/></method>
    <method name="GetConnectivity"><arg type="u" direction="out"/></method>
    <method name="GetStatus"><arg type="a{sv}" direction="out"/></method>
    <method name="CanReach">
      <arg type="s" direction="in"/><arg type="u" direction="in"/>
      <arg type="b" direction="out"/>
    </method>
    <signal name="changed"/>
    <property name="version" type="u" access="read"/>
  </interface>
</node>
'''

FDO_XML = '''
<node>
  <interface name="org.freedesktop.Notifications">
    <method name="Notify">
      <arg type="s" direction="in"/><arg type="u" direction="in"/>
      <arg type="s" direction="in"/><arg type="s" direction="in"/>
      <arg type="s" direction="in"/><arg type="as" direction="in"/>
      <arg type="a{sv}" direction="in"/><arg type="i" direction="in"/>
      <arg type="u" direction="out"/>
    </method>
    <method name="GetCapabilities"><arg type="as" direction="out"/></method>
    <method name="GetServerInformation">
      <arg type="s" direction="out"/><arg type="s" direction="out"/>
      <arg type="s" direction="out"/><arg type="s" direction="out"/>
    </method>
  </interface>
</node>
'''


def portal_mock(log_path):
    """Runs as its own process: records every notification asked of the portal (or of the
    freedesktop notification server) as one JSON line in @log_path."""
    from gi.repository import Gio, GLib

    def record(value):
        with open(log_path, 'a') as f:
            f.write(json.dumps(value) + '\n')

    def on_call(conn, sender, path, iface, method, params, invocation):
        if method == 'AddNotification':
            notification_id, notification = params.unpack()
            record({'via': 'portal', 'id': notification_id,
                    'title': notification.get('title'), 'body': notification.get('body')})
            invocation.return_value(None)
        elif method == 'Notify':
            p = params.unpack()
            record({'via': 'fdo', 'app': p[0], 'title': p[3], 'body': p[4]})
            invocation.return_value(GLib.Variant('(u)', (1,)))
        elif method == 'Lookup':
            # GLib's proxy resolver asks the portal too, when GTK_USE_PORTAL is set.
            invocation.return_value(GLib.Variant('(as)', (['direct://'],)))
        elif method in ('GetAvailable', 'CanReach'):
            invocation.return_value(GLib.Variant('(b)', (True,)))
        elif method == 'GetMetered':
            invocation.return_value(GLib.Variant('(b)', (False,)))
        elif method == 'GetConnectivity':
            invocation.return_value(GLib.Variant('(u)', (4,)))     # full
        elif method == 'GetStatus':
            invocation.return_value(GLib.Variant('(a{sv})', ({
                'available': GLib.Variant('b', True), 'metered': GLib.Variant('b', False),
                'connectivity': GLib.Variant('u', 4)},)))
        elif method == 'GetCapabilities':
            invocation.return_value(GLib.Variant('(as)', (['body'],)))
        elif method == 'GetServerInformation':
            invocation.return_value(GLib.Variant('(ssss)', ('mock', 'bg-glib', '1', '1.2')))
        else:
            invocation.return_value(None)

    def on_get(conn, sender, path, iface, prop):
        return GLib.Variant('u', 3 if iface.endswith('NetworkMonitor') else 1)

    conn = Gio.bus_get_sync(Gio.BusType.SESSION, None)
    for interface in Gio.DBusNodeInfo.new_for_xml(PORTAL_XML).interfaces:
        conn.register_object('/org/freedesktop/portal/desktop', interface, on_call, on_get,
                             None)
    conn.register_object('/org/freedesktop/Notifications',
                         Gio.DBusNodeInfo.new_for_xml(FDO_XML).interfaces[0],
                         on_call, None, None)
    loop = GLib.MainLoop()
    owned = []
    for name in ('org.freedesktop.portal.Desktop', 'org.freedesktop.Notifications'):
        owned.append(Gio.bus_own_name_on_connection(conn, name, Gio.BusNameOwnerFlags.NONE,
                                                    None, None))
    record({'via': 'ready'})
    loop.run()


class Bus:
    """A private session bus whose activatable services are the app and, when given, its
    transfer service, with the portal mock on it."""

    def __init__(self, tmp, env, args):
        self.tmp = tmp
        services = os.path.join(tmp, 'services')
        os.makedirs(services)
        with open(os.path.join(services, APP_ID + '.service'), 'w') as f:
            f.write('[D-BUS Service]\nName=%s\nExec=%s %s --gapplication-service\n'
                    % (APP_ID, args.python3, args.app))
        if args.transferd:
            with open(os.path.join(services, APP_ID + '.Transfers.service'), 'w') as f:
                f.write('[D-BUS Service]\nName=%s.Transfers\nExec=%s --app-id %s\n'
                        % (APP_ID, args.transferd, APP_ID))
        conf = os.path.join(tmp, 'bus.conf')
        with open(conf, 'w') as f:
            f.write('''<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir=%s</listen>
  <servicedir>%s</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
''' % (tmp, services))
        self.env = dict(env)
        # GLib sends notifications through the portal, as inside Flatpak.
        self.env['GTK_USE_PORTAL'] = '1'
        self.daemon = subprocess.Popen(['dbus-daemon', '--config-file', conf, '--nofork',
                                        '--print-address=1'], env=self.env,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=open(os.path.join(tmp, 'bus.log'), 'wb'))
        self.address = self.daemon.stdout.readline().decode().strip()
        self.env['DBUS_SESSION_BUS_ADDRESS'] = self.address
        self.log = os.path.join(tmp, 'notifications.log')
        self.mock = subprocess.Popen([args.python3, os.path.abspath(__file__), '--portal-mock',
                                      self.log], env=self.env, stdin=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(self.log), 10)

    def notifications(self):
        try:
            with open(self.log) as f:
                return [json.loads(line) for line in f if '"ready"' not in line]
        except FileNotFoundError:
            return []

    def has_owner(self, name):
        p = subprocess.run(['dbus-send', '--session', '--print-reply',
                            '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus',
                            'org.freedesktop.DBus.NameHasOwner', 'string:' + name],
                           env=self.env, capture_output=True, timeout=10)
        return b'boolean true' in p.stdout

    def close(self):
        for proc in (self.mock, self.daemon):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def activate_action(bus, identifiers):
    """Calls ActivateAction as bg-transferd does: [<["id", ...]>]."""
    array = ','.join('"%s"' % i for i in identifiers)
    return subprocess.run(['gdbus', 'call', '--session', '--dest', APP_ID,
                           '--object-path', '/' + APP_ID.replace('.', '/'),
                           '--method', 'org.freedesktop.Application.ActivateAction',
                           'bg-task-finished', '[<[%s]>]' % array, '{}'],
                          env=bus.env, capture_output=True, timeout=30)


def bus_missing():
    for tool, package in (('dbus-daemon', 'dbus-daemon'), ('dbus-send', 'dbus-bin'),
                          ('gdbus', 'libglib2.0-bin')):
        if shutil.which(tool) is None:
            return 'no %s (Debian package %s)' % (tool, package)
    return None


def test_action(args, base_env, tmp):
    missing = bus_missing()
    if missing:
        tap.skip('the bg-task-finished action', missing)
        return
    bus = Bus(tmp, app_env(base_env, tmp), args)
    try:
        p = activate_action(bus, ['up:photo 1.jpg:400000:17', 'down:readme.md'])
        tap.ok(p.returncode == 0, 'ActivateAction("bg-task-finished", [<as>]) starts the app',
               p.stderr.decode(errors='replace'))
        got = wait_for(bus.notifications, 15)
        tap.ok(got and got[0]['title'] == 'Synced 2 files' and
               got[0]['body'] == 'photo 1.jpg, readme.md' and got[0]['via'] == 'portal',
               'it shows "Synced 2 files" through the notification portal', got)
        gone = wait_for(lambda: not bus.has_owner(APP_ID), 15, step=0.1)
        tap.ok(gone, 'the app, started only for the action, quits by itself')
    finally:
        bus.close()


# --- the service --------------------------------------------------------------------------------

def test_service(args, base_env, tmp):
    missing = bus_missing()
    if missing or not args.transferd:
        tap.skip('the transfer service', missing or 'no --transferd')
        return
    local, remote, ups, downs = make_folders(tmp, 3)
    # Slow enough that the app is gone well before the uploads end.
    server = DavServer(remote, rate=2 * 1024 * 1024)
    bus = Bus(tmp, app_env(base_env, tmp), args)
    try:
        rc, out, err = run([args.python3, args.app, '--headless', '--quit-after-submit',
                            '--folder', local, '--server', server.url()], bus.env)
        evs = events(out) or []
        tap.ok(rc == 0 and evs[:1] == [{'event': 'mode', 'mode': 'service'}] and
               evs[-1:] and evs[-1]['event'] == 'quit' and evs[-1]['pending'] == 5,
               'bg-sync --headless --quit-after-submit hands 5 tasks to the service and exits',
               describe(rc, out, err))
        tap.ok(not [e for e in evs if e['event'] == 'finished'],
               'it exits before any of them finished', out)
        done = wait_for(lambda: sorted(set(server.puts)) == sorted(ups) and
                        all(os.path.exists(os.path.join(local, n)) for n in downs), 30)
        tap.ok(done, 'the service finishes every transfer after the app is gone',
               server.puts)
        check_files(remote, ups, 'the server has every local file, byte for byte')
        tap.ok(sorted(server.puts) == sorted(ups), 'each file was sent once', server.puts)
        check_files(local, downs, 'the folder has every server file, byte for byte')
        # The service calls as tasks finish, maybe several times; the app counts them all in
        # one notification, replaced each time.
        names = set(ups) | set(downs)

        def told():
            got = bus.notifications()
            shown = set()
            for n in got:
                shown |= set((n.get('body') or '').split(', '))
            return got if names <= shown else None

        got = wait_for(told, 20)
        tap.ok(got and all(n['title'].startswith('Synced ') for n in got),
               'the service woke the app, which named every file in its notifications',
               bus.notifications())
        tap.note('notifications: %s' % ' | '.join(n['title'] for n in bus.notifications()))

        # The next start collects the results that waited in the store, once.
        rc, out, err = run([args.python3, args.app, '--headless'], bus.env)
        evs = events(out) or []
        tap.ok(rc == 0 and not [e for e in evs if e['event'] == 'submitted'] and
               evs[-1:] == [{'event': 'done', 'synced': 5}],
               'the next run collects the 5 results and sends nothing', describe(rc, out, err))
    finally:
        bus.close()
        server.close()


# --- the window ---------------------------------------------------------------------------------

SCREEN = (720, 440)


def window_missing(args):
    for tool, package in (('xvfb-run', 'xvfb'), ('xauth', 'xauth'), ('import', 'imagemagick'),
                          ('dbus-run-session', 'dbus-daemon')):
        if shutil.which(tool) is None:
            return 'no %s (Debian package %s)' % (tool, package)
    for module, version, package in (('Gtk', '4.0', 'gir1.2-gtk-4.0'),
                                     ('Adw', '1', 'gir1.2-adw-1')):
        probe = subprocess.run([args.python3, '-c', 'import gi; gi.require_version("%s", "%s")'
                                % (module, version)], capture_output=True)
        if probe.returncode != 0:
            return 'no %s typelib (Debian package %s)' % (module, package)
    return None


def test_window(args, base_env, tmp):
    missing = window_missing(args)
    if missing:
        tap.skip('the window', missing)
        return
    shot = os.path.abspath(args.screenshot)
    if os.path.exists(shot):
        os.unlink(shot)
    local, remote, ups, downs = make_folders(tmp, 4)
    server = DavServer(remote, rate=200 * 1024)
    env = app_env(base_env, tmp)
    env['GSK_RENDERER'] = 'cairo'
    env['NO_AT_BRIDGE'] = '1'
    try:
        command = ['dbus-run-session', '--', 'xvfb-run', '-a', '-s',
                   '-screen 0 %dx%dx24' % SCREEN, args.python3, args.app, '--mode', 'in-process',
                   '--folder', local, '--server', server.url(), '--screenshot', shot]
        rc, out, err = run(command, env, timeout=45)
        lines = out.splitlines()
        tap.ok(rc == 0 and 'synced: 5' in lines, 'the window syncs five files and quits',
               describe(rc, out, err))
        check_files(remote, ups, 'the window: the server has every local file')
        check_files(local, downs, 'the window: the folder has every server file')
        said = 'screenshot: %s' % shot
        tap.ok(said in lines and lines.index(said) < lines.index('synced: 5'),
               'the screenshot was taken mid-sync', out)
        magic = read(shot)[:8] if os.path.exists(shot) else b''
        tap.ok(magic == b'\x89PNG\r\n\x1a\n', 'the screenshot is a PNG: %s' % shot)
        identify = shutil.which('identify')
        if identify and magic.startswith(b'\x89PNG'):
            p = subprocess.run([identify, '-format', '%w %h %k', shot], capture_output=True,
                               timeout=30)
            fields = p.stdout.decode().split()
            tap.ok(len(fields) == 3 and int(fields[2]) > 32,
                   'the screenshot shows the window, not an empty screen', p.stdout + p.stderr)
    finally:
        server.close()


def main():
    if len(sys.argv) == 3 and sys.argv[1] == '--portal-mock':
        portal_mock(sys.argv[2])
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument('--app', required=True)
    parser.add_argument('--python3', default='/usr/bin/python3')
    parser.add_argument('--transferd')
    parser.add_argument('--screenshot', default='bg-sync.png')
    parser.add_argument('parts', nargs='*',
                        default=['headless', 'nginx', 'action', 'service', 'window'])
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix='bg-sync-test-')
    tests = {'headless': test_headless, 'nginx': test_nginx, 'action': test_action,
             'service': test_service, 'window': test_window}
    for part in args.parts:
        where = os.path.join(tmp, part)
        os.mkdir(where)
        start = time.monotonic()
        tests[part](args, os.environ, where)
        tap.note('%s: %.1f s' % (part, time.monotonic() - start))
    status = tap.done()
    if status == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print('# kept %s' % tmp)
    return status


if __name__ == '__main__':
    sys.exit(main())
