#!/usr/bin/python3
# test-flatpak.py: the sample app examples/bg-sync inside a real Flatpak sandbox (bubblewrap and
# xdg-dbus-proxy, through `flatpak run`), with no Flathub and no network beyond 127.0.0.1.
#
# It assembles a small runtime, org.example.Platform//1, from the host's Debian packages (cached
# under the build folder, keyed by the packages and their versions), builds bg-glib with
# --prefix=/app against the same libraries, builds the app with the build commands and the
# permissions of examples/bg-sync/org.example.BgSync.json, and installs both --user in a private
# HOME.  Then, on a private session bus with a portal mock (portal-mock.py) and a WebDAV nginx
# on 127.0.0.1 behind a gate it opens and closes:
#
#   a. the database is under ~/.var/app/org.example.BgSync/data/bg-glib and nowhere else;
#   b. the app submits its files and quits; the transfer service, started by D-Bus activation
#      inside the sandbox with the app's identity, sends each file exactly once, byte for byte;
#   c. the service asked the Background portal for autostart with --resume-all, and withdrew it
#      once its queue was empty;
#   d. the service woke the app with bg-task-finished, and the app's notification reached the
#      portal;
#   e. a "reboot": with uploads in flight every process is killed, a new bus starts, the
#      autostart command line runs as the session would, and the files arrive, once each.
#
# Skips (exit 77) with one line when flatpak, bubblewrap's namespaces or nginx are not there.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

APP_ID = 'org.example.BgSync'
RUNTIME = 'org.example.Platform'
RUNTIME_BRANCH = '1'
APP_BRANCH = 'master'
SESSION_DB = 'bg-sync'
TRANSFERD = '/app/libexec/bg-transferd'
# What the service is to register as its autostart command line (DESIGN.md).
AUTOSTART_COMMAND = [TRANSFERD, '--app-id', APP_ID, '--resume-all']

# Bump when what goes into the runtime changes in a way the package list does not show.
RUNTIME_RECIPE = 3
# The runtime: only what the app and the service need, with their dependencies.  The window
# (GTK, libadwaita) is not exercised inside the sandbox.
RUNTIME_ROOTS = [
    'libc-bin', 'dash', 'bash', 'coreutils', 'sed', 'grep', 'findutils',
    'python3', 'python3-gi', 'libglib2.0-bin',
    'libglib2.0-0', 'libsoup-3.0-0', 'libgda-5.0-4', 'libsqlite3-0', 'libjson-glib-1.0-0',
    'libportal1', 'glib-networking',
    'gir1.2-glib-2.0', 'gir1.2-soup-3.0', 'gir1.2-json-1.0', 'gir1.2-xdp-1.0',
]
SKIP_PREFIXES = ('/usr/share/doc/', '/usr/share/man/', '/usr/share/info/', '/usr/share/locale/',
                 '/usr/share/lintian/', '/usr/share/bug/')

FILES_PHASE_B = [('photo-%d.bin' % i, (3 << 20) + 1000 * i) for i in range(4)]
FILES_PHASE_E = [('after-reboot-%d.bin' % i, (2 << 20) + 777 * i) for i in range(3)]

WAIT = 120          # the longest any single wait may take, in seconds

T0 = time.monotonic()
srcdir = os.environ.get('G_TEST_SRCDIR') or os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))
top_srcdir = os.path.dirname(os.path.abspath(srcdir))
builddir = os.environ.get('G_TEST_BUILDDIR') or os.path.join(top_srcdir, 'build', 'tests')
cache_dir = os.path.join(builddir, 'flatpak')
app_srcdir = os.path.join(top_srcdir, 'examples', 'bg-sync')
manifest_path = os.path.join(app_srcdir, APP_ID + '.json')
portal_mock = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'portal-mock.py')
python3 = '/usr/bin/python3' if os.path.exists('/usr/bin/python3') else sys.executable


def log(text):
    print('[%5.1f s] %s' % (time.monotonic() - T0, text), flush=True)


def skip(reason):
    print('SKIP: %s' % reason, flush=True)
    sys.exit(77)


class Failure(Exception):
    pass


def run(argv, env=None, timeout=WAIT, check=True, quiet=True, cwd=None):
    r = subprocess.run(argv, env=env, cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and r.returncode != 0:
        raise Failure('%s exited with %d:\n%s' % (' '.join(argv), r.returncode, r.stdout[-4000:]))
    if not quiet and r.stdout.strip():
        print(r.stdout.rstrip(), flush=True)
    return r


def wait_for(what, predicate, timeout=WAIT, interval=0.1):
    """Polls @predicate until it returns something true, for at most @timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failure('gave up after %d s waiting for %s' % (timeout, what))
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def du(path):
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


# --- What must be there -----------------------------------------------------------------------

def check_prerequisites():
    for program in ('flatpak', 'bwrap', 'dbus-daemon', 'nginx', 'meson', 'dpkg-query',
                    'apt-cache'):
        if shutil.which(program) is None:
            skip('%s is not installed (see .ci/install-deps)' % program)
    try:
        r = subprocess.run(['bwrap', '--unshare-all', '--ro-bind', '/', '/', 'true'],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=30)
    except subprocess.TimeoutExpired:
        skip('bwrap could not create a sandbox within 30 s')
    if r.returncode != 0:
        skip('user namespaces are not usable here: bwrap --unshare-all says: %s'
             % (r.stdout.strip().splitlines() or ['exit %d' % r.returncode])[-1])
    if not os.path.exists(os.path.join(app_srcdir, 'bg-sync')):
        raise Failure('the app %s is missing' % os.path.join(app_srcdir, 'bg-sync'))


# --- The runtime, from Debian packages --------------------------------------------------------

def runtime_packages():
    r = run(['apt-cache', 'depends', '--recurse', '--installed', '--no-recommends',
             '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances']
            + RUNTIME_ROOTS, check=False)
    names = set()
    for line in r.stdout.splitlines():
        if line and not line.startswith((' ', '<')):
            names.add(line.split(':')[0])
    versions = run(['dpkg-query', '-W', '-f', '${db:Status-Status} ${Package} ${Version}\\n']
                   + sorted(names), check=False).stdout
    installed = sorted(line.split(' ', 1)[1] for line in versions.splitlines()
                       if line.startswith('installed '))
    missing = set(RUNTIME_ROOTS) - {line.split()[0] for line in installed}
    if missing:
        skip('the runtime needs Debian packages that are not installed: %s'
             % ' '.join(sorted(missing)))
    return installed


def runtime_paths(packages):
    paths = set()
    listing = run(['dpkg-query', '-L'] + [p.split()[0] for p in packages], check=False).stdout
    for path in listing.splitlines():
        if not path.startswith('/') or not os.path.lexists(path):
            continue
        # Debian 12 merges /usr: /lib, /bin and /sbin are links into it.
        real = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        if real.startswith(SKIP_PREFIXES):
            continue
        if os.path.isdir(real) and not os.path.islink(real):
            continue
        if real.startswith(('/usr/', '/etc/')):
            paths.add(real[1:])
    # Written by package triggers, so not listed by dpkg.
    for generated in ('usr/share/glib-2.0/schemas/gschemas.compiled',
                      'usr/lib/x86_64-linux-gnu/gio/modules/giomodule.cache'):
        if os.path.exists('/' + generated):
            paths.add(generated)
    return sorted(paths)


def build_runtime():
    """Returns the ostree repository holding org.example.Platform//1, and its size in bytes."""
    packages = runtime_packages()
    key = hashlib.sha256(('%d\n' % RUNTIME_RECIPE + '\n'.join(packages)).encode()).hexdigest()
    where = os.path.join(cache_dir, 'runtime-' + key[:16])
    done = os.path.join(where, 'done')
    if os.path.exists(done):
        with open(done) as f:
            size = int(f.read())
        log('runtime %s//%s: cached (%d packages, %.0f MiB)'
            % (RUNTIME, RUNTIME_BRANCH, len(packages), size / 2**20))
        return os.path.join(where, 'repo'), size, len(packages)

    for old in os.listdir(cache_dir) if os.path.isdir(cache_dir) else []:
        if old.startswith('runtime-'):
            shutil.rmtree(os.path.join(cache_dir, old), ignore_errors=True)
    os.makedirs(where)
    rt = os.path.join(where, 'rt')
    files = os.path.join(rt, 'files')
    os.makedirs(files)
    paths = runtime_paths(packages)
    with open(os.path.join(where, 'paths.txt'), 'w') as f:
        f.write('\n'.join(paths) + '\n')
    with open(os.path.join(where, 'packages.txt'), 'w') as f:
        f.write('\n'.join(packages) + '\n')
    # /usr of the host becomes the runtime's files/ (the sandbox's /usr); /etc stays etc/.
    tar = subprocess.Popen(['tar', '-C', '/', '--no-recursion', '-cf', '-',
                            '-T', os.path.join(where, 'paths.txt')], stdout=subprocess.PIPE)
    subprocess.run(['tar', '-C', files, '-xf', '-', '--transform', 'flags=r;s,^usr/,,'],
                   stdin=tar.stdout, check=True, timeout=WAIT)
    tar.stdout.close()
    if tar.wait(timeout=WAIT) != 0:
        raise Failure('could not copy the runtime files')
    # flatpak runs bin/ldconfig in the sandbox to build its ld.so.cache: Debian keeps it in sbin.
    if not os.path.lexists(os.path.join(files, 'bin', 'ldconfig')):
        os.symlink('../sbin/ldconfig', os.path.join(files, 'bin', 'ldconfig'))
    os.makedirs(os.path.join(files, 'etc'), exist_ok=True)
    with open(os.path.join(files, 'etc', 'ld.so.conf'), 'w') as f:
        f.write('include /run/flatpak/ld.so.conf.d/app-*.conf\n'
                'include /app/etc/ld.so.conf\n'
                '/app/lib\n'
                'include /run/flatpak/ld.so.conf.d/runtime-*.conf\n')
    with open(os.path.join(rt, 'metadata'), 'w') as f:
        f.write('[Runtime]\nname=%s\nruntime=%s/x86_64/%s\nsdk=%s/x86_64/%s\n\n'
                '[Environment]\nGI_TYPELIB_PATH=/app/lib/girepository-1.0\n'
                % (RUNTIME, RUNTIME, RUNTIME_BRANCH, RUNTIME, RUNTIME_BRANCH))
    size = du(files)
    run(['flatpak', 'build-export', '--runtime', '--files=files',
         os.path.join(where, 'repo'), rt, RUNTIME_BRANCH], timeout=300)
    shutil.rmtree(rt)
    with open(done, 'w') as f:
        f.write('%d\n' % size)
    log('runtime %s//%s: built from %d Debian packages, %d files, %.0f MiB'
        % (RUNTIME, RUNTIME_BRANCH, len(packages), len(paths), size / 2**20))
    return os.path.join(where, 'repo'), size, len(packages)


# --- The app ------------------------------------------------------------------------------------

def manifest_modules():
    with open(manifest_path, encoding='utf-8') as f:
        manifest = json.load(f)
    if manifest.get('id', manifest.get('app-id')) != APP_ID:
        raise Failure('%s does not build %s' % (manifest_path, APP_ID))
    modules = {m['name']: m for m in manifest['modules'] if isinstance(m, dict)}
    for name in ('bg-glib', 'bg-sync'):
        if name not in modules:
            raise Failure('%s has no module "%s"' % (manifest_path, name))
    return manifest, modules


def build_app(tmp, env):
    """Builds bg-glib with --prefix=/app on the host (the runtime is the host's libraries), then
    the app module of the manifest inside `flatpak build`, and exports it to a repository."""
    manifest, modules = manifest_modules()
    bgdir = os.path.join(cache_dir, 'bg-glib-build')
    if not os.path.exists(os.path.join(bgdir, 'build.ninja')):
        shutil.rmtree(bgdir, ignore_errors=True)
        run(['meson', 'setup', '--prefix=/app', '--libdir=lib', '--buildtype=debugoptimized']
            + modules['bg-glib'].get('config-opts', []) + [bgdir, top_srcdir], timeout=300)
    run(['meson', 'compile', '-C', bgdir], timeout=480)
    stage = os.path.join(tmp, 'stage')
    run(['meson', 'install', '-C', bgdir, '--no-rebuild', '--quiet', '--destdir', stage])
    log('bg-glib built with --prefix=/app')

    appdir = os.path.join(tmp, 'appdir')
    run(['flatpak', 'build-init', appdir, APP_ID, RUNTIME, RUNTIME, RUNTIME_BRANCH], env=env)
    files = os.path.join(appdir, 'files')
    for entry in os.listdir(os.path.join(stage, 'app')):
        shutil.move(os.path.join(stage, 'app', entry), os.path.join(files, entry))

    # The app's module, with the manifest's own build commands, in a copy of its sources.
    sources = os.path.join(tmp, 'bg-sync-src')
    shutil.copytree(app_srcdir, sources, ignore=shutil.ignore_patterns('*.png', '__pycache__'))
    for command in modules['bg-sync'].get('build-commands', []):
        run(['flatpak', 'build', '--bind-mount=/run/build/bg-sync=' + sources,
             '--build-dir=/run/build/bg-sync', appdir, '/bin/sh', '-ec', command], env=env)

    for exported in ('share/dbus-1/services/%s.Transfers.service' % APP_ID,
                     'share/dbus-1/services/%s.service' % APP_ID,
                     'share/applications/%s.desktop' % APP_ID):
        if not os.path.exists(os.path.join(files, exported)):
            raise Failure('the manifest installs no /app/%s' % exported)

    run(['flatpak', 'build-finish', '--command=' + manifest.get('command', 'bg-sync')]
        + manifest.get('finish-args', []) + [appdir], env=env)
    repo = os.path.join(tmp, 'app-repo')
    run(['flatpak', 'build-export', repo, appdir, APP_BRANCH], env=env, timeout=300)
    return repo


# --- The servers ------------------------------------------------------------------------------

class Nginx:
    """WebDAV on 127.0.0.1, with an access log of every request."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, 'nginx')
        self.root = os.path.join(tmp, 'www')
        self.access_log = os.path.join(self.dir, 'access.log')
        self.error_log = os.path.join(self.dir, 'error.log')
        os.makedirs(os.path.join(self.dir, 'body'))
        os.makedirs(os.path.join(self.root, 'dav'))
        self.port = free_port()
        temp = ''.join('  %s_temp_path %s;\n' % (what, os.path.join(self.dir, what))
                       for what in ('proxy', 'fastcgi', 'uwsgi', 'scgi'))
        conf = os.path.join(self.dir, 'nginx.conf')
        with open(conf, 'w') as f:
            f.write('''%(user)s
daemon off;
master_process on;
worker_processes 1;
pid %(dir)s/nginx.pid;
error_log %(error_log)s warn;
events { worker_connections 256; }
http {
  log_format dav '$request_method $uri $status $request_length';
  access_log %(access_log)s dav;
  client_body_temp_path %(dir)s/body;
%(temp)s
  server {
    listen 127.0.0.1:%(port)d;
    root %(root)s;
    location /dav/ {
      dav_methods PUT DELETE MKCOL;
      dav_access user:rw;
      create_full_put_path on;
      client_max_body_size 0;
    }
  }
}
''' % {'user': 'user root;' if os.geteuid() == 0 else '', 'dir': self.dir,
                'error_log': self.error_log, 'access_log': self.access_log, 'temp': temp,
                'port': self.port, 'root': self.root})
        self.proc = subprocess.Popen(['nginx', '-e', self.error_log, '-c', conf,
                                      '-p', self.dir + '/'],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise Failure('nginx did not start: %s' % open(self.error_log).read()[-2000:])
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_for('nginx', up, 20)

    def puts(self):
        """The PUTs nginx answered: [(path, status)]."""
        try:
            with open(self.access_log) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        return [(parts[1], int(parts[2])) for parts in (line.split() for line in lines)
                if len(parts) >= 3 and parts[0] == 'PUT']

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Gate:
    """A TCP relay in front of nginx.  While it is closed, connections are accepted and held
    without a byte going through, so uploads stay in flight for as long as the test needs;
    closing it also cuts the connections that were passing, so that no kept-alive connection
    slips past.  reset() drops the held ones, as a reboot would."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open_event = threading.Event()
        self.generation = 0
        self.sockets = set()
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.sockets.add(client)
                generation = self.generation
            threading.Thread(target=self._serve, args=(client, generation), daemon=True).start()

    def _serve(self, client, generation):
        while not self.open_event.wait(0.1):
            if generation != self.generation:
                return self._drop(client)
        try:
            upstream = socket.create_connection(('127.0.0.1', self.upstream), timeout=10)
        except OSError:
            return self._drop(client)
        upstream.settimeout(None)
        with self.lock:
            current = generation == self.generation
            if current:
                self.sockets.add(upstream)
        if not current:
            self._drop(upstream)
            return self._drop(client)
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        self._pipe(client, upstream)

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            self._drop(src)
            self._drop(dst)

    def _drop(self, sock):
        with self.lock:
            self.sockets.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def open(self):
        self.open_event.set()

    def close(self):
        """Holds new connections, and cuts every connection there is."""
        self.open_event.clear()
        with self.lock:
            self.generation += 1
            doomed = list(self.sockets)
        for sock in doomed:
            self._drop(sock)

    reset = close

    def stop(self):
        self.close()
        self.listener.close()


# --- The session --------------------------------------------------------------------------------

class Session:
    """A private session bus whose service folders are the Flatpak exports, with the portal
    mock on it: what a desktop session would give the app, and nothing from the host's."""

    def __init__(self, tmp, env, name):
        self.env = dict(env)
        # What the services started on this bus say goes to its log (bus.log).
        self.env['G_MESSAGES_DEBUG'] = 'Bg'
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        host_services = os.path.join(self.dir, 'host-services')
        os.makedirs(host_services)
        # flatpak run asks flatpak-session-helper for the host's resolv.conf and friends.
        helper = '/usr/share/dbus-1/services/org.freedesktop.Flatpak.service'
        if os.path.exists(helper):
            shutil.copy(helper, host_services)
        address = 'unix:path=' + os.path.join(self.dir, 'bus')
        config = os.path.join(self.dir, 'session.conf')
        with open(config, 'w') as f:
            f.write('''<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>%s</listen>
  <auth>EXTERNAL</auth>
  <servicedir>%s</servicedir>
  <servicedir>%s</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
''' % (address, os.path.join(env['HOME'], '.local/share/flatpak/exports/share/dbus-1/services'),
                host_services))
        self.bus_log = open(os.path.join(self.dir, 'bus.log'), 'w')
        self.bus = subprocess.Popen(['dbus-daemon', '--config-file=' + config, '--nofork',
                                     '--print-address=1'], env=self.env,
                                    stdout=subprocess.PIPE, stderr=self.bus_log, text=True)
        line = self.bus.stdout.readline().strip()
        if not line:
            raise Failure('dbus-daemon did not start')
        self.env['DBUS_SESSION_BUS_ADDRESS'] = line
        self.events = os.path.join(self.dir, 'portal-events.jsonl')
        self.portal_log = open(os.path.join(self.dir, 'portal.log'), 'w')
        self.portal = subprocess.Popen([python3, portal_mock, self.events], env=self.env,
                                       stdout=subprocess.PIPE, stderr=self.portal_log, text=True)
        if self.portal.stdout.readline().strip() != 'ready':
            raise Failure('the portal mock did not start: see %s' % self.portal_log.name)

    def portal_events(self):
        try:
            with open(self.events, encoding='utf-8') as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def stop(self):
        for proc in (self.portal, self.bus):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self.bus_log.close()
        self.portal_log.close()


def processes_of(home):
    """Every process whose environment has HOME=@home: the sandboxes, bwrap, xdg-dbus-proxy,
    flatpak, the bus and the portal mock of this run, and nothing else on the machine."""
    mine = ('HOME=' + home).encode()
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open('/proc/%s/environ' % entry, 'rb') as f:
                if mine in f.read().split(b'\0'):
                    pids.append(int(entry))
        except OSError:
            pass
    return pids


def sandboxed_transferd(home):
    """[(pid, app id)] of the bg-transferd processes of this run, the app id read from the
    .flatpak-info at the root of the process (None outside a sandbox)."""
    found = []
    for pid in processes_of(home):
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                argv = f.read().split(b'\0')
            if not argv or os.path.basename(argv[0]) != b'bg-transferd':
                continue
            app = None
            try:
                with open('/proc/%d/root/.flatpak-info' % pid) as f:
                    for line in f:
                        if line.startswith('name='):
                            app = line.strip().split('=', 1)[1]
                            break
            except OSError:
                pass
            found.append((pid, app))
        except OSError:
            pass
    return found


def kill_all(home):
    for _ in range(5):
        pids = processes_of(home)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


# --- The checks ---------------------------------------------------------------------------------

class Results:
    def __init__(self):
        self.n = 0
        self.failed = []

    def check(self, name, fn):
        self.n += 1
        t = time.monotonic()
        try:
            detail = fn()
        except (Failure, subprocess.TimeoutExpired, OSError) as e:
            print('not ok %d - %s (%.1f s)\n  # %s' % (self.n, name, time.monotonic() - t,
                                                       str(e).replace('\n', '\n  # ')),
                  flush=True)
            self.failed.append(name)
            return False
        print('ok %d - %s (%.1f s)%s' % (self.n, name, time.monotonic() - t,
                                         ': ' + detail if detail else ''), flush=True)
        return True


def write_files(folder, specs):
    os.makedirs(folder, exist_ok=True)
    for name, size in specs:
        with open(os.path.join(folder, name), 'wb') as f:
            f.write(os.urandom(size))


def run_app(env, folder, server, extra):
    argv = ['flatpak', 'run', APP_ID, '--folder', folder, '--server', server, '--sync',
            '--headless', '--mode', 'service'] + extra
    r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=WAIT)
    events = []
    for line in r.stdout.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pass
    if r.returncode != 0:
        raise Failure('the app exited with %d:\n%s%s' % (r.returncode, r.stdout[-2000:],
                                                         r.stderr[-3000:]))
    modes = [e.get('mode') for e in events if e.get('event') == 'mode']
    if modes != ['service']:
        raise Failure('the app did not run in service mode: mode events %r\n%s'
                      % (modes, r.stderr[-3000:]))
    return events


class RunningApp:
    """The app running in the sandbox, its JSON lines read as they come."""

    def __init__(self, env, argv, tmp):
        self.stderr = open(os.path.join(tmp, 'app-%d.log' % time.monotonic_ns()), 'w+')
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.events = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.events.append(event)

    def read_until(self, what, predicate):
        def ready():
            with self.lock:
                events = list(self.events)
            if predicate(events):
                return events
            if self.proc.poll() is not None:
                self.stderr.seek(0)
                raise Failure('the app exited with %s before %s: %r\n%s' % (
                    self.proc.returncode, what, events, self.stderr.read()[-3000:]))
            return None
        return wait_for(what, ready, 60)

    def kill(self):
        """SIGKILL to the app inside its sandbox, and to the flatpak run in front of it."""
        home = self.proc_env_home
        for pid in processes_of(home):
            try:
                with open('/proc/%d/cmdline' % pid, 'rb') as f:
                    argv = f.read().split(b'\0')
            except OSError:
                continue
            if any(a.endswith(b'/bin/bg-sync') for a in argv[:2]):
                os.kill(pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait()
        self.stderr.close()


def start_app(env, folder, server, tmp):
    app = RunningApp(env, ['flatpak', 'run', APP_ID, '--folder', folder, '--server', server,
                           '--sync', '--headless', '--mode', 'service'], tmp)
    app.proc_env_home = env['HOME']
    return app


def server_has_each_once(nginx, folder, specs):
    puts = nginx.puts()
    for name, _ in specs:
        path = '/dav/' + name
        done = [status for p, status in puts if p == path and status in (201, 204)]
        if len(done) != 1:
            return False
    return True


def check_bytes(nginx, folder, specs):
    puts = nginx.puts()
    for name, _ in specs:
        statuses = [status for p, status in puts if p == '/dav/' + name]
        if len([s for s in statuses if s in (201, 204)]) != 1:
            raise Failure('%s was stored %d times (PUT statuses %r)'
                          % (name, len([s for s in statuses if s in (201, 204)]), statuses))
        with open(os.path.join(folder, name), 'rb') as a, \
                open(os.path.join(nginx.root, 'dav', name), 'rb') as b:
            if a.read() != b.read():
                raise Failure('%s on the server differs from the local file' % name)


def main():
    check_prerequisites()
    os.makedirs(cache_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='bg-flatpak-')
    home = os.path.join(tmp, 'home')
    runtime_dir = os.path.join(tmp, 'run')
    os.makedirs(home)
    os.mkdir(runtime_dir, 0o700)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('XDG_', 'DBUS_', 'LD_', 'GI_', 'FLATPAK_'))
           and k not in ('DISPLAY', 'WAYLAND_DISPLAY', 'MALLOC_CHECK_')}
    env.update({
        'HOME': home,
        'XDG_RUNTIME_DIR': runtime_dir,
        'XDG_DATA_HOME': os.path.join(home, '.local/share'),
        'XDG_CONFIG_HOME': os.path.join(home, '.config'),
        'XDG_CACHE_HOME': os.path.join(home, '.cache'),
        'XDG_STATE_HOME': os.path.join(home, '.local/state'),
        # Before the bus starts, or it never sees the exported service files.
        'XDG_DATA_DIRS': os.path.join(home, '.local/share/flatpak/exports/share')
                         + ':/usr/local/share:/usr/share',
    })
    os.makedirs(os.path.join(home, '.config'))
    with open(os.path.join(home, '.config', 'user-dirs.dirs'), 'w') as f:
        f.write('XDG_DOCUMENTS_DIR="$HOME/Documents"\nXDG_DOWNLOAD_DIR="$HOME/Downloads"\n')
    folder = os.path.join(home, 'Documents', 'BgSync')

    results = Results()
    nginx = gate = session = None
    figures = {}
    try:
        runtime_repo, figures['runtime'], figures['packages'] = build_runtime()

        def install(remote, repo, ref):
            run(['flatpak', '--user', 'remote-add', '--no-gpg-verify', remote, 'file://' + repo],
                env=env)
            run(['flatpak', '--user', 'install', '-y', '--noninteractive', remote, ref],
                env=env, timeout=300)
        install('bg-runtime', runtime_repo, '%s//%s' % (RUNTIME, RUNTIME_BRANCH))
        install('bg-app', build_app(tmp, env), '%s//%s' % (APP_ID, APP_BRANCH))
        log('installed %s and %s --user in %s' % (RUNTIME, APP_ID, home))

        nginx = Nginx(tmp)
        gate = Gate(nginx.port)
        server = 'http://127.0.0.1:%d/dav/' % gate.port
        session = Session(tmp, env, 'session-1')
        senv = session.env

        # b. The app submits and quits; the service in the sandbox does the work.
        write_files(folder, FILES_PHASE_B)
        gate.close()

        def app_killed_service_finishes():
            app = start_app(senv, folder, server, tmp)
            try:
                events = app.read_until('every file submitted', lambda events: len(
                    [e for e in events if e.get('event') == 'submitted']) == len(FILES_PHASE_B))
                modes = [e.get('mode') for e in events if e.get('event') == 'mode']
                if modes != ['service']:
                    raise Failure('the app did not run in service mode: mode events %r' % modes)
                services = wait_for('bg-transferd to run', lambda: sandboxed_transferd(home), 30)
                if any(app_id != APP_ID for _, app_id in services):
                    raise Failure('bg-transferd runs outside the sandbox of %s: %r'
                                  % (APP_ID, services))
                # The uploads are in flight (held at the gate) when the app is killed.
                wait_for('an upload at the gate', lambda: gate.accepted > 0, 60)
            finally:
                app.kill()
            held = gate.accepted
            if not sandboxed_transferd(home):
                raise Failure('bg-transferd went away with the app')
            gate.open()
            wait_for('every file on the server',
                     lambda: server_has_each_once(nginx, folder, FILES_PHASE_B))
            check_bytes(nginx, folder, FILES_PHASE_B)
            return ('%d files sent by bg-transferd (pid %s, in the sandbox of %s) after the app '
                    'was killed; %d connections were held at the gate till then'
                    % (len(FILES_PHASE_B), ','.join(str(p) for p, _ in services), APP_ID, held))
        phase_b = results.check('the app is killed mid-sync and the D-Bus-activated service in '
                                'the sandbox sends every file once, byte for byte',
                                app_killed_service_finishes)

        def database_only_in_app_data():
            found = []
            for root, dirs, files in os.walk(home):
                dirs[:] = [d for d in dirs if d != 'flatpak' or root != os.path.join(
                    home, '.local/share')]
                found += [os.path.join(root, n) for n in files if n.endswith('.sqlite')]
            expected_dir = os.path.join(home, '.var/app', APP_ID, 'data', 'bg-glib')
            if not found:
                raise Failure('no database under %s' % home)
            stray = [p for p in found if os.path.dirname(p) != expected_dir]
            if stray:
                raise Failure('databases outside %s: %s' % (expected_dir, ', '.join(stray)))
            return ', '.join(os.path.relpath(p, home) for p in found)
        results.check('the database is under ~/.var/app/%s/data and nowhere else' % APP_ID,
                      database_only_in_app_data)

        def service_reaches_the_app():
            # The service asks each client's prepare-request handlers before each attempt; the
            # bus proxy of its sandbox lets it call only peers that own a name under the app id.
            session.bus_log.flush()
            with open(os.path.join(session.dir, 'bus.log')) as f:
                refused = [line.strip() for line in f if 'prepare-request handler' in line]
            if refused:
                raise Failure('the service could not call the app: %s' % '; '.join(refused[:3]))
            return 'no prepare-request call refused by the sandbox'
        results.check('the service in the sandbox can call the app back (prepare-request)',
                      service_reaches_the_app)

        def autostart_asked_then_withdrawn():
            def asked():
                events = [e for e in session.portal_events()
                          if e['method'] == 'RequestBackground']
                on = [i for i, e in enumerate(events) if e['autostart']]
                off = [i for i, e in enumerate(events) if not e['autostart'] and on and i > on[0]]
                return (events, on, off) if on and off else None
            try:
                events, on, off = wait_for('RequestBackground with autostart on, then off',
                                           asked, 45)
            except Failure as e:
                session.bus_log.flush()
                said = []
                for name in ('bus.log', 'portal.log'):
                    with open(os.path.join(session.dir, name)) as f:
                        said += [line for line in f if 'dbus-daemon[' not in line]
                raise Failure('%s; the portal saw: %r; the session said: %s' % (e, [
                    e for e in session.portal_events() if e['method'] == 'RequestBackground'],
                    ''.join(said[-20:])))
            first = events[on[0]]
            if first['commandline'] != AUTOSTART_COMMAND:
                raise Failure('autostart command line %r, expected %r'
                              % (first['commandline'], AUTOSTART_COMMAND))
            if first['app'] != APP_ID:
                raise Failure('RequestBackground came from %r, not %s' % (first['app'], APP_ID))
            return 'autostart on with %s, then off' % ' '.join(first['commandline'])
        results.check('the service asked for autostart with --resume-all and withdrew it when '
                      'done', autostart_asked_then_withdrawn)

        def app_woken_for_notification():
            def notified():
                return [e for e in session.portal_events()
                        if e['method'] == 'AddNotification' and e['app'] == APP_ID]
            try:
                found = wait_for('a notification from the app', notified, 45)
            except Failure as e:
                raise Failure('%s; the portal saw: %r; %s' % (e, session.portal_events(),
                                                              activate_by_hand()))
            return 'AddNotification %r: %r' % (found[0]['id'], found[0]['title'])
        def activate_by_hand():
            """Tells apart an app that does not notify from a service that did not wake it."""
            r = run(['gdbus', 'call', '--session', '--dest', APP_ID, '--object-path',
                     '/' + APP_ID.replace('.', '/'), '--method',
                     'org.freedesktop.Application.ActivateAction', 'bg-task-finished',
                     "[<['by-hand']>]", '{}'], env=senv, check=False, timeout=60)
            if r.returncode != 0:
                return 'and ActivateAction by hand failed too: %s' % r.stdout.strip()
            try:
                wait_for('a notification', lambda: [
                    e for e in session.portal_events() if e['method'] == 'AddNotification'], 30)
            except Failure:
                return 'and the app sent none when activated by hand either'
            return ('the app, D-Bus-activated by hand with ActivateAction, did notify: the '
                    'service never woke it')

        results.check('the service woke the app with bg-task-finished and its notification '
                      'reached the portal', app_woken_for_notification)

        # The app woken for a notification quits on its own a little later; the next run
        # must not find it on its way out.
        def app_gone():
            r = run(['gdbus', 'call', '--session', '--dest', 'org.freedesktop.DBus',
                     '--object-path', '/org/freedesktop/DBus', '--method',
                     'org.freedesktop.DBus.NameHasOwner', APP_ID], env=senv, check=False)
            return r.returncode == 0 and 'false' in r.stdout
        try:
            wait_for('the woken app to quit', app_gone, 30)
        except Failure as e:
            log('%s: the next run joins it' % e)

        # e. A reboot with uploads in flight.
        def reboot_resumes():
            write_files(folder, FILES_PHASE_E)
            gate.close()
            before = gate.accepted
            events = run_app(senv, folder, server, ['--quit-after-submit'])
            log('the app submitted and quit')
            submitted = {e.get('identifier') for e in events if e.get('event') == 'submitted'}
            if len(submitted) < len(FILES_PHASE_E):
                raise Failure('the app submitted %d new files of %d: %r'
                              % (len(submitted), len(FILES_PHASE_E), events))
            wait_for('an upload held at the gate', lambda: gate.accepted > before, 60)
            log('uploads held at the gate: %d' % (gate.accepted - before))
            asked = [e for e in session.portal_events()
                     if e['method'] == 'RequestBackground' and e['autostart']]
            command = asked[-1]['commandline'] if asked else AUTOSTART_COMMAND
            if not command:
                command = AUTOSTART_COMMAND
            kill_all(home)
            log('every process killed')
            gate.reset()
            left = processes_of(home)
            if left:
                raise Failure('processes survived the reboot: %r' % left)
            early = [p for p, _ in nginx.puts() if p.startswith('/dav/after-reboot-')]
            if early:
                raise Failure('uploads went through the closed gate: %r' % early)

            new = Session(tmp, env, 'session-2')
            sessions.append(new)
            gate.open()
            # As the session's autostart would run it: the command inside the app's sandbox.
            autostart = subprocess.Popen(['flatpak', 'run', '--command=' + command[0], APP_ID]
                                         + command[1:], env=new.env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=open(os.path.join(tmp, 'autostart.log'), 'w'))
            try:
                wait_for('the pending files on the server after the reboot',
                         lambda: server_has_each_once(nginx, folder, FILES_PHASE_E))
            except Failure as e:
                raise Failure('%s (%s ran: %s)' % (
                    e, ' '.join(command), open(os.path.join(tmp, 'autostart.log')).read()[-2000:]))
            check_bytes(nginx, folder, FILES_PHASE_E)
            check_bytes(nginx, folder, FILES_PHASE_B)
            services = sandboxed_transferd(home)
            if not services or any(app_id != APP_ID for _, app_id in services):
                raise Failure('the resumed bg-transferd is not in the sandbox of %s: %r'
                              % (APP_ID, services))
            autostart.kill()
            autostart.wait()
            return ('%d uploads in flight killed with the whole session; `%s` in the sandbox '
                    'sent each once' % (len(FILES_PHASE_E), ' '.join(command)))
        sessions = []
        if phase_b:
            results.check('a reboot: everything killed, the autostart command line run, the '
                          'pending uploads arrive once each', reboot_resumes)
        else:
            results.n += 1
            print('not ok %d - a reboot (not run: the first sync failed)' % results.n)
            results.failed.append('reboot')
        for s in sessions:
            s.stop()
    except Failure as e:
        results.n += 1
        print('not ok %d - setting up: %s' % (results.n, e), flush=True)
        results.failed.append('setup')
    finally:
        kill_all(home)
        if session:
            session.stop()
        if gate:
            gate.stop()
        if nginx:
            nginx.stop()
        if os.environ.get('BG_FLATPAK_KEEP'):
            log('kept %s' % tmp)
        else:
            subprocess.run(['chmod', '-R', 'u+rwX', tmp], stderr=subprocess.DEVNULL)
            shutil.rmtree(tmp, ignore_errors=True)

    if 'runtime' in figures:
        log('runtime %s//%s: %.0f MiB from %d Debian packages'
            % (RUNTIME, RUNTIME_BRANCH, figures['runtime'] / 2**20, figures['packages']))
    log('suite time %.0f s, %d of %d checks passed'
        % (time.monotonic() - T0, results.n - len(results.failed), results.n))
    return 1 if results.failed else 0


if __name__ == '__main__':
    sys.exit(main())
