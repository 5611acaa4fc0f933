// server.mjs: a real tus 1.0 server (@tus/server with @tus/file-store) for the bg-glib tests
//
// SPDX-License-Identifier: LGPL-2.1-or-later
//
// Usage: node server.mjs --dir DIR --log FILE [--port 0] [--path /files] [--expire-ms MS]
//                        [--ignore-stdin]
//
// Listens on 127.0.0.1, prints "PORT <n>" on stdout once it accepts connections, and exits
// when its stdin reaches EOF (or on SIGTERM), like tests/fault-server.py.  The creation
// endpoint is --path (default /files); uploads live at <path>/<id>, stored in DIR.  Uploads
// expire --expire-ms after their last change (default one day), so POST answers carry
// Upload-Expires and OPTIONS names the expiration extension.
//
// Every request is appended to FILE as a JSON line, written before its response starts (or,
// for a request that never got one, when its connection closes), so a client that has an
// answer always finds its line:
//   {"time": ms, "event": "answer" or "close", "method", "path", "upload_offset" and
//    "upload_length" (request headers, or null), "status" (null when no response was sent),
//    "response_offset" (the answer's Upload-Offset, or null), "received" (body bytes that
//    reached the server, kept or not)}
// Body bytes that arrive after the answer started (a 409 answered while the client still
// sends) get one more line with "event": "late" and only those bytes in "received".  The sum of
// "received" over all lines is every body byte the server received.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import process from 'node:process';

import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

function parseArgs(argv) {
  const args = {
    port: 0, dir: null, log: null, path: '/files', expireMs: 24 * 3600 * 1000, ignoreStdin: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length)
        throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--port')
      args.port = Number.parseInt(value(), 10);
    else if (arg === '--dir')
      args.dir = value();
    else if (arg === '--log')
      args.log = value();
    else if (arg === '--path')
      args.path = value();
    else if (arg === '--expire-ms')
      args.expireMs = Number.parseInt(value(), 10);
    else if (arg === '--ignore-stdin')
      args.ignoreStdin = true;
    else
      throw new Error(`unknown argument ${arg}`);
  }
  if (!args.dir || !args.log)
    throw new Error('--dir and --log are required');
  if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535)
    throw new Error('--port must be 0 to 65535');
  if (!Number.isInteger(args.expireMs) || args.expireMs <= 0)
    throw new Error('--expire-ms must be a positive number of milliseconds');
  return args;
}

// The Upload-Offset among writeHead's arguments (a flat raw header list or an object).
function responseOffset(args) {
  for (const arg of args) {
    if (Array.isArray(arg)) {
      for (let i = 0; i + 1 < arg.length; i += 2) {
        if (String(arg[i]).toLowerCase() === 'upload-offset')
          return String(arg[i + 1]);
      }
    } else if (arg && typeof arg === 'object') {
      for (const [key, value] of Object.entries(arg)) {
        if (key.toLowerCase() === 'upload-offset')
          return String(value);
      }
    }
  }
  return null;
}

function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`tus-server: ${e.message}\n`);
    process.exit(2);
  }

  fs.mkdirSync(args.dir, { recursive: true });
  const logFd = fs.openSync(args.log, 'a');
  const writeLog = (entry) => fs.writeSync(logFd, `${JSON.stringify(entry)}\n`);

  const tus = new Server({
    path: args.path,
    datastore: new FileStore({ directory: args.dir, expirationPeriodInMilliseconds: args.expireMs }),
  });

  const server = http.createServer((req, res) => {
    const entry = {
      time: Date.now(),
      event: 'close',
      method: req.method,
      path: req.url,
      upload_offset: req.headers['upload-offset'] ?? null,
      upload_length: req.headers['upload-length'] ?? null,
      status: null,
      response_offset: null,
      received: 0,
    };
    let logged = null;
    const flush = () => {
      if (logged === null) {
        logged = entry.received;
        writeLog(entry);
      } else if (entry.received > logged) {
        writeLog({ ...entry, time: Date.now(), event: 'late', received: entry.received - logged });
        logged = entry.received;
      }
    };

    // Node's HTTP parser hands every body byte to push(): counting there sees all of them,
    // whoever reads the stream and whether or not the request completes.
    const push = req.push;
    req.push = function (chunk, encoding) {
      if (chunk)
        entry.received += chunk.length;
      return push.call(this, chunk, encoding);
    };
    const writeHead = res.writeHead;
    res.writeHead = function (status, ...rest) {
      entry.status = status;
      entry.event = 'answer';
      entry.response_offset = responseOffset(rest);
      flush();
      return writeHead.call(this, status, ...rest);
    };
    res.on('close', flush);

    tus.handle(req, res).catch((e) => {
      process.stderr.write(`tus-server: ${req.method} ${req.url}: ${e?.stack ?? e}\n`);
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end();
      }
    });
  });
  server.keepAliveTimeout = 120 * 1000;

  server.listen(args.port, '127.0.0.1', () => {
    process.stdout.write(`PORT ${server.address().port}\n`);
  });

  const quit = () => process.exit(0);
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
  if (!args.ignoreStdin) {
    process.stdin.on('end', quit);
    process.stdin.on('close', quit);
    process.stdin.on('error', quit);
    process.stdin.resume();
  }
}

main();
