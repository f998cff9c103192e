"""Random experiment and search specs, valid and broken, through the real commands.

Each either runs (exit 0, or 1 for a diverged run) or exits 2 with `error:` lines;
never a traceback, never a hang. Budgets are tiny so that many examples fit.
"""

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from nnexp.cli import app

runner = CliRunner()

junk = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(), st.text(max_size=8),
                 st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


def maybe(strategy):
    """Mostly a sensible value, sometimes junk."""
    return st.one_of(strategy, strategy, strategy, junk)


activation = st.one_of(
    st.sampled_from(["relu", "tanh", "logistic", "sigmoid", "maxout", "prelu", "gelu", "rellu", "hard_tanh"]),
    st.fixed_dictionaries({"name": st.sampled_from(["leaky_relu", "elu", "maxout", "tanh"])},
                          optional={"slope": st.floats(-1, 2), "alpha": st.floats(-1, 3), "pieces": st.integers(0, 4)}),
)
experiment = st.fixed_dictionaries(
    {},
    optional={
        "seed": maybe(st.integers(0, 5)),
        "data": maybe(st.fixed_dictionaries(
            {"dataset": st.sampled_from(["iris", "xor", "wine", "moons", "diabetes", "irs", "missing.csv"])},
            optional={"normalize": maybe(st.sampled_from(["none", "zscore", "minmax", "pca"])),
                      "n_samples": maybe(st.integers(2, 120)), "val_fraction": maybe(st.floats(0, 0.9)),
                      "test_fraction": maybe(st.floats(0, 0.9)), "cv_folds": maybe(st.integers(0, 4)),
                      "pca_components": maybe(st.one_of(st.integers(0, 5), st.floats(0, 1.5))),
                      "train_size": maybe(st.one_of(st.integers(0, 50), st.floats(0, 1)))})),
        "model": maybe(st.fixed_dictionaries({}, optional={
            "hidden": maybe(st.lists(st.integers(-1, 12), max_size=3)),
            "activation": maybe(activation),
            "init": maybe(st.sampled_from(["he", "zeros", "xavier", "gaussian", "lecun", "hee"])),
            "dropout": maybe(st.one_of(st.floats(-0.5, 1.2), st.fixed_dictionaries({"input": st.floats(0, 0.9)}))),
            "batch_norm": maybe(st.booleans())})),
        "optimizer": maybe(st.one_of(
            st.sampled_from(["sgd", "adam", "rmsprop", "adadelta", "nesterov", "adamw"]),
            st.fixed_dictionaries({"name": st.sampled_from(["sgd", "momentum", "adam"])},
                                  optional={"lr": st.floats(-1, 1e9), "momentum": st.floats(-1, 2)}))),
        "train": maybe(st.fixed_dictionaries({"epochs": st.integers(-1, 2)}, optional={
            "batch_size": maybe(st.integers(-1, 300)), "l2": maybe(st.floats(-1, 10)), "l1": maybe(st.floats(0, 1)),
            "dtype": maybe(st.sampled_from(["float32", "float64", "float16"]))})),
        "bogus": junk,
    },
)


def check(result):
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert lines and any(line.startswith("error: ") for line in lines), result.output
    else:
        assert result.exit_code in (0, 1), result.output


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(spec=experiment)
def test_random_experiment_specs_run_or_exit_2(spec, tmp_path):
    if isinstance(spec.get("train"), dict):
        spec["train"]["epochs"] = min(spec["train"].get("epochs", 1), 2) if isinstance(spec["train"].get("epochs"), int) else 1
    else:
        spec.setdefault("train", {"epochs": 1})
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(spec))
    check(runner.invoke(app, ["run", str(path), "--quiet", "--results-dir", str(tmp_path / "out")]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(space=st.dictionaries(st.sampled_from(["model.activation", "optimizer.lr", "model.hidden", "train.batch_size",
                                              "model.activaton", "data.normalize", "optimizer"]),
                             st.one_of(st.lists(junk, min_size=1, max_size=3),
                                       st.fixed_dictionaries({"uniform": st.lists(st.floats(-1, 2), min_size=2, max_size=2)}),
                                       st.fixed_dictionaries({"log_uniform": st.lists(st.floats(-1, 2), min_size=1, max_size=3)}),
                                       junk), max_size=3),
       strategy=st.sampled_from(["grid", "random", "grd"]))
def test_random_search_specs_validate_or_exit_2(space, strategy, tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"experiment": {"data": {"dataset": "iris"}}, "strategy": strategy, "trials": 3,
                                    "space": space}))
    check(runner.invoke(app, ["validate", str(path)]))


def test_deeply_nested_yaml(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("model: " + "[" * 5000 + "]" * 5000 + "\n")
    result = runner.invoke(app, ["validate", str(path)])
    check(result)
    assert result.exit_code == 2


def test_huge_numbers(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("optimizer: {name: sgd, lr: 1e400}\ntrain: {epochs: 99999999999999999999999}\n")
    result = runner.invoke(app, ["validate", str(path)])
    check(result)
    assert result.exit_code == 2 and "optimizer.lr" in result.stderr and "train.epochs" in result.stderr


def test_binary_junk_and_empty_file(tmp_path):
    junk_file = tmp_path / "junk.yaml"
    junk_file.write_bytes(bytes(range(256)) * 4)
    check(runner.invoke(app, ["run", str(junk_file)]))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = runner.invoke(app, ["validate", str(empty)])
    assert result.exit_code == 0  # every field has a default
