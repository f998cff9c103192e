"""Searches started as real processes, for the fault and concurrency tests."""

import subprocess
import sys
import time
from pathlib import Path


# `nnexp search` with Ctrl-C working as in a terminal (see tests/search/app.py: a child
# of the test process may inherit SIGINT ignored or blocked)
NNEXP = [sys.executable, "-c", "import signal; signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); "
                               "signal.signal(signal.SIGINT, signal.default_int_handler); "
                               "from nnexp.cli import main; main()"]


def start_search(path, results, n_jobs=1):
    """`nnexp search` in its own session, so its workers can be killed with it."""
    return subprocess.Popen([*NNEXP, "search", str(path), "--results-dir", str(results),
                             "--n-jobs", str(n_jobs), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def wait_for_lines(log: Path, n: int, proc, timeout=60.0):
    """Wait until the trials log has n lines (or fail if the process ended first)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and log.read_bytes().count(b"\n") >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"{log}: fewer than {n} lines (exit {proc.poll()})")
