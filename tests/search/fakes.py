"""Stand-ins for training, so runner, store and report tests run in milliseconds.

The fake is a pure function of the spec: its score depends on the searched
values plus seed noise, and some values trigger the failure modes under test.
"""

from __future__ import annotations

import math
import os
import signal
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

ACT_SCORE = {"relu": 0.90, "tanh": 0.85, "logistic": 0.70, "elu": 0.88, "gelu": 0.89}


@dataclass
class FakeResult:
    status: str
    metrics: dict
    history: list = field(default_factory=list)


def fake_train(spec, prepared=None):
    """val_accuracy ~ activation score + lr bonus + seed noise; lr >= 1e5 diverges;
    softplus raises; identity kills its own process (like the OS's OOM killer)."""
    act = spec.model.activation.name
    if act == "softplus":
        raise ValueError("fake failure\nsecond line")
    if act == "identity":
        os.kill(os.getpid(), signal.SIGKILL)
    if act == "swish":
        time.sleep(0.3)
    lr = spec.optimizer.lr
    rng = np.random.default_rng([spec.seed, zlib.crc32(act.encode())])
    if lr >= 1e5:
        nan = float("nan")
        return FakeResult("diverged", {"train_loss": nan, "val_loss": float("inf"), "val_accuracy": nan,
                                        "epochs_run": 2, "best_epoch": 1, "seconds": 0.01, "diverged_epoch": 2},
                          [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2, "val_accuracy": 0.3},
                           {"epoch": 2, "train_loss": nan, "val_loss": nan, "val_accuracy": nan}])
    score = ACT_SCORE.get(act, 0.8) + 0.02 * math.log10(lr) + rng.normal(0, 0.01)
    loss = 1.0 - score + rng.normal(0, 0.005)
    epochs = spec.train.epochs
    history = [{"epoch": e + 1, "train_loss": loss * (epochs / (e + 1)), "val_loss": loss * (epochs / (e + 1)) + 0.01,
                "val_accuracy": score * (e + 1) / epochs, "lr": lr} for e in range(epochs)]
    metrics = {"train_loss": loss - 0.01, "train_accuracy": score + 0.01, "val_loss": loss, "val_accuracy": score,
               "val_f1": score - 0.01, "test_loss": loss + 0.01, "test_accuracy": score - 0.005,
               "epochs_run": epochs, "best_epoch": epochs, "seconds": 0.001, "seconds_per_epoch": 0.001 / epochs,
               "diverged_epoch": None}
    return FakeResult("ok", metrics, history)


def gc_train(spec, prepared=None):
    """fake_train, with the threshold of this process's youngest garbage-collector generation."""
    import gc

    result = fake_train(spec, prepared)
    result.metrics["gc_young"] = gc.get_threshold()[0]
    return result


def no_data(spec):
    return None


def sigint_train(spec, prepared=None):
    """fake_train, with val_accuracy 1 when this process ignores Ctrl-C (SIGINT) and 0 when it does not."""
    result = fake_train(spec, prepared)
    result.metrics["val_accuracy"] = float(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)
    return result
