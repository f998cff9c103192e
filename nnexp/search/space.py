"""Expand a search space into a fixed plan of trials before anything runs.

A plan is a pure function of the search spec: configurations come in a
deterministic order (keys sorted, as scikit-learn's ParameterGrid does), random
samples come from a generator seeded by the search seed only, and every trial
carries its own seed. So results never depend on the worker count or backend.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnexp.errors import SpecError, said_as, warn
from nnexp.search.store import id_text
from nnexp.spec import (
    KIND_FAMILIES,
    ChoiceDist,
    ExperimentSpec,
    IntUniformDist,
    LoadedSearch,
    LogUniformDist,
    UniformDist,
    apply_override,
    experiment_key,
    format_errors,
    is_searched,
    listed_values,
    metric_problem,
    resolve_dataset_path,
    yaml_text,
)
from pydantic import ValidationError

MAX_GRID = 100_000


@dataclass(frozen=True)
class Config:
    """One point of the space: its parameters (dotted paths) and the experiment they make."""

    config_id: str
    params: dict[str, Any]
    spec: ExperimentSpec = field(compare=False, repr=False)


@dataclass(frozen=True)
class Trial:
    """One training run: a configuration with one seed."""

    config_id: str
    params: dict[str, Any]
    seed: int
    repeat: int
    spec: ExperimentSpec = field(compare=False, repr=False)

    @property
    def key(self) -> tuple[str, int]:
        return (self.config_id, self.seed)

    @property
    def trial_id(self) -> str:
        return f"{self.config_id}-s{self.seed}"


@dataclass
class SearchPlan:
    """Every configuration and trial of a search, fixed before the first trial starts."""

    strategy: str
    configs: list[Config]
    trials: list[Trial]
    grid_size: int | None  # size of the full grid when the space is finite

    def __len__(self) -> int:
        return len(self.trials)


def config_id(params: dict[str, Any]) -> str:
    """A stable short hash of a configuration's parameters."""
    return hashlib.sha1(id_text(params).encode()).hexdigest()[:10]


def _plain(value):
    """NumPy scalars to Python ones, so records serialise as JSON."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _scaled(value, scale: float):
    """value x scale, to 12 significant digits: 3 x 0.1 is 0.3 in the tables and the log, not
    0.30000000000000004 (a value a user filtering summary.csv for 0.3 would not find)."""
    if scale == 1.0 or isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return float(f"{_plain(value) * scale:.12g}")


def grid_values(key: str, dim, where: str) -> list:
    """The finite list of values a dimension takes in a grid."""
    if isinstance(dim, list):
        return dim
    if isinstance(dim, ChoiceDist):
        values = dim.choice
    elif isinstance(dim, IntUniformDist):
        lo, hi = dim.int_uniform
        values = list(range(lo, hi + 1)) if dim.points is None else sorted(
            {int(round(v)) for v in np.linspace(lo, hi, dim.points)})
    elif dim.points is None:
        raise SpecError(f"{where}: a grid needs `points` to use a continuous distribution "
                        f"(e.g. {{{_dist_name(dim)}: [...], points: 4}}), or use {said_as('--random', 'strategy=' + repr('random'))}")
    elif isinstance(dim, UniformDist):
        values = [float(v) for v in np.linspace(*dim.uniform, dim.points)]
    else:
        values = [float(v) for v in np.geomspace(*dim.log_uniform, dim.points)]
    return [_scaled(_plain(v), dim.scale) for v in values]


def _dist_name(dim) -> str:
    return next(name for name in ("uniform", "log_uniform", "int_uniform", "choice") if hasattr(dim, name))


def is_finite_space(space: dict) -> bool:
    """True when every dimension is a list or a choice (random search then samples grid points)."""
    return all(isinstance(d, (list, ChoiceDist)) for d in space.values())


def sample_value(dim, rng: np.random.Generator):
    """One draw of a dimension; log-uniform is sampled in log space."""
    if isinstance(dim, list):
        return dim[int(rng.integers(len(dim)))]
    if isinstance(dim, ChoiceDist):
        value = dim.choice[int(rng.integers(len(dim.choice)))]
    elif isinstance(dim, UniformDist):
        value = float(rng.uniform(*dim.uniform))
    elif isinstance(dim, LogUniformDist):
        lo, hi = dim.log_uniform
        value = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    else:
        lo, hi = dim.int_uniform
        value = int(rng.integers(lo, hi + 1))
    return _scaled(value, dim.scale)


def _grid_point(keys: list[str], values: list[list], index: int) -> dict:
    """The index-th point of the grid in row-major order (last key fastest)."""
    point = {}
    for key, options in zip(reversed(keys), reversed(values)):
        index, digit = divmod(index, len(options))
        point[key] = options[digit]
    return {k: point[k] for k in keys}


PERMUTED_GRID = 1_000_000  # finite random spaces up to this many points are sampled from one shuffle


def expand_params(loaded: LoadedSearch, strategy: str | None = None, trials: int | None = None) -> tuple[list[dict], int | None]:
    """The parameter dictionaries of the plan, in plan order, and the grid size if finite."""
    spec = loaded.spec
    strategy = strategy or spec.strategy
    keys = sorted(spec.space)
    finite = is_finite_space(spec.space)
    if strategy == "grid" or finite:
        values = [grid_values(k, spec.space[k], loaded.space_field(k)) for k in keys]
        size = math.prod(len(v) for v in values)
    if strategy == "grid":
        if size > MAX_GRID:
            raise SpecError(f"{loaded.source}: space: the grid has {size} configurations (more than {MAX_GRID}); "
                            f"use {said_as('--random with --trials', 'strategy=' + repr('random') + ' with trials=N')}")
        return [_grid_point(keys, values, i) for i in range(size)], size

    n = trials or spec.trials
    rng = np.random.default_rng(spec.seed)
    # named as given: in the spec, the command line's --trials, or the API's trials= (as its overrides are)
    asked = loaded.field("trials") if not trials else "--trials" if loaded.override == "--set" else "trials"
    if not trials and "trials" not in spec.model_fields_set:
        asked += " (the default)"  # the file does not say it
    if finite:  # distinct grid points without replacement; a larger --trials extends a smaller one's sample
        count = min(n, size)
        if n > size:  # as scikit-learn's ParameterSampler warns
            warn(f"{asked}: {n} configurations asked for, but the space has only {size}; all {size} are run")
        if size <= PERMUTED_GRID:
            return [_grid_point(keys, values, int(i)) for i in rng.permutation(size)[:count]], size
        drawn: dict[tuple, None] = {}  # too many points to shuffle: draw them one by one, skipping repeats
        while len(drawn) < count:
            drawn.setdefault(tuple(int(rng.integers(len(v))) for v in values), None)
        return [{k: v[i] for k, v, i in zip(keys, values, point)} for point in drawn], size
    seen: dict[str, dict] = {}
    attempts = 0
    while len(seen) < n and attempts < 100 * n:
        attempts += 1
        point = {k: sample_value(spec.space[k], rng) for k in keys}
        seen.setdefault(config_id(point), point)
    if len(seen) < n:
        warn(f"{asked}: {n} configurations asked for, but {100 * n} draws found only {len(seen)} distinct ones; "
             f"{len(seen)} are run")
    return list(seen.values()), None


def check_strategy(strategy, trials) -> None:
    """What the spec's validation checks for its own fields, for values given as arguments
    (named as the command line's options, or as the API's arguments)."""
    if strategy not in ("grid", "random"):
        raise SpecError(f"strategy: {strategy!r} is not a search strategy (grid or random)")
    if trials is not None:
        name = said_as("--trials", "trials")
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise SpecError(f"{name}: must be a positive whole number, got {trials!r}")
        if strategy != "random":
            how = said_as("add --random", "pass strategy='random'")
            raise SpecError(f"{name}: only for random search; {how} (or strategy: random in the spec)")


def plan_search(loaded: LoadedSearch, strategy: str | None = None, trials: int | None = None) -> SearchPlan:
    """Expand, validate every configuration against the experiment schema, and assign seeds."""
    strategy = strategy or loaded.spec.strategy
    check_strategy(strategy, trials)
    points, grid_size = expand_params(loaded, strategy, trials)
    configs, problems, made_by, unsplit = [], [], {}, []
    invalid: dict[tuple, list[str]] = {}  # (space key, problem) -> the lines of each value that has it
    for params in points:
        experiment = _experiment(loaded, params)
        cid = config_id(params)
        experiment["name"] = f"{loaded.spec.name}-{cid}"
        try:
            spec = ExperimentSpec.model_validate(experiment)
        except ValidationError as exc:
            for key, line in _attribute(loaded, exc, params):
                invalid.setdefault(key, []).append(line)
            continue
        task = spec.data.known_task
        wrong_metric = metric_problem(loaded.spec.metric, task) if task else None
        if wrong_metric:
            problems.append(f"{loaded.field('metric')}: {wrong_metric.removeprefix('metric: ')}")
        if _lacks_validation(loaded.spec.metric, spec):
            unsplit.append(params)
        twin = made_by.setdefault(experiment_key(spec), params)
        if twin is not params:
            problems.append(_same_experiment(loaded, twin, params, spec))
        configs.append(Config(cid, params, spec))
    if unsplit:
        problems.append(_unsplit_problem(loaded, unsplit, len(configs)))
    if strategy == "random":  # sampled configurations rarely coincide: compare each dimension's values
        problems += _same_values(loaded)
    _warn_ignored_dimensions(loaded, configs)
    # one line per space key and problem: a bad range sampled 200 times is one mistake
    problems = [lines[0] + (f" (and {len(set(lines)) - 1} more {'values' if key[0] else 'configurations'})"
                            if len(set(lines)) > 1 else "")
                for key, lines in invalid.items()] + problems
    if problems:
        raise SpecError(list(dict.fromkeys(problems)))
    base_seed = loaded.base_spec.seed
    trial_list = [
        Trial(c.config_id, c.params, base_seed + r, r, c.spec.model_copy(update={"seed": base_seed + r}))
        for c in configs
        for r in range(loaded.spec.repeats)
    ]
    return SearchPlan(strategy, configs, trial_list, grid_size)


def _lacks_validation(metric: str, spec: ExperimentSpec) -> bool:
    """A val_ metric is never computed without a validation split: its trials would finish
    `ok` and rank nowhere."""
    return metric.startswith("val_") and not spec.data.has_validation


def _unsplit_problem(loaded: LoadedSearch, unsplit: list[dict], n_configs: int) -> str:
    advice = "set data.val_fraction above 0 or data.cv_folds, or rank by a train_ metric"
    where = "" if len(unsplit) == n_configs else (
        f" in {len(unsplit)} of {n_configs} configurations (e.g. "
        f"{', '.join(f'{key}={yaml_text(value)}' for key, value in unsplit[0].items())})")
    return f"{loaded.field('metric')}: {loaded.spec.metric} needs a validation split; data.val_fraction is 0{where}: {advice}"


def _experiment(loaded: LoadedSearch, params: dict) -> dict:
    return trial_experiment(loaded.base, params, Path(loaded.source).parent)


def trial_experiment(base: dict, params: dict, spec_dir: Path) -> dict:
    """The base experiment with these space values set, a data path resolved from the search spec's
    folder `spec_dir` (a searched data.dataset as the base's): how a search builds each trial, and
    how best.yaml builds its winner again."""
    experiment = copy.deepcopy(base)
    for path, value in params.items():
        apply_override(experiment, path, copy.deepcopy(value))
    resolve_dataset_path(experiment, spec_dir)
    return experiment


def _warn_ignored_dimensions(loaded: LoadedSearch, configs: list[Config]) -> None:
    """A searched data field that a configuration's data set ignores (noise on iris) trains the same
    network for each of its values there: say so once per field and reason."""
    lines = dict.fromkeys(line for c in configs for line in c.spec.data.ignored_fields()
                          if is_searched(line.split(":", 1)[0], loaded.spec.space))
    for line in lines:
        field, reason = line.split(": ", 1)
        warn(f"{loaded.space_field(field)}: {reason}; its values train the same network there")


def _same_experiment(loaded: LoadedSearch, first: dict, second: dict, spec: ExperimentSpec | None = None) -> str:
    """Values written differently that mean the same (relu and {name: relu}, sigmoid and logistic) would train one network twice."""
    differ = [key for key in first if repr(first[key]) != repr(second[key])]
    if len(differ) == 1:
        key = differ[0]
        line = f"{loaded.space_field(key)}: {yaml_text(first[key])} and {yaml_text(second[key])} make the same experiment"
        return line + (_parameter_of_another_kind(key, first, spec) if spec is not None else "")
    return f"{loaded.source}: space: configurations {first} and {second} make the same experiment"


def _parameter_of_another_kind(key: str, params: dict, spec: ExperimentSpec) -> str:
    """Why two values of a kind's parameter can be one experiment: in a configuration whose kind
    (searched alongside) has no such parameter, it is dropped. Say so, and what to search instead."""
    family, _, parameter = key.rpartition(".")
    if family not in KIND_FAMILIES:
        return ""
    kind = spec
    for part in family.split("."):
        kind = getattr(kind, part, None)
    if kind is None or isinstance(kind, list) or parameter in type(kind).model_fields:
        return ""
    where = f" with {family}.name {kind.name}" if f"{family}.name" in params else f" on {kind.name}"
    return (f"{where}, which has no {parameter}: search whole choices instead, e.g. "
            f"{family}: [{{name: {kind.name}}}, {{name: ..., {parameter}: {yaml_text(params[key])}}}, ...]")


def _same_values(loaded: LoadedSearch) -> list[str]:
    """For a random search: two values of one list or choice that make the same experiment on the
    base (relu and {name: relu}) would be two choices in effects.md that are one, and weigh double."""
    problems = []
    for key, dim in sorted(loaded.spec.space.items()):
        made_by: dict[str, Any] = {}
        for value in listed_values(dim):
            try:
                made = experiment_key(ExperimentSpec.model_validate(_experiment(loaded, {key: value})))
            except ValidationError:  # alone on the base it may not validate: the configurations say why
                continue
            first = made_by.setdefault(made, value)
            if first is not value:
                problems.append(_same_experiment(loaded, {key: first}, {key: value}))
    return problems


def _attribute(loaded: LoadedSearch, exc: ValidationError, params: dict) -> list[tuple[tuple, str]]:
    """Name the space entry (and value) behind each validation problem of a configuration, as
    ((space key, problem), line) pairs, so that values with the same problem can be told as one."""
    lines = []
    source = loaded.source
    for line in format_errors(source, exc):
        problem = line.split(": ", 1)[1]
        path = problem.split(": ", 1)[0]
        owner = max((k for k in params if path == k or path.startswith(k + ".") or path.startswith(k + "[")),
                    key=len, default=None)
        if owner is not None:
            rest = problem.split(": ", 1)[1]
            kind = _whatever_value(rest.split(", got ", 1)[0])  # what is wrong, whatever value it is wrong for
            lines.append(((owner, path, kind), f"{loaded.space_field(owner)}: value {params[owner]!r}: {rest}"))
        else:
            lines.append(((None, _whatever_value(problem)), f"{source}: space: configuration {params}: {problem}"))
    return lines


def _whatever_value(problem: str) -> str:
    """A problem without the numbers in it ('must be <= lr (#), got #'), to tell values that share it as one."""
    return re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", problem)
