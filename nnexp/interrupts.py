"""Stretches of work that a Ctrl-C or a SIGTERM must not cut in two."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def ignoring(*signals: signal.Signals):
    """Ignore `signals` for the duration, then put the previous handlers back.

    Only the main thread may set handlers (and receives the signals), so elsewhere this
    does nothing; a signal whose handler was installed outside Python is left alone, as it
    could not be put back. Processes started meanwhile keep ignoring what is ignored: a
    Python process that starts with SIGINT ignored installs no KeyboardInterrupt handler.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in signals}
    ours = [sig for sig, handler in previous.items() if handler is not None]
    for sig in ours:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig in ours:
            signal.signal(sig, previous[sig])
