"""When the CLI's search workers fork from the fork server, and loky's state around it."""

import sys

import pytest

from nnexp.search import fork_server


def test_one_core_or_not_linux_means_no_server(monkeypatch):
    """A search on one core trains in its own process: starting a server would be waste."""
    monkeypatch.setattr(fork_server, "_started", False)
    if sys.platform.startswith("linux"):
        monkeypatch.setattr(fork_server.os, "sched_getaffinity", lambda pid: {0})
    assert not fork_server.available()
    fork_server.start()
    assert fork_server._started is False


@pytest.mark.skipif(not fork_server.available(), reason="the fork server is for Linux with 2+ cores")
def test_loky_start_method_is_restored_after_an_error_inside(monkeypatch):
    from joblib.externals.loky.backend.context import get_start_method

    monkeypatch.setattr(fork_server, "_started", False)
    before = get_start_method()
    with fork_server.forked_workers():
        assert get_start_method() == before  # not opted in: loky's own
    fork_server.start()
    with pytest.raises(KeyboardInterrupt):
        with fork_server.forked_workers():
            assert get_start_method() == "forkserver"
            raise KeyboardInterrupt
    assert get_start_method() == before
