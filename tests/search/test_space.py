"""Plan expansion: grid order and counts, random sampling reproducible, within bounds, distinct."""

import math

import numpy as np
import pytest

from nnexp.errors import SpecError
from nnexp.search.space import plan_search
from nnexp.spec import load_search

SPACE = {"optimizer.lr": [0.01, 0.1], "model.activation": ["relu", "tanh", "logistic"]}


def test_grid_3x2_keys_sorted_last_key_fastest(planned):
    _, plan = planned(SPACE, repeats=2)
    assert len(plan.configs) == 6 and len(plan) == 12 and plan.grid_size == 6
    assert [c.params for c in plan.configs] == [
        {"model.activation": a, "optimizer.lr": lr} for a in ["relu", "tanh", "logistic"] for lr in [0.01, 0.1]]
    assert [t.seed for t in plan.trials[:2]] == [0, 1] and [t.repeat for t in plan.trials[:2]] == [0, 1]
    assert len({t.key for t in plan.trials}) == 12 and len({t.trial_id for t in plan.trials}) == 12
    assert plan.trials[0].spec.optimizer.name == "sgd" and plan.trials[0].spec.optimizer.lr == 0.01


def test_space_on_a_default_optimizer_keeps_its_name(planned):
    _, plan = planned({"optimizer.lr": [0.5]}, experiment={"data": {"dataset": "iris"}})
    assert plan.trials[0].spec.optimizer.name == "adam" and plan.trials[0].spec.optimizer.lr == 0.5


def test_random_is_reproducible_by_seed_and_within_bounds(search_file):
    space = {"optimizer.lr": {"log_uniform": [1e-4, 1.0]}, "train.l2": {"uniform": [0.0, 0.01]},
             "train.batch_size": {"int_uniform": [8, 64]}}
    path = search_file(space, strategy="random", trials=200, repeats=1)
    first = [c.params for c in plan_search(load_search(path)).configs]
    again = [c.params for c in plan_search(load_search(path)).configs]
    other = [c.params for c in plan_search(load_search(path, [("seed", 1)])).configs]
    assert first == again and first != other and len(first) == 200
    lr = np.array([p["optimizer.lr"] for p in first])
    assert lr.min() >= 1e-4 and lr.max() <= 1.0
    assert all(0 <= p["train.l2"] <= 0.01 and 8 <= p["train.batch_size"] <= 64 for p in first)
    assert all(isinstance(p["train.batch_size"], int) for p in first)
    # log-uniform: about a quarter of the draws in each decade, not 90% in the top one
    decades = np.histogram(np.log10(lr), bins=[-4, -3, -2, -1, 0])[0]
    assert decades.min() > 25, decades


def test_random_over_lists_samples_distinct_grid_points(search_file):
    path = search_file(SPACE, strategy="random", trials=4, repeats=1)
    plan = plan_search(load_search(path))
    params = [tuple(sorted(c.params.items())) for c in plan.configs]
    assert len(params) == 4 == len(set(params)) and plan.grid_size == 6
    with pytest.warns(UserWarning, match=r"^--trials: 50 configurations asked for, but the space has only 6; all 6 are run$"):
        everything = plan_search(load_search(path), trials=50)
    assert len(everything.configs) == 6  # capped at the grid size, no repeats
    with pytest.warns(UserWarning, match=r"trials: 8 configurations asked for, but the space has only 6"):
        plan_search(load_search(search_file(SPACE, strategy="random", trials=8, repeats=1)))
    with pytest.warns(UserWarning, match=r"trials \(the default\): 20 configurations asked for"):  # not in the file
        plan_search(load_search(search_file(SPACE, strategy="random", repeats=1)))


def test_random_trials_option_overrides_spec(search_file):
    path = search_file({"optimizer.lr": {"log_uniform": [1e-3, 1.0]}}, strategy="random", trials=5, repeats=3)
    plan = plan_search(load_search(path), trials=7)
    assert len(plan.configs) == 7 and len(plan) == 21
    assert all(math.isfinite(c.params["optimizer.lr"]) for c in plan.configs)


@pytest.mark.parametrize("space, problem", [
    ({"model.activation": ["relu", {"name": "relu"}], "optimizer.lr": [0.01, 0.1]},
     "space.model.activation: relu and {name: relu} make the same experiment"),
    ({"model.activation": ["sigmoid", "tanh", "logistic"]}, "space.model.activation: sigmoid and logistic make the same experiment"),
    ({"model.hidden": [[8], [8.0]]}, "space.model.hidden: [8] and [8.0] make the same experiment"),
    ({"optimizer": ["momentum", {"name": "momentum"}]},
     "space.optimizer: momentum and {name: momentum} make the same experiment"),
    ({"model.init": [{"name": "gaussian"}, {"name": "gaussian", "std": 0.01}]},
     "space.model.init: {name: gaussian} and {name: gaussian, std: 0.01} make the same experiment"),
    ({"data.drop": [["sepal width (cm)", "petal width (cm)"], ["petal width (cm)", "sepal width (cm)"]]},
     "space.data.drop: [sepal width (cm), petal width (cm)] and [petal width (cm), sepal width (cm)] make the same "
     "experiment"),
    # unnamed classes weigh 1
    ({"train.class_weight": [{"setosa": 3, "versicolor": 1}, {"setosa": 3}]},
     "space.train.class_weight: {setosa: 3, versicolor: 1} and {setosa: 3} make the same experiment"),
    ({"train.class_weight": [None, {"virginica": 1.0}]},
     "space.train.class_weight: null and {virginica: 1.0} make the same experiment"),
    # a parameter of one searched optimizer is dropped on another that lacks it: say why, and what to search
    ({"optimizer.name": ["adam", "momentum"], "optimizer.momentum": [0.5, 0.9]},
     "space.optimizer.momentum: 0.5 and 0.9 make the same experiment with optimizer.name adam, which has no "
     "momentum: search whole choices instead, e.g. optimizer: [{name: adam}, {name: ..., momentum: 0.5}, ...]"),
])
def test_values_that_make_the_same_experiment_are_an_error(space, problem, search_file):
    """Written differently but equal once resolved: each would train the same networks twice under two names."""
    path = search_file(space)
    with pytest.raises(SpecError) as info:
        plan_search(load_search(path))
    assert info.value.problems == [f"{path}: {problem}"]



@pytest.mark.parametrize("space, problem", [
    ({"model.hidden": [[4]], "model": [{"hidden": [8]}]},
     "space.model and space.model.hidden both set model.hidden (model's value {hidden: [8]}); vary it in one of them"),
    ({"model.dropout": [0.1], "model.dropout.hidden": [0.3]},
     "space.model.dropout and space.model.dropout.hidden both set model.dropout.hidden (model.dropout's value 0.1); "
     "vary it in one of them"),
    ({"model": [{"dropout": 0.1}], "model.dropout.hidden": [0.2]},
     "space.model and space.model.dropout.hidden both set model.dropout.hidden (model's value {dropout: 0.1}); "
     "vary it in one of them"),
    ({"optimizer": ["sgd", {"name": "momentum", "lr": 0.5}], "optimizer.lr": [0.1]},
     "space.optimizer and space.optimizer.lr both set optimizer.lr (optimizer's value {lr: 0.5, name: momentum}); "
     "vary it in one of them"),
])
def test_two_dimensions_that_set_the_same_field_are_an_error(space, problem, search_file):
    """The longer path would win, and the table would show the other value, never trained."""
    path = search_file(space)
    with pytest.raises(SpecError) as info:
        load_search(path)
    assert info.value.problems == [f"{path}: {problem}"]


def test_a_kind_and_its_parameter_may_both_be_searched(search_file):
    """`optimizer: [sgd, momentum]` with `optimizer.lr`: names switch the kind, the other key sets its lr."""
    plan = plan_search(load_search(search_file({"optimizer": ["sgd", "momentum"], "optimizer.lr": [0.1, 0.01]})))
    assert sorted((c.spec.optimizer.name, c.spec.optimizer.lr) for c in plan.configs) == [
        ("momentum", 0.01), ("momentum", 0.1), ("sgd", 0.01), ("sgd", 0.1)]


@pytest.mark.parametrize("dimension, problem", [
    ({"uniform": [0.1]}, "uniform: expected [low, high], got [0.1]"),
    ({"log_uniform": 0.1}, "log_uniform: expected [low, high], got 0.1"),
    ({"int_uniform": []}, "int_uniform: expected [low, high], got []"),
    ({"uniform": [0.1, 1], "log_uniform": [0.1, 1]}, "one distribution per entry, got uniform and log_uniform"),
])
def test_a_distribution_without_two_bounds_or_with_two_kinds_says_so(dimension, problem, search_file):
    """Not pydantic's 'space.optimizer.lr[1]: required field is missing'."""
    path = search_file({"optimizer.lr": dimension})
    with pytest.raises(SpecError) as info:
        load_search(path)
    assert info.value.problems == [f"{path}: space.optimizer.lr: {problem}"]


def test_a_searched_data_file_is_found_beside_the_spec_as_the_bases_is(tmp_path, monkeypatch):
    """Relative to the search file's folder, not to wherever the command runs."""
    import yaml

    folder = tmp_path / "specs"
    folder.mkdir()
    for name in ("a.csv", "b.csv"):
        (folder / name).write_text("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(12)))
    path = folder / "ds.yaml"
    path.write_text(yaml.safe_dump({"name": "ds", "experiment": {"data": {"dataset": "a.csv", "target": "y"}},
                                    "space": {"data.dataset": ["a.csv", "b.csv"]}}))
    monkeypatch.chdir(tmp_path)
    plan = plan_search(load_search(path))
    assert sorted(c.spec.data.dataset for c in plan.configs) == [str(folder / "a.csv"), str(folder / "b.csv")]


@pytest.mark.parametrize("dimension", [["momentum", {"name": "momentum"}], {"choice": ["momentum", {"name": "momentum"}]}])
def test_a_random_search_refuses_values_that_make_the_same_experiment_too(dimension, search_file):
    """Sampled configurations rarely coincide, but effects.md would show one choice as two."""
    path = search_file({"optimizer": dimension, "optimizer.lr": {"log_uniform": [1e-3, 0.1]}},
                       strategy="random", trials=4)
    with pytest.raises(SpecError) as info:
        plan_search(load_search(path))
    assert info.value.problems == [f"{path}: space.optimizer: momentum and {{name: momentum}} make the same experiment"]


def test_a_mode_against_the_metric_is_warned_about(search_file):
    path = search_file({"optimizer.lr": [0.1]}, mode="min")
    with pytest.warns(UserWarning, match="mode: min ranks val_accuracy lowest first, its worst first") as caught:
        load_search(path)
    assert [str(w.message).split(": ", 1)[0] for w in caught] == [str(path)]


@pytest.mark.parametrize("permuted_grid", [1_000_000, 4])  # one shuffle; or draws one by one (huge grids)
def test_more_random_trials_extend_the_sample_of_fewer(search_file, monkeypatch, permuted_grid):
    """Raising --trials on a finite space must resume the trials run so far, not replace them
    (3 then 5 trials of a 24-point grid used to share none)."""
    from nnexp.search import space as space_module

    monkeypatch.setattr(space_module, "PERMUTED_GRID", permuted_grid)
    path = search_file({"model.activation": ["relu", "tanh", "logistic", "elu", "gelu", "swish"],
                        "model.init": ["he", "xavier", "lecun", "he_uniform"]}, strategy="random", repeats=1)
    loaded = load_search(path)
    samples = [[c.params for c in plan_search(loaded, "random", n).configs] for n in (3, 5, 24)]
    assert samples[1][:3] == samples[0] and samples[2][:5] == samples[1]
    assert len({str(p) for p in samples[2]}) == 24


def test_a_bad_range_is_one_line_however_many_values_it_gives(search_file):
    """200 samples of a range reaching past dropout's limit are one mistake, not 100 error lines."""
    path = search_file({"model.dropout": {"uniform": [0.5, 1.5]}, "train.batch_size": {"uniform": [1, 10]}},
                       strategy="random", trials=200)
    with pytest.raises(SpecError) as info:
        plan_search(load_search(path))
    problems = info.value.problems
    assert len(problems) == 2, problems
    dropout = next(p for p in problems if "space.model.dropout" in p)
    assert "must be < 1.0" in dropout and dropout.endswith("more values)")
    assert any("space.train.batch_size" in p and "expected a whole number" in p for p in problems)


def test_a_problem_between_fields_is_one_line_for_all_the_configurations_it_hits(search_file):
    """cosine's min_lr 0.01 above 88 sampled learning rates: one line, not 88."""
    experiment = {"data": {"dataset": "iris"}, "optimizer": {"name": "sgd", "schedule": {"name": "cosine", "min_lr": 0.01}}}
    path = search_file({"optimizer.lr": {"log_uniform": [0.0001, 1]}}, experiment=experiment, strategy="random", trials=200)
    with pytest.raises(SpecError) as info:
        plan_search(load_search(path))
    (problem,) = info.value.problems
    assert "optimizer.schedule.min_lr: must be <= lr" in problem and problem.endswith("more configurations)")


def test_bad_values_are_grouped_by_field_and_problem_not_by_value(search_file):
    path = search_file({"train.batch_size": ["a", "b", "c"],
                        "optimizer": [{"name": "adam", "beta1": 1.5}, {"name": "adam", "beta2": 1.5}]})
    with pytest.raises(SpecError) as info:
        plan_search(load_search(path))
    problems = info.value.problems
    assert sum("space.train.batch_size" in p for p in problems) == 1
    assert any("more values" in p for p in problems if "batch_size" in p)
    assert any("beta1" in p for p in problems) and any("beta2" in p for p in problems)


def test_a_searched_data_field_that_a_data_set_ignores_is_named(search_file):
    """noise on iris: its values train the same network; a warning, since moons in the same grid uses it."""
    path = search_file({"data.dataset": ["moons", "iris"], "data.noise": [0.1, 0.3]},
                       experiment={"data": {"dataset": "moons"}})
    with pytest.warns(UserWarning, match=r"space.data.noise: only the synthetic data sets use it; 'iris' ignores it; "
                                         r"its values train the same network there"):
        plan = plan_search(load_search(path))
    assert len(plan.configs) == 4
    section = search_file({"data": [{"dataset": "iris", "noise": 0.1}, {"dataset": "iris", "noise": 0.2}]}, name="sec")
    with pytest.warns(UserWarning, match=r"space.data.noise: only the synthetic data sets use it; 'iris' ignores it"):
        plan_search(load_search(section))


def test_a_val_metric_without_a_validation_split_is_refused(search_file):
    """Its trials would finish ok and rank nowhere (a table of `-`, exit 0); as early stopping is refused."""
    unsplit = {"data": {"dataset": "iris", "val_fraction": 0.0}, "train": {"epochs": 1}}
    path = search_file({"optimizer.lr": [0.1, 0.01]}, experiment=unsplit)
    advice = "set data.val_fraction above 0 or data.cv_folds, or rank by a train_ metric"
    with pytest.raises(SpecError) as info:
        plan_search(load_search(path))
    assert info.value.problems == [f"{path}: metric: val_accuracy needs a validation split; data.val_fraction is 0: "
                                   f"{advice}"]
    path = search_file({"data.val_fraction": [0.0, 0.2], "optimizer.lr": [0.1, 0.01]})
    with pytest.raises(SpecError) as info:
        plan_search(load_search(path))
    assert info.value.problems == [f"{path}: metric: val_accuracy needs a validation split; data.val_fraction is 0 "
                                   f"in 2 of 4 configurations (e.g. data.val_fraction=0.0, optimizer.lr=0.1): {advice}"]
    folds = {**unsplit, "data": {**unsplit["data"], "cv_folds": 3}}
    for fields in ({"metric": "train_loss", "experiment": unsplit}, {"experiment": folds}):
        assert len(plan_search(load_search(search_file({"optimizer.lr": [0.1]}, **fields))).configs) == 1


def test_scaled_values_are_the_numbers_written_not_their_float_products(search_file):
    """{int_uniform: [0, 5], scale: 0.1}: 3 x 0.1 is recorded as 0.3, not 0.30000000000000004."""
    space = {"model.dropout": {"int_uniform": [0, 5], "scale": 0.1}}
    plan = plan_search(load_search(search_file(space, strategy="random", trials=6)))
    assert sorted(c.params["model.dropout"] for c in plan.configs) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
