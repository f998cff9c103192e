"""Imported by the fork server alone (last of `fork_server.TRIAL_MODULES`), to set it and the
workers it forks up: a worker forked while the search is ending exits without a traceback.

When Ctrl-C stops a search while loky is still starting its workers, a worker forked at
that moment finds the search's semaphores and pipes gone and fails before running any
nnexp code; multiprocessing prints that traceback to the search's terminal, under the
search's own "interrupted" line. Such failures are OSError or EOFError, and are silent
here. Anything else, and any failure of a running worker (which loky reports to the
search as a died worker), shows as before.
"""

import sys


def _quiet_start_failure(kind, value, traceback) -> None:
    if issubclass(kind, (OSError, EOFError)):
        return
    sys.__excepthook__(kind, value, traceback)


sys.excepthook = _quiet_start_failure
