"""User files: CSV / Parquet / npz, categorical columns, missing values, every bad-file case."""

import os
import warnings

import numpy as np
import pandas as pd
import pytest

from nnexp.data import DataWarning, load_features, load_table, prepare, prepare_folds
from nnexp.data.split import split_indices
from nnexp.errors import DataError
from nnexp.spec import DataSpec


def _fruit(n=60, seed=0):
    """Two numeric columns, a categorical 'colour', string labels in 'kind'."""
    rng = np.random.default_rng(seed)
    colour = np.array(["red", "green", "yellow"])[np.arange(n) % 3]
    kind = np.where(colour == "yellow", "banana", np.where(np.arange(n) % 2, "apple", "cherry"))
    return pd.DataFrame({"weight": rng.normal(100, 20, n), "colour": colour,
                         "size": rng.normal(5, 1, n), "kind": kind})


def _csv(tmp_path, frame, name="data.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def _prepare(path, **kw):
    return prepare(DataSpec(dataset=str(path), **kw), seed=0, dtype="float64")


def test_string_labels_and_categorical_column_encode_and_decode_by_name(tmp_path):
    frame = _fruit()
    p = _prepare(_csv(tmp_path, frame), normalize="none")
    assert p.task == "classification" and p.class_names == ["apple", "banana", "cherry"]
    assert p.feature_names == ["weight", "colour=green", "colour=red", "colour=yellow", "size"]
    assert p.n_outputs == 3 and p.source.endswith("data.csv")
    X = p.preprocessor.transform_features(frame)
    np.testing.assert_array_equal(X[:, 1:4].sum(1), 1.0)
    np.testing.assert_array_equal(X[:, 3], (frame["colour"] == "yellow").astype(float))
    names = p.preprocessor.decode_labels(np.concatenate([p.y_train, p.y_val, p.y_test]))
    assert set(names) == {"apple", "banana", "cherry"}
    np.testing.assert_array_equal(p.preprocessor.encode_labels(names), np.concatenate([p.y_train, p.y_val, p.y_test]))


def test_unseen_category_maps_to_zeros_with_a_warning(tmp_path):
    p = _prepare(_csv(tmp_path, _fruit()), normalize="none")
    new = _fruit(4).assign(colour=["purple", "red", "purple", "green"])
    with pytest.warns(DataWarning, match=r"column 'colour': 2 row\(s\) have categories not seen in training"):
        X = p.preprocessor.transform_features(new)
    np.testing.assert_array_equal(X[:, 1:4], [[0, 0, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0]])


def test_category_codes_that_look_like_numbers_are_matched_as_written_in_training(tmp_path):
    """A predict file holding only codes that read as numbers ('007', or '1' beside a blank cell)
    was typed as floats by its reader: '7.0' matched no level, and the rows were encoded as zeros."""
    rng = np.random.default_rng(0)
    codes = np.array(["007", "1", "2", "x"])[np.arange(80) % 4]
    train = pd.DataFrame({"f": rng.normal(size=80), "code": codes, "y": rng.normal(size=80)})
    p = _prepare(_csv(tmp_path, train), target="y", normalize="none", impute="mean")
    assert p.preprocessor.levels["code"] == ["007", "1", "2", "x"]
    new = pd.DataFrame({"f": [0.0] * 4, "code": ["007", "1", "2", None]})
    expected = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], p.preprocessor.transform_features(new.iloc[[3]])[0, 1:]]
    for path in (_csv(tmp_path, new, "new.csv"), _parquet_of(tmp_path, new)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", DataWarning)
            np.testing.assert_array_equal(load_features(path, p.preprocessor)[:, 1:], expected)
    (tmp_path / "padded.csv").write_text(" f , code \n0.0,007\n0.0,1\n")  # the header's blanks: the column is code
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        np.testing.assert_array_equal(load_features(str(tmp_path / "padded.csv"), p.preprocessor)[:, 1:], expected[:2])
    as_floats = pd.DataFrame({"f": [0.0] * 3, "code": [1.0, 2.0, np.nan]})  # a DataFrame whose blank made floats
    np.testing.assert_array_equal(load_features(as_floats, p.preprocessor)[:2, 1:], [[0, 1, 0, 0], [0, 0, 1, 0]])
    with pytest.warns(DataWarning, match=r"column 'code': 1 row\(s\) have categories not seen in training \('7'; "
                                         r"known: '007', '1', '2', 'x'\)"):
        load_features(pd.DataFrame({"f": [0.0], "code": [7]}), p.preprocessor)


def _parquet_of(tmp_path, frame):
    path = tmp_path / "new.parquet"
    frame.to_parquet(path)
    return str(path)


def test_categories_are_learnt_from_training_rows_only(tmp_path):
    frame = _fruit()
    frame.loc[5, "colour"] = "blue"  # a single row: it lands in one split only
    p = _prepare(_csv(tmp_path, frame), normalize="none", val_fraction=0.3, test_fraction=0.3)
    in_train = "colour=blue" in p.feature_names
    assert in_train == (p.preprocessor.levels["colour"].count("blue") == 1)
    assert p.preprocessor.levels["colour"][:1] == (["blue"] if in_train else ["green"])


def test_too_many_levels_is_an_error_naming_the_cap(tmp_path):
    frame = _fruit(200)
    frame.insert(0, "code", [f"c{i}" for i in range(200)])
    with pytest.raises(DataError, match=r"data.max_categories: column 'code' has 200 distinct levels, more than the cap of 100"):
        _prepare(_csv(tmp_path, frame))
    with pytest.warns(DataWarning, match="column 'code': 40 row"):  # val/test codes are all new
        assert _prepare(_csv(tmp_path, frame), max_categories=200).X_train.shape[1] > 100


def test_a_numeric_column_with_stray_text_is_named(tmp_path):
    """One typo makes pandas read a column of numbers as text, to be one-hot encoded: never silently."""
    frame = _fruit(200)  # as text: 200 levels, over the cap of 100
    frame["weight"] = frame["weight"].round(2).astype(object)
    frame.loc[4, "weight"] = "12 kg"
    path = _csv(tmp_path, frame)
    with pytest.raises(DataError, match=r"data.dataset: column 'weight' holds numbers except 1 value\(s\) that are "
                                        r"not \('12 kg'\); fix or remove those cells"):
        _prepare(path)
    few = _fruit()
    few["size"] = (np.arange(len(few)) % 3).astype(object)
    few.loc[[1, 2], "size"] = "?"
    with pytest.warns(DataWarning, match=r"column 'size' holds numbers except 2 value\(s\) that are not \('\?'\), "
                                         r"so it is encoded as categories"):
        prepared = _prepare(_csv(tmp_path, few, "few.csv"))
    assert "size=?" in prepared.feature_names
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a column of words is categorical, nothing to say
        _prepare(_csv(tmp_path, _fruit(), "words.csv"), normalize="none")


def test_missing_values_name_the_columns_and_row_count(tmp_path):
    frame = _fruit()
    frame.loc[[3, 7], "weight"] = np.nan
    frame.loc[[7, 9, 11], "colour"] = None
    path = _csv(tmp_path, frame)
    with pytest.raises(DataError, match=r"data.impute: 4 row\(s\) have missing values in column\(s\) 'weight' \(2\), 'colour' \(3\)"):
        _prepare(path)


@pytest.mark.parametrize("how", ["mean", "median"])
def test_missing_values_are_imputed_from_training_rows(tmp_path, how):
    frame = _fruit()
    frame["weight"] = np.arange(60.0) ** 2  # mean and median differ
    frame.loc[[3, 7, 40], "weight"] = np.nan
    frame.loc[[9], "colour"] = ""
    frame.loc[[11, 12], "colour"] = None
    path = _csv(tmp_path, frame)
    p = _prepare(path, impute=how, normalize="none")
    table = load_table(DataSpec(dataset=path), 0)
    train, _, _ = split_indices(table.y, task="classification", class_names=table.class_names,
                                val_fraction=0.2, test_fraction=0.2, seed=0, source=path)
    weights = frame["weight"].to_numpy()[train]
    weights = weights[~np.isnan(weights)]
    fill = p.preprocessor.fill["weight"]
    assert fill == pytest.approx(weights.mean() if how == "mean" else np.median(weights), rel=1e-12)
    if how == "mean":  # (the median of these squares happens to agree with the full table's)
        assert fill != pytest.approx(np.nanmean(frame["weight"]))
    levels, counts = np.unique(frame["colour"].iloc[train].dropna().replace("", np.nan).dropna(), return_counts=True)
    assert p.preprocessor.fill["colour"] == levels[counts.argmax()]
    X = p.preprocessor.transform_features(table.features)
    assert np.isfinite(X).all()
    np.testing.assert_array_equal(X[[3, 7, 40], 0], fill)
    fill_column = p.feature_names.index(f"colour={p.preprocessor.fill['colour']}")
    np.testing.assert_array_equal(X[[9, 11, 12], fill_column], 1.0)
    with pytest.raises(DataError, match=r"data.impute: 6 row\(s\) have missing values in column\(s\) 'weight' \(3\), 'colour' \(3\)"):
        load_features(path, _prepare(_csv(tmp_path, frame.drop(index=[3, 7, 40, 9, 11, 12]), "clean.csv")).preprocessor)


def test_missing_target_and_infinite_values_are_errors(tmp_path):
    frame = _fruit()
    frame.loc[[1, 2], "kind"] = None
    with pytest.raises(DataError, match=r"data.target: column 'kind' has 2 missing values"):
        _prepare(_csv(tmp_path, frame))
    frame = _fruit()
    frame.loc[4, "size"] = np.inf
    frame.loc[[5, 6], "weight"] = -np.inf
    with pytest.raises(DataError, match=r"data.dataset: infinite values in column\(s\) 'weight' \(2\), 'size' \(1\)"):
        _prepare(_csv(tmp_path, frame))
    frame = _fruit().assign(kind=np.r_[np.inf, np.arange(59.0)])
    with pytest.raises(DataError, match=r"data.target: column 'kind' has 1 infinite values"):
        _prepare(_csv(tmp_path, frame))


def test_target_column_by_name_and_did_you_mean(tmp_path):
    frame = _fruit()[["kind", "weight", "size"]]
    path = _csv(tmp_path, frame)
    p = _prepare(path, target="kind")
    assert p.class_names == ["apple", "banana", "cherry"] and p.feature_names == ["weight", "size"]
    with pytest.raises(DataError, match=r"data.csv: data.target: no column 'knd'; did you mean 'kind'\? \(columns: kind, weight, size\)"):
        _prepare(path, target="knd")


@pytest.mark.parametrize("values, task", [
    (np.arange(100) % 3, "classification"),                 # few integer labels
    (np.arange(100) % 2 * 1.0, "classification"),            # 0.0/1.0 floats
    (np.arange(100) % 2 == 0, "classification"),             # bools
    (np.linspace(0, 1, 100), "regression"),                  # continuous
    (np.arange(100) % 30, "regression"),                     # > 20 distinct integers
    (np.arange(100) % 10 * 0.5, "regression"),               # not integer-valued
])
def test_task_auto_rule(tmp_path, values, task):
    frame = pd.DataFrame({"a": np.random.default_rng(0).normal(size=100), "y": values})
    assert _prepare(_csv(tmp_path, frame), cv_folds=0).task == task


def test_integer_target_with_many_levels_for_its_size_is_regression(tmp_path):
    frame = pd.DataFrame({"a": np.arange(30.0), "y": np.arange(30) % 8})  # 8 levels > 30 / 5 rows
    assert load_table(DataSpec(dataset=_csv(tmp_path, frame)), 0).task == "regression"


def test_explicit_task_overrides_auto(tmp_path):
    frame = pd.DataFrame({"a": np.arange(100.0), "y": np.arange(100) % 3})
    assert _prepare(_csv(tmp_path, frame), task="regression").task == "regression"


def test_parquet_file_loads_like_csv(tmp_path):
    frame = _fruit()
    frame.to_parquet(tmp_path / "fruit.parquet")
    a = _prepare(tmp_path / "fruit.parquet")
    b = _prepare(_csv(tmp_path, frame))
    assert a.class_names == b.class_names and a.feature_names == b.feature_names
    np.testing.assert_allclose(a.X_train, b.X_train)


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(80, 3)), np.arange(80) % 2
    np.savez(tmp_path / "d.npz", X=X, y=y)
    p = _prepare(tmp_path / "d.npz", val_fraction=0, test_fraction=0, normalize="none")
    assert p.feature_names == ["x1", "x2", "x3"] and p.class_names == ["0", "1"]
    np.testing.assert_array_equal(p.X_train, X)
    np.testing.assert_array_equal(p.y_train, y)
    np.savez(tmp_path / "named.npz", X=X, y=y * 2.5, feature_names=np.array(["a", "b", "c"]))
    q = _prepare(tmp_path / "named.npz", task="regression")
    assert q.feature_names == ["a", "b", "c"] and q.task == "regression"


def test_load_features_for_prediction(tmp_path):
    frame = _fruit()
    p = _prepare(_csv(tmp_path, frame))
    X = load_features(_csv(tmp_path, frame, "new.csv"), p.preprocessor, "float64")
    np.testing.assert_array_equal(X, p.preprocessor.transform_features(frame.drop(columns="kind")))
    no_target = _csv(tmp_path, frame.drop(columns="kind"), "nolabel.csv")
    np.testing.assert_array_equal(load_features(no_target, p.preprocessor, "float64"), X)
    assert load_features(no_target, p.preprocessor).dtype == np.float64  # the dtype it was prepared with
    with pytest.raises(DataError, match=r"short.csv: missing feature column\(s\) 'colour', 'size'"):
        load_features(_csv(tmp_path, frame[["weight"]], "short.csv"), p.preprocessor)
    bad = frame.astype({"size": object})
    bad.loc[0, "size"] = "big"
    with pytest.raises(DataError, match=r"column 'size' should be numeric, found 'big'"):
        load_features(_csv(tmp_path, bad, "bad.csv"), p.preprocessor)


def test_columns_dropped_as_constant_in_training_may_be_absent_for_prediction(tmp_path):
    frame = _fruit()
    frame["const"], frame["site"] = 3.0, "lab"  # a constant number and a one-level category
    with pytest.warns(DataWarning, match="dropping 2 feature"):
        p = _prepare(_csv(tmp_path, frame), target="kind")
    full = load_features(_csv(tmp_path, frame, "full.csv"), p.preprocessor, "float64")
    lean = load_features(_csv(tmp_path, frame.drop(columns=["const", "site"]), "lean.csv"), p.preprocessor, "float64")
    np.testing.assert_array_equal(lean, full)
    with pytest.raises(DataError, match=r"lean2.csv: missing feature column\(s\) 'size' that"):
        load_features(_csv(tmp_path, frame.drop(columns=["const", "size"]), "lean2.csv"), p.preprocessor)
    unscaled = _prepare(_csv(tmp_path, frame, "raw.csv"), target="kind", normalize="none")  # nothing dropped
    with pytest.raises(DataError, match=r"missing feature column\(s\) 'const' that"):
        load_features(_csv(tmp_path, frame.drop(columns=["const"]), "lean3.csv"), unscaled.preprocessor)


def test_load_features_from_npz(tmp_path):
    X = np.random.default_rng(0).normal(size=(40, 2))
    np.savez(tmp_path / "train.npz", X=X, y=np.arange(40) % 2)
    p = _prepare(tmp_path / "train.npz")
    np.savez(tmp_path / "new.npz", X=X[:5])
    np.testing.assert_array_equal(load_features(str(tmp_path / "new.npz"), p.preprocessor, "float64"),
                                  p.preprocessor.transform_features(X[:5]))
    np.savez(tmp_path / "wide.npz", X=np.ones((3, 4)))
    with pytest.raises(DataError, match="X has 4 columns but the model needs 2"):
        load_features(str(tmp_path / "wide.npz"), p.preprocessor)


# --------------------------------------------------------------------------- bad files


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return path


BAD_FILES = [
    ("empty.csv", "", r"empty.csv: data.dataset: the file is empty"),
    ("blank.csv", "\n\n", r"blank.csv: data.dataset: the file is empty"),
    ("header.csv", "a,b,label\n", r"header.csv: data.dataset: the file has a header \(a, b, label\) but no data rows"),
    ("garbled.csv", "a,b\n1,2\n3,4,5,6\n", r"garbled.csv: data.dataset: cannot be read as CSV"),
    ("binary.csv", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\x00\x81", r"binary.csv: data.dataset: cannot be read as CSV"),
    ("garbled.parquet", b"PAR1 this is not parquet", r"garbled.parquet: data.dataset: cannot be read as Parquet"),
    ("garbled.npz", b"PK\x03\x04 broken zip", r"garbled.npz: data.dataset: cannot be read as npz"),
    ("one.csv", "label\n1\n2\n", r"one.csv: data.dataset: needs at least one feature column besides the target 'label'"),
    ("semi.csv", "a;b;y\n1;2;0\n", r"semi.csv: data.dataset: needs at least one feature column besides the target 'a;b;y'; is it separated by something other than commas\?"),
    ("single.csv", "a,label\n1,x\n2,x\n3,x\n", r"single.csv: data.target: column 'label' has a single class \('x'\)"),
    ("text.csv", "a,label\n" + "".join(f"{i},c{i % 2}\n" for i in range(20)), None),
]


@pytest.mark.parametrize("name, content, message", [b for b in BAD_FILES if b[2]])
def test_bad_files_are_data_errors(tmp_path, name, content, message):
    path = _write(tmp_path, name, content)
    with pytest.raises(DataError, match=message) as info:
        _prepare(path)
    assert "\n" not in str(info.value)


def _rows(n, cell, seed=0):
    rng = np.random.default_rng(seed)
    return "".join(cell(i, rng) for i in range(n))


def test_repeated_column_names_are_errors(tmp_path):
    """pandas would rename the second 'label' to 'label.1': a copy of the target among the features."""
    path = _write(tmp_path, "dup.csv", "a,label,label\n" + _rows(40, lambda i, r: f"{r.normal():.3f},{'ab'[i % 2]},{'ab'[i % 2]}\n"))
    with pytest.raises(DataError, match=r"dup.csv: data.dataset: column name\(s\) 'label' appear more than once"):
        _prepare(path)
    npz = tmp_path / "dup.npz"
    np.savez(npz, X=np.ones((6, 3)), y=np.arange(6) % 2, feature_names=np.array(["p", "p", "q"]))
    with pytest.raises(DataError, match=r"dup.npz: data.dataset: feature_names repeats 'p'"):
        _prepare(npz)


def test_an_empty_unnamed_column_from_trailing_commas_is_dropped_with_a_warning(tmp_path):
    path = _write(tmp_path, "tc.csv", "a,b,label,\n" + _rows(40, lambda i, r: f"{r.normal():.3f},{r.normal():.3f},{'xy'[i % 2]},\n"))
    with pytest.warns(DataWarning, match=r"ignoring 1 empty column\(s\) without a name"):
        p = _prepare(path, normalize="none")
    assert p.feature_names == ["a", "b"] and p.class_names == ["x", "y"]


def test_a_column_without_a_name_but_with_values_is_named_in_a_warning(tmp_path):
    """pandas names it 'Unnamed: 1' and it became a feature that predict files then had to hold
    under that name; R's write.csv leaves the row numbers so, a feature that leaks the row order."""
    path = _write(tmp_path, "gap.csv", "a,,label,\n" + _rows(40, lambda i, r: f"{r.normal():.3f},{i},{'xy'[i % 2]},\n"))
    with pytest.warns(DataWarning) as caught:
        p = _prepare(path, normalize="none")
    said = [str(w.message) for w in caught]
    assert any("ignoring 1 empty column(s) without a name" in s for s in said)  # the trailing one, as before
    assert any(s.endswith("gap.csv: feature column(s) without a name in the header, read as 'Unnamed: 1' (the "
                          "file's column 2); name them, or leave them out with data.drop") for s in said)
    assert p.feature_names == ["a", "Unnamed: 1"]
    with pytest.warns(DataWarning) as caught:
        _prepare(path, normalize="none", drop=["Unnamed: 1"])
    assert not [w for w in caught if "without a name in the header" in str(w.message)]  # left out: nothing to say
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_features(path, p.preprocessor)  # a file to predict is only read: the column is the model's
    assert not [w for w in caught if "without a name in the header" in str(w.message)]


def test_rows_longer_than_the_header_and_blank_lines_before_it(tmp_path):
    """A comma at the end of the data lines only made pandas shift every column by one."""
    shifted = _write(tmp_path, "shift.csv", "a,b,label\n" + "".join(f"{i},{i * 2},{'xy'[i % 2]},\n" for i in range(40)))
    with pytest.raises(DataError, match=r"shift.csv: data.dataset: the data rows have 4 fields but the header 3"):
        _prepare(shifted)
    rows = "".join(f'"{i}",{i},{i * 2},"{"xy"[i % 2]}"\n' for i in range(40))  # R's write.table: row names first
    assert _prepare(_write(tmp_path, "r.csv", '"a","b","label"\n' + rows), normalize="none").feature_names == ["a", "b"]
    spaced = _write(tmp_path, "spaced.csv", "   \na,b,label\n" + "".join(f"{i},{i * 2},{'xy'[i % 2]}\n" for i in range(40)))
    assert _prepare(spaced, normalize="none").feature_names == ["a", "b"]
    late = _write(tmp_path, "late.csv", "\n\na,a,label\n" + "".join(f"{i},{i},{'xy'[i % 2]}\n" for i in range(40)))
    with pytest.raises(DataError, match=r"late.csv: data.dataset: column name\(s\) 'a' appear more than once"):
        _prepare(late)


def test_a_blank_near_the_end_of_a_long_file_is_missing_too(tmp_path):
    """pandas types a long CSV chunk by chunk: one blank late in it left floats and strings in one column."""
    rng = np.random.default_rng(0)
    lines = [f"{a:.3f},{b:.3f},{'xy'[i % 2]}" for i, (a, b) in enumerate(rng.normal(size=(150_000, 2)))]
    lines[-5] = "0.1, ,y"
    path = _write(tmp_path, "long.csv", "a,b,label\n" + "\n".join(lines) + "\n")
    p = _prepare(path, impute="mean", normalize="none")
    assert p.feature_names == ["a", "b"]


def test_blank_cells_and_padded_numbers_read_as_a_person_reads_them(tmp_path):
    """' 2.5 ' is a number and ' ' a missing value; one blank used to turn the column into categories."""
    body = _rows(40, lambda i, r: f" {r.normal():.3f} ,{' ' if i == 2 else f'{r.normal():.3f} '}, {'xy'[i % 2]}\n")
    path = _write(tmp_path, "pad.csv", "a,b,label\n" + body)
    with pytest.raises(DataError, match=r"data.impute: 1 row\(s\) have missing values in column\(s\) 'b' \(1\)"):
        _prepare(path)
    p = _prepare(path, impute="mean", normalize="none")
    assert p.feature_names == ["a", "b"] and p.class_names == ["x", "y"]
    X = load_features(str(path), p.preprocessor, "float64")  # prediction reads the file the same way
    assert X[2, 1] == pytest.approx(p.preprocessor.fill["b"])
    npz = tmp_path / "text.npz"
    np.savez(npz, X=np.arange(80.0).reshape(40, 2).astype(str), y=np.arange(40) % 2)
    assert _prepare(npz, normalize="none").feature_names == ["x1", "x2"]  # numbers saved as text
    np.savez(tmp_path / "labels.npz", X=np.arange(80.0).reshape(40, 2), y=np.array([b"cat", b"dog"] * 20))
    assert _prepare(tmp_path / "labels.npz").class_names == ["cat", "dog"]
    as_bytes = np.arange(80.0).reshape(40, 2).astype("S")
    as_bytes[3, 1] = b"nan"  # missing, as a CSV reader takes it
    np.savez(tmp_path / "bytes.npz", X=as_bytes, y=np.arange(40) % 2)
    assert _prepare(tmp_path / "bytes.npz", normalize="none", impute="mean").feature_names == ["x1", "x2"]
    typed = tmp_path / "zip.parquet"  # a Parquet text column was made text by its writer: it stays categories
    pd.DataFrame({"zip": [" 02134", "02139 "] * 20, "a": range(40), "y": ["u", "v"] * 20}).to_parquet(typed)
    assert _prepare(typed, normalize="none").feature_names == ["zip=02134", "zip=02139", "a"]
    pd.DataFrame({"a": range(40), "y": [f"{v:.2f}" for v in np.linspace(0, 1, 40)]}).to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"t.parquet: data.target: column 'y' holds numbers stored as text"):
        _prepare(tmp_path / "t.parquet", task="regression")
    flags = _write(tmp_path, "flags.csv", "a,y\n" + "".join(f"{i},{i % 2 == 0}\n" for i in range(40)))
    with pytest.raises(DataError, match=r"flags.csv: data.task: regression needs a numeric target.*\(e.g. True\)"):
        _prepare(flags, task="regression")
    padded = _write(tmp_path, "padded.csv", " a , y \n" + "".join(f"{i}, {i % 2}\n" for i in range(40)))
    assert _prepare(padded, target="y").feature_names == ["a"]  # a header is read as cells are: ' y ' is y
    twice = _write(tmp_path, "twice.csv", "a, a ,y\n" + "".join(f"{i},{i},{i % 2}\n" for i in range(40)))
    with pytest.raises(DataError, match=r"twice.csv: data.dataset: column name\(s\) 'a' appear more than once"):
        _prepare(twice)  # a traceback, once the names were stripped
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [pa.array(np.arange(40.0)), pa.array(np.arange(40.0) * 2), pa.array(np.arange(40) % 2)]
    pq.write_table(pa.table(columns, names=["a", "a", "y"]), tmp_path / "twice.parquet")
    with pytest.raises(DataError, match=r"twice.parquet: data.dataset: column name\(s\) 'a' appear more than once"):
        _prepare(tmp_path / "twice.parquet")  # Arrow's "Multiple matches for FieldRef.Name(a)"
    huge = _write(tmp_path, "huge.csv", "a,y\n" + "".join(f"{2**64 + 1000 * i},{i % 2}\n" for i in range(40)))
    p = _prepare(huge, normalize="none")  # past int64, pandas keeps Python ints: they were one-hot categories
    assert p.feature_names == ["a"] and p.X_train.min() >= 2.0**64


@pytest.mark.parametrize("task", ["regression", "auto"])
def test_a_numeric_target_with_a_stray_text_names_it(tmp_path, task):
    ys = [f"{v:.3f}" for v in np.random.default_rng(1).normal(size=40)]
    ys[7] = "?"
    path = _write(tmp_path, "reg.csv", "a,y\n" + "".join(f"{i},{y}\n" for i, y in enumerate(ys)))
    with pytest.raises(DataError, match=r"reg.csv: data.target: column 'y' holds numbers except 1 value\(s\) that are not \('\?'\)"):
        _prepare(path, task=task)


def test_whole_number_labels_with_a_text_one_stay_classes(tmp_path):
    path = _write(tmp_path, "lab.csv", "a,y\n" + "".join(f"{i},{'other' if i % 10 == 0 else i % 3}\n" for i in range(60)))
    assert _prepare(path).class_names == ["0", "1", "2", "other"]


def test_values_beyond_what_normalising_or_float32_can_hold_are_named(tmp_path):
    rng = np.random.default_rng(0)
    path = _write(tmp_path, "huge.csv", "a,b,label\n" + "".join(f"{rng.normal() * 1e200:.3e},{rng.normal():.3f},{'xy'[i % 2]}\n" for i in range(40)))
    with pytest.raises(DataError, match=r"huge.csv: data.dataset: column\(s\) 'a' hold values too large to normalise"):
        _prepare(path)
    with pytest.raises(DataError, match=r"huge.csv: data.normalize: column\(s\) 'a' hold values too large for float32"):
        prepare(DataSpec(dataset=str(path), normalize="none"), seed=0, dtype="float32")
    # rows to predict: no spec to change, the rows are what is wrong
    small = _write(tmp_path, "small.csv", "a,b,label\n" + "".join(f"{rng.normal():.3f},{rng.normal():.3f},{'xy'[i % 2]}\n"
                                                                   for i in range(40)))
    model = prepare(DataSpec(dataset=str(small), normalize="none"), seed=0, dtype="float32").preprocessor
    with pytest.raises(DataError, match=r"/huge.csv: column\(s\) 'a' hold values too large for float32 \(up to "
                                        r"[0-9.e+]+\), which the model computes in: check data row\(s\) 1, 2, 3, 4, "
                                        r"5 and 35 more$"):
        load_features(path, model)
    zscored = prepare(DataSpec(dataset=str(small)), seed=0, dtype="float32").preprocessor
    rows = pd.DataFrame({"a": [0.5, 1e300, -2e299, 0.1], "b": [0.0] * 4})
    with pytest.raises(DataError, match=r"rows: column\(s\) 'a' hold values too large for float32 \(up to 1e\+300\), "
                                        r"which the model computes in, after its normalisation: check data row\(s\) 2, 3$"):
        load_features(rows, zscored)  # the value the rows hold, not the one it became (6.5e295 said a user's file)
    target = _write(tmp_path, "huget.csv", "a,y\n" + "".join(f"{rng.normal():.3f},{rng.normal() * 1e300:.3e}\n" for i in range(40)))
    with pytest.raises(DataError, match=r"huget.csv: data.target: 'y' holds values too large to standardise"):
        _prepare(target, task="regression")


def test_non_numeric_target_with_regression_is_an_error(tmp_path):
    path = _write(tmp_path, "text.csv", "a,label\n" + "".join(f"{i},c{i % 2}\n" for i in range(20)))
    with pytest.raises(DataError, match=r"text.csv: data.task: regression needs a numeric target, but column 'label' holds labels \(e.g. 'c0'\)"):
        _prepare(path, task="regression")


def test_class_too_small_to_stratify(tmp_path):
    frame = _fruit()
    frame.loc[0, "kind"] = "durian"
    with pytest.raises(DataError, match=r"data.target: class 'durian' has only 1 row\(s\); stratified train/val/test splits need at least 3 per class"):
        _prepare(_csv(tmp_path, frame))
    with pytest.raises(DataError, match=r"data.cv_folds: class 'durian' has only 1 row\(s\) outside the test split; 5 stratified folds"):
        prepare_folds(DataSpec(dataset=_csv(tmp_path, frame), cv_folds=5, test_fraction=0), seed=0)
    frame.loc[1:2, "kind"] = "durian"
    assert "durian" in _prepare(_csv(tmp_path, frame)).class_names


def test_a_whole_number_target_too_thin_for_its_classes_names_the_auto_rule(tmp_path):
    """A score from 0 to 11 over 397 rows: task auto reads 12 classes, the rarest with one row. The
    error says that was a guess and how to say 'quantity'; text labels get no such hint (above)."""
    scores = np.r_[np.repeat(np.arange(11), 36), 11]  # 397 rows; 11 once
    path = _csv(tmp_path, pd.DataFrame({"a": np.arange(397.0), "score": scores}))
    hint = ("(data.task auto read the target's 12 distinct whole numbers as classes; set data.task: regression if "
            "it is a quantity)")
    with pytest.raises(DataError) as info:
        _prepare(path)
    assert str(info.value).endswith("stratified train/val/test splits need at least 3 per class " + hint)
    with pytest.raises(DataError) as info:
        _prepare(path, task="classification")
    assert "data.task auto" not in str(info.value)
    assert _prepare(path, task="regression").task == "regression"
    binary = _csv(tmp_path, pd.DataFrame({"a": np.arange(100.0), "y": [1] * 2 + [0] * 98}), "binary.csv")
    with pytest.raises(DataError) as info:
        _prepare(binary)
    assert "class '1' has only 2 row(s)" in str(info.value) and "data.task auto" not in str(info.value)


def test_too_few_rows_for_the_splits(tmp_path):
    frame = pd.DataFrame({"a": np.arange(9.0), "y": ["p", "q", "r"] * 3})
    with pytest.raises(DataError, match=r"data.val_fraction: 9 rows are too few for val_fraction 0.2 and test_fraction 0.2: the splits would get 5/2/2 rows \(each split needs at least 3 rows, one per class\)"):
        _prepare(_csv(tmp_path, frame), task="classification")
    regression = pd.DataFrame({"a": np.arange(4.0), "y": [0.5, 1.5, 2.5, 3.7]})
    with pytest.raises(DataError, match=r"4 rows are too few for val_fraction 0.4 and test_fraction 0.5"):
        _prepare(_csv(tmp_path, regression), val_fraction=0.4, test_fraction=0.5)
    with pytest.raises(DataError, match=r"1 rows are too few .*: val and test would take 1/1 of them and leave no "
                                        r"training row$"):  # said the splits would get -1/1/1 rows
        _prepare(_csv(tmp_path, regression.head(1)), task="regression")


def test_wrong_npz_keys_list_the_keys_found(tmp_path):
    np.savez(tmp_path / "d.npz", features=np.ones((4, 2)), labels=np.ones(4))
    with pytest.raises(DataError, match=r"d.npz: data.dataset: an npz file needs arrays X and y; missing X, y \(found: features, labels\)"):
        _prepare(tmp_path / "d.npz")
    np.savez(tmp_path / "e.npz", X=np.ones((4, 2)), y=np.ones(5))
    with pytest.raises(DataError, match="X has 4 rows but y has 5"):
        _prepare(tmp_path / "e.npz")
    np.savez(tmp_path / "f.npz", X=np.ones((4, 2)), y=np.ones(4))
    with pytest.raises(DataError, match=r"data.target: npz files hold arrays X and y"):
        _prepare(tmp_path / "f.npz", target="label")


def test_files_that_are_not_what_their_name_says(tmp_path):
    latin = _write(tmp_path, "latin.csv", ("a,label\n" + "".join(f"{i},caf\xe9{i % 2}\n" for i in range(10))).encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.csv: data.dataset: cannot be read as CSV: not UTF-8 text \(byte 0xe9 on line 2\); save it as UTF-8"):
        _prepare(latin)
    with pytest.raises(DataError, match=r"text.npz: data.dataset: is not an npz file"):
        _prepare(_write(tmp_path, "text.npz", "a,b\n1,2\n"))
    np.savez(tmp_path / "complex.npz", X=np.ones((6, 2)) * 1j, y=np.arange(6) % 2)
    with pytest.raises(DataError, match=r"complex.npz: data.dataset: X holds complex numbers"):
        _prepare(tmp_path / "complex.npz")
    odd = {"y complex": dict(X=np.ones((6, 2)), y=np.arange(6) % 2 + 1j),  # was cut to its real part, with a warning
           "X structured": dict(X=np.zeros(6, dtype=[("a", "f8"), ("b", "f8")]), y=np.arange(6) % 2),  # a traceback
           "y structured": dict(X=np.ones((6, 2)), y=np.zeros(6, dtype=[("a", "f8")])),
           "X raw bytes": dict(X=np.zeros((6, 3), dtype="V4"), y=np.arange(6) % 2),
           "X dates": dict(X=np.zeros((6, 1), dtype="M8[D]"), y=np.arange(6) % 2)}
    for case, arrays in odd.items():
        np.savez(tmp_path / "odd.npz", **arrays)
        what = {"complex": "complex numbers", "structured": "records", "raw bytes": "records", "dates": "dates"}
        with pytest.raises(DataError, match=rf"odd.npz: data.dataset: {case[0]} holds {what[case[2:]]}"):
            _prepare(tmp_path / "odd.npz")
    semi = _write(tmp_path, "semi.csv", "a;b;label\n1;2;x\n")
    with pytest.raises(DataError, match=r"semi.csv: data.dataset: has one column 'a;b;label'; is it separated by something other"):
        _prepare(semi, target="label")


def test_pickled_npz_is_refused(tmp_path):
    np.savez(tmp_path / "p.npz", X=np.array([[1, {"a": 1}]], dtype=object), y=np.ones(1))
    with pytest.raises(DataError, match="cannot be read as npz"):
        _prepare(tmp_path / "p.npz")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match=r"nope.csv: data.dataset: file not found"):
        _prepare(tmp_path / "nope.csv")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataError, match=r"dir.csv: data.dataset: is a directory, not a data file"):
        _prepare(tmp_path / "dir.csv")


def test_unreadable_file(tmp_path, monkeypatch):
    path = _csv(tmp_path, _fruit())
    os.chmod(path, 0)
    if os.access(path, os.R_OK):  # root reads anything: simulate the missing permission
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == path else real(p, mode, **kw))
    try:
        with pytest.raises(DataError, match=r"data.csv: data.dataset: no permission to read this file"):
            _prepare(path)
    finally:
        os.chmod(path, 0o644)


def test_data_drop_leaves_feature_columns_out_of_a_file_and_of_a_built_in(tmp_path):
    """An id column would be one-hot encoded (or refused past max_categories); data.drop leaves it out."""
    frame = _fruit().assign(id=[f"r{i}" for i in range(60)])
    path = _csv(tmp_path, frame[["id", "weight", "colour", "size", "kind"]])
    with pytest.raises(DataError, match=r"data.max_categories: column 'id' has 60 distinct levels.*data.drop: \['id'\]"):
        _prepare(path, max_categories=50)
    p = _prepare(path, drop=["id", "colour"], max_categories=50)
    assert p.feature_names == ["weight", "size"] and p.class_names == ["apple", "banana", "cherry"]
    iris = prepare(DataSpec(dataset="iris", drop=["petal width (cm)"]), seed=0)
    assert iris.feature_names == ["sepal length (cm)", "sepal width (cm)", "petal length (cm)"]
    full = prepare(DataSpec(dataset="iris"), seed=0)
    np.testing.assert_array_equal(iris.y_train, full.y_train)  # the same rows and split, one column fewer
    for drop, problem in ((["idd"], "data.drop: no feature column 'idd'; did you mean 'id'?"),
                          (["kind"], "data.drop: 'kind' is the target, not a feature column"),
                          (["id", "weight", "colour", "size"], "data.drop: leaves no feature column to learn from")):
        with pytest.raises(DataError, match=problem):
            _prepare(path, drop=drop)


def test_names_and_text_in_decomposed_unicode_are_the_ones_typed(tmp_path):
    """A file made on macOS may hold 'é' as e + a combining accent (NFD): its column was not
    found by the name typed in the spec ("no column 'étiquette'; did you mean 'étiquette'?"),
    and its categories were taken for unseen ones at predict time (encoded as all zeros)."""
    import unicodedata

    def nfd(text):
        return unicodedata.normalize("NFD", text)

    frame = _fruit().rename(columns={"weight": "Größe", "kind": "étiquette"})
    frame["colour"] = frame["colour"].map({"red": "rosé", "green": "vert", "yellow": "jaune"})
    decomposed = frame.rename(columns=nfd).assign(**{"colour": frame["colour"].map(nfd)})
    assert nfd("étiquette") != "étiquette" and nfd("rosé") != "rosé"
    typed = DataSpec(dataset=_csv(tmp_path, decomposed, "nfd.csv"), target="étiquette", drop=[nfd("Größe")])
    assert typed.drop == ["Größe"]
    from_nfd = prepare(typed, seed=0)
    from_nfc = prepare(DataSpec(dataset=_csv(tmp_path, frame, "nfc.csv"), target="étiquette", drop=["Größe"]), seed=0)
    assert from_nfd.preprocessor.columns == from_nfc.preprocessor.columns
    np.testing.assert_array_equal(from_nfd.X_train, from_nfc.X_train)
    np.testing.assert_array_equal(from_nfd.y_train, from_nfc.y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "categories not seen in training"
        rows = load_features(_csv(tmp_path, decomposed.drop(columns=[nfd("étiquette")]), "rows.csv"),
                             from_nfc.preprocessor)
    np.testing.assert_array_equal(rows, load_features(_csv(tmp_path, frame.drop(columns=["étiquette"]), "rows2.csv"),
                                                      from_nfc.preprocessor))


def test_every_way_in_reads_names_and_text_in_one_unicode_form(tmp_path):
    """Beyond a file's own names and cells: a model saved before they were read so (its columns,
    levels, classes in NFD), the spec's class names, a DataFrame's cells and names, a header
    compared with a model's text columns, an npz file's y and a Parquet dictionary column."""
    import unicodedata

    import pyarrow as pa
    import pyarrow.parquet as pq

    from nnexp.data.preprocess import Preprocessor
    from nnexp.spec import TrainSpec

    def nfd(text):
        return unicodedata.normalize("NFD", text)

    rng = np.random.default_rng(0)
    n = 90
    frame = pd.DataFrame({"x": rng.normal(size=n), "côté": np.array(["élan", "zed", "café"])[np.arange(n) % 3],
                          "code": np.array(["007", "012", "X"])[np.arange(n) % 3],
                          "étiquette": np.where(np.arange(n) % 2, "thé", "café")})
    model = prepare(DataSpec(dataset=_csv(tmp_path, frame), target="étiquette"), seed=0).preprocessor
    # a model saved before: its names in the file's NFD
    arrays = model.to_arrays()
    for key in ("prep.columns", "prep.levels", "prep.class_names", "prep.feature_names"):
        arrays[key] = np.array([nfd(str(v)) for v in arrays[key]])
    arrays["prep.target"] = np.array(nfd("étiquette"))
    old = Preprocessor.from_arrays(arrays)
    assert old.columns == model.columns and old.levels == model.levels and old.class_names == model.class_names
    # the spec's class names
    assert DataSpec(dataset="iris", positive_class=nfd("café")).positive_class == "café"
    assert TrainSpec(class_weight={nfd("thé"): 2}).class_weight == {"thé": 2.0}
    # a DataFrame's cells, as the same rows in a file
    rows = frame.drop(columns=["étiquette"]).head(12)
    decomposed = rows.assign(**{"côté": rows["côté"].map(nfd)}).rename(columns=nfd)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "categories not seen in training"
        np.testing.assert_array_equal(load_features(decomposed, model), load_features(rows, model))
        # a file's header, compared with the model's text columns ('007' stays text, not 7)
        header = _csv(tmp_path, rows[rows["code"] != "X"].rename(columns={"code": "code"}).rename(columns=nfd), "h.csv")
        np.testing.assert_array_equal(load_features(header, model), load_features(rows[rows["code"] != "X"], model))
    with pytest.raises(DataError, match="column name\\(s\\) 'côté' appear more than once"):
        load_features(pd.concat([rows, decomposed[[nfd("côté")]]], axis=1), model)
    # an npz file's y, and a Parquet file's dictionary column of text
    np.savez(tmp_path / "d.npz", X=rng.normal(size=(40, 2)), y=np.array([nfd("café"), "thé"] * 20))
    assert prepare(DataSpec(dataset=str(tmp_path / "d.npz"), positive_class="café"), seed=0).class_names[1] == "café"
    table = pa.table({"x": rng.normal(size=40), "y": pa.array([nfd("café"), "thé"] * 20).dictionary_encode()})
    pq.write_table(table, tmp_path / "d.parquet")
    assert sorted(prepare(DataSpec(dataset=str(tmp_path / "d.parquet"), target="y"), seed=0).class_names) == ["café", "thé"]
