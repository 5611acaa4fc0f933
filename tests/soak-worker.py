#!/usr/bin/python3
# The app in the crash soak: it restores, (re)submits every task of a manifest that has no result
# yet, writes each result to a log as it arrives, and collects it. It is killed at random moments.
#
# A kill after a result is logged but before it is forgotten leaves the result uncollected, so
# the next run hears it again, as it must.  The app knows it has that result: it forgets it
# without logging it twice.  Each forget that returned is logged too (LOG.forgot), so a result
# heard again after it was forgotten is logged again, and the soak reports it.
#
# Usage: soak-worker.py DATABASE MANIFEST LOG

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gi_helpers import Bg, GLib, Gio, Soup  # noqa: E402

database, manifest_path, log_path = sys.argv[1:4]
with open(manifest_path) as f:
    manifest = json.load(f)


def read_ids(path, field):
    if not os.path.exists(path):
        return set()
    with open(path) as f:
        return {line.split()[field] for line in f if line.strip()}


def append(f, line):
    f.write(line)
    f.flush()
    os.fsync(f.fileno())


forgot_path = log_path + '.forgot'
log = open(log_path, 'a')
forgot_log = open(forgot_path, 'a')
done = read_ids(log_path, 1)
forgotten = read_ids(forgot_path, 0)
loop = GLib.MainLoop()
restores_left = 2

downloader = Bg.Downloader(session_id='soak', database_path=database, max_concurrent=4)
downloader.init(None)
uploader = Bg.Uploader(session_id='soak', database_path=database, max_concurrent=2)
uploader.init(None)


def maybe_quit():
    if restores_left == 0 and all(t['id'] in done for t in manifest):
        loop.quit()


def on_finished(front, task, response):
    ident = task.get_identifier()
    # Written and flushed before the result is collected.  Heard again before its forget was
    # logged: the kill came in between, and the app already has it.
    if ident not in done or ident in forgotten:
        append(log, '%s %s %s %d\n' % (task.get_kind().value_nick, ident,
                                       response.get_kind().value_nick, response.get_status()))
    done.add(ident)
    try:
        front.forget(ident)
    except GLib.Error as e:
        print('forget %s: %s' % (ident, e.message), file=sys.stderr)
    else:
        append(forgot_log, '%s\n' % ident)
        forgotten.add(ident)
    maybe_quit()


def restored(front, result):
    global restores_left
    try:
        front.restore_finish(result)
    except GLib.Error:
        pass
    restores_left -= 1
    maybe_quit()


def ignore(front, result):
    try:
        if isinstance(front, Bg.Downloader):
            front.download_finish(result)
        else:
            front.upload_finish(result)
    except GLib.Error:
        pass


downloader.connect('task-finished', on_finished)
uploader.connect('task-finished', on_finished)
downloader.restore_async(None, restored)
uploader.restore_async(None, restored)

for t in manifest:
    if t['id'] in done:
        continue
    msg = Soup.Message.new(t['method'], t['url'])
    file = Gio.File.new_for_path(t['file'])
    if t['kind'] == 'download':
        downloader.download_async(msg, file, t['id'], None, None, ignore)
    else:
        uploader.upload_async(msg, file, t['id'], None, None, ignore)

# Until both restores are in (they may hear results that an earlier run logged but did not
# collect) and every task has its result.
loop.run()
print('all done', flush=True)
