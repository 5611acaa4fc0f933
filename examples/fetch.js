// fetch.js: download a URL with bg-glib from GJS, using promises
//
// SPDX-License-Identifier: LGPL-2.1-or-later
//
// Usage: gjs -m fetch.js URL DEST [SESSION]
//
// Kill it and run it again with the same arguments: the identifier is the same, so the download
// carries on from its last checkpoint. Exit status: 0 success, 2 rejected, 3 retry, 4 failed,
// 1 when the call itself was wrong.

import Bg from 'gi://Bg?version=1';
import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import Soup from 'gi://Soup?version=3.0';
import System from 'system';

Gio._promisify(Bg.Downloader.prototype, 'restore_async', 'restore_finish');
Gio._promisify(Bg.Downloader.prototype, 'download_async', 'download_finish');

// The name and exit status of each kind of outcome.
const OUTCOMES = {
    [Bg.ResponseKind.SUCCESS]: ['success', 0],
    [Bg.ResponseKind.REJECTED]: ['rejected', 2],
    [Bg.ResponseKind.RETRY]: ['retry', 3],
    [Bg.ResponseKind.FAILED]: ['failed', 4],
};

async function fetch(url, path, session) {
    const downloader = Bg.Downloader.new(session, null);

    // Unfinished downloads of earlier runs carry on from here.
    await downloader.restore_async(null);

    const msg = Soup.Message.new('GET', url);
    if (!msg)
        throw new Error(`Not a URL: ${url}`);
    const dest = Gio.File.new_for_commandline_arg(path);
    // The same in every run for the same work, so a rerun joins the task instead of restarting.
    const identifier = `download:${dest.get_path()}`;
    const response = await downloader.download_async(msg, dest, identifier, null, null);

    const [name, code] = OUTCOMES[response.get_kind()];
    const error = response.get_error();
    print(`${name}: HTTP ${response.get_status()}${error ? `, ${error.message}` : ''}`);
    return code;
}

const [url, path, session = 'org.example.Fetch'] = ARGV;
if (!url || !path) {
    printerr('Usage: gjs -m fetch.js URL DEST [SESSION]');
    System.exit(64);
}

const loop = new GLib.MainLoop(null, false);
let status = 1;
fetch(url, path, session).then(code => {
    status = code;
}).catch(e => {
    printerr(`Cannot download: ${e.message}`);
}).finally(() => loop.quit());
loop.run();
System.exit(status);
