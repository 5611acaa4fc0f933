#!/usr/bin/python3
# An app of the service-mode suite (tests/test-service-client.py), in a process of its own so
# that the suite can kill it.  It speaks one line per event on stdout.
#
#   service-app.py download DB URL DEST ID   starts a download; "progress N" as bytes move
#   service-app.py restore DB                restores; "finished ID STATUS" for each result
#                                            announced, each then forgotten; "restored N"
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gi_helpers import Bg, GLib, Gio, Soup, mode_args, run_until  # noqa: E402


def say(line):
    print(line, flush=True)


def main():
    command, db = sys.argv[1], sys.argv[2]
    downloader = Bg.Downloader(**mode_args(), session_id='service-app', database_path=db)
    downloader.init(None)
    if downloader.props.mode != Bg.Mode.SERVICE:
        say('error not in service mode')
        return 1

    if command == 'download':
        url, dest, identifier = sys.argv[3:6]
        msg = Soup.Message.new('GET', url)
        downloader.download_async(msg, Gio.File.new_for_path(dest), identifier, None, None,
                                  lambda d, res: say('done %d' % d.download_finish(res)
                                                     .get_status()))
        task = downloader.lookup_task(identifier)
        task.connect('notify::bytes-transferred',
                     lambda t, _: say('progress %d' % t.props.bytes_transferred))
        GLib.MainLoop().run()
        return 0

    finished = []
    downloader.connect('task-finished', lambda d, task, response: finished.append(
        (task.get_identifier(), response.get_status())))
    restored = []
    downloader.restore_async(None, lambda d, res: restored.append(d.restore_finish(res)))
    run_until(lambda: restored, 60)
    for identifier, status in finished:
        say('finished %s %d' % (identifier, status))
        downloader.forget(identifier)
    say('restored %d' % len(finished))
    downloader.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
