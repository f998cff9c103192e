"""Fixtures of the reliability tests."""

import os
import signal

import pytest


@pytest.fixture
def procs():
    """Started subprocesses; whatever is left is killed with its process group at the end."""
    started = []
    yield started
    for proc in started:
        try:  # the whole session: also workers orphaned by a kill -9 of their main process
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
