"""The experiment specs of experiments/ stay runnable: every spec validates, and every
search spec runs end to end on a tiny budget (1 epoch, 1 repeat) through the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from nnexp.cli import app
from nnexp.search.space import plan_search
from nnexp.spec import is_search_spec, load_search, parse_overrides

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
SPECS = sorted(EXPERIMENTS.glob("*.yaml"))
SEARCH_SPECS = [p for p in SPECS if is_search_spec(yaml.safe_load(p.read_text()) or {})]
TINY = ["train.epochs=1", "trials=2", "repeats=1"]

runner = CliRunner()


def _sets(pairs):
    return [arg for pair in pairs for arg in ("--set", pair)]


def test_the_experiments_are_there():
    names = {p.stem for p in SEARCH_SPECS}
    assert {"activations", "initialisation", "normalisation", "batch_norm", "overfitting",
            "optimizers", "optimizers_time", "grid_vs_random"} <= names


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_spec_validates(spec):
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 0, result.output
    if spec in SEARCH_SPECS:
        assert re.search(r"# plan: .* = (\d+) trials", result.output), result.output


@pytest.mark.parametrize("spec", SEARCH_SPECS, ids=lambda p: p.stem)
def test_search_runs_on_a_tiny_budget(spec, tmp_path):
    loaded = load_search(spec, parse_overrides(TINY))
    expected = len(plan_search(loaded))
    validate = runner.invoke(app, ["validate", str(spec), *_sets(TINY)])
    assert validate.exit_code == 0, validate.output
    assert f"= {expected} trials" in validate.output

    result = runner.invoke(app, ["search", str(spec), *_sets(TINY), "--n-jobs", "1", "--quiet",
                                 "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    folder = tmp_path / loaded.spec.name
    assert (folder / "summary.md").exists()
    assert (folder / "effects.md").exists()
    lines = (folder / "trials.jsonl").read_text().splitlines()
    assert len(lines) == expected
    assert all(json.loads(line)["status"] in ("ok", "diverged") for line in lines)


def test_grid_vs_random_script_tiny(tmp_path):
    out = tmp_path / "gallery"
    done = subprocess.run(
        [sys.executable, str(EXPERIMENTS / "grid_vs_random.py"), "--tiny", "--seeds", "1",
         "--results-dir", str(tmp_path / "runs"), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (out / "summary.md").read_text()
    assert "| 4 |" in summary  # the 2 x 2 grid's row
    assert "mean over its 1 training seed(s)" in summary  # --tiny's repeats=1
    assert (out / "grid_vs_random.png").stat().st_size > 0


def test_grid_vs_random_script_says_how_many_seeds_it_averaged(tmp_path):
    """It guessed from the --set text: '--set repeats=2' printed '1 training seed(s)'."""
    done = subprocess.run(
        [sys.executable, str(EXPERIMENTS / "grid_vs_random.py"), "--tiny", "--seeds", "1", "--set", "repeats=2",
         "--results-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "gallery")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mean over its 2 training seed(s)" in (tmp_path / "gallery" / "summary.md").read_text()
