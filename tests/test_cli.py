"""The command line: exit codes, one-line errors, resolved output."""

import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from nnexp.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("nnexp ")


def test_entry_point_collects_garbage_less_often_and_freezes_what_is_left_for_a_quick_exit(monkeypatch):
    """main() raises the collector's youngest threshold first, and ends by moving every live object
    out of the collector's reach (gc.freeze), also on errors."""
    import gc

    import pytest

    from nnexp.cli import main
    from nnexp.collector import YOUNG_GENERATION

    monkeypatch.setattr(sys, "argv", ["nnexp", "validate", "no-such-spec.yaml"])
    before = gc.get_threshold()
    gc.set_threshold(700, *before[1:])
    gc.unfreeze()
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 2
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG_GENERATION, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_collector_settings_never_lower_a_threshold_nor_start_a_disabled_collector():
    import gc

    from nnexp.collector import YOUNG_GENERATION, collect_less_often

    before = gc.get_threshold()
    try:
        for young, expected in ((700, YOUNG_GENERATION), (10 * YOUNG_GENERATION, 10 * YOUNG_GENERATION), (0, 0)):
            gc.set_threshold(young, 7, 9)
            collect_less_often()
            assert gc.get_threshold() == (expected, 7, 9)
    finally:
        gc.set_threshold(*before)


def test_validate_prints_resolved_spec(write_spec):
    path = write_spec({"data": {"dataset": "iris"}, "model": {"hidden": [8]}})
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.stdout)
    assert resolved["model"]["hidden"] == [8]
    assert resolved["optimizer"]["beta2"] == 0.999 and resolved["train"]["epochs"] == 50
    assert resolved["name"] == "spec"


def test_validate_with_set(write_spec):
    path = write_spec({"data": {"dataset": "iris"}})
    result = runner.invoke(app, ["validate", str(path), "--set", "train.epochs=3", "--set", "model.hidden=[5, 6]"])
    resolved = yaml.safe_load(result.stdout)
    assert resolved["train"]["epochs"] == 3 and resolved["model"]["hidden"] == [5, 6]


def test_misspelt_field_exits_2_with_one_line(write_spec):
    path = write_spec("model:\n  activaton: relu\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"error: {path}: model.activaton: unknown field; did you mean 'activation'?"]
    assert "Traceback" not in result.output


def test_unknown_activation_suggests(write_spec):
    path = write_spec("model:\n  activation: rellu\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "did you mean 'relu'?" in result.stderr


def test_search_plan_size(write_spec):
    write_spec({"data": {"dataset": "iris"}}, "base.yaml")
    path = write_spec({"base": "base.yaml", "repeats": 2,
                       "space": {"model.activation": ["tanh", "relu", "logistic"], "model.hidden": [[4], [8]]}}, "grid.yaml")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "# plan: grid: 3 x 2 = 6 configurations x 2 repeats = 12 trials" in result.stdout
    result = runner.invoke(app, ["validate", str(path), "--set", "strategy=random", "--set", "trials=4"])
    assert "random: 4 configurations (of a 6-point grid, without replacement) x 2 repeats = 8 trials" in result.stdout


def test_bad_search_value_names_space_entry(write_spec):
    write_spec({"data": {"dataset": "iris"}}, "base.yaml")
    path = write_spec({"base": "base.yaml", "space": {"model.activation": ["relu", "rellu"]}}, "grid.yaml")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"error: {path}: space.model.activation: value 'rellu': unknown activation 'rellu'; did you mean 'relu'?" in result.stderr


def test_installed_command_in_subprocess(write_spec):
    path = write_spec("model:\n  activaton: relu\n")
    proc = subprocess.run([sys.executable, "-m", "nnexp", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "model.activaton: unknown field; did you mean 'activation'?" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv, message", [
    (["search", "s.yaml", "--n-jobs", "abc"],
     "error: Invalid value for '--n-jobs': Input should be a valid integer, unable to parse string as an integer "
     "(see 'nnexp search -h')"),
    (["run", "s.yaml", "--bogus"], "error: No such option: --bogus (see 'nnexp run -h')"),
    (["serch", "s.yaml"], "error: No such command 'serch'. Did you mean 'search'? (see 'nnexp -h')"),
    (["search"], "error: Missing argument 'spec'. (see 'nnexp search -h')"),
])
def test_bad_arguments_get_one_error_line_at_the_entry_point(argv, message, monkeypatch, capsys):
    """As a bad spec does: one `error:` line and exit 2, not typer's boxed usage text."""
    from nnexp.cli import main

    monkeypatch.setattr(sys, "argv", ["nnexp", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err == message + "\n"


def test_nnexp_alone_prints_the_help_and_no_empty_error_line(monkeypatch, capsys):
    from nnexp.cli import main

    monkeypatch.setattr(sys, "argv", ["nnexp"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and "Usage: nnexp" in out + err and "error:" not in err


def test_pythons_resource_warnings_are_not_the_users(capsys):
    """A Ctrl-C that cut an import short printed `warning: unclosed file <...hatch.pyc>`."""
    import warnings

    from nnexp.cli import warnings_as_lines

    with warnings_as_lines():
        warnings.warn("unclosed file <_io.BufferedReader name='x.pyc'>", ResourceWarning)
        warnings.warn("a user's warning")
    assert capsys.readouterr().err == "warning: a user's warning\n"


def test_each_warning_text_is_shown_once(capsys):
    """The validation and test splits can raise the same warning from different places."""
    import warnings

    from nnexp.cli import warnings_as_lines

    with warnings_as_lines():
        warnings.warn("data.csv: column 'c': 3 row(s) have categories not seen in training")
        warnings.warn("data.csv: column 'c': 3 row(s) have categories not seen in training")
        warnings.warn("another one")
    assert capsys.readouterr().err.splitlines() == [
        "warning: data.csv: column 'c': 3 row(s) have categories not seen in training", "warning: another one"]


def test_tables_on_a_pipe_are_wide_enough_to_keep_values_whole(monkeypatch):
    """rich draws 80 columns off a terminal, cutting 0.00121 to 0.00…; COLUMNS still decides when set."""
    from nnexp.console import PIPED_WIDTH, new_console

    monkeypatch.delenv("COLUMNS", raising=False)
    assert not new_console().is_terminal and new_console().width == PIPED_WIDTH
    monkeypatch.setenv("COLUMNS", "90")
    assert new_console().width == 90


def test_run_warns_once_about_an_ignored_field_naming_the_file(tmp_path, write_spec):
    """The CLI loads the spec (warning, named by the file), then hands it to the API, which
    validated it again and warned a second time as `<dict>`."""
    path = write_spec({"data": {"dataset": "iris", "pca_components": 0.9}, "train": {"epochs": 1}})
    result = runner.invoke(app, ["run", str(path), "--results-dir", str(tmp_path / "r"), "-q"])
    assert result.exit_code == 0, result.output
    ignored = "data.pca_components: only used with normalize: pca; zscore ignores it"
    assert result.stderr.strip().splitlines() == [f"warning: {path}: {ignored}"]


def test_validate_checks_the_data_file_as_run_and_search_do(tmp_path, write_spec):
    """A missing file, and a monitor or search metric a file's 'auto' task does not compute, used to
    pass `validate` and fail `run` / `search`."""
    import numpy as np
    import pandas as pd

    missing = write_spec({"data": {"dataset": "nothere.csv"}}, "missing.yaml")
    result = runner.invoke(app, ["validate", str(missing)])
    assert result.exit_code == 2 and f"{tmp_path / 'nothere.csv'}: data.dataset: file not found" in result.stderr
    rng = np.random.default_rng(0)
    pd.DataFrame({"x": rng.normal(size=60), "y": rng.normal(size=60)}).to_csv(tmp_path / "reg.csv", index=False)
    experiment = {"data": {"dataset": "reg.csv", "target": "y"}, "train": {"epochs": 1}}
    path = write_spec({**experiment, "train": {"epochs": 1, "early_stopping": {"monitor": "val_accuracy"}}})
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"error: {path}: train.early_stopping.monitor: 'val_accuracy' is not computed for a regression task" in result.stderr
    search = write_spec({"experiment": experiment, "metric": "val_accuracy", "space": {"optimizer.lr": [0.1]}}, "g.yaml")
    result = runner.invoke(app, ["validate", str(search)])
    assert result.exit_code == 2 and "metric: 'val_accuracy' is not computed for a regression task" in result.stderr
    assert runner.invoke(app, ["validate", str(write_spec(experiment, "ok.yaml"))]).exit_code == 0


def test_quiet_is_accepted_by_every_command_that_prints(tmp_path, monkeypatch):
    """The contract's common --quiet: nothing on stdout but what the command is for."""
    spec = tmp_path / "s.yaml"
    spec.write_text("data: {dataset: iris}\nmodel: {hidden: [3]}\ntrain: {epochs: 1}\n")
    validate = runner.invoke(app, ["validate", str(spec), "--quiet"])
    assert validate.exit_code == 0 and validate.stdout == ""
    bad = runner.invoke(app, ["validate", str(spec), "--quiet", "--set", "train.epochs=0"])
    assert bad.exit_code == 2 and bad.stdout == "" and "train.epochs" in bad.stderr
    gradcheck = runner.invoke(app, ["gradcheck", str(spec), "-q"])
    assert gradcheck.exit_code == 0 and gradcheck.stdout == ""
    within_noise = runner.invoke(app, ["gradcheck", str(spec), "-q", "--tolerance", "1e-300"])
    assert within_noise.exit_code == 0 and within_noise.stdout == within_noise.stderr == ""
    from nnexp.engine import layers

    backward = layers.Dense.backward
    monkeypatch.setattr(layers.Dense, "backward", lambda self, grad: (backward(self, grad), self.dW.__imul__(1.01))[0])
    failed = runner.invoke(app, ["gradcheck", str(spec), "-q"])
    assert failed.exit_code == 1 and failed.stdout == ""
    assert failed.stderr.startswith(f"error: {spec}: gradient check failed: relative error 4.98e-03 in ")
    names = runner.invoke(app, ["datasets", "-q"])
    assert names.exit_code == 0 and names.stdout.split()[:2] == ["iris", "wine"]


def test_a_line_break_inside_a_column_name_stays_on_the_error_line(tmp_path):
    data = tmp_path / "nl.csv"
    data.write_text('"a\nx",b,label\n' + "".join(f"inf,{i},{'xy'[i % 2]}\n" for i in range(40)))
    spec = tmp_path / "s.yaml"
    spec.write_text(f"data: {{dataset: {data}}}\n")
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "'a\\nx'" in result.stderr


def test_a_search_folders_record_is_not_taken_for_a_spec(tmp_path):
    """search.yaml in a results folder read as a spec gave 'search: unknown field', 'source: unknown field'."""
    from nnexp.search.store import save_spec

    save_spec(tmp_path, {"search": {"name": "g", "space": {}}, "experiment": {}, "source": "specs/g.yaml"})
    for command in ("validate", "run", "search"):
        result = runner.invoke(app, [command, str(tmp_path / "search.yaml")])
        assert result.exit_code == 2 and result.stderr == (
            f"error: {tmp_path / 'search.yaml'}: the record a search keeps in its results folder, not a spec (the "
            f"spec was specs/g.yaml); `nnexp report {tmp_path}` rebuilds its tables\n"), result.stderr


def test_a_handled_stop_keeps_its_exit_code_under_python_m(tmp_path):
    """CPython remembers a KeyboardInterrupt that left exec()'d code (a dataclass made during an
    import) and, under `python -m`, ended the process by SIGINT at exit instead of with 143."""
    import ctypes

    try:
        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt")
    except ValueError:
        pytest.skip("this CPython keeps that flag out of reach (3.12 and later)")
    (tmp_path / "stopped.py").write_text(
        "import sys\nfrom nnexp.cli import _forget_unhandled_interrupt\n"
        "try:\n    exec('raise KeyboardInterrupt')\nexcept KeyboardInterrupt:\n    _forget_unhandled_interrupt()\n"
        "sys.exit(143)\n")
    result = subprocess.run([sys.executable, "-m", "stopped"], cwd=tmp_path, capture_output=True)
    assert result.returncode == 143, result.stderr


def test_running_out_of_memory_is_one_line_and_exit_1_not_bad_input(tmp_path, write_spec, monkeypatch):
    """A valid file read while memory ran out was 'cannot be read as CSV' (exit 2); a network too big
    for the machine was a traceback."""
    import pandas as pd

    import nnexp.train

    pd.DataFrame({"a": range(30), "y": [0, 1] * 15}).to_csv(tmp_path / "d.csv", index=False)
    path = write_spec({"data": {"dataset": "d.csv"}, "train": {"epochs": 1}})

    def parser_out_of_memory(*args, **kwargs):
        raise pd.errors.ParserError("Error tokenizing data. C error: out of memory")

    with monkeypatch.context() as patched:
        patched.setattr(pd, "read_csv", parser_out_of_memory)
        result = runner.invoke(app, ["run", str(path), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert result.stderr == (f"error: out of memory (reading {tmp_path / 'd.csv'}: ParserError: Error tokenizing data. C "
                             "error: out of memory); use a smaller data set or network, or a machine with more memory\n")

    def network_too_big(*args, **kwargs):
        raise MemoryError("Unable to allocate 763. MiB for an array with shape (10000, 10000)")

    monkeypatch.setattr(nnexp.train, "build_network", network_too_big)
    result = runner.invoke(app, ["run", str(path), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.startswith("error: out of memory (Unable to allocate 763. MiB")


CONTRACT_EXPERIMENT = """\
name: digits-relu
seed: 0
data:
  dataset: digits
  target: label
  task: auto
  val_fraction: 0.2
  test_fraction: 0.2
  normalize: zscore
  pca_components: 0.95
  pca_whiten: false
  cv_folds: 0
model:
  hidden: [128, 64]
  activation: relu
  init: he
  dropout: 0.0
  batch_norm: false
optimizer:
  name: sgd
  lr: 0.1
  momentum: 0.9              # momentum / nesterov only
  schedule: constant
train:
  epochs: 50
  batch_size: 64
  l2: 0.0
  l1: 0.0
  early_stopping: null
  dtype: float32
"""


def test_the_contracts_example_specs_validate_and_run(tmp_path):
    """The contract's experiment example sets momentum on sgd, a field it documents as for
    momentum / nesterov only: taken and ignored with a warning (it was refused, exit 2)."""
    (tmp_path / "digits.yaml").write_text(CONTRACT_EXPERIMENT)
    (tmp_path / "grid.yaml").write_text(
        "name: activation-vs-init\nbase: digits.yaml\nstrategy: grid\ntrials: 20\nrepeats: 3\n"
        "metric: val_accuracy\nmode: max\nn_jobs: -1\nspace:\n  model.activation: [logistic, tanh, relu]\n"
        "  optimizer.lr: {log_uniform: [0.001, 1.0]}\n  train.batch_size: {choice: [16, 64, 256]}\n")
    ignored = ("optimizer.momentum: only the momentum and nesterov optimizers use it; sgd ignores it "
               "(SGD with momentum is `name: momentum`)")
    checked = runner.invoke(app, ["validate", str(tmp_path / "digits.yaml")])
    assert checked.exit_code == 0, checked.stderr
    assert f"warning: {tmp_path / 'digits.yaml'}: {ignored}" in checked.stderr.splitlines()
    assert "momentum" not in checked.stdout  # the resolved spec holds what trains: plain SGD
    run = runner.invoke(app, ["run", str(tmp_path / "digits.yaml"), "--set", "train.epochs=1", "--results-dir",
                              str(tmp_path / "out"), "-q"])
    assert run.exit_code == 0 and (tmp_path / "out" / "digits-relu" / "metrics.json").exists()
    grid = runner.invoke(app, ["validate", str(tmp_path / "grid.yaml")])  # a continuous dimension: random only
    assert grid.exit_code == 2 and "or use --random" in grid.stderr
    sampled = runner.invoke(app, ["validate", str(tmp_path / "grid.yaml"), "--random", "--trials", "4"])
    assert sampled.exit_code == 0, sampled.stderr
    assert "strategy: random\ntrials: 4\n" in sampled.stdout
    assert sampled.stdout.endswith("# plan: random: 4 configurations x 3 repeats = 12 trials\n")
    for args, problem in ((["--random"], "--random: only for a search spec"), (["--trials", "3"], "--trials: only")):
        wrong = runner.invoke(app, ["validate", str(tmp_path / "digits.yaml"), *args])
        assert wrong.exit_code == 2 and problem in wrong.stderr
    as_text = runner.invoke(app, ["validate", str(tmp_path / "digits.yaml"), "-q", "--set", "optimizer.momentum='0.5'"])
    assert as_text.exit_code == 0  # text holding a plain number is that number, as in the momentum optimizer's field
    for value, shown in (("2", "int 2"), ("abc", "str 'abc'"), ("true", "bool True"), ("'nan'", "str 'nan'")):
        bad = runner.invoke(app, ["validate", str(tmp_path / "digits.yaml"), "--set", f"optimizer.momentum={value}"])
        assert bad.exit_code == 2
        assert bad.stderr.endswith(f"error: --set optimizer.momentum: must be a number in [0, 1), got {shown}\n")
