// The library through GObject Introspection, from GJS: the types, then a real download with
// promises against the fault server.

import Bg from 'gi://Bg?version=1';
import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import Soup from 'gi://Soup?version=3.0';
import System from 'system';

Gio._promisify(Bg.Downloader.prototype, 'download_async', 'download_finish');
Gio._promisify(Bg.Uploader.prototype, 'upload_async', 'upload_finish');

// The mode and app id every queue gets: the service when tests/service_bus.py runs the suite.
const modeProps = GLib.getenv('BG_TEST_MODE') === 'service'
    ? {mode: Bg.Mode.SERVICE, app_id: GLib.getenv('BG_TEST_APP_ID') ?? 'org.bgglib.Test'}
    : {mode: Bg.Mode.IN_PROCESS};

let failures = 0;
let count = 0;

function check(cond, what) {
    count++;
    if (cond) {
        print(`ok ${count} - ${what}`);
    } else {
        print(`not ok ${count} - ${what}`);
        failures++;
    }
}

function startServer(root) {
    const here = GLib.path_get_dirname(System.programPath);
    const proc = Gio.Subprocess.new(
        ['/usr/bin/python3', GLib.build_filenamev([here, 'fault-server.py']), '--root', root],
        Gio.SubprocessFlags.STDIN_PIPE | Gio.SubprocessFlags.STDOUT_PIPE);
    const out = new Gio.DataInputStream({base_stream: proc.get_stdout_pipe()});
    const [line] = out.read_line_utf8(null);
    const port = parseInt(line.split(' ')[1]);
    return {proc, base: `http://127.0.0.1:${port}`};
}

function checksum(path) {
    const [, contents] = GLib.file_get_contents(path);
    return GLib.compute_checksum_for_bytes(GLib.ChecksumType.SHA256, contents);
}

async function main() {
    check(Bg.ResponseKind.RETRY === 1, 'Bg.ResponseKind.RETRY');
    check(Bg.response_kind_for_status(503) === Bg.ResponseKind.RETRY, '503 is RETRY');
    check(typeof Bg.Response === 'function', 'Bg.Response is a class');
    check(Bg.Error.INVALID_ARGUMENT === 0, 'Bg.Error');

    let threw = false;
    try {
        Bg.Downloader.new('a/b', null);
    } catch (e) {
        threw = e.matches(Bg.error_quark(), Bg.Error.INVALID_ARGUMENT);
    }
    check(threw, 'a bad session id throws INVALID_ARGUMENT');

    const root = GLib.dir_make_tmp('bg-gjs-XXXXXX');
    const data = new Uint8Array(2 * 1024 * 1024 + 11);
    for (let i = 0; i < data.length; i++)
        data[i] = (i * 7919 + (i >> 11)) & 0xff;
    GLib.file_set_contents(`${root}/gjs.bin`, data);
    const expected = checksum(`${root}/gjs.bin`);

    const server = startServer(root);
    try {
        const downloader = new Bg.Downloader({
            ...modeProps,
            session_id: 'gjs-download',
            database_path: `${root}/db.sqlite`,
        });
        downloader.init(null);
        downloader.max_attempts = 1;

        let finished = 0;
        downloader.connect('task-finished', () => finished++);

        const msg = Soup.Message.new('GET', `${server.base}/files/gjs.bin`);
        const dest = Gio.File.new_for_path(`${root}/out.bin`);
        const response = await downloader.download_async(msg, dest, 'gjs-1', null, null);

        check(response.get_kind() === Bg.ResponseKind.SUCCESS, 'download succeeded');
        check(response.get_status() === 200, 'status 200');
        check(checksum(`${root}/out.bin`) === expected, 'sha256 matches');
        check(finished === 1, 'task-finished emitted once');
        check(downloader.get_tasks().get_n_items() === 1, 'collected task kept in the list');
        check(downloader.forget('gjs-1'), 'forget takes it off the list');
        check(downloader.get_tasks().get_n_items() === 0, 'forgotten task left the list');

        const uploader = new Bg.Uploader({
            ...modeProps,
            session_id: 'gjs-upload',
            database_path: `${root}/db.sqlite`,
            max_attempts: 1,
        });
        uploader.init(null);
        const put = Soup.Message.new('PUT', `${server.base}/upload/gjs.bin`);
        const up = await uploader.upload_async(put, dest, 'gjs-up', null, null);
        check(up.get_kind() === Bg.ResponseKind.SUCCESS, 'upload succeeded');
        check(up.get_status() === 201, 'upload status 201');
        const body = new TextDecoder().decode(up.get_body().toArray());
        check(body.includes(expected), 'the server saw the same sha256');
    } finally {
        server.proc.get_stdin_pipe().close(null);
        server.proc.wait(null);
    }
}

const loop = new GLib.MainLoop(null, false);
GLib.timeout_add_seconds(GLib.PRIORITY_DEFAULT, 60, () => {
    print('Bail out! timed out');
    System.exit(1);
});
main().catch(e => {
    print(`not ok - exception: ${e}\n${e.stack}`);
    failures++;
}).finally(() => loop.quit());
loop.run();
print(`1..${count}`);
System.exit(failures ? 1 : 0);
