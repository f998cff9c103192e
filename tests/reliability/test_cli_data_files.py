"""Hostile data files through the real `nnexp run` command.

tests/data covers the loaders as a library; here every bad file goes through
the CLI: exit 2, exactly one `error:` line on stderr naming the file and the
problem, never a traceback. Files that are odd but valid (more features than
rows) must train.
"""

import os

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from nnexp.cli import app

runner = CliRunner()


def _rows(n, classes=("a", "b", "c"), seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n),
                         "label": [classes[i % len(classes)] for i in range(n)]})


def _csv(frame):
    return frame.to_csv(index=False)


def _npz_bytes(**arrays):
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _many_levels():
    frame = _rows(3000)
    frame.insert(0, "city", [f"city{i}" for i in range(3000)])
    return _csv(frame)


def _nan():
    frame = _rows(30)
    frame.loc[4, "x1"] = np.nan
    return _csv(frame)


def _inf():
    frame = _rows(30)
    frame.loc[4, "x2"] = np.inf
    return _csv(frame)


def _tiny_class():
    frame = _rows(30)
    frame.loc[0, "label"] = "durian"
    return _csv(frame)


def _parquet_bytes():
    import io

    buffer = io.BytesIO()
    _rows(30).to_parquet(buffer)
    raw = buffer.getvalue()
    return raw[:20] + b"\x00garbage\xff" * 10 + raw[-40:]  # valid magic at both ends, broken inside


# (file name, content, extra data fields, substrings the one error line must hold)
CASES = {
    "empty": ("empty.csv", "", {}, ["data.dataset", "the file is empty"]),
    "header-only": ("header.csv", "x1,x2,label\n", {}, ["data.dataset", "header", "no data rows"]),
    "missing-target": ("d.csv", _csv(_rows(30)), {"target": "kind"}, ["data.target", "no column 'kind'"]),
    "single-class": ("d.csv", _csv(_rows(30, classes=("x",))), {}, ["data.target", "single class"]),
    "class-too-small": ("d.csv", _tiny_class(), {}, ["data.target", "class 'durian' has only 1 row"]),
    "nan": ("d.csv", _nan(), {}, ["data.impute", "missing values", "x1"]),
    "inf": ("d.csv", _inf(), {}, ["infinite", "x2"]),
    "text-target-regression": ("d.csv", _csv(_rows(30)), {"task": "regression"},
                               ["data.task", "regression needs a numeric target"]),
    "too-many-levels": ("d.csv", _many_levels(), {}, ["data.max_categories", "column 'city'", "3000", "cap of 100"]),
    "too-many-levels-own-cap": ("d.csv", _many_levels(), {"max_categories": 500}, ["cap of 500"]),
    "wrong-npz-keys": ("d.npz", _npz_bytes(features=np.ones((30, 2)), labels=np.ones(30)), {},
                       ["data.dataset", "needs arrays X and y", "found: features, labels"]),
    "garbled-npz": ("d.npz", b"PK\x03\x04 broken zip", {}, ["data.dataset", "cannot be read as npz"]),
    "garbled-parquet": ("d.parquet", b"PAR1 this is not parquet at all PAR1", {}, ["data.dataset", "cannot be read as Parquet"]),
    "corrupt-parquet": ("d.parquet", _parquet_bytes(), {}, ["data.dataset", "cannot be read as Parquet"]),
    "binary-csv": ("d.csv", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\x00\x81", {}, ["data.dataset", "cannot be read as CSV"]),
    "wrong-suffix": ("d.txt", "x1,label\n1,a\n", {}, ["data.dataset", "'d.txt': unsupported file type '.txt'",
                                                      ".csv, .parquet, .npz"]),
    "compressed": ("d.csv.gz", "x1,label\n1,a\n", {}, ["data.dataset", "unsupported file type '.gz'", "unpack"]),
    "missing-file": ("nope.csv", None, {}, ["data.dataset", "file not found"]),
}


def _spec(tmp_path, dataset, **data):
    spec = {"name": "hostile", "data": {"dataset": dataset, **data}, "model": {"hidden": [4]},
            "train": {"epochs": 1}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _run(spec, tmp_path):
    return runner.invoke(app, ["run", str(spec), "--results-dir", str(tmp_path / "results"), "--quiet"])


def _assert_one_error_line(result, name, needles):
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert name in errors[0], errors[0]
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert "\n" not in errors[0]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_file_exits_2_with_one_line(tmp_path, case):
    name, content, data, needles = CASES[case]
    if content is not None:
        path = tmp_path / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    result = _run(_spec(tmp_path, name, **data), tmp_path)
    _assert_one_error_line(result, name, needles)
    assert not (tmp_path / "results" / "hostile" / "metrics.json").exists()


def test_directory_instead_of_a_file(tmp_path):
    (tmp_path / "data.csv").mkdir()
    result = _run(_spec(tmp_path, "data.csv"), tmp_path)
    _assert_one_error_line(result, "data.csv", ["data.dataset", "is a directory"])


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "secret.csv"
    path.write_text(_csv(_rows(30)))
    os.chmod(path, 0)
    try:
        if os.access(path, os.R_OK):  # root reads anything: simulate the missing permission bit
            real_access = os.access

            def no_access(p, mode, *a, **kw):
                return False if os.path.basename(str(p)) == "secret.csv" else real_access(p, mode, *a, **kw)

            monkeypatch.setattr(os, "access", no_access)
        result = _run(_spec(tmp_path, "secret.csv"), tmp_path)
    finally:
        os.chmod(path, 0o644)
    _assert_one_error_line(result, "secret.csv", ["data.dataset", "no permission to read"])


def test_unreadable_file_past_the_access_check(tmp_path, monkeypatch):
    """The permission can vanish between the check and the read (or root squash on NFS): still one line."""
    path = tmp_path / "secret.csv"
    path.write_text(_csv(_rows(30)))
    real_read_csv = pd.read_csv

    def denied(source, *a, **kw):
        if os.path.basename(str(source)) == "secret.csv":
            raise PermissionError(13, "Permission denied", str(source))
        return real_read_csv(source, *a, **kw)

    monkeypatch.setattr(pd, "read_csv", denied)
    result = _run(_spec(tmp_path, "secret.csv"), tmp_path)
    _assert_one_error_line(result, "secret.csv", ["no permission to read"])


@pytest.mark.parametrize("normalize", ["zscore", "pca"])
def test_more_features_than_rows_trains(tmp_path, normalize):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 60))
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(60)])
    frame["label"] = ["a", "b", "c"] * 8
    (tmp_path / "wide.csv").write_text(_csv(frame))
    result = _run(_spec(tmp_path, "wide.csv", normalize=normalize), tmp_path)
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 0, result.output
    assert (tmp_path / "results" / "hostile" / "metrics.json").exists()


def test_more_pca_components_than_rows_is_one_line(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(24, 60)), columns=[f"f{i}" for i in range(60)])
    frame["label"] = ["a", "b", "c"] * 8
    (tmp_path / "wide.csv").write_text(_csv(frame))
    result = _run(_spec(tmp_path, "wide.csv", normalize="pca", pca_components=50), tmp_path)
    _assert_one_error_line(result, "wide.csv", ["data.pca_components", "50 components"])


@pytest.mark.parametrize("case", ["header-only", "class-too-small", "too-many-levels", "garbled-parquet"])
def test_bad_data_file_in_a_search_exits_2_before_any_trial(tmp_path, case):
    """Not a search whose every trial fails (exit 1, and failed trials to --retry-failed once the file is fixed)."""
    name, content, data, needles = CASES[case]
    path = tmp_path / name
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    spec = tmp_path / "grid.yaml"
    spec.write_text(yaml.safe_dump({"name": "grid", "experiment": {"data": {"dataset": name, **data},
                                                                   "train": {"epochs": 1}},
                                    "repeats": 1, "space": {"optimizer.lr": [0.1, 0.01]}}))
    result = runner.invoke(app, ["search", str(spec), "--results-dir", str(tmp_path / "results"), "--quiet"])
    _assert_one_error_line(result, name, needles)
    assert not (tmp_path / "results" / "grid").exists()
