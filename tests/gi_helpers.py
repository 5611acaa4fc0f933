# Shared by the Python GI test suites: the fault server and a main loop with a deadline.

import os
import subprocess
import sys
import tempfile
import json
import urllib.request

import gi

gi.require_version('Bg', '1')
gi.require_version('Soup', '3.0')
from gi.repository import Bg, GLib, GObject, Gio, Soup  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class FaultServer:
    def __init__(self, root=None):
        self.root = root or tempfile.mkdtemp(prefix='bg-gi-')
        self.proc = subprocess.Popen(
            ['/usr/bin/python3', os.path.join(HERE, 'fault-server.py'), '--root', self.root],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        assert line.startswith('PORT '), line
        self.port = int(line.split()[1])
        self.base = 'http://127.0.0.1:%d' % self.port

    def url(self, path):
        return self.base + path

    def stats(self):
        with urllib.request.urlopen(self.url('/_stats'), timeout=10) as r:
            return json.load(r)

    def close(self):
        self.proc.stdin.close()
        self.proc.stdout.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_until(predicate, timeout=30):
    """Iterates the default main context until predicate() is true."""
    ctx = GLib.MainContext.default()
    deadline = GLib.get_monotonic_time() + timeout * 1000000
    while not predicate():
        if GLib.get_monotonic_time() > deadline:
            raise TimeoutError('timed out after %d s' % timeout)
        ctx.iteration(True)


def write_random(path, size, seed=1):
    import hashlib
    import random
    rnd = random.Random(seed)
    data = rnd.randbytes(size)
    with open(path, 'wb') as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()
