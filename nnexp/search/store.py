"""The trials log of a search folder: append-only JSON lines, a lock, the saved search spec.

`trials.jsonl` is the single source of truth: every finished trial is one line,
written with one `write` + flush + fsync, so a crash loses at most the trials
still running and at worst leaves one torn last line, which readers skip.
A write that fails (disk full, read-only folder) is cut back off the file and
raised as a StorageError, so the log never holds a partial line that a later
append would bury in the middle.
A retried trial appends a new line for the same key; readers keep the last.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nnexp.errors import NnexpError, StorageError, said_as, warn

TRIALS_FILE = "trials.jsonl"
SPEC_FILE = "search.yaml"
LOCK_FILE = ".lock"
# Fields that may change between runs of the same search: they add or drop
# trials, change how they are run or how the tables rank them, never what one trial computes.
RESUMABLE_FIELDS = ("n_jobs", "trials", "repeats", "metric", "mode")


class LockError(NnexpError):
    """Another search is running in the same folder."""


class SearchChangedError(NnexpError):
    """The folder holds trials of a different search; resuming would mix them."""


class TornLineWarning(UserWarning):
    """The last line of trials.jsonl was cut off by a crash and is ignored."""


def key_of(record: dict) -> tuple[str, int]:
    return (record["config_id"], int(record["seed"]))


def clean_json(value: Any) -> Any:
    """NaN/inf to None and NumPy scalars/arrays to Python, so every line is valid JSON."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy scalar or array
        return clean_json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


STATUSES = ("ok", "failed", "diverged")


def is_record(value: Any) -> bool:
    """A trials.jsonl line as the runner writes it: at least a config id, an integer seed and a
    status, and its parameters and curves (if any) as mappings. (A metric that is not a number
    is the report's to name and leave out.)"""
    return (isinstance(value, dict) and isinstance(value.get("config_id"), str) and value.get("status") in STATUSES
            and isinstance(value.get("seed"), int) and not isinstance(value.get("seed"), bool)
            and isinstance(value.get("params", {}), dict) and isinstance(value.get("history", {}), dict))


def dumps(record: dict) -> str:
    return json.dumps(clean_json(record), allow_nan=False, separators=(",", ":"))


class TrialStore:
    """Reads and appends the trials of one search folder."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / TRIALS_FILE

    def read(self) -> list[dict]:
        """Every record in file order; a torn last line (cut off by a crash) is skipped with a warning."""
        if not self.path.exists():
            return []
        try:
            lines = self.path.read_bytes().split(b"\n")
        except OSError as exc:
            raise StorageError.writing(self.path, exc, "cannot read the trials log") from None
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:  # not JSON, or not even text (garbage left by a crash)
                if number == len(lines):  # unterminated: the write was cut off
                    warn(f"{self.path}: ignoring a torn last line (a crash cut it off)", TornLineWarning)
                    continue
                raise NnexpError(f"{self.path}: line {number} is not valid JSON; the trials log is damaged") from None
            if not is_record(record):
                raise NnexpError(f"{self.path}: line {number} is not a trial record (needs config_id, seed, "
                                 "a status of ok, failed or diverged, and params and history as mappings); the "
                                 "trials log is damaged")
            records.append(record)
        return records

    def lines(self) -> int:
        """Complete lines in the log: what appends add to, whatever stopped the search between
        an append and its bookkeeping (a Ctrl-C can land there)."""
        try:
            return self.path.read_bytes().count(b"\n") if self.path.exists() else 0
        except OSError as exc:
            raise StorageError.writing(self.path, exc, "cannot read the trials log") from None

    def latest(self) -> dict[tuple[str, int], dict]:
        """The last record of each (config_id, seed), in first-seen order."""
        latest: dict[tuple[str, int], dict] = {}
        for record in self.read():
            latest[key_of(record)] = record
        return latest

    def repair(self) -> bool:
        """Before appending: end the file with a newline, dropping a torn last line. True if it changed."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return False
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return False
        head, _, tail = data.rpartition(b"\n")
        try:
            complete = is_record(json.loads(tail))
        except ValueError:
            complete = False
        # a complete record only lacks its newline; anything else is the torn end of a write
        fixed = data + b"\n" if complete else (head + b"\n" if head else b"")
        tmp = self.path.with_suffix(".jsonl.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(fixed)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            from nnexp.results import unlink_quietly

            unlink_quietly(tmp)
            raise StorageError.writing(self.path, exc, "cannot repair the torn last line") from None
        return True

    def create(self) -> None:
        """An empty log if there is none yet, so a search interrupted before its first trial
        still leaves a folder that `nnexp report` reads."""
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644))
        except OSError as exc:
            raise StorageError.writing(self.path, exc) from None

    def append(self, record: dict) -> None:
        """One record as one line: a single write, then fsync; on failure the file is cut back to its old end."""
        line = (dumps(record) + "\n").encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError.writing(self.path, exc) from None
        try:
            end = os.fstat(fd).st_size
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError as exc:
                try:  # a partial line must not stay: the next append would bury it in the middle
                    os.ftruncate(fd, end)
                    os.fsync(fd)
                except OSError:
                    pass  # still torn at the end: read() skips it and repair() cuts it before appending
                raise StorageError.writing(self.path, exc) from None
        finally:
            os.close(fd)

    def move_aside(self) -> Path | None:
        """`--fresh`: rename the old log to trials-<UTC time>.jsonl.old, so nothing is destroyed.
        An empty log (a search interrupted before its first trial) has nothing to keep: it stays."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        target = self.folder / f"trials-{stamp}.jsonl.old"
        n = 1
        while target.exists():
            target = self.folder / f"trials-{stamp}-{n}.jsonl.old"
            n += 1
        try:
            os.replace(self.path, target)
        except OSError as exc:
            raise StorageError.writing(self.path, exc, "cannot move the old log aside") from None
        return target


# --------------------------------------------------------------------------- lock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SearchLock:
    """`.lock` created with O_EXCL: one search per folder; a dead owner's lock is taken over.

    The owner also holds an advisory lock (flock) on the file, which the OS drops when the
    process dies however it dies: that, not the pid, tells a later search whether the owner
    lives. A pid alone misleads once the OS gives it to another process (after a reboot), and
    in a container the restarted search is often pid 1 again, as its killed owner was. Where the
    file system has no flock, the pid is checked instead.
    """

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / LOCK_FILE
        self.owned = False
        self._fd: int | None = None

    def acquire(self) -> "SearchLock":
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except OSError as exc:
                if not isinstance(exc, FileExistsError):
                    raise StorageError.writing(self.path, exc, "cannot take the search lock") from None
                try:
                    judged = os.stat(self.path).st_ino  # the file the holder is read from and judged by
                except FileNotFoundError:
                    continue
                holder = self._holder()
                if holder is not None and not self._stale(holder):
                    raise LockError(
                        f"{self.path.parent}: another search is running in this folder (pid {holder.get('pid')} on "
                        f"{holder.get('host')}, since {holder.get('started')}); wait for it, or delete "
                        f"{self.path} if that process is gone"
                    ) from None
                self._remove_stale(judged)
                continue
            self.owned, self._fd = True, fd
            info["flock"] = _try_flock(fd) is True  # before the file says who holds it: a reader may test it
            try:
                os.write(fd, json.dumps(info).encode())
            except OSError as exc:
                self.release()
                raise StorageError.writing(self.path, exc, "cannot take the search lock") from None
            return self
        raise LockError(f"{self.path}: cannot take the search lock (another process keeps taking it)")

    def _remove_stale(self, judged: int) -> None:
        """Remove a dead owner's lock file (inode `judged`), holding its flock, and only if the
        path still names that file: two searches that found it stale at once must not both go on
        (the second removing the lock the first had just made, before that one held its flock)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError.writing(self.path, exc, "cannot remove the stale search lock") from None
        try:
            if os.fstat(fd).st_ino != judged:
                return  # another search's new lock: look again
            if _try_flock(fd) is False:
                return  # another search is taking it over: look again (None: no flock here, the pid judged it)
            if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                return  # replaced meanwhile by a live search's lock
            self.path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError.writing(self.path, exc, "cannot remove the stale search lock") from None
        finally:
            os.close(fd)

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            # written but not yet filled by its owner, or garbage: trust it only while fresh
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return None
            return {"pid": "?", "host": "?", "started": "?"} if age < 10 else None

    def _stale(self, holder: dict) -> bool:
        pid = holder.get("pid")
        if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
            return False  # cannot check another machine's processes
        if holder.get("flock"):
            held = _flock_held(self.path)
            if held is not None:
                return not held
        return pid != os.getpid() and not _pid_alive(pid)

    def release(self) -> None:
        """Remove the lock; if the folder no longer allows it, leave it: a later search sees its owner is gone."""
        if self.owned:
            from nnexp.results import unlink_quietly

            unlink_quietly(self.path)
            self.owned = False
        if self._fd is not None:
            os.close(self._fd)  # drops the flock
            self._fd = None

    def __enter__(self) -> "SearchLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _try_flock(fd: int) -> bool | None:
    """Take an exclusive advisory lock on `fd` without waiting: True if taken, False if a live
    process holds it, None where the OS or file system has none."""
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except (ImportError, OSError):
        return None


def _flock_held(path: Path) -> bool | None:
    """Whether a live process holds the flock on `path` (None: cannot tell here)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        taken = _try_flock(fd)
        return None if taken is None else not taken
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- saved spec


def search_identity(loaded, strategy: str, trials: int | None, data_files: dict[str, str] | None = None) -> dict:
    """What defines a search: the resolved search fields, the resolved base experiment, and
    the contents of the data files its trials read (see data_fingerprints)."""
    search = loaded.spec.model_dump(mode="json", exclude={"experiment", "base"})
    search["strategy"] = strategy
    if trials is not None:
        search["trials"] = trials
    identity = {"search": search, "experiment": loaded.base_spec.model_dump(mode="json"), "source": loaded.source}
    if data_files:
        identity["data_files"] = data_files
    return identity


def data_fingerprints(specs) -> dict[str, str]:
    """`sha256:<hex>` of each data file the experiments read: resuming on an edited file would
    put trials of two data sets in one table. A file that cannot be read is left out (its
    trials say why)."""
    fingerprints = {}
    for path in sorted({spec.data.dataset for spec in specs if not spec.data.is_builtin}):
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as file:
                for block in iter(lambda: file.read(1 << 20), b""):
                    digest.update(block)
        except OSError:
            continue
        fingerprints[path] = f"sha256:{digest.hexdigest()}"
    return fingerprints


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        out = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): tree}


def id_text(value) -> str:
    """A value as a configuration's id hashes it (0 and 0.0 are two values there)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def grown_grid(old: dict, new: dict) -> dict[str, int] | None:
    """The dimensions of a grid search that gained values, when that is all its space changed
    (the same dimensions, each one's earlier values all still listed, in any order): the trials
    run so far keep their ids, so they are kept and only the new configurations run: how many
    values each gained. None when the space changed otherwise."""
    old_space, new_space = old.get("space"), new.get("space")
    if old.get("strategy", "grid") != "grid" or new.get("strategy", "grid") != "grid":
        return None
    if not isinstance(old_space, dict) or not isinstance(new_space, dict) or set(old_space) != set(new_space):
        return None
    grown = {}
    for key, before in old_space.items():
        after = new_space[key]
        if id_text(before) == id_text(after):
            continue
        if not (isinstance(before, list) and isinstance(after, list)):
            return None
        earlier, listed = {id_text(v) for v in before}, {id_text(v) for v in after}
        if not earlier <= listed:
            return None
        if listed - earlier:  # not when only reordered
            grown[key] = len(listed - earlier)
    return grown


def spec_differences(old: dict, new: dict, space_grew: bool = False) -> list[str]:
    """`path: old -> new` for every field that differs, ignoring the resumable ones (and the space,
    when it only `space_grew`). A data file's path is the same if the file's contents are (the
    project was moved or renamed since)."""
    # files: check_same_search; planned_trials: what an early version of `plan` kept; trial_base: the base as
    # written, which `experiment` (resolved) already compares
    ignore = {f"search.{f}" for f in RESUMABLE_FIELDS} | {"source", "data_files", "plan", "planned_trials", "trial_base"}
    if space_grew:
        ignore.add("search.space")
    old_files, new_files = old.get("data_files") or {}, new.get("data_files") or {}

    def same(x, y) -> bool:  # (a searched data.dataset lists paths as written: they name the configurations)
        return id_text(x) == id_text(y) or (isinstance(x, str) and x in old_files and old_files[x] == new_files.get(y))

    a, b = _flatten(old), _flatten(new)
    defaults = _new_field_defaults()
    diffs = []
    for path in sorted(set(a) | set(b)):
        if path in ignore or any(path.startswith(i + ".") for i in ignore):
            continue
        if path not in a and path in defaults and id_text(b[path]) == id_text(defaults[path]):
            continue  # a field newer than the folder, at the default the old trials trained with
        if not same(a.get(path, "<absent>"), b.get(path, "<absent>")):
            diffs.append(f"{path}: {a.get(path, '<absent>')!r} -> {b.get(path, '<absent>')!r}")
    return diffs


def _new_field_defaults() -> dict[str, Any]:
    """Flattened defaults of the experiment fields a saved search may predate (e.g. train.class_weight):
    a folder written before a field existed resumes while the field keeps its default."""
    from nnexp.spec import ExperimentSpec

    return _flatten({"experiment": ExperimentSpec().model_dump(mode="json")})


def read_saved_spec(folder: str | os.PathLike) -> dict | None:
    import yaml

    path = Path(folder) / SPEC_FILE
    if not path.exists():
        return None
    problem = None
    try:
        saved = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise StorageError.writing(path, exc, "cannot read") from None
    except (yaml.YAMLError, ValueError) as exc:
        saved, problem = None, f"not valid YAML ({str(exc).splitlines()[0]})"
    if saved is not None and not (isinstance(saved, dict) and isinstance(saved.get("search"), dict)):
        problem = "not a saved search (no 'search' mapping)"
    if problem:
        raise NnexpError(f"{path}: {problem}; it records which search this folder holds: restore it, "
                         "or delete it to let the next run write it again")
    return saved or None


def save_spec(folder: str | os.PathLike, identity: dict) -> None:
    from nnexp.spec import dump_yaml

    from nnexp.results import atomic_write

    atomic_write(Path(folder) / SPEC_FILE,
                 "# The resolved search this folder holds; `nnexp search` checks it before resuming.\n" + dump_yaml(identity))


def start_over() -> str:
    """What to do about a folder that holds another search's trials."""
    return (f"use {said_as('--fresh', 'fresh=True')} to start over (old trials are kept aside), or another name / "
            f"{said_as('--results-dir', 'results_dir')}")


def check_same_search(folder: str | os.PathLike, identity: dict) -> list[str]:
    """Refuse to resume a folder whose trials came from different settings; notes on what may change
    (a new metric or mode: the same trials, ordered anew)."""
    saved = read_saved_spec(folder)
    if saved is None:
        return []
    old_files, new_files = saved.get("data_files") or {}, identity.get("data_files") or {}
    edited = [path for path in new_files if path in old_files and old_files[path] != new_files[path]]
    if edited:
        raise SearchChangedError(
            f"{Path(folder) / SPEC_FILE}: the data file {edited[0]} changed since the trials here were run "
            f"(its contents differ); {start_over()}"
        )
    grown = grown_grid(saved.get("search") or {}, identity["search"])
    diffs = spec_differences(saved, identity, space_grew=grown is not None)
    if diffs:
        shown = "; ".join(diffs[:5]) + (f"; and {len(diffs) - 5} more" if len(diffs) > 5 else "")
        grid = (identity["search"].get("strategy", "grid") == "grid"
                and any(d.startswith("search.space.") for d in diffs))
        hint = " (a grid resumes with values added to its lists, none removed or changed)" if grid else ""
        raise SearchChangedError(
            f"{Path(folder) / SPEC_FILE}: the search changed since its trials were run ({shown}){hint}; {start_over()}"
        )
    before, now = saved.get("search") or {}, identity["search"]
    notes = []
    if grown:
        added = ", ".join(f"{k} +{n}" for k, n in grown.items())
        notes.append(f"space: new values since the last run ({added}): its trials are kept, and only the new "
                     "configurations run")
    if any(key in before and before[key] != now.get(key) for key in ("metric", "mode")):
        notes.append(f"ranked by {now['metric']} ({now['mode']}) now, by {before.get('metric')} ({before.get('mode')}) "
                     "in the last run: the same trials, ordered anew")
    return notes
