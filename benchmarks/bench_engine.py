"""Seconds per training epoch: nnexp vs PyTorch (CPU) vs scikit-learn's MLPClassifier.

Run by hand, not a test.  On machines that set OPENBLAS_CORETYPE /
OPENBLAS_L2_SIZE, unset them for this command only:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_engine.py

All three train on identical synthetic float32 data, with the same network,
batch size and optimizer (SGD with momentum 0.9); each figure is the median
seconds per epoch over several epochs after a warm-up epoch.  The "GEMM bound"
is the time of just the matrix products of one large-case epoch, at the same
shapes, in NumPy.  Use ``--quick`` for fewer epochs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
import warnings

import numpy as np
from threadpoolctl import threadpool_info

from nnexp.engine.network import Network
from nnexp.engine.optimizers import make_optimizer

try:
    import torch
except ImportError:  # torch is optional: pip install torch==2.13.0
    torch = None

try:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
except ImportError:
    MLPClassifier = None

THREADS = 2
CASES = {
    # name: (rows, layer sizes, activation, batch size, timed epochs)
    "large": (60_000, [784, 256, 128, 10], "relu", 128, 6),
    "small": (1_797, [64, 100, 10], "tanh", 32, 90),
}
LR = 0.01
# case: (max nnexp/PyTorch time, min MLPClassifier/nnexp time, max nnexp/GEMM-bound time)
TARGETS = {"large": (0.8, 1.9, 1.35), "small": (0.25, 3.0, None)}


def make_data(rows: int, n_in: int, n_classes: int, seed: int = 0):
    """Float32 blobs: learnable, so all three libraries see a realistic loss."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, rows)
    centers = rng.normal(size=(n_classes, n_in)).astype(np.float32)
    X = centers[y] + rng.normal(size=(rows, n_in)).astype(np.float32)
    return X.astype(np.float32), y.astype(np.int64)


def median_epochs(runners: dict, epochs: int, rounds: int = 3) -> dict[str, tuple[float, float]]:
    """(median, min) seconds per epoch of each runner, over ``rounds`` blocks of its epochs.

    Blocks alternate between the runners (nnexp, torch, sklearn, nnexp, ...) so
    that load drifting during the run (a shared machine) hits all of them; each
    block starts with an untimed warm-up epoch, which also absorbs the previous
    library's BLAS/OpenMP threads still spinning.
    """
    times: dict[str, list[float]] = {name: [] for name in runners}
    per_block = max(1, -(-epochs // rounds))
    for _ in range(rounds):
        for name, run_epoch in runners.items():
            run_epoch()  # warm-up
            for _ in range(per_block):
                t = time.perf_counter()
                run_epoch()
                times[name].append(time.perf_counter() - t)
    return {name: (statistics.median(ts), min(ts)) for name, ts in times.items()}


def nnexp_epoch(X, y, dims, act, batch):
    init = ("he", {}) if act == "relu" else ("xavier", {})
    net = Network(dims[0], dims[1:-1], dims[-1], [(act, {})] * (len(dims) - 2), init, "softmax",
                  rng=np.random.default_rng(1), dtype=np.float32)
    opt = make_optimizer("momentum", net.params, momentum=0.9)
    rng = np.random.default_rng(2)
    return lambda: net.train_epoch(X, y, batch_size=batch, optimizer=opt, lr=LR, rng=rng)


def torch_epoch(X, y, dims, act, batch):
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    layers = []
    for i in range(len(dims) - 1):
        layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(torch.nn.ReLU() if act == "relu" else torch.nn.Tanh())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(0)

    def epoch():
        order = torch.randperm(len(Xt), generator=gen)
        for s in range(0, len(Xt), batch):
            rows = order[s:s + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xt[rows]), yt[rows])
            loss.backward()
            opt.step()

    return epoch


def sklearn_epoch(X, y, dims, act, batch):
    clf = MLPClassifier(hidden_layer_sizes=tuple(dims[1:-1]), activation=act, solver="sgd",
                        alpha=0.0, batch_size=batch, learning_rate_init=LR, momentum=0.9,
                        nesterovs_momentum=False, shuffle=True, random_state=0)
    clf.partial_fit(X, y, classes=np.unique(y))  # first call builds the layers

    def epoch():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.partial_fit(X, y)  # one pass over the data

    return epoch


def gemm_epoch(rows, dims, batch, input_grad=True):
    """Exactly the matmuls of one epoch: x W, x^T d, d W^T per layer (d/dX of the
    input layer only if ``input_grad``: no trainer needs it)."""
    rng = np.random.default_rng(0)
    f = np.float32
    acts = [rng.normal(size=(batch, d)).astype(f) for d in dims]
    deltas = [np.empty((batch, d), dtype=f) for d in dims]
    Ws = [rng.normal(size=(dims[i], dims[i + 1])).astype(f) for i in range(len(dims) - 1)]
    gWs = [np.empty_like(W) for W in Ws]
    n_batches = -(-rows // batch)

    def epoch():
        for _ in range(n_batches):
            for i, W in enumerate(Ws):
                np.matmul(acts[i], W, out=acts[i + 1])
            for i in reversed(range(len(Ws))):
                np.matmul(acts[i].T, acts[i + 1], out=gWs[i])
                if i > 0 or input_grad:
                    np.matmul(acts[i + 1], Ws[i].T, out=deltas[i])

    return epoch


def memory_check(X, y, dims, act, batch):
    """tracemalloc peak during epochs 2..N, for N = 3 and 8: it must not grow."""
    net = Network(dims[0], dims[1:-1], dims[-1], [(act, {})] * (len(dims) - 2), ("he", {}),
                  "softmax", rng=np.random.default_rng(1))
    opt = make_optimizer("momentum", net.params, momentum=0.9)
    rng = np.random.default_rng(2)
    net.train_epoch(X, y, batch_size=batch, optimizer=opt, lr=LR, rng=rng)
    peaks = []
    tracemalloc.start()
    for n_epochs in (2, 7):
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(n_epochs):
            net.train_epoch(X, y, batch_size=batch, optimizer=opt, lr=LR, rng=rng)
        peaks.append(tracemalloc.get_traced_memory()[1] - base)
    tracemalloc.stop()
    return peaks


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:8.2f} ms" if seconds < 0.1 else f"{seconds:8.3f} s "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--rounds", type=int, default=3, help="blocks of epochs per library")
    args = parser.parse_args()

    blas = [f"{i['internal_api']} {i.get('version')} kernel={i.get('architecture')} "
            f"threads={i['num_threads']}" for i in threadpool_info() if i["user_api"] == "blas"]
    print(f"numpy {np.__version__}; BLAS: {'; '.join(blas)}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}")
    print(f"load average at start: {_loadavg()}")
    if torch is None:
        print("torch not installed: skipping its column (pip install torch==2.13.0)")
    else:
        print(f"torch {torch.__version__}, {THREADS} threads")
    if MLPClassifier is None:
        print("scikit-learn not installed: skipping its column")

    rows_out = []
    for case in args.cases:
        rows, dims, act, batch, epochs = CASES[case]
        if args.quick:
            epochs = 3 if case == "large" else 10
        X, y = make_data(rows, dims[0], dims[-1])
        shape = " -> ".join(map(str, dims))
        print(f"\n[{case}] {rows} x {shape} {act}, batch {batch}, median of {epochs} epochs "
              f"({args.rounds} blocks per library, each after a warm-up epoch)",
              flush=True)
        runners = {"nnexp": nnexp_epoch(X, y, dims, act, batch)}
        if torch is not None:
            runners["torch"] = torch_epoch(X, y, dims, act, batch)
        if MLPClassifier is not None:
            runners["sklearn"] = sklearn_epoch(X, y, dims, act, batch)
        if case == "large":  # the GEMM bound is timed in the same rotation as the libraries
            runners["gemm"] = gemm_epoch(rows, dims, batch)
            runners["gemm_needed"] = gemm_epoch(rows, dims, batch, input_grad=False)
        stats = median_epochs(runners, epochs, rounds=args.rounds)
        t_np, t_torch, t_sk, gemm, gemm_need = (
            stats.get(k, (None, None))[0] for k in ("nnexp", "torch", "sklearn", "gemm", "gemm_needed"))
        labels = {"nnexp": "nnexp", "torch": "pytorch", "sklearn": "sklearn",
                  "gemm": "GEMM bound (3 GEMMs per layer)",
                  "gemm_needed": "GEMMs nnexp needs (no input-layer d/dX)"}
        for key, (med, best) in stats.items():
            print(f"  {labels[key]:40s} {fmt(med)}  (min {fmt(best).strip()})", flush=True)
        rows_out.append((case, t_np, t_torch, t_sk, gemm, gemm_need))

    print("\n| case | nnexp | PyTorch | MLPClassifier | GEMM bound | nnexp / PyTorch | "
          "MLPClassifier / nnexp | nnexp / GEMM bound |")
    print("|---|---|---|---|---|---|---|---|")
    for case, t_np, t_torch, t_sk, gemm, gemm_need in rows_out:
        torch_max, sk_min, gemm_max = TARGETS[case]

        def verdict(ok: bool) -> str:
            return "ok" if ok else "MISSED"

        r_torch = (f"{t_np / t_torch:.2f}x (target <= {torch_max}: "
                   f"{verdict(t_np / t_torch <= torch_max)})" if t_torch else "-")
        r_sk = (f"{t_sk / t_np:.2f}x faster (target >= {sk_min}: {verdict(t_sk / t_np >= sk_min)})"
                if t_sk else "-")
        r_gemm = (f"{t_np / gemm:.2f}x (target <= {gemm_max}: {verdict(t_np / gemm <= gemm_max)}); "
                  f"{t_np / gemm_need:.2f}x of the GEMMs it needs" if gemm else "-")
        gemm_cell = f"{fmt(gemm).strip()} ({fmt(gemm_need).strip()} needed)" if gemm else "-"
        print(f"| {case} | {fmt(t_np).strip()} | {fmt(t_torch).strip()} | {fmt(t_sk).strip()} | "
              f"{gemm_cell} | {r_torch} | {r_sk} | {r_gemm} |")

    if "large" in args.cases:
        rows, dims, act, batch, _ = CASES["large"]
        X, y = make_data(rows, dims[0], dims[-1])
        p2, p7 = memory_check(X, y, dims, act, batch)
        ok = p7 <= 1.2 * p2 + 65_536
        print(f"\ntracemalloc peak above start, large case: epochs 2-3 {p2 / 1e6:.2f} MB, "
              f"epochs 2-8 {p7 / 1e6:.2f} MB (data set {X.nbytes / 1e6:.0f} MB) -> "
              f"{'constant working set' if ok else 'GROWS'}")
    print(f"load average at end: {_loadavg()}")
    sys.stdout.flush()


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "n/a"


if __name__ == "__main__":
    main()
