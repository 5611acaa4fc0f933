#!/usr/bin/python3
# portal-mock.py: a stand-in for org.freedesktop.portal.Desktop on the flatpak suite's private
# session bus, outside the sandbox.  It answers what bg-glib, GIO and the app ask inside the
# sandbox and writes one JSON line per call it received to EVENTS_FILE:
#
#   Background.RequestBackground  recorded (autostart, commandline, reason); granted through a
#                                 Request object whose Response goes to the caller only, as the
#                                 real portal does (libportal adds no match rule for it)
#   Notification.AddNotification  recorded
#   ProxyResolver.Lookup          direct://, or GIO inside Flatpak would reach no server
#   NetworkMonitor                online, not metered, full connectivity
#   Settings.Read/ReadAll         an error: no settings here
#
# Usage: portal-mock.py EVENTS_FILE   (prints "ready" once it owns the name)
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import json
import sys

from gi.repository import Gio, GLib

XML = '''
<node>
  <interface name="org.freedesktop.portal.Background">
    <method name="RequestBackground">
      <arg type="s" direction="in"/><arg type="a{sv}" direction="in"/>
      <arg type="o" direction="out"/>
    </method>
    <method name="SetStatus"><arg type="a{sv}" direction="in"/></method>
    <property name="version" type="u" access="read"/>
  </interface>
  <interface name="org.freedesktop.portal.Notification">
    <method name="AddNotification">
      <arg type="s" direction="in"/><arg type="a{sv}" direction="in"/>
    </method>
    <method name="RemoveNotification"><arg type="s" direction="in"/></method>
    <signal name="ActionInvoked"><arg type="s"/><arg type="s"/><arg type="av"/></signal>
    <property name="version" type="u" access="read"/>
  </interface>
  <interface name="org.freedesktop.portal.ProxyResolver">
    <method name="Lookup"><arg type="s" direction="in"/><arg type="as" direction="out"/></method>
    <property name="version" type="u" access="read"/>
  </interface>
  <interface name="org.freedesktop.portal.NetworkMonitor">
    <method name="GetAvailable"><arg type="b" direction="out"/></method>
    <method name="GetMetered"><arg type="b" direction="out"/></method>
    <method name="GetConnectivity"><arg type="u" direction="out"/></method>
    <method name="GetStatus"><arg type="a{sv}" direction="out"/></method>
    <method name="CanReach">
      <arg type="s" direction="in"/><arg type="u" direction="in"/><arg type="b" direction="out"/>
    </method>
    <signal name="changed"/>
    <property name="available" type="b" access="read"/>
    <property name="metered" type="b" access="read"/>
    <property name="connectivity" type="u" access="read"/>
    <property name="version" type="u" access="read"/>
  </interface>
  <interface name="org.freedesktop.portal.Settings">
    <method name="Read">
      <arg type="s" direction="in"/><arg type="s" direction="in"/><arg type="v" direction="out"/>
    </method>
    <method name="ReadAll"><arg type="as" direction="in"/><arg type="a{sa{sv}}" direction="out"/></method>
    <signal name="SettingChanged"><arg type="s"/><arg type="s"/><arg type="v"/></signal>
    <property name="version" type="u" access="read"/>
  </interface>
</node>
'''

VERSIONS = {
    'org.freedesktop.portal.Background': 1,
    'org.freedesktop.portal.Notification': 1,
    'org.freedesktop.portal.ProxyResolver': 1,
    'org.freedesktop.portal.NetworkMonitor': 3,
    'org.freedesktop.portal.Settings': 1,
}
CONNECTIVITY_FULL = 4

events = open(sys.argv[1], 'a', encoding='utf-8')
loop = GLib.MainLoop()


def record(**fields):
    events.write(json.dumps(fields, default=repr) + '\n')
    events.flush()


def app_of(conn, sender):
    """The Flatpak app id behind @sender, from the .flatpak-info of its process's root (the
    xdg-dbus-proxy in front of a sandboxed app carries the app's), or 'host'."""
    try:
        pid = conn.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus',
                             'org.freedesktop.DBus', 'GetConnectionUnixProcessID',
                             GLib.Variant('(s)', (sender,)), GLib.VariantType('(u)'),
                             Gio.DBusCallFlags.NONE, 5000, None).unpack()[0]
        info = GLib.KeyFile()
        info.load_from_file('/proc/%d/root/.flatpak-info' % pid, GLib.KeyFileFlags.NONE)
        return info.get_string('Application', 'name')
    except GLib.Error:
        return 'host'


def request_background(conn, sender, params, invocation):
    _parent, options = params.unpack()
    token = options.get('handle_token', 'bg%d' % GLib.random_int())
    handle = '/org/freedesktop/portal/desktop/request/%s/%s' % (
        sender[1:].replace('.', '_'), token)
    autostart = bool(options.get('autostart', False))
    record(method='RequestBackground', app=app_of(conn, sender), sender=sender,
           autostart=autostart, commandline=list(options.get('commandline', [])),
           reason=options.get('reason', ''),
           dbus_activatable=bool(options.get('dbus-activatable', False)))
    invocation.return_value(GLib.Variant('(o)', (handle,)))

    def respond():
        # To the caller's unique name only: a broadcast does not pass xdg-dbus-proxy.
        conn.emit_signal(sender, handle, 'org.freedesktop.portal.Request', 'Response',
                         GLib.Variant('(ua{sv})', (0, {
                             'background': GLib.Variant('b', True),
                             'autostart': GLib.Variant('b', autostart)})))
        return GLib.SOURCE_REMOVE
    GLib.idle_add(respond)


def on_call(conn, sender, path, interface, method, params, invocation):
    if method == 'RequestBackground':
        request_background(conn, sender, params, invocation)
    elif method == 'SetStatus':
        record(method='SetStatus', app=app_of(conn, sender), options=params.unpack()[0])
        invocation.return_value(None)
    elif method == 'AddNotification':
        identifier, notification = params.unpack()
        record(method='AddNotification', app=app_of(conn, sender), id=identifier,
               title=notification.get('title', ''), body=notification.get('body', ''))
        invocation.return_value(None)
    elif method == 'RemoveNotification':
        invocation.return_value(None)
    elif method == 'Lookup':
        invocation.return_value(GLib.Variant('(as)', (['direct://'],)))
    elif method == 'GetAvailable':
        invocation.return_value(GLib.Variant('(b)', (True,)))
    elif method == 'GetMetered':
        invocation.return_value(GLib.Variant('(b)', (False,)))
    elif method == 'GetConnectivity':
        invocation.return_value(GLib.Variant('(u)', (CONNECTIVITY_FULL,)))
    elif method == 'GetStatus':
        invocation.return_value(GLib.Variant('(a{sv})', ({
            'available': GLib.Variant('b', True), 'metered': GLib.Variant('b', False),
            'connectivity': GLib.Variant('u', CONNECTIVITY_FULL)},)))
    elif method == 'CanReach':
        invocation.return_value(GLib.Variant('(b)', (True,)))
    else:
        invocation.return_dbus_error('org.freedesktop.portal.Error.NotFound',
                                     'The portal mock has no %s.%s' % (interface, method))


def get_property(conn, sender, path, interface, name):
    if name == 'version':
        return GLib.Variant('u', VERSIONS[interface])
    if interface == 'org.freedesktop.portal.NetworkMonitor':
        return {'available': GLib.Variant('b', True), 'metered': GLib.Variant('b', False),
                'connectivity': GLib.Variant('u', CONNECTIVITY_FULL)}.get(name)
    return None


def on_bus(conn, name):
    for interface in Gio.DBusNodeInfo.new_for_xml(XML).interfaces:
        conn.register_object('/org/freedesktop/portal/desktop', interface, on_call,
                             get_property, None)


def on_name(conn, name):
    print('ready', flush=True)


Gio.bus_own_name(Gio.BusType.SESSION, 'org.freedesktop.portal.Desktop',
                 Gio.BusNameOwnerFlags.NONE, on_bus, on_name, lambda *a: loop.quit())
loop.run()
