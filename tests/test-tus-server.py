#!/usr/bin/python3
# test-tus-server.py: checks tests/tus-server/server.mjs, the real tus 1.0 server of the suites
#
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Usage: /usr/bin/python3 tests/test-tus-server.py
#
# Starts @tus/server on a temporary folder and checks the answers the resumable-upload client
# relies on: creation (201, Location, Upload-Expires), PATCH (204, Upload-Offset), a wrong
# offset (409 without Upload-Offset), HEAD, DELETE then 404 or 410, and the request log that
# counts the body bytes.  Exits 77 with one line when node or the installed module is missing
# (.ci/install-deps installs it).  A watchdog ends the run after 25 seconds.

import hashlib
import http.client
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
TUS_DIR = os.path.join(HERE, 'tus-server')
SERVER = os.path.join(TUS_DIR, 'server.mjs')
TIMEOUT = 5.0
TUS = {'Tus-Resumable': '1.0.0'}


def skip_reason():
    node = shutil.which('node')
    if node is None:
        return 'node is not installed'
    for module in ('server', 'file-store'):
        if not os.path.isfile(os.path.join(TUS_DIR, 'node_modules', '@tus', module, 'package.json')):
            return '@tus/%s is not installed in tests/tus-server (run .ci/install-deps)' % module
    return None


class TusServer:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix='bg-tus-test-')
        self.log = os.path.join(self.tmp, 'requests.jsonl')
        self.proc = subprocess.Popen(['node', SERVER, '--dir', os.path.join(self.tmp, 'store'),
                                      '--log', self.log],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        ready, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline().decode() if ready else ''
        if not line.startswith('PORT '):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError('the tus server did not start: %r' % line)
        self.port = int(line.split()[1])

    def entries(self):
        with open(self.log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def request(conn, method, path, headers, body=None):
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp, resp.read()


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def run(server):
    body = os.urandom(300000)
    conn = http.client.HTTPConnection('127.0.0.1', server.port, timeout=TIMEOUT)
    try:
        status, resp, _ = request(conn, 'OPTIONS', '/files', TUS)
        check(status == 204, 'OPTIONS: %d' % status)
        ext = resp.getheader('Tus-Extension', '')
        check({'creation', 'termination', 'expiration'} <= set(ext.split(',')), ext)
        check(resp.getheader('Tus-Version') == '1.0.0', resp.getheader('Tus-Version'))
        print('ok 1 - OPTIONS names the extensions', flush=True)

        status, resp, _ = request(conn, 'POST', '/files',
                                  dict(TUS, **{'Upload-Length': str(len(body)),
                                               'Upload-Metadata': 'filename YS5iaW4='}))
        check(status == 201, 'POST: %d' % status)
        loc = resp.getheader('Location')
        check(loc and loc.startswith('http://127.0.0.1:%d/files/' % server.port), loc)
        check(resp.getheader('Upload-Expires'), 'no Upload-Expires')
        path = urllib.parse.urlsplit(loc).path
        print('ok 2 - POST: 201 with Location and Upload-Expires', flush=True)

        patch = dict(TUS, **{'Content-Type': 'application/offset+octet-stream'})
        status, resp, _ = request(conn, 'PATCH', path, dict(patch, **{'Upload-Offset': '0'}),
                                  body[:100000])
        check(status == 204 and resp.getheader('Upload-Offset') == '100000',
              'PATCH: %d %s' % (status, resp.getheader('Upload-Offset')))
        print('ok 3 - PATCH: 204 with Upload-Offset', flush=True)

        # A wrong offset: 409, and no Upload-Offset to go by (the server closes the connection).
        conflict = http.client.HTTPConnection('127.0.0.1', server.port, timeout=TIMEOUT)
        try:
            status, resp, _ = request(conflict, 'PATCH', path,
                                      dict(patch, **{'Upload-Offset': '50'}), body[50:1050])
        finally:
            conflict.close()
        check(status == 409 and resp.getheader('Upload-Offset') is None, 'conflict: %d' % status)
        print('ok 4 - a wrong offset: 409 without Upload-Offset', flush=True)

        status, resp, _ = request(conn, 'HEAD', path, TUS)
        check(status in (200, 204) and resp.getheader('Upload-Offset') == '100000',
              'HEAD: %d %s' % (status, resp.getheader('Upload-Offset')))
        check(resp.getheader('Upload-Length') == str(len(body)), resp.getheader('Upload-Length'))
        status, resp, _ = request(conn, 'PATCH', path, dict(patch, **{'Upload-Offset': '100000'}),
                                  body[100000:])
        check(status == 204 and resp.getheader('Upload-Offset') == str(len(body)), status)
        stored = [n for n in os.listdir(os.path.join(server.tmp, 'store'))
                  if not n.endswith('.json')]
        check(len(stored) == 1, stored)
        with open(os.path.join(server.tmp, 'store', stored[0]), 'rb') as f:
            got = hashlib.sha256(f.read()).hexdigest()
        check(got == hashlib.sha256(body).hexdigest(), 'the stored upload differs')
        print('ok 5 - HEAD gives the offset; the rest completes the upload', flush=True)

        status, _, _ = request(conn, 'DELETE', path, TUS)
        check(status == 204, 'DELETE: %d' % status)
        status, _, _ = request(conn, 'HEAD', path, TUS)
        check(status in (404, 410), 'HEAD after DELETE: %d' % status)
        print('ok 6 - DELETE, then HEAD gives %d' % status, flush=True)
    finally:
        conn.close()

    entries = server.entries()
    methods = [e['method'] for e in entries if e['event'] != 'late']
    check(methods == ['OPTIONS', 'POST', 'PATCH', 'PATCH', 'HEAD', 'PATCH', 'DELETE', 'HEAD'],
          methods)
    received = sum(e['received'] for e in entries)
    check(received == len(body) + 1000, 'the log counts %d bytes' % received)
    check(entries[3]['status'] == 409 and entries[3]['upload_offset'] == '50', entries[3])
    print('ok 7 - the log has every request and counts %d body bytes' % received, flush=True)


def main():
    reason = skip_reason()
    if reason is not None:
        print('1..0 # SKIP %s' % reason, flush=True)
        return 77

    def watchdog():
        print('Bail out! the tus server check took longer than 25 s', flush=True)
        os._exit(1)

    timer = threading.Timer(25, watchdog)
    timer.daemon = True
    timer.start()
    print('1..7', flush=True)
    server = TusServer()
    try:
        run(server)
    except Exception as e:
        print('not ok - %s: %s' % (type(e).__name__, e), flush=True)
        return 1
    finally:
        server.close()
        timer.cancel()
    return 0


if __name__ == '__main__':
    sys.exit(main())
