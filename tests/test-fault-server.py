#!/usr/bin/python3
# test-fault-server.py: checks tests/fault-server.py itself, printing TAP
#
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Usage: /usr/bin/python3 tests/test-fault-server.py
#
# Starts the server on a temporary root and drives every knob the other suites rely on with
# http.client and raw sockets.  Each step has its own timeouts and a watchdog ends the whole run
# after 28 seconds.

import gzip
import hashlib
import http.client
import json
import os
import random
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, 'fault-server.py')
CERT = os.path.join(HERE, 'fixtures', 'test-cert.pem')
KEY = os.path.join(HERE, 'fixtures', 'test-key.pem')
TIMEOUT = 5.0
SIZE = 1024 * 1024 + 123


class Fixture:
    def __init__(self):
        self.root = tempfile.mkdtemp(prefix='bg-fault-test-')
        rng = random.Random(1234)
        self.data = rng.randbytes(SIZE)
        with open(os.path.join(self.root, 'a.bin'), 'wb') as f:
            f.write(self.data)
        os.makedirs(os.path.join(self.root, 'sub'))
        with open(os.path.join(self.root, 'sub', 'text.txt'), 'wb') as f:
            f.write(b'hello, world\n' * 1000)
        self.proc, self.port = start_server(self.root)

    def close(self):
        for proc in (self.proc,):
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


def start_server(root, tls=False):
    argv = ['/usr/bin/python3', SERVER, '--root', root]
    if tls:
        argv += ['--tls', CERT, KEY]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    if not ready:
        proc.kill()
        raise RuntimeError('the server printed nothing')
    line = proc.stdout.readline().decode()
    if not line.startswith('PORT '):
        proc.kill()
        raise RuntimeError('unexpected first line %r' % line)
    return proc, int(line.split()[1])


def sha(data):
    return hashlib.sha256(data).hexdigest()


def request(method, path, headers=None, body=None, conn=None):
    own = conn is None
    if own:
        conn = http.client.HTTPConnection('127.0.0.1', F.port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp, data
    finally:
        if own:
            conn.close()


def raw_get(path, extra=b'', pause=0.0, read_limit=None, idle=None):
    """GET over a raw socket; returns (status, headers, body, how the body ended)."""
    sock = socket.create_connection(('127.0.0.1', F.port), timeout=TIMEOUT)
    try:
        sock.sendall(b'GET ' + path.encode() + b' HTTP/1.1\r\nHost: 127.0.0.1\r\n' + extra + b'\r\n')
        if pause:
            time.sleep(pause)
        buf = b''
        while b'\r\n\r\n' not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError('connection closed in the headers')
            buf += chunk
        head, body = buf.split(b'\r\n\r\n', 1)
        lines = head.decode('latin-1').split('\r\n')
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(':', 1)
            headers[k.strip().lower()] = v.strip()
        if idle is not None:
            sock.settimeout(idle)
        ending = 'eof'
        while read_limit is None or len(body) < read_limit:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                ending = 'reset'
                break
            except socket.timeout:
                ending = 'timeout'
                break
            if not chunk:
                break
            body += chunk
        else:
            ending = 'limit'
        return status, headers, body, ending
    finally:
        sock.close()


def stats():
    status, _, data = request('GET', '/_stats')
    assert status == 200, status
    return json.loads(data)


def reset():
    status, _, _ = request('POST', '/_reset')
    assert status == 204, status


# -- the checks ---------------------------------------------------------------------------------

def t_hello():
    status, resp, data = request('GET', '/_hello')
    assert status == 200 and data == b'ok', (status, data)


def t_plain_get():
    conn = http.client.HTTPConnection('127.0.0.1', F.port, timeout=TIMEOUT)
    try:
        status, resp, data = request('GET', '/files/a.bin', conn=conn)
        assert status == 200, status
        assert sha(data) == sha(F.data)
        st = os.stat(os.path.join(F.root, 'a.bin'))
        assert resp.getheader('ETag') == '"%d-%d"' % (st.st_size, st.st_mtime_ns), resp.getheader('ETag')
        assert resp.getheader('Accept-Ranges') == 'bytes'
        assert resp.getheader('Content-Length') == str(SIZE)
        assert resp.getheader('Content-Type') == 'application/octet-stream'
        assert resp.getheader('Last-Modified') and resp.getheader('Date')
        # Keep-alive: a second request on the same connection, and HEAD.
        status, resp, data = request('HEAD', '/files/sub/text.txt', conn=conn)
        assert status == 200 and data == b'' and resp.getheader('Content-Length') == '13000'
        status, resp, data = request('GET', '/files/sub/text.txt', conn=conn)
        assert status == 200 and data == b'hello, world\n' * 1000
    finally:
        conn.close()
    assert request('GET', '/files/missing.bin')[0] == 404
    assert raw_get('/files/../etc/passwd', b'Connection: close\r\n')[0] == 400
    assert raw_get('/files/sub/../../x', b'Connection: close\r\n')[0] == 400
    sock = socket.create_connection(('127.0.0.1', F.port), timeout=TIMEOUT)
    sock.sendall(b'GET /files/a.bin FOO/1.1\r\n\r\n')
    assert b'400' in sock.recv(1000), 'malformed request line'
    sock.close()


def t_range_if_range():
    _, resp, _ = request('HEAD', '/files/a.bin')
    etag, lm = resp.getheader('ETag'), resp.getheader('Last-Modified')
    status, resp, data = request('GET', '/files/a.bin', {'Range': 'bytes=1000-', 'If-Range': etag})
    assert status == 206, status
    assert resp.getheader('Content-Range') == 'bytes 1000-%d/%d' % (SIZE - 1, SIZE)
    assert data == F.data[1000:]
    status, resp, data = request('GET', '/files/a.bin', {'Range': 'bytes=10-19', 'If-Range': lm})
    assert status == 206 and data == F.data[10:20], status
    assert resp.getheader('Content-Range') == 'bytes 10-19/%d' % SIZE
    status, resp, data = request('GET', '/files/a.bin', {'Range': 'bytes=-100'})
    assert status == 206 and data == F.data[-100:], status


def t_if_range_mismatch():
    status, resp, data = request('GET', '/files/a.bin', {'Range': 'bytes=1000-', 'If-Range': '"other"'})
    assert status == 200 and data == F.data, status
    status, resp, data = request('GET', '/files/a.bin',
                                 {'Range': 'bytes=1000-', 'If-Range': 'Thu, 01 Jan 1970 00:00:00 GMT'})
    assert status == 200 and data == F.data, status


def t_unsatisfiable():
    status, resp, data = request('GET', '/files/a.bin', {'Range': 'bytes=%d-' % SIZE})
    assert status == 416, status
    assert resp.getheader('Content-Range') == 'bytes */%d' % SIZE
    assert data == b''


def t_norange():
    status, resp, data = request('GET', '/files/a.bin?norange=1', {'Range': 'bytes=1000-'})
    assert status == 200 and data == F.data, status


def t_etag_rotate():
    _, r1, _ = request('HEAD', '/files/a.bin?etag=rotate')
    _, r2, _ = request('HEAD', '/files/a.bin?etag=rotate')
    e1, e2 = r1.getheader('ETag'), r2.getheader('ETag')
    assert e1 and e2 and e1 != e2 and e1.startswith('"'), (e1, e2)
    status, _, data = request('GET', '/files/a.bin?etag=rotate', {'Range': 'bytes=5-', 'If-Range': e2})
    assert status == 200 and data == F.data, status
    _, r3, _ = request('HEAD', '/files/a.bin?etag=W/%22x%22')
    assert r3.getheader('ETag') == 'W/"x"', r3.getheader('ETag')
    status, _, _ = request('GET', '/files/a.bin?etag=W/%22x%22', {'Range': 'bytes=5-', 'If-Range': 'W/"x"'})
    assert status == 200, status
    _, r4, _ = request('HEAD', '/files/a.bin?noetag=1')
    assert r4.getheader('ETag') is None and r4.getheader('Last-Modified') is None


def t_wrongrange():
    status, resp, data = request('GET', '/files/a.bin?wrongrange=100', {'Range': 'bytes=1000-1999'})
    assert status == 206, status
    assert resp.getheader('Content-Range') == 'bytes 1100-2099/%d' % SIZE, resp.getheader('Content-Range')
    assert data == F.data[1100:2100]


def replace(path, source):
    query = urllib.parse.urlencode({'path': path, 'from': source})
    status, resp, data = request('POST', '/_replace?' + query)
    assert status == 200 and resp.getheader('Content-Type') == 'application/json', (status, data)
    return json.loads(data)


def write_version(name, size, seed):
    data = random.Random(seed).randbytes(size)
    with open(os.path.join(F.root, name), 'wb') as f:
        f.write(data)
    return data


def validators(path):
    _, resp, _ = request('HEAD', path)
    return resp.getheader('ETag'), resp.getheader('Last-Modified')


def t_replace():
    a = write_version('v.bin', 300000, 1)
    b = write_version('v-b.bin', 300000, 2)
    etag_a, lm_a = validators('/files/v.bin')
    # Twice within a second, same size: every version has its own ETag and Last-Modified.
    doc = replace('v.bin', 'v-b.bin')
    etag_b, lm_b = validators('/files/v.bin')
    assert doc == {'path': 'v.bin', 'size': 300000, 'etag': etag_b, 'last_modified': lm_b}, doc
    assert etag_b != etag_a and lm_b != lm_a, (etag_a, etag_b, lm_a, lm_b)
    assert request('GET', '/files/v.bin')[2] == b
    replace('v.bin', 'v-b.bin')
    etag_c, lm_c = validators('/files/v.bin')
    assert etag_c not in (etag_a, etag_b) and lm_c not in (lm_a, lm_b), (etag_c, lm_c)
    # The old version's If-Range no longer matches: 200 with the whole new version.
    status, _, data = request('GET', '/files/v.bin', {'Range': 'bytes=100-', 'If-Range': etag_a})
    assert status == 200 and data == b, status
    assert a != b
    # Unsafe or missing names.
    for query in ('path=../x&from=v.bin', 'path=v.bin&from=/etc/passwd', 'path=v.bin', ''):
        assert request('POST', '/_replace?' + query)[0] == 400, query
    assert request('POST', '/_replace?path=v.bin&from=missing.bin')[0] == 404
    assert request('GET', '/_replace?path=v.bin&from=v-b.bin')[0] == 405


def t_ifrange_ignore():
    """Version A cut off mid-body, version B in its place, then the resume: 206 of B."""
    reset()
    size = 400000
    a = write_version('ir.bin', size, 3)
    write_version('ir-same.bin', size, 4)
    write_version('ir-longer.bin', size + 5000, 5)
    write_version('ir-shorter.bin', size - 5000, 6)
    path = '/files/ir.bin?ifrange=ignore&drop=150000&cut-first=1'
    status, headers, body, ending = raw_get(path)
    assert status == 200 and body == a[:150000] and ending == 'reset', (status, len(body), ending)
    etag_a, lm_a = headers['etag'], headers['last-modified']

    for name in ('ir-same.bin', 'ir-longer.bin', 'ir-shorter.bin'):
        with open(os.path.join(F.root, name), 'rb') as f:
            b = f.read()
        doc = replace('ir.bin', name)
        for stale in (etag_a, lm_a):
            status, resp, data = request('GET', path, {'Range': 'bytes=150000-', 'If-Range': stale})
            assert status == 206, (name, status)
            assert resp.getheader('Content-Range') == 'bytes 150000-%d/%d' % (len(b) - 1, len(b))
            assert resp.getheader('ETag') == doc['etag'] != etag_a, resp.getheader('ETag')
            assert resp.getheader('Last-Modified') == doc['last_modified'] != lm_a
            assert data == b[150000:], (name, len(data))
        # Without the knob, the same request gets the whole new version.
        status, _, data = request('GET', '/files/ir.bin', {'Range': 'bytes=150000-', 'If-Range': etag_a})
        assert status == 200 and data == b, (name, status)
    # cut-first=1: only the first answer to that URL was cut.
    cut = [r for r in stats()['log'] if r['query'] == path.split('?', 1)[1]]
    assert len(cut) == 7, cut


def t_rangetotal():
    _, plain, _ = request('HEAD', '/files/a.bin')
    for claimed in (SIZE + 4096, SIZE - 4096):
        path = '/files/a.bin?rangetotal=%d' % claimed
        # A whole answer tells the truth.
        status, resp, data = request('GET', path)
        assert status == 200 and data == F.data and resp.getheader('Content-Length') == str(SIZE)
        assert resp.getheader('Content-Range') is None
        # A partial answer names the other length, under the same ETag.
        status, resp, data = request('GET', path, {'Range': 'bytes=1000-',
                                                   'If-Range': plain.getheader('ETag')})
        end = min(SIZE, claimed) - 1
        assert status == 206, status
        assert resp.getheader('Content-Range') == 'bytes 1000-%d/%d' % (end, claimed), \
            resp.getheader('Content-Range')
        assert resp.getheader('ETag') == plain.getheader('ETag')
        assert data == F.data[1000:end + 1] and resp.getheader('Content-Length') == str(len(data))
    # From beyond the length it claims: 416 with that length.
    status, resp, _ = request('GET', '/files/a.bin?rangetotal=500', {'Range': 'bytes=600-'})
    assert status == 416 and resp.getheader('Content-Range') == 'bytes */500', status


def t_grown_same_etag():
    """A file that grows or shrinks while the server keeps its ETag."""
    write_version('g.bin', 200000, 7)
    longer = write_version('g-longer.bin', 260000, 8)
    shorter = write_version('g-shorter.bin', 150000, 9)
    path = '/files/g.bin?etag=%22fixed%22'
    _, resp, _ = request('HEAD', path)
    assert resp.getheader('ETag') == '"fixed"' and resp.getheader('Content-Length') == '200000'
    for name, data in (('g-longer.bin', longer), ('g-shorter.bin', shorter)):
        replace('g.bin', name)
        status, resp, body = request('GET', path, {'Range': 'bytes=100000-', 'If-Range': '"fixed"'})
        assert status == 206 and resp.getheader('ETag') == '"fixed"', status
        assert resp.getheader('Content-Range') == 'bytes 100000-%d/%d' % (len(data) - 1, len(data))
        assert body == data[100000:]


def t_cut_first():
    reset()
    path = '/files/sub/text.txt?short=100&cut-first=2'
    for _ in range(2):
        status, headers, body, ending = raw_get(path)
        assert status == 200 and len(body) == 100 and ending == 'eof', (len(body), ending)
    status, headers, body, ending = raw_get(path, b'Connection: close\r\n')
    assert body == b'hello, world\n' * 1000, len(body)
    # Another query is another count; HEAD counts nothing.
    assert request('HEAD', '/files/sub/text.txt?short=100&cut-first=1')[0] == 200
    assert len(raw_get('/files/sub/text.txt?short=100&cut-first=1')[2]) == 100
    # /_reset starts the counts again.
    reset()
    assert len(raw_get(path)[2]) == 100


def t_drop():
    # The client reads late on purpose: the reset must not eat what was already sent.
    status, headers, body, ending = raw_get('/files/a.bin?drop=70000', pause=0.3)
    assert status == 200 and headers['content-length'] == str(SIZE)
    assert body == F.data[:70000], len(body)
    assert ending == 'reset', ending


def t_short():
    status, headers, body, ending = raw_get('/files/a.bin?short=500')
    assert status == 200 and headers['content-length'] == str(SIZE)
    assert body == F.data[:500] and ending == 'eof', (len(body), ending)


def t_stall():
    reset()
    start = time.monotonic()
    sock = socket.create_connection(('127.0.0.1', F.port), timeout=TIMEOUT)
    try:
        sock.sendall(b'GET /files/a.bin?stall=3000 HTTP/1.1\r\nHost: x\r\n\r\n')
        buf = b''
        while b'\r\n\r\n' not in buf or len(buf.split(b'\r\n\r\n', 1)[1]) < 3000:
            chunk = sock.recv(65536)
            assert chunk, 'closed early'
            buf += chunk
        head, body = buf.split(b'\r\n\r\n', 1)
        assert head.startswith(b'HTTP/1.1 200') and body == F.data[:3000]
        # Counted at once, and still active while stalled.
        s = stats()
        assert s['bytes_sent'] == 3000 and s['active'] == 1, s
        sock.settimeout(0.5)
        try:
            more = sock.recv(100)
            assert False, 'got %r after the stall' % more
        except socket.timeout:
            pass
    finally:
        sock.close()
    # Closing our end ends the stalled request.
    deadline = time.monotonic() + 3
    while stats()['active'] != 0:
        assert time.monotonic() < deadline, 'the stalled request did not end'
        time.sleep(0.02)
    assert time.monotonic() - start < 3


def t_status_retry_after():
    status, resp, data = request('GET', '/files/a.bin?status=429&retry-after=7')
    assert status == 429 and resp.getheader('Retry-After') == '7' and 0 < len(data) < 100, status
    status, resp, _ = request('GET', '/files/a.bin?status=503&retry-after=Wed,%2021%20Oct%202037%2007:28:00%20GMT')
    assert status == 503 and resp.getheader('Retry-After') == 'Wed, 21 Oct 2037 07:28:00 GMT'


def t_fail_first():
    path = '/files/a.bin?fail-first=2&retry-after=1'
    codes = [request('GET', path)[0] for _ in range(3)]
    assert codes == [503, 503, 200], codes
    codes = [request('GET', '/files/a.bin?fail-first=1&fail-status=500')[0] for _ in range(2)]
    assert codes == [500, 200], codes


def t_redirect():
    status, resp, _ = request('GET', '/files/a.bin?redirect=2&x=1')
    assert status == 302, status
    loc = resp.getheader('Location')
    assert loc == 'http://127.0.0.1:%d/files/a.bin?redirect=1&x=1' % F.port, loc
    status, resp, _ = request('GET', loc.split(str(F.port), 1)[1])
    loc = resp.getheader('Location')
    assert status == 302 and 'redirect=0' in loc, (status, loc)
    status, resp, data = request('GET', loc.split(str(F.port), 1)[1])
    assert status == 200 and data == F.data
    status, resp, _ = request('GET', '/files/a.bin?redirect=loop')
    assert status == 302 and resp.getheader('Location').endswith('/files/a.bin?redirect=loop')
    status, resp, _ = request('GET', '/files/a.bin?location=http%3A%2F%2Fexample.com%2Fx')
    assert status == 302 and resp.getheader('Location') == 'http://example.com/x'


def t_bigheaders():
    status, resp, data = request('GET', '/files/sub/text.txt?bigheaders=20000')
    assert status == 200 and resp.getheader('X-Big') == 'a' * 20000


def t_length():
    expected = b'hello, world\n' * 1000
    status, headers, body, ending = raw_get('/files/sub/text.txt?length=-5', idle=0.5,
                                            read_limit=len(expected))
    assert status == 200 and headers['content-length'] == '-5', headers
    assert body == expected and ending == 'limit', (len(body), ending)


def t_gzip_range():
    status, resp, data = request('GET', '/files/sub/text.txt?gzip=1')
    assert status == 200 and resp.getheader('Content-Encoding') == 'gzip'
    assert gzip.decompress(data) == b'hello, world\n' * 1000
    assert resp.getheader('Content-Length') == str(len(data))
    etag = resp.getheader('ETag')
    assert etag.endswith('-gz"'), etag
    status, resp, part = request('GET', '/files/sub/text.txt?gzip=1', {'Range': 'bytes=10-', 'If-Range': etag})
    assert status == 206 and part == data[10:], status
    assert resp.getheader('Content-Range') == 'bytes 10-%d/%d' % (len(data) - 1, len(data))


def t_rate():
    start = time.monotonic()
    status, _, data = request('GET', '/files/a.bin?rate=400000', {'Range': 'bytes=0-199999'})
    took = time.monotonic() - start
    assert status == 206 and data == F.data[:200000]
    assert 0.4 < took < 5, took


def t_put_upload():
    reset()
    body = os.urandom(300000)
    status, resp, data = request('PUT', '/upload/one.bin', {'X-Test': 'yes', 'Content-Type': 'application/x-thing'}, body)
    assert status == 201, status
    assert resp.getheader('Content-Type') == 'application/json'
    doc = json.loads(data)
    assert doc == {'name': 'one.bin', 'size': len(body), 'sha256': sha(body)}, doc
    with open(os.path.join(F.root, 'uploads', 'one.bin'), 'rb') as f:
        assert f.read() == body
    up = stats()['uploads']
    assert len(up) == 1 and up[0]['complete'] is True and up[0]['sha256'] == sha(body)
    assert up[0]['method'] == 'PUT' and up[0]['size'] == len(body)
    assert ['X-Test', 'yes'] in up[0]['headers'], up[0]['headers']


def t_chunked_post():
    reset()
    pieces = [os.urandom(n) for n in (1, 70000, 3, 200000)]
    body = b''.join(pieces)
    conn = http.client.HTTPConnection('127.0.0.1', F.port, timeout=TIMEOUT)
    try:
        conn.request('POST', '/upload/two%20parts.bin', body=iter(pieces),
                     headers={'Transfer-Encoding': 'chunked'}, encode_chunked=True)
        resp = conn.getresponse()
        doc = json.loads(resp.read())
        assert resp.status == 201 and doc['sha256'] == sha(body) and doc['size'] == len(body), doc
        # The connection is still good.
        status, _, _ = request('GET', '/files/sub/text.txt', conn=conn)
        assert status == 200
    finally:
        conn.close()
    up = stats()['uploads']
    assert up[0]['name'] == 'two parts.bin' and up[0]['complete'] is True
    assert ['Transfer-Encoding', 'chunked'] in up[0]['headers']


def t_upload_faults():
    reset()
    body = os.urandom(200000)
    # Late failures, twice, then stored.
    codes = [request('PUT', '/upload/ff.bin?fail-first=2', body=body)[0] for _ in range(3)]
    assert codes == [503, 503, 201], codes
    # Early failure, before the body is read; the connection closes.
    sock = socket.create_connection(('127.0.0.1', F.port), timeout=TIMEOUT)
    sock.sendall(b'PUT /upload/early.bin?status=500&early=1&retry-after=3 HTTP/1.1\r\nHost: x\r\n'
                 b'Content-Length: 200000\r\nExpect: 100-continue\r\n\r\n')
    answer = b''
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    sock.close()
    assert answer.startswith(b'HTTP/1.1 500') and b'Retry-After: 3' in answer, answer[:200]
    assert b'100 Continue' not in answer
    # Dropped after 1000 bytes.
    sock = socket.create_connection(('127.0.0.1', F.port), timeout=TIMEOUT)
    sock.sendall(b'PUT /upload/drop.bin?drop=1000 HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n')
    try:
        sock.sendall(body)
        got = sock.recv(100)
    except (ConnectionResetError, BrokenPipeError):
        got = b''
    sock.close()
    assert got == b'', got
    # Redirected with 307.
    status, resp, _ = request('POST', '/upload/r.bin?redirect=1', body=b'xyz')
    assert status == 307 and 'redirect=0' in resp.getheader('Location')
    status, resp, data = request('POST', '/upload/big.bin?bigbody=100000', body=b'xyz')
    assert status == 201 and len(data) == 100000
    up = stats()['uploads']
    by = [(u['name'], u['complete'], u['size'], u['status']) for u in up]
    assert by[:3] == [('ff.bin', False, 200000, 503), ('ff.bin', False, 200000, 503),
                      ('ff.bin', True, 200000, 201)], by
    assert by[3] == ('early.bin', False, 0, 500), by
    assert by[4] == ('drop.bin', False, 1000, None), by
    assert up[4]['sha256'] == sha(body[:1000])
    assert not os.path.exists(os.path.join(F.root, 'uploads', 'drop.bin'))
    assert by[5] == ('r.bin', False, 3, 307), by


def t_upload_expect_idem_gate():
    reset()
    # early=close: the answer comes before any body byte, then the connection is gone.
    sock = socket.create_connection(('127.0.0.1', F.port), timeout=TIMEOUT)
    sock.sendall(b'PUT /upload/e.bin?status=413&early=close HTTP/1.1\r\nHost: x\r\n'
                 b'Content-Length: 200000\r\nExpect: 100-continue\r\n\r\n')
    answer = b''
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    sock.close()
    assert answer.startswith(b'HTTP/1.1 413') and b'Connection: close' in answer, answer[:200]
    assert b'100 Continue' not in answer
    # continue=0: no "100 Continue", the body is simply read.
    sock = socket.create_connection(('127.0.0.1', F.port), timeout=TIMEOUT)
    sock.sendall(b'PUT /upload/q.bin?continue=0 HTTP/1.1\r\nHost: x\r\n'
                 b'Content-Length: 3\r\nExpect: 100-continue\r\n\r\n')
    sock.settimeout(0.3)
    try:
        early = sock.recv(100)
    except socket.timeout:
        early = b''
    assert early == b'', early
    sock.settimeout(TIMEOUT)
    sock.sendall(b'abc')
    assert sock.recv(100).startswith(b'HTTP/1.1 201')
    sock.close()
    # idem=1: a known key gets the first answer again, whatever the body.
    key = {'Idempotency-Key': '"k1"'}
    status, _, first = request('PUT', '/upload/i.bin?idem=1', headers=key, body=b'one')
    status2, _, second = request('PUT', '/upload/i.bin?idem=1', headers=key, body=b'two')
    assert status == status2 == 201 and first == second and sha(b'one').encode() in first
    with open(os.path.join(F.root, 'uploads', 'i.bin'), 'rb') as f:
        assert f.read() == b'one'
    # gate: the request waits at the gate (here after 2 body bytes) until it is opened.
    results = []
    worker = threading.Thread(target=lambda: results.append(
        request('PUT', '/upload/g.bin?gate=g1&gate-at=2', body=b'gated')))
    worker.start()
    status, _, _ = request('GET', '/_gate?name=g1')
    assert status == 200 and not results
    status, _, _ = request('POST', '/_open?name=g1')
    assert status == 204
    worker.join(TIMEOUT)
    assert results and results[0][0] == 201, results
    up = stats()['uploads']
    by = [(u['name'], u['complete'], u['size'], u['status'], u['replayed']) for u in up
          if 'replayed' in u]
    assert by == [('q.bin', True, 3, 201, False), ('i.bin', True, 3, 201, False),
                  ('i.bin', True, 3, 201, True), ('g.bin', True, 5, 201, False)], by
    assert up[-1]['gated'] is True


def t_stats_and_concurrency():
    reset()
    request('GET', '/files/a.bin')
    request('GET', '/files/a.bin', {'Range': 'bytes=0-99'})
    s = stats()
    assert s['requests'] == 2 and s['bytes_sent'] == SIZE + 100, s['bytes_sent']
    assert s['per_path']['/files/a.bin'] == {'requests': 2, 'bytes_sent': SIZE + 100,
                                            'file_bytes_sent': SIZE + 100}, s['per_path']
    assert s['log'][1]['range'] == 'bytes=0-99' and s['log'][0]['if_range'] is None
    assert s['log'][1]['method'] == 'GET' and s['log'][1]['path'] == '/files/a.bin'
    results = []

    def one(i):
        results.append(request('GET', '/files/sub/text.txt?delay=300&n=%d' % i)[0])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    mid = stats()
    for t in threads:
        t.join(TIMEOUT)
    assert results == [200, 200, 200], results
    assert mid['active'] >= 1, mid['active']
    s = stats()
    assert s['max_active'] == 3 and s['active'] == 0, (s['max_active'], s['active'])
    assert s['per_path']['/files/sub/text.txt']['requests'] == 3
    # The counters never lag behind what a client has received.
    conn = http.client.HTTPConnection('127.0.0.1', F.port, timeout=TIMEOUT)
    try:
        for i in range(30):
            reset()
            request('GET', '/files/sub/text.txt', conn=conn)
            s = stats()
            assert s['active'] == 0 and s['bytes_sent'] == 13000, (i, s)
    finally:
        conn.close()


def t_sixteen_connections():
    results = []

    def one(i):
        results.append(request('GET', '/files/a.bin?delay=200&i=%d' % i)[0])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert results == [200] * 20, results
    # One after the other they would take 4 s.
    assert time.monotonic() - start < 3


def t_reset():
    request('GET', '/files/sub/text.txt')
    reset()
    s = stats()
    assert s['requests'] == 0 and s['bytes_sent'] == 0 and s['max_active'] == 0, s
    assert s['per_path'] == {} and s['log'] == [] and s['uploads'] == [], s
    assert os.path.exists(os.path.join(F.root, 'uploads', 'one.bin'))


def t_tls():
    proc, port = start_server(F.root, tls=True)
    try:
        ctx = ssl.create_default_context(cafile=CERT)
        for host in ('127.0.0.1', 'localhost'):
            conn = http.client.HTTPSConnection(host, port, timeout=TIMEOUT, context=ctx)
            conn.request('GET', '/files/a.bin', headers={'Range': 'bytes=7-'})
            resp = conn.getresponse()
            assert resp.status == 206 and resp.read() == F.data[7:]
            conn.close()
    finally:
        proc.stdin.close()
        proc.wait(5)


def t_stdin_eof_exits():
    # A request stalled forever must not keep the server alive either.
    sock = socket.create_connection(('127.0.0.1', F.port), timeout=TIMEOUT)
    sock.sendall(b'GET /files/a.bin?stall=10 HTTP/1.1\r\nHost: x\r\n\r\n')
    sock.recv(100)
    start = time.monotonic()
    F.proc.stdin.close()
    F.proc.wait(5)
    took = time.monotonic() - start
    sock.close()
    assert F.proc.returncode == 0, F.proc.returncode
    assert took < 5, took
    # And SIGTERM.
    proc, _ = start_server(F.root)
    proc.terminate()
    proc.wait(5)


# -- the resumable-upload draft (interop version 8) ---------------------------------------------

IETF = {'Upload-Draft-Interop-Version': '8'}


def ietf_create(query='', complete=False, body=b'', extra=None):
    headers = dict(IETF, **{'Upload-Complete': '?1' if complete else '?0'})
    headers.update(extra or {})
    status, resp, data = request('POST', '/resumable' + ('?' + query if query else ''),
                                 headers, body)
    return status, resp, data


def ietf_path(resp):
    return urllib.parse.urlsplit(resp.getheader('Location')).path


def ietf_patch(path, offset, body, complete=False, conn=None, extra=None):
    headers = {'Content-Type': 'application/partial-upload', 'Upload-Offset': str(offset),
               'Upload-Complete': '?1' if complete else '?0'}
    headers.update(extra or {})
    return request('PATCH', path, headers, body, conn=conn)


def ietf_stats(path):
    token = path.rsplit('/', 1)[1]
    doc = stats()['resumable']
    entries = [u for u in doc['uploads'] if u['token'] == token]
    assert len(entries) == 1, doc
    return entries[0], doc


def raw_patch_dropped(path, offset, body):
    """A PATCH whose connection the server resets; returns what came back (b'' on a reset)."""
    sock = socket.create_connection(('127.0.0.1', F.port), timeout=TIMEOUT)
    try:
        sock.sendall(('PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/partial-upload\r\n'
                      'Upload-Offset: %d\r\nUpload-Complete: ?0\r\nContent-Length: %d\r\n\r\n'
                      % (path, offset, len(body))).encode())
        try:
            sock.sendall(body)
            return sock.recv(100)
        except (ConnectionResetError, BrokenPipeError):
            return b''
    finally:
        sock.close()


def t_ietf_creation():
    reset()
    status, resp, data = ietf_create('max-size=5000000&max-append-size=300000&max-age=600')
    assert status == 201, (status, data)
    loc = resp.getheader('Location')
    assert loc.startswith('http://127.0.0.1:%d/resumable/' % F.port), loc
    assert resp.getheader('Upload-Offset') == '0' and resp.getheader('Upload-Complete') == '?0'
    limit = resp.getheader('Upload-Limit')
    assert limit == 'max-size=5000000, max-append-size=300000, max-age=600', limit
    # A creation with a first part of the body.
    body = os.urandom(1000)
    status, resp, _ = ietf_create(body=body, extra={'Upload-Length': '5000'})
    assert status == 201 and resp.getheader('Upload-Offset') == '1000'
    path = ietf_path(resp)
    status, resp, _ = request('HEAD', path)
    assert status == 204 and resp.getheader('Upload-Length') == '5000'
    # The whole body with ?1: the final response at once.
    body = os.urandom(4321)
    status, resp, data = ietf_create(complete=True, body=body)
    assert status == 200 and resp.getheader('Upload-Complete') == '?1', status
    assert json.loads(data)['sha256'] == sha(body) and json.loads(data)['size'] == len(body)
    # No Upload-Complete (or another interop version): a plain upload, no Location.
    for extra in ({}, {'Upload-Draft-Interop-Version': '6', 'Upload-Complete': '?0'}):
        status, resp, data = request('POST', '/resumable', extra, b'plain')
        assert status == 200 and resp.getheader('Location') is None, (status, extra)
        assert json.loads(data)['sha256'] == sha(b'plain')
    doc = stats()['resumable']
    assert [u['resumable'] for u in doc['uploads']] == [True, True, True, False, False], doc
    assert doc['received'] == 1000 + 4321 + 10, doc['received']
    # A relative Location when asked; PUT works as well.
    status, resp, _ = request('PUT', '/resumable?relative-location=1',
                              dict(IETF, **{'Upload-Complete': '?0'}))
    assert status == 201 and resp.getheader('Location').startswith('/resumable/')


def t_ietf_head_patch_complete():
    reset()
    body = os.urandom(700000)
    status, resp, _ = ietf_create()
    path = ietf_path(resp)
    conn = http.client.HTTPConnection('127.0.0.1', F.port, timeout=TIMEOUT)
    try:
        status, resp, _ = request('HEAD', path, conn=conn)
        assert status == 204, status
        assert resp.getheader('Upload-Offset') == '0' and resp.getheader('Upload-Complete') == '?0'
        assert resp.getheader('Cache-Control') == 'no-store'
        assert resp.getheader('Upload-Length') is None
        status, resp, _ = ietf_patch(path, 0, body[:300000], conn=conn)
        assert status == 204, status
        assert resp.getheader('Upload-Offset') == '300000' and resp.getheader('Upload-Complete') == '?0'
        status, resp, data = ietf_patch(path, 300000, body[300000:], complete=True, conn=conn)
        assert status == 200 and resp.getheader('Upload-Complete') == '?1', (status, data)
        doc = json.loads(data)
        assert doc['size'] == len(body) and doc['sha256'] == sha(body), doc
        status, resp, _ = request('HEAD', path, conn=conn)
        assert resp.getheader('Upload-Complete') == '?1'
        assert resp.getheader('Upload-Offset') == str(len(body))
        assert resp.getheader('Upload-Length') == str(len(body))
        # Appending to a completed upload: 400 with the draft's problem types.
        status, resp, data = ietf_patch(path, len(body), b'more', conn=conn)
        assert status == 400 and json.loads(data)['type'].endswith('#inconsistent-upload-length')
        status, resp, data = ietf_patch(path, len(body), b'', complete=True, conn=conn)
        assert status == 400 and json.loads(data)['type'].endswith('#completed-upload')
        # Not application/partial-upload: 415 with Accept-Patch.
        status, resp, _ = request('PATCH', path, {'Upload-Offset': '0', 'Upload-Complete': '?0',
                                                  'Content-Type': 'application/octet-stream'},
                                  b'x', conn=conn)
        assert status == 415 and resp.getheader('Accept-Patch') == 'application/partial-upload'
    finally:
        conn.close()
    entry, doc = ietf_stats(path)
    assert entry['complete'] is True and entry['sha256'] == sha(body), entry
    assert entry['offset'] == len(body) and entry['appends'] == 2, entry
    assert entry['received'] == len(body) + 4 + 1, entry
    assert entry['discarded'] == 5 and entry['max_body'] == 400000, entry
    with open(os.path.join(F.root, 'resumable', entry['token']), 'rb') as f:
        assert f.read() == body


def t_ietf_conflict():
    reset()
    status, resp, _ = ietf_create()
    path = ietf_path(resp)
    assert ietf_patch(path, 0, b'a' * 1000)[0] == 204
    for wrong in (0, 500, 2000):
        status, resp, data = ietf_patch(path, wrong, b'b' * 100)
        assert status == 409 and resp.getheader('Upload-Offset') == '1000', (status, wrong)
        problem = json.loads(data)
        assert problem['type'].endswith('#mismatching-upload-offset'), problem
        assert problem['expected-offset'] == 1000 and problem['provided-offset'] == wrong
    # Broken headers: 400.
    assert request('PATCH', path, {'Content-Type': 'application/partial-upload',
                                   'Upload-Complete': '?0', 'Upload-Offset': '-5'}, b'')[0] == 400
    assert request('PATCH', path, {'Content-Type': 'application/partial-upload',
                                   'Upload-Complete': 'yes', 'Upload-Offset': '1000'}, b'')[0] == 400
    entry, _ = ietf_stats(path)
    assert entry['offset'] == 1000 and entry['discarded'] == 300, entry
    assert [r['status'] for r in entry['requests']] == [201, 204, 409, 409, 409, 400, 400]


def t_ietf_limits():
    reset()
    # max-size: a creation announcing more is refused.
    status, resp, _ = ietf_create('max-size=1000', extra={'Upload-Length': '1001'})
    assert status == 413 and resp.getheader('Upload-Limit') == 'max-size=1000', status
    status, resp, _ = ietf_create('max-size=1000&max-append-size=400')
    path = ietf_path(resp)
    assert resp.getheader('Upload-Limit') == 'max-size=1000, max-append-size=400'
    # max-append-size: a larger append is refused, read and thrown away.
    status, resp, _ = ietf_patch(path, 0, b'x' * 401)
    assert status == 413 and resp.getheader('Upload-Limit') == 'max-size=1000, max-append-size=400'
    for off in (0, 400, 800):
        assert ietf_patch(path, off, b'y' * 200 if off == 800 else b'y' * 400)[0] == 204
    # Past max-size.
    status, _, _ = ietf_patch(path, 1000, b'z')
    assert status == 413, status
    # With Expect: 100-continue the refusal comes instead of the 100 and no body is sent.
    sock = socket.create_connection(('127.0.0.1', F.port), timeout=TIMEOUT)
    sock.sendall(('PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/partial-upload\r\n'
                  'Upload-Offset: 1000\r\nUpload-Complete: ?0\r\nContent-Length: 5000\r\n'
                  'Expect: 100-continue\r\n\r\n' % path).encode())
    answer = b''
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    sock.close()
    assert answer.startswith(b'HTTP/1.1 413') and b'100 Continue' not in answer, answer[:100]
    entry, doc = ietf_stats(path)
    assert entry['offset'] == 1000 and entry['max_body'] == 400, entry
    assert entry['received'] == 401 + 1000 + 1 and entry['discarded'] == 402, entry
    # The OPTIONS probe: Accept-Patch on /resumable, not on the plain /upload.
    status, resp, _ = request('OPTIONS', '/resumable?max-append-size=10')
    assert status == 204 and resp.getheader('Accept-Patch') == 'application/partial-upload'
    assert resp.getheader('Upload-Limit') == 'max-append-size=10'
    status, resp, _ = request('OPTIONS', '/upload/x.bin')
    assert status == 204 and resp.getheader('Accept-Patch') is None
    assert 'PUT' in resp.getheader('Allow')
    log = [r['method'] for r in stats()['log']]
    assert log.count('OPTIONS') == 2, log


def t_ietf_delete_expire():
    reset()
    status, resp, _ = ietf_create()
    path = ietf_path(resp)
    assert ietf_patch(path, 0, b'abc')[0] == 204
    status, _, _ = request('DELETE', path)
    assert status == 204, status
    assert request('HEAD', path)[0] == 404
    assert ietf_patch(path, 3, b'def')[0] == 404
    assert request('DELETE', path)[0] == 404
    entry, _ = ietf_stats(path)
    assert entry['state'] == 'deleted' and entry['offset'] == 3, entry
    assert not os.path.exists(os.path.join(F.root, 'resumable', entry['token']))
    # Unknown tokens.
    assert request('HEAD', '/resumable/' + '0' * 32)[0] == 404
    assert request('HEAD', '/resumable/../files/a.bin')[0] == 404
    # expire=S: the resource goes S seconds after its creation.
    status, resp, _ = ietf_create('expire=1')
    path = ietf_path(resp)
    assert request('HEAD', path)[0] == 204
    deadline = time.monotonic() + 5
    while request('HEAD', path)[0] != 404:
        assert time.monotonic() < deadline, 'the upload resource did not expire'
        time.sleep(0.1)
    entry, _ = ietf_stats(path)
    assert entry['state'] == 'expired', entry


def t_ietf_drop_at():
    reset()
    body = os.urandom(600000)
    status, resp, _ = ietf_create('drop-at=100000,450000')
    path = ietf_path(resp)
    # The first append is reset after 100000 bytes; they stay.
    assert raw_patch_dropped(path, 0, body) == b''
    status, resp, _ = request('HEAD', path)
    assert resp.getheader('Upload-Offset') == '100000', resp.getheader('Upload-Offset')
    # The resume is reset at 450000 in total.
    assert raw_patch_dropped(path, 100000, body[100000:]) == b''
    status, resp, _ = request('HEAD', path)
    offset = int(resp.getheader('Upload-Offset'))
    assert offset == 450000, offset
    status, resp, data = ietf_patch(path, offset, body[offset:], complete=True)
    assert status == 200 and json.loads(data)['sha256'] == sha(body), (status, data)
    entry, doc = ietf_stats(path)
    assert entry['drops'] == 2 and entry['complete'] is True, entry
    assert entry['received'] == len(body) and doc['received'] == len(body), entry
    outcomes = [(r['method'], r['outcome'], r['received']) for r in entry['requests']]
    assert outcomes == [('POST', 'done', 0), ('PATCH', 'drop', 100000), ('HEAD', None, 0),
                        ('PATCH', 'drop', 350000), ('HEAD', None, 0),
                        ('PATCH', 'done', 150000)], outcomes


def t_ietf_lose_answer_interrupt():
    reset()
    status, resp, _ = ietf_create('lose-answer=1')
    path = ietf_path(resp)
    # The first append is processed but its answer is lost; appending again at the old
    # offset gets 409 with the right one.
    try:
        status = ietf_patch(path, 0, b'q' * 5000)[0]
    except (ConnectionResetError, http.client.RemoteDisconnected):
        status = None
    assert status is None, status
    status, resp, _ = ietf_patch(path, 0, b'q' * 5000)
    assert status == 409 and resp.getheader('Upload-Offset') == '5000', status
    # A HEAD while an append is still sending ends that append; its bytes stay.
    sock = socket.create_connection(('127.0.0.1', F.port), timeout=TIMEOUT)
    try:
        sock.sendall(('PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/partial-upload\r\n'
                      'Upload-Offset: 5000\r\nUpload-Complete: ?0\r\nContent-Length: 100000\r\n\r\n'
                      % path).encode() + b'r' * 1234)
        deadline = time.monotonic() + 5
        while ietf_stats(path)[0]['offset'] != 6234:
            assert time.monotonic() < deadline, 'the append did not arrive'
            time.sleep(0.02)
        status, resp, _ = request('HEAD', path)
        assert status == 204 and resp.getheader('Upload-Offset') == '6234'
        sock.settimeout(TIMEOUT)
        try:
            assert sock.recv(100) == b''
        except ConnectionResetError:
            pass
    finally:
        sock.close()
    entry, _ = ietf_stats(path)
    assert entry['interrupted'] == 1 and entry['lost_answers'] == 1, entry
    assert entry['sha256'] == sha(b'q' * 5000 + b'r' * 1234)


TESTS = [
    ('readiness endpoint', t_hello),
    ('plain GET, sha256 and headers, keep-alive, 404 and 400', t_plain_get),
    ('Range with If-Range (ETag and date) gives 206', t_range_if_range),
    ('mismatched If-Range gives 200 with the whole file', t_if_range_mismatch),
    ('unsatisfiable range gives 416 bytes */N', t_unsatisfiable),
    ('norange ignores Range', t_norange),
    ('etag=rotate, weak etag, noetag', t_etag_rotate),
    ('wrongrange shifts the 206', t_wrongrange),
    ('/_replace: a new version with new ETag and Last-Modified', t_replace),
    ('ifrange=ignore: a stale If-Range gets 206 of the new version', t_ifrange_ignore),
    ('rangetotal: a 206 names another complete length', t_rangetotal),
    ('etag=V: a grown or shrunk file keeps its ETag in a 206', t_grown_same_etag),
    ('cut-first limits drop, stall and short to the first K answers', t_cut_first),
    ('drop resets after N bytes', t_drop),
    ('short sends N bytes then closes cleanly', t_short),
    ('stall stops after N bytes', t_stall),
    ('status with retry-after', t_status_retry_after),
    ('fail-first fails K times then serves', t_fail_first),
    ('redirect=2 then served; loop; location', t_redirect),
    ('bigheaders', t_bigheaders),
    ('length: a Content-Length sent verbatim', t_length),
    ('gzip with Range on the compressed bytes', t_gzip_range),
    ('rate throttles the body', t_rate),
    ('PUT upload recorded with sha256 and headers', t_put_upload),
    ('chunked POST upload', t_chunked_post),
    ('upload faults: fail-first, early, drop, redirect, bigbody', t_upload_faults),
    ('upload: early=close, continue=0, idem, gate', t_upload_expect_idem_gate),
    ('stats counters and max_active with 3 concurrent requests', t_stats_and_concurrency),
    ('20 concurrent connections', t_sixteen_connections),
    ('reset zeroes the counters', t_reset),
    ('TLS', t_tls),
    ('IETF creation: 201 with Location, Upload-Offset, Upload-Limit; ?1; plain', t_ietf_creation),
    ('IETF HEAD, PATCH, completion, 400 on a completed upload, 415', t_ietf_head_patch_complete),
    ('IETF wrong offset: 409 with the right Upload-Offset and the problem type', t_ietf_conflict),
    ('IETF limits: 413 over max-size and max-append-size; OPTIONS probe', t_ietf_limits),
    ('IETF DELETE then 404; expire', t_ietf_delete_expire),
    ('IETF drop-at resets mid-append, the bytes stay, HEAD resumes', t_ietf_drop_at),
    ('IETF lose-answer then 409; a HEAD ends an append in flight', t_ietf_lose_answer_interrupt),
    ('exits when stdin is closed', t_stdin_eof_exits),
]

F = None


def main():
    global F

    def watchdog():
        print('Bail out! the self-test took longer than 28 s', flush=True)
        os._exit(1)

    timer = threading.Timer(28, watchdog)
    timer.daemon = True
    timer.start()

    print('1..%d' % len(TESTS), flush=True)
    failed = 0
    F = Fixture()
    try:
        for i, (name, fn) in enumerate(TESTS, 1):
            start = time.monotonic()
            try:
                fn()
                print('ok %d - %s' % (i, name), flush=True)
                print('# %.2f s' % (time.monotonic() - start), flush=True)
            except Exception:
                failed += 1
                print('not ok %d - %s' % (i, name), flush=True)
                for line in traceback.format_exc().splitlines():
                    print('# ' + line, flush=True)
    finally:
        F.close()
    timer.cancel()
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
