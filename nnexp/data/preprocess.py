"""The fitted preprocessing: imputation, one-hot encoding, normalisation, target scaling.

Everything is learnt from the training rows only and then applied unchanged to
validation, test and prediction rows, so no statistic of held-out rows leaks
into training. The steps, in order:

1. impute missing values (mean | median of numeric columns, most frequent level
   of categorical ones), or refuse them;
2. one-hot encode non-numeric columns with the training levels (an unseen level
   becomes all zeros, with a warning);
3. normalise every encoded column: none | zscore | minmax | pca. zscore and
   minmax drop features that are constant on the training rows (they carry no
   information and would divide by zero). pca z-scores first (so that a feature's
   units do not decide the components), then projects onto the leading principal
   components of the training rows, optionally whitened to unit variance;
4. for regression, the target is standardised with the training mean and std.

A fitted Preprocessor is plain arrays (`to_arrays`), saved inside model.npz
without pickle.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from nnexp.errors import DataError, warn
from nnexp.spec import one_form

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

FORMAT_VERSION = 1
NORMALIZATIONS = ("none", "zscore", "minmax", "pca")
IMPUTATIONS = ("none", "mean", "median")


class DataWarning(UserWarning):
    """Data was changed on the way in (dropped features, unseen categories)."""


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def column_kinds(frame: pd.DataFrame) -> list[bool]:
    """True for the columns one-hot encoded: anything that is not a number or a bool."""
    import pandas as pd

    return [not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])) for c in frame.columns]


class Preprocessor:
    """Raw feature table -> network input, and class indices / scaled targets <-> original values."""

    def __init__(self, *, columns, categorical, levels, impute, fill, normalize, keep, shift, scale,
                 pca_mean, components, pca_scale, feature_names, task, target, class_names,
                 target_mean, target_std, dtype="float32"):
        self.columns: list[str] = list(columns)                 # raw feature columns, in order
        self.categorical: list[bool] = list(categorical)         # one-hot encoded or not, per column
        self.levels: dict[str, list[str]] = levels               # training levels of categorical columns
        self.impute: str = impute
        self.fill: dict[str, float | str] = fill                 # imputed value per column (impute != none)
        self.normalize: str = normalize
        self.keep = np.asarray(keep, dtype=np.int64)            # encoded columns kept (constants dropped)
        self.shift = np.asarray(shift, dtype=np.float64)        # x -> (x - shift) / scale on kept columns
        self.scale = np.asarray(scale, dtype=np.float64)
        self.pca_mean = None if pca_mean is None else np.asarray(pca_mean, dtype=np.float64)
        self.components = None if components is None else np.asarray(components, dtype=np.float64)  # (k, d)
        self.pca_scale = None if pca_scale is None else np.asarray(pca_scale, dtype=np.float64)
        self.feature_names: list[str] = list(feature_names)     # network input names
        self.task: str = task
        self.target: str = target
        self.class_names: list[str] | None = None if class_names is None else list(class_names)
        self.target_mean = float(target_mean)
        self.target_std = float(target_std)
        self.dtype = str(dtype)

    # ------------------------------------------------------------------ fit

    @classmethod
    def fit(cls, frame: pd.DataFrame | np.ndarray, y: np.ndarray, *, task: str, class_names: list[str] | None = None,
            target: str = "target", normalize: str = "zscore", impute: str = "none", max_categories: int = 100,
            pca_components: int | float = 0.95, pca_whiten: bool = False, dtype: str = "float32",
            source: str = "data", columns: list[str] | None = None) -> Preprocessor:
        """Learn every statistic from these (training) rows; y: class indices or raw targets.

        `frame` may also be a numeric array, its columns named by `columns`: then no
        column is categorical and pandas is not needed.
        """
        if normalize not in NORMALIZATIONS or impute not in IMPUTATIONS:
            raise ValueError(f"normalize={normalize!r}, impute={impute!r}")
        numeric = isinstance(frame, np.ndarray)
        if numeric:
            columns = [str(c) for c in columns] if columns is not None else [f"x{i + 1}" for i in range(frame.shape[1])]
            categorical = [False] * len(columns)
        else:
            frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
            columns = list(frame.columns)
            categorical = column_kinds(frame)
        fill: dict[str, float | str] = {}
        if impute != "none":
            fill = _fit_fill_numeric(frame, columns, impute, source) if numeric else _fit_fill(frame, categorical, impute, source)
        levels = {}
        for col, cat in zip(columns, categorical):
            if cat:
                values = _as_text(frame[col], fill.get(col))
                found = np.unique(values[values != ""]) if len(values) else np.array([], dtype=str)
                _check_level_count(col, len(found), max_categories, source)
                levels[col] = [str(v) for v in found]
        encoded_names = [n for col, cat in zip(columns, categorical) for n in ([f"{col}={v}" for v in levels[col]] if cat else [col])]
        pre = cls(columns=columns, categorical=categorical, levels=levels, impute=impute, fill=fill,
                  normalize="none", keep=np.arange(len(encoded_names)), shift=np.zeros(len(encoded_names)),
                  scale=np.ones(len(encoded_names)), pca_mean=None, components=None, pca_scale=None,
                  feature_names=encoded_names, task=task, target=target, class_names=class_names,
                  target_mean=0.0, target_std=1.0, dtype=dtype)
        X = pre._encode_numeric(frame, source) if numeric else pre._encode(frame, source, warn_unseen=False)
        pre.normalize = normalize
        if normalize != "none":
            pre._fit_scaling(X, encoded_names, normalize, source)
        if normalize == "pca":
            pre._fit_pca((X[:, pre.keep] - pre.shift) / pre.scale, pca_components, pca_whiten, source)
        if task == "regression":
            pre._fit_target(np.asarray(y, dtype=np.float64), source)
        return pre

    def _fit_scaling(self, X: np.ndarray, names: list[str], normalize: str, source: str) -> None:
        lo, hi = X.min(axis=0), X.max(axis=0)
        constant = lo == hi  # exact: np.std of a constant column can be a rounding error above 0
        self.keep = np.flatnonzero(~constant)
        if len(self.keep) == 0:
            raise DataError.at(source, "data.normalize", "every feature is constant on the training rows; nothing to learn from")
        if constant.any():
            dropped = [n for n, c in zip(names, constant) if c]
            warn(f"{source}: dropping {len(dropped)} feature(s) constant on the training rows: {_names(dropped)}",
                 DataWarning)
        kept = X[:, self.keep]
        with np.errstate(over="ignore", invalid="ignore"):  # values near the float64 limit: named below
            if normalize == "minmax":
                self.shift, self.scale = lo[self.keep], (hi - lo)[self.keep]
            else:  # zscore, and the standardisation before pca
                self.shift, self.scale = kept.mean(axis=0), kept.std(axis=0)
        overflow = ~(np.isfinite(self.shift) & np.isfinite(self.scale))
        if overflow.any():
            cols = [names[i] for i in self.keep[overflow]]
            raise DataError.at(source, "data.dataset", f"column(s) {_names(cols)} hold values too large to normalise "
                                                       f"(up to {np.abs(kept[:, overflow]).max():.3g}); rescale them")
        self.feature_names = [names[i] for i in self.keep]

    def _fit_pca(self, Z: np.ndarray, n_components: int | float, whiten: bool, source: str) -> None:
        """Principal axes by SVD of the centred training rows; signs fixed for reproducibility."""
        n, d = Z.shape
        self.pca_mean = Z.mean(axis=0)
        _, s, vt = np.linalg.svd(Z - self.pca_mean, full_matrices=False)
        variance = s**2 / max(n - 1, 1)
        available = int(np.sum(variance > variance[0] * 1e-12)) if len(variance) else 0
        if isinstance(n_components, float):
            ratio = np.cumsum(variance) / variance.sum()
            k = int(np.searchsorted(ratio, n_components - 1e-12) + 1)
        else:
            k = int(n_components)
            if k > available:
                raise DataError.at(source, "data.pca_components", f"asks for {k} components but the training rows span only {available} (features: {d}, rows: {n})")
        k = min(k, available)
        vt = vt[:k]
        signs = np.sign(vt[np.arange(k), np.abs(vt).argmax(axis=1)])
        self.components = vt * signs[:, None]
        self.pca_scale = np.sqrt(variance[:k]) if whiten else np.ones(k)
        self.feature_names = [f"pc{i + 1}" for i in range(k)]

    def _fit_target(self, y: np.ndarray, source: str) -> None:
        with np.errstate(over="ignore", invalid="ignore"):
            mean, std = float(y.mean()), float(y.std())
        if not (math.isfinite(mean) and math.isfinite(std)):
            raise DataError.at(source, "data.target", f"'{self.target}' holds values too large to standardise "
                                                      f"(up to {np.abs(y).max():.3g}); rescale it")
        if not std > 0:
            raise DataError.at(source, "data.target", f"'{self.target}' is constant on the training rows ({mean:g}); nothing to learn")
        self.target_mean, self.target_std = mean, std

    # ------------------------------------------------------------------ transform

    def transform_features(self, data, dtype: str | None = None, *, source: str = "input",
                           training: bool = False) -> np.ndarray:
        """Raw rows (DataFrame with the original columns, extras ignored; or an array in column order)
        -> network input of shape (n_samples, n_features), C-contiguous. `training`: the rows a model
        is trained on, whose spec can still change (a value too large for float32 says how)."""
        if isinstance(data, np.ndarray) and data.dtype.kind in "biuf" and not any(self.categorical):
            X = self._encode_numeric(self._as_matrix(data, source), source)
        else:
            X = self._encode(self._as_frame(data, source), source, warn_unseen=True)
        encoded = X if self.components is None else None  # the values as the rows hold them, column by column
        if self.normalize != "none":
            X = (X[:, self.keep] - self.shift) / self.scale
        if self.components is not None:
            X = (X - self.pca_mean) @ self.components.T / self.pca_scale
        dtype = np.dtype(dtype or self.dtype)
        if dtype.itemsize < X.dtype.itemsize and X.size:
            _check_fits(X, self.feature_names, dtype, source, training,
                        None if encoded is None or self.normalize == "none" else encoded[:, self.keep])
        return np.ascontiguousarray(X, dtype=dtype)

    def transform_target(self, y, dtype: str | None = None) -> np.ndarray:
        """Training form of the target: class indices as int64, regression values standardised."""
        if self.task == "classification":
            return np.asarray(y, dtype=np.int64)
        return np.ascontiguousarray((np.asarray(y, dtype=np.float64) - self.target_mean) / self.target_std, dtype=dtype or self.dtype)

    def inverse_target(self, y) -> np.ndarray:
        """Standardised regression outputs back in the target's original units (float64)."""
        return np.asarray(y, dtype=np.float64) * self.target_std + self.target_mean

    def decode_labels(self, indices) -> np.ndarray:
        """Class indices -> class names (numpy unicode array)."""
        if self.class_names is None:
            raise ValueError("decode_labels is for classification; use inverse_target")
        return np.asarray(self.class_names)[np.asarray(indices, dtype=np.int64)]

    def encode_labels(self, names) -> np.ndarray:
        """Class names (or values whose str() is a name) -> indices; DataError for unknown names."""
        if self.class_names is None:
            raise ValueError("encode_labels is for classification")
        lookup = {n: i for i, n in enumerate(self.class_names)}
        from nnexp.data.datasets import _label

        labels = [_label(v) for v in np.asarray(names, dtype=object).ravel()]
        unknown = sorted({v for v in labels if v not in lookup})
        if unknown:
            raise DataError.at("labels", "data.target", f"unknown classes {_names(unknown)} (known: {_names(self.class_names)})")
        return np.array([lookup[v] for v in labels], dtype=np.int64)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    # ------------------------------------------------------------------ internals

    def _as_frame(self, data, source: str) -> pd.DataFrame:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            from nnexp.data.datasets import with_names_as_read

            frame = with_names_as_read(data, source)
            missing = [c for c in self.columns if c not in frame.columns]
            unused = self._unused_columns()
            needed = [c for c in missing if c not in unused]
            if needed:
                raise DataError.at(source, None, f"missing feature column(s) {_names(needed)} that the model was trained on "
                                                 f"(found: {_names(list(frame.columns))})")
            for col in missing:  # dropped as constant in training: any valid value encodes to nothing
                frame[col] = self.levels[col][0] if self.levels.get(col) else 0.0
            return frame[self.columns]
        return pd.DataFrame(self._as_matrix(np.asarray(data), source), columns=self.columns)

    def _unused_columns(self) -> set[str]:
        """Raw columns none of whose encoded features the network sees (constant in training)."""
        if self.normalize == "none":
            return set()
        kept, start, unused = set(self.keep.tolist()), 0, set()
        for col, cat in zip(self.columns, self.categorical):
            width = len(self.levels[col]) if cat else 1
            if not kept & set(range(start, start + width)):
                unused.add(col)
            start += width
        return unused

    def _as_matrix(self, X: np.ndarray, source: str) -> np.ndarray:
        """An array of rows in column order, as (n_samples, n_columns); one row may come flat."""
        if X.ndim == 1:
            X = X.reshape(1, -1) if len(self.columns) > 1 else X.reshape(-1, 1)
        if X.ndim != 2 or X.shape[1] != len(self.columns):
            raise DataError.at(source, None, f"expected {len(self.columns)} feature columns ({_names(self.columns)}), got shape {X.shape}")
        return X

    def _encode_numeric(self, X: np.ndarray, source: str) -> np.ndarray:
        """`_encode` for an all-numeric array: the same checks and fills, without pandas."""
        X = np.array(X, dtype=np.float64)  # a copy: filled in place below
        missing = np.isnan(X)
        refused = [j for j, col in enumerate(self.columns) if col not in self.fill]
        if missing[:, refused].any():
            counts = {self.columns[j]: int(missing[:, j].sum()) for j in refused if missing[:, j].any()}
            raise _missing_values(counts, int(missing[:, refused].any(axis=1).sum()), source)
        infinite = np.isinf(X).sum(axis=0)
        if infinite.any():
            j = int(np.flatnonzero(infinite)[0])
            raise _infinite_values(self.columns[j], int(infinite[j]), source)
        for j, col in enumerate(self.columns):
            if col in self.fill and missing[:, j].any():
                X[missing[:, j], j] = self.fill[col]
        return X

    def _encode(self, frame: pd.DataFrame, source: str, *, warn_unseen: bool) -> np.ndarray:
        """Impute, check and one-hot encode: (n_samples, n_encoded) float64."""
        import pandas as pd

        _check_missing(frame, self.columns, self.fill, source)
        blocks = []
        for col, cat in zip(self.columns, self.categorical):
            series = frame[col]
            if not cat:
                values = _numeric(series, col, source)
                if col in self.fill:
                    values = np.where(np.isnan(values), self.fill[col], values)
                blocks.append(values[:, None])
                continue
            text = _as_text(series, self.fill.get(col))
            levels = self.levels[col]
            if not levels:
                continue
            index = pd.Index(levels).get_indexer(text)
            onehot = np.zeros((len(text), len(levels)))
            seen = index >= 0
            onehot[np.flatnonzero(seen), index[seen]] = 1.0
            unseen = int((~seen).sum())  # missing values were refused or filled above
            if warn_unseen and unseen:
                found = list(dict.fromkeys(text[~seen]))
                warn(f"{source}: column '{col}': {unseen} row(s) have categories not seen in training ({_names(found, 5)}; "
                     f"known: {_names(levels, 5)}); encoded as all zeros", DataWarning)
            blocks.append(onehot)
        if not blocks:
            return np.zeros((len(frame), 0))
        return np.hstack(blocks)

    # ------------------------------------------------------------------ saving

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every fitted value as a plain numpy array (strings as unicode), keys 'prep.*'."""
        cat_columns = [c for c, k in zip(self.columns, self.categorical) if k]
        levels = [v for c in cat_columns for v in self.levels[c]]
        arrays = {
            "version": np.array(FORMAT_VERSION),
            "task": np.array(self.task),
            "target": np.array(self.target),
            "dtype": np.array(self.dtype),
            "columns": np.array(self.columns, dtype=str).reshape(-1),
            "categorical": np.array(self.categorical, dtype=bool),
            "levels": np.array(levels, dtype=str).reshape(-1),
            "level_counts": np.array([len(self.levels[c]) for c in cat_columns], dtype=np.int64),
            "impute": np.array(self.impute),
            "fill_value": np.array([self.fill[c] if c in self.fill and not k else np.nan for c, k in zip(self.columns, self.categorical)], dtype=np.float64),
            "fill_level": np.array([self.fill[c] if c in self.fill and k else "" for c, k in zip(self.columns, self.categorical)], dtype=str).reshape(-1),
            "normalize": np.array(self.normalize),
            "keep": self.keep,
            "shift": self.shift,
            "scale": self.scale,
            "feature_names": np.array(self.feature_names, dtype=str).reshape(-1),
            "class_names": np.array(self.class_names or [], dtype=str).reshape(-1),
            "target_mean": np.array(self.target_mean),
            "target_std": np.array(self.target_std),
        }
        if self.components is not None:
            arrays.update(pca_mean=self.pca_mean, components=self.components, pca_scale=self.pca_scale)
        return {f"prep.{k}": v for k, v in arrays.items()}

    @classmethod
    def from_arrays(cls, arrays) -> Preprocessor:
        """The inverse of to_arrays; other keys (the network's weights) are ignored."""
        a = {k[len("prep."):]: np.asarray(arrays[k]) for k in arrays.keys() if k.startswith("prep.")}
        if "version" not in a:
            raise DataError.at("model", None, "no saved preprocessing (prep.* arrays) in this file")
        if int(a["version"]) > FORMAT_VERSION:
            raise DataError.at("model", None, f"preprocessing saved by a newer nnexp (format {int(a['version'])})")
        # names and levels in one Unicode form, as files are read now (a model saved before they were)
        columns = [one_form(c) for c in a["columns"]]
        categorical = [bool(c) for c in a["categorical"]]
        cat_columns = [c for c, k in zip(columns, categorical) if k]
        bounds = np.concatenate([[0], np.cumsum(a["level_counts"])]).astype(int)
        levels = {c: [one_form(v) for v in a["levels"][bounds[i]:bounds[i + 1]]] for i, c in enumerate(cat_columns)}
        impute = str(a["impute"])
        fill: dict[str, float | str] = {}
        if impute != "none":
            for c, k, value, level in zip(columns, categorical, a["fill_value"], a["fill_level"]):
                fill[c] = one_form(level) if k else float(value)
        class_names = [one_form(c) for c in a["class_names"]] if str(a["task"]) == "classification" else None
        return cls(columns=columns, categorical=categorical, levels=levels, impute=impute, fill=fill,
                   normalize=str(a["normalize"]), keep=a["keep"], shift=a["shift"], scale=a["scale"],
                   pca_mean=a.get("pca_mean"), components=a.get("components"), pca_scale=a.get("pca_scale"),
                   feature_names=[one_form(n) for n in a["feature_names"]], task=str(a["task"]), target=one_form(a["target"]),
                   class_names=class_names, target_mean=float(a["target_mean"]), target_std=float(a["target_std"]),
                   dtype=str(a["dtype"]))

    def __repr__(self) -> str:
        return (f"Preprocessor({len(self.columns)} columns -> {self.n_features} features, normalize={self.normalize}, "
                f"impute={self.impute}, task={self.task})")


# --------------------------------------------------------------------------- helpers


def _as_text(series: pd.Series, fill: str | None) -> np.ndarray:
    """Category values as strings; missing -> the fill level, or '' (never a known level). Numbers
    given for a column of categories (a DataFrame whose blank cell made the codes floats) read as
    they print in a file: 1.0 as '1'."""
    import pandas as pd

    from nnexp.data.datasets import _is_missing, _label

    missing = _is_missing(series)
    as_text = _label if pd.api.types.is_float_dtype(series) else one_form  # a DataFrame's text, as a file's is read
    text = np.array([as_text(v) for v in series.to_numpy()], dtype=object)
    text[missing] = fill if fill is not None else ""
    return text.astype(str)


def _numeric(series: pd.Series, col: str, source: str) -> np.ndarray:
    """A numeric column as float64; text in it (e.g. a predict file) is a DataError."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        converted = pd.to_numeric(series, errors="coerce")
        bad = converted.isna() & ~series.isna()
        if bad.any():
            raise DataError.at(source, None, f"column '{col}' should be numeric, found {series[bad].iloc[0]!r}")
        values = converted.to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.isinf(values)
    if infinite.any():
        raise _infinite_values(col, int(infinite.sum()), source)
    return values


def _check_fits(X: np.ndarray, names: list[str], dtype: np.dtype, source: str, training: bool = False,
                raw: np.ndarray | None = None) -> None:
    """Values beyond float32's range would become inf on the way into the network (normalize: none).
    `raw`: X's columns before normalisation, so a message quotes the values the rows hold (a file's
    1e300, not the 6.5e295 it became); rows to predict are named."""
    limit = np.finfo(dtype).max
    largest = np.maximum(X.max(axis=0), -X.min(axis=0))  # no |X| copy of a large data set
    big = largest > limit
    if big.any():
        cols = [n for n, b in zip(names, big) if b]
        shown = largest[big] if raw is None else np.abs(raw[:, big]).max(axis=0)
        problem = f"column(s) {_names(cols)} hold values too large for {dtype} (up to {shown.max():.3g})"
        if training:
            raise DataError.at(source, "data.normalize", f"{problem}; normalise them or use train.dtype: float64")
        rows = np.flatnonzero((np.abs(X[:, big]) > limit).any(axis=1))
        where = ", ".join(str(r + 1) for r in rows[:5]) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
        after = "" if raw is None else ", after its normalisation"
        raise DataError.at(source, None, f"{problem}, which the model computes in{after}: check data row(s) {where}")


def _check_missing(frame: pd.DataFrame, columns: list[str], fill: dict, source: str) -> None:
    """Missing values are refused, except in columns with a fitted fill value."""
    from nnexp.data.datasets import _is_missing

    counts = {}
    rows = np.zeros(len(frame), dtype=bool)
    for col in columns:
        if col in fill:
            continue
        missing = _is_missing(frame[col])
        if missing.any():
            counts[col] = int(missing.sum())
            rows |= missing
    if counts:
        raise _missing_values(counts, int(rows.sum()), source)


def _per_column(counts: dict[str, int], limit: int = 8) -> str:
    """`'a' (2), 'b' (1)`, and how many more columns beyond `limit`."""
    detail = ", ".join(f"'{c}' ({n})" for c, n in list(counts.items())[:limit])
    return detail + (f" and {len(counts) - limit} more columns" if len(counts) > limit else "")


def _missing_values(counts: dict[str, int], rows: int, source: str) -> DataError:
    return DataError.at(source, "data.impute", f"{rows} row(s) have missing values in column(s) {_per_column(counts)}; set data.impute: mean or median, or clean the file")


def _infinite_values(col: str, count: int, source: str) -> DataError:
    return DataError.at(source, None, f"column '{col}' has {count} infinite value(s)")


def _nothing_to_impute(col: str, source: str) -> DataError:
    return DataError.at(source, "data.impute", f"column '{col}' has no values in the training rows to impute from")


def _fit_fill(frame: pd.DataFrame, categorical: list[bool], impute: str, source: str) -> dict[str, float | str]:
    """Per-column fill values from the training rows: mean/median, or the most frequent level."""
    from nnexp.data.datasets import _is_missing

    fill: dict[str, float | str] = {}
    for col, cat in zip(frame.columns, categorical):
        series = frame[col]
        present = ~_is_missing(series)
        if not present.any():
            raise _nothing_to_impute(col, source)
        if cat:
            levels, counts = np.unique(np.array([str(v) for v in series[present]]), return_counts=True)
            fill[col] = str(levels[counts.argmax()])  # ties: the first level in sorted order
        else:
            values = _numeric(series, col, source)[present]
            fill[col] = float(values.mean() if impute == "mean" else np.median(values))
    return fill


def _fit_fill_numeric(X: np.ndarray, columns: list[str], impute: str, source: str) -> dict[str, float]:
    """`_fit_fill` for an all-numeric array."""
    fill: dict[str, float] = {}
    for j, col in enumerate(columns):
        values = X[:, j][~np.isnan(X[:, j])]
        if not len(values):
            raise _nothing_to_impute(col, source)
        fill[col] = float(values.mean() if impute == "mean" else np.median(values))
    return fill


def check_features(frame: pd.DataFrame, columns: list[str], fill: dict | None, source: str) -> None:
    """Refuse infinite values anywhere, and missing values outside imputed columns (fill None: all are)."""
    import pandas as pd

    if fill is not None:
        _check_missing(frame, columns, fill, source)
    counts = {}
    for col in columns:
        series = frame[col]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            infinite = int(np.isinf(series.to_numpy(dtype=np.float64, na_value=np.nan)).sum())
            if infinite:
                counts[col] = infinite
    if counts:  # every column at once: fixing the file should not take one run per column
        raise DataError.at(source, "data.dataset", f"infinite values in column(s) {_per_column(counts)}; replace them or drop those rows")


def _check_level_count(col: str, count: int, max_categories: int, source: str) -> None:
    if count > max_categories:
        raise DataError.at(source, "data.max_categories", f"column '{col}' has {count} distinct levels, more than the cap of {max_categories}; raise data.max_categories, or leave the column out with data.drop: ['{col}']")


NUMERIC_LOOKALIKE = 0.9  # share of a text column's values that are numbers, above which the rest look like typos


def _not_numbers(series: pd.Series, present: np.ndarray) -> list[str]:
    """The present values of a text column that are not numbers, when nearly all of its values are
    (a typo or a stray unit in a numeric column makes pandas read the whole column as text)."""
    import pandas as pd

    values = series[present]
    numbers = pd.to_numeric(values, errors="coerce").notna().to_numpy()
    if not len(values) or numbers.mean() < NUMERIC_LOOKALIKE:
        return []
    return [str(v) for v in values[~numbers]]


def check_levels(frame: pd.DataFrame, max_categories: int, source: str) -> None:
    """The level cap over all rows of a file, so the message does not depend on the split; a
    column of numbers with a few stray texts is named, since it would be one-hot encoded."""
    from nnexp.data.datasets import _is_missing

    for col, cat in zip(frame.columns, column_kinds(frame)):
        if cat:
            series = frame[col]
            present = ~_is_missing(series)
            count = len({str(v) for v in series[present]})
            strays = _not_numbers(series, present)
            if not strays:
                _check_level_count(str(col), count, max_categories, source)
                continue
            problem = (f"column '{col}' holds numbers except {len(strays)} value(s) that are not "
                       f"({_names(sorted(set(strays)), 3)})")
            if count > max_categories:
                raise DataError.at(source, "data.dataset", f"{problem}; fix or remove those cells")
            warn(f"{source}: {problem}, so it is encoded as categories; fix those cells "
                 "if it is a numeric column", DataWarning)
