"""Built-in data sets and user files, read into one raw `Table`.

Everything that can go wrong with a user's file becomes a `DataError` naming
the file, the spec field and the problem; no pandas or NumPy exception escapes.
pandas and scikit-learn are imported inside the functions that need them, so
importing nnexp.data stays cheap for search workers and the CLI.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nnexp.data.cache import cached
from nnexp.errors import DataError, first_line, warn
from nnexp.spec import DATA_FILE_SUFFIXES, did_you_mean, one_form

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from nnexp.spec import DataSpec

# A numeric target is a class label when it is integer-valued and has few
# distinct values: at most 20, and at most one per 5 rows (so an integer
# regression target such as an age or a count over a small file stays regression).
AUTO_MAX_CLASSES = 20
AUTO_ROWS_PER_CLASS = 5


@dataclass
class Table:
    """All rows of a data set before splitting: raw features and encoded target.

    A built-in keeps its features as one float array (`numeric`, its columns `names`),
    so preparing it needs no pandas: a search worker never imports it. `features`
    is the DataFrame view, made when first asked for.
    """

    frame: pd.DataFrame | None      # original columns and dtypes, target removed (None: see numeric)
    y: np.ndarray                   # int64 class indices 0..K-1, or float64 targets
    task: str                       # "classification" | "regression"
    class_names: list[str] | None   # index -> name; None for regression
    target: str                     # name of the target column ("y" for npz files)
    source: str                     # data set name or file path, for messages
    numeric: np.ndarray | None = None  # (n, d) float64, finite and complete: the built-ins
    names: list[str] | None = None     # the columns of `numeric`

    @property
    def features(self) -> pd.DataFrame:
        if self.frame is None:
            import pandas as pd

            self.frame = pd.DataFrame(self.numeric, columns=self.names)
        return self.frame

    @property
    def columns(self) -> list[str]:
        return list(self.names) if self.frame is None else [str(c) for c in self.frame.columns]

    def rows(self, index: np.ndarray) -> np.ndarray | pd.DataFrame:
        """The features of these rows, in the table's own form (array or DataFrame)."""
        return self.numeric[index] if self.numeric is not None else self.features.iloc[index]


# --------------------------------------------------------------------------- built-ins


@dataclass(frozen=True)
class Builtin:
    """One registry entry: how to make the set, and what `nnexp datasets` shows."""

    kind: str                       # "real" | "synthetic"
    task: str
    rows: int                       # synthetic: the default n_samples
    features: int
    classes: int | None
    make: Callable[[int, float | None, int], tuple[np.ndarray, np.ndarray, list[str], list[str] | None]]
    about: str


def _sklearn_bundled(loader: str, *, regression: bool = False, **kwargs):
    """A maker for one of scikit-learn's bundled (offline) data sets, cached on disk."""

    def load():
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader)(**kwargs)
        names = [str(n) for n in bunch.feature_names]
        classes = None if regression else [str(c) for c in bunch.target_names]
        return bunch.data, bunch.target, names, classes

    def make(n_samples: int, noise: float | None, seed: int):
        return cached(loader, kwargs, load)

    return make


def _sklearn_generated(function: str, noise: float, names: list[str], classes: list[str] | None, *,
                       noise_arg: str = "noise", **kwargs):
    """A maker for one of scikit-learn's generators (default noise `noise`), cached per (rows, noise, seed)."""

    def make(n_samples: int, noise_level: float | None, seed: int):
        args = {noise_arg: noise if noise_level is None else noise_level, **kwargs}

        def generate():
            import sklearn.datasets

            X, y = getattr(sklearn.datasets, function)(n_samples, random_state=seed, **args)
            return X, y, names, classes

        return cached(function, {"n_samples": n_samples, "seed": seed, **args}, generate)

    return make


def _xy_names(n: int) -> list[str]:
    return [f"x{i + 1}" for i in range(n)]


def _make_xor(n_samples: int, noise: float | None, seed: int):
    """Four Gaussian blobs at (+-1, +-1); the label is the xor of the centre's signs."""
    rng = np.random.default_rng(seed)
    blob = rng.permutation(np.arange(n_samples) % 4)
    centres = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    X = centres[blob] + rng.normal(0.0, 0.3 if noise is None else noise, size=(n_samples, 2))
    y = blob % 2  # quadrants 1 and 3 have signs that differ
    return X, y, _xy_names(2), ["same_sign", "opposite_sign"]


def _make_spirals(n_samples: int, noise: float | None, seed: int):
    """Two interleaved arms of 1.5 turns each, radius growing with the angle to 1."""
    rng = np.random.default_rng(seed)
    arm = rng.permutation(np.arange(n_samples) % 2)
    t = np.sqrt(rng.uniform(0.0, 1.0, n_samples))  # sqrt: even density along the arm
    angle = 3 * np.pi * t + np.pi * arm
    X = np.column_stack([t * np.cos(angle), t * np.sin(angle)])
    X += rng.normal(0.0, 0.05 if noise is None else noise, size=X.shape)
    return X, arm, _xy_names(2), ["0", "1"]


_SYNTHETIC_ROWS = 1000  # the DataSpec.n_samples default, shown by `nnexp datasets`

DATASETS: dict[str, Builtin] = {
    "iris": Builtin("real", "classification", 150, 4, 3, _sklearn_bundled("load_iris"), "Fisher's irises"),
    "wine": Builtin("real", "classification", 178, 13, 3, _sklearn_bundled("load_wine"), "wine cultivars"),
    "breast_cancer": Builtin(
        "real", "classification", 569, 30, 2, _sklearn_bundled("load_breast_cancer"), "Wisconsin diagnostic"
    ),
    "digits": Builtin("real", "classification", 1797, 64, 10, _sklearn_bundled("load_digits"), "8x8 handwritten digits"),
    "diabetes": Builtin(
        "real", "regression", 442, 10, None, _sklearn_bundled("load_diabetes", regression=True, scaled=False),
        "disease progression after one year",
    ),
    "friedman1": Builtin("synthetic", "regression", _SYNTHETIC_ROWS, 10, None,
                         _sklearn_generated("make_friedman1", 1.0, _xy_names(10), None, n_features=10),
                         "Friedman #1, noise 1.0"),
    "xor": Builtin("synthetic", "classification", _SYNTHETIC_ROWS, 2, 2, _make_xor, "4 quadrant blobs, noise 0.3"),
    "moons": Builtin("synthetic", "classification", _SYNTHETIC_ROWS, 2, 2,
                     _sklearn_generated("make_moons", 0.2, _xy_names(2), ["0", "1"]), "two half moons, noise 0.2"),
    "circles": Builtin("synthetic", "classification", _SYNTHETIC_ROWS, 2, 2,
                       _sklearn_generated("make_circles", 0.1, _xy_names(2), ["outer", "inner"], factor=0.5),
                       "two rings, noise 0.1"),
    "spirals": Builtin("synthetic", "classification", _SYNTHETIC_ROWS, 2, 2, _make_spirals, "two arms, noise 0.05"),
    "blobs": Builtin("synthetic", "classification", _SYNTHETIC_ROWS, 2, 3,
                     _sklearn_generated("make_blobs", 1.0, _xy_names(2), ["0", "1", "2"], noise_arg="cluster_std",
                                        n_features=2, centers=3),
                     "3 Gaussian blobs, noise 1.0"),
}


def list_datasets() -> list[dict]:
    """One row per built-in for `nnexp datasets` (synthetic rows = the default n_samples)."""
    return [
        {"name": name, "kind": d.kind, "task": d.task, "rows": d.rows, "features": d.features,
         "classes": d.classes, "about": d.about}
        for name, d in DATASETS.items()
    ]


def load_builtin(name: str, *, n_samples: int = _SYNTHETIC_ROWS, noise: float | None = None,
                 seed: int = 0, task: str = "auto") -> Table:
    """A built-in data set; synthetic ones are drawn with `seed`."""
    entry = DATASETS[name]
    if task not in ("auto", entry.task):
        raise DataError.at(name, "data.task", f"'{name}' is a {entry.task} data set, not {task}")
    X, y, feature_names, class_names = entry.make(n_samples, noise, seed)
    y = np.asarray(y, dtype=np.int64 if class_names is not None else np.float64)
    return Table(None, y, entry.task, class_names, "target", name,
                 numeric=np.ascontiguousarray(X, dtype=np.float64), names=list(feature_names))


# --------------------------------------------------------------------------- files


def spec_named_problems(problems: list[str], spec_source: str) -> list[str]:
    """A built-in data set is no file: a problem with the settings it was loaded with (more PCA
    components than it has features) names the spec that chose them, as a spec error does."""
    named = []
    for problem in problems:
        source, _, rest = problem.partition(": ")
        named.append(f"{spec_source}: {rest}" if source in DATASETS and rest else problem)
    return named


def check_path(path: str, field: str | None = "data.dataset") -> Path:
    """`field` names where the path came from (None: a command-line argument, e.g. of `nnexp predict`)."""
    p = Path(path)
    if not p.exists():
        raise DataError.at(path, field, "file not found")
    if p.is_dir():
        raise DataError.at(path, field, "is a directory, not a data file")
    if not os.access(p, os.R_OK):
        raise DataError.at(path, field, "no permission to read this file")
    if p.suffix.lower() not in DATA_FILE_SUFFIXES:
        raise DataError.at(path, field, f"unsupported file type '{p.suffix}' (use {', '.join(DATA_FILE_SUFFIXES)})")
    if p.stat().st_size == 0:
        raise DataError.at(path, field, "the file is empty")
    return p


def read_frame(path: str, field: str | None = "data.dataset", text_columns: Sequence[str] = ()) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame with string column names and >= 1 row; `text_columns`
    of a CSV stay text as written (a model's categories: '007', or '1' in a file whose blank cell
    would otherwise make the column floats)."""
    import pandas as pd

    p = check_path(path, field)
    kind = "CSV" if p.suffix.lower() == ".csv" else "Parquet"
    try:
        # low_memory=False: typed from the whole column, not chunk by chunk (a blank near the end of a
        # long file left a column of floats and strings that no later step could read)
        frame = (pd.read_csv(p, low_memory=False, dtype=_as_written(p, text_columns)) if kind == "CSV"
                 else pd.read_parquet(p))
    except pd.errors.EmptyDataError:
        raise DataError.at(path, "data.dataset", "the file is empty (no header, no rows)") from None
    except PermissionError:
        raise DataError.at(path, "data.dataset", "no permission to read this file") from None
    except UnicodeDecodeError:
        raise DataError.at(path, "data.dataset", f"cannot be read as {kind}: not UTF-8 text ({_first_non_utf8(p)}); "
                                                 "save it as UTF-8") from None
    except Exception as exc:  # noqa: BLE001 - parsers raise many types; all mean "bad file", but memory
        if "memory" in type(exc).__name__.lower() or "out of memory" in str(exc):  # pandas' and Arrow's ways to say it
            raise MemoryError(f"reading {path}: {first_line(exc, 200)}") from None
        if kind == "Parquet":  # Arrow refuses a repeated name as "Multiple matches for FieldRef.Name(age)"
            _refuse_repeated([one_form(name) for name in _parquet_names(p)], path, field)
        raise DataError.at(path, "data.dataset", f"cannot be read as {kind} ({first_line(exc, 200)})") from None
    if frame.shape[1] == 0:
        raise DataError.at(path, "data.dataset", "the file has no columns")
    if len(frame) == 0:
        raise DataError.at(path, "data.dataset", f"the file has a header ({', '.join(map(str, frame.columns[:8]))}) but no data rows")
    frame.columns = [one_form(c).strip() if kind == "CSV" else one_form(c) for c in frame.columns]  # ' y ' is y, as cells are read
    _refuse_repeated(list(frame.columns), path, field)  # 'a' and ' a ', which pandas kept apart
    frame = tidy_text(frame, numbers=kind == "CSV", keep_text=text_columns)  # a Parquet text column was typed so by its writer ('02134')
    if kind == "CSV":
        frame = _check_csv_header(frame, *_csv_head(p), path, field)
    return frame


def _parquet_names(path: Path) -> list[str]:
    """The column names in a Parquet file's schema ([] when even that cannot be read)."""
    try:
        import pyarrow.parquet as pq

        return [str(name) for name in pq.read_schema(path).names]
    except Exception:  # noqa: BLE001 - only a better message is at stake; the read's own error stands
        return []


def _as_written(path: Path, columns: Sequence[str]) -> dict[str, type] | None:
    """read_csv's dtype for `columns` kept as text, by their names in the header as written
    (' code ' is the column code)."""
    if not columns:
        return None
    import pandas as pd

    header = pd.read_csv(path, nrows=0).columns
    return {str(raw): str for raw in header if one_form(raw).strip() in columns}


def _first_non_utf8(path: Path) -> str:
    """Where the first byte that is not UTF-8 is, as `byte 0xe9 on line 3`."""
    data = path.read_bytes()
    try:
        data.decode("utf-8-sig")
        return "an encoding pandas could not read"
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        before = data[:start]
        line = len(before.splitlines()) + (1 if not before or before.endswith((b"\n", b"\r")) else 0)  # \r alone too
        return f"byte 0x{data[start]:02x} on line {line}"


def _csv_head(path: Path) -> tuple[list[str], list[str]]:
    """The header cells as written (pandas renames a repeated name 'label.1' and an empty one
    'Unnamed: 3'), and the first data row's."""
    import csv

    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        rows = (row for row in csv.reader(fh) if any(cell.strip() for cell in row))  # pandas skips blank lines too
        return [cell.strip() for cell in next(rows, [])], next(rows, [])


def _check_csv_header(frame: pd.DataFrame, header: list[str], first: list[str], path: str,
                      field: str | None) -> pd.DataFrame:
    """Refuse repeated column names (a copy of the target would become a feature) and data rows
    longer than the header (pandas would shift every column); drop empty columns without a name,
    which a separator at the end of every line leaves (with a warning)."""
    from nnexp.data.preprocess import DataWarning

    if len(first) == len(header) + 1 and not first[-1].strip():  # (a row-name column first, as R writes, is fine)
        raise DataError.at(path, field, f"the data rows have {len(first)} fields but the header {len(header)} (a "
                                        "separator at the end of each data line?)")
    if len(header) != frame.shape[1]:  # pandas read the file some other way: trust it
        return frame
    _refuse_repeated([name for name in header if name], path, field)
    blank = [col for col, name in zip(frame.columns, header) if not name.strip() and frame[col].isna().all()]
    if blank:
        warn(f"{path}: ignoring {len(blank)} empty column(s) without a name (a separator at the end of "
             "each line?)", DataWarning)
        frame = frame.drop(columns=blank)
    return frame


def with_names_as_read(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """A caller's DataFrame with its column names as a file's are read (text, one Unicode form);
    a name it then holds twice ('é' and e + accent) is refused, as a file's."""
    frame = frame.set_axis([one_form(c) for c in frame.columns], axis=1)
    _refuse_repeated(list(frame.columns), source, None)
    return frame


def _refuse_repeated(names: list[str], path: str, field: str | None) -> None:
    repeated = _repeated(names)
    if repeated:
        raise DataError.at(path, field, f"column name(s) {', '.join(repr(n) for n in repeated)} appear more than once; "
                                        "give every column its own name")


def _repeated(names: list[str]) -> list[str]:
    from collections import Counter

    return sorted(name for name, count in Counter(names).items() if count > 1)


NA_TEXTS = ("nan", "NaN", "NA", "N/A", "null", "NULL", "None")  # missing, as pandas reads a CSV cell


def tidy_text(frame: pd.DataFrame, numbers: bool = True, keep_text: Sequence[str] = ()) -> pd.DataFrame:
    """Text cells as a person reads them: surrounding blanks stripped, a blank cell missing, and
    (with `numbers`, for untyped sources) a text column whose every cell is then a number read as
    numbers (' 2.5 ' in a CSV, an npz X saved as strings), unless it is one of `keep_text`.
    Otherwise one stray blank turned a numeric column into categories."""
    import pandas as pd

    for col in frame.columns:
        series = frame[col]
        if isinstance(series.dtype, pd.CategoricalDtype) and pd.api.types.infer_dtype(series.cat.categories) == "string":
            series = series.astype(object)  # a Parquet dictionary column of text: its cells as any text's
        if series.dtype.kind in "biufcmM":
            continue  # numbers and dates
        kind = pd.api.types.infer_dtype(series, skipna=True)
        if numbers and kind == "integer" and col not in keep_text:  # whole numbers past int64 (>= 2**63): as floats
            frame[col] = series.astype("float64")
            continue
        if kind != "string":
            continue  # object columns that are not all text
        text = series.map(one_form, na_action="ignore").str.strip()
        text = text.mask(text.isin(("", *NA_TEXTS) if numbers else ("",)).fillna(False).astype(bool))
        parsed = pd.to_numeric(text, errors="coerce") if numbers and col not in keep_text else None
        frame[col] = parsed if parsed is not None and parsed.notna().sum() == text.notna().sum() else text
    return frame


def read_npz(path: str, *, need_y: bool = True, field: str | None = "data.dataset") -> dict[str, np.ndarray]:
    """Arrays X (2-D) and, when needed, y (1-D) of an npz file; optional feature_names."""
    import zipfile

    p = check_path(path, field)
    with open(p, "rb") as fh:
        if fh.read(4) != b"PK\x03\x04":  # else numpy tries to unpickle it and says so
            raise DataError.at(path, "data.dataset", "is not an npz file (np.savez writes a zip archive)")
    try:
        with open(p, "rb") as fh, np.load(fh, allow_pickle=False) as npz:  # our `with` closes a bad file too
            arrays = {k: npz[k] for k in npz.files}
    except PermissionError:
        raise DataError.at(path, "data.dataset", "no permission to read this file") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise DataError.at(path, "data.dataset", f"cannot be read as npz ({first_line(exc, 200)})") from None
    needed = ["X", "y"] if need_y else ["X"]
    missing = [k for k in needed if k not in arrays]
    if missing:
        found = ", ".join(arrays) or "none"
        raise DataError.at(path, "data.dataset", f"an npz file needs arrays {' and '.join(needed)}; missing {', '.join(missing)} (found: {found})")
    X = arrays["X"]
    _check_npz_dtype(path, "X", X)
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2:
        raise DataError.at(path, "data.dataset", f"X must be 2-D (rows, features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise DataError.at(path, "data.dataset", "X has no rows")
    if X.shape[1] == 0:
        raise DataError.at(path, "data.dataset", "X has no feature columns")
    out = {"X": X}
    if need_y:
        y = arrays["y"]
        _check_npz_dtype(path, "y", y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError.at(path, "data.dataset", f"y must be 1-D (one target per row), got shape {y.shape}")
        if len(y) != len(X):
            raise DataError.at(path, "data.dataset", f"X has {len(X)} rows but y has {len(y)}")
        y = np.char.decode(y, "utf-8", errors="replace") if y.dtype.kind == "S" else y  # b'cat' -> cat
        out["y"] = np.array([one_form(v) for v in y]) if y.dtype.kind == "U" else y
    if "feature_names" in arrays:
        names = [one_form(n) for n in np.asarray(arrays["feature_names"]).ravel()]
        if len(names) != X.shape[1]:
            raise DataError.at(path, "data.dataset", f"feature_names has {len(names)} entries for {X.shape[1]} columns of X")
        repeated = _repeated(names)
        if repeated:
            raise DataError.at(path, "data.dataset", f"feature_names repeats {', '.join(repr(n) for n in repeated)}; "
                                                     "give every column its own name")
        out["feature_names"] = np.array(names)
    return out


NPZ_KINDS = {"b": "booleans", "i": "integers", "u": "integers", "f": "floats", "U": "text", "S": "text"}


def _check_npz_dtype(path: str, name: str, array: np.ndarray) -> None:
    """Numbers or text: a complex, structured (record), raw-bytes or date array has no column a
    network could read as it stands (a structured X crashed pandas; a complex y lost its imaginary part)."""
    if array.dtype.kind in NPZ_KINDS:
        return
    what = {"c": "complex numbers; a network takes real ones", "V": "records or raw bytes (a structured array); "
            "save plain numbers or text", "M": "dates", "m": "time spans"}.get(array.dtype.kind, "values")
    raise DataError.at(path, "data.dataset", f"{name} holds {what} (dtype {array.dtype})")


def npz_frame(X: np.ndarray, names: list[str] | None = None, text_columns: Sequence[str] = ()) -> pd.DataFrame:
    import pandas as pd

    if X.dtype.kind == "S":  # bytes: as text
        X = np.char.decode(X, "utf-8", errors="replace")
    frame = pd.DataFrame(X, columns=names if names is not None else _xy_names(X.shape[1]))
    return tidy_text(frame, keep_text=text_columns) if X.dtype.kind == "U" else frame


def load_file(path: str, *, target: str | None = None, task: str = "auto") -> Table:
    """A user's .csv/.parquet/.npz file split into features and an encoded target."""
    import pandas as pd

    if Path(path).suffix.lower() == ".npz":
        if target not in (None, "y"):
            raise DataError.at(path, "data.target", f"npz files hold arrays X and y; a target column '{target}' does not apply")
        arrays = read_npz(path)
        names = list(arrays["feature_names"]) if "feature_names" in arrays else None
        features, raw, target = npz_frame(arrays["X"], names), pd.Series(arrays["y"], name="y"), "y"
    else:
        frame = read_frame(path)
        columns = list(frame.columns)
        if target is None:
            target = columns[-1]
        elif target not in frame.columns:
            if len(columns) == 1 and any(c in columns[0] for c in ";\t|"):
                raise DataError.at(path, "data.dataset", f"has one column '{columns[0]}'; is it separated by something "
                                                         "other than commas?")
            raise DataError.at(path, "data.target", f"no column '{target}'{did_you_mean(target, columns)} "
                                                    f"(columns: {_listed(columns)})")
        if frame.shape[1] < 2:
            hint = "; is it separated by something other than commas?" if any(c in target for c in ";\t|") else ""
            raise DataError.at(path, "data.dataset", f"needs at least one feature column besides the target '{target}'{hint}")
        raw, features = frame[target], frame.drop(columns=[target])
    y, task, class_names = encode_target(raw, task, source=path, target=target)
    return Table(features.reset_index(drop=True), y, task, class_names, target, path)


# --------------------------------------------------------------------------- target


def _is_missing(series: pd.Series) -> np.ndarray:
    """NaN, None and empty or blank strings all count as missing."""
    import pandas as pd

    missing = np.array(series.isna(), dtype=bool)  # a copy: pandas may hand out read-only views
    if not pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        missing |= np.array([isinstance(v, str) and not v.strip() for v in series.to_numpy()], dtype=bool)
    return missing


def _label(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def encode_target(raw: pd.Series, task: str, *, source: str, target: str) -> tuple[np.ndarray, str, list[str] | None]:
    """(y, task, class_names): resolves task 'auto' and maps labels to indices 0..K-1."""
    import pandas as pd

    missing = _is_missing(raw)
    if missing.any():
        raise DataError.at(source, "data.target", f"column '{target}' has {int(missing.sum())} missing values; fill or drop those rows")
    numeric = pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw)
    values = raw.to_numpy()
    if numeric:
        values = values.astype(np.float64)
        if not np.isfinite(values).all():
            raise DataError.at(source, "data.target", f"column '{target}' has {int((~np.isfinite(values)).sum())} infinite values")
    if not numeric and task in ("auto", "regression"):
        _check_stray_text(raw, task, source=source, target=target)
    if task == "auto":
        task = "regression" if numeric and not _looks_like_labels(values) else "classification"
    if task == "regression":
        if not numeric:
            example = raw.iloc[0]
            text = pd.api.types.infer_dtype(raw, skipna=True) == "string"
            if text and pd.to_numeric(raw, errors="coerce").notna().all():  # a Parquet text column of numbers
                raise DataError.at(source, "data.target", f"column '{target}' holds numbers stored as text (e.g. "
                                                          f"{example!r}); store it as a numeric column")
            shown = repr(example) if isinstance(example, str) else _label(example)  # True, not np.True_
            raise DataError.at(source, "data.task", f"regression needs a numeric target, but column '{target}' holds labels (e.g. {shown}); use task: classification")
        return values, task, None
    if numeric:
        levels, y = np.unique(values, return_inverse=True)
        class_names = [_label(v) for v in levels]
    else:
        labels = np.array([str(v) for v in values])
        levels, y = np.unique(labels, return_inverse=True)
        class_names = [str(v) for v in levels]
    if len(class_names) < 2:
        raise DataError.at(source, "data.target", f"column '{target}' has a single class ({class_names[0]!r}); classification needs at least 2")
    return y.astype(np.int64), task, class_names


def _check_stray_text(raw: pd.Series, task: str, *, source: str, target: str) -> None:
    """A text target that is nearly all numbers has a typo or a unit in a few cells ('?', '12 kg',
    '1,467'): name them, rather than call the numbers labels. Under task auto, integer numbers
    with a few texts may well be labels ('1', '2', 'other'), so only fractions count there."""
    import pandas as pd

    from nnexp.data.preprocess import _names, _not_numbers

    strays = _not_numbers(raw, np.ones(len(raw), dtype=bool))
    if not strays:
        return
    numbers = pd.to_numeric(raw, errors="coerce").dropna().to_numpy(dtype=np.float64)
    if task == "auto" and _looks_like_labels(numbers):
        return
    raise DataError.at(source, "data.target", f"column '{target}' holds numbers except {len(strays)} value(s) that are "
                                              f"not ({_names(sorted(set(strays)), 3)}); fix or remove those rows")


def _looks_like_labels(values: np.ndarray) -> bool:
    """The auto rule for numeric targets (see AUTO_MAX_CLASSES)."""
    if not np.all(np.equal(np.mod(values, 1), 0)):
        return False
    distinct = len(np.unique(values))
    return distinct == 2 or distinct <= min(AUTO_MAX_CLASSES, math.floor(len(values) / AUTO_ROWS_PER_CLASS))


def load_table(spec: DataSpec, seed: int) -> Table:
    """The rows a DataSpec names: a built-in (drawn with `seed`) or a user file, without the
    feature columns of `data.drop`."""
    if spec.dataset in DATASETS:
        table = load_builtin(spec.dataset, n_samples=spec.n_samples, noise=spec.noise, seed=seed, task=spec.task)
    else:
        table = load_file(spec.dataset, target=spec.target, task=spec.task)
    table = without_columns(table, spec.drop)
    if table.frame is not None:
        _say_unnamed(table)
    return table


def _say_unnamed(table: Table) -> None:
    """A CSV header cell left blank above values: pandas names the column 'Unnamed: 1', a feature
    that files to predict must then hold under that name (and R's write.csv leaves its row
    numbers so: a feature that learns the row order)."""
    import re

    found = [re.fullmatch(r"Unnamed: (\d+)", str(c)) for c in table.frame.columns]
    unnamed = [f"'{m.group(0)}' (the file's column {int(m.group(1)) + 1})" for m in found if m]
    if unnamed:
        from nnexp.data.preprocess import DataWarning

        warn(f"{table.source}: feature column(s) without a name in the header, read as {', '.join(unnamed)}; name "
             "them, or leave them out with data.drop", DataWarning)


def _listed(columns: list[str], limit: int = 20) -> str:
    """Column names for a message, as written: `a, b, c, ...` past `limit`."""
    return ", ".join(columns[:limit]) + (", ..." if len(columns) > limit else "")


def without_columns(table: Table, drop: list[str]) -> Table:
    """The table without these feature columns (an id column would be one-hot encoded, a leak learnt)."""
    if not drop:
        return table
    names = table.names if table.numeric is not None else [str(c) for c in table.frame.columns]
    if table.target in drop and table.target not in names:
        raise DataError.at(table.source, "data.drop", f"'{table.target}' is the target, not a feature column")
    unknown = [c for c in drop if c not in names]
    if unknown:
        raise DataError.at(table.source, "data.drop", f"no feature column '{unknown[0]}'"
                                                      f"{did_you_mean(unknown[0], names)} (features: {_listed(names)})")
    if len(drop) == len(names):
        raise DataError.at(table.source, "data.drop", "leaves no feature column to learn from")
    if table.numeric is not None:
        keep = [i for i, name in enumerate(names) if name not in drop]
        return replace(table, numeric=np.ascontiguousarray(table.numeric[:, keep]), names=[names[i] for i in keep])
    return replace(table, frame=table.frame.drop(columns=[c for c in table.frame.columns if str(c) in drop]))
