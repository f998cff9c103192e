"""The nnexp app, for tests; run as a script by the subprocess tests.

As a script it first makes Ctrl-C work as in a terminal's foreground job: a
child of the test process may inherit SIGINT ignored or blocked (seen in some
full-suite runs: a SIGINT then had no effect), and Python keeps an inherited
"ignore".
"""

import signal

from nnexp.cli import app, main


def interruptible() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)


if __name__ == "__main__":
    interruptible()
    main()
