"""Errors a user caused (bad spec, data or arguments).

They are printed as one line per problem and exit with code 2; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep

# How messages name an override: `--set` on the command line, `override` for the API's keyword arguments
OVERRIDE: ContextVar[str] = ContextVar("override", default="--set")


def said_as(flag: str, argument: str) -> str:
    """How a message names one of the caller's choices: as the command line's `flag`, or, for a
    Python caller (nnexp.api), as the `argument` of the function it called."""
    return flag if OVERRIDE.get() == "--set" else argument


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """`Type: first line of the message` (the type alone when there is none), for one-line errors."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:limit]}" if lines else type(exc).__name__


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn about the user's input at the first line outside nnexp (as pandas does): a notebook
    then shows the user's own call, not nnexp's internals, and Python's once-per-place filter
    counts the user's places."""
    import warnings

    frame, level = sys._getframe(), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def describe(value) -> str:
    """A wrong value in one line, for a message: its type and the start of its repr (an array's
    repr spans lines)."""
    text = " ".join(repr(value).split())
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def made_with_warnings(make: Callable[[], T]) -> tuple[T, list[Warning]]:
    """(make(), the warnings it gave, held back): something made once and used many times (a
    prepared data set) gives its warnings to each use through `with_warnings_again`, so each
    use (a trial's record) holds them, whichever use made it."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        made = make()
    return made, [w.message for w in caught]


def with_warnings_again(kept: tuple[T, list[Warning]]) -> T:
    """What `made_with_warnings` made, giving its warnings again."""
    made, messages = kept
    for message in messages:
        warn(str(message), type(message))
    return made


class NnexpError(Exception):
    """Base of the errors that are the user's input, not our code."""

    exit_code = 2

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class SpecError(NnexpError):
    """A spec file (or a --set override) does not validate."""


class DataError(NnexpError):
    """A data set cannot be loaded or prepared."""

    @classmethod
    def at(cls, source: str, field: str | None, problem: str) -> "DataError":
        where = f"{source}: {field}: " if field else f"{source}: "
        return cls(where + problem)


class StorageError(NnexpError):
    """Results cannot be written (disk full, read-only folder, no permission).

    Not the user's input and not a bug: one `error:` line naming the file and
    the OS's reason, exit code 1 (the work ran but could not be saved).
    """

    exit_code = 1

    @classmethod
    def writing(cls, path, exc: OSError, what: str = "cannot write") -> "StorageError":
        reason = exc.strerror or type(exc).__name__
        return cls(f"{path}: {what} ({reason})")


class ClusterLost(NnexpError):
    """The Dask scheduler went away mid-search (killed, network cut).

    Not the user's input and not a bug: one `error:` line saying what was kept,
    exit code 1; running the same command again resumes.
    """

    exit_code = 1
