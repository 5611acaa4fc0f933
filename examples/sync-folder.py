#!/usr/bin/python3
# sync-folder.py: upload every file of a folder, once, even if the program is killed and rerun
#
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Usage: sync-folder.py FOLDER URL_PREFIX [--session NAME] [--database PATH] [--max-concurrent N]
#
# Each regular file of FOLDER is sent with PUT to URL_PREFIX followed by the URL-quoted file name.
# When URL_PREFIX has a query string, it is kept after the file name:
#   https://example.org/drop/?token=abc  ->  https://example.org/drop/photo%201.jpg?token=abc
# The query string is not part of what identifies an upload, so a token in it may change from
# one run to the next without anything being sent twice.
#
# It is safe to kill at any moment and run again:
#   - each version of each file has a stable identifier, so a rerun joins the upload an earlier
#     run left unfinished (restored from the session's database) instead of starting another;
#   - results that arrive through "task-finished" are written to a state file before the task is
#     forgotten, and files recorded there as uploaded are never sent again;
#   - the state file lives beside the session's database, in the user's data folder.
#
# Prints one line per file and exits with 0 when every file is uploaded, 1 otherwise.

import argparse
import hashlib
import json
import os
import sys
import urllib.parse

import gi

gi.require_version('Bg', '1')
gi.require_version('Soup', '3.0')
from gi.repository import Bg, Gio, GLib, Soup  # noqa: E402


def url_for(prefix, name):
    """The URL of @name, and the same without its query string."""
    base, mark, query = prefix.partition('?')
    where = base + urllib.parse.quote(os.fsencode(name), safe='')
    return where + mark + query, where


def identifier_for(path, st, where):
    """One version of one file sent to one place: a changed file, or another place, is new work.
    The query string is left out, so that a token in it may change between runs."""
    key = b'\0'.join([os.fsencode(path), str(st.st_size).encode(), str(st.st_mtime_ns).encode(),
                      where.encode()])
    return 'sync:' + hashlib.sha256(key).hexdigest()


def shown(name):
    return os.fsencode(name).decode('utf-8', 'replace')


class State:
    """The identifiers whose upload is known to have succeeded, kept in a small JSON file."""

    def __init__(self, path):
        self.path = path
        try:
            with open(path, encoding='utf-8') as f:
                self.uploaded = json.load(f).get('uploaded', {})
        except FileNotFoundError:
            self.uploaded = {}

    def add(self, identifier, path, status):
        if identifier in self.uploaded:
            return
        self.uploaded[identifier] = {'path': os.fsencode(path).decode('utf-8', 'replace'),
                                     'status': status}
        # Write, flush to disk, then rename: the file is always either the old or the new list.
        tmp = self.path + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump({'version': 1, 'uploaded': self.uploaded}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(os.path.dirname(self.path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Sync:
    def __init__(self, args):
        self.folder = os.path.abspath(args.folder)
        self.prefix = args.url_prefix
        self.loop = GLib.MainLoop()
        self.pending = 0
        self.failures = 0

        props = {'session_id': args.session}
        if args.database:
            props['database_path'] = os.path.abspath(args.database)
        self.uploader = Bg.Uploader(**props)
        self.uploader.init(None)            # raises GLib.Error, e.g. BUSY when a run is going on
        self.uploader.props.max_concurrent = args.max_concurrent

        database = self.uploader.get_database_path()
        self.state = State(os.path.join(os.path.dirname(database),
                                        args.session + '.sync-folder.json'))

        # Connected before restoring: results that earlier runs never collected are announced
        # again during the restore.
        self.uploader.connect('task-finished', self.on_task_finished)

    def run(self):
        self.uploader.restore_async(None, self.on_restored)
        self.loop.run()
        return 1 if self.failures else 0

    def on_task_finished(self, uploader, task, response):
        # Emitted for every result, from this run or an earlier one, and possibly more than
        # once for the same result: record it (idempotently) first, then forget it.
        if response.get_kind() == Bg.ResponseKind.SUCCESS:
            self.state.add(task.get_identifier(), task.get_file().get_path(),
                           response.get_status())
        try:
            uploader.forget(task.get_identifier())
        except GLib.Error:
            pass                            # already collected by an upload_finish

    def on_restored(self, uploader, result):
        try:
            uploader.restore_finish(result)
        except GLib.Error as e:
            print('cannot restore earlier uploads: %s' % e.message, file=sys.stderr)

        wanted = {}
        for entry in sorted(os.scandir(self.folder), key=lambda e: e.name):
            if entry.is_file(follow_symlinks=False):
                url, where = url_for(self.prefix, entry.name)
                identifier = identifier_for(entry.path, entry.stat(follow_symlinks=False), where)
                wanted[identifier] = (entry, url)

        # An unfinished upload of a file of this folder that has since changed or gone would
        # send contents nobody asked for any more: stop it.
        for task in list(uploader.get_tasks()):
            path = task.get_file().get_path()
            if (task.get_identifier() not in wanted and os.path.dirname(path) == self.folder
                    and task.get_state() != Bg.TaskState.FINISHED):
                try:
                    uploader.cancel(task.get_identifier())
                except GLib.Error as e:
                    print('cannot cancel an old upload of %s: %s' % (shown(path), e.message),
                          file=sys.stderr)

        for identifier, (entry, url) in wanted.items():
            if identifier in self.state.uploaded:
                print('skipped %s: uploaded before' % shown(entry.name))
                continue
            msg = Soup.Message.new('PUT', url)
            if msg is None:
                print('FAILED %s: not a valid URL: %s' % (shown(entry.name), url))
                self.failures += 1
                continue
            self.pending += 1
            uploader.upload_async(msg, Gio.File.new_for_path(entry.path), identifier, None,
                                  None,
                                  self.on_uploaded, entry.name)

        if self.pending == 0:
            self.loop.quit()

    def on_uploaded(self, uploader, result, name):
        try:
            response = uploader.upload_finish(result)
        except GLib.Error as e:
            print('FAILED %s: %s' % (shown(name), e.message))
            self.failures += 1
        else:
            kind = response.get_kind()
            status = response.get_status()
            if kind == Bg.ResponseKind.SUCCESS:
                print('uploaded %s: HTTP %d' % (shown(name), status))
            else:
                error = response.get_error()
                detail = error.message if error else '%d %s' % (status, response.get_reason())
                print('%s %s: %s' % (kind.value_nick.upper(), shown(name), detail))
                self.failures += 1

        self.pending -= 1
        if self.pending == 0:
            self.loop.quit()


def main():
    parser = argparse.ArgumentParser(description='Upload every file of FOLDER to URL_PREFIX.')
    parser.add_argument('folder', metavar='FOLDER')
    parser.add_argument('url_prefix', metavar='URL_PREFIX')
    parser.add_argument('--session', default='org.example.SyncFolder',
                        help='the bg-glib session (default: %(default)s)')
    parser.add_argument('--database', metavar='PATH', help='where the task database lives')
    parser.add_argument('--max-concurrent', type=int, default=3, metavar='N',
                        help='how many uploads run at once (default: %(default)s)')
    args = parser.parse_args()

    if not os.path.isdir(args.folder):
        parser.error('%s is not a folder' % args.folder)

    try:
        sync = Sync(args)
    except GLib.Error as e:
        print('cannot open the session: %s' % e.message, file=sys.stderr)
        return 1
    return sync.run()


if __name__ == '__main__':
    sys.exit(main())
