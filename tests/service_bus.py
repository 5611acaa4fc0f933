#!/usr/bin/python3
# A private session bus on which bg-transferd can be activated, for the service-mode runs of the
# test suites.  Nothing here touches the developer's own session bus.
#
# As a program, it runs a command on such a bus, with BG_TEST_MODE=service and BG_TEST_APP_ID
# set, so that the suites' front ends use the service:
#
#   service_bus.py --transferd build/tools/bg-transferd -- build/tests/test-downloader --tap
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

DEFAULT_APP_ID = 'org.bgglib.Test'


class PrivateBus:
    """A dbus-daemon of its own, with APP_ID.Transfers activatable from bg-transferd."""

    def __init__(self, transferd, app_id=DEFAULT_APP_ID, idle_timeout=None, extra_env=None):
        self.transferd = os.path.abspath(transferd)
        self.app_id = app_id
        self.idle_timeout = idle_timeout
        self.extra_env = extra_env or {}
        self.tmp = None
        self.daemon = None
        self.address = None

    def service_file(self):
        return os.path.join(self.tmp, 'services', self.app_id + '.Transfers.service')

    def write_service_file(self, exec_line=None):
        """(Re)writes the activation file; a test may point it at a wrapper."""
        if exec_line is None:
            exec_line = '%s --app-id %s' % (self.transferd, self.app_id)
            if self.idle_timeout is not None:
                exec_line += ' --idle-timeout %d' % self.idle_timeout
        with open(self.service_file(), 'w') as f:
            f.write('[D-BUS Service]\nName=%s.Transfers\nExec=%s\n' % (self.app_id, exec_line))

    def __enter__(self):
        if shutil.which('dbus-daemon') is None:
            raise FileNotFoundError('dbus-daemon')
        self.tmp = tempfile.mkdtemp(prefix='bg-bus-')
        os.mkdir(os.path.join(self.tmp, 'services'))
        self.write_service_file()
        config = os.path.join(self.tmp, 'session.conf')
        # Activated services inherit the daemon's environment, set here.
        with open(config, 'w') as f:
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
''' % (self.tmp, os.path.join(self.tmp, 'services')))
        env = dict(os.environ)
        env.update(self.extra_env)
        env.pop('DBUS_SESSION_BUS_ADDRESS', None)
        self.daemon = subprocess.Popen(
            ['dbus-daemon', '--config-file', config, '--nofork', '--print-address=1'],
            stdout=subprocess.PIPE, env=env, start_new_session=True)
        self.address = self.daemon.stdout.readline().decode().strip()
        if not self.address:
            raise RuntimeError('dbus-daemon gave no address')
        return self

    def env(self):
        env = dict(os.environ)
        env['DBUS_SESSION_BUS_ADDRESS'] = self.address
        env['BG_TEST_MODE'] = 'service'
        env['BG_TEST_APP_ID'] = self.app_id
        return env

    def service_pids(self):
        """The pids of the bg-transferd processes serving this bus's app id."""
        pids = []
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            try:
                with open('/proc/%s/cmdline' % entry, 'rb') as f:
                    argv = f.read().split(b'\0')
                with open('/proc/%s/environ' % entry, 'rb') as f:
                    environ = f.read().split(b'\0')
            except OSError:
                continue
            if (argv and os.path.basename(argv[0].decode(errors='replace')) == 'bg-transferd'
                    and self.app_id.encode() in argv
                    and ('DBUS_SESSION_BUS_ADDRESS=' + self.address).encode() in environ):
                pids.append(int(entry))
        return pids

    def __exit__(self, *exc):
        # The service exits when its bus goes away; anything left is killed.
        pids = self.service_pids() if self.daemon else []
        if self.daemon:
            self.daemon.terminate()
            try:
                self.daemon.wait(10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
            self.daemon.stdout.close()
        deadline = time.monotonic() + 10
        for pid in pids:
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--transferd', required=True)
    parser.add_argument('--app-id', default=DEFAULT_APP_ID)
    parser.add_argument('command', nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ['--'] else args.command
    if shutil.which('dbus-daemon') is None:
        # TAP and meson both read 77 as "skipped".
        print('1..0 # SKIP dbus-daemon is not installed')
        return 77
    with PrivateBus(args.transferd, args.app_id) as bus:
        return subprocess.call(command, env=bus.env())


if __name__ == '__main__':
    sys.exit(main())
