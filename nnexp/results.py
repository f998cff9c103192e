"""Result files of one run (spec-format.md section 4), written atomically, and model loading.

Every file is written to a temporary name in the same folder and renamed into
place, so a crash never leaves a half-written file that looks complete.
"""

from __future__ import annotations

import json
import math
import os
import signal
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnexp import __version__
from nnexp.errors import DataError, StorageError, first_line, said_as
from nnexp.interrupts import ignoring
from nnexp.spec import ExperimentSpec, dump_yaml

MODEL_FORMAT = 1


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write a whole file or nothing: temp file in the same folder, fsync, rename."""
    path = Path(path)
    tmp = staged_write(path, data)
    try:
        os.replace(tmp, path)
    except BaseException as exc:
        unlink_quietly(tmp)
        if isinstance(exc, OSError):
            raise StorageError.writing(path, exc) from None
        raise


def staged_write(path: Path, data: bytes | str) -> Path:
    """`path`'s contents, written whole and fsynced under a temporary name beside it (returned):
    renaming it onto `path` is then all that is left."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise StorageError.writing(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):  # mkstemp makes 0600; results are for sharing, as the umask says
                os.fchmod(handle.fileno(), 0o666 & ~_umask())
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as exc:
        unlink_quietly(Path(tmp))
        if isinstance(exc, OSError):
            raise StorageError.writing(path, exc) from None
        raise
    return Path(tmp)


def _umask() -> int:
    """The process's umask (reading it means setting it: put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def ensure_folder(folder: Path) -> Path:
    """mkdir -p, with a failure (read-only, no permission, disk full) as a StorageError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError.writing(folder, exc, "cannot create the results folder") from None
    return folder


def json_safe(value):
    """NaN/inf become null and NumPy scalars plain numbers, so the JSON is valid."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


RUN_FILES = ("spec.yaml", "metrics.json", "history.csv", "predictions.csv", "classes.csv", "model.npz",
             "learning_curves.png")


def write_run(result, folder: Path, plots: bool = True, on_written: Callable[[], None] | None = None) -> dict[str, Path]:
    """Write spec.yaml, metrics.json, history.csv, predictions.csv, classes.csv, model.npz (and learning_curves.png): all or
    none. Each is first written whole under a temporary name; only when every one is written do
    they replace the earlier run's files, and those this run has none of (a diverged run's
    model, whose spec and metrics it would contradict) go. A write that fails, or a Ctrl-C,
    leaves the earlier run's files as they were. `on_written` is called once the new files are
    in place, before a Ctrl-C can interrupt again (the CLI then knows what to say)."""
    import pandas as pd

    folder = ensure_folder(Path(folder))
    _remove_leftovers(folder)
    for name in RUN_FILES:
        if (folder / name).is_dir():  # it would be moved aside and left there
            raise StorageError(f"{folder / name}: is a folder, where this run writes a file")
    metrics = dict(result.metrics)
    if result.folds:
        metrics["folds"] = result.folds
    contents = {"spec.yaml": lambda: dump_yaml(result.spec),
                "metrics.json": lambda: json.dumps(json_safe(metrics), indent=2) + "\n",
                "history.csv": lambda: pd.DataFrame(result.history).to_csv(index=False)}
    predictions = result.predictions()
    if predictions is not None:
        contents["predictions.csv"] = lambda: predictions.to_csv(index=False)
    classes = result.class_report()
    if classes is not None:
        contents["classes.csv"] = lambda: classes.to_csv(index=False)
    if result.network is not None and result.status == "ok":
        contents["model.npz"] = lambda: model_bytes(result)
    staged: dict[str, Path] = {}
    try:
        for name, make in contents.items():
            staged[name] = staged_write(folder / name, make())
        if plots and result.history:
            train = result.spec.train
            figure = plot_learning_curves(result.history, result.prepared.task, bool(train.l1 or train.l2),
                                          weighted=train.class_weight is not None)
            staged["learning_curves.png"] = staged_write(folder / "learning_curves.png", png_bytes(figure))
    except BaseException:
        with ignoring(signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not stop the cleanup
            for path in staged.values():
                unlink_quietly(path)
        raise
    with ignoring(signal.SIGINT, signal.SIGTERM):  # half a swap, or half a rollback, would leave two runs' files side by side
        try:
            _swap_in(folder, staged)
        finally:
            for path in staged.values():
                unlink_quietly(path)  # what was not renamed into place
        if on_written is not None:
            on_written()
    return {name: folder / name for name in staged}


def _swap_in(folder: Path, staged: dict[str, Path]) -> None:
    """Move every earlier run file aside, rename the staged ones onto their names, then drop what
    was moved aside; if a rename fails, put the earlier files back."""
    done: list[tuple[Path, Path | None, bool]] = []  # (name, the earlier file moved aside, new one in place)
    failing = folder
    try:
        for name in RUN_FILES:
            final = failing = folder / name
            backup = folder / f".{name}.old-{os.getpid()}" if os.path.lexists(final) else None
            if backup is not None:
                os.rename(final, backup)
            done.append((final, backup, False))
            if name in staged:
                os.replace(staged[name], final)
                done[-1] = (final, backup, True)
    except OSError as exc:
        left = []  # what the rollback could not undo, said in the error
        for final, backup, placed in reversed(done):
            try:
                if backup is not None:
                    os.rename(backup, final)  # over this run's file, if placed: the name is the earlier run's again
                elif placed:
                    os.unlink(final)
            except OSError:
                left.append(f"the earlier {final.name} is kept as {backup.name}" if backup is not None
                            else f"this run's {final.name} is left in place")
        where = f"; {', '.join(left)}" if left else ""
        raise StorageError([p + where for p in StorageError.writing(failing, exc).problems]) from None
    for _, backup, _ in done:
        if backup is not None:
            unlink_quietly(backup)


def _remove_leftovers(folder: Path) -> None:
    """Temporary and moved-aside run files of a run killed while writing (kill -9, power cut)."""
    for name in RUN_FILES:
        for leftover in (*folder.glob(f".{name}.old-*"), *folder.glob(f".{name}.*.tmp")):
            unlink_quietly(leftover)


def unlink_quietly(path: Path) -> None:
    """Remove a file if it is there; a folder that no longer allows it keeps it (cleanup only)."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def model_bytes(result) -> bytes:
    """The network's weights, the fitted preprocessing and the spec, as one .npz."""
    import io

    meta = {
        "format": MODEL_FORMAT,
        "nnexp": __version__,
        "spec": result.spec.model_dump(mode="json"),
        "task": result.prepared.task,
        "n_in": int(result.prepared.X_train.shape[1]),
        "n_outputs": int(result.prepared.n_outputs),
        "class_names": result.prepared.class_names,
        "feature_names": list(result.prepared.feature_names),
    }
    arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(json_safe(meta)))}
    arrays.update({f"net.{k}": v for k, v in result.network.get_state().items()})
    arrays.update(result.prepared.preprocessor.to_arrays())
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


@dataclass
class SavedModel:
    """A trained network with the preprocessing it was trained behind."""

    spec: ExperimentSpec
    task: str
    class_names: list[str] | None
    network: Any
    preprocessor: Any

    def predict_output(self, X: np.ndarray) -> np.ndarray:
        return self.network.predict(X)


def _why_no_model(folder: Path) -> str:
    """A run folder without model.npz: a run that diverged writes none; say so (else nothing)."""
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return ""
    if isinstance(metrics, dict) and metrics.get("status") == "diverged":
        from nnexp.train import divergence_advice

        epoch, cause = metrics.get("diverged_epoch"), metrics.get("diverged_because")
        return (f": the run in {folder} diverged{f' at epoch {epoch}' if epoch else ''}"
                f"{f' ({cause})' if isinstance(cause, str) else ''}, so it saved no model "
                f"({divergence_advice(cause if isinstance(cause, str) else None)}, and run it again)")
    return ""


def load_model(path: str | os.PathLike) -> SavedModel:
    """Rebuild a network and its preprocessing from model.npz."""
    import zipfile
    import zlib

    from nnexp.build import build_network
    from nnexp.data import Preprocessor

    path = Path(path)
    if path.is_dir():
        path = path / "model.npz"
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:  # our `with` closes a bad file too
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise DataError(f"{path}: file not found{_why_no_model(path.parent)}") from None
    except (OSError, ValueError, EOFError, MemoryError, zipfile.BadZipFile, zlib.error):  # numpy's reasons ("load it
        # unsafely") are no advice for a model; an empty or cut-off file is one of these too
        raise DataError(f"{path}: not an nnexp model file, or a damaged one (expected the model.npz that "
                        f"{said_as('`nnexp run`', 'nnexp.run_experiment')} writes, or its folder)") from None
    if "meta" not in arrays:
        raise DataError(f"{path}: not an nnexp model file (no 'meta' entry)")
    try:
        meta = json.loads(str(arrays["meta"]))
        spec = ExperimentSpec.model_validate(meta["spec"])
        network = build_network(spec.model, meta["n_in"], meta["task"], meta["n_outputs"],
                                np.random.default_rng(0), spec.train.dtype)
        network.set_state({k[len("net."):]: v for k, v in arrays.items() if k.startswith("net.")})
        preprocessor = Preprocessor.from_arrays({k: v for k, v in arrays.items() if k.startswith("prep.")})
        model = SavedModel(spec, meta["task"], meta["class_names"], network, preprocessor)
        _check_consistent(model)
        return model
    except (KeyError, ValueError, TypeError, IndexError, AttributeError, DataError) as exc:  # edited, or not ours
        reason = str(exc).removeprefix("model: ") if isinstance(exc, DataError) else first_line(exc, 120)
        raise DataError(f"{path}: a damaged nnexp model file ({reason}); train it again with "
                        f"{said_as('`nnexp run`', 'nnexp.run_experiment')}") from None


def _check_consistent(model: SavedModel) -> None:
    """One made-up row through the preprocessing and the network: parts that do not fit each other
    (an array cut short, names of the wrong type) fail here, as a damaged file, not mid-prediction."""
    import pandas as pd

    pre = model.preprocessor
    names = model.class_names
    if model.task not in ("classification", "regression") or pre.task != model.task:
        raise ValueError(f"the task of the network ({model.task!r}) and of the preprocessing ({pre.task!r}) differ")
    if model.task == "classification":
        if not (isinstance(names, list) and len(names) >= 2 and all(isinstance(n, str) for n in names)):
            raise ValueError("class_names must be a list of at least 2 texts")
        if names != pre.class_names:
            raise ValueError("the class names of the network and of the preprocessing differ")
    row = pd.DataFrame({c: [pre.levels[c][0] if cat and pre.levels.get(c) else 0.0]
                        for c, cat in zip(pre.columns, pre.categorical)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unseen level, a constant column: this row is made up
        X = pre.transform_features(row, source="model")
    outputs = np.asarray(model.network.predict(X.astype(model.network.dtype, copy=False))).reshape(1, -1).shape[1]
    if model.task == "classification" and outputs != (1 if len(names) == 2 else len(names)):
        raise ValueError(f"the network has {outputs} outputs for {len(names)} classes")
    if model.task == "regression" and outputs != 1:
        raise ValueError(f"the network has {outputs} outputs for one regression target")


def new_figure(**kwargs):
    """A matplotlib Figure outside pyplot: result plots are files, drawn by Agg whatever the
    backend, and the caller's pyplot (a notebook's inline backend, its open figures) is left alone."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def plot_learning_curves(history: list[dict], task: str, penalized: bool = False, weighted: bool = False):
    """The loss (train vs validation), the main validation metric and each layer's weight-gradient
    norm per epoch (log scale: a vanishing gradient shows as layers decades apart); under
    cross-validation those of the first fold, as the figure's title says. `penalized`,
    `weighted`: the training curve includes an L1/L2 penalty, or class weights, that the
    validation loss does not, and says so (else train above validation reads as a data problem)."""
    import pandas as pd
    from matplotlib.ticker import MaxNLocator

    frame = pd.DataFrame(history)
    fold = None
    if "fold" in frame:
        fold = frame["fold"].iloc[0]
        frame = frame[frame["fold"] == fold]
    metric = "val_accuracy" if task == "classification" else "val_rmse"
    grads = sorted((c for c in frame if c.startswith("grad_norm_") and frame[c].notna().any()),
                   key=lambda c: int(c.rsplit("_", 1)[1]))  # none when training stopped in its first epoch
    panels = 1 + (metric in frame) + bool(grads)
    fig = new_figure(figsize=(5 * panels, 4), layout="constrained")
    axes = list(fig.subplots(1, panels, squeeze=False)[0])
    marker = "o" if len(frame) < 2 else None  # one epoch is a point: a line alone draws nothing
    loss = axes.pop(0)
    loss.plot(frame["epoch"], frame["train_loss"], marker=marker,
              label="train (running, training mode" + (", + L1/L2 penalty" if penalized else "")
              + (", class-weighted" if weighted else "") + ")")
    if "val_loss" in frame:
        loss.plot(frame["epoch"], frame["val_loss"], marker=marker, label="validation")
    loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    loss.legend()
    if metric in frame:
        ax = axes.pop(0)
        ax.plot(frame["epoch"], frame[metric], color="C1", marker=marker)
        ax.set(xlabel="epoch", ylabel=metric, title=metric.replace("_", " "))
    if grads:
        ax = axes.pop(0)
        for i, c in enumerate(grads, start=1):
            ax.plot(frame["epoch"], frame[c], marker=marker, label="output" if i == len(grads) else f"layer {i}")
        ax.set(xlabel="epoch", ylabel="||dJ/dW|| (mean over mini-batches)", yscale="log",
               title="weight-gradient norm per layer")
        ax.legend(fontsize=8, ncol=2 if len(grads) > 6 else 1)
    for ax in fig.axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are counts (a 4-epoch run showed 1.25, 1.5)
    if fold is not None:
        fig.suptitle(f"fold {fold} of the cross-validation (metrics.json has the means over folds)")
    return fig


def png_bytes(fig) -> bytes:
    """A figure as PNG file contents (written then like any other result file)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def save_figure(fig, path: Path) -> None:
    """Save a figure as PNG atomically (temp name, fsync, rename); OS failures are StorageErrors."""
    atomic_write(Path(path), png_bytes(fig))
