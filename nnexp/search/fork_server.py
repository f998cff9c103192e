"""Start a search's loky workers by forking them from a server that has imported what a trial needs.

A fresh loky worker is a new interpreter: before its first trial it imports joblib, NumPy,
pydantic and nnexp's spec models, about 0.4 s of CPU, while the other workers do the same
and the search's main process loads the report's libraries. On Linux the workers are
instead forked from Python's fork server (`multiprocessing.forkserver`), started with those
modules loaded: the imports are paid once, by one process, early in the command while the
main process still reads the spec on one core, and each worker starts in milliseconds.

The server is a single-threaded process of its own, so forking it is safe, unlike forking
the search's main process (its progress bar and report preloading run threads). It ends
with the process that started it. Elsewhere (macOS, Windows) loky's own start method stays.

The command line opts in by calling `start`. A program that calls the Python API keeps
loky's start method: like `spawn`, a fork server's worker first imports the program's
`__main__` module, which runs a script that has no `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

# imported by the server before it forks any worker: what a loky worker and `run_trial` need
# for a first trial, what the `nnexp` script a worker imports as its __main__ imports, and
# the server's own set-up (fork_server_init)
TRIAL_MODULES = ("numpy", "numpy.random", "threadpoolctl", "joblib", "joblib.externals.loky.process_executor",
                 "nnexp.spec", "nnexp.train", "nnexp.data", "nnexp.search.trial", "nnexp.cli",
                 "nnexp.search.fork_server_init")

_started = False


def available() -> bool:
    """Linux only (forking a process that has loaded a BLAS library is not safe on macOS), and only
    where this process may run on more than one core (on one, a search trains in this process)."""
    if not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2:
        return False
    import multiprocessing

    return "forkserver" in multiprocessing.get_all_start_methods()


def start() -> None:
    """Start the server in the background, if it is not running (it imports while the caller goes on),
    and fork this process's search workers from it from now on."""
    global _started
    if not available():
        return
    from multiprocessing import forkserver

    forkserver.set_forkserver_preload(list(TRIAL_MODULES))
    forkserver.ensure_running()
    _started = True


@contextmanager
def forked_workers():
    """Inside: the loky executors joblib creates fork their workers from the server, once `start` was called."""
    if not _started:
        yield
        return
    from joblib.externals.loky.backend.context import get_start_method, set_start_method

    start()
    previous = get_start_method()
    set_start_method("forkserver", force=True)
    try:
        yield
    finally:
        set_start_method(previous, force=True)
