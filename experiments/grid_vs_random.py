"""Grid vs random search on the same trial budget (Bergstra & Bengio 2012).

Runs experiments/grid_vs_random.yaml through the nnexp CLI as
  - k x k grids for every k of --grids (k*k configurations each), and
  - one random search of --trials configurations for each of --seeds search
    seeds (the search spec's `seed` drives the sampling; the training seeds
    of the trials are the same in every search),
then tabulates the best configuration found (mean of the metric over its
repeats) against the number of configurations tried, and writes
summary.md and grid_vs_random.png into --out.

    python experiments/grid_vs_random.py                 # under a minute on 2 cores
    python experiments/grid_vs_random.py --tiny          # seconds: a smoke test

Random search's best-so-far after n trials is the best of the first n
configurations of its plan (the order they were sampled in), which is exactly
what a random search with --trials n would have run.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
SPEC = HERE / "grid_vs_random.yaml"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--seeds", type=int, default=None, help="random searches, with search seeds 0..N-1 (default 5)")
    parser.add_argument("--grids", type=int, nargs="+", default=[2, 3, 4, 5], help="grid sizes k (k x k grids)")
    parser.add_argument("--trials", type=int, default=None, help="configurations per random search (default: largest grid)")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--results-dir", type=Path, default=Path("/tmp/nnexp-exp/grid_vs_random"))
    parser.add_argument("--out", type=Path, default=HERE.parent / "results" / "gallery" / "grid_vs_random")
    parser.add_argument("--tiny", action="store_true",
                        help="smoke test: 1 epoch, 1 repeat, 2 seeds, a 2 x 2 grid, 4 random trials, 1 job")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="PATH=VALUE",
                        help="extra --set passed to every search")
    args = parser.parse_args(argv)
    if args.tiny:
        args.seeds, args.grids, args.trials, args.n_jobs = args.seeds or 2, [2], 4, 1
        args.extra = ["train.epochs=1", "repeats=1", *args.extra]
    args.seeds = args.seeds or 5
    args.trials = args.trials or max(args.grids) ** 2
    return args


def space_with_points(spec: dict, k: int) -> list[str]:
    """--set overrides that give every continuous dimension of the space k grid points."""
    sets = []
    for path, dim in spec["space"].items():
        if isinstance(dim, dict):
            dim = {**dim, "points": k}
            sets.append(f"space.{path}={json.dumps(dim)}")
    return sets


def run_search(args, name: str, sets: list[str], random_trials: int | None = None) -> tuple[Path, list[str]]:
    overrides = [f"name={name}", *sets, *args.extra]
    cmd = [sys.executable, "-m", "nnexp", "search", str(args.spec), "--n-jobs", str(args.n_jobs),
           "--results-dir", str(args.results_dir), "--quiet", "--fresh"]
    if random_trials:
        cmd += ["--random", "--trials", str(random_trials)]
    for item in overrides:
        cmd += ["--set", item]
    print("$ nnexp", shlex.join(cmd[3:]), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"search {name} failed with exit code {done.returncode}")
    return args.results_dir / name, overrides


def best_so_far(folder: Path, overrides: list[str], strategy: str, trials: int | None, spec_path: Path):
    """Per configuration in plan order: the mean metric over its ok repeats; and the running best."""
    from nnexp.search.space import plan_search
    from nnexp.search.store import TrialStore
    from nnexp.spec import load_search, parse_overrides

    loaded = load_search(spec_path, parse_overrides(overrides))
    plan = plan_search(loaded, strategy, trials)
    metric, mode = loaded.spec.metric, loaded.spec.mode
    records = list(TrialStore(folder).latest().values())
    scores: dict[str, list[float]] = {}
    for r in records:
        value = r.get(metric)
        if r["status"] == "ok" and value is not None and math.isfinite(value):
            scores.setdefault(r["config_id"], []).append(value)
    means = [float(np.mean(scores[c.config_id])) if c.config_id in scores else math.nan for c in plan.configs]
    sign = 1.0 if mode == "min" else -1.0
    running, best = [], math.inf
    for m in means:
        if not math.isnan(m):
            best = min(best, sign * m)
        running.append(sign * best if math.isfinite(best) else math.nan)
    best_i = int(np.nanargmin([sign * m for m in means])) if not all(map(math.isnan, means)) else None
    best_params = plan.configs[best_i].params if best_i is not None else None
    return metric, mode, running, best_params, plan


def fmt(x, digits=4) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    spec = yaml.safe_load(args.spec.read_text())
    base = spec.get("name", args.spec.stem)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    grids = {}
    for k in args.grids:
        folder, overrides = run_search(args, f"{base}-grid{k}x{k}", space_with_points(spec, k))
        metric, mode, running, params, plan = best_so_far(folder, overrides, "grid", None, args.spec)
        grids[k] = (running[-1], params, len(plan.configs))
    randoms = {}
    for seed in range(args.seeds):
        folder, overrides = run_search(args, f"{base}-random-s{seed}", [f"seed={seed}"], random_trials=args.trials)
        metric, mode, running, params, plan = best_so_far(folder, overrides, "random", args.trials, args.spec)
        randoms[seed] = (running, params)

    curves = np.array([r for r, _ in randoms.values()], dtype=float)  # seeds x trials
    lower = mode == "min"
    repeats = len(plan.trials) // max(1, len(plan.configs))  # as planned, whatever --set said
    lines = [
        "# grid vs random search: best configuration found vs trials spent\n",
        f"Spec: `experiments/{args.spec.name}` (space: {', '.join(spec['space'])}); metric {metric} ({mode}), "
        f"each configuration scored by the mean over its {repeats} training seed(s) "
        "(the same seeds in every search).",
        f"Random search: {args.seeds} search seeds (0..{args.seeds - 1}), {args.trials} configurations each; "
        "its best after n trials is the best of its first n sampled configurations. "
        "Grid: k x k points of the same ranges (geometric spacing).\n",
        f"Regenerate: `python experiments/{Path(__file__).name}" + (" --tiny" if args.tiny else "") + "`\n",
        f"| trials | grid (k x k) best {metric} | random best, mean ± std over seeds | random min..max "
        f"| seeds where random beats grid |",
        "|---:|---:|---:|---:|---:|",
    ]
    for k, (grid_best, params, n) in grids.items():
        column = curves[:, n - 1] if n <= curves.shape[1] else np.full(len(curves), np.nan)
        wins = int(np.sum(column < grid_best) if lower else np.sum(column > grid_best))
        std = float(np.std(column, ddof=1)) if len(column) > 1 else math.nan
        lines.append(f"| {n} | {fmt(grid_best)} ({k}x{k}) | {fmt(float(np.nanmean(column)))} ± {fmt(std)} "
                     f"| {fmt(float(np.nanmin(column)))}..{fmt(float(np.nanmax(column)))} | {wins}/{len(column)} |")
    lines += ["", "Best configuration of each search:", ""]
    for k, (grid_best, params, n) in grids.items():
        lines.append(f"- grid {k}x{k}: {metric} {fmt(grid_best)} at {_params(params)}")
    for seed, (running, params) in randoms.items():
        lines.append(f"- random seed {seed} ({args.trials} trials): {metric} {fmt(running[-1])} at {_params(params)}")
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    _plot(args, curves, grids, metric, lower)
    print("\n".join(lines))
    print(f"\nwrote {args.out / 'summary.md'} and {args.out / 'grid_vs_random.png'}")
    return 0


def _params(params) -> str:
    if not params:
        return "–"
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _plot(args, curves, grids, metric: str, lower: bool) -> None:
    from nnexp.results import new_figure, save_figure

    fig = new_figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    x = np.arange(1, curves.shape[1] + 1)
    for i, curve in enumerate(curves):
        ax.step(x, curve, where="post", color="tab:blue", alpha=0.35, lw=1, label="random (one search seed)" if i == 0 else None)
    ax.step(x, np.nanmean(curves, axis=0), where="post", color="tab:blue", lw=2.2, label="random, mean over seeds")
    ns = [n for _, _, n in grids.values()]
    ax.plot(ns, [g for g, _, _ in grids.values()], "s--", color="tab:red", ms=7, label="k x k grid")
    for k, (g, _, n) in grids.items():
        ax.annotate(f"{k}x{k}", (n, g), textcoords="offset points", xytext=(4, 6), fontsize=8, color="tab:red")
    ax.set_xlim(0, max(curves.shape[1], max(ns)) + 2)
    ax.set_xlabel("configurations tried (trials budget)")
    ax.set_ylabel(f"best {metric} so far")
    if lower and np.nanmin(curves) > 0:
        ax.set_yscale("log")
    ax.set_title("grid vs random search")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.out / "grid_vs_random.png")


if __name__ == "__main__":
    sys.exit(main())
