"""Two `nnexp search` commands at once: same folder (refused, then a dead owner's lock is taken over)
and different searches in the same results dir (both complete). Real processes, tiny budgets."""

import json
import os
import signal

import yaml
from typer.testing import CliRunner

from nnexp.cli import app

from .processes import start_search, wait_for_lines

runner = CliRunner()
SPACE = {"model.activation": ["relu", "tanh", "logistic"], "optimizer.lr": [0.01, 0.1]}  # x 2 repeats = 12 trials


def experiment(epochs):
    return {"data": {"dataset": "iris"}, "model": {"hidden": [32]}, "optimizer": {"name": "sgd", "lr": 0.1},
            "train": {"epochs": epochs, "batch_size": 8}}


def write_search(tmp_path, name, epochs, repeats=2):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "experiment": experiment(epochs), "metric": "val_accuracy",
                                    "repeats": repeats, "space": SPACE}))
    return path


def keys(folder):
    return [(r["config_id"], r["seed"]) for r in map(json.loads, (folder / "trials.jsonl").read_text().splitlines())]


def test_second_search_refused_while_first_runs_then_takes_over_after_kill_9(tmp_path, procs):
    path = write_search(tmp_path, "grid", epochs=300, repeats=1)  # 6 trials of ~0.5 s
    folder = tmp_path / "grid"
    procs.append(first := start_search(path, tmp_path))
    wait_for_lines(folder / "trials.jsonl", 1, first)

    refused = runner.invoke(app, ["search", str(path), "--results-dir", str(tmp_path), "--quiet", "--n-jobs", "1"])
    assert refused.exit_code == 2, refused.output
    assert "Traceback" not in refused.output
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "another search is running" in errors[0] and f"pid {first.pid}" in errors[0]
    assert first.poll() is None  # the refused one did not disturb the running one

    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert (folder / ".lock").exists()  # left by the dead owner
    before = keys(folder)
    assert len(before) < 6

    taken = runner.invoke(app, ["search", str(path), "--results-dir", str(tmp_path), "--quiet", "--n-jobs", "1"])
    assert taken.exit_code == 0, taken.output
    after = keys(folder)
    assert after[: len(before)] == before and len(after) == 6 and len(set(after)) == 6  # each key exactly once
    assert not (folder / ".lock").exists()


def test_two_searches_in_the_same_results_dir_run_in_parallel(tmp_path, procs):
    a, b = write_search(tmp_path, "alpha", epochs=20), write_search(tmp_path, "beta", epochs=20)
    procs.extend([pa := start_search(a, tmp_path / "res"), pb := start_search(b, tmp_path / "res")])
    for proc in (pa, pb):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    for name in ("alpha", "beta"):
        folder = tmp_path / "res" / name
        got = keys(folder)
        assert len(got) == 12 and len(set(got)) == 12
        assert (folder / "summary.md").exists() and not (folder / ".lock").exists()
        assert yaml.safe_load((folder / "search.yaml").read_text())["search"]["name"] == name
