"""The public Python API forwards to the same code as the commands."""

import json
import warnings
from pathlib import Path

import numpy as np
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
    assert result.best_spec == again.best_spec == tmp_path / "out" / "api" / "best.yaml"
    assert "best.yaml" in (tmp_path / "out" / "api" / "summary.md").read_text()


@pytest.mark.parametrize("arguments, message", [
    ({"strategy": "bayes"}, "strategy: 'bayes' is not a search strategy (grid or random)"),
    ({"strategy": "random", "trials": 0}, "trials: must be a positive whole number, got 0"),
    ({"strategy": "random", "trials": 2.5}, "trials: must be a positive whole number, got 2.5"),
    ({"trials": 2}, "trials: only for random search"),
    ({"n_jobs": "2"}, "n_jobs: must be a positive number of workers, or -1 for all cores (-2 all but one, ...), got '2'"),
    ({"n_jobs": 1.5}, "n_jobs: must be a positive number of workers, or -1 for all cores (-2 all but one, ...), got 1.5"),
    ({"n_jobs": 0}, "n_jobs: must be a positive number of workers"),
    ({"fresh": "no"}, "fresh: expected True or False, got str 'no'"),
    ({"retry_failed": 1}, "retry_failed: expected True or False, got int 1"),
    ({"scheduler": 5, "backend": "dask"}, "scheduler: expected a dask scheduler address or file, got int 5"),
    ({"scheduler": "tcp://x:8786"}, "scheduler: only used with backend='dask'"),
    ({"progress": 1}, "progress: expected a function called after each epoch or trial, or None, got int 1"),
])
def test_run_search_checks_its_arguments_as_the_cli_does(tmp_path, write_spec, arguments, message):
    """A strategy the spec would refuse used to run a grid recorded as 'bayes'; trials=0 ran everything."""
    from nnexp.errors import NnexpError

    path = write_spec({"name": "api", "experiment": {"data": {"dataset": "iris"}}, "space": {"model.hidden": [[4]]}},
                      "grid.yaml")
    with pytest.raises(NnexpError) as info:
        nnexp.run_search(path, results_dir=tmp_path / "out", **arguments)
    assert str(info.value).startswith(message)
    assert not (tmp_path / "out").exists()


def test_load_spec_overrides_and_errors():
    spec = nnexp.load_spec({"data": {"dataset": "wine"}}, {"model.hidden": [3, 3]})
    assert spec.model.hidden == [3, 3]
    with pytest.raises(SpecError, match="did you mean 'model.hidden'"):
        nnexp.load_spec({}, {"model.hiden": [3]})


def test_gradcheck_api():
    report = nnexp.gradcheck({"data": {"dataset": "xor", "n_samples": 40}, "model": {"hidden": [3], "activation": "tanh"}})
    assert set(report.errors) == {"layer1.W", "layer1.b", "output.W", "output.b"}
    assert max(report.errors.values()) < 1e-6 and report.passed is True and set(report.verdicts.values()) == {"ok"}
    assert report.checked == {"layer1.W": 6, "layer1.b": 3, "output.W": 3, "output.b": 1}  # all: under `entries`
    sampled = nnexp.gradcheck({"data": {"dataset": "xor", "n_samples": 40}, "model": {"hidden": [30]}}, entries=20)
    assert sampled.checked == {"layer1.W": 20, "layer1.b": 20, "output.W": 20, "output.b": 1}


def test_plots_leave_the_callers_matplotlib_alone(tmp_path):
    """In a notebook, pyplot's backend is the notebook's (inline): writing nnexp's PNGs must
    neither switch it (to Agg) nor leave figures open in pyplot."""
    import subprocess
    import sys

    search = tmp_path / "search.yaml"
    search.write_text("name: s\nexperiment: {data: {dataset: iris}, model: {hidden: [4]}, train: {epochs: 2}}\n"
                      "space: {optimizer.lr: [0.1, 0.01]}\nrepeats: 1\n")
    script = ("import matplotlib\n"
              "matplotlib.use('svg')\n"
              "import matplotlib.pyplot as plt\n"
              "from nnexp.api import run_experiment, run_search\n"
              f"run_experiment({{'data': {{'dataset': 'iris'}}, 'train': {{'epochs': 2}}}}, results_dir={str(tmp_path)!r})\n"
              f"run_search({str(search)!r}, results_dir={str(tmp_path)!r}, n_jobs=1)\n"
              "print(matplotlib.get_backend(), len(plt.get_fignums()))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svg", "0"]
    pngs = sorted(tmp_path.rglob("*.png"))
    assert len(pngs) >= 3 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_predict_takes_a_dataframe_as_well_as_a_file(tmp_path):
    nnexp.run_experiment({"name": "m", "data": {"dataset": "iris"}, "train": {"epochs": 5}}, results_dir=tmp_path)
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame.rename(columns={"target": "label"}).head(20)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    model = tmp_path / "m" / "model.npz"
    from_file = nnexp.predict(model, tmp_path / "rows.csv", proba=True)
    pd.testing.assert_frame_equal(nnexp.predict(model, frame, proba=True), from_file)
    from nnexp.errors import DataError

    with pytest.raises(DataError, match=r"rows: missing feature column\(s\) 'petal width \(cm\)'.*\(found: 'sepal"):
        nnexp.predict(model, frame.drop(columns=["petal width (cm)"]))
    chosen = frame[frame["sepal length (cm)"] > 5.0]  # an index with gaps: df["pred"] = ... must line up by label
    predicted = nnexp.predict(model, chosen)
    assert predicted.index.equals(chosen.index)
    assert predicted["prediction"].tolist() == from_file["prediction"][chosen.index].tolist()


def test_a_threshold_picks_the_second_class_when_its_probability_reaches_it(tmp_path):
    from sklearn.datasets import load_breast_cancer

    nnexp.run_experiment({"name": "bc", "data": {"dataset": "breast_cancer"}, "train": {"epochs": 5}}, results_dir=tmp_path)
    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(120)
    model = tmp_path / "bc" / "model.npz"
    plain = nnexp.predict(model, rows, proba=True)
    second = plain.columns[2].removeprefix("proba_")
    for threshold in (0.05, 0.5, 0.95):
        chosen = nnexp.predict(model, rows, threshold=threshold)["prediction"]
        assert ((chosen == second) == (plain[f"proba_{second}"] >= threshold)).all()
    assert (nnexp.predict(model, rows, threshold=0.05)["prediction"] == second).sum() > (plain["prediction"] == second).sum()
    with pytest.raises(nnexp.errors.NnexpError, match=r"^threshold: must be a probability above 0 and at most 1"):
        nnexp.predict(model, rows, threshold=1.5)
    nnexp.run_experiment({"name": "iris", "data": {"dataset": "iris"}, "train": {"epochs": 1}}, results_dir=tmp_path)
    with pytest.raises(nnexp.errors.NnexpError, match=r"^threshold: only for a two-class model; .* a model of 3 classes"):
        nnexp.predict(tmp_path / "iris", tmp_path / "rows.csv", threshold=0.5)


def test_run_search_takes_a_mapping(tmp_path):
    result = nnexp.run_search({"name": "inline", "repeats": 1, "experiment": {"data": {"dataset": "iris"},
                                                                            "train": {"epochs": 1}},
                               "space": {"model.hidden": [[3], [4]]}}, results_dir=tmp_path, n_jobs=1)
    assert len(result.summary) == 2 and result.folder == tmp_path / "inline"
    assert repr(result) == f"<SearchResult {tmp_path / 'inline'}: 2 configurations, 2 trial(s) run now, 0 resumed>"
    run = nnexp.run_experiment({"data": {"dataset": "iris"}, "train": {"epochs": 50}}, results_dir=None)
    assert len(repr(run)) < 3000 and "history" not in repr(run)  # a notebook showed every epoch's row


def test_a_ctrl_c_during_run_search_stops_the_caller_after_the_tables_are_written(tmp_path):
    """It was swallowed: the notebook cell ran on, as if the search had finished."""
    calls = []

    def interrupt_after_the_first(record, counts):
        if record is not None:
            calls.append(record["trial_id"])
            raise KeyboardInterrupt

    search = {"name": "stopped", "repeats": 2, "experiment": {"data": {"dataset": "iris"}, "train": {"epochs": 1}},
              "space": {"model.hidden": [[3], [4]]}}
    with pytest.raises(KeyboardInterrupt, match=r"search interrupted: 1 trial\(s\) finished this run are kept"):
        nnexp.run_search(search, results_dir=tmp_path, n_jobs=1, progress=interrupt_after_the_first)
    assert len(calls) == 1 and (tmp_path / "stopped" / "summary.md").exists()
    assert len(nnexp.run_search(search, results_dir=tmp_path, n_jobs=1).summary) == 2  # resumes


def test_a_mapping_is_named_dict_in_errors_and_warnings_of_both_entry_points(tmp_path):
    """A file is named by its path; a mapping has none, and neither 'spec' nor 'search' says which argument."""
    experiment = {"data": {"dataset": "iris", "target": "x"}, "train": {"epochs": 1}}
    search = {"name": "mine", "repeats": 1, "experiment": experiment, "space": {"optimizer.lr": [0.1]}}
    ignored = "data.target: 'iris' is a built-in data set with its own target; target is ignored"
    with pytest.warns(UserWarning) as caught:
        nnexp.load_spec(experiment)
        nnexp.run_search(search, results_dir=tmp_path, n_jobs=1)
    assert [str(w.message) for w in caught if "ignored" in str(w.message)] == [f"<dict>: {ignored}"] * 2
    assert {w.filename for w in caught} == {__file__}  # the caller's lines, not nnexp's
    with pytest.raises(SpecError, match=r"^<dict>: train.epochs: expected a whole number"):
        nnexp.load_spec({"train": {"epochs": "x"}})
    with pytest.raises(SpecError, match=r"^<dict>: experiment.train.epochs: expected a whole number"):
        nnexp.run_search({**search, "experiment": {"train": {"epochs": "x"}}}, results_dir=tmp_path)
    with pytest.raises(SpecError, match=r"^<dict>: space.optimizer.rate: unknown field"):
        nnexp.run_search({**search, "space": {"optimizer.rate": [0.1]}}, results_dir=tmp_path)


def test_a_loaded_spec_is_not_warned_about_again_but_an_override_is(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("data: {dataset: iris, pca_components: 0.9}\ntrain: {epochs: 1}\n")
    with pytest.warns(UserWarning) as loading:
        spec = nnexp.load_spec(path)
    assert [str(w.message) for w in loading] == [f"{path}: data.pca_components: only used with normalize: pca; zscore ignores it"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nnexp.run_experiment(spec, results_dir=None)
        nnexp.run_experiment(spec, results_dir=None, data__pca_whiten=True)
    assert [str(w.message) for w in caught] == ["override data.pca_whiten: only used with normalize: pca; zscore ignores it"]
    with pytest.raises(SpecError, match=r"^override train.epochs: expected a whole number"):  # a keyword, not --set
        nnexp.run_experiment(path, results_dir=None, train__epochs="abc")


def test_the_callers_mapping_is_left_as_it_was(tmp_path):
    """A second call in a notebook must not inherit the first call's overrides."""
    import copy

    search = {"name": "kept", "repeats": 1, "experiment": {"data": {"dataset": "iris"}, "train": {"epochs": 1}},
              "space": {"model.hidden": [[3]]}}
    before = copy.deepcopy(search)
    nnexp.run_search(search, results_dir=tmp_path, n_jobs=1, train__epochs=2, optimizer__lr=0.05,
                     space__optimizer__schedule=["constant"])
    experiment = {"data": {"dataset": "iris"}, "optimizer": {"name": "sgd"}}
    nnexp.load_spec(experiment, {"optimizer.lr": 0.3, "train.epochs": 3})
    assert search == before and experiment == {"data": {"dataset": "iris"}, "optimizer": {"name": "sgd"}}


SEARCH_FILE = str(Path(__file__).parents[1] / "experiments" / "activations.yaml")


@pytest.mark.parametrize("call, message", [
    (lambda: nnexp.run_experiment(123, results_dir=None), "spec: expected a path, a mapping or an ExperimentSpec, got int 123"),
    (lambda: nnexp.load_spec({}, 5), "overrides: expected a mapping of field paths to values, got 5"),
    (lambda: nnexp.run_search("grid.yaml", results_dir=None), "results_dir: a search needs a folder"),
    (lambda: nnexp.rebuild_report(None), "folder: expected the path of a search results folder, got None"),
    (lambda: nnexp.gradcheck({"data": {"dataset": "iris"}}, rows=0), "rows: must be a whole number of at least 2"),
    (lambda: nnexp.gradcheck({"data": {"dataset": "iris"}}, rows=-1), "rows: must be a whole number of at least 2"),
    (lambda: nnexp.gradcheck({"data": {"dataset": "iris"}}, entries=-1), "entries: must be a whole number"),
    (lambda: nnexp.gradcheck({"data": {"dataset": "iris"}}, tolerance=0), "tolerance: must be a positive relative error"),
    (lambda: nnexp.run_experiment({"data": {"dataset": "iris"}}, results_dir=5),
     "results_dir: expected a folder path or None, got int 5"),
    (lambda: nnexp.run_search("grid.yaml", results_dir=5), "results_dir: expected a folder path, got int 5"),
    (lambda: nnexp.predict("model.npz", [[1, 2, 3]]),
     "data: expected a table file's path or a pandas DataFrame, got list [[1, 2, 3]]"),
    (lambda: nnexp.predict("model.npz", "rows.csv", proba="yes"), "proba: expected True or False, got str 'yes'"),
    (lambda: nnexp.predict(5, "rows.csv"), "model: expected the path of a model.npz (or its folder), got int 5"),
    (lambda: nnexp.run_experiment({"data": {"dataset": "iris"}}, results_dir=None, progress=1),
     "progress: expected a function called after each epoch or trial, or None, got int 1"),
    (lambda: nnexp.load_spec("spec.yaml", {"train.epoch": 2}), "overrides: train.epoch: unknown field; did you mean"),
    (lambda: nnexp.predict("model.npz", np.zeros((2, 4))),
     "data: expected a table file's path or a pandas DataFrame, got ndarray array([[0., 0., 0., 0.], [0., 0., 0., 0...."),
    (lambda: nnexp.rebuild_report("folder", metric=3), "metric: expected a metric name such as val_loss, got int 3"),
    (lambda: nnexp.run_experiment({"data": {"dataset": "iris"}}, results_dir=np.zeros((3, 3))),
     "results_dir: expected a folder path or None, got ndarray array([[0., 0., 0.], [0., 0., 0.], [0., ..."),
    (lambda: nnexp.run_experiment({"experiment": {"data": {"dataset": "iris"}}, "space": {"model.hidden": [[4]]}},
                                  results_dir=None), "<dict>: this is a search spec (it has space/base/experiment); use "
                                                     "nnexp.run_search"),
    (lambda: nnexp.load_spec(SEARCH_FILE), f"{SEARCH_FILE}: this is a search spec (it has space/base/experiment); use "
                                           "nnexp.run_search"),
])
def test_wrong_argument_types_are_one_line_errors(call, message):
    """Not a TypeError deep inside (int has no path, a list has no .items, zero rows have no maximum)."""
    from nnexp.errors import NnexpError

    with pytest.raises(NnexpError) as info:
        call()
    assert str(info.value).startswith(message)
    assert nnexp.load_spec({"data": {"dataset": "iris"}}, [("model.hidden", [3])]).model.hidden == [3]


@pytest.mark.parametrize("call, message", [
    (lambda: nnexp.run_search("grid.yaml", n_job=2), "n_job: neither an argument nor a spec field (`__` stands for `.`); "
                                                     "did you mean 'n_jobs'?"),
    (lambda: nnexp.run_experiment({}, result_dir=None), "result_dir: neither an argument nor a spec field "
                                                        "(`__` stands for `.`); did you mean 'results_dir'?"),
    (lambda: nnexp.run_experiment({}, train__epoch=5), "train__epoch: neither an argument nor a spec field "
                                                       "(`__` stands for `.`); did you mean 'train__epochs'?"),
])
def test_a_misspelt_keyword_is_named_with_the_closest_argument_or_field(call, message):
    """Not '--set: n_job: unknown field': an API caller wrote no --set."""
    with pytest.raises(SpecError) as info:
        call()
    assert str(info.value) == message


def test_classes_of_a_numeric_target_are_predicted_as_numbers(tmp_path):
    """digits' classes are 0-9: a parquet of predictions holds integers, not the text '0'..'9'."""
    nnexp.run_experiment({"name": "d", "data": {"dataset": "digits"}, "train": {"epochs": 1}}, results_dir=tmp_path)
    from sklearn.datasets import load_digits

    rows = load_digits(as_frame=True).frame.head(5)
    rows.columns = [str(c) for c in rows.columns]
    predicted = nnexp.predict(tmp_path / "d" / "model.npz", rows)["prediction"]
    assert predicted.dtype == np.int64 and set(predicted) <= set(range(10))


def test_only_labels_that_print_as_whole_numbers_become_numbers(tmp_path):
    """'007' and '-0' are names (int() would lose the zeros); digits' '3' is the number 3."""
    from nnexp.api import _is_integer_text

    assert [_is_integer_text(n) for n in ("0", "3", "-12", "007", "-0", "1e5", "²", "1" * 19, 3)] == [
        True, True, True, False, False, False, False, False, False]
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=60), "y": ["007", "008"] * 30})
    frame.to_parquet(tmp_path / "codes.parquet")
    nnexp.run_experiment({"name": "c", "data": {"dataset": str(tmp_path / "codes.parquet")}, "train": {"epochs": 1}},
                         results_dir=tmp_path)
    assert set(nnexp.predict(tmp_path / "c" / "model.npz", frame)["prediction"]) <= {"007", "008"}


def test_the_api_is_listed_and_reached_after_a_plain_import():
    """`nnexp.errors.NnexpError`, as the README writes it, raised AttributeError until some API
    function had been used; dir() (tab completion) listed none of the functions."""
    import subprocess
    import sys

    code = ("import nnexp, sys; print(nnexp.errors.NnexpError.__name__); "
            "print(' '.join(n for n in dir(nnexp) if not n.startswith('_'))); print('nnexp.api' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:3] == ["NnexpError", "errors gradcheck load_spec predict rebuild_report run_experiment run_search",
                       "False"]


INLINE = {"name": "m", "repeats": 1, "experiment": {"data": {"dataset": "iris"}, "train": {"epochs": 1}},
          "space": {"model.hidden": [[4], [8]]}}
QUICKSTART = str(Path(__file__).parents[1] / "experiments" / "quickstart.yaml")


@pytest.mark.parametrize("call, message", [
    (lambda out: nnexp.run_search({**INLINE, "experiment": {"data": {"dataset": "wine"}, "train": {"epochs": 1}}},
                                  results_dir=out, n_jobs=1),
     "use fresh=True to start over (old trials are kept aside), or another name / results_dir"),
    (lambda out: nnexp.run_search({**INLINE, "space": {"optimizer.lr": {"log_uniform": [0.001, 0.1]}}}, results_dir=out),
     "<dict>: space.optimizer.lr: a grid needs `points` to use a continuous distribution (e.g. {log_uniform: [...], "
     "points: 4}), or use strategy='random'"),
    (lambda out: nnexp.run_search(INLINE, results_dir=out, backend="ray"),
     "backend: unknown backend 'ray' (one of loky, dask)"),
    (lambda out: nnexp.run_search(QUICKSTART, results_dir=out),
     f"{QUICKSTART}: this looks like an experiment spec (it has data/model/optimizer/train at the top); "
     "use nnexp.run_experiment, or write"),
    (lambda out: nnexp.run_experiment({"data": {"dataset": "iris"}}, results_dir=None, train__epochs="x"),
     "override train.epochs: expected a whole number, got str 'x'"),
    (lambda out: nnexp.run_search({**INLINE, "space": {f"model.hidden": [[k] for k in range(1, 400)],
                                                       "optimizer.lr": [0.1 / k for k in range(1, 400)]}},
                                  results_dir=out),
     "the grid has 159201 configurations (more than 100000); use strategy='random' with trials=N"),
    (lambda out: nnexp.run_search({**INLINE, "name": "d"}, results_dir=out, backend="dask",
                                  scheduler=str(out / "none" / "s.json")),
     "scheduler: "),
    (lambda out: (out / "bad.npz").write_text("no model") and nnexp.predict(out / "bad.npz", "rows.csv"),
     "(expected the model.npz that nnexp.run_experiment writes, or its folder)"),
])
def test_api_errors_name_the_apis_arguments_not_the_command_lines_options(tmp_path, call, message):
    """An API caller has no --fresh, --random, --backend, --results-dir nor `nnexp run`; and a
    keyword override's bad value is the override's, not the mapping's."""
    from nnexp.errors import NnexpError

    nnexp.run_search(INLINE, results_dir=tmp_path, n_jobs=1)  # a folder of another search, for the first case
    with pytest.raises(NnexpError) as info:
        call(tmp_path)
    assert message in str(info.value) and "--" not in str(info.value)
