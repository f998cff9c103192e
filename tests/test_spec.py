"""The spec schema: defaults, bounds, per-kind parameters, aliases and error texts."""

import math
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from nnexp import spec as specs
from nnexp.errors import SpecError


def errors_of(data, source="s.yaml"):
    with pytest.raises(SpecError) as info:
        specs.validate_experiment(data, source)
    return info.value.problems


def test_every_default():
    s = specs.ExperimentSpec()
    assert s.seed == 0 and s.name is None
    d = s.data
    assert (d.dataset, d.target, d.task, d.val_fraction, d.test_fraction) == ("iris", None, "auto", 0.2, 0.2)
    assert (d.normalize, d.pca_components, d.pca_whiten, d.cv_folds, d.impute) == ("zscore", 0.95, False, 0, "none")
    m = s.model
    assert m.hidden == [64] and m.activation.name == "relu" and m.init.name == "he"
    assert m.dropout == 0.0 and m.batch_norm is False
    assert s.optimizer.name == "adam" and s.optimizer.lr == 0.001
    assert s.optimizer.beta1 == 0.9 and s.optimizer.beta2 == 0.999 and s.optimizer.schedule.name == "constant"
    t = s.train
    assert (t.epochs, t.batch_size, t.l2, t.l1, t.early_stopping, t.dtype) == (50, 64, 0.0, 0.0, None, "float32")


def test_minimal_spec_from_contract_is_valid():
    s = specs.validate_experiment({"data": {"dataset": "iris"}}, "s.yaml")
    assert s.data.dataset == "iris"


@pytest.mark.parametrize(
    "name, params",
    [("sgd", {"lr": 0.1}), ("momentum", {"lr": 0.01, "momentum": 0.9}), ("nesterov", {"momentum": 0.9}),
     ("adagrad", {"eps": 1e-8}), ("rmsprop", {"rho": 0.9, "eps": 1e-8}), ("adadelta", {"lr": 1.0, "rho": 0.95}),
     ("adam", {"lr": 0.001, "beta1": 0.9, "beta2": 0.999})],
)
def test_optimizer_defaults(name, params):
    opt = specs.validate_experiment({"optimizer": name}, "s.yaml").optimizer
    for key, value in params.items():
        assert getattr(opt, key) == value


def test_kind_parameter_defaults_and_given_values():
    s = specs.validate_experiment(
        {"model": {"hidden": [4, 4, 4, 4], "activation": ["leaky_relu", {"name": "prelu"}, {"name": "maxout", "pieces": 3}, "elu"],
                   "init": {"name": "gaussian", "std": 0.5}}}, "s.yaml")
    acts = s.model.layer_activations()
    assert acts[0].slope == 0.01 and acts[1].init == 0.25 and acts[2].pieces == 3 and acts[3].alpha == 1.0
    assert s.model.init.std == 0.5
    assert specs.ExperimentSpec(model={"init": "xavier"}).model.init.gain is None
    assert specs.ExperimentSpec(model={"init": "uniform"}).model.init.limit == 0.05
    assert specs.ExperimentSpec(model={"init": "gaussian"}).model.init.std == 0.01


def test_sigmoid_is_an_alias_of_logistic():
    assert specs.ExperimentSpec(model={"activation": "sigmoid"}).model.activation.name == "logistic"


def test_single_activation_is_broadcast_over_layers():
    s = specs.ExperimentSpec(model={"hidden": [3, 5], "activation": "tanh"})
    assert [a.name for a in s.model.layer_activations()] == ["tanh", "tanh"]


def test_dropout_number_or_rates():
    assert specs.ExperimentSpec(model={"dropout": 0.5}).model.dropout_rates() == (0.0, 0.5)
    assert specs.ExperimentSpec(model={"dropout": {"input": 0.2, "hidden": 0.5}}).model.dropout_rates() == (0.2, 0.5)


@pytest.mark.parametrize(
    "data, path, words",
    [
        ({"model": {"dropout": 1.0}}, "model.dropout", "< 1"),
        ({"model": {"dropout": -0.1}}, "model.dropout", ">= 0"),
        ({"model": {"dropout": {"input": 1.5}}}, "model.dropout.input", "< 1"),
        ({"optimizer": {"name": "sgd", "lr": 0}}, "optimizer.lr", "> 0"),
        ({"optimizer": {"name": "sgd", "lr": -1}}, "optimizer.lr", "> 0"),
        ({"data": {"val_fraction": 0.5, "test_fraction": 0.5}}, "data.val_fraction", "must be < 1"),
        ({"model": {"hidden": [10, 0]}}, "model.hidden[1]", ">= 1"),
        ({"train": {"epochs": 0}}, "train.epochs", ">= 1"),
        ({"train": {"batch_size": 0}}, "train.batch_size", ">= 1"),
        ({"train": {"l2": -1}}, "train.l2", ">= 0"),
        ({"train": {"dtype": "float16"}}, "train.dtype", "not allowed"),
        ({"data": {"cv_folds": 1}}, "data.cv_folds", ">= 2"),
        ({"data": {"pca_components": 1.5}}, "data.pca_components", "(0, 1)"),
        ({"data": {"pca_components": 0}}, "data.pca_components", ">= 1"),
        ({"model": {"activation": {"name": "leaky_relu", "slope": 2}}}, "model.activation.slope", "< 1"),
        ({"model": {"activation": {"name": "maxout", "pieces": 1}}}, "model.activation.pieces", ">= 2"),
        ({"optimizer": {"name": "adam", "beta1": 1.0}}, "optimizer.beta1", "< 1"),
        ({"optimizer": {"name": "sgd", "schedule": {"name": "step", "every": 0}}}, "optimizer.schedule.every", ">= 1"),
        ({"seed": -1}, "seed", ">= 0"),
    ],
)
def test_bounds_name_the_field(data, path, words):
    problems = errors_of(data)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"s.yaml: {path}: "), problems
    assert words in problems[0]


def test_parameter_of_another_kind_is_an_error():
    (line,) = errors_of({"model": {"activation": {"name": "tanh", "slope": 0.1}}})
    assert line == "s.yaml: model.activation.slope: not a parameter of activation 'tanh' (it takes none)"
    (line,) = errors_of({"optimizer": {"name": "adam", "momentum": 0.9}})
    assert line.startswith("s.yaml: optimizer.momentum: not a parameter of optimizer 'adam'")
    # but sgd takes (and ignores, with a warning) the momentum of the momentum optimizers: the contract's example
    assert specs.validate_experiment({"optimizer": {"name": "sgd", "momentum": 0.9}}, "s.yaml").optimizer.name == "sgd"


def test_per_layer_list_length_must_match():
    (line,) = errors_of({"model": {"hidden": [4, 4], "activation": ["relu"]}})
    assert line.startswith("s.yaml: model.activation: ") and "1 for 2 hidden layers" in line


def test_misspelt_key_suggests_field():
    assert errors_of({"model": {"activaton": "relu"}}) == ["s.yaml: model.activaton: unknown field; did you mean 'activation'?"]
    assert errors_of({"trian": {}}) == ["s.yaml: trian: unknown field; did you mean 'train'?"]
    assert errors_of({"train": {"epoch": 3}}) == ["s.yaml: train.epoch: unknown field; did you mean 'epochs'?"]


def test_misspelt_names_suggest():
    (line,) = errors_of({"model": {"activation": "rellu"}})
    assert line.startswith("s.yaml: model.activation: unknown activation 'rellu'; did you mean 'relu'?")
    (line,) = errors_of({"model": {"init": "xavir"}})
    assert "did you mean 'xavier'?" in line
    (line,) = errors_of({"optimizer": "adamm"})
    assert "did you mean 'adam'?" in line
    (line,) = errors_of({"data": {"normalize": "zscor"}})
    assert "did you mean 'zscore'?" in line
    (line,) = errors_of({"data": {"dataset": "digts"}})
    assert line.startswith("s.yaml: data.dataset: unknown dataset 'digts'; did you mean 'digits'?")


def test_all_problems_reported_at_once():
    problems = errors_of({"model": {"activaton": "relu", "hidden": [0]}, "train": {"epochs": 0}})
    assert len(problems) == 3


def test_the_target_watch_needs_validation_rows_too():
    (line,) = errors_of({"data": {"val_fraction": 0}, "train": {"target": {"monitor": "val_loss", "value": 0.2}}})
    assert line == "s.yaml: train.target: monitoring a val_ metric needs data.val_fraction > 0"
    assert specs.validate_experiment({"data": {"val_fraction": 0}, "train": {"target": {"monitor": "train_loss",
                                                                                          "value": 0.2}}}, "s.yaml")


@pytest.mark.parametrize("monitor, value", [("val_auc", 1.5), ("val_accuracy", -0.1), ("val_ap", 2)])
def test_a_target_a_share_cannot_take_is_refused(monitor, value):
    (line,) = errors_of({"train": {"target": {"monitor": monitor, "value": value}}})
    assert line == f"s.yaml: train.target.value: must be between 0 and 1 for {monitor} (a share), got {value:g}"
    assert specs.validate_experiment({"train": {"target": {"monitor": "val_loss", "value": 1.5}}}, "s.yaml")


@pytest.mark.parametrize("data, field, monitor, task", [
    ({"dataset": "iris"}, "early_stopping", "val_rmse", "classification"),
    ({"dataset": "diabetes"}, "target", "val_accuracy", "regression"),
    ({"dataset": "table.csv", "task": "regression"}, "early_stopping", "val_f1", "regression"),
])
def test_a_monitor_the_known_task_does_not_compute_is_a_spec_error(data, field, monitor, task):
    """A built-in's task, or an explicit data.task, is known before any row is read: validate says so."""
    train = {field: {"monitor": monitor, **({"value": 0.5} if field == "target" else {})}}
    (line,) = errors_of({"data": data, "train": train})
    assert line.startswith(f"s.yaml: train.{field}.monitor: '{monitor}' is not computed for a {task} task (one of ")
    unknown = {"data": {"dataset": "table.csv"}, "train": train}  # a file's 'auto' task: checked once read
    assert specs.validate_experiment(unknown, "s.yaml").train


def test_a_task_that_contradicts_a_builtin_is_a_spec_error():
    (line,) = errors_of({"data": {"dataset": "diabetes", "task": "classification"}})
    assert line == "s.yaml: data.task: 'diabetes' is a regression data set, not classification"


def test_early_stopping_needs_validation_rows():
    (line,) = errors_of({"data": {"val_fraction": 0}, "train": {"early_stopping": {"patience": 3}}})
    assert "train.early_stopping" in line


def test_resolved_yaml_round_trips(write_spec):
    s = specs.validate_experiment({"model": {"hidden": [3], "activation": [{"name": "leaky_relu", "slope": 0.2}],
                                             "init": {"name": "xavier", "gain": 2.0}}, "optimizer": "momentum"}, "s.yaml")
    text = specs.dump_yaml(s)
    again = specs.validate_experiment(yaml.safe_load(text), "again.yaml")
    assert again == s
    assert "hidden: [3]" in text


def test_relative_data_path_resolves_against_spec_file(tmp_path):
    (tmp_path / "sub").mkdir()
    spec_file = tmp_path / "sub" / "exp.yaml"
    spec_file.write_text("data: {dataset: ../table.csv}\n")
    s = specs.load_experiment(spec_file)
    assert s.data.dataset == str((tmp_path / "table.csv").resolve())
    assert s.name == "exp"


def test_overrides_are_yaml_and_validated(write_spec):
    path = write_spec({"data": {"dataset": "iris"}})
    s = specs.load_experiment(path, specs.parse_overrides(["train.epochs=2", "model.hidden=[32, 16]", "model.init.std=0.5",
                                                           "model.init.name=gaussian"]))
    assert s.train.epochs == 2 and s.model.hidden == [32, 16] and s.model.init.std == 0.5
    with pytest.raises(SpecError, match=r"--set train.epoch: unknown field; did you mean 'train.epochs'\?"):
        specs.load_experiment(path, specs.parse_overrides(["train.epoch=2"]))
    with pytest.raises(SpecError, match="expected PATH=VALUE"):
        specs.parse_overrides(["train.epochs"])
    with pytest.raises(SpecError, match=r"^--set train.class_weight: value '\{1: 5\}': key '1' "
                                        r"reads as int, not a name; quote it if it is one$"):
        specs.parse_overrides(["train.class_weight={1: 5}"])
    with pytest.raises(SpecError, match=r"^--set train.epochs: value '\[1' is not valid YAML: expected ',' or ']'"):
        specs.parse_overrides(["train.epochs=[1"])


def test_switching_kind_name_drops_foreign_parameters():
    tree = {"optimizer": {"name": "adam", "lr": 0.01, "beta1": 0.8}}
    specs.apply_override(tree, "optimizer.name", "sgd")
    assert tree["optimizer"] == {"name": "sgd", "lr": 0.01}


@pytest.mark.parametrize("value, expected", [
    ("momentum", "momentum"),
    ({"name": "momentum"}, {"name": "momentum"}),
    ({"name": "momentum", "lr": 0.2}, {"name": "momentum", "lr": 0.2}),
])
def test_a_kind_by_name_or_as_a_mapping_replaces_the_whole_kind(value, expected):
    """What `optimizer: momentum` trains must not depend on what the spec had written out: a spec
    and its resolved form (adam's defaults spelt out) take the override alike."""
    tree = {"optimizer": {"name": "adam", "lr": 0.001, "beta1": 0.8, "schedule": "step"}}
    specs.apply_override(tree, "optimizer", value)
    assert tree["optimizer"] == expected
    spelt_out = specs.validate_experiment({"optimizer": {"name": "adam", "lr": 0.001}}, "s.yaml")
    for base in ({}, spelt_out.model_dump(mode="json")):
        tree = dict(base)
        specs.apply_override(tree, "optimizer", value)
        assert specs.validate_experiment(tree, "s.yaml").optimizer.lr == (0.2 if isinstance(value, dict) and "lr" in value else 0.01)


def test_yaml_syntax_error_has_line_and_column(write_spec):
    path = write_spec("model:\n  hidden: [3\n")
    with pytest.raises(SpecError, match=r"line \d+, column \d+: YAML syntax error"):
        specs.load_experiment(path)


@pytest.mark.parametrize("content, words", [
    (b"\xff\xfe\x00junk", "not UTF-8"),
    (b"- 1\n- 2\n", "must be a YAML mapping"),
    (b"a: &a [1]\n" + b"".join(b"k%d: &k%d [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" % (i, i) for i in range(20)), "aliases"),
])
def test_hostile_files(tmp_path, content, words):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError, match=words):
        specs.load_any(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        specs.load_any(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="is a directory"):
        specs.load_any(tmp_path)


def test_metric_mode_follows_metric():
    assert specs.metric_mode("val_loss") == "min" and specs.metric_mode("val_rmse") == "min"
    assert specs.metric_mode("val_accuracy") == "max" and specs.metric_mode("val_r2") == "max"
    assert specs.SearchSpec(metric="val_accuracy").mode == "max"
    assert specs.metric_mode("val_auc") == "max" and specs.metric_mode("val_balanced_accuracy") == "max"
    assert specs.SearchSpec(metric="val_auc").mode == "max" and specs.SearchSpec(metric="train_balanced_accuracy").mode == "max"
    assert specs.metric_mode("val_ap") == "max" and specs.SearchSpec(metric="val_ap").mode == "max"


@pytest.mark.parametrize("written, meant", [("val_AUC", "val_auc"), ("val_au", "val_auc"),
                                            ("val_balanced_acc", "val_balanced_accuracy"),
                                            ("val_balance_accuracy", "val_balanced_accuracy"),
                                            ("val_AP", "val_ap"), ("val_pa", "val_ap"),
                                            ("val_acc", "val_accuracy"),  # cut short, though val_auc is closer
                                            ("train_balanced", "train_balanced_accuracy")])
def test_a_misspelt_new_metric_suggests_its_name(written, meant):
    with pytest.raises(ValidationError, match=f"unknown metric '{written}'; did you mean '{meant}'"):
        specs.SearchSpec(metric=written)


def test_search_spec_paths_and_values(write_spec):
    write_spec({"data": {"dataset": "iris"}}, "base.yaml")
    path = write_spec({"base": "base.yaml", "space": {"model.activaton": ["relu"], "optimizer.lr": {"log_uniform": [0, 1]}}}, "grid.yaml")
    with pytest.raises(SpecError) as info:
        specs.load_search(path)
    text = "\n".join(info.value.problems)
    assert "space.optimizer.lr.log_uniform" in text and "0 < low < high" in text
    path = write_spec({"base": "base.yaml", "space": {"model.activaton": ["relu"]}}, "grid.yaml")
    with pytest.raises(SpecError, match=r"grid.yaml: space.model.activaton: unknown field; did you mean 'model.activation'\?"):
        specs.load_search(path)


def test_a_wrong_base_is_an_error_of_the_search_spec(write_spec, tmp_path):
    """The file, the field, the problem: a missing base names grid.yaml and `base`, not only the path it tried."""
    for base, problem in (("nope.yaml", "no such file"), (".", "is a directory, not a spec file"), ("", "is a directory, not a spec file")):
        path = write_spec({"base": base, "space": {"optimizer.lr": [0.1]}}, "grid.yaml")
        with pytest.raises(SpecError) as info:
            specs.load_search(path)
        [line] = info.value.problems
        assert line.startswith(f"{path}: base: ") and line.endswith(problem), line
    (tmp_path / "broken.yaml").write_text("data: [unclosed\n")  # a bad base file is named by its own path
    path = write_spec({"base": "broken.yaml", "space": {"optimizer.lr": [0.1]}}, "grid.yaml")
    with pytest.raises(SpecError) as info:
        specs.load_search(path)
    assert info.value.problems[0].startswith(str(tmp_path / "broken.yaml")), info.value.problems


json_leaves = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                        st.text(max_size=12), st.sampled_from(["relu", "adam", "iris", "he", "zscore", "sgd", "name"]))
keys = st.sampled_from(["data", "model", "optimizer", "train", "name", "seed", "hidden", "activation", "init", "lr",
                        "epochs", "dataset", "dropout", "space", "base", "name", "slope", "x", "input"])
trees = st.recursive(json_leaves, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
                     max_leaves=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=st.dictionaries(keys, trees, max_size=6))
def test_random_mappings_validate_or_raise_spec_error(tree, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "f.yaml"
    path.write_text(yaml.safe_dump(tree))
    try:
        result = specs.load_any(path)
    except SpecError as exc:
        assert all(line.startswith(str(path)) or line.startswith("--set") for line in exc.problems)
    else:
        assert isinstance(result, (specs.ExperimentSpec, specs.LoadedSearch))


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_random_yaml_text_validates_or_raises_spec_error(text):
    try:
        specs.validate_experiment(specs.parse_yaml(text, "t.yaml"), "t.yaml")
    except SpecError:
        pass


def test_section_mapping_override_merges_fields():
    tree = {"data": {"dataset": "wine", "normalize": "zscore"}}
    specs.apply_override(tree, "data", {"normalize": "pca", "pca_whiten": True})
    assert tree == {"data": {"dataset": "wine", "normalize": "pca", "pca_whiten": True}}


def test_kind_defaults_match_the_schema():
    resolved = specs.ExperimentSpec()
    assert specs.KIND_DEFAULTS == {
        "model.activation": resolved.model.activation.name, "model.init": resolved.model.init.name,
        "optimizer": resolved.optimizer.name, "optimizer.schedule": resolved.optimizer.schedule.name,
    }


def test_setting_a_kind_parameter_keeps_or_supplies_its_name(write_spec):
    path = write_spec({"data": {"dataset": "iris"}})
    s = specs.load_experiment(path, specs.parse_overrides(["optimizer.lr=0.5"]))
    assert s.optimizer.name == "adam" and s.optimizer.lr == 0.5
    with pytest.raises(SpecError, match="model.init.std: not a parameter of initialiser 'he'"):
        specs.load_experiment(path, specs.parse_overrides(["model.init.std=0.3"]))
    path = write_spec({"data": {"dataset": "iris"}, "optimizer": "sgd", "model": {"init": "gaussian"}})
    s = specs.load_experiment(path, specs.parse_overrides(["optimizer.lr=0.5", "model.init.std=0.3"]))
    assert (s.optimizer.name, s.optimizer.lr, s.model.init.name, s.model.init.std) == ("sgd", 0.5, "gaussian", 0.3)


FOLDER_NAME_PROBLEM = "name: must be a plain folder name (no '/', not '.' or '..')"


@pytest.mark.parametrize("name", [".", "..", "a/b", "../up", "a\\b", "nul\x00"])
def test_a_name_must_be_a_plain_folder_name(name, write_spec):
    """Results go to <results-dir>/<name>/: '..' or 'a/b' would write outside that folder."""
    assert errors_of({"name": name}) == [f"s.yaml: {FOLDER_NAME_PROBLEM}"]
    path = write_spec({"name": name, "experiment": {}, "space": {"optimizer.lr": [0.1]}}, "grid.yaml")
    with pytest.raises(SpecError) as info:
        specs.load_search(path)
    assert info.value.problems == [f"{path}: {FOLDER_NAME_PROBLEM}"]


@pytest.mark.parametrize("spec, problem", [
    ({"train": 5}, "train: expected a mapping of fields (field: value, ...), got int 5"),
    ({"model": {"hidden": 8}}, "model.hidden: expected a list ([a, b, ...]), got int 8"),
])
def test_a_section_or_a_list_of_the_wrong_kind_is_told_in_words(spec, problem):
    """Not pydantic's 'Input should be a valid dictionary or instance of TrainSpec'."""
    assert errors_of(spec) == [f"s.yaml: {problem}"]


def test_an_empty_name_says_so_and_a_null_one_is_the_files_stem(write_spec):
    assert errors_of({"name": ""}) == ["s.yaml: name: must not be empty (leave it out to use the spec file's name)"]
    path = write_spec("name:\ndata: {dataset: iris}\n", "mine.yaml")
    assert specs.load_experiment(path).name == "mine"
    assert specs.load_experiment(path, specs.parse_overrides(["name="])).name == "mine"


def test_a_key_written_twice_is_an_error(write_spec):
    """YAML keeps the second silently: `data:` twice trained on the second data set."""
    path = write_spec("data: {dataset: iris}\nmodel: {hidden: [4]}\ndata: {dataset: wine}\n")
    with pytest.raises(SpecError) as info:
        specs.load_any(path)
    assert info.value.problems == [f"{path}: line 3, column 1: key 'data' is written twice "
                                   "(first at line 1); only one of them would count"]
    nested = write_spec("name: a\nspace:\n  train.epochs: [1, 2]\n  train.epochs: [3]\n", "g.yaml")
    with pytest.raises(SpecError, match="key 'train.epochs' is written twice"):
        specs.load_any(nested)
    with pytest.raises(SpecError, match="key 'epochs' is written twice"):  # on one line, in a flow mapping
        specs.load_any(write_spec("train: {epochs: 1, epochs: 2}\n", "flow.yaml"))


def test_a_default_name_is_checked_like_a_written_one(write_spec):
    """A file called '..yaml' has the stem '.', which must not become the results folder."""
    for content in ({"data": {"dataset": "iris"}}, {"experiment": {}, "space": {"optimizer.lr": [0.1]}}):
        path = write_spec(content, "..yaml")
        with pytest.raises(SpecError) as info:
            specs.load_any(path)
        assert info.value.problems == [f"{path}: {FOLDER_NAME_PROBLEM}"]
    assert specs.validate_experiment({"name": "ok-name.v2"}, "s.yaml").name == "ok-name.v2"


def test_a_name_longer_than_a_file_name_is_refused():
    (line,) = errors_of({"name": "x" * 256})
    assert line.startswith("s.yaml: name: must be a plain folder name of at most 255 bytes")
    assert specs.validate_experiment({"name": "x" * 255}, "s.yaml").name == "x" * 255


@pytest.mark.parametrize("text, value", [("1e-3", 0.001), ("1E5", 1e5), ("-2.5e+3", -2500.0), (".5e-2", 0.005),
                                         ("1.0e6", 1e6), ("+3e0", 3.0), ("1.5", 1.5), ("7", 7)])
def test_yaml_1_2_floats_are_floats(text, value, write_spec):
    """PyYAML (YAML 1.1) reads 1e-3 as the string '1e-3'; a search space would plan and sort text."""
    parsed = specs.parse_yaml(f"x: {text}\n", "t.yaml")["x"]
    assert parsed == value and type(parsed) is type(value)
    [(_, override)] = specs.parse_overrides([f"optimizer.lr={text}"])
    assert override == value and type(override) is type(value)
    write_spec({"data": {"dataset": "iris"}}, "base.yaml")
    path = write_spec(f"base: base.yaml\nspace:\n  train.l2: [{text}, 0.25]\n", "grid.yaml")
    assert specs.load_search(path).spec.space["train.l2"] == [value, 0.25]


@pytest.mark.parametrize("text, value", [("010", 10), ("0o17", 15), ("0x1F", 31), ("-7", -7), ("1:30", "1:30"),
                                         ("0b11", "0b11"), ("yes", "yes"), ("on", "on"), ("True", True), (".inf", math.inf)])
def test_yaml_1_1_number_and_boolean_forms_are_read_as_yaml_1_2_does(text, value):
    """YAML 1.1 read `seed: 010` as 8 and `epochs: 1:30` as 90 (base 60): numbers nobody meant."""
    parsed = specs.parse_yaml(f"x: {text}\n", "t.yaml")["x"]
    assert parsed == value and type(parsed) is type(value)
    assert specs.parse_overrides([f"train.epochs={text}"]) == [("train.epochs", value)]
    assert specs.load_yaml(specs.dump_yaml({"x": text})) == {"x": text}  # a text that looks like one stays text


def test_a_number_written_in_yaml_1_1_base_60_is_refused_by_a_number_field(write_spec):
    path = write_spec("data: {dataset: iris}\ntrain: {epochs: 1:30}\n")
    with pytest.raises(SpecError, match=r"train.epochs: expected a whole number, got str '1:30'"):
        specs.load_experiment(path)


def test_only_nnexp_loader_reads_yaml_1_2_floats():
    """The resolver is the project's own: yaml.safe_load keeps YAML 1.1, and text that is not a number stays text."""
    assert yaml.safe_load("x: 1e-3") == {"x": "1e-3"}
    assert specs.parse_yaml("a: 1e\nb: e5\nc: 1e-3x\nd: '1e-3'\n", "t.yaml") == {"a": "1e", "b": "e5", "c": "1e-3x", "d": "1e-3"}


def test_a_name_that_reads_as_a_float_is_quoted_when_dumped():
    """The resolved spec.yaml is re-runnable as is: name '1e5' must not come back as the float 100000.0."""
    s = specs.validate_experiment({"name": "1e5", "optimizer": {"name": "sgd", "lr": 1e-8}}, "s.yaml")
    again = specs.validate_experiment(specs.parse_yaml(specs.dump_yaml(s), "spec.yaml"), "spec.yaml")
    assert again == s and again.name == "1e5"
    assert errors_of({"name": 1e5}) == ["s.yaml: name: expected text (quote it in YAML), got float 100000.0"]


def search_errors(write_spec, space):
    """The problems of a search over iris with this space (a mapping, or YAML text to keep 1e-1 as written)."""
    experiment = {"data": {"dataset": "iris"}}
    content = (f"experiment: {experiment}\nspace: {{{space}}}\n" if isinstance(space, str)
               else {"experiment": experiment, "space": space})
    path = write_spec(content, "grid.yaml")
    with pytest.raises(SpecError) as info:
        specs.load_search(path)
    return [line.removeprefix(f"{path}: ") for line in info.value.problems]


@pytest.mark.parametrize("space, problem", [
    ({"model.activation": ["relu", "relu"]}, "space.model.activation: relu appears twice"),
    ({"model.activation": {"choice": ["tanh", "relu", "tanh"]}}, "space.model.activation: tanh appears twice"),
    ("optimizer.lr: [0.1, 1e-1]", "space.optimizer.lr: 0.1 appears twice"),
    ({"train.epochs": [1, 1.0]}, "space.train.epochs: 1 appears twice (as 1 and 1.0)"),
    ({"model.hidden": [[8], [4], [8]]}, "space.model.hidden: [8] appears twice"),
    ({"model.init": [{"name": "gaussian", "std": 0.1}, {"name": "gaussian", "std": 0.1}]},
     "space.model.init: {name: gaussian, std: 0.1} appears twice"),
])
def test_a_space_value_listed_twice_is_an_error(space, problem, write_spec):
    """A repeated value would plan the same trial twice (a list) or bias the draws (a random choice)."""
    assert search_errors(write_spec, space) == [problem]


def test_true_and_1_are_different_space_values(write_spec):
    path = write_spec({"experiment": {}, "space": {"model.batch_norm": [True, False], "train.l1": [0, 1]}}, "grid.yaml")
    assert specs.load_search(path).spec.space["train.l1"] == [0, 1]


@pytest.mark.parametrize("space, problem", [
    ({"model.activation": []}, "space.model.activation: needs at least one value"),
    ({"model.activation": {"choice": []}}, "space.model.activation: needs at least one value"),
    ({"optimizer.lr": {"uniform": [0.1, 0.2, 0.3]}}, "space.optimizer.lr: takes at most 2 values"),
])
def test_space_list_lengths_are_told_in_words(space, problem, write_spec):
    """Not pydantic's 'must be at least of length List, got []'."""
    assert search_errors(write_spec, space) == [problem]


def test_cosine_min_lr_above_the_learning_rate_is_an_error():
    """Cosine goes from lr down to min_lr; a larger min_lr made the rate rise (0.1, 0.818, 2.55, ...)."""
    (line,) = errors_of({"optimizer": {"name": "sgd", "lr": 0.1, "schedule": {"name": "cosine", "min_lr": 5}}})
    assert line.startswith("s.yaml: optimizer.schedule.min_lr: must be <= lr (0.1)"), line
    (line,) = errors_of({"optimizer": {"name": "adam", "schedule": {"name": "cosine", "min_lr": 0.01}}})  # default lr 0.001
    assert line.startswith("s.yaml: optimizer.schedule.min_lr: must be <= lr (0.001)"), line
    s = specs.validate_experiment({"optimizer": {"name": "sgd", "lr": 0.1, "schedule": {"name": "cosine", "min_lr": 0.1}}}, "s.yaml")
    assert s.optimizer.schedule.min_lr == 0.1


@pytest.mark.parametrize("schedule, field", [({"name": "step", "factor": 1.5}, "factor"),
                                             ({"name": "exponential", "gamma": 1.01}, "gamma")])
def test_a_decay_schedule_never_grows_the_rate(schedule, field):
    (line,) = errors_of({"optimizer": {"name": "sgd", "schedule": schedule}})
    assert line.startswith(f"s.yaml: optimizer.schedule.{field}: must be <= 1"), line


def test_an_experiment_spec_given_to_search_says_so(write_spec):
    path = write_spec({"name": "quick", "data": {"dataset": "digits"}, "model": {"hidden": [8]}, "train": {"epochs": 2}})
    with pytest.raises(SpecError) as info:
        specs.load_search(path)
    assert info.value.problems == [
        f"{path}: this looks like an experiment spec (it has data/model/train at the top); use `nnexp run`, "
        "or write a search spec with `experiment:` (or `base:`) and `space:`"]


def test_an_unknown_field_never_suggests_itself(write_spec):
    """Experiment sections at the top of a search spec are unknown there; 'did you mean data' for 'data' is nonsense."""
    path = write_spec({"data": {"dataset": "iris"}, "spce": {}, "space": {"optimizer.lr": [0.1]}}, "grid.yaml")
    with pytest.raises(SpecError) as info:
        specs.load_search(path)
    assert sorted(info.value.problems) == [f"{path}: data: unknown field", f"{path}: spce: unknown field; did you mean 'space'?"]
    assert errors_of({"trials": 3}) == ["s.yaml: trials: unknown field"]
    assert errors_of({"modle": {}}) == ["s.yaml: modle: unknown field; did you mean 'model'?"]  # not the search's 'mode'


@pytest.mark.parametrize("data, line", [
    ({"optimizer": {"momentum": 0.5}}, "s.yaml: optimizer: an optimizer mapping needs a 'name' (one of sgd,"),
    ({"model": {"activation": {"slope": 0.1}}}, "s.yaml: model.activation: an activation mapping needs a 'name' (one of"),
    ({"model": {"init": {"std": 0.1}}}, "s.yaml: model.init: an initialiser mapping needs a 'name' (one of"),
    ({"optimizer": {"name": "sgd", "schedule": {"every": 3}}}, "s.yaml: optimizer.schedule: a schedule mapping needs a 'name'"),
    ({"optimizer": 3}, "s.yaml: optimizer: expected an optimizer name or a mapping with 'name', got int 3"),
])
def test_kind_messages_use_the_right_article(data, line):
    (problem,) = errors_of(data)
    assert problem.startswith(line), problem


@pytest.mark.parametrize("data, line", [
    ({"model": {"activation": {"name": "leaky_relu", "slop": 0.1}}},
     "s.yaml: model.activation.slop: not a parameter of activation 'leaky_relu' (its parameters: slope); did you mean 'slope'?"),
    ({"optimizer": {"lrr": 0.1}}, "s.yaml: optimizer.lrr: unknown field; did you mean 'lr'?"),  # not "needs a 'name'"
    ({"model": {"init": {"sdt": 0.1}}}, "s.yaml: model.init.sdt: unknown field; did you mean 'std'?"),
    ({"optimizer": {"name": "sgd", "schedule": {"evry": 3}}}, "s.yaml: optimizer.schedule.evry: unknown field; did you mean 'every'?"),
])
def test_a_misspelt_parameter_of_a_kind_gets_a_suggestion(data, line):
    assert errors_of(data) == [line]


def test_a_mapping_without_name_is_the_default_choice_when_it_takes_those_keys(write_spec):
    """`optimizer: {lr: 0.01}` is what `--set optimizer.lr=0.01` gives: the default optimizer (adam)."""
    spec = specs.load_experiment(write_spec({"data": {"dataset": "iris"}, "optimizer": {"lr": 0.01, "beta1": 0.8}}))
    assert (spec.optimizer.name, spec.optimizer.lr, spec.optimizer.beta1) == ("adam", 0.01, 0.8)
    assert spec.optimizer.schedule.name == "constant"


@pytest.mark.parametrize("data, path, shown", [
    ({"train": {"epochs": True}}, "train.epochs", "true"),
    ({"seed": False}, "seed", "false"),
    ({"optimizer": {"name": "sgd", "lr": True}}, "optimizer.lr", "true"),
    ({"model": {"hidden": [32, True]}}, "model.hidden", "[32, true]"),
    ({"model": {"dropout": False}}, "model.dropout", "false"),
    ({"model": {"dropout": {"input": True}}}, "model.dropout.input", "true"),
    ({"model": {"activation": {"name": "maxout", "pieces": True}}}, "model.activation.pieces", "true"),
    ({"data": {"noise": True}}, "data.noise", "true"),
    ({"train": {"early_stopping": {"patience": True}}}, "train.early_stopping.patience", "true"),
])
def test_a_boolean_is_never_a_number(data, path, shown):
    """Lax pydantic reads true as 1: `epochs: true` trained one epoch."""
    assert errors_of(data) == [f"s.yaml: {path}: expected a number, not a boolean (got {shown})"]


def test_booleans_stay_booleans_and_numbers_where_both_fit():
    s = specs.validate_experiment({"model": {"batch_norm": True}, "data": {"pca_whiten": True}}, "s.yaml")
    assert s.model.batch_norm is True and s.data.pca_whiten is True
    assert specs.SearchSpec.model_validate({"space": {"model.batch_norm": [True, False]}}).space["model.batch_norm"] == [True, False]
    with pytest.raises(ValidationError, match="not a boolean"):
        specs.SearchSpec.model_validate({"space": {"train.l2": {"uniform": [False, 0.1]}}})


def test_booleans_and_fractions_from_set_name_the_field(write_spec):
    path = write_spec({"data": {"dataset": "iris"}})
    for value, problem in (("true", "expected a number, not a boolean (got true)"),
                           ("2.5", "expected a whole number, got float 2.5"),
                           ("1e9", "must be <= 1000000, got 1000000000.0")):
        with pytest.raises(SpecError) as info:
            specs.load_experiment(path, specs.parse_overrides([f"train.epochs={value}"]))
        assert info.value.problems == [f"--set train.epochs: {problem}"]
    assert specs.load_experiment(path, specs.parse_overrides(["train.epochs=1e2"])).train.epochs == 100


def test_a_bad_value_is_blamed_on_where_it_was_written(write_spec):
    """On --set when an override gave it (the file holds no such value), on the file otherwise."""
    path = write_spec({"data": {"dataset": "iris"}, "train": {"epochs": "abc"}})
    with pytest.raises(SpecError) as info:
        specs.load_experiment(path, specs.parse_overrides(["train.batch_size=0"]))
    assert info.value.problems == [f"{path}: train.epochs: expected a whole number, got str 'abc'",
                                   "--set train.batch_size: must be >= 1, got 0"]
    search = write_spec({"experiment": {"data": {"dataset": "iris"}}, "space": {"optimizer.lr": [0.1]}}, "g.yaml")
    for override, problem in (("trials=abc", "--set trials: expected a whole number, got str 'abc'"),
                              ("optimizer.lr=-1", "--set optimizer.lr: must be > 0.0, got -1")):
        with pytest.raises(SpecError) as info:
            specs.load_search(search, specs.parse_overrides([override]))
        assert info.value.problems == [problem]


def test_a_space_entry_from_set_is_blamed_on_the_override(write_spec):
    """`--set space.optimizer.lr=[0.1, -1]` said `g.yaml: space.optimizer.lr: value -1`, a value the file does not hold."""
    from nnexp.search.space import plan_search

    search = write_spec({"experiment": {"data": {"dataset": "iris"}}, "space": {"optimizer.lr": [0.1],
                                                                              "model.hidden": [[4], [0]]}}, "g.yaml")
    for overrides, problems in (
            (["space.optimizer.lr=[0.1, -1]"], ["--set space.optimizer.lr: value -1: must be > 0.0, got -1",
                                                f"{search}: space.model.hidden: value [0]: must be >= 1, got 0"]),
            (["space={optimizer.lr: [0.1, -1]}"], ["--set space.optimizer.lr: value -1: must be > 0.0, got -1"]),
            (["space.model.hiden=[[4]]"], ["--set space.model.hiden: unknown field; did you mean 'model.hidden'?"]),
            (["space.model.activation=[relu, {name: relu}]"],
             ["--set space.model.activation: relu and {name: relu} make the same experiment",
              f"{search}: space.model.hidden: value [0]: must be >= 1, got 0"]),
            (["space.optimizer.lr={log_uniform: [0.01, 1]}"],
             ["--set space.optimizer.lr: a grid needs `points` to use a continuous distribution "
              "(e.g. {log_uniform: [...], points: 4}), or use --random"])):
        with pytest.raises(SpecError) as info:
            plan_search(specs.load_search(search, specs.parse_overrides(overrides)))
        assert sorted(info.value.problems) == sorted(problems), overrides
    fixed = ["space.model.hidden=[[4]]"]
    with pytest.raises(SpecError) as info:  # the file holds no metric: the override is what is wrong
        plan_search(specs.load_search(search, specs.parse_overrides([*fixed, "metric=val_r2"])))
    assert info.value.problems == ["--set metric: 'val_r2' is not computed for a classification task "
                                   "(one of val_loss, val_accuracy, val_f1, val_balanced_accuracy, val_auc, val_ap)"]
    with pytest.warns(UserWarning, match=r"^--set trials: 5 configurations asked for, but the space has only 1"):
        plan_search(specs.load_search(search, specs.parse_overrides([*fixed, "strategy=random", "trials=5"])))


def test_batch_norm_needs_two_rows_per_batch():
    (line,) = errors_of({"model": {"batch_norm": True}, "train": {"batch_size": 1}})
    assert line.startswith("s.yaml: train.batch_size: batch norm needs at least 2 rows per batch")
    assert specs.validate_experiment({"model": {"batch_norm": True}, "train": {"batch_size": 2}}, "s.yaml")


def test_pca_components_1_0_is_ambiguous_not_one_component():
    """1.0 read as a float is 'all the variance' to a reader; it silently became 1 component."""
    (line,) = errors_of({"data": {"normalize": "pca", "pca_components": 1.0}})
    assert line == ("s.yaml: data.pca_components: 1.0 is ambiguous: write 1 for one component, "
                        "or a variance fraction below 1 (e.g. 0.99)")
    parsed = specs.parse_yaml("data: {normalize: pca, pca_components: 1e0}\n", "s.yaml")
    assert errors_of(parsed)[0].startswith("s.yaml: data.pca_components: 1.0 is ambiguous")
    assert specs.validate_experiment({"data": {"pca_components": 1}}, "s.yaml").data.pca_components == 1
    assert specs.validate_experiment({"data": {"pca_components": 3.0}}, "s.yaml").data.pca_components == 3


def test_unknown_keys_of_a_distribution_and_of_an_inline_experiment_are_named_in_full(write_spec):
    assert search_errors(write_spec, {"optimizer.lr": {"log_uniform": [0.01, 1], "point": 3}}) == [
        "space.optimizer.lr.point: unknown field; did you mean 'points'?"]
    assert search_errors(write_spec, {"train.batch_size": {"int_uniform": [1, 5], "scal": 2}}) == [
        "space.train.batch_size.scal: unknown field; did you mean 'scale'?"]
    assert search_errors(write_spec, {"model.dropout": {"int_uniform": [0, 5], "scale": 0}}) == [
        "space.model.dropout.scale: must be > 0.0, got 0"]  # said that two values made the same experiment
    path = write_spec({"experiment": {"data": {"dataset": "iris"}, "model": {"hiden": [3]}},
                       "space": {"optimizer.lr": [0.1]}}, "inline.yaml")
    with pytest.raises(SpecError) as info:
        specs.load_search(path)
    assert info.value.problems == [f"{path}: experiment.model.hiden: unknown field; did you mean 'hidden'?"]
    with pytest.raises(SpecError) as info:  # a bad --set value is still the override's
        specs.load_search(write_spec({"experiment": {"data": {"dataset": "iris"}}, "space": {"optimizer.lr": [0.1]}},
                                     "ok.yaml"), [("train.epochs", "abc")])
    assert info.value.problems == ["--set train.epochs: expected a whole number, got str 'abc'"]


def test_fields_the_data_set_does_not_use_are_named_in_warnings(write_spec):
    path = write_spec({"data": {"dataset": "iris", "target": "x", "noise": 0.3, "pca_whiten": True}})
    with pytest.warns(UserWarning) as caught:
        specs.load_experiment(path)
    assert sorted(str(w.message) for w in caught) == [
        f"{path}: data.noise: only the synthetic data sets use it; 'iris' ignores it",
        f"{path}: data.pca_whiten: only used with normalize: pca; zscore ignores it",
        f"{path}: data.target: 'iris' is a built-in data set with its own target; target is ignored"]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every default (a resolved spec.yaml holds them all) is fine
        specs.load_experiment(write_spec(specs.ExperimentSpec().model_dump(mode="json"), "full.yaml"))
        # in a search, the data set is one of the searched values: its noise may be for another one
        specs.load_search(write_spec({"experiment": {"data": {"dataset": "moons", "noise": 0.2}},
                                      "space": {"data.dataset": ["moons", "iris"]}}, "grid.yaml"))


def test_a_nameless_kind_mapping_as_an_override_sets_parameters_of_the_kind_in_the_spec(write_spec):
    """`--set optimizer={lr: 0.5}` on an sgd spec is sgd at 0.5, as --set optimizer.lr=0.5 (not the default adam)."""
    path = write_spec({"data": {"dataset": "iris"}, "optimizer": {"name": "sgd", "lr": 0.01}})
    spec = specs.load_experiment(path, [("optimizer", {"lr": 0.5})])
    assert (spec.optimizer.name, spec.optimizer.lr) == ("sgd", 0.5)
    grid = write_spec({"experiment": {"data": {"dataset": "iris"}, "optimizer": {"name": "sgd"}},
                       "space": {"optimizer": [{"lr": 0.1}, {"lr": 0.01}]}}, "grid.yaml")
    from nnexp.search.space import plan_search

    plan = plan_search(specs.load_search(grid))
    assert sorted((c.spec.optimizer.name, c.spec.optimizer.lr) for c in plan.configs) == [("sgd", 0.01), ("sgd", 0.1)]


def test_an_unused_data_field_given_by_set_is_blamed_on_set(write_spec):
    path = write_spec({"data": {"dataset": "iris"}})
    with pytest.warns(UserWarning, match=r"^--set data.noise: only the synthetic data sets use it"):
        specs.load_experiment(path, [("data.noise", 0.2)])


@pytest.mark.parametrize("key, values, reason", [
    ("seed", [0, 5], "each configuration runs `repeats` seeds"),  # every trial ran seed 0, 1, ... whatever the value
    ("name", ["a", "b"], "each configuration's name is the search's name"),
])
def test_a_space_may_not_vary_the_seed_or_the_name(write_spec, key, values, reason):
    path = write_spec({"experiment": {"data": {"dataset": "iris"}}, "space": {key: values}}, "grid.yaml")
    with pytest.raises(SpecError) as info:
        specs.load_search(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}: space.{key}: cannot be searched: ") and reason in problem


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_or_huge_file_is_refused_after_reading_a_spec_sized_piece(tmp_path):
    """`nnexp validate /dev/zero` read until memory ran out (a MemoryError traceback)."""
    with pytest.raises(SpecError, match=r"^/dev/zero: spec file is larger than 1000 kB"):
        specs.read_yaml(Path("/dev/zero"))
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * 2_000_000)
    with pytest.raises(SpecError, match=r"big.yaml: spec file is larger than"):
        specs.read_yaml(big)


@pytest.mark.parametrize("text, shown", [("1e3: 5", "key '1e3' reads as float"), ("true: 1", "key 'true' reads as bool"),
                                         ("null: 1", "key 'null' reads as null"),
                                         ("data: {dataset: iris, 0x10: 1}", "key '0x10' reads as int")])
def test_a_key_that_reads_as_a_number_is_named_as_written(text, shown):
    """It was `1000.0: Keys should be strings`, the key mangled and no hint to quote it."""
    with pytest.raises(SpecError, match=rf"^t.yaml: line 1, column \d+: {shown}, not a name; quote"):
        specs.parse_yaml(text + "\n", "t.yaml")


def test_a_spec_survives_pickling():
    """Kinds are classes made at import: pickle found them under `abc` and failed (a spec sent to a process)."""
    import pickle

    spec = specs.ExperimentSpec.model_validate({
        "model": {"hidden": [3, 2], "activation": [{"name": "leaky_relu", "slope": 0.2}, "tanh"], "init": "xavier"},
        "optimizer": {"name": "sgd", "momentum": 0.5, "schedule": {"name": "step", "every": 3}}})
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec and again.ignored_fields() == spec.ignored_fields() == [
        "optimizer.momentum: only the momentum and nesterov optimizers use it; sgd ignores it "
        "(SGD with momentum is `name: momentum`)"]
    assert "momentum" not in spec.model_dump()["optimizer"]  # what trains is plain SGD


def test_class_weights_take_text_numbers_and_name_classes_as_the_data_does():
    spec = specs.ExperimentSpec.model_validate({"train": {"class_weight": {"fraud": "3", 1.0: 2, 0.5: " 0.5 "}}})
    assert spec.train.class_weight == {"fraud": 3.0, "1": 2.0, "0.5": 0.5}
    spec = specs.ExperimentSpec.model_validate({"train": {"class_weight": {True: 2}}})  # a true/false column's class
    assert spec.train.class_weight == {"True": 2.0}
    with pytest.raises(ValidationError, match="the weight of class 'fraud' must be a positive number, got \"three\""):
        specs.ExperimentSpec.model_validate({"train": {"class_weight": {"fraud": "three"}}})
    # one class named twice (1 and '1', or 'é' in its two Unicode forms): refused, not the last one kept
    for twice in ({1: 2, "1": 5}, {"élevé": 2, "e\u0301levé": 5}):
        with pytest.raises(ValidationError, match="class '(1|élevé)' is given twice"):
            specs.ExperimentSpec.model_validate({"train": {"class_weight": twice}})
