"""Report numbers equal an independent pandas computation on the raw trial records."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nnexp.report import report
from nnexp.search.runner import run_search
from nnexp.search.store import TrialStore, save_spec

from .fakes import fake_train, no_data

SPACE = {"model.activation": ["relu", "tanh", "softplus"], "optimizer.lr": [0.01, 0.1, 1e6]}


@pytest.fixture
def searched(planned, tmp_path):
    """A 3x3 grid x 3 repeats with ok, failed and diverged trials (fake training)."""
    loaded, plan = planned(SPACE, repeats=3)
    folder = tmp_path / "out"
    run_search(loaded, plan, folder, n_jobs=1, train_fn=fake_train, data_fn=no_data)
    return folder


def raw(folder):
    records = [json.loads(line) for line in (folder / "trials.jsonl").read_text().splitlines()]
    frame = pd.json_normalize(records, sep="|")
    frame.columns = [c.replace("params|", "") for c in frame.columns]
    return frame


def test_summary_matches_an_independent_groupby(searched):
    result = report(searched, plots=False)
    frame = raw(searched)
    ok = frame[frame["status"] == "ok"]
    expected = ok.groupby("config_id")["val_accuracy"].agg(["mean", "std", "count"])
    summary = pd.read_csv(searched / "summary.csv").set_index("config_id")
    assert len(summary) == 9 and set(summary.index) == set(frame["config_id"])
    for cid, row in expected.iterrows():
        assert summary.loc[cid, "mean_val_accuracy"] == pytest.approx(row["mean"], rel=1e-12)
        assert summary.loc[cid, "std_val_accuracy"] == pytest.approx(row["std"], rel=1e-9)
        half = stats.t.ppf(0.975, row["count"] - 1) * row["std"] / np.sqrt(row["count"])
        assert summary.loc[cid, "ci95_val_accuracy"] == pytest.approx(half, rel=1e-9)
        assert summary.loc[cid, "mean_test_loss"] == pytest.approx(ok[ok.config_id == cid]["test_loss"].mean())
    # every metric of the records has its mean and std, train_ ones included (not timings)
    metrics = [c for c in frame.columns if c.startswith(("train_", "val_", "test_")) and c != "train_seconds"
               and pd.api.types.is_numeric_dtype(frame[c])]
    assert metrics and all(f"{stat}_{m}" in summary.columns for m in metrics for stat in ("mean", "std"))
    assert "mean_train_seconds" not in summary.columns
    counts = frame.groupby(["config_id", "status"]).size().unstack(fill_value=0)
    for status in ("ok", "failed", "diverged"):
        got = summary[f"n_{status}"].reindex(counts.index)
        want = counts[status] if status in counts else 0
        assert (got == want).all(), status
    epochs = ok.groupby("config_id")["epochs_run"].mean()
    assert (summary.loc[epochs.index, "epochs"] == epochs).all()
    # rank follows the mean (max mode); configurations without an ok trial are unranked and last
    ranked = summary.dropna(subset=["rank"]).sort_values("rank")
    assert list(ranked.index) == list(expected["mean"].sort_values(ascending=False).index)
    assert summary["rank"].isna().sum() == 9 - len(expected)
    assert list(result.summary["config_id"][: len(ranked)]) == list(ranked.index)
    assert {"param_model.activation", "param_optimizer.lr"} <= set(summary.columns)


def test_trials_csv_is_the_log_as_a_flat_table_the_summary_comes_from(searched):
    """One row per trial, the parameters as columns, the numbers at full precision: what Optuna's
    trials_dataframe gives (pd.read_json of trials.jsonl rounds floats)."""
    report(searched, plots=False)
    table = pd.read_csv(searched / "trials.csv")
    frame = raw(searched)
    assert len(table) == len(frame) and set(table["trial_id"]) == set(frame["trial_id"])
    assert {"param_model.activation", "param_optimizer.lr", "status", "seed", "val_accuracy"} <= set(table.columns)
    by_id = table.set_index("trial_id")
    records = {json.loads(line)["trial_id"]: json.loads(line) for line in (searched / "trials.jsonl").read_text().splitlines()}
    assert all(by_id.loc[t, "val_accuracy"] == r["val_accuracy"] for t, r in records.items() if r.get("val_accuracy") is not None)
    ok = table[table["status"] == "ok"]
    summary = pd.read_csv(searched / "summary.csv").set_index("config_id")
    means = ok.groupby("config_id")["val_accuracy"].mean()
    assert all(summary.loc[cid, "mean_val_accuracy"] == pytest.approx(mean, rel=1e-12) for cid, mean in means.items())


def test_a_diverged_trial_without_a_recorded_cause_says_so(searched):
    """Logs written before trials recorded why they diverged still count them under a reason."""
    from nnexp.report import lost_reasons

    result = report(searched, plots=False)
    failed, causes = lost_reasons(result.trials)
    diverged = int((result.trials["status"] == "diverged").sum())
    assert diverged and causes.to_dict() == {"not recorded (a trial of an older nnexp)": diverged}
    assert f"- {diverged} x not recorded (a trial of an older nnexp)" in (searched / "summary.md").read_text()
    assert failed.sum() == int((result.trials["status"] == "failed").sum())


def test_effects_match_an_independent_groupby(searched):
    result = report(searched, plots=False)
    frame = raw(searched)
    for param in SPACE:
        table = result.effects[param].set_index(param)
        ok = frame[frame["status"] == "ok"]
        means = ok.groupby(param)["val_accuracy"].mean()
        stds = ok.groupby(param)["val_accuracy"].std()
        for value in means.index:
            assert table.loc[value, "mean_val_accuracy"] == pytest.approx(means[value], rel=1e-12)
            assert table.loc[value, "std_val_accuracy"] == pytest.approx(stds[value], rel=1e-9)
        rates = frame.groupby(param)["status"].value_counts(normalize=True).unstack(fill_value=0)
        for value in rates.index:
            assert table.loc[value, "failure_rate"] == pytest.approx(rates.loc[value].get("failed", 0))
            assert table.loc[value, "divergence_rate"] == pytest.approx(rates.loc[value].get("diverged", 0))
    text = (searched / "effects.md").read_text()
    assert "## model.activation" in text and "## optimizer.lr" in text and "softplus" in text


def write_scores(folder, scores: dict[str, list[float]]):
    folder.mkdir(parents=True, exist_ok=True)
    save_spec(folder, {"search": {"metric": "val_accuracy", "mode": "max", "space": {"x": list(scores)}},
                       "experiment": {}})
    store = TrialStore(folder)
    for name, values in scores.items():
        for seed, value in enumerate(values):
            store.append({"trial_id": f"{name}-s{seed}", "config_id": name, "params": {"x": name}, "seed": seed,
                          "repeat": seed, "status": "ok", "error": None, "val_accuracy": value, "epochs_run": 5,
                          "seconds": 1.0, "history": {"val_loss": [1.0, 0.5], "val_accuracy": [0.5, value]}})


def test_tied_best_marks_overlapping_configurations_only(tmp_path):
    scores = {"best": [0.90, 0.93, 0.87, 0.92], "close": [0.89, 0.86, 0.92, 0.88], "worse": [0.70, 0.71, 0.69, 0.70]}
    write_scores(tmp_path, scores)
    summary = report(tmp_path).summary.set_index("config_id")
    assert summary.loc["best", "rank"] == 1 and summary.loc["close", "rank"] == 2
    assert summary.loc["best", "tied_best"] == "yes" and summary.loc["close", "tied_best"] == "yes"
    assert summary.loc["worse", "tied_best"] == "no"
    p = stats.ttest_ind(scores["best"], scores["close"], equal_var=False).pvalue
    assert summary.loc["close", "p_vs_best"] == pytest.approx(p) and p > 0.05
    assert summary.loc["worse", "p_vs_best"] < 0.05
    assert (tmp_path / "learning_curves.png").exists() and (tmp_path / "effect_x.png").exists()
    # summary.md: each mark with how close the call was (with 2-3 repeats nearly everything ties)
    worse = stats.ttest_ind(scores["best"], scores["worse"], equal_var=False).pvalue
    shown = "p < 0.001" if worse < 0.001 else f"p {worse:.2g}"
    assert markdown_column((tmp_path / "summary.md").read_text(), "tied_best") == ["yes", f"yes (p {p:.2g})",
                                                                                   f"no ({shown})"]


def test_single_repeat_says_so_instead_of_marking(tmp_path):
    write_scores(tmp_path, {"a": [0.9], "b": [0.8]})
    summary = report(tmp_path, plots=False).summary
    assert list(summary["tied_best"]) == ["n/a (<2 ok repeats)"] * 2
    assert summary["std_val_accuracy"].isna().all() and summary["ci95_val_accuracy"].isna().all()


def test_one_lucky_seed_does_not_take_rank_1(tmp_path):
    """1 ok trial of 3 (two diverged) with the highest score ranks after the configurations
    with repeats, which keep their tied_best marks."""
    write_scores(tmp_path, {"steady": [0.95, 0.96, 0.97], "close": [0.94, 0.96, 0.95], "low": [0.6, 0.61, 0.62]})
    store = TrialStore(tmp_path)
    for seed, status in enumerate(("ok", "diverged", "diverged")):
        store.append({"trial_id": f"lucky-s{seed}", "config_id": "lucky", "params": {"x": "lucky"}, "seed": seed,
                      "repeat": seed, "status": status, "error": None,
                      "val_accuracy": 0.99 if status == "ok" else None, "epochs_run": 5, "seconds": 1.0, "history": {}})
    summary = report(tmp_path, plots=False).summary.set_index("config_id")
    assert summary["rank"].to_dict() == {"steady": 1, "close": 2, "low": 3, "lucky": 4}
    assert summary.loc[["steady", "close", "low", "lucky"], "tied_best"].tolist() == ["yes", "yes", "no", "n/a (<2 ok repeats)"]


def test_two_lucky_seeds_of_a_configuration_that_diverged_do_not_take_rank_1(tmp_path):
    """2 ok trials of 6 (four diverged), the highest scores: ranked after every configuration that
    trained with all its seeds, and not marked tied with the best; a search in which every
    configuration lost a repeat ranks them by their means alone."""
    write_scores(tmp_path, {"steady": [0.90, 0.91, 0.92, 0.90, 0.91, 0.92], "low": [0.6, 0.62, 0.61, 0.6, 0.6, 0.6]})
    store = TrialStore(tmp_path)
    for seed in range(6):
        status = "ok" if seed < 2 else "diverged"
        store.append({"trial_id": f"shaky-s{seed}", "config_id": "shaky", "params": {"x": "shaky"}, "seed": seed,
                      "repeat": seed, "status": status, "error": None,
                      "val_accuracy": 0.95 + seed / 100 if status == "ok" else None, "epochs_run": 5, "seconds": 1.0,
                      "history": {}})
    summary = report(tmp_path, plots=False).summary.set_index("config_id")
    assert summary["rank"].to_dict() == {"steady": 1, "low": 2, "shaky": 3}
    assert summary["tied_best"].to_dict() == {"steady": "yes", "low": "no", "shaky": "no (4 of 6 repeats not ok)"}
    assert summary.loc["shaky", "p_vs_best"] < 0.05  # better on the repeats it finished: the mark says why it is not best
    for seed in (4, 5):  # now every configuration lost two repeats: no tier of trust is above another
        for name in ("steady", "low"):
            store.append({"trial_id": f"{name}-s{seed}", "config_id": name, "params": {"x": name}, "seed": seed,
                          "repeat": seed, "status": "diverged", "error": None, "val_accuracy": None,
                          "epochs_run": 5, "seconds": 1.0, "history": {}})
    summary = report(tmp_path, plots=False).summary.set_index("config_id")
    assert summary["rank"].to_dict() == {"shaky": 1, "steady": 2, "low": 3}
    assert summary.loc["steady", "tied_best"] == "no"


def test_a_configuration_without_an_ok_repeat_is_not_marked(tmp_path):
    write_scores(tmp_path, {"a": [0.9, 0.91], "b": [0.8, 0.82]})
    TrialStore(tmp_path).append({"trial_id": "dead-s0", "config_id": "dead", "params": {"x": "dead"}, "seed": 0,
                                 "repeat": 0, "status": "failed", "error": "boom", "history": {}})
    summary = report(tmp_path, plots=False).summary.set_index("config_id")
    assert summary.loc["dead", "tied_best"] == "n/a (no ok repeat)" and summary.loc["b", "tied_best"] == "no"


def test_the_tables_do_not_depend_on_the_order_of_the_log(tmp_path):
    """Workers append in finishing order; sums in another order differ in the last bit, which
    could swap two configurations of equal scores (0.9666666666666668 vs ...67)."""
    scores = {"a": [28 / 30, 29 / 30, 30 / 30], "b": [30 / 30, 29 / 30, 28 / 30]}
    write_scores(tmp_path / "forward", scores)
    write_scores(tmp_path / "backward", scores)
    log = (tmp_path / "backward" / "trials.jsonl").read_text().splitlines()
    (tmp_path / "backward" / "trials.jsonl").write_text("\n".join(reversed(log)) + "\n")
    forward = report(tmp_path / "forward", plots=False).summary
    backward = report(tmp_path / "backward", plots=False).summary
    pd.testing.assert_frame_equal(forward, backward)
    assert list(forward["rank"]) == [1, 1]
    assert (tmp_path / "forward" / "summary.csv").read_bytes() == (tmp_path / "backward" / "summary.csv").read_bytes()


def test_report_of_a_folder_without_trials_is_a_user_error(tmp_path):
    from nnexp.errors import NnexpError

    with pytest.raises(NnexpError, match="no trials.jsonl"):
        report(tmp_path)


def test_report_of_a_missing_folder_says_so(tmp_path):
    from nnexp.errors import NnexpError

    with pytest.raises(NnexpError, match="nothere: no such folder"):
        report(tmp_path / "nothere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NnexpError, match="file: not a folder"):
        report(tmp_path / "file")


def test_report_of_a_search_interrupted_before_its_first_trial(tmp_path):
    """An empty trials.jsonl is a legitimate folder: tables without rows that say so, no plots."""
    write_scores(tmp_path, {})
    TrialStore(tmp_path).create()
    result = report(tmp_path)
    assert result.summary.empty and [f.name for f in result.files] == ["summary.csv", "summary.md", "effects.md", "trials.csv"]
    assert "How to read it" not in (tmp_path / "summary.md").read_text()  # no table, nothing to read below it
    assert not list(tmp_path.glob("*.png"))
    columns = pd.read_csv(tmp_path / "summary.csv").columns
    assert {"config_id", "param_x", "n_ok", "mean_val_accuracy", "rank", "tied_best"} <= set(columns)
    assert "(no trials finished yet)" in (tmp_path / "summary.md").read_text()
    assert "## x\n\n(no trials finished yet)" in (tmp_path / "effects.md").read_text()


def test_plots_of_an_earlier_log_do_not_outlive_it(tmp_path):
    """After --fresh (or a parameter dropped from the space) the old PNGs would contradict the tables."""
    write_scores(tmp_path, {"a": [0.9, 0.8], "b": [0.7, 0.75]})
    assert report(tmp_path).files and (tmp_path / "learning_curves.png").exists()
    (tmp_path / "effect_gone.png").write_bytes(b"old")  # a parameter the space no longer has
    report(tmp_path)
    assert not (tmp_path / "effect_gone.png").exists() and (tmp_path / "effect_x.png").exists()
    # the markdown shows the plots drawn beside their tables, and none that were not drawn
    assert "\n![val_accuracy by x](effect_x.png)\n" in (tmp_path / "effects.md").read_text()
    assert "(learning_curves.png)" in (tmp_path / "summary.md").read_text()
    report(tmp_path, plots=False)
    assert ".png)" not in (tmp_path / "effects.md").read_text() + (tmp_path / "summary.md").read_text()
    TrialStore(tmp_path).move_aside()  # what --fresh does; then the search is stopped before any trial
    TrialStore(tmp_path).create()
    report(tmp_path)
    assert not list(tmp_path.glob("*.png"))
    assert list(tmp_path.glob("trials-*.jsonl.old"))  # the old log, not its plots, is what is kept


def markdown_column(text: str, name: str) -> list[str]:
    """The cells of one column of the first markdown table in `text`."""
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]
    index = rows[0].index(name)
    return [row[index] for row in rows[2:]]


def test_identical_repeats_show_zero_spread_not_rounding_noise(tmp_path):
    """The mean of three 14/15 is off by an ulp, so the raw std is 1.4e-16: that is noise, shown as 0;
    a real spread, however small, is kept."""
    scores = {"same": [14 / 15] * 3, "tiny": [0.9, 0.9 + 3e-9, 0.9 - 3e-9]}
    assert pd.Series(scores["same"]).std() > 0  # the noise this is about
    write_scores(tmp_path, scores)
    result = report(tmp_path, plots=False)
    summary = result.summary.set_index("config_id")
    assert summary.loc["same", "std_val_accuracy"] == 0.0 and summary.loc["same", "ci95_val_accuracy"] == 0.0
    assert summary.loc["tiny", "std_val_accuracy"] == pytest.approx(3e-9, rel=1e-6)
    assert result.effects["x"].set_index("x").loc["same", "std_val_accuracy"] == 0.0
    text = (tmp_path / "summary.md").read_text()
    assert markdown_column(text, "val_accuracy")[0] == "0.9333 ± 0" and markdown_column(text, "ci95")[0] == "± 0"
    assert "e-1" not in text


def test_summary_shows_epochs_as_counts(tmp_path):
    """Whole epochs as integers (`5`, not `5.000`), a fractional mean with one decimal, none as –."""
    write_scores(tmp_path, {"whole": [0.9, 0.91]})
    store = TrialStore(tmp_path)
    for seed, epochs in enumerate([4, 5]):
        store.append({"trial_id": f"half-s{seed}", "config_id": "half", "params": {"x": "half"}, "seed": seed,
                      "status": "ok", "val_accuracy": 0.8, "epochs_run": epochs})
    store.append({"trial_id": "broken-s0", "config_id": "broken", "params": {"x": "broken"}, "seed": 0,
                  "status": "failed", "error": "ValueError: boom"})
    report(tmp_path, plots=False)
    assert markdown_column((tmp_path / "summary.md").read_text(), "epochs") == ["5", "4.5", "–"]


def test_epochs_to_target_says_how_many_repeats_reached_the_target(tmp_path):
    """Its mean is over the repeats that reached the target; `7 ± 0` alone read as if all three had."""
    folder = tmp_path
    write_scores(folder, {})
    store = TrialStore(folder)
    for name, reached in {"some": [7, None, 7], "all": [9, 8, 10], "none": [None, None, None]}.items():
        for seed, epoch in enumerate(reached):
            store.append({"trial_id": f"{name}-s{seed}", "config_id": name, "params": {"x": name}, "seed": seed,
                          "status": "ok", "val_accuracy": 0.9, "epochs_run": 10, "epochs_to_target": epoch})
    result = report(folder, plots=False)
    summary = result.summary.set_index("config_id")
    assert summary["n_reached_target"].to_dict() == {"some": 2, "all": 3, "none": 0}
    assert summary.loc["some", "mean_epochs_to_target"] == 7 and summary.loc["all", "mean_epochs_to_target"] == 9
    column = dict(zip(markdown_column((folder / "summary.md").read_text(), "x"),
                      markdown_column((folder / "summary.md").read_text(), "epochs_to_target")))
    assert column == {"some": "7.000 ± 0 (2/3)", "all": "9.000 ± 1.000 (3/3)", "none": "– (0/3)"}


def test_a_target_no_repeat_reached_is_still_shown(tmp_path):
    """All-null epochs_to_target is a result (none got there), not a column to drop."""
    write_scores(tmp_path, {})
    store = TrialStore(tmp_path)
    for seed in range(2):
        store.append({"trial_id": f"slow-s{seed}", "config_id": "slow", "params": {"x": "slow"}, "seed": seed,
                      "status": "ok", "val_accuracy": 0.5, "epochs_run": 2, "epochs_to_target": None})
    result = report(tmp_path, plots=False)
    assert result.summary.set_index("config_id").loc["slow", "n_reached_target"] == 0
    assert markdown_column((tmp_path / "summary.md").read_text(), "epochs_to_target") == ["– (0/2)"]


def test_a_continuous_parameter_is_shown_in_ranges(tmp_path):
    """A random search's 12 learning rates are 5 ranges of about equal size by rank in effects.md
    (not 12 rows of 2 trials), each with the mean of exactly its trials, and a scatter plot."""
    folder = tmp_path
    save_spec(folder, {"search": {"metric": "val_accuracy", "mode": "max", "space": {"lr": {"log_uniform": [1e-4, 1]}}},
                       "experiment": {}})
    store = TrialStore(folder)
    rates = [10 ** (-4 + 4 * k / 11) for k in range(12)]
    for k, lr in enumerate(rates):
        for seed in range(2):
            store.append({"trial_id": f"c{k}-s{seed}", "config_id": f"c{k}", "params": {"lr": lr}, "seed": seed,
                          "status": "ok", "val_accuracy": 0.5 + k / 100 + seed / 1000, "epochs_run": 5,
                          "history": {"val_accuracy": [0.5, 0.6]}})
    result = report(folder)
    effect = result.effects["lr"]
    assert len(effect) == 5 and effect["n_trials"].sum() == 24 and set(effect["n_trials"]) <= {4, 6}
    groups = pd.qcut(pd.Series(range(12)), 5, labels=False)  # the ranks of the 12 rates
    expected = [np.mean([0.5 + k / 100 + s / 1000 for k in range(12) if groups[k] == g for s in range(2)])
                for g in range(5)]
    assert np.allclose(effect["mean_val_accuracy"], expected)
    lows = [rates[min(k for k in range(12) if groups[k] == g)] for g in range(5)]
    assert [row.split(" – ")[0] for row in effect["lr"]] == [f"{v:.6g}" for v in lows]
    assert (folder / "effect_lr.png").exists()


def test_fmt_epochs():
    from nnexp.report import fmt_epochs

    assert [fmt_epochs(v) for v in (1.0, 3, 2.5, 40 / 3, float("nan"))] == ["1", "3", "2.5", "13.3", "–"]


def test_welch_p_matches_scipy():
    from scipy import stats

    from nnexp.report import welch_p

    rng = np.random.default_rng(3)
    for n_a, n_b in [(2, 2), (3, 5), (10, 4), (30, 30)]:
        a, b = rng.normal(0.9, 0.02, n_a), rng.normal(0.88, 0.05, n_b)
        assert welch_p(a, b) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
    same = np.array([0.5, 0.5, 0.5])
    assert welch_p(same, same.copy()) == 1.0 and welch_p(same, same + 0.1) == 0.0


def test_preload_imports_the_report_libraries_in_the_background():
    import subprocess
    import sys

    script = ("import sys\n"
              "from nnexp.report import preload\n"
              "assert 'pandas' not in sys.modules\n"
              "thread = preload()\n"
              "assert thread.daemon\n"
              "thread.join(120)\n"
              "print(all(m in sys.modules for m in ('pandas', 'scipy.special', 'matplotlib.figure',"
              " 'matplotlib.backends.backend_agg')), 'matplotlib.pyplot' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]


def test_a_searched_null_reads_null_not_nan(tmp_path):
    """`train.early_stopping: [null, {patience: 3}]`: the tables showed the null value as nan."""
    save_spec(tmp_path, {"search": {"metric": "val_accuracy", "mode": "max", "space": {"train.early_stopping": [
        None, {"patience": 3}]}}, "experiment": {}})
    store = TrialStore(tmp_path)
    for cid, value in (("off", None), ("on", {"patience": 3})):
        for seed in range(2):
            store.append({"trial_id": f"{cid}-s{seed}", "config_id": cid, "params": {"train.early_stopping": value},
                          "seed": seed, "repeat": seed, "status": "ok", "error": None, "val_accuracy": 0.9 + seed / 100,
                          "epochs_run": 5, "seconds": 1.0, "history": {}})
    result = report(tmp_path, plots=False)
    assert set(result.summary["param_train.early_stopping"]) == {"null", '{"patience":3}'}
    assert "| null " in (tmp_path / "summary.md").read_text() and "| null " in (tmp_path / "effects.md").read_text()
    assert "nan" not in (tmp_path / "summary.md").read_text() + (tmp_path / "effects.md").read_text()


def test_a_hand_edited_metric_that_is_not_a_number_is_reported(tmp_path):
    write_scores(tmp_path, {"a": [0.9, 0.8], "b": [0.7, 0.75]})
    lines = (tmp_path / "trials.jsonl").read_text().splitlines()
    lines[0] = lines[0].replace('"val_accuracy":0.9,', '"val_accuracy":"high",')
    (tmp_path / "trials.jsonl").write_text("\n".join(lines) + "\n")
    result = report(tmp_path, plots=False)
    assert [note for note in result.notes if "best.yaml" not in note] == [
        "trials.jsonl: val_accuracy of 1 trial(s) is not a number (e.g. 'high' in a-s0); left out of the statistics"]
    assert result.summary.set_index("config_id").loc["a", "mean_val_accuracy"] == 0.8


def test_a_metric_spanning_orders_of_magnitude_is_plotted_on_a_log_axis():
    from nnexp.report import _log_scale_if_wide
    from nnexp.results import new_figure

    wide, narrow = new_figure().subplots(), new_figure().subplots()
    _log_scale_if_wide(wide, pd.Series([1e-11, 0.5, 30.0]))
    _log_scale_if_wide(narrow, pd.Series([0.2, 0.5, 0.9]))
    assert wide.get_yscale() == "log" and narrow.get_yscale() == "linear"


def test_mean_and_std_are_written_alike_and_booleans_as_in_yaml():
    """`0.0027 ± 0.0002163` mixed two styles in one cell; `True` beside `pca_whiten=true` two spellings."""
    import numpy as np

    from nnexp.report import fmt_param, pm

    assert pm(0.0027, 0.0002163) == "0.0027 ± 0.0002" and pm(0.9512, 0.0031) == "0.9512 ± 0.0031"
    assert pm(0.9512, 3e-05) == "0.9512 ± 3e-05"  # a real spread is not rounded away
    assert pm(4.8e-10, 1.7e-10) == "4.8e-10 ± 1.7e-10" and pm(0.5, 0.0) == "0.5000 ± 0"
    assert pm(25920.3, 1451.4626) == "2.592e+04 ± 1.5e+03"  # a price's error in one notation, not `± 1451.4626`
    assert [fmt_param(v) for v in (True, np.bool_(False), 0.01)] == ["true", "false", "0.01"]


def test_effects_keep_the_spaces_order_else_a_natural_one():
    """Values were sorted as text: hidden [16] before [4], and relu before tanh before the chapter's logistic."""
    from nnexp.report import effects, natural_key, space_orders, trials_frame

    hidden = [[4], [8], [16], [8, 8]]
    records = [{"trial_id": f"{i}-s0", "config_id": str(i), "params": {"model.hidden": h, "model.activation": a},
                "seed": 0, "status": "ok", "val_loss": 0.5}
               for i, (h, a) in enumerate(zip(hidden, ["tanh", "relu", "logistic", "tanh"]))]
    frame = trials_frame(records, ["model.activation", "model.hidden"])
    natural = effects(frame, "val_loss", ["model.activation", "model.hidden"])
    assert natural["model.hidden"]["model.hidden"].tolist() == ["[4]", "[8]", "[8,8]", "[16]"]
    assert natural["model.activation"]["model.activation"].tolist() == ["logistic", "relu", "tanh"]
    orders = space_orders({"model.activation": {"choice": ["logistic", "tanh", "relu"]}, "model.hidden": hidden})
    listed = effects(frame, "val_loss", ["model.activation", "model.hidden"], orders)
    assert listed["model.activation"]["model.activation"].tolist() == ["logistic", "tanh", "relu"]
    assert listed["model.hidden"]["model.hidden"].tolist() == ["[4]", "[8]", "[16]", "[8,8]"]
    assert sorted([True, 0.5, "b", "[2]", 3], key=natural_key) == [True, 0.5, 3, "[2]", "b"]


def test_a_one_epoch_curve_is_drawn_as_a_point():
    import nnexp.results

    fig = nnexp.results.plot_learning_curves([{"epoch": 1, "train_loss": 1.4, "val_loss": 1.3, "val_accuracy": 0.4}],
                                             "classification")
    lines = [line for ax in fig.axes for line in ax.get_lines()]
    assert len(lines) == 3 and all(line.get_marker() == "o" for line in lines)


def test_a_penalised_training_curve_says_it_holds_the_penalty():
    """With L1/L2 the training objective sits above the validation loss by the penalty alone."""
    import nnexp.results

    history = [{"epoch": e, "train_loss": 1.0, "val_loss": 0.6, "val_accuracy": 0.8} for e in (1, 2)]
    for penalized, label in ((False, "train (running, training mode)"),
                             (True, "train (running, training mode, + L1/L2 penalty)")):
        fig = nnexp.results.plot_learning_curves(history, "classification", penalized)
        assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [label, "validation"]


def test_tables_of_an_unfinished_search_say_so(searched):
    """Rebuilt after an interrupted run, the tables read like a small finished search."""
    from typer.testing import CliRunner

    from nnexp.cli import app

    finished = report(searched, plots=False)
    assert (finished.planned, finished.missing, finished.name) == (27, 0, "grid")
    assert "Unfinished" not in (searched / "summary.md").read_text()
    lines = (searched / "trials.jsonl").read_text().splitlines(keepends=True)
    (searched / "trials.jsonl").write_text("".join(lines[:20]))  # as a run stopped after 20 trials leaves it
    unfinished = report(searched, plots=False)
    assert unfinished.missing == 7
    assert ("**Unfinished:** 20 of the 27 planned trials have run (the search was stopped, or is still running); "
            "run the same `nnexp search` command to finish it.") in (searched / "summary.md").read_text()
    rebuilt = CliRunner().invoke(app, ["report", str(searched), "-q"])
    assert rebuilt.exit_code == 0 and rebuilt.stderr == (
        "note: 20 of the 27 planned trials have run: the search was stopped (or still runs); run the same "
        "`nnexp search` command to finish it\n")
    # a later run with fewer repeats and a new value, stopped at once: the log holds more records than that
    # run planned, and the tables read as finished when they were only counted
    import yaml

    saved = yaml.safe_load((searched / "search.yaml").read_text())
    saved["plan"] = {"trials": 3, "seeds": [0], "configs": [*saved["plan"]["configs"][:2], "feedfacecaf"]}
    (searched / "search.yaml").write_text(yaml.safe_dump(saved))
    assert (report(searched, plots=False).planned, report(searched, plots=False).missing) == (3, 1)
    saved.pop("plan")  # a folder from before the plan was kept: nothing to say
    (searched / "search.yaml").write_text(yaml.safe_dump(saved))
    assert report(searched, plots=False).missing == 0


def test_a_cross_validated_search_shows_the_spread_over_folds(planned, tmp_path):
    """With one repeat a CV search showed no spread at all; GridSearchCV users read std_test_score."""
    loaded, plan = planned({"optimizer.lr": [0.1, 0.01]}, repeats=2,
                           experiment={"data": {"dataset": "iris", "cv_folds": 3}, "train": {"epochs": 2}})
    run_search(loaded, plan, tmp_path / "cv", n_jobs=1)
    result = report(tmp_path / "cv", plots=False)
    frame = raw(tmp_path / "cv")
    expected = frame.groupby("config_id")["val_loss_std"].mean()
    summary = result.summary.set_index("config_id")
    assert np.allclose(summary.loc[expected.index, "fold_std_val_loss"], expected.to_numpy(), rtol=1e-12)
    assert (summary["fold_std_val_loss"] > 0).all() and "fold_std" in (tmp_path / "cv" / "summary.md").read_text()
    plain, plan = planned({"optimizer.lr": [0.1]}, repeats=2, experiment={"data": {"dataset": "iris"},
                                                                          "train": {"epochs": 1}})
    run_search(plain, plan, tmp_path / "plain", n_jobs=1)
    assert not any(c.startswith("fold_std") for c in report(tmp_path / "plain", plots=False).summary.columns)


def test_repeats_that_had_not_converged_are_counted(planned, tmp_path):
    loaded, plan = planned({"optimizer.lr": [0.1, 0.001]}, repeats=2,
                           experiment={"data": {"dataset": "iris"}, "train": {"epochs": 12}})
    run_search(loaded, plan, tmp_path / "s", n_jobs=1)
    result = report(tmp_path / "s", plots=False)
    frame = raw(tmp_path / "s")
    expected = frame[frame["status"] == "ok"].groupby("config_id")["still_improving"].sum()
    summary = result.summary.set_index("config_id")
    assert summary.loc[expected.index, "n_still_improving"].tolist() == expected.astype(int).tolist()
    assert expected.sum() > 0 and "improving" in (tmp_path / "s" / "summary.md").read_text()


def test_best_spec_trains_the_winning_trial_again(planned, tmp_path):
    """A search keeps no model (GridSearchCV refits its winner): best.yaml carries the winner's
    parameters and its first repeat's seed, so a run on it reproduces that trial and keeps a model."""
    from nnexp.api import run_experiment
    from nnexp.report import param_column
    from nnexp.spec import load_experiment

    loaded, plan = planned({"optimizer.lr": [0.001, 0.1], "model.hidden": [[3], [8]]}, name="win", repeats=2,
                           experiment={"seed": 7, "data": {"dataset": "iris"}, "train": {"epochs": 8}})
    run_search(loaded, plan, tmp_path / "win", n_jobs=1)
    result = report(tmp_path / "win", plots=False)
    path = tmp_path / "win" / "best.yaml"
    assert path in result.files
    winner = result.summary.iloc[0]
    spec = load_experiment(path)
    assert (spec.name, spec.seed) == ("win-best", 7)
    trial = raw(tmp_path / "win").set_index("trial_id").loc[f"{winner['config_id']}-s7"]
    assert (spec.optimizer.lr, spec.model.hidden) == (trial["optimizer.lr"], trial["model.hidden"])
    assert spec.optimizer.lr == winner[param_column("optimizer.lr")]
    header = path.read_text().split("\nname:")[0]
    assert f"trial {winner['config_id']}-s7" in header and "val_accuracy (max)" in header
    run = run_experiment(path, results_dir=tmp_path / "runs")
    for name in ("train_loss", "val_loss", "val_accuracy", "best_epoch"):
        assert run.metrics[name] == trial[name], name
    assert (tmp_path / "runs" / "win-best" / "model.npz").exists()


def test_best_spec_finds_a_searched_data_file_from_anywhere_and_after_the_project_moves(search_file, tmp_path,
                                                                                        monkeypatch):
    """The search was started with a relative spec path; its tables are rebuilt from another folder,
    then after the whole project moved: best.yaml names the data file where it is now."""
    import shutil

    from nnexp.search.space import plan_search
    from nnexp.spec import load_experiment, load_search

    project = tmp_path / "project"
    (project / "specs").mkdir(parents=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": (x[:, 0] > 0).astype(int)})
    frame.to_csv(project / "specs" / "toy.csv", index=False)
    frame.to_csv(project / "specs" / "toy2.csv", index=False)
    path = search_file({"data.dataset": ["toy.csv", "toy2.csv"]}, repeats=1,
                       experiment={"data": {"dataset": "iris", "target": "y"}, "train": {"epochs": 2}})
    path.rename(project / "specs" / "grid.yaml")
    monkeypatch.chdir(project)
    loaded = load_search("specs/grid.yaml")
    run_search(loaded, plan_search(loaded), Path("results/grid"), n_jobs=1)

    def best_data(folder: Path) -> Path:
        report(folder, plots=False)
        return Path(load_experiment(folder / "best.yaml").data.dataset)

    monkeypatch.chdir(project / "results")  # "specs/..." from here is no folder at all
    assert best_data(project / "results" / "grid").parent == project.resolve() / "specs"
    shutil.move(project, tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    assert best_data(tmp_path / "moved" / "results" / "grid").parent == (tmp_path / "moved" / "specs").resolve()


@pytest.mark.parametrize("base_file", [False, True])
def test_best_spec_follows_the_base_experiments_data_file_when_the_project_moves(search_file, tmp_path, monkeypatch,
                                                                                base_file):
    """The base's data path is saved whole when the search reads it (inline or from a base file)."""
    import shutil

    import yaml

    from nnexp.search.space import plan_search
    from nnexp.spec import load_experiment, load_search

    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    x = np.random.default_rng(0).normal(size=(60, 2))
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": (x[:, 0] > 0).astype(int)}).to_csv(project / "data" / "t.csv",
                                                                                        index=False)
    experiment = {"data": {"dataset": "data/t.csv", "target": "y"}, "train": {"epochs": 2}}
    spec = {"name": "g", "metric": "val_accuracy", "repeats": 1, "space": {"optimizer.lr": [0.1, 0.01]}}
    if base_file:
        (project / "base.yaml").write_text(yaml.safe_dump(experiment))
        spec["base"] = "base.yaml"
    else:
        spec["experiment"] = experiment
    (project / "g.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(project)
    loaded = load_search("g.yaml")
    run_search(loaded, plan_search(loaded), Path("results/g"), n_jobs=1)
    report(project / "results" / "g", plots=False)
    shutil.move(project, tmp_path / "moved")
    moved = (tmp_path / "moved" / "data" / "t.csv").resolve()
    assert Path(load_experiment(tmp_path / "moved" / "results" / "g" / "best.yaml").data.dataset) == moved
    report(tmp_path / "moved" / "results" / "g", plots=False)  # written again where the project is now
    assert Path(load_experiment(tmp_path / "moved" / "results" / "g" / "best.yaml").data.dataset) == moved
    shutil.copytree(tmp_path / "moved" / "results" / "g", tmp_path / "elsewhere" / "g")  # the results alone
    notes = report(tmp_path / "elsewhere" / "g", plots=False).notes
    assert any("best.yaml: its data file" in note and "is not there" in note for note in notes), notes


def test_best_spec_keeps_a_data_file_outside_the_project_where_it_is(search_file, tmp_path, monkeypatch):
    """A fixed place such as /data does not move with the project: its path stays whole."""
    import shutil

    from nnexp.search.space import plan_search
    from nnexp.spec import load_experiment, load_search

    (tmp_path / "shared").mkdir()
    x = np.random.default_rng(0).normal(size=(60, 2))
    data = tmp_path / "shared" / "t.csv"
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": (x[:, 0] > 0).astype(int)}).to_csv(data, index=False)
    path = search_file({"optimizer.lr": [0.1, 0.01]}, repeats=1,
                       experiment={"data": {"dataset": str(data), "target": "y"}, "train": {"epochs": 2}})
    project = tmp_path / "project"
    project.mkdir()
    path.rename(project / "g.yaml")
    monkeypatch.chdir(project)
    loaded = load_search("g.yaml")
    run_search(loaded, plan_search(loaded), Path("results/g"), n_jobs=1)
    report(project / "results" / "g", plots=False)
    assert "dataset: " + str(data) in (project / "results" / "g" / "best.yaml").read_text()
    shutil.move(project, tmp_path / "deeper" / "project")
    assert load_experiment(tmp_path / "deeper" / "project" / "results" / "g" / "best.yaml").data.dataset == str(data)


@pytest.mark.parametrize("mode", ["max", "min"])
def test_best_spec_of_a_searched_optimizer_name_takes_that_optimizers_defaults(planned, tmp_path, mode):
    """`optimizer.name: [sgd, adam]` over a base `optimizer: adam`: the sgd trials trained with sgd's
    default lr (0.1), and best.yaml must say so, not adam's 0.001 from the resolved base."""
    from nnexp.spec import load_experiment

    loaded, plan = planned({"optimizer.name": ["sgd", "adam"]}, repeats=2,
                           experiment={"data": {"dataset": "iris"}, "optimizer": "adam", "train": {"epochs": 3}})
    run_search(loaded, plan, tmp_path / "s", n_jobs=1)
    result = report(tmp_path / "s", plots=False, metric="val_loss", mode=mode)
    winner = result.summary["config_id"].iloc[0]
    trained = next(t.spec for t in plan.trials if t.config_id == winner and t.repeat == 0)
    best = load_experiment(tmp_path / "s" / "best.yaml")
    assert best.optimizer == trained.optimizer and best.model_copy(update={"name": None}) == trained.model_copy(
        update={"name": None})


def test_a_folder_older_than_best_yaml_says_how_to_get_one(tmp_path):
    write_scores(tmp_path, {"a": [0.9, 0.92], "b": [0.8, 0.82]})  # search.yaml without trial_base
    result = report(tmp_path, plots=False)
    assert result.best_spec is None and not (tmp_path / "best.yaml").exists()
    assert result.notes == [f"{tmp_path / 'best.yaml'}: not written: this folder's search.yaml predates it; run the same "
                            "`nnexp search` command again (it resumes, nothing is trained again) to write it"]


def test_no_best_spec_when_nothing_ranks(planned, tmp_path):
    loaded, plan = planned({"optimizer.lr": [1e6]}, repeats=2)
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "best.yaml").write_text("name: an-earlier-winner\n")
    run_search(loaded, plan, folder, n_jobs=1, train_fn=fake_train, data_fn=no_data)
    result = report(folder, plots=False)
    assert (result.summary["n_ok"] == 0).all()
    assert not (folder / "best.yaml").exists() and folder / "best.yaml" not in result.files


def test_importance_matches_an_independent_anova(searched):
    """eta squared = between-value sum of squares / total, over the ok trials; spread = the range of the
    effects tables' means; the repeats' row = the share within configurations."""
    result = report(searched, plots=False)
    frame = raw(searched)
    ok = frame[frame["status"] == "ok"]
    y = ok["val_accuracy"].astype(float)
    total = ((y - y.mean()) ** 2).sum()
    shares = result.importance.set_index("parameter")
    for p in SPACE:
        between = (ok.groupby(ok[p].astype(str))["val_accuracy"].transform("mean") - y.mean()).pow(2).sum()
        assert shares.loc[p, "eta2"] == pytest.approx(between / total, rel=1e-9)
        means = ok.groupby(ok[p].astype(str))["val_accuracy"].mean()
        assert shares.loc[p, "spread"] == pytest.approx(means.max() - means.min(), rel=1e-12)
    within = (y - ok.groupby("config_id")["val_accuracy"].transform("mean")).pow(2).sum()
    assert shares.loc["repeats", "eta2"] == pytest.approx(within / total, rel=1e-9)
    assert list(result.importance["parameter"])[-1] == "repeats"
    assert list(result.importance["eta2"].iloc[:-1]) == sorted(result.importance["eta2"].iloc[:-1], reverse=True)
    assert "## What matters" in (searched / "effects.md").read_text()


def test_importance_tells_a_parameter_that_matters_from_one_that_does_not(tmp_path):
    save_spec(tmp_path, {"search": {"metric": "val_accuracy", "mode": "max", "space": {"a": [1, 2], "b": [1, 2]}},
                         "experiment": {}})
    store = TrialStore(tmp_path)
    noise = np.random.default_rng(0).normal(0, 0.002, 16)
    for i, (a, b, seed) in enumerate((a, b, seed) for a in (1, 2) for b in (1, 2) for seed in range(4)):
        store.append({"trial_id": f"{a}{b}-s{seed}", "config_id": f"{a}{b}", "params": {"a": a, "b": b}, "seed": seed,
                      "repeat": seed, "status": "ok", "error": None, "val_accuracy": 0.8 + 0.1 * a + noise[i],
                      "epochs_run": 5, "seconds": 1.0, "history": {}})
    shares = report(tmp_path, plots=False).importance.set_index("parameter")["eta2"]
    assert shares["a"] > 0.99 and shares["b"] < 0.01 and shares["repeats"] < 0.01
    assert shares.sum() == pytest.approx(1.0, abs=0.01)  # a full grid: a, b, their interaction and the repeats


def test_no_importance_when_every_trial_scores_the_same(tmp_path):
    write_scores(tmp_path, {"a": [0.9, 0.9], "b": [0.9, 0.9]})
    result = report(tmp_path, plots=False)
    assert result.importance["eta2"].isna().all()
    assert ("## What matters\n\nEvery ok trial scored the same val_accuracy (0.9000): nothing the search varied "
            "moved it") in (tmp_path / "effects.md").read_text()


def test_a_parameter_with_one_value_left_has_no_spread(tmp_path):
    """Every trial of one value failed: a spread of 0 over the one value left read as "does not
    matter", where that value decided every failure."""
    write_scores(tmp_path / "s", {"a": [0.9, 0.8], "b": [0.7, 0.75]})
    store = TrialStore(tmp_path / "s")
    for seed in range(2):
        store.append({"trial_id": f"c-s{seed}", "config_id": "c", "params": {"x": "c"}, "seed": seed, "repeat": seed,
                      "status": "failed", "error": "boom", "epochs_run": 0, "seconds": 1.0, "history": {}})
    (tmp_path / "t").mkdir()
    save_spec(tmp_path / "t", {"search": {"metric": "val_accuracy", "mode": "max",
                                          "space": {"x": ["a", "c"], "y": [1, 2]}}, "experiment": {}})
    store = TrialStore(tmp_path / "t")
    for x, y, seed in ((x, y, seed) for x in "ac" for y in (1, 2) for seed in range(2)):
        ok = x == "a"
        store.append({"trial_id": f"{x}{y}-s{seed}", "config_id": f"{x}{y}", "params": {"x": x, "y": y}, "seed": seed,
                      "repeat": seed, "status": "ok" if ok else "failed", "error": None if ok else "boom",
                      **({"val_accuracy": 0.8 + 0.05 * y + 0.01 * seed} if ok else {}), "epochs_run": 5,
                      "seconds": 1.0, "history": {}})
    shares = report(tmp_path / "t", plots=False).importance.set_index("parameter")
    assert np.isnan(shares.loc["x", "spread"]) and shares.loc["y", "spread"] == pytest.approx(0.05)
    assert report(tmp_path / "s", plots=False).importance.set_index("parameter").loc["x", "spread"] == pytest.approx(0.125)


def test_ranked_by_val_auc_with_an_undefined_auc(tmp_path):
    """An AUC that is NaN (a split with one class) is null in trials.jsonl and left out of the
    statistics; a configuration with none ranks last, unmarked. summary.md keeps its focus: the
    ranking metric (and its kind on the test split), losses and accuracies; f1, balanced_accuracy,
    auc and ap of other splits are in the CSV."""
    save_spec(tmp_path, {"search": {"metric": "val_auc", "mode": "max", "space": {"x": ["a", "b", "c"]}}, "experiment": {}})
    store = TrialStore(tmp_path)
    nan = float("nan")
    aucs = {"a": [0.9, 0.92, nan], "b": [0.95, 0.97, 0.96], "c": [nan, nan, nan]}
    for name, values in aucs.items():
        for seed, auc in enumerate(values):
            store.append({"trial_id": f"{name}-s{seed}", "config_id": name, "params": {"x": name}, "seed": seed,
                          "repeat": seed, "status": "ok", "error": None, "epochs_run": 5, "seconds": 1.0,
                          **{f"{split}_{m}": v for split in ("train", "val", "test") for m, v in (
                              ("loss", 0.3), ("accuracy", 0.9), ("f1", 0.85), ("balanced_accuracy", 0.8), ("auc", auc),
                              ("ap", {"a": 0.6, "b": 0.4, "c": 0.5}[name] + seed / 100))},
                          "history": {"val_loss": [1.0, 0.5], "val_accuracy": [0.5, 0.9]}})

    def refuse(constant):
        raise ValueError(f"{constant} in trials.jsonl")
    lines = [json.loads(line, parse_constant=refuse) for line in (tmp_path / "trials.jsonl").read_text().splitlines()]
    assert [r["val_auc"] for r in lines if r["config_id"] == "a"] == [0.9, 0.92, None]

    result = report(tmp_path, plots=False)
    assert (result.metric, result.mode) == ("val_auc", "max")
    summary = result.summary.set_index("config_id")
    assert list(summary.index) == ["b", "a", "c"] and summary.loc["b", "rank"] == 1 and summary.loc["a", "rank"] == 2
    assert pd.isna(summary.loc["c", "rank"])
    assert summary.loc["a", "mean_val_auc"] == pytest.approx(0.91) and np.isnan(summary.loc["c", "mean_val_auc"])
    assert summary.loc["c", "tied_best"] == "n/a (no val_auc)"
    csv = pd.read_csv(tmp_path / "summary.csv")
    assert {f"{stat}_{split}_{m}" for stat in ("mean", "std", "ci95") for split in ("train", "val", "test")
            for m in ("f1", "balanced_accuracy", "auc", "ap")} <= set(csv.columns)
    text = (tmp_path / "summary.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("|"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    assert columns[:4] == ["rank", "x", "val_auc", "ci95"]
    assert {"val_loss", "val_accuracy", "test_loss", "test_accuracy", "train_loss", "test_auc"} <= set(columns)
    assert not {c for c in columns if c.endswith(("_f1", "_balanced_accuracy", "_auc", "_ap")) and c not in ("val_auc", "test_auc")}
    assert markdown_column(text, "val_auc") == ["0.9600 ± 0.0100", "0.9100 ± 0.0141", "–"]
    effects = (tmp_path / "effects.md").read_text()
    assert "effects of each searched parameter on val_auc" in effects

    by_balanced = report(tmp_path, plots=False, metric="val_balanced_accuracy")
    assert by_balanced.mode == "max" and by_balanced.summary["tied_best"].tolist() == ["yes", "yes", "yes"]
    header = next(line for line in (tmp_path / "summary.md").read_text().splitlines() if line.startswith("|"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    assert columns[2] == "val_balanced_accuracy" and "test_balanced_accuracy" in columns and "test_auc" not in columns

    by_ap = report(tmp_path, plots=False, metric="val_ap")  # rare positives: the AP ranks, c's missing AUC does not matter
    assert by_ap.mode == "max" and list(by_ap.summary["config_id"]) == ["a", "c", "b"]
    header = next(line for line in (tmp_path / "summary.md").read_text().splitlines() if line.startswith("|"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    assert columns[2] == "val_ap" and "test_ap" in columns and "test_auc" not in columns and "train_ap" not in columns


def test_a_parameter_with_one_value_among_the_ok_trials_has_no_share(tmp_path):
    """b's second value only ever failed: among the ok trials b does not vary, so it explains nothing
    (shown as '–', not as 0%)."""
    save_spec(tmp_path, {"search": {"metric": "val_accuracy", "mode": "max", "space": {"a": [1, 2], "b": [1, 2]}},
                         "experiment": {}})
    store = TrialStore(tmp_path)
    for a in (1, 2):
        for b in (1, 2):
            for seed in range(2):
                ok = b == 1
                store.append({"trial_id": f"{a}{b}-s{seed}", "config_id": f"{a}{b}", "params": {"a": a, "b": b},
                              "seed": seed, "repeat": seed, "status": "ok" if ok else "failed", "error": None,
                              "val_accuracy": 0.8 + 0.1 * a + 0.01 * seed if ok else None, "epochs_run": 5,
                              "seconds": 1.0, "history": {}})
    shares = report(tmp_path, plots=False).importance.set_index("parameter")["eta2"]
    assert shares["a"] > 0.9 and np.isnan(shares["b"])
    rows = [line for line in (tmp_path / "effects.md").read_text().splitlines() if line.startswith("| b ")]
    assert rows and rows[0].split("|")[3].strip() == "–"


def test_a_balanced_grid_shows_its_interactions_share_as_a_two_way_anova_does(tmp_path):
    """Two parameters whose effect is mostly together (XOR-like): each alone explains little, the
    shares added to 57% of 100 and left the reader to guess the rest. The interactions' row is the
    two-way ANOVA's interaction sum of squares over the total; unbalanced (a failed trial), none."""
    from nnexp.report import interaction_share

    rng = np.random.default_rng(0)
    save_spec(tmp_path, {"search": {"metric": "val_accuracy", "mode": "max", "space": {"a": [0, 1], "b": [0, 1, 2]}},
                         "experiment": {}})
    store, rows = TrialStore(tmp_path), []
    for a in (0, 1):
        for b in (0, 1, 2):
            for seed in range(3):
                y = 0.8 + 0.1 * ((a + b) % 2) + 0.02 * a + rng.normal(0, 0.01)
                rows.append({"a": a, "b": b, "y": y})
                store.append({"trial_id": f"{a}{b}-s{seed}", "config_id": f"{a}{b}", "params": {"a": a, "b": b},
                              "seed": seed, "repeat": seed, "status": "ok", "error": None, "val_accuracy": y,
                              "epochs_run": 5, "seconds": 1.0, "history": {}})
    result = report(tmp_path, plots=False)
    frame = pd.DataFrame(rows)
    grand, cells = frame["y"].mean(), frame.groupby(["a", "b"])["y"]
    total = ((frame["y"] - grand) ** 2).sum()
    main = sum((frame.groupby(p)["y"].transform("mean") - grand).pow(2).sum() for p in ("a", "b"))
    within = (frame["y"] - cells.transform("mean")).pow(2).sum()
    expected = (total - main - within) / total
    assert interaction_share(result) == pytest.approx(expected, rel=1e-9) and expected > 0.5
    assert f"| (interactions)        | –        | {expected:.1%}" in (tmp_path / "effects.md").read_text()
    store.append({"trial_id": "00-s3", "config_id": "00", "params": {"a": 0, "b": 0}, "seed": 3, "repeat": 3,
                  "status": "failed", "error": "E", "history": {}})
    store.append({"trial_id": "01-s3", "config_id": "01", "params": {"a": 0, "b": 1}, "seed": 3, "repeat": 3,
                  "status": "ok", "error": None, "val_accuracy": 0.9, "epochs_run": 5, "seconds": 1.0, "history": {}})
    assert interaction_share(report(tmp_path, plots=False)) is None  # 4 ok repeats in one configuration, 3 in others


def test_interactions_need_repeats_and_leave_out_a_parameter_of_one_value(tmp_path):
    """One repeat: the rest of the 100% holds the seeds' noise too (18% with one seed, 2% with
    another), so no row. A parameter searched with one value takes no part: the others' grid is
    still complete."""
    from nnexp.report import interaction_share

    def grid(folder, repeats, cs=("k",)):
        rng = np.random.default_rng(1)
        folder.mkdir()
        save_spec(folder, {"search": {"metric": "val_accuracy", "mode": "max",
                                      "space": {"a": [0, 1], "b": [0, 1], "c": list(cs)}}, "experiment": {}})
        store = TrialStore(folder)
        for a in (0, 1):
            for b in (0, 1):
                for c in cs:
                    for seed in range(repeats):
                        store.append({"trial_id": f"{a}{b}{c}-s{seed}", "config_id": f"{a}{b}{c}",
                                      "params": {"a": a, "b": b, "c": c}, "seed": seed, "repeat": seed, "status": "ok",
                                      "error": None, "val_accuracy": 0.8 + 0.1 * (a ^ b) + rng.normal(0, 0.01),
                                      "epochs_run": 5, "seconds": 1.0, "history": {}})

    grid(tmp_path / "one", repeats=1)
    assert interaction_share(report(tmp_path / "one", plots=False)) is None
    grid(tmp_path / "fixed", repeats=3)
    share = interaction_share(report(tmp_path / "fixed", plots=False))
    assert share is not None and share > 0.9  # a xor b: nearly all of it together


def test_a_p_value_beside_its_mark_never_reads_as_the_other_side_of_alpha():
    from nnexp.report import _with_p

    assert _with_p("no", 0.0496) == "no (p 0.0496)" and _with_p("yes", 0.0504) == "yes (p 0.0504)"
    assert _with_p("yes", 0.31) == "yes (p 0.31)" and _with_p("no", 2e-9) == "no (p < 0.001)"
    assert _with_p("no (1 of 3 repeats not ok)", 0.4) == "no (1 of 3 repeats not ok; p 0.4)"
    assert _with_p("n/a (<2 ok repeats)", float("nan")) == "n/a (<2 ok repeats)"
