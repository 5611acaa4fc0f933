#!/usr/bin/python3
# downloads-window.py: a "Downloads" window: a Gtk.ListView bound to a downloader's tasks
#
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Usage: downloads-window.py [--session NAME] [--database PATH] [--max-concurrent N]
#                            [--screenshot PATH] [--quit-when-done] FOLDER URL...
#
# Downloads each URL into FOLDER, named after the last part of its path, and shows every task of
# the session in a window: its file name, a progress bar, its state (or why it waits), its rate
# and the time it still needs.  Tasks that an earlier run left unfinished are restored and shown
# too, and a URL given again joins its task instead of starting over.
#
# The list is the downloader's own Gio.ListModel, downloader.get_tasks(), so rows come and go
# as tasks do; each row binds to the Bg.Task properties, which are notified about ten times a
# second at most.
#
# --screenshot PATH writes a picture of the X display to PATH (with ImageMagick's `import`)
# once every running download shows a rate; --quit-when-done quits once every URL has a result
# (and the screenshot is written).  One line per URL is printed, and the exit status is 0 when
# every download succeeded, 1 otherwise.

import argparse
import os
import sys
import urllib.parse

import gi

gi.require_version('Bg', '1')
gi.require_version('Gtk', '4.0')
gi.require_version('Pango', '1.0')
gi.require_version('Soup', '3.0')
from gi.repository import Bg, Gio, GLib, GObject, Gtk, Pango, Soup  # noqa: E402


WAIT_REASONS = {
    Bg.WaitReason.RETRY: None,          # said with the time of the next attempt, see below
    Bg.WaitReason.NETWORK: 'Waiting for the network',
    Bg.WaitReason.METERED: 'Waiting for a network that is not metered',
    Bg.WaitReason.POWER_SAVER: 'Waiting until power saver is off',
    Bg.WaitReason.SCHEDULED: 'Scheduled for later',
    Bg.WaitReason.CREDENTIALS: 'Waiting for credentials',
}
if hasattr(Bg.WaitReason, 'PAUSED'):
    WAIT_REASONS[Bg.WaitReason.PAUSED] = 'Paused'

RESPONSE_KINDS = {
    Bg.ResponseKind.SUCCESS: 'Done',
    Bg.ResponseKind.RETRY: 'Failed; worth trying later',
    Bg.ResponseKind.REJECTED: 'Refused by the server',
    Bg.ResponseKind.FAILED: 'Failed',
}


def format_duration(seconds):
    if seconds < 60:
        return '%d s' % seconds
    if seconds < 3600:
        return '%d:%02d' % (seconds // 60, seconds % 60)
    return '%d:%02d:%02d' % (seconds // 3600, seconds // 60 % 60, seconds % 60)


def describe_state(task):
    """What the task is doing, or why it is not."""
    state = task.props.state
    if state == Bg.TaskState.QUEUED:
        return 'Queued'
    if state == Bg.TaskState.RUNNING:
        return 'Downloading'
    if state == Bg.TaskState.WAITING:
        reason = task.props.wait_reason
        if reason == Bg.WaitReason.RETRY:
            at = task.dup_next_attempt_at()
            if at is not None:
                # Rounded up: "in 0 s" would be a lie until the attempt starts.
                left = -(-at.difference(GLib.DateTime.new_now_utc()) // GLib.USEC_PER_SEC)
                return 'Trying again in %s' % format_duration(max(left, 0))
            return 'Trying again soon'
        return WAIT_REASONS.get(reason, 'Waiting')
    if state == Bg.TaskState.FINISHED:
        response = task.get_response()
        if response is None:
            return 'Finished'
        text = RESPONSE_KINDS.get(response.get_kind(), 'Finished')
        return '%s (HTTP %d)' % (text, response.get_status()) if response.get_status() else text
    return 'Cancelled'


def describe_progress(task):
    """"1.2 MB of 3.0 MB · 300.0 kB/s · 4 s left"."""
    done, total = task.props.bytes_transferred, task.props.bytes_total
    if total >= 0:
        parts = ['%s of %s' % (GLib.format_size(done), GLib.format_size(total))]
    else:
        parts = [GLib.format_size(done)]
    if task.props.state == Bg.TaskState.RUNNING:
        rate = task.props.bytes_per_second
        if rate > 0:
            parts.append('%s/s' % GLib.format_size(int(rate)))
        eta = task.props.eta
        if eta > 0:
            parts.append('%s left' % format_duration(eta))
    return ' \u00b7 '.join(parts)


class TaskRow(Gtk.Box):
    """One row of the list: made once by the factory's "setup", then bound to one task after
    another as the list view recycles it."""

    PROPERTIES = ('state', 'wait-reason', 'bytes-transferred', 'bytes-total', 'fraction',
                  'bytes-per-second', 'eta', 'next-attempt-at', 'response')

    def __init__(self):
        super().__init__(orientation=Gtk.Orientation.HORIZONTAL, spacing=12,
                         margin_top=8, margin_bottom=8, margin_start=12, margin_end=12)
        column = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4, hexpand=True)
        top = Gtk.Box(spacing=12)
        self.name = Gtk.Label(xalign=0, hexpand=True, ellipsize=Pango.EllipsizeMode.END)
        self.name.add_css_class('heading')
        self.state = Gtk.Label(xalign=1)
        self.state.add_css_class('dim-label')
        top.append(self.name)
        top.append(self.state)
        self.bar = Gtk.ProgressBar(hexpand=True)
        self.detail = Gtk.Label(xalign=0)
        self.detail.add_css_class('caption')
        column.append(top)
        column.append(self.bar)
        column.append(self.detail)
        self.append(column)

        # Room for the row's buttons (pause, resume, cancel), beside the text and the bar:
        # append them here and show the box.  They come with the library's pause support;
        # until then the box stays hidden.
        self.actions = Gtk.Box(spacing=6, valign=Gtk.Align.CENTER, visible=False)
        self.append(self.actions)

        self.task = None
        self.binding = None
        self.handlers = []

    def bind(self, task):
        self.task = task
        file = task.get_file()
        self.name.set_label(file.get_basename() if file else task.get_identifier())
        # The bar follows the fraction; while the size is unknown (-1) it pulses instead.
        self.binding = task.bind_property('fraction', self.bar, 'fraction',
                                          GObject.BindingFlags.SYNC_CREATE,
                                          lambda binding, fraction: max(fraction, 0.0))
        self.handlers = [task.connect('notify::' + name, self.on_notify)
                         for name in self.PROPERTIES]
        self.update()

    def unbind(self):
        if self.task is None:
            return
        for handler in self.handlers:
            self.task.disconnect(handler)
        self.binding.unbind()
        self.task, self.binding, self.handlers = None, None, []

    def on_notify(self, task, pspec):
        if pspec.name == 'bytes-transferred' and task.props.fraction < 0:
            self.bar.pulse()
        self.update()

    def update(self):
        task = self.task
        if task is None:
            return
        self.state.set_label(describe_state(task))
        self.detail.set_label(describe_progress(task))


class DownloadsWindow(Gtk.ApplicationWindow):
    def __init__(self, app, tasks):
        super().__init__(application=app, title='Downloads', default_width=720,
                         default_height=400)
        header = Gtk.HeaderBar()
        self.set_titlebar(header)

        factory = Gtk.SignalListItemFactory()
        factory.connect('setup', self.on_setup)
        factory.connect('bind', self.on_bind)
        factory.connect('unbind', self.on_unbind)
        self.rows = set()

        self.list_view = Gtk.ListView(model=Gtk.NoSelection(model=tasks), factory=factory,
                                      show_separators=True)
        scrolled = Gtk.ScrolledWindow(vexpand=True, child=self.list_view)
        self.summary = Gtk.Label(xalign=0, margin_top=6, margin_bottom=6, margin_start=12,
                                 margin_end=12)
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
        box.append(scrolled)
        box.append(Gtk.Separator())
        box.append(self.summary)
        self.set_child(box)

        # "Trying again in 5 s" counts down by itself.
        self.clock = GLib.timeout_add_seconds(1, self.on_clock)

    def on_setup(self, factory, list_item):
        list_item.set_child(TaskRow())

    def on_bind(self, factory, list_item):
        row = list_item.get_child()
        row.bind(list_item.get_item())
        self.rows.add(row)

    def on_unbind(self, factory, list_item):
        row = list_item.get_child()
        row.unbind()
        self.rows.discard(row)

    def on_clock(self):
        for row in self.rows:
            row.update()
        return GLib.SOURCE_CONTINUE

    def do_close_request(self):
        GLib.source_remove(self.clock)
        return False


class DownloadsApp(Gtk.Application):
    def __init__(self, args):
        super().__init__(application_id='org.example.BgDownloads',
                         flags=Gio.ApplicationFlags.NON_UNIQUE)
        self.args = args
        self.window = None
        self.pending = 0
        self.failures = 0
        # The screenshot: 'none' (not asked for), 'wanted', 'taking' or 'taken'.
        self.shot = 'wanted' if args.screenshot else 'none'

        props = {'session_id': args.session}
        if args.database:
            props['database_path'] = os.path.abspath(args.database)
        self.downloader = Bg.Downloader(**props)
        self.downloader.init(None)          # raises GLib.Error, e.g. BUSY if another run is on
        self.downloader.props.max_concurrent = args.max_concurrent
        self.tasks = self.downloader.get_tasks()

    def do_activate(self):
        if self.window is None:
            self.window = DownloadsWindow(self, self.tasks)
            self.tasks.connect('items-changed', lambda *args: self.update_summary())
            # Restore first, so that tasks an earlier run left unfinished are listed and a URL
            # given again joins its task.
            self.downloader.restore_async(None, self.on_restored)
            GLib.timeout_add(250, self.on_tick)
        self.window.present()

    def on_restored(self, downloader, result):
        try:
            downloader.restore_finish(result)
        except GLib.Error as e:
            print('restoring the earlier tasks failed: %s' % e.message, file=sys.stderr)
        folder = os.path.abspath(self.args.folder)
        names = set()
        for url in self.args.urls:
            name = os.path.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
            name = name or 'download'
            base, n = name, 1
            while name in names:
                n += 1
                name = '%s (%d)' % (base, n)
            names.add(name)
            self.start(url, os.path.join(folder, name))
        self.update_summary()
        self.maybe_done()

    def start(self, url, path):
        msg = Soup.Message.new('GET', url)
        if msg is None:
            print('%s: not a URL' % url)
            self.failures += 1
            return
        self.pending += 1
        self.downloader.download_async(msg, Gio.File.new_for_path(path),
                                       'downloads-window:' + path, None, None,
                                       self.on_downloaded, os.path.basename(path))

    def on_downloaded(self, downloader, result, name):
        self.pending -= 1
        try:
            response = downloader.download_finish(result)
            kind = response.get_kind()
            if kind == Bg.ResponseKind.SUCCESS:
                print('%s: success, HTTP %d' % (name, response.get_status()))
            else:
                self.failures += 1
                error = response.get_error()
                print('%s: %s, HTTP %d%s' % (name, kind.value_nick, response.get_status(),
                                             ': ' + error.message if error else ''))
        except GLib.Error as e:
            self.failures += 1
            print('%s: %s' % (name, e.message))
        sys.stdout.flush()
        self.update_summary()
        self.maybe_done()

    def update_summary(self):
        tasks = list(self.tasks)
        running = sum(1 for task in tasks if task.props.state == Bg.TaskState.RUNNING)
        self.window.summary.set_label('%d in the list, %d running, %d of this run to finish'
                                      % (len(tasks), running, self.pending))

    def on_tick(self):
        self.update_summary()
        # The picture is worth taking once every running download shows its rate.
        if self.shot == 'wanted':
            running = [task for task in self.tasks if task.props.state == Bg.TaskState.RUNNING]
            if running and all(task.props.bytes_per_second > 0 for task in running):
                self.take_screenshot()
        return GLib.SOURCE_CONTINUE

    # --- the screenshot --------------------------------------------------------------------

    def take_screenshot(self):
        # Two frames later the rows as they are now are on the screen.
        frames = [0]

        def on_frame(widget, clock):
            frames[0] += 1
            if frames[0] < 3:
                return GLib.SOURCE_CONTINUE
            self.shoot()
            return GLib.SOURCE_REMOVE

        self.shot = 'taking'
        self.window.add_tick_callback(on_frame)

    def shoot(self):
        # PyGObject cannot render a GTK 4 window into an image by itself, so the picture is of
        # the X display, taken by ImageMagick.
        path = os.path.abspath(self.args.screenshot)

        def on_exit(proc, result):
            try:
                proc.wait_check_finish(result)
                print('screenshot: %s' % path)
            except GLib.Error as e:
                print('screenshot: import failed: %s' % e.message, file=sys.stderr)
                self.failures += 1
            sys.stdout.flush()
            self.shot = 'taken'
            self.maybe_done()

        try:
            proc = Gio.Subprocess.new(['import', '-window', 'root', path],
                                      Gio.SubprocessFlags.NONE)
            proc.wait_check_async(None, on_exit)
        except GLib.Error as e:
            print('screenshot: %s' % e.message, file=sys.stderr)
            self.failures += 1
            self.shot = 'taken'
            self.maybe_done()

    def maybe_done(self):
        if not self.args.quit_when_done or self.pending > 0:
            return
        if self.shot == 'wanted':
            # Everything finished before a rate showed: a picture of the end, then.
            self.take_screenshot()
        elif self.shot != 'taking':
            self.quit()


def main():
    parser = argparse.ArgumentParser(description='Download URLs into a folder, in a window.')
    parser.add_argument('folder')
    parser.add_argument('urls', metavar='url', nargs='+')
    parser.add_argument('--session', default='downloads-window')
    parser.add_argument('--database')
    parser.add_argument('--max-concurrent', type=int, default=3)
    parser.add_argument('--screenshot', metavar='PATH')
    parser.add_argument('--quit-when-done', action='store_true')
    args = parser.parse_args()

    try:
        app = DownloadsApp(args)
    except GLib.Error as e:
        print('cannot open the downloads: %s' % e.message, file=sys.stderr)
        return 1
    status = app.run([sys.argv[0]])
    return status or (1 if app.failures else 0)


if __name__ == '__main__':
    sys.exit(main())
