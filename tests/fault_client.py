# tests/fault-server.py in a child process, for the Python suites. Standard library only, so
# suites that do not load the library through GI can use it too.

import json
import os
import select
import subprocess
import tempfile
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FAULT_SERVER = os.path.join(HERE, 'fault-server.py')
FIXTURES = os.path.join(HERE, 'fixtures')


class FaultServer:
    """The server exits when its stdin closes, so it never outlives the test."""

    def __init__(self, root=None, tls=False, startup_timeout=20):
        self.root = root or tempfile.mkdtemp(prefix='bg-fault-')
        os.makedirs(self.root, exist_ok=True)
        cmd = ['/usr/bin/python3', FAULT_SERVER, '--root', self.root]
        if tls:
            cmd += ['--tls', os.path.join(FIXTURES, 'test-cert.pem'),
                    os.path.join(FIXTURES, 'test-key.pem')]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        ready, _, _ = select.select([self.proc.stdout], [], [], startup_timeout)
        line = self.proc.stdout.readline().decode() if ready else ''
        if not line.startswith('PORT '):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError('the fault server did not start: %r' % line)
        self.port = int(line.split()[1])
        self.base = '%s://127.0.0.1:%d' % ('https' if tls else 'http', self.port)

    def url(self, path):
        return self.base + path

    def stats(self):
        with urllib.request.urlopen(self.url('/_stats'), timeout=10) as r:
            return json.load(r)

    def replace(self, path, source=None, data=None):
        """Makes a new version of /files/@path, with new validators: a copy of /files/@source,
        or @data.  Returns the new version's size, etag and last_modified."""
        scratch = None
        if data is not None:
            fd, scratch = tempfile.mkstemp(prefix='.version-', dir=self.root)
            with os.fdopen(fd, 'wb') as f:
                f.write(data)
            source = os.path.basename(scratch)
        try:
            query = urllib.parse.urlencode({'path': path, 'from': source})
            request = urllib.request.Request(self.url('/_replace?' + query), method='POST')
            with urllib.request.urlopen(request, timeout=10) as r:
                return json.load(r)
        finally:
            if scratch is not None:
                os.unlink(scratch)

    def close(self):
        self.proc.stdin.close()
        self.proc.stdout.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
