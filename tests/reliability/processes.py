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


def _stat(path: Path) -> list[str]:
    """The fields of a /proc/<pid>/stat file after the command name: state, parent pid, ..."""
    return path.read_text().rsplit(")", 1)[1].split()


def children_of(pid: int) -> list[int]:
    """Processes whose parent is `pid`, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(_stat(stat)[1]) == pid:
                found.append(int(stat.parent.name))
        except OSError:  # ended meanwhile
            continue
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's new parent may never reap it), from /proc."""
    try:
        return _stat(Path(f"/proc/{pid}/stat"))[0] != "Z"
    except OSError:
        return False
