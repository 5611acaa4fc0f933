#!/usr/bin/python3
# The app in the crash soak: it restores, (re)submits every task of a manifest that has no result
# yet, writes each result to a log as it arrives, and collects it. It is killed at random moments.
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


def delivered():
    if not os.path.exists(log_path):
        return set()
    with open(log_path) as f:
        return {line.split(' ', 2)[1] for line in f if line.strip()}


log = open(log_path, 'a')
done = delivered()
loop = GLib.MainLoop()

downloader = Bg.Downloader(session_id='soak', database_path=database, max_concurrent=4)
downloader.init(None)
uploader = Bg.Uploader(session_id='soak', database_path=database, max_concurrent=2)
uploader.init(None)


def on_finished(front, task, response):
    ident = task.get_identifier()
    # Written and flushed before the result is collected: a kill in between shows up as a
    # second delivery, which the soak would report.
    log.write('%s %s %s %d\n' % (task.get_kind().value_nick, ident,
                                 response.get_kind().value_nick, response.get_status()))
    log.flush()
    os.fsync(log.fileno())
    done.add(ident)
    front.forget(ident)
    if all(t['id'] in done for t in manifest):
        loop.quit()


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
downloader.restore_async(None, None)
uploader.restore_async(None, None)

for t in manifest:
    if t['id'] in done:
        continue
    msg = Soup.Message.new(t['method'], t['url'])
    file = Gio.File.new_for_path(t['file'])
    if t['kind'] == 'download':
        downloader.download_async(msg, file, t['id'], None, None, ignore)
    else:
        uploader.upload_async(msg, file, t['id'], None, None, ignore)

if not all(t['id'] in done for t in manifest):
    loop.run()
print('all done', flush=True)
