"""Comparative tables and plots of a search, rebuilt from its trials.jsonl alone.

Every number is re-derivable from the log: one row per trial, grouped by
configuration (summary) or by the value of one searched parameter (effects).
Statistics use the ok trials only; failures and divergences are counted
beside them. std is the sample standard deviation (ddof=1), 0 when it is only
rounding noise (identical repeats); ci95 is the half-width of the
t-distribution 95% interval of the mean, so the interval is mean ± ci95.
A configuration is marked `tied_best` when Welch's t-test
cannot tell it from the best one (p > 0.05). Configurations with fewer than
2 ok repeats rank after those with 2 or more. Trials are grouped in a fixed
order (configuration, seed), so the numbers do not depend on the order in
which workers finished.
"""

from __future__ import annotations

import json
import math
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnexp.errors import NnexpError, describe, first_line, said_as, warn
from nnexp.search.store import STATUSES, TrialStore, read_saved_spec

ALPHA = 0.05
METRIC_PREFIXES = ("val_", "test_")
# per-run diagnostics that the chapter's questions compare (vanishing gradients, saturation, speed)
DIAGNOSTICS = ("train_loss", "grad_ratio", "grad_norm_first", "grad_norm_last", "saturated", "dead", "weights_near_zero",
               "copied_units", "epochs_to_target")
MARKDOWN_DIAGNOSTICS = ("grad_ratio", "saturated", "dead", "epochs_to_target")  # the CSV has all of them
# val_/test_ metrics summary.md shows beside the ranking metric (always shown); f1, balanced_accuracy,
# auc, ap, mae and r2 are in the CSV: two columns more each would make the table unreadable
MARKDOWN_METRICS = ("loss", "accuracy", "rmse")
SPARSITY_SHOWN = 0.05  # weights_near_zero joins summary.md when configurations differ in it by more
CURVES = 3  # configurations whose learning curves are plotted
BEST_SPEC = "best.yaml"  # the rank-1 configuration as an experiment spec, for `nnexp run`
TRIALS_TABLE = "trials.csv"  # one row per trial, flat: the records the tables are computed from
EFFECT_LEVELS = 8  # a numeric parameter with more distinct values (a random search's) is shown in ranges
EFFECT_BINS = 5
NO_TRIALS = "no trials finished yet"  # a search interrupted before its first trial: legitimate, not an error
# A std below this fraction of |mean| is rounding noise, not spread: the mean of n identical
# doubles can be off by a few ulps (e.g. three 14/15 give std 1.4e-16). That noise is about
# n x 1e-16 relative; real spreads of a metric are many orders larger, so 1e-12 leaves room
# for thousands of repeats without hiding any real difference.
STD_NOISE = 1e-12


@dataclass
class ReportResult:
    """The tables of a search, and the files they were written to."""

    folder: Path
    metric: str
    mode: str
    params: list[str]
    trials: Any  # pandas DataFrame, one row per trial (latest record of each key)
    summary: Any  # one row per configuration, ranked
    effects: dict[str, Any]  # parameter -> DataFrame, one row per value
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    metric_guessed: bool = False  # no search.yaml said which metric the search ranks by
    name: str = ""  # the search's, from search.yaml (else the folder's)
    planned: int | None = None  # trials its last run planned, from search.yaml
    missing: int = 0  # of those, the ones with no record: it was stopped before it finished (or still runs)
    best_spec: Path | None = None  # best.yaml, when a configuration ranks
    importance: Any = None  # DataFrame: parameter, spread, eta2 (most influential first), then the repeats' share


# --------------------------------------------------------------------------- frames


def param_column(path: str) -> str:
    return f"param_{path}"


def display_value(value) -> Any:
    """Lists and mappings as compact JSON text, so they can be grouped and shown; null as `null`
    (as the spec writes it: pandas would show a missing value, nan); other scalars as they are."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return "null" if value is None else value


def trials_frame(records: list[dict], params: list[str] | None = None):
    """One row per trial: params as `param_<path>` columns, then the record's flat fields."""
    import pandas as pd

    params = params or sorted({p for r in records for p in r.get("params", {})})
    rows = []
    for record in records:
        row = {"trial_id": record["trial_id"], "config_id": record["config_id"], "seed": record["seed"],
               "repeat": record.get("repeat"), "status": record["status"], "error": record.get("error")}
        row.update({param_column(p): display_value(record.get("params", {}).get(p)) for p in params})
        row.update({k: v for k, v in record.items() if k not in row and k not in ("params", "history")})
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in frame.columns:  # None -> NaN in numeric columns
        if column.startswith(METRIC_PREFIXES + ("train_",)) or column in ("epochs_run", "seconds", "best_epoch", *DIAGNOSTICS):
            numbers = pd.to_numeric(frame[column], errors="coerce")
            text = frame.loc[numbers.isna() & frame[column].notna(), ["trial_id", column]]
            if len(text):  # a hand-edited log: say what the statistics leave out
                trial, value = text.iloc[0]
                warn(f"trials.jsonl: {column} of {len(text)} trial(s) is not a number (e.g. {value!r} in "
                     f"{trial}); left out of the statistics")
            frame[column] = numbers
    if len(frame):  # workers append in finishing order: a fixed order makes every sum, so every mean, the same
        frame = frame.sort_values(["config_id", "seed"], kind="stable").reset_index(drop=True)
    return frame


def trials_table(frame) -> str:
    """trials.csv: one row per trial (Optuna's trials_dataframe, GridSearchCV's cv_results_ by
    split), its parameters as columns, the numbers at full precision; a trial's warnings in one cell."""
    table = frame.copy()
    if "warnings" in table:
        table["warnings"] = [" | ".join(w) if isinstance(w, list) else w for w in table["warnings"]]
    return table.to_csv(index=False)


def metric_columns(frame) -> list[str]:
    """The val_, test_ and then train_ metrics present in the trials (without cross-validation
    `_std` columns or timings), then the diagnostics that some trial reported."""
    def present(prefixes):
        return [c for c in frame.columns if c.startswith(prefixes) and not c.endswith(("_std", "_seconds"))
                and frame[c].dtype.kind in "fi"]

    metrics = present(METRIC_PREFIXES) + [c for c in present("train_") if c not in DIAGNOSTICS]
    # epochs_to_target is in the records whenever a target was set: that none got there is a result
    return metrics + [c for c in DIAGNOSTICS
                      if c in frame.columns and (frame[c].notna().any() or c == "epochs_to_target")]


def t_halfwidth(std: float, n: int) -> float:
    """Half-width of the 95% confidence interval of a mean of n values (t-distribution)."""
    from scipy.special import stdtrit  # scipy.special loads in a third of the time of scipy.stats

    if n < 2 or not math.isfinite(std):
        return math.nan
    return float(stdtrit(n - 1, 1 - ALPHA / 2) * std / math.sqrt(n))


def sample_mean(values) -> float:
    """Mean with an exactly rounded sum (math.fsum): the same values give the same mean in any
    order, so two configurations with equal scores tie instead of differing in the last bit."""
    return math.fsum(values) / len(values) if len(values) else math.nan


def sample_std(values) -> float:
    """Sample std (ddof=1), order-independent like sample_mean; NaN below 2 values; 0 when it is
    only rounding noise (below STD_NOISE x |mean|), so identical repeats show `± 0`, not `± 1.36e-16`."""
    if len(values) < 2:
        return math.nan
    mean = sample_mean(values)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return 0.0 if std <= STD_NOISE * abs(mean) else std


def _nanmean(values) -> float:
    """The mean of the numbers among `values` as pandas' Series.mean computes it, to the last bit
    (the missing ones as 0 in the sum, then over the count present; NaN when there are none)."""
    import numpy as np

    missing = np.isnan(values)
    present = len(values) - int(missing.sum())
    return float(np.where(missing, 0.0, values).sum() / present) if present else math.nan


def summarize(frame, metric: str, mode: str, params: list[str]):
    """One row per configuration: params, counts, mean/std/ci95 of each metric over ok trials, rank, tied_best."""
    import pandas as pd

    pcols = [param_column(p) for p in params]
    metrics = metric_columns(frame)
    folded = [m for m in metrics if f"{m}_std" in frame]  # cross-validated: each trial's spread over its folds
    # named up front so that a log without trials (interrupted before the first) gives an empty table
    columns = ["config_id", *pcols, "n_trials", *(f"n_{s}" for s in STATUSES),
               *(f"{stat}_{m}" for m in metrics for stat in ("mean", "std", "ci95")),
               *(f"fold_std_{m}" for m in folded),
               *(["n_reached_target"] if "epochs_to_target" in metrics else []),
               *(["n_still_improving"] if "still_improving" in frame else []), "epochs", "seconds"]
    import numpy as np

    def numbers(columns):  # (trials, columns) floats, NaN where a trial has none
        return frame[columns].to_numpy(dtype=float, na_value=np.nan) if columns else np.empty((len(frame), 0))

    # arrays once, then each configuration's rows by index: pandas per configuration and metric took
    # 4 ms a configuration (a 1000-configuration random search's report: 9 s)
    values, fold_stds = numbers(metrics), numbers([f"{m}_std" for m in folded])
    status = frame["status"].to_numpy()
    params = {c: frame[c].to_numpy(dtype=object) for c in pcols}
    improving = (frame["still_improving"] == True).to_numpy() if "still_improving" in frame else None  # noqa: E712 - None/NaN are not True
    timing = "train_seconds" if "train_seconds" in frame else "seconds"  # training time, not a fresh worker's imports too
    epochs, seconds = (numbers([c])[:, 0] if c in frame else None for c in ("epochs_run", timing))
    rows = []
    for cid, index in frame.groupby("config_id", sort=False).indices.items():
        ok = index[status[index] == "ok"]
        row: dict[str, Any] = {"config_id": cid}
        row.update({c: params[c][index[0]] for c in pcols})
        row.update({"n_trials": len(index), **{f"n_{s}": int((status[index] == s).sum()) for s in STATUSES}})
        for j, m in enumerate(metrics):
            column = values[ok, j]
            column = column[~np.isnan(column)]
            std = sample_std(column)
            row[f"mean_{m}"] = sample_mean(column)
            row[f"std_{m}"] = std
            row[f"ci95_{m}"] = t_halfwidth(std, len(column))
        for j, m in enumerate(folded):  # as GridSearchCV's std_test_score; folds share training rows, so no interval or test uses it
            spread = fold_stds[ok, j][~np.isnan(values[ok, metrics.index(m)])]
            row[f"fold_std_{m}"] = sample_mean(spread[~np.isnan(spread)])
        if "epochs_to_target" in metrics:  # its mean is over the repeats that reached the target only
            row["n_reached_target"] = int((~np.isnan(values[ok, metrics.index("epochs_to_target")])).sum())
        if improving is not None:  # repeats that ended with the loss still falling: more epochs may change the ranking
            row["n_still_improving"] = int(improving[ok].sum())
        row["epochs"] = _nanmean(epochs[ok]) if epochs is not None and len(ok) else math.nan
        row["seconds"] = _nanmean(seconds[ok]) if seconds is not None and len(ok) else math.nan
        rows.append(row)
    summary = pd.DataFrame(rows, columns=columns)
    key = f"mean_{metric}"
    if key not in summary:
        summary[key] = math.nan
    summary["rank"] = _ranks(summary, key, mode)
    summary = summary.sort_values(["rank", "config_id"], na_position="last", kind="stable").reset_index(drop=True)
    summary["rank"] = summary["rank"].astype("Int64")
    summary["tied_best"], summary["p_vs_best"] = _tied_best(frame, summary, metric)
    return summary


def _ranks(summary, key: str, mode: str):
    """Ranks by the metric's mean, in tiers of trust: configurations whose every repeat finished
    ok, then those with 2 or more ok repeats beside failed or diverged ones, then those with
    fewer than 2. One lucky seed, or two lucky seeds of a configuration that diverged with
    the rest, never take rank 1 from one that trained with every seed."""
    import pandas as pd

    def rank(rows):
        return rows[key].rank(method="min", ascending=(mode == "min"), na_option="keep")

    tiers = trust_tiers(summary)
    ranks, ranked = [], 0
    for tier in sorted(tiers.unique()):
        members = summary[tiers == tier]
        ranks.append(rank(members) + ranked)
        ranked += int(members[key].notna().sum())
    return pd.concat(ranks).reindex(summary.index) if ranks else rank(summary)


def trust_tiers(summary):
    """0: every repeat ok (2 or more); 1: 2 or more ok beside failed or diverged ones; 2: fewer than 2 ok."""
    complete = (summary["n_ok"] == summary["n_trials"]) & (summary["n_ok"] >= 2)
    return (~complete).astype(int) + (summary["n_ok"] < 2).astype(int)


def _tied_best(frame, summary, metric: str) -> tuple[list[str], list[float]]:
    """`yes` for the best and every configuration Welch's t-test cannot separate from it (p > 0.05),
    unless the best trained with every seed and it did not."""
    if summary.empty or metric not in frame or summary["rank"].isna().all():  # nothing to compare with
        marks = ["n/a (no ok repeat)" if n == 0 else f"n/a (no {metric})" for n in summary["n_ok"]]
        return marks, [math.nan] * len(summary)
    import numpy as np

    status, metric_values = frame["status"].to_numpy(), frame[metric].to_numpy(dtype=float, na_value=np.nan)
    scores = {}
    for cid, index in frame.groupby("config_id", sort=False).indices.items():
        chosen = metric_values[index[status[index] == "ok"]]
        scores[cid] = chosen[~np.isnan(chosen)]
    best = scores[summary["config_id"].iloc[0]]
    tiers = trust_tiers(summary)
    marks, pvalues = [], []
    for i, cid in enumerate(summary["config_id"]):
        values = scores[cid]
        if i == 0:
            marks.append("yes" if len(best) >= 2 else "n/a (<2 ok repeats)")
            pvalues.append(math.nan)
        elif len(values) == 0:  # ok repeats without the metric: an old log, before splits were checked
            marks.append(f"n/a (no {metric})" if summary["n_ok"].iloc[i] else "n/a (no ok repeat)")
            pvalues.append(math.nan)
        elif len(values) < 2 or len(best) < 2:
            marks.append("n/a (<2 ok repeats)")
            pvalues.append(math.nan)
        else:
            p = welch_p(best, values)
            pvalues.append(p)
            if tiers.iloc[i] > tiers.iloc[0]:  # as good on its ok repeats, perhaps, but it did not train with every seed
                failed = int(summary["n_trials"].iloc[i] - summary["n_ok"].iloc[i])
                marks.append(f"no ({failed} of {summary['n_trials'].iloc[i]} repeats not ok)")
            else:
                marks.append("yes" if p > ALPHA else "no")
    return marks, pvalues


def welch_p(a, b) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances), as scipy.stats.ttest_ind(equal_var=False).

    Written out with the t-distribution of scipy.special, which imports in a third of the time
    of scipy.stats (a report is built at the end of every search). With no spread at all, equal
    means are tied (p=1) and different ones are not (p=0).
    """
    from scipy.special import stdtr

    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return 1.0 if a.mean() == b.mean() else 0.0
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(2.0 * stdtr(df, -abs(t)))


def effects(frame, metric: str, params: list[str], orders: dict[str, list] | None = None) -> dict[str, Any]:
    """Per searched parameter: the metric's mean and std over all ok trials with each value, and failure
    rates; values in the order the space lists them (`orders`), else in their natural order."""
    import pandas as pd

    out = {}
    for p in params:
        column = param_column(p)
        rows = []
        continuous = is_continuous(frame[column])
        groups = list(frame.groupby(value_ranges(frame[column]) if continuous else frame[column], sort=True,
                                    dropna=False))
        if not continuous:  # [16] sorted before [4] as text, and relu before tanh before logistic
            order = (orders or {}).get(p, [])
            groups.sort(key=lambda g: (0, order.index(g[0])) if g[0] in order else (1, natural_key(g[0])))
        for value, group in groups:
            ok = group.loc[group["status"] == "ok", metric].dropna() if metric in group else pd.Series(dtype=float)
            if isinstance(value, tuple):  # a range of a continuous parameter: shown by its extremes
                value = f"{fmt_param(value[1])} – {fmt_param(value[2])}"
            rows.append({
                p: value,
                "n_trials": len(group),
                "n_ok": int((group["status"] == "ok").sum()),
                f"mean_{metric}": sample_mean(ok),
                f"std_{metric}": sample_std(ok),
                "failure_rate": float((group["status"] == "failed").mean()),
                "divergence_rate": float((group["status"] == "diverged").mean()),
            })
        out[p] = pd.DataFrame(rows)
    return out


def importance(frame, metric: str, params: list[str], effect_tables: dict[str, Any]):
    """Which searched parameters move the metric, most first: per parameter the `spread` (highest minus
    lowest mean of its values, as the effects tables show them) and `eta2`, the share of the metric's
    variance over the ok trials that its values explain (one-way ANOVA's effect size: between-value
    sum of squares over the total). A last row, `repeats`, is the share left within configurations,
    where only the seed differs: the noise a ranking has to beat. In a full grid with every trial ok
    the shares add up to 1 with the parameters' interactions."""
    import pandas as pd

    columns = ["parameter", "spread", "eta2"]
    ok = frame[frame["status"] == "ok"] if metric in frame else frame.iloc[0:0]
    y = pd.to_numeric(ok[metric], errors="coerce").dropna().astype(float) if metric in ok else pd.Series(dtype=float)
    ok = ok.loc[y.index]
    mean = sample_mean(y)
    total = math.fsum((v - mean) ** 2 for v in y)
    explainable = len(y) >= 2 and math.sqrt(total / len(y)) > STD_NOISE * abs(mean)

    def share(keys) -> float:
        """Sum of squares within the groups `keys` makes, over the total (order-independent); none
        when the ok trials hold a single group (nothing to compare)."""
        groups = [g for _, g in y.groupby(keys, dropna=False, sort=False)]
        within = math.fsum(math.fsum((v - sample_mean(g)) ** 2 for v in g) for g in groups)
        return within / total if explainable and len(groups) >= 2 else math.nan

    rows = []
    for p in params:
        column = param_column(p)
        keys = (value_ranges(frame[column]) if is_continuous(frame[column]) else frame[column]).loc[y.index]
        effect = effect_tables.get(p)
        means = effect[f"mean_{metric}"].dropna() if effect is not None and f"mean_{metric}" in effect else []
        within = share(keys.map(str))  # str: lists and None group as the tables show them
        rows.append({"parameter": p, "spread": float(means.max() - means.min()) if len(means) >= 2 else math.nan,
                     "eta2": math.nan if math.isnan(within) else min(1.0, max(0.0, 1.0 - within))})
    table = pd.DataFrame(rows, columns=columns).sort_values("eta2", ascending=False, na_position="last", kind="stable")
    repeated = bool(len(ok)) and bool((ok.groupby("config_id").size() >= 2).any())
    noise = {"parameter": "repeats", "spread": math.nan, "eta2": share(ok["config_id"]) if repeated else math.nan}
    return pd.concat([table, pd.DataFrame([noise], columns=columns)], ignore_index=True)


def attributed(shares) -> bool:
    """Whether importance() found any share to report: a parameter beside the repeats' row, and a
    metric that varied over at least two ok trials."""
    return shares is not None and len(shares) > 1 and bool(shares["eta2"].notna().any())


def interaction_share(result: ReportResult) -> float | None:
    """In a full grid with as many ok trials, two or more, in every configuration (a balanced
    design), the part of the metric's variance that neither a parameter alone nor the seeds explain:
    the parameters' interactions, all orders together (1 minus their shares and the repeats'). None
    elsewhere: a random search's or an unbalanced grid's shares overlap and do not add up, one
    repeat leaves seed noise in the rest, and a parameter shown in ranges has the ranges' share."""
    shares, trials, m = result.importance, result.trials, result.metric
    if not attributed(shares) or len(result.params) < 2 or m not in trials:
        return None
    ok = trials[(trials["status"] == "ok") & trials[m].notna()]
    levels = {p: ok[param_column(p)].map(str).nunique() for p in result.params}
    varied = [p for p in result.params if levels[p] > 1]  # a parameter of one value explains nothing, and takes no part
    main = shares.set_index("parameter")["eta2"].reindex(varied)
    noise = shares["eta2"].iloc[-1]
    counts = ok.groupby("config_id").size()
    if (len(varied) < 2 or main.isna().any() or math.isnan(noise)  # one repeat: the rest is seed noise too
            or any(is_continuous(trials[param_column(p)]) for p in varied)  # shown in ranges: shares of the ranges
            or counts.nunique() != 1 or len(counts) != math.prod(levels[p] for p in varied)):
        return None
    return max(0.0, 1.0 - float(main.sum()) - float(noise))


def natural_key(value) -> tuple:
    """Numbers by size, lists (shown as JSON) element by element, then text: [4] < [8] < [8,8] < [16]."""
    if isinstance(value, str) and value[:1] == "[":
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, float)):
        return (1, value) if value == value else (4,)
    if isinstance(value, list):
        return (2, tuple(natural_key(v) for v in value))
    return (3, str(value))


def space_orders(space: dict) -> dict[str, list]:
    """Each listed dimension's values as the search lists them (as trials show them)."""
    orders = {}
    for p, dim in (space if isinstance(space, dict) else {}).items():  # (a hand-edited search.yaml may hold anything)
        values = dim if isinstance(dim, list) else dim.get("choice") if isinstance(dim, dict) else None
        if isinstance(values, list):
            orders[p] = [display_value(v) for v in values]
    return orders


def is_continuous(values) -> bool:
    """A numeric parameter with more distinct values than a table or a box plot can show one by one."""
    present = values.dropna()
    numeric = present.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
    return bool(len(present)) and bool(numeric.all()) and present.nunique() > EFFECT_LEVELS


def value_ranges(values):
    """Each value's range: EFFECT_BINS groups of about as many distinct values each, by rank (so
    log-spaced samples split as evenly as uniform ones), as (group, lowest, highest) keys that sort in order."""
    import pandas as pd

    numbers = pd.to_numeric(values)
    distinct = numbers.drop_duplicates().sort_values().to_numpy()
    group_of = dict(zip(distinct, pd.qcut(range(len(distinct)), EFFECT_BINS, labels=False)))
    groups = numbers.map(group_of)
    low, high = numbers.groupby(groups).transform("min"), numbers.groupby(groups).transform("max")
    return pd.Series(list(zip(groups, low, high)), index=values.index)


# --------------------------------------------------------------------------- files


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.{digits}f}"
    return str(value)


def fmt_epochs(value) -> str:
    """Epochs as a count: `3`, not `3.000`; a fractional mean (over folds or early-stopped
    repeats) keeps one decimal, `12.3`."""
    if _isna(value):
        return "–"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def fmt_param(value) -> str:
    """Searched values, readably: 0.01, 1e+06, relu, [64], gaussian(std=1), normalize=pca, pca_whiten=true."""
    if type(value).__name__ in ("bool", "bool_"):  # numpy's too; as YAML writes them, as inside a mapping
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str) and value.startswith("{"):
        try:
            mapping = json.loads(value)
        except ValueError:
            return value
        return _fmt_mapping(mapping, outer=True)
    return _fmt(value)


def _fmt_mapping(mapping: dict, outer: bool = False) -> str:
    """A kind as name(field=value, ...), its own kinds alike (schedule=step(every=1, factor=0.5), not
    JSON); a section without a name as its fields (in braces inside another)."""
    def inner(v) -> str:
        if isinstance(v, dict):
            return _fmt_mapping(v)
        return json.dumps(v) if isinstance(v, (bool, list)) or v is None else fmt_param(v)

    fields = ", ".join(f"{k}={inner(v)}" for k, v in mapping.items() if k != "name")
    if "name" in mapping:
        return f"{mapping['name']}({fields})"
    return fields if outer else f"{{{fields}}}"


def short_names(params: list[str]) -> dict[str, str]:
    """Column headers: the last part of each dotted path when that is unambiguous."""
    tails = [p.rsplit(".", 1)[-1] for p in params]
    return {p: (t if tails.count(t) == 1 else p) for p, t in zip(params, tails)}


def pm(mean, std, digits: int = 4) -> str:
    """`0.9512 ± 0.0031`, or the mean alone when there is no spread to show. A mean written with
    `digits` decimals has its std written with as many (`0.0027 ± 0.0002`, not `± 0.0002163`),
    unless that would round a real spread to 0 (`0.9512 ± 3e-05`)."""
    if isinstance(std, float) and math.isnan(std):
        return _fmt(mean, digits)
    shown = _fmt(mean, digits)
    fixed = isinstance(mean, float) and "e" not in shown and "." in shown
    if isinstance(std, float) and std == 0:
        return f"{shown} ± 0"  # identical repeats: no spread at all, not a rounded one
    if fixed and isinstance(std, float) and std >= 10 ** -digits:
        return f"{shown} ± {std:.{digits}f}"
    if fixed and isinstance(std, float):
        return f"{shown} ± {std:.1g}"
    if "e" in shown and isinstance(std, float) and math.isfinite(std):
        return f"{shown} ± {std:.2g}"  # a price's error: `2.592e+04 ± 1.5e+03`, not `± 1451.4626`
    return f"{shown} ± {_fmt(std, digits)}"


CURVES_LINK = "\n![learning curves of the first configurations by rank](learning_curves.png)\n"


def summary_markdown(result: ReportResult) -> tuple[str, str]:
    """The summary as a readable markdown table (the CSV keeps every column), in two parts: the
    table, and what follows it (why trials failed or diverged); the learning curves, once drawn,
    go in between."""
    s, m = result.summary, result.metric
    table = []
    # the share of near-zero weights, when configurations differ in it (an L1 penalty searched): what L1 does
    near_zero = s["mean_weights_near_zero"] if "mean_weights_near_zero" in s else None
    shows_sparsity = near_zero is not None and near_zero.max() - near_zero.min() > SPARSITY_SHOWN
    # units that are copies of one another (a symmetric initialisation), when any configuration has them
    shows_copies = "mean_copied_units" in s and bool((s["mean_copied_units"] > 0).any())
    # the ranking metric's own kind on the other splits too (test_auc beside val_auc), whatever it is
    shown = (*MARKDOWN_METRICS, m.split("_", 1)[1]) if m.startswith(METRIC_PREFIXES) else MARKDOWN_METRICS
    others = metric_columns(result.trials)
    for _, row in s.iterrows():
        line = {"rank": _fmt(row["rank"]) if not _isna(row["rank"]) else "–"}
        line.update({p: fmt_param(row[param_column(p)]) for p in result.params})
        line[m] = pm(row.get(f"mean_{m}", math.nan), row.get(f"std_{m}", math.nan))
        line["ci95"] = "–" if _isna(row.get(f"ci95_{m}")) else f"± {_fmt(row[f'ci95_{m}'])}"
        if f"fold_std_{m}" in s:
            line["fold_std"] = "–" if _isna(row[f"fold_std_{m}"]) else _fmt(row[f"fold_std_{m}"])
        for other in others:
            if other == "epochs_to_target":  # how many got there matters as much as how fast
                line[other] = f"{pm(row[f'mean_{other}'], row[f'std_{other}'], 3)} ({row['n_reached_target']}/{row['n_ok']})"
            elif other != m and (other in MARKDOWN_DIAGNOSTICS or other == "train_loss" or (
                    other == "weights_near_zero" and shows_sparsity) or (other == "copied_units" and shows_copies) or (
                    other.startswith(METRIC_PREFIXES) and other.split("_", 1)[1] in shown)):
                line[other] = pm(row[f"mean_{other}"], row[f"std_{other}"])
        if "n_still_improving" in s and s["n_still_improving"].any():
            line["improving"] = f"{row['n_still_improving']}/{row['n_ok']}"
        line.update({"ok": int(row["n_ok"]), "failed": int(row["n_failed"]), "diverged": int(row["n_diverged"]),
                     "epochs": fmt_epochs(row["epochs"]), "seconds": _fmt(row["seconds"], 3),
                     "tied_best": _with_p(row["tied_best"], row.get("p_vs_best", math.nan))})
        table.append(line)
    import pandas as pd

    body = pd.DataFrame(table).to_markdown(index=False) if table else f"({NO_TRIALS})"
    n = len(result.trials)
    unfinished = (f"**Unfinished:** {result.planned - result.missing} of the {result.planned} planned trials have run "
                  "(the search was stopped, or is still running); run the same `nnexp search` command to finish it.\n\n"
                  if result.missing else "")
    head = (f"# {result.name or result.folder.name}: summary\n\n{unfinished}"
            f"{_plural(len(s), 'configuration')}, {_plural(n, 'trial')} ({_counts(result.trials)}); ranked by {m} ({result.mode}"
            f"{'; a guess: no search.yaml says which metric the search ranks by' if result.metric_guessed else ''})."
            + (" How to read it: below the table." if table else "") + "\n\n")
    notes = [
        "each row is a configuration: mean ± std (n-1) of each metric over its ok repeats; ci95 is the half-width "
        "of the 95% t-interval of the mean",
        "rank: configurations that trained with every seed rank first, then those with a failed or diverged "
        "repeat, then those with fewer than 2 ok",
        f"tied_best: Welch's t-test cannot separate it from the best (p > {ALPHA}; the p-value in brackets; repeats "
        "all equal: tied when the means are); a wide spread over few repeats can tie a weak configuration, so "
        "read it with the std",
        "seconds: the mean training time of the ok trials",
    ]
    if "n_still_improving" in s and s["n_still_improving"].any():
        notes.append("improving: the ok repeats whose loss was still falling at the last epoch (not converged: "
                     "more train.epochs may change the ranking)")
    if f"fold_std_{m}" in s:
        notes.append(f"fold_std: the std of {m} over the cross-validation folds of a trial (the mean over its ok "
                     "repeats), as GridSearchCV's std_test_score; the folds share training rows, so neither ci95 "
                     "nor tied_best uses it: repeats do")
    if "n_reached_target" in s:
        notes.append("epochs_to_target: the mean over the ok repeats that reached train.target, (reached/ok)")
    if result.best_spec:
        notes.append("best.yaml: rank 1 as an experiment spec with the seed of its first ok repeat: `nnexp run` "
                     "on it trains that trial again (the same numbers) and keeps the model")
    notes.append("every metric of every configuration, with `p_vs_best`: summary.csv; every trial: trials.csv")
    legend = "\n## How to read it\n\n" + "".join(f"- {note}\n" for note in notes) if table else ""
    tail = legend
    errors, causes = lost_reasons(result.trials)
    if len(errors):
        tail += "\n## Errors of failed trials\n\n" + "".join(f"- {n} x `{text}`\n" for text, n in errors.items())
    if len(causes):
        tail += "\n## Why trials diverged\n\n" + "".join(f"- {n} x {text}\n" for text, n in causes.items())
    return head + body + "\n", tail


def _with_p(mark: str, p) -> str:
    """A tied_best mark with its p-value, as `yes (p 0.31)`: with 2 or 3 repeats nearly everything
    ties, and how close the call was is what a reader needs."""
    if _isna(p) or not isinstance(mark, str):
        return mark
    text = f"{p:.2g}"
    for digits in range(3, 7):  # 0.0496 and 0.0504 are not both `p 0.05`
        if float(text) != ALPHA and (float(text) > ALPHA) == (p > ALPHA):
            break
        text = f"{p:.{digits}g}"
    shown = "p < 0.001" if p < 0.001 else f"p {text}"
    if mark in ("yes", "no"):
        return f"{mark} ({shown})"
    return f"{mark[:-1]}; {shown})" if mark.startswith("no (") and mark.endswith(")") else mark


def lost_reasons(trials):
    """(the errors of failed trials, the causes of diverged ones), each with its count, most first."""
    import pandas as pd

    diverged = trials["status"] == "diverged" if "status" in trials else pd.Series(False, index=trials.index)
    causes = trials.loc[diverged, "diverged_because"] if "diverged_because" in trials else pd.Series(
        index=trials.index[diverged], dtype=object)
    failed = trials.loc[trials["status"] == "failed", "error"] if "error" in trials else pd.Series(dtype=object)
    return failed.dropna().value_counts(), causes.fillna("not recorded (a trial of an older nnexp)").value_counts()


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def effects_markdown(result: ReportResult, plots: list[Path] = ()) -> str:
    """`plots`: the PNGs drawn, shown under their tables (a rendered effects.md, on GitHub say, then
    has each parameter's plot beside its numbers)."""
    m = result.metric
    drawn = {path.name for path in plots}
    parts = [f"# {result.name or result.folder.name}: effects of each searched parameter on {m}\n",
             "Marginal effect: mean ± std of the metric over all ok trials having that value "
             "(averaged over the other parameters), with failure and divergence rates over all its trials.\n"]
    shares = result.importance
    if attributed(shares):
        rows = [{"parameter": r["parameter"] if r["parameter"] != "repeats" else "(repeats: seed noise)",
                 "spread": _fmt(r["spread"]) if not _isna(r["spread"]) else "–",
                 "share of variance": f"{r['eta2']:.1%}" if not _isna(r["eta2"]) else "–"} for _, r in shares.iterrows()]
        interactions = interaction_share(result)
        if interactions is not None:  # what the parameters do together: the rest of a balanced grid's 100%
            rows.insert(-1, {"parameter": "(interactions)", "spread": "–", "share of variance": f"{interactions:.1%}"})
        import pandas as pd

        parts.append(f"## What matters\n\nspread: the highest minus the lowest mean of {m} over a parameter's values "
                     f"(the tables below). share of variance (eta squared): the part of the variance of {m} over the ok "
                     "trials that the parameter's values explain; the repeats' share is what is left within "
                     "configurations, where only the seed differs: the noise any ranking has to beat (the "
                     "configurations share their seeds' splits, so part of it is common to all of them; under "
                     "cross-validation a trial's metric is already its folds' mean). In a full grid with every "
                     "trial ok and at least two repeats the shares add up to 100% with the parameters' interactions "
                     "(their row: what values do together beyond each alone; not for a parameter shown in ranges, "
                     "whose share is its ranges'); otherwise parameters "
                     "that happen to vary together (a random search's, or values lost to failed trials) share "
                     "credit, and the shares can add up to more. Failed and diverged trials are not in these "
                     "figures: see each table's rates.\n\n"
                     + pd.DataFrame(rows).to_markdown(index=False) + "\n")
    elif shares is not None and len(shares) > 1:
        trials = result.trials
        ok = trials.loc[trials["status"] == "ok", m].dropna() if m in trials else []
        if len(ok) >= 2 and ok.nunique() == 1:  # (else too few ok trials: the counts above say so)
            parts.append(f"## What matters\n\nEvery ok trial scored the same {m} ({_fmt(ok.iloc[0])}): nothing the "
                         "search varied moved it, so there is nothing to attribute (a metric the data makes easy to "
                         "saturate, or networks that all learned the same thing).\n")
    for p, frame in result.effects.items():
        rows = [{p: fmt_param(r[p]), m: pm(r[f"mean_{m}"], r[f"std_{m}"]), "ok": f"{int(r['n_ok'])}/{int(r['n_trials'])}",
                 "failure rate": f"{r['failure_rate']:.0%}", "divergence rate": f"{r['divergence_rate']:.0%}"}
                for _, r in frame.iterrows()]
        import pandas as pd

        parts.append(f"## {p}\n\n{pd.DataFrame(rows).to_markdown(index=False) if rows else f'({NO_TRIALS})'}\n")
        if effect_plot_name(p) in drawn:
            parts.append(f"![{m} by {p}]({effect_plot_name(p)})\n")
    if not result.effects:
        parts.append("(the space has no parameters)\n")
    return "\n".join(parts)


def _counts(frame) -> str:
    return ", ".join(f"{int((frame['status'] == s).sum())} {s}" for s in STATUSES) if len(frame) else "none"


def _isna(value) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def effect_plot_name(param: str) -> str:
    return f"effect_{_safe_name(param)}.png"


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def preload() -> threading.Thread:
    """Import the report's libraries (pandas, SciPy's t-distribution, matplotlib: about 2 s of
    CPU) in a background thread. A search whose trials run in worker processes starts this
    as it launches them (its main process only waits from then on), so the tables and
    plots follow the last trial at once instead of after the imports."""

    def load() -> None:
        try:
            import pandas  # noqa: F401
            import scipy.special  # noqa: F401

            import matplotlib.backends.backend_agg  # noqa: F401 - what saving a PNG draws with
            import matplotlib.figure  # noqa: F401
        except Exception:  # noqa: BLE001 - an optimisation only: the report imports them again
            pass

    thread = threading.Thread(target=load, name="nnexp-report-preload", daemon=True)
    thread.start()
    return thread


def write_plots(result: ReportResult, records: list[dict]) -> list[Path]:
    """Per parameter a box + strip plot of the metric by value; learning curves of the best configurations."""
    import numpy as np

    from nnexp.results import new_figure, save_figure

    files = []
    m, trials = result.metric, result.trials
    ok = trials[trials["status"] == "ok"] if m in trials else trials.iloc[0:0]
    rng = np.random.default_rng(0)
    for p, frame in result.effects.items() if m in trials else ():
        column = param_column(p)
        if is_continuous(trials[column]):  # a random search's values: the metric against the value itself
            points = ok[[column, m]].dropna()
            if not len(points):
                continue
            x = points[column].astype(float).to_numpy()
            fig = new_figure(figsize=(5.2, 3.6))
            ax = fig.subplots()
            ax.scatter(x, points[m], s=14, alpha=0.7, color="tab:blue", label="ok")
            _mark_lost_trials(ax, trials, column, m)
            every = trials[column].dropna().astype(float)  # where the lost trials were, too
            lo, hi = float(every.min()), float(every.max())
            if lo > 0 and hi / lo > 20:
                from matplotlib.ticker import NullFormatter

                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # 2x10^-2, 3x10^-2, ... ran into each other
                lo, hi = lo / (hi / lo) ** 0.04, hi * (hi / lo) ** 0.04
            else:
                lo, hi = lo - 0.04 * (hi - lo), hi + 0.04 * (hi - lo)
            if hi > lo:
                ax.set_xlim(lo, hi)
        else:
            values = list(frame[p])
            data = [ok.loc[ok[column] == v, m].dropna().to_numpy() for v in values]
            if not any(len(d) for d in data):
                continue
            labels = [fmt_param(v) for v in values]
            totals = [int((trials[column] == v).sum()) for v in values]
            if any(len(d) < t for d, t in zip(data, totals)):  # a box of the ok trials alone hides the others
                labels = [f"{label}\n{len(d)}/{t} ok" for label, d, t in zip(labels, data, totals)]
            # room for each value's label (about 0.075 in a character), up to a 12 in figure; then slanted
            per_value = max(1.2, 0.075 * max(len(line) for label in labels for line in label.split("\n")))
            fig = new_figure(figsize=(min(12.0, max(4.0, per_value * len(values) + 2)), 3.6))
            ax = fig.subplots()
            ax.boxplot([d if len(d) else [np.nan] for d in data], widths=0.5, showfliers=False)
            for i, d in enumerate(data, start=1):
                ax.scatter(i + rng.uniform(-0.12, 0.12, len(d)), d, s=14, alpha=0.7, color="tab:blue", zorder=3)
            slanted = per_value * len(values) + 2 > 12.0
            ax.set_xticks(range(1, len(values) + 1), labels, rotation=20 if slanted else 0,
                          ha="right" if slanted else "center")
        _log_scale_if_wide(ax, ok[m])
        ax.set_xlabel(p)
        ax.set_ylabel(m)
        shown = len(ok[[column, m]].dropna())
        ax.set_title(f"{m} by {p} (ok trials: {shown} of {len(trials)})" if shown < len(trials) else f"{m} by {p}")
        fig.tight_layout()
        path = result.folder / effect_plot_name(p)
        save_figure(fig, path)
        files.append(path)

    best = [c for c in result.summary["config_id"][: CURVES] if not _isna(c)]
    curves = [r for r in records if r["config_id"] in best and r["status"] == "ok" and r.get("history")]
    if curves:
        keys = [k for k in ("val_loss", m if m != "val_loss" else None) if k and any(k in r["history"] for r in curves)]
        if keys:
            folds = ", first cross-validation fold" if any("fold" in r["history"] for r in curves) else ""
            title = f"learning curves of the first {len(best)} configurations by rank (one line per seed{folds})"
            # wide enough for the title (about 0.085 in a character at size 11) and the legend's longest
            # label (about 0.055 at size 7)
            longest = max(len(_config_label(result, cid)) for cid in best)
            width = max(5.2 * len(keys), 6.5, 0.055 * longest + 0.8, 0.085 * len(title) + 0.5)
            fig = new_figure(figsize=(min(16.0, width), 3.6))
            axes = fig.subplots(1, len(keys), squeeze=False)
            colors = {cid: f"C{i}" for i, cid in enumerate(best)}
            from matplotlib.ticker import MaxNLocator

            for ax, k in zip(axes[0], keys):
                for cid in best:
                    runs = [r["history"][k] for r in curves if r["config_id"] == cid and k in r["history"]]
                    for j, run in enumerate(runs):
                        y = np.array([np.nan if v is None else v for v in run], dtype=float)
                        label = _config_label(result, cid) if j == 0 else None
                        ax.plot(np.arange(1, len(y) + 1), y, color=colors[cid], alpha=0.8, lw=1.2, label=label,
                                marker="o" if len(y) < 2 else None)  # one epoch is a point, which a line does not draw
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are counts
                ax.set_xlabel("epoch")
                ax.set_ylabel(f"{k} (running, training mode)" if k == "train_loss" else k)
            # below the panels, one configuration per line: inside, several parameters' labels hid the curves
            fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", fontsize=7, frameon=False)
            fig.suptitle(title, fontsize=11)
            fig.tight_layout(rect=(0, 0.06 * len(best), 1, 1))
            path = result.folder / "learning_curves.png"
            save_figure(fig, path)
            files.append(path)
    return files


def _mark_lost_trials(ax, trials, column: str, metric: str) -> None:
    """Failed and diverged trials as crosses along the bottom edge, at their values: where a
    learning rate starts to diverge is part of its effect."""
    import numpy as np

    for status, color in (("diverged", "tab:red"), ("failed", "tab:gray")):
        lost = trials.loc[trials["status"] == status, column].dropna()
        if len(lost):
            ax.scatter(lost.astype(float), np.zeros(len(lost)), transform=ax.get_xaxis_transform(), marker="x",
                       s=22, color=color, clip_on=False, label=f"{status} ({len(lost)})", zorder=3)
    if ax.get_legend_handles_labels()[1][1:]:
        ax.legend(fontsize=7, loc="best")


def _log_scale_if_wide(ax, values) -> None:
    """A log axis when positive values span more than three orders of magnitude (losses from 1e-11
    to 30 all sat on the zero line of a linear axis)."""
    values = values.dropna()
    if len(values) and values.min() > 0 and values.max() / values.min() > 1e3:
        ax.set_yscale("log")


def _config_label(result: ReportResult, cid: str) -> str:
    row = result.summary.loc[result.summary["config_id"] == cid].iloc[0]
    return ", ".join(f"{p.split('.')[-1]}={fmt_param(row[param_column(p)])}" for p in result.params) or cid


# --------------------------------------------------------------------------- entry point


def search_settings(folder: Path, records: list[dict], saved: dict, metric: str | None = None,
                    mode: str | None = None) -> tuple[str, str, list[str], bool, dict[str, list]]:
    """(metric, mode, params, guessed, orders): the given metric and mode, else the saved search.yaml's;
    a guess, said in a warning, when that file is missing; and the order of each listed dimension."""
    from nnexp.spec import metric_mode

    search = saved.get("search") or {}
    orders = space_orders(search.get("space"))
    params = sorted(search.get("space") or {}) or sorted({p for r in records for p in r.get("params", {})})
    guessed = metric is None and search.get("metric") is None
    if guessed:
        present = {k for r in records for k in r}
        metric = next((m for m in ("val_accuracy", "val_rmse", "val_loss") if m in present), "val_loss")
        warn(f"{folder / 'search.yaml'}: missing, so the search's metric is unknown; ranked by {metric}, a guess "
             f"(give {said_as('--metric', 'metric=')} to choose)")
    elif metric is None:
        metric, mode = search["metric"], mode or search.get("mode")
    return metric, mode or metric_mode(metric), params, guessed, orders


def report(folder: str | os.PathLike, plots: bool = True, metric: str | None = None,
           mode: str | None = None) -> ReportResult:
    """Rebuild summary.csv, summary.md, effects.md and the plots of a search folder from trials.jsonl,
    ranked by the search's metric, or by `metric` (and `mode`) when given."""
    names = (said_as("--metric", "metric"), said_as("--mode", "mode"))  # how messages call those two
    folder = Path(folder)
    _check_ranking(metric, mode, names)
    store = TrialStore(folder)
    if not folder.is_dir():
        raise NnexpError(f"{folder}: no such folder" if not folder.exists() else f"{folder}: not a folder")
    if not store.path.exists():
        raise NnexpError(f"{folder}: no {store.path.name} here; is it a search results folder?")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = list(store.latest().values())
        if metric is not None:
            _check_metric_recorded(metric, records, folder, names[0])
        saved = read_saved_spec(folder) or {}
        metric, mode, params, guessed, orders = search_settings(folder, records, saved, metric, mode)
        frame = trials_frame(records, params)
    if frame.empty:
        import pandas as pd

        frame = pd.DataFrame(columns=["trial_id", "config_id", "seed", "repeat", "status", "error",
                                      *[param_column(p) for p in params]])
    summary = summarize(frame, metric, mode, params)
    planned, missing = _planned(saved.get("plan"), records)
    tables = effects(frame, metric, params, orders)
    result = ReportResult(folder, metric, mode, params, frame, summary, tables,
                          notes=[str(w.message) for w in caught], metric_guessed=guessed,
                          name=(saved.get("search") or {}).get("name") or folder.name, planned=planned, missing=missing,
                          importance=importance(frame, metric, params, tables))
    from nnexp.results import atomic_write

    best = best_experiment(result, saved, records)
    result.best_spec = folder / BEST_SPEC if best is not None else None
    # whole files or the previous ones: a full disk never leaves a cut-off table
    atomic_write(folder / "summary.csv", summary.to_csv(index=False))
    table_md, after_md = summary_markdown(result)
    atomic_write(folder / "summary.md", table_md + after_md)
    atomic_write(folder / "effects.md", effects_markdown(result))
    atomic_write(folder / TRIALS_TABLE, trials_table(frame))
    result.files = [folder / "summary.csv", folder / "summary.md", folder / "effects.md", folder / TRIALS_TABLE]
    if best is not None:
        atomic_write(folder / BEST_SPEC, best)
        result.files.append(folder / BEST_SPEC)
    else:  # nothing ranks (yet): no stale spec of an earlier winner
        (folder / BEST_SPEC).unlink(missing_ok=True)
    if plots:
        drawn = write_plots(result, records) if len(frame) else []
        result.files += drawn
        _remove_stale_plots(folder, keep=drawn)
        if drawn:  # the tables again, now with the plots they can show
            atomic_write(folder / "effects.md", effects_markdown(result, drawn))
            if folder / "learning_curves.png" in drawn:
                atomic_write(folder / "summary.md", table_md + CURVES_LINK + after_md)
    return result


def best_experiment(result: ReportResult, saved: dict, records: list[dict]) -> str | None:
    """The rank-1 configuration as a whole experiment spec (YAML text), or None when nothing ranks.

    A search keeps no model; GridSearchCV's refit has it train the winner again. Here the spec
    carries the seed of the winner's first ok repeat, so `nnexp run` on it trains that very trial
    again, to the same numbers, and keeps its model for `nnexp predict`. It is built as the search
    built the trial's: the trial's values set on the base as written (search.yaml's trial_base;
    a folder from before it was kept has no best.yaml until the search resumes).
    """
    from pydantic import ValidationError

    from nnexp.search.space import trial_experiment
    from nnexp.spec import ExperimentSpec, dump_yaml

    s, base = result.summary, saved.get("trial_base")
    if not len(s) or _isna(s["rank"].iloc[0]):
        return None
    if not isinstance(base, dict) or not isinstance(base.get("experiment"), dict):
        if saved:
            result.notes.append(f"{result.folder / BEST_SPEC}: not written: this folder's search.yaml predates it; run "
                                "the same `nnexp search` command again (it resumes, nothing is trained again) to write it")
        return None
    row, m = s.iloc[0], result.metric
    ok = sorted((r for r in records if r.get("config_id") == row["config_id"] and r.get("status") == "ok"),
                key=lambda r: (r.get("repeat") if isinstance(r.get("repeat"), int) else math.inf, str(r.get("seed"))))
    if not ok:
        return None
    trial = ok[0]
    try:
        now, then = _spec_dirs(result.folder, base)
        experiment = trial_experiment(base["experiment"], trial["params"], now)
        _follow_a_moved_project(experiment, now, then)
        _relative_within_the_project(experiment, result.folder, now)
        experiment.update(name=f"{result.name}-best", seed=trial["seed"])
        spec = ExperimentSpec.model_validate(experiment)
    except (ValidationError, NnexpError, ValueError, TypeError, KeyError, AttributeError) as exc:
        result.notes.append(f"{result.folder / BEST_SPEC}: not written: search.yaml's trial_base no longer builds "
                            f"the winner's spec ({first_line(exc)})")
        return None
    if not spec.data.is_builtin and not (result.folder / spec.data.dataset).exists():
        result.notes.append(f"{result.folder / BEST_SPEC}: its data file {spec.data.dataset} is not there (seen from "
                            f"{result.folder}): `nnexp run` on it fails until the file is")
    others = int((s["tied_best"] == "yes").sum()) - 1 if "tied_best" in s else 0
    ties = (f"; {others} other configuration{' ties' if others == 1 else 's tie'} with it (tied_best in summary.md)"
            if others > 0 else "")
    return (f"# The best configuration of search '{result.name}' by {m} ({result.mode}): "
            f"{pm(row.get(f'mean_{m}', math.nan), row.get(f'std_{m}', math.nan))} over "
            f"{_plural(int(row['n_ok']), 'ok repeat')}{ties}.\n"
            f"# Its seed is that of trial {trial.get('trial_id')}, so `nnexp run` on this file trains that trial again\n"
            f"# (the same numbers) and keeps the model for `nnexp predict`. `nnexp report` writes this file again.\n"
            f"# `--set data.val_fraction=0{' --set data.cv_folds=0' if spec.data.cv_folds >= 2 else ''}` trains it "
            "on the validation rows too (the same test rows).\n"
            + dump_yaml(spec))


def _spec_dirs(folder: Path, base: dict) -> tuple[Path, Path]:
    """(now, then): the folder of the search spec, seen from the results folder when that still
    exists (the project moved as a whole), else as it was; and as it was when the search ran."""
    then = Path(str(base.get("spec_dir") or "."))
    relative = base.get("spec_dir_from_results")
    if isinstance(relative, str) and (folder / relative).is_dir():
        return (folder / relative).resolve(), then
    return then, then


def _relative_within_the_project(experiment: dict, folder: Path, spec_dir: Path) -> None:
    """A data file inside the project (the folder holding both the search spec and its results) is
    named from best.yaml's own folder, as a spec names it, so that best.yaml still finds it after the
    project moves as a whole; one outside it (a fixed place such as /data) keeps its whole path."""
    data = experiment.get("data")
    dataset = data.get("dataset") if isinstance(data, dict) else None
    if not isinstance(dataset, str) or not os.path.isabs(dataset):
        return
    folder = folder.resolve()
    project = Path(os.path.commonpath([folder, spec_dir.resolve()]))
    if project.parent != project and Path(dataset).resolve().is_relative_to(project):  # not just "/"
        data["dataset"] = os.path.relpath(dataset, folder)


def _follow_a_moved_project(experiment: dict, now: Path, then: Path) -> None:
    """A data path the search saved whole (a base file's, resolved when it was read) that no longer
    exists, where it sits now relative to the moved spec folder, if the file is there."""
    data = experiment.get("data")
    dataset = data.get("dataset") if isinstance(data, dict) else None
    if now == then or not isinstance(dataset, str) or not os.path.isabs(dataset) or os.path.exists(dataset):
        return
    moved = now / os.path.relpath(dataset, then)
    if moved.is_file():
        data["dataset"] = str(moved.resolve())


def _planned(plan, records: list[dict]) -> tuple[int | None, int]:
    """(trials the last run planned, how many of them have no record), from search.yaml's `plan`
    (none in a folder written before it was kept, or one edited by hand)."""
    try:
        keys = {(str(cid), int(seed)) for cid in plan["configs"] for seed in plan["seeds"]}
    except (TypeError, KeyError, ValueError):
        return None, 0
    done = {(str(r.get("config_id")), r.get("seed")) for r in records}
    return len(keys), len(keys - done)


def _check_ranking(metric: str | None, mode: str | None, names: tuple[str, str]) -> None:
    from pydantic import TypeAdapter, ValidationError

    from nnexp.errors import SpecError
    from nnexp.spec import RankingMetric

    if mode is not None and mode not in ("max", "min"):
        raise SpecError(f"{names[1]}: '{mode}' is not allowed (one of max, min)")
    if mode is not None and metric is None:
        raise SpecError(f"{names[1]}: give {names[0]} too (without it the search's own mode applies)")
    if metric is not None and not isinstance(metric, str):
        raise SpecError(f"{names[0]}: expected a metric name such as val_loss, got {describe(metric)}")
    if metric is not None:
        try:
            TypeAdapter(RankingMetric).validate_python(metric)  # as a search's own metric
        except ValidationError as exc:
            raise SpecError(f"{names[0]}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None


def _check_metric_recorded(metric: str, records: list[dict], folder: Path, name: str) -> None:
    """A metric no trial computed (val_rmse of a classifier, val_loss without a validation split)
    would rank nothing: a table of dashes, and the plots removed."""
    from nnexp.errors import SpecError

    if not records or any(isinstance(r.get(metric), (int, float)) for r in records):
        return
    present = sorted({k for r in records for k, v in r.items()
                      if k.startswith(("val_", "train_")) and not k.endswith(("_std", "_seconds"))
                      and isinstance(v, (int, float)) and not isinstance(v, bool)})
    raise SpecError(f"{name}: no trial in {folder} has {metric} (they have {', '.join(present) or 'no metric'})")


TABLES = ("summary.csv", "summary.md", "effects.md", BEST_SPEC, TRIALS_TABLE)


def remove_tables(folder: Path) -> None:
    """`--fresh` moved the log these tables and plots came from aside: until the new log's are
    written (a search killed before then writes none) they would describe trials no longer there."""
    for name in TABLES:
        try:
            (folder / name).unlink(missing_ok=True)
        except OSError:
            pass
    _remove_stale_plots(folder, keep=[])


def _remove_stale_plots(folder: Path, keep: list[Path]) -> None:
    """Plots this report did not draw are from an earlier log (before --fresh, or of a parameter
    no longer searched): they would sit beside tables that contradict them."""
    for path in [*folder.glob("effect_*.png"), folder / "learning_curves.png"]:
        if path not in keep:
            try:
                path.unlink(missing_ok=True)
            except OSError:  # a folder we may not change: the tables are still right
                pass
