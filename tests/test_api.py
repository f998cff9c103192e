"""The public Python API forwards to the same code as the commands."""

import json

import pandas as pd
import pytest

import nnexp
from nnexp.errors import SpecError


def test_run_search_and_report(tmp_path, write_spec):
    write_spec({"data": {"dataset": "iris"}, "train": {"epochs": 2}}, "base.yaml")
    path = write_spec({"name": "api", "base": "base.yaml", "repeats": 2, "space": {"model.hidden": [[4], [8]]}}, "grid.yaml")
    result = nnexp.run_search(path, results_dir=tmp_path / "out", n_jobs=1, train__epochs=1)
    assert len(result.summary) == 2 and result.outcome.ran == 4
    records = [json.loads(line) for line in (tmp_path / "out" / "api" / "trials.jsonl").read_text().splitlines()]
    assert [r["epochs_run"] for r in records] == [1, 1, 1, 1]
    again = nnexp.rebuild_report(tmp_path / "out" / "api")
    pd.testing.assert_frame_equal(again.summary, result.summary)


def test_load_spec_overrides_and_errors():
    spec = nnexp.load_spec({"data": {"dataset": "wine"}}, {"model.hidden": [3, 3]})
    assert spec.model.hidden == [3, 3]
    with pytest.raises(SpecError, match="did you mean 'model.hidden'"):
        nnexp.load_spec({}, {"model.hiden": [3]})


def test_gradcheck_api():
    report = nnexp.gradcheck({"data": {"dataset": "xor", "n_samples": 40}, "model": {"hidden": [3], "activation": "tanh"}})
    assert set(report.errors) == {"layer1.W", "layer1.b", "output.W", "output.b"}
    assert max(report.errors.values()) < 1e-6
