"""nnexp.interrupts.ignoring: what a write or a pool start shields itself with."""

import signal
import threading

from nnexp.interrupts import ignoring


def test_ignored_inside_and_put_back_after():
    def mine(signum, frame):
        pass

    before = {sig: signal.signal(sig, mine) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ignoring(signal.SIGINT, signal.SIGTERM):
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is mine and signal.getsignal(signal.SIGTERM) is mine
        try:
            with ignoring(signal.SIGINT):
                raise ValueError("the work failed")
        except ValueError:
            pass
        assert signal.getsignal(signal.SIGINT) is mine  # put back on the way out of an error too
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def test_a_thread_other_than_the_main_one_changes_nothing():
    seen = []

    def work():  # signal.signal would raise ValueError here
        with ignoring(signal.SIGINT):
            seen.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [before]
