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


def test_the_server_quiets_only_the_failures_of_a_worker_forked_as_the_search_ends(monkeypatch, capsys):
    """A worker forked as Ctrl-C ends the search finds its semaphores gone (FileNotFoundError) or
    its pipe closed (EOFError): no traceback for that; anything else still shows."""
    import importlib

    from nnexp.search import fork_server_init

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # what the import replaces is restored after
    importlib.reload(fork_server_init)
    hook = sys.excepthook
    assert hook is fork_server_init._quiet_start_failure and "nnexp.search.fork_server_init" in fork_server.TRIAL_MODULES
    hook(FileNotFoundError, FileNotFoundError(2, "No such file or directory"), None)
    hook(EOFError, EOFError(), None)
    assert capsys.readouterr().err == ""
    hook(ValueError, ValueError("a bug"), None)
    assert "ValueError: a bug" in capsys.readouterr().err
