"""A search plan checked against its data before any trial runs.

Bad data is bad input (exit 2, nothing written), not a search whose every trial
fails: the first configuration's data is prepared here, in the search's own
process, and the search metric and the monitors are checked against its task (a
file's 'auto' task is known only then). Configurations whose data differs can
still fail one by one, recorded as failed trials.
"""

from __future__ import annotations

import warnings

from nnexp.data.datasets import check_path, load_table, spec_named_problems, without_columns
from nnexp.errors import DataError, SpecError, warn
from nnexp.search.trial import prepared_data
from nnexp.spec import class_weight_problem, given_by_override, metric_problem, monitor_problems, positive_class_problem


def check_data(plan, loaded) -> None:
    """Every data file a searched `data.dataset` names exists and can be read, every searched
    `data.drop` names its file's columns, and some configuration's data can be prepared for a
    task the search metric and the monitors suit. The data prepared here is the first trial's
    under `--n-jobs 1` (this process's data cache), and a built-in set's first load fills the
    data-set cache the workers read."""
    from nnexp.train import first_split

    search, source, data_source = loaded.spec, loaded.source, loaded.base_source or loaded.source
    problems = []
    for path in dict.fromkeys(t.spec.data.dataset for t in plan.trials if not t.spec.data.is_builtin):
        try:
            check_path(path)
        except DataError as exc:
            problems += exc.problems
    if problems:
        raise DataError(problems)
    try:
        _check_dropped_columns(plan)
    except DataError as exc:  # the values are the space's: the search file's
        raise DataError(spec_named_problems(exc.problems, source)) from None
    if not plan.trials:
        return
    first, prepared = _first_loadable(plan, data_source)  # the base's settings, unless a searched value broke them
    split = first_split(prepared)
    task = split.task
    wrong_metric = metric_problem(search.metric, task)  # named as given: by the file or by --set metric
    named = [f"{loaded.field('metric')}: {wrong_metric.removeprefix('metric: ')}"] if wrong_metric else []
    problems = monitor_problems(first, task)
    targets = {(t.spec.data.dataset, t.spec.data.target, t.spec.data.task) for t in plan.trials}
    if len(targets) == 1:  # one target for all: class weights or a positive class naming none of its classes are
        # the search's mistake (a searched data.dataset or data.target: a value fits some configurations' data, which
        # fail alone)
        settings = {repr((t.spec.train.class_weight, t.spec.data.positive_class)): t.spec for t in plan.trials}
        searched = [(spec, problem(spec, task, split.class_names, split.source)) for spec in settings.values()
                    for problem in (class_weight_problem, positive_class_problem)]
        by_problem: dict[str, list] = {}
        for spec, problem in searched:
            field = problem.partition(": ")[0] if problem else None
            if field in search.space:  # a searched value's: named as the space's, with the value
                section, name = field.split(".")
                by_problem.setdefault(problem, []).append(getattr(getattr(spec, section), name))
            else:
                problems.append(problem)
        for problem, values in by_problem.items():  # one that every value has (the task's) is said once
            field, _, why = problem.partition(": ")
            named.append(f"{loaded.space_field(field)}: {f'value {values[0]!r}: ' if len(values) == 1 else ''}{why}")
    named += [f"{loaded.override} {problem}" if given_by_override(problem.partition(": ")[0], loaded.base_overrides)
              else f"{source}: {problem}" for problem in dict.fromkeys(problem for problem in problems if problem)]
    if named:
        raise SpecError(list(dict.fromkeys(named)))
    _warn_incomparable_losses(plan, loaded, task)


# data fields that change which rows train (so a regression target's scale) or what is learnt
ROWS_FIELDS = ("dataset", "target", "train_size", "val_fraction", "test_fraction", "cv_folds", "n_samples", "noise")


def _warn_incomparable_losses(plan, loaded, task: str) -> None:
    """A loss ranks configurations only when it is one quantity for all of them: a regression loss
    is half the squared error in units of its training rows' target spread (which changes with the
    training rows), and a classification's cross-entropy is not a regression's error at all."""
    metric = loaded.spec.metric
    if not metric.endswith("_loss"):
        return
    tasks = _tasks(plan, task)
    rows = [f for f in ROWS_FIELDS if len({repr(getattr(c.spec.data, f)) for c in plan.configs}) > 1]
    if len(tasks) > 1:
        warn(f"{loaded.field('metric')}: {metric} ranks configurations of different tasks "
             f"({', '.join(sorted(tasks))}): a cross-entropy and a squared error are not one quantity; compare "
             "each task's configurations apart")
    elif task == "regression" and rows:
        warn(f"{loaded.field('metric')}: {metric} ranks regression configurations whose training rows differ "
             f"({', '.join(f'data.{f}' for f in rows)}): a regression loss is in units of each training set's "
             f"target spread, so it does not compare across them; rank by {metric.split('_')[0]}_rmse (or _mae, "
             "_r2), in the target's own units")


def _tasks(plan, first: str) -> set[str]:
    """The tasks of the plan's configurations: data.task or a built-in's own, else (a file left to
    'auto') as its rows say, read once per file; `first` when there is one data section only."""
    # what decides a task: a search over data.drop or data.normalize of one file reads it once
    sections = {(c.spec.data.dataset, c.spec.data.target, c.spec.data.task): c.spec for c in plan.configs}
    if len(sections) == 1:
        return {first}
    tasks = set()
    for spec in sections.values():
        known = spec.data.known_task
        if known is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the trials report their data warnings themselves
                    known = load_table(spec.data, spec.seed).task
            except DataError:  # that configuration fails alone, saying why
                continue
        tasks.add(known)
    return tasks


def _first_loadable(plan, source: str):
    """(spec, prepared data) of the first configuration whose data can be prepared. A searched
    `data.*` value that breaks its own configuration's data (more PCA components than features)
    fails only that configuration's trials, wherever the plan lists it; when no configuration's
    data can be prepared, the first one's error is the search's."""
    first_error = None
    specs = {}
    for trial in plan.trials:  # the first trial of each data section: the one `--n-jobs 1` runs first
        specs.setdefault(trial.spec.data.model_dump_json(), trial.spec)
    for spec in specs.values():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the trials report their data warnings themselves
                return spec, prepared_data(spec)
        except DataError as exc:
            first_error = first_error or DataError(spec_named_problems(exc.problems, source))
    raise first_error


def _check_dropped_columns(plan) -> None:
    """A misspelt column of a searched `data.drop` is a mistake in the spec, not a configuration
    whose trials all fail. Each data set is read once."""
    searched: dict[tuple, dict[tuple, tuple]] = {}  # data set -> its drop lists -> (a data section, a seed)
    for trial in plan.trials:
        data = trial.spec.data
        searched.setdefault((data.dataset, data.target, data.task), {}).setdefault(tuple(data.drop), (data, trial.seed))
    problems = []
    for lists in searched.values():
        if len(lists) < 2:  # not searched: preparing the first configuration's data checks it
            continue
        data, seed = next(iter(lists.values()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the trials report their data warnings themselves
            table = load_table(data.model_copy(update={"drop": []}), seed)
        for drop in lists:
            try:
                without_columns(table, list(drop))
            except DataError as exc:
                problems += exc.problems
    if problems:
        raise DataError(list(dict.fromkeys(problems)))
