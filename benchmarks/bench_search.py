"""Search throughput: nnexp search with 1 and 2 jobs against scikit-learn's GridSearchCV, plus per-trial overhead.

Run by hand (not a test):
    python benchmarks/bench_search.py [--repeat 3] [--epochs 100] [--skip-sklearn] [--sklearn-one-job]

Workload: 12 configurations (hidden [64] or [128] x lr 0.01 or 0.1 x relu/tanh/logistic)
x 3 seeds x 100 epochs on digits (zscore, 25% validation, no test split, batch 32,
SGD with momentum 0.9). Each contender runs as a whole command (subprocess) and is
timed by wall clock, start-up included. GridSearchCV trains MLPClassifier with the
same grid, one fixed validation split (PredefinedSplit), the same epochs and no
early stopping, with n_jobs=2 (and n_jobs=1 with --sklearn-one-job). The script
also measures this machine's own ceiling for a 1 -> 2 speed-up: the same training
alone and as two copies at once (virtual CPUs rarely give two whole cores).

Built-in data sets are cached on disk after their first load (~/.cache/nnexp), as
after any first use of nnexp; the script loads digits once before timing anything, so
the cold first load (a scikit-learn import) is timed in no contender.

The machine's OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE variables slow current NumPy;
they are removed from the environment of every command here (never in tests).
nnexp's modules are byte-compiled before timing, as `pip install` does: this machine
also sets PYTHONDONTWRITEBYTECODE=1, under which a checkout used in place is compiled
from source again by every process (the main one and each worker, ~0.1 s each).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
NNEXP = [sys.executable, "-m", "nnexp"]


def search_spec(folder: Path, epochs: int) -> Path:
    spec = {
        "name": "bench-digits",
        "experiment": {
            "seed": 0,
            "data": {"dataset": "digits", "normalize": "zscore", "val_fraction": 0.25, "test_fraction": 0.0},
            "optimizer": {"name": "momentum", "momentum": 0.9, "lr": 0.01},
            "train": {"epochs": epochs, "batch_size": 32},
        },
        "metric": "val_accuracy",
        "repeats": 3,
        "space": {"model.hidden": [[64], [128]], "optimizer.lr": [0.01, 0.1],
                  "model.activation": ["relu", "tanh", "logistic"]},
    }
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


SKLEARN = textwrap.dedent("""
    import sys, numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV, PredefinedSplit, train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    import warnings
    warnings.filterwarnings("ignore")
    epochs, n_jobs = int(sys.argv[1]), int(sys.argv[2])
    X, y = load_digits(return_X_y=True)
    rows = np.arange(len(y))
    _, val = train_test_split(rows, test_size=0.25, stratify=y, random_state=0)
    fold = np.full(len(y), -1)
    fold[val] = 0
    model = make_pipeline(StandardScaler(), MLPClassifier(
        solver="sgd", momentum=0.9, nesterovs_momentum=False, batch_size=32, max_iter=epochs,
        early_stopping=False, tol=0.0, n_iter_no_change=epochs + 1, alpha=0.0))
    grid = {"mlpclassifier__hidden_layer_sizes": [(64,), (128,)], "mlpclassifier__learning_rate_init": [0.01, 0.1],
            "mlpclassifier__activation": ["relu", "tanh", "logistic"], "mlpclassifier__random_state": [0, 1, 2]}
    search = GridSearchCV(model, grid, cv=PredefinedSplit(fold), n_jobs=n_jobs, refit=False, scoring="accuracy")
    search.fit(X, y)
    print(len(search.cv_results_["params"]), float(np.max(search.cv_results_["mean_test_score"])))
""")


# One process training nnexp trials on one BLAS thread, timed inside (start-up excluded).
SAME_WORK = textwrap.dedent("""
    import time, warnings
    from threadpoolctl import threadpool_limits
    from nnexp.api import run_experiment
    warnings.simplefilter("ignore")
    spec = {"data": {"dataset": "digits", "val_fraction": 0.25, "test_fraction": 0.0}, "model": {"hidden": [64]},
            "optimizer": {"name": "momentum", "momentum": 0.9, "lr": 0.01}, "train": {"epochs": 40, "batch_size": 32}}
    with threadpool_limits(1):
        run_experiment(spec, results_dir=None)  # imports, data
        start = time.perf_counter()
        for seed in range(4):
            run_experiment({**spec, "seed": seed}, results_dir=None)
    print(time.perf_counter() - start)
""")


def parallel_ceiling(rounds: int = 3) -> tuple[float, list[float]]:
    """The best 1 -> 2 speed-up this machine allows right now: the same single-threaded
    training alone, then two copies at once; 2 x alone / together (median of rounds)."""
    ratios = []
    for _ in range(rounds):
        alone = float(timed([sys.executable, "-c", SAME_WORK], ROOT)[1])
        pair = [subprocess.Popen([sys.executable, "-c", SAME_WORK], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
        together = max(float(p.communicate()[0]) for p in pair)
        ratios.append(2 * alone / together)
    return sorted(ratios)[len(ratios) // 2], ratios


def adopt_orphans() -> bool:
    """Become the subreaper of the commands' processes (Linux): loky's resource trackers outlive
    the command that started them, and their CPU counts only once this script reaps them."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap_orphans(wait: float = 3.0) -> None:
    """Wait (up to `wait` s) for the processes a finished command left behind, and reap them."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # none left
        if pid == 0:
            time.sleep(0.02)


def children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], cwd: Path) -> tuple[float, str, float]:
    """Wall seconds, stdout, and CPU seconds (user + sys of the command and every process it started)."""
    cpu = children_cpu()
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    reap_orphans()
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])}... failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout, children_cpu() - cpu


def overhead(folder: Path, n_trials: int) -> dict[int, float]:
    """Per-trial scheduling overhead: wall time per trial per worker minus the time spent inside the trial."""
    script = textwrap.dedent(f"""
        import json, time
        from nnexp.spec import load_search
        from nnexp.search.space import plan_search
        from nnexp.search.runner import run_search
        from nnexp.report import preload
        preload().join()  # the report's libraries, which a parallel run would import beside the timed trials
        out = {{}}
        for n_jobs in (1, 2):
            loaded = load_search({str(folder / 'tiny.yaml')!r})
            plan = plan_search(loaded)
            run_search(loaded, plan_search(load_search({str(folder / 'tiny.yaml')!r}, [("repeats", 4)])),
                       {str(folder)!r} + f"/warm{{n_jobs}}", n_jobs=n_jobs)  # start the pool, import everything
            start = time.perf_counter()
            outcome = run_search(loaded, plan, {str(folder)!r} + f"/tiny{{n_jobs}}", n_jobs=n_jobs)
            wall = time.perf_counter() - start
            inside = sum(r["seconds"] for r in outcome.records) / len(outcome.records)
            out[n_jobs] = wall * n_jobs / len(outcome.records) - inside
        print(json.dumps(out))
    """)
    tiny = {"name": "tiny", "experiment": {"data": {"dataset": "iris"}, "model": {"hidden": [4]},
                                           "train": {"epochs": 1}},
            "repeats": n_trials, "space": {"optimizer.lr": [0.01]}}
    (folder / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    _, out, _ = timed([sys.executable, "-c", script], ROOT)
    return {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}


def round_by_round(slower: list[float], faster: list[float]) -> str:
    """The ratio within each round (its runs were minutes apart, not a whole benchmark apart,
    so less exposed to the machine's drift than the ratio of best times), median and all."""
    ratios = sorted(a / b for a, b in zip(slower, faster))
    return (f"  round by round:                  {ratios[len(ratios) // 2]:5.2f}x median   "
            f"({', '.join(f'{r:.2f}' for r in ratios)})")


def cpu_lines(one_wall: list[float], one_cpu: list[float], two_cpu: list[float], reaped: bool) -> str:
    """What the wall times cannot show: the CPU the 2-job command adds (its worker interpreters,
    loky's trackers), and how much of the 1-job command's wall time the host withheld (a
    1-thread command's wall time is its CPU time, unless the host runs something else)."""
    median = lambda values: sorted(values)[len(values) // 2]  # noqa: E731
    withheld = ", ".join(f"{max(0.0, w - c):.1f}" for w, c in zip(one_wall, one_cpu))
    counted = "" if reaped else " (loky's trackers not counted: no subreaper here)"
    return (f"  CPU of 2 jobs over 1 job:        {median(two_cpu) / median(one_cpu):5.2f}x   "
            f"(medians {median(two_cpu):.1f} / {median(one_cpu):.1f} s){counted}\n"
            f"  1-job wall minus CPU:            {withheld} s   (time the host gave to others; a host that "
            f"slows the CPU instead shows in the CPU times)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--skip-sklearn", action="store_true")
    parser.add_argument("--sklearn-one-job", action="store_true",
                        help="also time GridSearchCV with n_jobs=1: scikit-learn's own 1 -> 2 speed-up, for reference")
    parser.add_argument("--overhead-trials", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command; the best time counts")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f} (other work on the machine distorts wall times)")
    reaped = adopt_orphans()
    compileall.compile_dir(ROOT / "nnexp", quiet=1)  # .pyc files, as an installed package has
    timed([sys.executable, "-c", "from nnexp.data import load_table; from nnexp.spec import DataSpec; "
                                 "load_table(DataSpec(dataset='digits'), 0)"], ROOT)  # warm the data-set cache
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec = search_spec(folder, args.epochs)
        sklearn_jobs = () if args.skip_sklearn else (1, 2) if args.sklearn_one_job else (2,)
        runs: dict[str, list[float]] = {}
        cpus: dict[str, list[float]] = {}
        notes = {}
        for _ in range(args.repeat):  # alternate the contenders; keep each one's best (least disturbed) time
            for n_jobs in (1, 2):
                seconds, _, cpu = timed([*NNEXP, "search", str(spec), "--n-jobs", str(n_jobs), "--fresh", "--quiet",
                                         "--results-dir", str(folder / f"jobs{n_jobs}")], ROOT)
                runs.setdefault(f"nnexp --n-jobs {n_jobs}", []).append(seconds)
                cpus.setdefault(f"nnexp --n-jobs {n_jobs}", []).append(cpu)
                summary = folder / f"jobs{n_jobs}" / "bench-digits" / "summary.csv"
                notes[f"nnexp --n-jobs {n_jobs}"] = f"36 trials; best: {summary.read_text().splitlines()[1][:48]}..."
            for n_jobs in sklearn_jobs:
                seconds, out, cpu = timed([sys.executable, "-c", SKLEARN, str(args.epochs), str(n_jobs)], ROOT)
                runs.setdefault(f"GridSearchCV n_jobs={n_jobs}", []).append(seconds)
                cpus.setdefault(f"GridSearchCV n_jobs={n_jobs}", []).append(cpu)
                fits, score = out.split()
                notes[f"GridSearchCV n_jobs={n_jobs}"] = f"{fits} fits; best val accuracy {float(score):.4f}"
        times = {name: min(values) for name, values in runs.items()}
        for name, values in runs.items():
            shown = ", ".join(f"{v:.1f}" for v in values)
            print(f"{name:24s} best {times[name]:6.1f} s  (runs: {shown})  {notes[name]}", flush=True)
            print(f"{'':24s} CPU  {', '.join(f'{c:.1f}' for c in cpus[name])} s (user + sys of all its processes)")
        per_trial = overhead(folder, args.overhead_trials)
        ceiling, ceilings = parallel_ceiling()
    print(f"load average after: {os.getloadavg()[0]:.2f}")

    one, two = times["nnexp --n-jobs 1"], times["nnexp --n-jobs 2"]
    print()
    print(f"speed-up 1 -> 2 jobs:              {one / two:5.2f}x   (target >= 1.7x)")
    if args.repeat > 1:
        print(round_by_round(runs["nnexp --n-jobs 1"], runs["nnexp --n-jobs 2"]))
    print(cpu_lines(runs["nnexp --n-jobs 1"], cpus["nnexp --n-jobs 1"], cpus["nnexp --n-jobs 2"], reaped))
    print(f"  this machine's ceiling:          {ceiling:5.2f}x   (the same 1-thread training alone vs two copies at "
          f"once: {', '.join(f'{c:.2f}' for c in ceilings)})")
    if "GridSearchCV n_jobs=1" in times:
        print(f"  GridSearchCV's own 1 -> 2 jobs:  "
              f"{times['GridSearchCV n_jobs=1'] / times['GridSearchCV n_jobs=2']:5.2f}x")
    if "GridSearchCV n_jobs=2" in times:
        print(f"nnexp 2 jobs vs GridSearchCV:      {times['GridSearchCV n_jobs=2'] / two:5.2f}x faster   (target >= 2.5x)")
        if args.repeat > 1:
            print(round_by_round(runs["GridSearchCV n_jobs=2"], runs["nnexp --n-jobs 2"]))
    for n_jobs, seconds in per_trial.items():
        print(f"scheduling overhead per trial, {n_jobs} job(s): {1000 * seconds:6.1f} ms   (target < 50 ms; "
              f"{args.overhead_trials} one-epoch trials)")


if __name__ == "__main__":
    main()
