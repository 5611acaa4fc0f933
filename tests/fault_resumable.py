# fault_resumable.py: the server side of the HTTP working group's resumable-upload draft, for
# tests/fault-server.py
#
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# draft-ietf-httpbis-resumable-upload-09 to -11 (interop version 8), with the draft's rules on
# 409, Upload-Limit, HEAD and completed uploads.  No 104 interim responses: libsoup 3.2 over
# HTTP/1.1 reads nothing before it has sent the whole body, so a client learns the upload URL
# from a creation with Upload-Complete: ?0 and an empty body, which the draft allows.
#
# URLs:
#   /resumable                 creation: POST or PUT with Upload-Complete: ?0 or ?1 (and an
#                              optional body, Upload-Length, Upload-Draft-Interop-Version: 8).
#                              ?0 and the body processed: 201, Location, Upload-Offset,
#                              Upload-Complete: ?0, Upload-Limit.  ?1 and the whole body: the
#                              final response (see below).  Without Upload-Complete, or with an
#                              interop version other than 8, the header is ignored as the draft
#                              says a non-resumable resource does: a plain one-shot upload with
#                              the final response and no Location.
#   /resumable/<token>         the upload resource (the token is 32 random hex digits):
#     HEAD    204 with Upload-Offset, Upload-Complete, Upload-Length (when known), Upload-Limit
#             (when a limit applies) and Cache-Control: no-store
#     PATCH   Content-Type: application/partial-upload, Upload-Offset: N, Upload-Complete: ?0|?1.
#             ?0: 204 with Upload-Complete: ?0, Upload-Offset (the new offset) and Upload-Limit.
#             ?1: the final response.  A wrong offset: 409 with the right Upload-Offset and the
#             problem type mismatching-upload-offset (expected-offset, provided-offset).  On a
#             completed upload: 400 with the problem type inconsistent-upload-length (a body) or
#             completed-upload (no body).  Another content type: 415 with Accept-Patch.  No
#             valid Upload-Offset or Upload-Complete: 400.  Over max-append-size or max-size:
#             413 with Upload-Limit.  Past a known length: 400 inconsistent-upload-length.
#     DELETE  204; the resource and its bytes are gone, later requests get 404.
#     OPTIONS 204 with Allow and Accept-Patch: application/partial-upload.
#   The final response (the one the app gets): final-status (default 200), Upload-Complete: ?1,
#   Content-Type: application/json, {"token": T, "size": N, "sha256": HEX} of the whole body.
#   A rejected request's body is read and thrown away (counted in "discarded") so that a client
#   that sends its whole body before reading, as libsoup does, still gets the answer; with
#   "Expect: 100-continue" the answer comes instead of the 100 and the connection closes.
#   A request on an upload resource while another one is still appending to it ends the earlier
#   one first (its connection is shut down; the bytes it delivered stay), as the draft's section
#   on concurrency recommends.
#
# What a client can probe (AUTO):
#   - OPTIONS on the target: an IETF resource answers with Accept-Patch naming
#     application/partial-upload (required since draft -10; a -09 server may not send it) and
#     Upload-Limit when limits apply.  A tus server answers with Tus-Resumable and Tus-Version.
#     A plain resource (here /upload/<name>) answers with Allow and neither.
#   - Otherwise the draft's own way: a creation with Upload-Complete: ?0 and an empty body; a
#     201 (or a 104) with Location means resumable.  A plain server ignores the header and may
#     store an empty file, so that probe has a side effect the OPTIONS probe has not.
#
# Knobs (query parameters on the creation URL; they stay with the upload resource, whose URL
# carries none; on OPTIONS /resumable the limits are announced as well):
#   max-size=N          Upload-Limit max-size; a creation with a larger length or an append
#                       past it gets 413
#   max-append-size=N   Upload-Limit max-append-size; a creation or append body larger gets 413
#   max-age=S           Upload-Limit max-age, the remaining seconds counted from creation
#                       (announced only; expire= makes the resource go)
#   expire=S            the upload resource is gone S seconds after its creation (404)
#   drop-at=N[,N2...]   reset the connection once N body bytes (counted across the creation
#                       and every append of this upload) have been received; each point once.
#                       The bytes received before the reset are kept: HEAD names them.
#   lose-answer=K[,K2]  the K-th accepted append (1-based) is processed in full, then the
#                       connection is reset without an answer: a client that appends again at
#                       its old offset gets 409 with the right one
#   final-status=N      the status of the final response (default 200)
#   relative-location=1 Location is a path, not an absolute URL
#   and, on the creation request only, the common knobs delay, auth, status, fail-first,
#   retry-after, redirect and location of fault-server.py.
#
# Stats: GET /_stats has a "resumable" section: "received" (every body byte read by any
# request to /resumable and its upload resources since the last /_reset, kept or thrown away)
# and "uploads", one entry per upload resource in creation order: token, path, resumable,
# state (active, deleted, expired, invalid), offset, length, complete, sha256 (of the bytes
# stored so far, the whole upload once complete), received, discarded, max_body (the largest
# body one request delivered), appends, drops, lost_answers, interrupted, interop, method,
# headers (of the creation) and requests (method, offset asked, complete asked, received,
# status, outcome).  /_reset zeroes the counters and the request lists; the uploads stay.

import hashlib
import json
import os
import re
import secrets
import socket
import threading
import time

INTEROP_VERSION = '8'
PARTIAL_UPLOAD = 'application/partial-upload'
PROBLEM = 'https://iana.org/assignments/http-problem-types#'
CHUNK = 256 * 1024
LOCK_WAIT = 10.0        # how long a request waits for the one it interrupted to let go


def sf_integer(value):
    """The non-negative Integer of an Item Structured Field (parameters ignored), or None when
    the field is absent or not one, and must then be ignored."""
    if value is None:
        return None
    item = value.split(';', 1)[0].strip()
    if not re.fullmatch(r'[0-9]{1,15}', item):
        return None
    return int(item)


def sf_boolean(value):
    """The Boolean of an Item Structured Field, or None when absent or not a Boolean."""
    if value is None:
        return None
    item = value.split(';', 1)[0].strip()
    return {'?0': False, '?1': True}.get(item)


def knob_int(q, name):
    value = q.get(name)
    if value is None or not re.fullmatch(r'[0-9]{1,15}', value.strip()):
        return None
    return int(value.strip())


def knob_list(q, name):
    value = q.get(name, '')
    return sorted(int(v) for v in value.split(',') if re.fullmatch(r'[0-9]{1,15}', v.strip()))


def limits_header(max_size, max_append, max_age):
    parts = []
    if max_size is not None:
        parts.append('max-size=%d' % max_size)
    if max_append is not None:
        parts.append('max-append-size=%d' % max_append)
    if max_age is not None:
        parts.append('max-age=%d' % max_age)
    return ', '.join(parts) if parts else None


class Resource:
    """One upload resource: its bytes on disk, its state and its counters."""

    def __init__(self, registry, token, q, method, headers, interop, resumable):
        self.token = token
        self.file = os.path.join(registry.folder, token)
        self.resumable = resumable
        self.method = method
        self.headers = [[k, v] for k, v in headers.items()]
        self.interop = interop
        self.created = time.monotonic()
        self.created_wall = time.time()
        self.max_size = knob_int(q, 'max-size')
        self.max_append = knob_int(q, 'max-append-size')
        self.max_age = knob_int(q, 'max-age')
        self.expire = knob_int(q, 'expire')
        self.drop_points = knob_list(q, 'drop-at')
        self.lose_answers = set(knob_list(q, 'lose-answer'))
        self.final_status = knob_int(q, 'final-status') or 200
        self.state = 'active'
        self.offset = 0
        self.length = None
        self.complete = False
        self.digest = hashlib.sha256()
        self.sha256 = self.digest.hexdigest()
        self.body_total = 0         # body bytes appended over the whole life, for drop-at
        self.accepted = 0           # appends accepted over the whole life, for lose-answer
        self.lock = threading.Lock()    # one request at a time
        self.current = None         # the handler appending now
        self.reset_counters()
        with open(self.file, 'wb'):
            pass

    def reset_counters(self):
        self.received = 0
        self.discarded = 0
        self.max_body = 0
        self.appends = 0
        self.drops = 0
        self.lost_answers = 0
        self.interrupted = 0
        self.requests = []

    def limits(self):
        max_age = None
        if self.max_age is not None:
            max_age = max(0, self.max_age - int(time.monotonic() - self.created))
        return limits_header(self.max_size, self.max_append, max_age)

    def gone(self):
        """True when the resource no longer answers (deleted, expired or invalid)."""
        if (self.state == 'active' and self.expire is not None
                and time.monotonic() - self.created >= self.expire):
            self.state = 'expired'
            self.remove_file()
        return self.state != 'active'

    def remove_file(self):
        try:
            os.unlink(self.file)
        except OSError:
            pass

    def to_dict(self):
        return {
            'token': self.token,
            'path': '/resumable/' + self.token,
            'resumable': self.resumable,
            'state': self.state,
            'offset': self.offset,
            'length': self.length,
            'complete': self.complete,
            'sha256': self.sha256,
            'received': self.received,
            'discarded': self.discarded,
            'max_body': self.max_body,
            'appends': self.appends,
            'drops': self.drops,
            'lost_answers': self.lost_answers,
            'interrupted': self.interrupted,
            'interop': self.interop,
            'method': self.method,
            'headers': list(self.headers),
            'requests': [dict(r) for r in self.requests],
            'time': self.created_wall,
        }


class Registry:
    """Every upload resource of the server, by token."""

    def __init__(self, folder):
        self.folder = folder
        self.lock = threading.Lock()
        self.resources = {}
        self.unattached = 0     # body bytes of requests that created nothing

    def create(self, q, method, headers, interop, resumable):
        os.makedirs(self.folder, exist_ok=True)
        with self.lock:
            token = secrets.token_hex(16)
            res = Resource(self, token, q, method, headers, interop, resumable)
            self.resources[token] = res
            return res

    def get(self, token):
        with self.lock:
            return self.resources.get(token)

    def count_unattached(self, n):
        with self.lock:
            self.unattached += n

    def reset(self):
        with self.lock:
            self.unattached = 0
            for res in self.resources.values():
                res.reset_counters()

    def to_dict(self):
        with self.lock:
            uploads = [res.to_dict() for res in self.resources.values()]
            received = self.unattached + sum(u['received'] for u in uploads)
        return {'received': received, 'uploads': uploads}


class BodyReader:
    """The request body, de-chunked when needed."""

    def __init__(self, h):
        self.rfile = h.rfile
        self.chunked = h.headers.get('Transfer-Encoding', '').lower().strip() == 'chunked'
        self.left = None if self.chunked else (sf_integer(h.headers.get('Content-Length')) or 0)
        self.chunk_left = 0
        self.done = False

    def at_end(self):
        return self.done or (not self.chunked and self.left == 0)

    def read(self, want):
        """At most @want bytes, as soon as some arrived (so the offset follows what came);
        b'' at the end of the body.  EOFError when the peer went away,
        ValueError when the chunked framing is broken."""
        if self.at_end():
            return b''
        if self.chunked:
            if self.chunk_left == 0:
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
                    self.done = True
                    return b''
                self.chunk_left = size
            data = self.rfile.read1(min(want, self.chunk_left))
            if not data:
                raise EOFError()
            self.chunk_left -= len(data)
            if self.chunk_left == 0:
                self.rfile.readline(3)
            return data
        data = self.rfile.read1(min(want, self.left))
        if not data:
            raise EOFError()
        self.left -= len(data)
        return data


def body_length(h):
    """The request's Content-Length, 0 without one, None for a chunked body; -1 when broken."""
    if h.headers.get('Transfer-Encoding', '').lower().strip() == 'chunked':
        return None
    value = h.headers.get('Content-Length')
    if value is None:
        return 0
    n = sf_integer(value)
    return -1 if n is None else n


class Route:
    """One request to /resumable or to an upload resource."""

    def __init__(self, h, registry, abort):
        self.h = h
        self.registry = registry
        self.abort = abort
        self.res = None
        self.entry = None
        self.continue_sent = False
        self.body_read = False

    # -- answers --------------------------------------------------------------------------------

    def send_continue(self):
        if not self.continue_sent and 'continue' in self.h.headers.get('Expect', '').lower():
            self.continue_sent = True
            self.h.wfile.write(b'HTTP/1.1 100 Continue\r\n\r\n')

    def count(self, n, discarded):
        if self.res is not None:
            self.res.received += n
            if discarded:
                self.res.discarded += n
        else:
            self.registry.count_unattached(n)
        if self.entry is not None:
            self.entry['received'] += n
        if self.h.record is not None:
            self.h.record['received'] = self.h.record.get('received', 0) + n

    def discard_body(self):
        """Reads and throws away the body of a rejected request, or, when the client waits for
        100 Continue, leaves it unsent and closes after the answer.  False: close after."""
        length = body_length(self.h)
        if length == 0 or self.body_read:
            return True
        if length == -1:
            return False
        if not self.continue_sent and 'continue' in self.h.headers.get('Expect', '').lower():
            return False
        reader = BodyReader(self.h)
        try:
            while True:
                data = reader.read(CHUNK)
                if not data:
                    return True
                self.count(len(data), True)
        except (EOFError, ValueError, OSError):
            self.h.hard_close()
            raise self.abort()

    def reject(self, code, text, headers=(), problem=None, extra=None):
        keep = self.discard_body()
        if problem is not None:
            doc = {'type': PROBLEM + problem, 'title': text}
            doc.update(extra or {})
            body, ctype = json.dumps(doc).encode('utf-8'), 'application/problem+json'
        else:
            body, ctype = (text + '\n').encode('utf-8'), 'text/plain; charset=utf-8'
        self.finish(code, body, ctype, headers, close=not keep)

    def finish(self, code, body=b'', ctype='text/plain; charset=utf-8', headers=(), close=False):
        if self.entry is not None:
            self.entry['status'] = code
        self.h.answer(code, body, content_type=ctype, headers=list(headers), close=close)

    def limit_headers(self, limits):
        return [('Upload-Limit', limits)] if limits else []

    def location(self, res):
        path = '/resumable/' + res.token
        host = self.h.headers.get('Host')
        if self.h.q.get('relative-location') == '1' or not host:
            return path
        scheme = 'https' if self.h.server.tls_context is not None else 'http'
        return '%s://%s%s' % (scheme, host, path)

    def final_answer(self, res, headers=()):
        doc = {'token': res.token, 'size': res.offset, 'sha256': res.sha256}
        self.finish(res.final_status, json.dumps(doc).encode('utf-8'), 'application/json',
                    [('Upload-Complete', '?1')] + list(headers))

    # -- the body -------------------------------------------------------------------------------

    def append_body(self, res, cap):
        """Appends the request body to @res, at most @cap bytes (None: no cap).  Returns 'done',
        'drop' (a drop-at point), 'eof' (the peer went or broke the framing) or 'over' (more
        than @cap bytes came)."""
        self.send_continue()
        self.body_read = True
        res.current = self.h
        try:
            return self.append_pieces(res, cap)
        finally:
            # Cleared before any answer or reset, so the peer's next request finds it clear.
            res.current = None

    def append_pieces(self, res, cap):
        reader = BodyReader(self.h)
        n = 0
        with open(res.file, 'ab', buffering=0) as out:
            while True:
                if reader.at_end():
                    return 'done'
                want = CHUNK
                if res.drop_points:
                    point = res.drop_points[0]
                    if point <= res.body_total:
                        res.drop_points.pop(0)
                        return 'drop'
                    want = min(want, point - res.body_total)
                if cap is not None:
                    if n >= cap:
                        want = 1
                    else:
                        want = min(want, cap - n)
                try:
                    data = reader.read(want)
                except (EOFError, ValueError, OSError):
                    return 'eof'
                if not data:
                    return 'done'
                if cap is not None and n >= cap:
                    self.count(len(data), True)
                    return 'over'
                out.write(data)
                res.digest.update(data)
                res.sha256 = res.digest.hexdigest()
                res.offset += len(data)
                res.body_total += len(data)
                n += len(data)
                res.max_body = max(res.max_body, n)
                self.count(len(data), False)

    def broken(self, res, outcome):
        """Ends a request whose body did not arrive whole; the bytes that came stay."""
        self.entry['outcome'] = outcome
        if outcome == 'drop':
            res.drops += 1
        self.h.hard_close()
        raise self.abort()

    # -- creation -------------------------------------------------------------------------------

    def options(self, allow):
        q = self.h.q
        limits = limits_header(knob_int(q, 'max-size'), knob_int(q, 'max-append-size'),
                               knob_int(q, 'max-age'))
        if self.res is not None:
            limits = self.res.limits()
        self.discard_body()
        self.finish(204, headers=[('Allow', allow), ('Accept-Patch', PARTIAL_UPLOAD),
                                  ('Upload-Draft-Interop-Version', INTEROP_VERSION)]
                    + self.limit_headers(limits))

    def create(self):
        h = self.h
        fault = h.common_faults(307)
        if fault is not None:
            code, kind = fault
            keep = self.discard_body()
            if kind == 'redirect':
                headers = [('Location', h.redirect_target())]
            else:
                headers = h.fail_headers()
            self.finish(code, h.text_for(code), headers=headers, close=not keep)
            return

        complete = sf_boolean(h.headers.get('Upload-Complete'))
        interop = h.headers.get('Upload-Draft-Interop-Version')
        resumable = complete is not None and (interop is None
                                              or interop.strip() == INTEROP_VERSION)
        if not resumable:
            complete = True

        q = h.q
        max_size, max_append = knob_int(q, 'max-size'), knob_int(q, 'max-append-size')
        limits = limits_header(max_size, max_append, knob_int(q, 'max-age'))
        cl = body_length(h)
        if cl == -1:
            self.reject(400, 'Content-Length is not a number')
            return
        length = sf_integer(h.headers.get('Upload-Length')) if resumable else None
        if complete and cl is not None:
            if length is not None and length != cl:
                self.reject(400, 'Upload-Length %d and the %d bytes of a complete upload differ'
                            % (length, cl), problem='inconsistent-upload-length')
                return
            length = cl
        if resumable and max_size is not None and length is not None and length > max_size:
            self.reject(413, 'the upload of %d bytes is larger than max-size %d'
                        % (length, max_size), self.limit_headers(limits))
            return
        if resumable and max_append is not None and cl is not None and cl > max_append:
            self.reject(413, 'a body of %d bytes is larger than max-append-size %d'
                        % (cl, max_append), self.limit_headers(limits))
            return

        res = self.registry.create(q, h.command, h.headers, interop, resumable)
        self.res = res
        res.length = length
        with res.lock:
            self.entry = {'method': h.command, 'offset': None, 'complete': complete,
                          'received': 0, 'status': None, 'outcome': None}
            res.requests.append(self.entry)
            caps = [c for c in (max_append, max_size, length) if c is not None]
            outcome = self.append_body(res, min(caps) if resumable and caps else None)
            if outcome in ('drop', 'eof'):
                self.broken(res, outcome)
            if outcome == 'over':
                res.state = 'invalid'
                self.entry['outcome'] = 'over'
                self.finish(413, b'the body is larger than the limits allow\n',
                            headers=self.limit_headers(res.limits()), close=True)
                return
            self.entry['outcome'] = 'done'
            if complete:
                if length is not None and res.offset != length:
                    res.state = 'invalid'
                    self.reject(400, 'the upload ended at %d bytes, not at its length %d'
                                % (res.offset, length), problem='inconsistent-upload-length')
                    return
                res.complete = True
                res.length = res.offset
                headers = [('Location', self.location(res))] if resumable else []
                self.final_answer(res, headers)
                return
            self.finish(201, b'', headers=[('Location', self.location(res)),
                                           ('Upload-Offset', str(res.offset)),
                                           ('Upload-Complete', '?0'),
                                           ('Upload-Draft-Interop-Version', INTEROP_VERSION)]
                        + self.limit_headers(res.limits()))

    # -- the upload resource --------------------------------------------------------------------

    def resource(self, token):
        h = self.h
        res = self.registry.get(token)
        if h.command == 'OPTIONS' and res is not None and not res.gone():
            self.res = res
            self.options('HEAD, PATCH, DELETE, OPTIONS')
            return
        if res is None:
            self.reject(404, 'no upload resource %s' % token)
            return
        self.res = res

        # Whoever is still appending is taken to have failed (the draft's concurrency rule).
        previous = res.current
        if previous is not None:
            res.interrupted += 1
            try:
                previous.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if not res.lock.acquire(timeout=LOCK_WAIT):
            self.reject(503, 'the upload resource is busy')
            return
        try:
            self.entry = {'method': h.command,
                          'offset': h.headers.get('Upload-Offset'),
                          'complete': sf_boolean(h.headers.get('Upload-Complete')),
                          'received': 0, 'status': None, 'outcome': None}
            res.requests.append(self.entry)
            if res.gone():
                self.reject(404, 'the upload resource %s is %s' % (token, res.state))
            elif h.command == 'HEAD':
                self.retrieve_offset(res)
            elif h.command == 'PATCH':
                self.append(res)
            elif h.command == 'DELETE':
                self.discard_body()
                res.state = 'deleted'
                res.remove_file()
                self.finish(204)
            else:
                self.reject(405, 'method %s not allowed on an upload resource' % h.command,
                            [('Allow', 'HEAD, PATCH, DELETE, OPTIONS')])
        finally:
            res.lock.release()

    def retrieve_offset(self, res):
        headers = [('Upload-Offset', str(res.offset)),
                   ('Upload-Complete', '?1' if res.complete else '?0'),
                   ('Cache-Control', 'no-store')]
        if res.length is not None:
            headers.append(('Upload-Length', str(res.length)))
        headers += self.limit_headers(res.limits())
        self.finish(204, headers=headers)

    def append(self, res):
        h = self.h
        ctype = h.headers.get('Content-Type', '').split(';', 1)[0].strip().lower()
        if ctype != PARTIAL_UPLOAD:
            self.reject(415, 'an append needs Content-Type %s, not "%s"' % (PARTIAL_UPLOAD, ctype),
                        [('Accept-Patch', PARTIAL_UPLOAD)])
            return
        complete = sf_boolean(h.headers.get('Upload-Complete'))
        if complete is None:
            self.reject(400, 'Upload-Complete is missing or not ?0 or ?1')
            return
        offset = sf_integer(h.headers.get('Upload-Offset'))
        if offset is None:
            self.reject(400, 'Upload-Offset is missing or not a non-negative integer')
            return
        cl = body_length(h)
        if cl == -1:
            self.reject(400, 'Content-Length is not a number')
            return
        if res.complete:
            if cl == 0:
                self.reject(400, 'upload is already completed', problem='completed-upload')
            else:
                self.reject(400, 'upload is already completed; no bytes can be appended',
                            problem='inconsistent-upload-length')
            return
        if offset != res.offset:
            self.reject(409, 'offset from request does not match offset of resource',
                        [('Upload-Offset', str(res.offset))], problem='mismatching-upload-offset',
                        extra={'expected-offset': res.offset, 'provided-offset': offset})
            return
        limits = self.limit_headers(res.limits())
        if cl is not None and res.max_append is not None and cl > res.max_append:
            self.reject(413, 'a body of %d bytes is larger than max-append-size %d'
                        % (cl, res.max_append), limits)
            return
        if cl is not None and res.max_size is not None and offset + cl > res.max_size:
            self.reject(413, 'the upload would reach %d bytes, past max-size %d'
                        % (offset + cl, res.max_size), limits)
            return
        length = sf_integer(h.headers.get('Upload-Length'))
        if length is not None and res.length is not None and length != res.length:
            self.reject(400, 'Upload-Length %d differs from the length %d given before'
                        % (length, res.length), problem='inconsistent-upload-length')
            return
        known = length if length is not None else res.length
        if known is not None and cl is not None and (offset + cl > known
                                                     or (complete and offset + cl != known)):
            self.reject(400, 'a body of %d bytes at offset %d does not fit the length %d'
                        % (cl, offset, known), problem='inconsistent-upload-length')
            return
        if complete and cl is not None:
            known = offset + cl
        res.length = known

        caps = []
        if res.max_append is not None:
            caps.append(res.max_append)
        if res.max_size is not None:
            caps.append(res.max_size - offset)
        if known is not None:
            caps.append(known - offset)
        res.appends += 1
        res.accepted += 1
        number = res.accepted
        outcome = self.append_body(res, min(caps) if caps else None)
        if outcome in ('drop', 'eof'):
            self.broken(res, outcome)
        if outcome == 'over':
            res.state = 'invalid'
            self.entry['outcome'] = 'over'
            self.finish(413, b'the body is larger than the limits allow\n',
                        headers=limits, close=True)
            return
        if complete:
            if known is not None and res.offset != known:
                res.state = 'invalid'
                self.reject(400, 'the upload ended at %d bytes, not at its length %d'
                            % (res.offset, known), problem='inconsistent-upload-length')
                return
            res.complete = True
            res.length = res.offset
        self.entry['outcome'] = 'done'
        if number in res.lose_answers:
            res.lost_answers += 1
            self.entry['outcome'] = 'lost-answer'
            self.h.hard_close()
            raise self.abort()
        if complete:
            self.final_answer(res)
            return
        self.finish(204, headers=[('Upload-Complete', '?0'),
                                  ('Upload-Offset', str(res.offset))] + limits)


def route(h, registry, abort):
    """Answers a request to /resumable or /resumable/<token>; @abort is the exception that ends
    the handling of a connection that was closed."""
    r = Route(h, registry, abort)
    if h.record is not None:
        h.record['upload_offset'] = h.headers.get('Upload-Offset')
    if h.url_path == '/resumable':
        if h.command == 'OPTIONS':
            r.options('POST, PUT, OPTIONS')
        elif h.command in ('POST', 'PUT'):
            r.create()
        else:
            r.reject(405, 'method %s not allowed on /resumable' % h.command,
                     [('Allow', 'POST, PUT, OPTIONS')])
        return
    token = h.url_path[len('/resumable/'):]
    if not re.fullmatch(r'[0-9a-f]{32}', token):
        r.reject(404, 'no upload resource %s' % token[:80])
        return
    r.resource(token)
