# Shared by the Python GI test suites: the GI modules, the fault server (from fault_client)
# and a main loop with a deadline.

import os

import gi

gi.require_version('Bg', '1')
gi.require_version('Soup', '3.0')
from gi.repository import Bg, GLib, GObject, Gio, Soup  # noqa: E402

from fault_client import FaultServer  # noqa: E402,F401


def mode_args():
    """The mode and app-id every queue of a suite gets: the service under service_bus.py."""
    if os.environ.get('BG_TEST_MODE') == 'service':
        return {'mode': Bg.Mode.SERVICE,
                'app_id': os.environ.get('BG_TEST_APP_ID', 'org.bgglib.Test')}
    return {'mode': Bg.Mode.IN_PROCESS}


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
