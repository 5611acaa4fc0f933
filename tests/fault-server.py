#!/usr/bin/python3
# fault-server.py: a scripted, fault-injecting HTTP/1.1 server for the bg-glib tests
#
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Usage: fault-server.py --root DIR [--port 0] [--tls CERT KEY] [--verbose] [--ignore-stdin]
#
# Listens on 127.0.0.1, prints "PORT <n>" on stdout, and exits when its stdin reaches EOF or on
# SIGTERM.  Files under DIR are served at /files/<relpath>; request bodies sent to /upload/<name>
# are stored in DIR/uploads/<name>.  Query parameters choose faults per request (see the
# "Knobs" section below); /_stats, /_reset, /_hello, /_replace, /_gate and /_open are control
# endpoints (see "Control endpoints" below).  /resumable is the resumable-upload draft's
# creation endpoint and /resumable/<token> its upload resources: see tests/fault_resumable.py
# for their answers, knobs and the "resumable" section of /_stats.
#
# Knobs (query parameters, combinable; values are URL-decoded, so a literal '+' must be %2B):
#
#   common      delay=MS          sleep before answering
#               auth=SHA256       401 with "WWW-Authenticate: Basic realm=bg" unless the
#                                 SHA-256 (hex) of the request's Authorization value is SHA256:
#                                 the URL names the credential without holding it
#               status=N          answer N with a short text body (uploads: 2xx statuses keep the
#                                 normal processing and only change the code)
#               retry-after=V     adds "Retry-After: V" to status/fail-first answers
#               fail-first=K      the first K requests with this exact method+path+query fail
#               fail-status=N     the status for fail-first (default 503)
#               redirect=N        302 (307 for uploads) to the same URL with redirect=N-1
#               redirect=loop     302 (307) to the same URL forever
#               location=URL      302 (307) to URL
#               bigheaders=N      adds an "X-Big" header of N bytes
#               reason=V          the status line's reason phrase, each character of V sent as one
#                                 byte (Latin-1): %C3%BF is the byte 0xff, which is not UTF-8
#   /files      norange=1         ignore Range, always 200
#               accept-ranges=V   send "Accept-Ranges: V" instead of "bytes" (empty: none at all)
#               etag=V            send ETag V (verbatim); etag=rotate: a new one every request
#               noetag=1          neither ETag nor Last-Modified
#               wrongrange=D      a 206 starts D bytes after (or before, if negative) the request
#               gzip=1            Content-Encoding: gzip; ranges address the compressed bytes
#               rate=BPS          about BPS body bytes per second
#               drop=N            reset the connection after N body bytes
#               stall=N           stop after N body bytes, keep the socket (until the peer closes,
#                                 or 120 s)
#               short=N           full Content-Length, N body bytes, then a clean close
#               length=V          send "Content-Length: V" verbatim (a lying server: anything
#                                 at all); the body is still the real one, on a kept connection
#               cut-first=K       drop, stall and short cut only the first K answers to this
#                                 exact method+path+query; later ones are whole
#               ifrange=ignore    honour Range whatever If-Range names, as npm's serve and
#                                 http-server do: a file replaced since (see /_replace) comes
#                                 back as 206 of its new bytes, with its new validators
#               rangetotal=N      a 206 names N as the complete length: "bytes S-E/N", E at
#                                 most N-1; N <= S gives 416 "bytes */N".  The bytes, ETag and
#                                 200 answers stay those of the real file (a lying server)
#   /upload     early=1           status/fail-first answer before reading the body, then close
#                                 (after reading what the client still sends)
#               early=close       the same, but closed at once, unread bytes and all, as Python's
#                                 http.server does (the client's next write fails)
#               continue=0        never answer "Expect: 100-continue"; just wait for the body
#               idem=1            honour Idempotency-Key: a key seen on a completed upload gets
#                                 that upload's answer again, whatever the new body is
#               gate=NAME         stop reading at the gate until POST /_open?name=NAME
#               gate-at=N         the gate is after N body bytes (default: after the whole body)
#               drop=N            reset the connection after reading N body bytes
#               stall=N           stop reading after N body bytes (until the peer goes, or 120 s)
#               bigbody=N         the answer body is N bytes
#               (OPTIONS answers 204 with "Allow: PUT, POST, OPTIONS" and no Accept-Patch: a
#               plain upload target, for a client's probe)
#
# Order of evaluation: delay, auth, status, fail-first, redirect/location, then the normal answer.
#
# Control endpoints:
#   GET  /_hello                        "ok" once the server answers
#   GET  /_stats                        the counters and the request log, as JSON
#   POST /_reset                        zeroes the counters, the log and the fail-first counts
#   GET  /_gate?name=NAME               waits (at most 30 s) until a request stands at that gate
#                                       (200, else 504)
#   POST /_open?name=NAME               lets every request through that gate from then on
#   POST /_replace?path=REL&from=REL2   a new version of /files/REL: a copy of /files/REL2 takes
#                                       its place atomically, with a modification time at least
#                                       one second later, so its ETag and Last-Modified always
#                                       differ from the version before (a request in flight
#                                       finishes with the old bytes).  Answers the new size,
#                                       ETag and Last-Modified as JSON.
#
# Recipes: a file that changes between a download and its resume is A served with
# drop=N&cut-first=1, then /_replace, then the resume; add ifrange=ignore to get 206 of the
# new version for a stale If-Range.  A grown or shrunk file under the same ETag is etag=V with
# a /_replace by a longer or shorter file; a 206 whose complete length lies is rangetotal=N.

import argparse
import email.utils
import fcntl
import gzip
import hashlib
import json
import os
import select
import signal
import socket
import socketserver
import ssl
import stat
import struct
import sys
import tempfile
import termios
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

import fault_resumable

CHUNK = 256 * 1024
SOCKET_LIFETIME = 120.0     # the longest any connection waits on a peer
DRAIN_SECONDS = 2.0         # how long a clean close reads what the peer still sends
GATE_WAIT = 30.0            # how long GET /_gate waits for a request to reach the gate
VERBOSE = False


def log(fmt, *args):
    if VERBOSE:
        try:
            sys.stderr.write('fault-server: ' + (fmt % args if args else fmt) + '\n')
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


class Stats:
    """Every counter the control endpoints expose; one lock guards all of it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = 0
            self.bytes_sent = 0
            self.file_bytes_sent = 0
            self.active = 0
            self.max_active = 0
            self.per_path = {}
            self.log = []
            self.uploads = []
            self.fail_counts = {}
            self.rotate = 0
            self.idempotent = {}
            old_gates = getattr(self, 'gates', {})
            self.gates = {}
        # Nobody stays stuck at a gate that a reset forgot.
        for gate in old_gates.values():
            gate[1].set()

    def _path_entry(self, path):
        entry = self.per_path.get(path)
        if entry is None:
            entry = {'requests': 0, 'bytes_sent': 0, 'file_bytes_sent': 0}
            self.per_path[path] = entry
        return entry

    def begin(self, record):
        with self.lock:
            self.requests += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self._path_entry(record['path'])['requests'] += 1
            self.log.append(record)

    def end(self):
        with self.lock:
            self.active = max(0, self.active - 1)

    def sent(self, path, n, is_file):
        with self.lock:
            self.bytes_sent += n
            entry = self._path_entry(path)
            entry['bytes_sent'] += n
            if is_file:
                self.file_bytes_sent += n
                entry['file_bytes_sent'] += n

    def set_status(self, record, status):
        with self.lock:
            record['status'] = status

    def add_upload(self, upload):
        with self.lock:
            self.uploads.append(upload)

    def fail_now(self, key, limit):
        """True while fewer than @limit requests with @key have been failed."""
        with self.lock:
            count = self.fail_counts.get(key, 0)
            if count < limit:
                self.fail_counts[key] = count + 1
                return True
            return False

    def gate(self, name):
        """(arrived, opened) events of the gate @name."""
        with self.lock:
            gate = self.gates.get(name)
            if gate is None:
                gate = (threading.Event(), threading.Event())
                self.gates[name] = gate
            return gate

    def idempotent_answer(self, key):
        with self.lock:
            return self.idempotent.get(key)

    def remember_answer(self, key, answer):
        with self.lock:
            self.idempotent.setdefault(key, answer)

    def next_rotation(self):
        with self.lock:
            self.rotate += 1
            return self.rotate

    def to_json(self, extra=None):
        with self.lock:
            doc = {
                'requests': self.requests,
                'bytes_sent': self.bytes_sent,
                'file_bytes_sent': self.file_bytes_sent,
                'active': self.active,
                'max_active': self.max_active,
                'per_path': {k: dict(v) for k, v in self.per_path.items()},
                'log': [dict(r) for r in self.log],
                'uploads': [dict(u) for u in self.uploads],
            }
            doc.update(extra or {})
            return json.dumps(doc).encode('utf-8')


class GzipCache:
    """The gzip form of recently served files, keyed by path, size and mtime."""

    def __init__(self, keep=4):
        self.lock = threading.Lock()
        self.keep = keep
        self.entries = {}

    def get(self, f, st):
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self.lock:
            data = self.entries.get(key)
        if data is not None:
            return data
        f.seek(0)
        data = gzip.compress(f.read(), compresslevel=6, mtime=0)
        with self.lock:
            if len(self.entries) >= self.keep:
                self.entries.pop(next(iter(self.entries)))
            self.entries[key] = data
        return data


def parse_int(value, default=None):
    if value is None:
        return default
    try:
        return int(value.strip())
    except ValueError:
        return default


def parse_range(header, size):
    """(start, end) inclusive, 'unsatisfiable', or None to ignore the header."""
    if header is None:
        return None
    header = header.strip()
    if not header.lower().startswith('bytes='):
        return None
    spec = header[6:].strip()
    if ',' in spec or '-' not in spec:
        return None
    first, last = (s.strip() for s in spec.split('-', 1))
    if first == '':
        if not last.isdigit():
            return None
        n = int(last)
        if n == 0 or size == 0:
            return 'unsatisfiable'
        return (max(0, size - n), size - 1)
    if not first.isdigit() or (last != '' and not last.isdigit()):
        return None
    start = int(first)
    end = size - 1 if last == '' else int(last)
    if last != '' and end < start:
        return None
    if start >= size:
        return 'unsatisfiable'
    return (start, min(end, size - 1))


def is_weak(etag):
    return etag.startswith('W/')


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, root, tls_context):
        self.root = root
        self.tls_context = tls_context
        self.stats = Stats()
        self.gzip_cache = GzipCache()
        self.replace_lock = threading.Lock()
        self.resumable = fault_resumable.Registry(os.path.join(root, 'resumable'))
        super().__init__(address, Handler)

    def handle_error(self, request, client_address):
        if VERBOSE:
            super().handle_error(request, client_address)


class Abort(Exception):
    """Stops the handling of a connection that a fault has already closed."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'bg-fault-server/1'

    def version_string(self):
        return self.server_version

    # -- connection ---------------------------------------------------------------------------

    def setup(self):
        self.request.settimeout(SOCKET_LIFETIME)
        try:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if self.server.tls_context is not None:
            # The handshake runs here, in the connection's own thread, bounded by the timeout.
            self.connection = self.server.tls_context.wrap_socket(self.request, server_side=True)
        else:
            self.connection = self.request
        self.rfile = self.connection.makefile('rb', -1)
        self.wfile = socketserver._SocketWriter(self.connection)
        self.active = False
        self.headers_final = False
        self.record = None
        self.stat_path = None

    def finish(self):
        for f in (self.wfile, self.rfile):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.connection.close()
        except OSError:
            pass

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except Abort:
            self.close_connection = True
        except (OSError, ssl.SSLError) as e:
            log('connection error: %r', e)
            self.close_connection = True

    def handle_expect_100(self):
        # "100 Continue" is sent only once the body is really wanted (see read_upload_body),
        # so that early=1 answers come before the client sends anything.
        return True

    def log_message(self, fmt, *args):
        log('%s %s', self.address_string(), fmt % args)

    def hard_close(self):
        """Resets the connection (RST) without waiting for anything."""
        self.end_active()
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        except OSError:
            pass
        for f in (self.rfile, self.connection):
            try:
                f.close()
            except OSError:
                pass

    def wait_sent(self, limit=10.0):
        """Waits until the peer has acknowledged everything written so far."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                buf = fcntl.ioctl(self.connection.fileno(), termios.TIOCOUTQ, b'\0\0\0\0')
            except OSError:
                return
            if struct.unpack('i', buf)[0] == 0:
                return
            time.sleep(0.005)

    def drain(self, limit):
        """Reads and discards what the peer sends until it closes, for at most @limit seconds."""
        deadline = time.monotonic() + limit
        poller = select.poll()
        poller.register(self.connection.fileno(), select.POLLIN | select.POLLRDHUP)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                if not poller.poll(min(left, 1.0) * 1000):
                    continue
                data = self.connection.recv(65536)
            except ssl.SSLWantReadError:
                continue
            except (OSError, ValueError):
                return
            if not data:
                return

    def clean_close(self):
        """Sends FIN after what was written, reads what the peer still sends, then closes."""
        self.end_active()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.drain(DRAIN_SECONDS)
        for f in (self.rfile, self.connection):
            try:
                f.close()
            except OSError:
                pass

    def abrupt_close(self):
        """Sends FIN after what was written and closes at once, as http.server does: whatever
        the peer sent and nobody read makes the kernel answer its next bytes with a reset."""
        self.end_active()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        for f in (self.rfile, self.connection):
            try:
                f.close()
            except OSError:
                pass

    def wait_at_gate(self, upload):
        """Stops at the gate named by gate=, if any, until it is opened."""
        name = self.q.get('gate')
        if not name:
            return
        arrived, opened = self.server.stats.gate(name)
        upload['gated'] = True
        arrived.set()
        log('%s waits at gate %s', self.url_path, name)
        opened.wait(SOCKET_LIFETIME)

    def wait_for_hangup(self, limit):
        """Neither reads nor writes; returns when the peer resets or hangs up, or after @limit."""
        deadline = time.monotonic() + limit
        poller = select.poll()
        poller.register(self.connection.fileno(), select.POLLRDHUP | select.POLLERR | select.POLLHUP)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                events = poller.poll(min(left, 1.0) * 1000)
            except OSError:
                return
            if events:
                return

    # -- output -------------------------------------------------------------------------------

    def end_active(self):
        if self.active:
            self.active = False
            self.server.stats.end()

    def send_bytes(self, data, is_file=False, count=True, final=False):
        """Writes @data, counting every byte the kernel accepted.  @final: these are the last
        bytes of the response, which stops being active.

        The last byte goes out alone, after the counters already include it, so a client that
        has the whole of @data and then asks /_stats always finds it counted (and, with @final,
        the request no longer active)."""
        view = memoryview(data)
        counted = count and self.record is not None
        while len(view) > 1:
            n = self.connection.send(view[:-1])
            if counted:
                self.server.stats.sent(self.stat_path, n, is_file)
            view = view[n:]
        if not view:
            return
        if counted:
            self.server.stats.sent(self.stat_path, 1, is_file)
        if final:
            self.end_active()
        try:
            self.connection.sendall(view)
        except OSError:
            if counted:
                self.server.stats.sent(self.stat_path, -1, is_file)
            raise

    def flush_headers(self):
        if hasattr(self, '_headers_buffer'):
            data = b''.join(self._headers_buffer)
            self._headers_buffer = []
            self.send_bytes(data, count=False, final=self.headers_final)
            self.headers_final = False

    def start_response(self, code, headers, close=False, final=False):
        """Sends the status line and headers; @final when no body follows."""
        self.server.stats.set_status(self.record, code)
        self.headers_final = final or self.command == 'HEAD'
        self.send_response(code, self.q.get('reason'))
        for name, value in headers:
            self.send_header(name, value)
        big = parse_int(self.q.get('bigheaders'), 0)
        if big > 0:
            self.send_header('X-Big', 'a' * big)
        if close:
            self.send_header('Connection', 'close')
        self.end_headers()

    def answer(self, code, body=b'', content_type='text/plain; charset=utf-8', headers=(),
               close=False):
        """A complete small answer; HEAD and body-less statuses get no body."""
        bodyless = code < 200 or code in (204, 304)
        all_headers = list(headers)
        if not bodyless:
            all_headers += [('Content-Type', content_type), ('Content-Length', str(len(body)))]
        has_body = bool(body) and not bodyless and self.command != 'HEAD'
        self.start_response(code, all_headers, close=close, final=not has_body)
        if has_body:
            self.send_bytes(body, final=True)

    def text_for(self, code):
        reason = self.responses.get(code, ('Status',))[0]
        return ('%d %s\n' % (code, reason)).encode('utf-8')

    # -- dispatch -----------------------------------------------------------------------------

    def do_GET(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_OPTIONS(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        self.url_path = url.path
        self.url_query = url.query
        self.q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        self.stat_path = url.path
        self.record = None
        self.unauthorized = False

        if url.path.startswith('/_'):
            self.control()
            return

        self.record = {
            'method': self.command,
            'path': url.path,
            'query': url.query,
            'range': self.headers.get('Range'),
            'if_range': self.headers.get('If-Range'),
            'status': None,
        }
        stats = self.server.stats
        stats.begin(self.record)
        self.active = True
        try:
            if url.path.startswith('/files/'):
                self.route_files()
            elif url.path.startswith('/upload/'):
                self.route_upload()
            elif url.path == '/resumable' or url.path.startswith('/resumable/'):
                fault_resumable.route(self, self.server.resumable, Abort)
            else:
                self.discard_request_body()
                self.answer(404, self.text_for(404))
        finally:
            self.end_active()

    def control(self):
        self.discard_request_body()
        path = self.url_path
        if path == '/_stats' and self.command in ('GET', 'HEAD'):
            extra = {'resumable': self.server.resumable.to_dict()}
            self.send_control(200, self.server.stats.to_json(extra), 'application/json')
        elif path == '/_reset' and self.command == 'POST':
            self.server.stats.reset()
            self.server.resumable.reset()
            self.send_control(204, b'', None)
        elif path == '/_hello' and self.command in ('GET', 'HEAD'):
            self.send_control(200, b'ok', 'text/plain; charset=utf-8')
        elif path == '/_replace' and self.command == 'POST':
            self.replace_file()
        elif path == '/_gate' and self.command == 'GET' and self.q.get('name'):
            arrived, _ = self.server.stats.gate(self.q['name'])
            if arrived.wait(GATE_WAIT):
                self.send_control(200, b'waiting\n', 'text/plain; charset=utf-8')
            else:
                self.send_control(504, b'nobody came\n', 'text/plain; charset=utf-8')
        elif path == '/_open' and self.command == 'POST' and self.q.get('name'):
            _, opened = self.server.stats.gate(self.q['name'])
            opened.set()
            self.send_control(204, b'', None)
        elif path in ('/_stats', '/_reset', '/_hello', '/_replace', '/_gate', '/_open'):
            self.send_control(405, b'method not allowed\n', 'text/plain; charset=utf-8')
        else:
            self.send_control(404, b'not found\n', 'text/plain; charset=utf-8')

    def file_path(self, relpath):
        """The path under the root of a /files/ relative path, or None when it is unsafe."""
        if relpath is None:
            return None
        parts = relpath.split('/')
        if relpath == '' or relpath.startswith('/') or '\0' in relpath or '..' in parts:
            return None
        return os.path.join(self.server.root, relpath)

    def replace_file(self):
        """/_replace?path=REL&from=REL2: a copy of REL2 becomes the new version of REL."""
        target = self.file_path(self.q.get('path'))
        source = self.file_path(self.q.get('from'))
        if target is None or source is None:
            self.send_control(400, b'path and from must name files under the root\n',
                              'text/plain; charset=utf-8')
            return
        try:
            with open(source, 'rb') as f:
                data = f.read()
        except OSError:
            self.send_control(404, b'no such file to copy\n', 'text/plain; charset=utf-8')
            return

        # Whole seconds, and later than the old version's second: both the ETag (size and
        # nanoseconds) and Last-Modified (seconds) change, even for a file of the same size
        # replaced within the same second.
        with self.server.replace_lock:
            try:
                old_mtime = os.stat(target).st_mtime_ns // 1000000000
            except OSError:
                old_mtime = -1
            mtime = max(old_mtime + 1, int(time.time()))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix='.replace-', dir=os.path.dirname(target))
            try:
                with os.fdopen(fd, 'wb') as out:
                    out.write(data)
                os.utime(tmp, ns=(mtime * 1000000000, mtime * 1000000000))
                os.replace(tmp, target)
                st = os.stat(target)
            except OSError as e:
                os.unlink(tmp)
                self.send_control(500, ('%s\n' % e).encode('utf-8'), 'text/plain; charset=utf-8')
                return
        doc = {
            'path': self.q['path'],
            'size': st.st_size,
            'etag': '"%d-%d"' % (st.st_size, st.st_mtime_ns),
            'last_modified': email.utils.formatdate(st.st_mtime, usegmt=True),
        }
        self.send_control(200, json.dumps(doc).encode('utf-8'), 'application/json')

    def send_control(self, code, body, content_type):
        self.send_response(code)
        if code != 204:
            self.send_header('Content-Type', content_type)
            self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if body and self.command != 'HEAD':
            self.wfile.write(body)

    def discard_request_body(self):
        """Keeps the connection usable after a request whose body nobody wants."""
        if self.headers.get('Transfer-Encoding', '').lower().strip() == 'chunked':
            self.close_connection = True
            return
        length = parse_int(self.headers.get('Content-Length'), 0)
        if length < 0:
            self.close_connection = True
            return
        if length > 0:
            if 'continue' in self.headers.get('Expect', '').lower():
                self.wfile.write(b'HTTP/1.1 100 Continue\r\n\r\n')
            while length > 0:
                data = self.rfile.read(min(length, CHUNK))
                if not data:
                    raise Abort()
                length -= len(data)

    def common_faults(self, redirect_code):
        """delay, auth, status, fail-first, redirect: returns (code, kind) of an answer to give
        instead of the normal one, or None.  kind is 'fail' or 'redirect'."""
        delay = parse_int(self.q.get('delay'), 0)
        if delay > 0:
            time.sleep(delay / 1000.0)

        if 'auth' in self.q:
            given = self.headers.get('Authorization', '').encode('utf-8', 'surrogateescape')
            if hashlib.sha256(given).hexdigest() != self.q['auth'].lower():
                self.unauthorized = True
                return 401, 'fail'

        status = parse_int(self.q.get('status'))
        if status is not None and not (redirect_code == 307 and 200 <= status < 300):
            return status, 'fail'

        fail_first = parse_int(self.q.get('fail-first'), 0)
        if fail_first > 0:
            key = (self.command, self.url_path, self.url_query)
            if self.server.stats.fail_now(key, fail_first):
                return parse_int(self.q.get('fail-status'), 503), 'fail'

        if 'location' in self.q:
            return redirect_code, 'redirect'
        redirect = self.q.get('redirect')
        if redirect == 'loop' or parse_int(redirect, 0) > 0:
            return redirect_code, 'redirect'
        return None

    def fail_headers(self):
        headers = []
        if self.unauthorized:
            headers.append(('WWW-Authenticate', 'Basic realm="bg"'))
        if 'retry-after' in self.q:
            headers.append(('Retry-After', self.q['retry-after']))
        return headers

    def redirect_target(self):
        if 'location' in self.q:
            return self.q['location']
        redirect = self.q.get('redirect')
        pairs = urllib.parse.parse_qsl(self.url_query, keep_blank_values=True)
        if redirect != 'loop':
            n = parse_int(redirect, 0) - 1
            pairs = [(k, str(n) if k == 'redirect' else v) for k, v in pairs]
        query = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)
        host = self.headers.get('Host')
        target = self.url_path + ('?' + query if query else '')
        if host:
            scheme = 'https' if self.server.tls_context is not None else 'http'
            target = '%s://%s%s' % (scheme, host, target)
        return target

    # -- /files -------------------------------------------------------------------------------

    def route_files(self):
        if self.command not in ('GET', 'HEAD'):
            self.discard_request_body()
            self.answer(405, self.text_for(405), headers=[('Allow', 'GET, HEAD')])
            return
        self.discard_request_body()

        relpath = urllib.parse.unquote(self.url_path[len('/files/'):])
        parts = relpath.split('/')
        if (relpath == '' or relpath.startswith('/') or '\0' in relpath or '..' in parts):
            self.answer(400, self.text_for(400))
            return

        fault = self.common_faults(302)
        if fault is not None:
            code, kind = fault
            if kind == 'redirect':
                self.answer(code, self.text_for(code),
                            headers=[('Location', self.redirect_target())])
            else:
                self.answer(code, self.text_for(code), headers=self.fail_headers())
            return

        path = os.path.join(self.server.root, relpath)
        try:
            f = open(path, 'rb')
        except OSError:
            self.answer(404, self.text_for(404))
            return
        with f:
            # Size, validators and bytes all come from this one open file, even if a test
            # replaces it meanwhile.
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                self.answer(404, self.text_for(404))
                return
            self.serve_file(f, st)

    def serve_file(self, f, st):
        # The representation: its bytes, size and validators.
        use_gzip = self.q.get('gzip') == '1'
        data = None
        if use_gzip:
            data = self.server.gzip_cache.get(f, st)
            size = len(data)
        else:
            size = st.st_size
        suffix = '-gz' if use_gzip else ''
        etag_knob = self.q.get('etag')
        noetag = self.q.get('noetag') == '1'
        if noetag:
            etag = None
        elif etag_knob == 'rotate':
            etag = '"r%d"' % self.server.stats.next_rotation()
        elif etag_knob is not None:
            etag = etag_knob
        else:
            etag = '"%d-%d%s"' % (st.st_size, st.st_mtime_ns, suffix)
        last_modified = None if noetag else email.utils.formatdate(st.st_mtime, usegmt=True)

        headers = []
        accept_ranges = self.q.get('accept-ranges', 'bytes')
        if accept_ranges:
            headers.append(('Accept-Ranges', accept_ranges))
        if etag is not None:
            headers.append(('ETag', etag))
        if last_modified is not None:
            headers.append(('Last-Modified', last_modified))
        headers.append(('Content-Type', 'application/octet-stream'))
        if use_gzip:
            headers.append(('Content-Encoding', 'gzip'))

        # Range and If-Range.
        rng = None
        if self.q.get('norange') != '1':
            rng = parse_range(self.headers.get('Range'), size)
            if_range = self.headers.get('If-Range')
            if self.q.get('ifrange') == 'ignore':
                if_range = None
            if rng is not None and if_range is not None:
                if_range = if_range.strip()
                matches = False
                if etag_knob == 'rotate':
                    matches = False
                elif if_range.startswith('"') or if_range.startswith('W/'):
                    matches = (etag is not None and if_range == etag
                               and not is_weak(etag))
                else:
                    matches = last_modified is not None and if_range == last_modified
                if not matches:
                    rng = None

        # The complete length that partial answers name: the real one, or rangetotal's lie.
        claimed = parse_int(self.q.get('rangetotal'))
        if claimed is None or claimed < 0:
            claimed = size
        if rng is not None and rng != 'unsatisfiable' and rng[0] >= claimed:
            rng = 'unsatisfiable'

        if rng == 'unsatisfiable':
            self.start_response(416, [('Content-Range', 'bytes */%d' % claimed),
                                      ('Content-Length', '0')] + headers, final=True)
            return

        if rng is None:
            code, start, length = 200, 0, size
        else:
            start, end = rng
            shift = parse_int(self.q.get('wrongrange'), 0)
            if shift:
                start = min(max(0, start + shift), size - 1)
                end = max(start, min(end + shift, size - 1))
            end = max(start, min(end, claimed - 1))
            code, length = 206, end - start + 1
            headers.append(('Content-Range',
                            'bytes %d-%d/%d' % (start, start + length - 1, claimed)))
        headers.append(('Content-Length', self.q.get('length', str(length))))
        self.start_response(code, headers, final=(length == 0))
        if self.command == 'HEAD' or length == 0:
            return

        # The body, with its faults.
        limit = length
        fault_kind = None
        if self.cut_now():
            for kind in ('drop', 'stall', 'short'):
                n = parse_int(self.q.get(kind))
                if n is not None and 0 <= n < length and n < limit:
                    limit, fault_kind = n, kind
        rate = parse_int(self.q.get('rate'), 0)

        final = fault_kind is None
        if data is not None:
            self.send_body(lambda off, n: data[off:off + n], start, limit, rate, final)
        else:
            f.seek(start)
            self.send_body(lambda off, n: f.read(n), start, limit, rate, final)

        if fault_kind == 'drop':
            self.wait_sent()
            self.hard_close()
            raise Abort()
        if fault_kind == 'stall':
            self.close_connection = True
            self.drain(SOCKET_LIFETIME)
            self.hard_close()
            raise Abort()
        if fault_kind == 'short':
            self.clean_close()
            raise Abort()

    def cut_now(self):
        """Whether drop, stall and short apply to this answer (cut-first=K limits them)."""
        cut_first = parse_int(self.q.get('cut-first'))
        if cut_first is None:
            return True
        key = ('cut', self.command, self.url_path, self.url_query)
        return self.server.stats.fail_now(key, cut_first)

    def send_body(self, read, start, count, rate, final):
        """Sends @count bytes from offset @start, at about @rate bytes per second if set;
        @final: they end the response."""
        began = time.monotonic()
        sent = 0
        piece = CHUNK if rate <= 0 else max(1, min(CHUNK, rate // 20))
        while sent < count:
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
            chunk = read(start + sent, min(piece, count - sent))
            if not chunk:
                # The file shrank under us; the declared length cannot be honoured.
                self.hard_close()
                raise Abort()
            sent += len(chunk)
            self.send_bytes(chunk, is_file=True, final=final and sent >= count)

    # -- /upload ------------------------------------------------------------------------------

    def route_upload(self):
        if self.command == 'OPTIONS':
            self.discard_request_body()
            self.answer(204, headers=[('Allow', 'PUT, POST, OPTIONS')])
            return
        if self.command not in ('PUT', 'POST'):
            self.discard_request_body()
            self.answer(405, self.text_for(405), headers=[('Allow', 'PUT, POST')])
            return

        name = urllib.parse.unquote(self.url_path[len('/upload/'):])
        if name in ('', '.', '..') or '/' in name or '\0' in name:
            self.discard_request_body()
            self.answer(400, self.text_for(400))
            return

        upload = {
            'method': self.command,
            'name': name,
            'query': self.url_query,
            'size': 0,
            'sha256': hashlib.sha256(b'').hexdigest(),
            'complete': False,
            'status': None,
            'headers': [[k, v] for k, v in self.headers.items()],
            'time': time.time(),
        }

        fault = self.common_faults(307)
        early = self.q.get('early')
        if fault is not None and fault[1] == 'fail' and early in ('1', 'close'):
            code = fault[0]
            upload['status'] = code
            self.server.stats.add_upload(upload)
            self.answer(code, self.upload_body(code, None), headers=self.fail_headers(),
                        close=True)
            if early == 'close':
                self.abrupt_close()
            else:
                self.clean_close()
            raise Abort()

        key = self.headers.get('Idempotency-Key') if self.q.get('idem') == '1' else None
        upload['idempotency_key'] = key
        upload['replayed'] = False

        uploads_dir = os.path.join(self.server.root, 'uploads')
        os.makedirs(uploads_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.partial-', dir=uploads_dir)
        try:
            with os.fdopen(fd, 'wb') as out:
                outcome = self.read_upload_body(out, upload)
            if outcome != 'done':
                os.unlink(tmp)
                tmp = None
                upload['time'] = time.time()
                self.server.stats.add_upload(upload)
                if outcome == 'drop':
                    self.hard_close()
                elif outcome == 'stall':
                    self.close_connection = True
                    self.wait_for_hangup(SOCKET_LIFETIME)
                    self.hard_close()
                else:
                    self.hard_close()
                raise Abort()

            upload['time'] = time.time()
            if 'gate-at' not in self.q:
                self.wait_at_gate(upload)

            replay = self.server.stats.idempotent_answer(key) if key is not None else None
            if replay is not None:
                # A lax server: the key alone decides, the body is not compared.
                code, body, ctype = replay
                upload['status'] = code
                upload['complete'] = True
                upload['replayed'] = True
                self.server.stats.add_upload(upload)
                self.answer(code, body, content_type=ctype)
                return

            if fault is not None:
                code, kind = fault
                upload['status'] = code
                self.server.stats.add_upload(upload)
                if kind == 'redirect':
                    self.answer(code, self.upload_body(code, None),
                                headers=[('Location', self.redirect_target())])
                else:
                    self.answer(code, self.upload_body(code, None), headers=self.fail_headers())
                return

            os.replace(tmp, os.path.join(uploads_dir, name))
            tmp = None
            code = parse_int(self.q.get('status'), 201)
            upload['status'] = code
            upload['complete'] = True
            self.server.stats.add_upload(upload)
            doc = {'name': name, 'size': upload['size'], 'sha256': upload['sha256']}
            body = self.upload_body(code, json.dumps(doc).encode('utf-8'))
            ctype = 'application/json' if 'bigbody' not in self.q else 'application/octet-stream'
            if key is not None:
                self.server.stats.remember_answer(key, (code, body, ctype))
            self.answer(code, body, content_type=ctype)
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    def upload_body(self, code, default):
        n = parse_int(self.q.get('bigbody'))
        if n is not None and n >= 0:
            return b'b' * n
        return default if default is not None else self.text_for(code)

    def read_upload_body(self, out, upload):
        """Stores the request body in @out; returns 'done', 'drop', 'stall' or 'error'."""
        chunked = self.headers.get('Transfer-Encoding', '').lower().strip() == 'chunked'
        length = None
        if not chunked:
            length = parse_int(self.headers.get('Content-Length'), 0)
            if length < 0:
                return 'error'

        limit, kind = None, None
        for k in ('drop', 'stall'):
            n = parse_int(self.q.get(k))
            if n is not None and n >= 0 and (length is None or n < length):
                if limit is None or n < limit:
                    limit, kind = n, k

        if ('continue' in self.headers.get('Expect', '').lower() and (chunked or length > 0)
                and self.q.get('continue') != '0'):
            self.wfile.write(b'HTTP/1.1 100 Continue\r\n\r\n')

        digest = hashlib.sha256()
        gate_at = parse_int(self.q.get('gate-at'))

        def take(want):
            """Reads up to @want bytes, honouring the fault limit; None when it is reached."""
            nonlocal gate_at
            if limit is not None:
                room = limit - upload['size']
                if room <= 0:
                    return None
                want = min(want, room)
            if gate_at is not None:
                if upload['size'] >= gate_at:
                    gate_at = None
                    self.wait_at_gate(upload)
                else:
                    want = min(want, gate_at - upload['size'])
            data = self.rfile.read(want)
            if not data:
                raise EOFError()
            out.write(data)
            digest.update(data)
            upload['size'] += len(data)
            upload['sha256'] = digest.hexdigest()
            return data

        try:
            if chunked:
                while True:
                    line = self.rfile.readline(65537)
                    if not line:
                        raise EOFError()
                    size = int(line.split(b';', 1)[0].strip(), 16)
                    if size == 0:
                        while True:
                            trailer = self.rfile.readline(65537)
                            if not trailer:
                                raise EOFError()
                            if trailer in (b'\r\n', b'\n'):
                                break
                        break
                    while size > 0:
                        data = take(min(size, CHUNK))
                        if data is None:
                            return kind
                        size -= len(data)
                    self.rfile.readline(3)
                return 'done'

            remaining = length
            while remaining > 0:
                data = take(min(remaining, CHUNK))
                if data is None:
                    return kind
                remaining -= len(data)
            return 'done'
        except (EOFError, ValueError, OSError):
            return 'error'


def watch_stdin():
    """Exits the whole process once the parent closes our stdin (or dies)."""
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    os._exit(0)


def main():
    global VERBOSE

    parser = argparse.ArgumentParser(description='Fault-injecting HTTP server for the bg-glib tests')
    parser.add_argument('--root', required=True, help='folder served under /files/')
    parser.add_argument('--port', type=int, default=0, help='port on 127.0.0.1 (0: any free one)')
    parser.add_argument('--tls', nargs=2, metavar=('CERT', 'KEY'), help='serve HTTPS')
    parser.add_argument('--verbose', action='store_true', help='log to stderr')
    parser.add_argument('--ignore-stdin', action='store_true',
                        help='do not exit at EOF on stdin (for running by hand)')
    args = parser.parse_args()
    VERBOSE = args.verbose

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))

    if not args.ignore_stdin:
        threading.Thread(target=watch_stdin, name='stdin-watch', daemon=True).start()

    root = os.path.abspath(args.root)
    os.makedirs(root, exist_ok=True)

    tls_context = None
    if args.tls:
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.load_cert_chain(args.tls[0], args.tls[1])

    server = Server(('127.0.0.1', args.port), root, tls_context)
    sys.stdout.write('PORT %d\n' % server.server_address[1])
    sys.stdout.flush()
    log('serving %s on port %d%s', root, server.server_address[1], ' (TLS)' if tls_context else '')
    server.serve_forever(poll_interval=0.5)


if __name__ == '__main__':
    main()
