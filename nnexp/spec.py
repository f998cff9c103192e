"""The experiment and search specs: pydantic models, YAML loading, friendly errors.

Every field has a default, unknown keys are errors with a "did you mean", and
every problem of a file is reported at once as `file: dotted.path: problem`.
This module knows nothing about NumPy or training: the engine and the data
layer read these models through small builder functions of their own.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import os
import unicodedata
import re
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    model_serializer,
    model_validator,
)

from nnexp.errors import OVERRIDE, SpecError, describe, said_as, warn

# --------------------------------------------------------------------------- names
# Registries elsewhere (engine, data) are keyed by exactly these names; tests
# assert that the two sets agree.
BUILTIN_DATASETS = (
    "iris", "wine", "breast_cancer", "digits", "diabetes", "friedman1",
    "xor", "moons", "circles", "spirals", "blobs",
)
DATA_FILE_SUFFIXES = (".csv", ".parquet", ".npz")
TASK_METRICS = {"classification": ("loss", "accuracy", "f1", "balanced_accuracy", "auc", "ap"),
                "regression": ("loss", "rmse", "mae", "r2")}
METRIC_NAMES = tuple(dict.fromkeys(name for names in TASK_METRICS.values() for name in names))
SPLITS = ("train", "val", "test")
LOWER_IS_BETTER = ("loss", "rmse", "mae")
MAX_SPEC_BYTES = 1_000_000
MAX_HIDDEN_WEIGHTS = 100_000_000  # 400 MB of float32 weights, before optimizer state

ACTIVATION_ALIASES = {"sigmoid": "logistic"}


def one_form(text) -> str:
    """A name or a text cell in one Unicode form (NFC): 'é' written as e + a combining accent, as
    files made on macOS often hold it, is the 'é' typed in a spec, as a person reads both."""
    return unicodedata.normalize("NFC", str(text))


def did_you_mean(word: str, choices) -> str:
    """A ` did you mean 'x'?` suffix, or '' when nothing is close (a word never suggests itself).
    A word that starts a choice is taken for that choice cut short (`val_acc` is val_accuracy,
    though val_auc is one letter away)."""
    word = str(word)
    names = [str(c) for c in choices if str(c) != word]
    completions = [name for name in names if name.startswith(word)] if len(word) >= 3 else []
    close = difflib.get_close_matches(word, completions or names, n=1, cutoff=0.0 if completions else 0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def metric_mode(metric: str) -> str:
    """'min' for losses and errors, 'max' for scores."""
    return "min" if metric.rsplit("_", 1)[-1] in LOWER_IS_BETTER else "max"


def _check_metric(value: str) -> str:
    known = [f"{s}_{m}" for s in SPLITS for m in METRIC_NAMES]
    if value not in known:
        rankable = [name for name in known if not name.startswith("test_")]  # test_ ones are refused anyway
        hint = f"; did you mean '{value.lower()}'?" if value.lower() in known else did_you_mean(value, known)
        raise ValueError(f"unknown metric '{value}'{hint} (one of {', '.join(rankable)})")
    return value


def _check_rankable(value: str) -> str:
    if value.startswith("test_"):  # the test split judges the choice, never makes it
        raise ValueError("never select on test data; rank by a val_ or train_ metric")
    return value


Metric = Annotated[str, AfterValidator(_check_metric)]
RankingMetric = Annotated[str, AfterValidator(_check_metric), AfterValidator(_check_rankable)]  # a search's, a report's


class Strict(BaseModel):
    """Base of every spec model: unknown keys are errors, never ignored."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_number(cls, data):
        """Lax pydantic reads YAML true/false as 1/0; a number field must get a number (`epochs: true` is a mistake).
        One check of the raw mapping per model: a validator on every field makes each model costlier to build."""
        if isinstance(data, dict):
            for field, value in data.items():
                if field in cls.model_fields and _holds_bool(value) and _wants_number_not_bool(cls, field):
                    raise ValueError(f"@{field}: expected a number, not a boolean (got {json.dumps(value, default=str)})")
        return data


def _holds_bool(value) -> bool:
    """A bool, or a list of values with one (`hidden: [32, true]`); mappings are their own models' business."""
    if isinstance(value, (list, tuple)):
        return any(map(_holds_bool, value))
    return isinstance(value, bool)


@functools.cache
def _wants_number_not_bool(model: type[BaseModel], field: str) -> bool:
    """True when a field's type names int or float somewhere but never bool."""
    atoms = _type_atoms(model.model_fields[field].annotation)
    return not any(a is bool for a in atoms) and any(a in (int, float) for a in atoms)


def _type_atoms(annotation) -> list:
    """The plain types inside an annotation (through Optional, unions, lists, tuples and Annotated)."""
    args = get_args(annotation)
    return [atom for arg in args for atom in _type_atoms(arg)] if args else [annotation]


# --------------------------------------------------------------------------- kinds
# A "kind" is a family of named choices, each with its own parameters
# (activations, initialisers, optimizers, schedules). It is written either as a
# bare name or as a mapping with `name` and that choice's parameters.


class Kind(Strict):
    """One named choice; serialises back to a bare name when it has no parameters."""

    name: str
    # fields another choice of the family uses that this one takes and ignores, with why
    IGNORED: ClassVar[dict[str, str]] = {}
    _ignored: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _set_aside_ignored(cls, data, handler):
        given = tuple(k for k in cls.IGNORED if isinstance(data, dict) and k in data)
        if given:
            for key in given:
                _check_ignored_value(key, data[key])
            data = {k: v for k, v in data.items() if k not in given}
        made = handler(data)
        if given:  # (a model passed in again keeps what it set aside)
            made._ignored = given
        return made

    def ignored_fields(self, path: str) -> list[str]:
        """`path.<field>: why` for each field given that this choice ignores."""
        return [f"{path}.{key}: {self.IGNORED[key]}" for key in self._ignored]

    @model_serializer(mode="wrap")
    def _compact(self, handler):
        data = handler(self)
        return data["name"] if len(data) == 1 else data

    def params(self) -> dict[str, Any]:
        """The choice's parameters, without its name."""
        return {k: getattr(self, k) for k in type(self).model_fields if k != "name"}


def _check_ignored_value(key: str, value) -> None:
    """An ignored field is still checked as its users check it (a momentum in [0, 1); text that
    is a plain number is that number, as for every number field)."""
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 <= number < 1:
        raise ValueError(f"@{key}: must be a number in [0, 1), got {describe(value)}")


def _tag(value) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return value.get("name")
    return getattr(value, "name", None)


def _a(word: str) -> str:
    """`word` with its indefinite article: 'an optimizer', 'a schedule'."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def kind_type(family: str, choices: list[type[Kind]], aliases: dict[str, str] | None = None, default: str | None = None):
    """An annotated union of Kind classes selected by `name`, with friendly errors. A mapping
    without `name` means the `default` choice when that takes all of its keys (`{lr: 0.01}`)."""
    by_name = {c.model_fields["name"].default: c for c in choices}
    aliases = aliases or {}

    def normalise(value):
        if isinstance(value, Kind):
            return value
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict):
            raise ValueError(f"expected {_a(family)} name or a mapping with 'name', got {describe(value)}")
        if "name" not in value and default is not None and all(k in by_name[default].model_fields for k in value):
            value = {"name": default, **value}  # as `--set optimizer.lr=0.01` gives the default optimizer
        if "name" not in value:
            anywhere = sorted({k for c in choices for k in c.model_fields} - {"name"})
            typo = next((k for k in value if k not in anywhere), None)  # a parameter of no choice: a misspelling
            if typo is not None:
                raise ValueError(f"@{typo}: unknown field{did_you_mean(str(typo), anywhere)}")
            raise ValueError(f"{_a(family)} mapping needs a 'name' (one of {', '.join(by_name)})")
        name = value["name"]
        if not isinstance(name, str):
            raise ValueError(f"@name: expected {_a(family)} name, got {describe(name)}")
        name = aliases.get(name, name)
        if name not in by_name:
            raise ValueError(
                f"unknown {family} '{value['name']}'{did_you_mean(value['name'], [*by_name, *aliases])}"
                f" (one of {', '.join(by_name)})"
            )
        cls = by_name[name]
        extra = [k for k in value if k != "name" and k not in cls.model_fields and k not in cls.IGNORED]
        if extra:
            own = [k for k in cls.model_fields if k != "name"]
            has = f"its parameters: {', '.join(own)}" if own else "it takes none"
            raise ValueError(f"@{extra[0]}: not a parameter of {family} '{name}' ({has}){did_you_mean(str(extra[0]), own)}")
        return {**value, "name": name}

    union = Union[tuple(Annotated[c, Tag(f"~{n}")] for n, c in by_name.items())]  # noqa: UP007
    return Annotated[
        union,
        Discriminator(lambda v: f"~{_tag(v)}"),
        BeforeValidator(normalise),
    ]


def _kind(name: str, family: str, base: type[Kind] = Kind, **fields) -> type[Kind]:
    """Declare one choice of a kind family: its literal name and its parameter fields."""
    annotations = {"name": Literal[name]}
    namespace: dict[str, Any] = {"name": name, "__doc__": f"The {family} '{name}'."}
    for field, (annotation, default) in fields.items():
        annotations[field] = annotation
        namespace[field] = default
    namespace["__annotations__"] = annotations
    cls_name = "".join(p.capitalize() for p in f"{family}_{name}".split("_"))
    namespace.update(__module__=__name__, __qualname__=cls_name)  # found again by pickle (a spec sent to a process)
    made = globals()[cls_name] = type(cls_name, (base,), namespace)
    return made


KIND_DEFAULTS = {  # the choice each family's field defaults to
    "model.activation": "relu",
    "model.init": "he",
    "optimizer": "adam",
    "optimizer.schedule": "constant",
}

PositiveFloat = Annotated[float, Field(gt=0)]
UnitFloat = Annotated[float, Field(ge=0, lt=1)]

ACTIVATION_CHOICES = [
    _kind("logistic", "activation"),
    _kind("tanh", "activation"),
    _kind("hard_logistic", "activation"),
    _kind("hard_tanh", "activation"),
    _kind("relu", "activation"),
    _kind("leaky_relu", "activation", slope=(Annotated[float, Field(gt=0, lt=1)], 0.01)),
    _kind("prelu", "activation", init=(Annotated[float, Field(ge=0, lt=1)], 0.25)),
    _kind("softplus", "activation"),
    _kind("maxout", "activation", pieces=(Annotated[int, Field(ge=2, le=16)], 2)),
    _kind("elu", "activation", alpha=(PositiveFloat, 1.0)),
    _kind("gelu", "activation"),
    _kind("swish", "activation"),
    _kind("identity", "activation"),
]
Activation = kind_type("activation", ACTIVATION_CHOICES, ACTIVATION_ALIASES, default=KIND_DEFAULTS["model.activation"])

INIT_CHOICES = [
    _kind("zeros", "initialiser"),
    _kind("gaussian", "initialiser", std=(PositiveFloat, 0.01)),
    _kind("uniform", "initialiser", limit=(PositiveFloat, 0.05)),
    _kind("xavier", "initialiser", gain=(PositiveFloat | None, None)),
    _kind("xavier_normal", "initialiser", gain=(PositiveFloat | None, None)),
    _kind("he", "initialiser"),
    _kind("he_uniform", "initialiser"),
    _kind("lecun", "initialiser"),
]
Init = kind_type("initialiser", INIT_CHOICES, default=KIND_DEFAULTS["model.init"])

SCHEDULE_CHOICES = [
    _kind("constant", "schedule"),
    _kind("step", "schedule", every=(Annotated[int, Field(ge=1)], 10), factor=(Annotated[float, Field(gt=0, le=1)], 0.5)),
    _kind("exponential", "schedule", gamma=(Annotated[float, Field(gt=0, le=1)], 0.95)),
    _kind("cosine", "schedule", min_lr=(Annotated[float, Field(ge=0)], 0.0)),
]
Schedule = kind_type("schedule", SCHEDULE_CHOICES, default=KIND_DEFAULTS["optimizer.schedule"])

_Momentum = Annotated[float, Field(ge=0, lt=1)]
_Beta = Annotated[float, Field(ge=0, lt=1)]


class _OptimizerKind(Kind):
    """Base of the optimizers: checks the schedule against the learning rate it scales."""

    @model_validator(mode="after")
    def _schedule_decays(self):
        min_lr = getattr(self.schedule, "min_lr", None)
        if min_lr is not None and min_lr > self.lr:
            raise ValueError(f"@schedule.min_lr: must be <= lr ({self.lr}), got {min_lr}: "
                             "cosine decays from lr down to min_lr")
        return self


def _optimizer(name: str, lr: float, base: type[Kind] = _OptimizerKind, **fields) -> type[Kind]:
    """Every optimizer takes a learning rate (with its own default) and a schedule."""
    return _kind(name, "optimizer", base, lr=(PositiveFloat, lr), **fields, schedule=(Schedule, KIND_DEFAULTS["optimizer.schedule"]))


class _SgdKind(_OptimizerKind):
    """Plain SGD takes the momentum of the momentum optimizers (as in the contract's example,
    `{name: sgd, lr: 0.1, momentum: 0.9}`) and ignores it, with a warning."""

    IGNORED: ClassVar[dict[str, str]] = {
        "momentum": "only the momentum and nesterov optimizers use it; sgd ignores it "
                    "(SGD with momentum is `name: momentum`)"}


OPTIMIZER_CHOICES = [
    _optimizer("sgd", 0.1, _SgdKind),
    _optimizer("momentum", 0.01, momentum=(_Momentum, 0.9)),
    _optimizer("nesterov", 0.01, momentum=(_Momentum, 0.9)),
    _optimizer("adagrad", 0.01, eps=(PositiveFloat, 1e-8)),
    _optimizer("rmsprop", 0.001, rho=(_Beta, 0.9), eps=(PositiveFloat, 1e-8)),
    _optimizer("adadelta", 1.0, rho=(_Beta, 0.95), eps=(PositiveFloat, 1e-6)),
    _optimizer("adam", 0.001, beta1=(_Beta, 0.9), beta2=(_Beta, 0.999), eps=(PositiveFloat, 1e-8)),
]
Optimizer = kind_type("optimizer", OPTIMIZER_CHOICES, default=KIND_DEFAULTS["optimizer"])

ACTIVATION_NAMES = tuple(c.model_fields["name"].default for c in ACTIVATION_CHOICES)
INIT_NAMES = tuple(c.model_fields["name"].default for c in INIT_CHOICES)
OPTIMIZER_NAMES = tuple(c.model_fields["name"].default for c in OPTIMIZER_CHOICES)
SCHEDULE_NAMES = tuple(c.model_fields["name"].default for c in SCHEDULE_CHOICES)


# --------------------------------------------------------------------------- sections


def _check_pca_components(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a whole number of components (>= 1) or a fraction of variance in (0, 1)")
    if isinstance(value, float) and value == 1:  # as a fraction it means all the variance; it used to become 1 component
        raise ValueError("1.0 is ambiguous: write 1 for one component, or a variance fraction below 1 (e.g. 0.99)")
    if isinstance(value, float) and value.is_integer() and value > 1:
        value = int(value)
    if isinstance(value, int):
        if value < 1:
            raise ValueError("a number of components must be >= 1")
        return value
    if not 0 < value < 1:
        raise ValueError(f"a variance fraction must be in (0, 1), got {value}")
    return value


def _check_train_size(value):
    if value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number of rows (>= 1) or a fraction in (0, 1]")
    if isinstance(value, int) and value < 1 or isinstance(value, float) and not 0 < value <= 1:
        raise ValueError(f"must be a number of rows (>= 1) or a fraction in (0, 1], got {value}")
    return value


def class_text(value) -> str | None:
    """A class named in a spec, as the data names its classes: numbers as text (`1` and `1.0` are
    the class '1', `0.5` the class '0.5'), YAML's true / false as the classes of a true/false column
    ('True', 'False'); None for anything else (a list, a mapping)."""
    if isinstance(value, str):
        return one_form(value)  # as the data's cells are read
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return str(int(value)) if float(value).is_integer() else str(float(value))
    return None


def _check_positive_class(value):
    if value is None:
        return value
    name = class_text(value)
    if name is None:
        raise ValueError(f"expected a class name, got {json.dumps(value, default=str)}")
    return name


POSITIVE_CLASS_ONLY = "only for a two-class classification task"


class DataSpec(Strict):
    """Where the rows come from, how they are split and normalised."""

    dataset: str = "iris"
    target: str | None = None
    task: Literal["auto", "classification", "regression"] = "auto"
    drop: list[str] = Field(default_factory=list)  # feature columns left out (an id, a leak)
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2
    test_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2
    normalize: Literal["none", "zscore", "minmax", "pca"] = "zscore"
    pca_components: Annotated[Any, AfterValidator(_check_pca_components)] = 0.95
    pca_whiten: bool = False
    cv_folds: Annotated[int, Field(ge=0, le=100)] = 0
    impute: Literal["none", "mean", "median"] = "none"
    train_size: Annotated[Any, AfterValidator(_check_train_size)] = None
    max_categories: Annotated[int, Field(ge=2)] = 100
    n_samples: Annotated[int, Field(ge=4, le=10_000_000)] = 1000
    noise: Annotated[float, Field(ge=0)] | None = None
    # two classes: the one AUC, AP and the threshold score, and a single logistic unit predicts
    positive_class: Annotated[str | None, BeforeValidator(_check_positive_class)] = None

    @model_validator(mode="after")
    def _fractions(self):
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"@val_fraction: val_fraction + test_fraction must be < 1, got "
                f"{self.val_fraction} + {self.test_fraction}"
            )
        if self.cv_folds == 1:
            raise ValueError("@cv_folds: must be 0 (one validation split) or >= 2 folds")
        self.target = None if self.target is None else one_form(self.target)  # as the data's names are read
        self.drop = [one_form(c) for c in self.drop]
        twice = sorted({c for c in self.drop if self.drop.count(c) > 1})
        if twice:
            raise ValueError(f"@drop: '{twice[0]}' is listed twice")
        self.drop = sorted(self.drop)  # a set of columns: [id, city] and [city, id] are one experiment
        suffix = Path(self.dataset).suffix.lower()
        if not self.is_builtin and suffix and suffix not in DATA_FILE_SUFFIXES:
            raise ValueError(f"@dataset: '{self.dataset}': unsupported file type '{suffix}' (use "
                             f"{', '.join(DATA_FILE_SUFFIXES)}; unpack a compressed file first)")
        if not self.is_builtin and suffix not in DATA_FILE_SUFFIXES:
            raise ValueError(
                f"@dataset: unknown dataset '{self.dataset}'{did_you_mean(self.dataset, BUILTIN_DATASETS)}"
                f" (built-in: {', '.join(BUILTIN_DATASETS)}; or a path to a {'/'.join(DATA_FILE_SUFFIXES)} file)"
            )
        return self

    @property
    def is_builtin(self) -> bool:
        return self.dataset in BUILTIN_DATASETS

    @model_validator(mode="after")
    def _task_of_a_builtin(self):
        own = self.builtin_task
        if own is not None and self.task not in ("auto", own):
            raise ValueError(f"@task: '{self.dataset}' is a {own} data set, not {self.task}")
        if self.positive_class is not None and "regression" in (own, self.task):
            raise ValueError(f"@positive_class: {POSITIVE_CLASS_ONLY}, and this is a regression task")
        return self

    @property
    def builtin_task(self) -> str | None:
        if not self.is_builtin:
            return None
        from nnexp.data.datasets import DATASETS

        return DATASETS[self.dataset].task

    @property
    def has_validation(self) -> bool:
        """A validation split or cross-validation folds: val_ metrics are computed."""
        return self.val_fraction > 0 or self.cv_folds >= 2

    @property
    def known_task(self) -> str | None:
        """The task before any row is read: data.task, or a built-in's own; None for a file left to 'auto'."""
        return self.builtin_task or (None if self.task == "auto" else self.task)

    def ignored_fields(self, searched: Iterable[str] = ()) -> list[str]:
        """Fields set to something that this data set or normalisation does not use, as
        `data.<field>: why` lines (warnings: in a search another configuration may use them).
        Nothing is said of a field whose meaning depends on a `searched` space key."""
        from nnexp.data.datasets import DATASETS

        synthetic = self.is_builtin and DATASETS[self.dataset].kind == "synthetic"
        fields = type(self).model_fields
        lines = []
        if not is_searched("data.dataset", searched):
            if self.target is not None and self.is_builtin:
                lines.append(f"data.target: '{self.dataset}' is a built-in data set with its own target; target is ignored")
            for name in ("n_samples", "noise"):
                if getattr(self, name) != fields[name].default and not synthetic:
                    lines.append(f"data.{name}: only the synthetic data sets use it; '{self.dataset}' ignores it")
        if not is_searched("data.normalize", searched) and self.normalize != "pca":
            for name in ("pca_components", "pca_whiten"):
                if getattr(self, name) != fields[name].default:
                    lines.append(f"data.{name}: only used with normalize: pca; {self.normalize} ignores it")
        return lines


def is_searched(path: str, space: Iterable[str]) -> bool:
    """Whether a search varies `path`: by its own key or by its whole section's (`data: [...]`)."""
    space = set(space)
    return path in space or path.split(".", 1)[0] in space


class DropoutSpec(Strict):
    """Separate drop probabilities for the input layer and the hidden layers."""

    input: UnitFloat = 0.0
    hidden: UnitFloat = 0.0


def _dropout_tag(value) -> str:
    return "rates" if isinstance(value, (dict, DropoutSpec)) else "p"


Dropout = Annotated[
    Union[Annotated[UnitFloat, Tag("p")], Annotated[DropoutSpec, Tag("rates")]],  # noqa: UP007
    Discriminator(_dropout_tag),
]


def _activation_list_tag(value) -> str:
    return "per-layer" if isinstance(value, list) else "all-layers"


ActivationSetting = Annotated[
    Union[Annotated[Activation, Tag("all-layers")], Annotated[list[Activation], Tag("per-layer")]],  # noqa: UP007
    Discriminator(_activation_list_tag),
]


class ModelSpec(Strict):
    """The network: widths, activations, initialisation, dropout, batch norm."""

    hidden: list[Annotated[int, Field(ge=1, le=100_000)]] = Field(default_factory=lambda: [64])
    activation: ActivationSetting = KIND_DEFAULTS["model.activation"]
    init: Init = KIND_DEFAULTS["model.init"]
    dropout: Dropout = 0.0
    batch_norm: bool = False

    @model_validator(mode="after")
    def _size(self):
        between = sum(a * b for a, b in zip(self.hidden, self.hidden[1:]))
        if between > MAX_HIDDEN_WEIGHTS:
            raise ValueError(f"@hidden: {between:,} weights between hidden layers; more than the "
                             f"{MAX_HIDDEN_WEIGHTS:,} a CPU engine can train sensibly")
        return self

    @model_validator(mode="after")
    def _per_layer(self):
        if isinstance(self.activation, list) and len(self.activation) != len(self.hidden):
            raise ValueError(
                f"@activation: a per-layer list needs one entry per hidden layer: "
                f"got {len(self.activation)} for {len(self.hidden)} hidden layers"
            )
        return self

    def layer_activations(self) -> list:
        """One activation per hidden layer."""
        if isinstance(self.activation, list):
            return list(self.activation)
        return [self.activation] * len(self.hidden)

    def dropout_rates(self) -> tuple[float, float]:
        """(input, hidden) drop probabilities; a bare number applies to hidden units."""
        if isinstance(self.dropout, DropoutSpec):
            return self.dropout.input, self.dropout.hidden
        return 0.0, float(self.dropout)


def _check_monitor(value: str) -> str:
    known = ["train_loss", *(f"val_{m}" for m in METRIC_NAMES)]
    if value not in known:
        raise ValueError(f"cannot monitor '{value}'{did_you_mean(value, known)} (one of {', '.join(known)})")
    return value


class EarlyStoppingSpec(Strict):
    """Stop when the monitored metric has not improved for `patience` epochs."""

    patience: Annotated[int, Field(ge=1)] = 10
    monitor: Annotated[str, AfterValidator(_check_monitor)] = "val_loss"
    min_delta: Annotated[float, Field(ge=0)] = 0.0


BOUNDED_METRICS = ("accuracy", "f1", "balanced_accuracy", "auc", "ap")  # shares: from 0 to 1


class TargetSpec(Strict):
    """A level of a metric whose first epoch is reported as `epochs_to_target` (speed of learning)."""

    monitor: Annotated[str, AfterValidator(_check_monitor)] = "val_loss"
    value: float

    @model_validator(mode="after")
    def _reachable(self):
        if self.monitor.split("_", 1)[-1] in BOUNDED_METRICS and not 0 <= self.value <= 1:
            raise ValueError(f"@value: must be between 0 and 1 for {self.monitor} (a share), got {self.value:g}")
        return self


def _check_class_weight(value):
    """'balanced', or {class: weight} with the classes as the data names them (keys as class_text
    reads them: a mapping given in Python may key them by number or bool; YAML keys are text)."""
    if value is None or value == "balanced":
        return value
    if not isinstance(value, dict):
        raise ValueError(f"expected 'balanced' or a mapping {{class: weight}}, got {json.dumps(value, default=str)}")
    if not value:
        raise ValueError("a mapping {class: weight} needs at least one class (leave the field out for equal weights)")
    weights = {}
    for key, weight in value.items():
        if isinstance(weight, str):  # text that is a plain number is that number, as in every number field
            try:
                weight = float(weight)
            except ValueError:
                pass
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"the weight of class '{key}' must be a positive number, got {json.dumps(weight, default=str)}")
        name = class_text(key) or str(key)
        if name in weights:  # 1 and '1', or 'é' written two ways: one class
            raise ValueError(f"class '{name}' is given twice")
        weights[name] = float(weight)
    return weights


class TrainSpec(Strict):
    """The fit loop: epochs, batch size, penalties, class weights, early stopping, precision."""

    epochs: Annotated[int, Field(ge=1, le=1_000_000)] = 50
    batch_size: Annotated[int, Field(ge=1)] = 64
    l2: Annotated[float, Field(ge=0)] = 0.0
    l1: Annotated[float, Field(ge=0)] = 0.0
    # classification: the training loss weights each row by its class's weight ('balanced': n / (K x n_class))
    class_weight: Annotated[Literal["balanced"] | dict[str, float] | None, BeforeValidator(_check_class_weight)] = None
    early_stopping: EarlyStoppingSpec | None = None
    target: TargetSpec | None = None
    time_limit: Annotated[float, Field(gt=0)] | None = None  # seconds of training; stops after the epoch that passes it
    dtype: Literal["float32", "float64"] = "float32"


MAX_NAME_BYTES = 255  # the longest file name most file systems take


def _check_folder_name(value: str) -> str:
    """Results go to <results-dir>/<name>/, so a name must stay one folder inside it."""
    if value == "":
        raise ValueError("must not be empty (leave it out to use the spec file's name)")
    if value in (".", "..") or any(c in value for c in "/\\\x00"):
        raise ValueError("must be a plain folder name (no '/', not '.' or '..')")
    if len(value.encode()) > MAX_NAME_BYTES:
        raise ValueError(f"must be a plain folder name of at most {MAX_NAME_BYTES} bytes, got {len(value.encode())}")
    return value


FolderName = Annotated[str, AfterValidator(_check_folder_name)]


class ExperimentSpec(Strict):
    """One network trained on one data set: the unit nnexp runs and compares."""

    name: FolderName | None = None
    seed: Annotated[int, Field(ge=0, lt=2**32)] = 0
    data: DataSpec = Field(default_factory=DataSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    optimizer: Optimizer = KIND_DEFAULTS["optimizer"]
    train: TrainSpec = Field(default_factory=TrainSpec)

    @model_validator(mode="after")
    def _batch_norm_needs_two_rows(self):
        if self.model.batch_norm and self.train.batch_size < 2:
            raise ValueError("@train.batch_size: batch norm needs at least 2 rows per batch "
                             "(the variance of one row is 0: it would learn nothing but beta)")
        return self

    @model_validator(mode="after")
    def _monitors_can_be_computed(self):
        for field, config in self.monitors():
            if config.monitor.startswith("val_") and not self.data.has_validation:
                raise ValueError(f"@{field}: monitoring a val_ metric needs data.val_fraction > 0")
        problems = monitor_problems(self, self.data.known_task) if self.data.known_task else []
        if self.data.known_task == "regression" and self.train.class_weight is not None:
            problems.append(class_weight_problem(self, "regression", None))
        if problems:
            raise ValueError(f"@{problems[0]}")
        return self

    def ignored_fields(self, searched: Iterable[str] = ()) -> list[str]:
        """Fields given that this experiment does not use, as `<path>: why` lines (for warnings)."""
        return self.data.ignored_fields(searched) + self.optimizer.ignored_fields("optimizer")

    def monitors(self) -> list[tuple[str, Any]]:
        """(field, config) of early stopping and the target watch, where set."""
        return [(f, c) for f, c in (("train.early_stopping", self.train.early_stopping),
                                    ("train.target", self.train.target)) if c is not None]


def experiment_key(spec: ExperimentSpec) -> str:
    """What two configurations must differ in to be two experiments: the spec without its name,
    class weights without the classes that weigh 1 (unnamed classes weigh 1: {fraud: 3, legit: 1}
    is {fraud: 3}, and {legit: 1} no weighting) and in any order."""
    data = spec.model_dump(mode="json", exclude={"name"})
    weights = data["train"]["class_weight"]
    if isinstance(weights, dict):
        data["train"]["class_weight"] = {name: w for name, w in sorted(weights.items()) if w != 1.0} or None
    return json.dumps(data)


def metric_problem(metric: str, task: str) -> str | None:
    """Why a search's `metric` cannot rank trials of this task (None when it can)."""
    split, _, name = metric.partition("_")
    if name in TASK_METRICS[task]:
        return None
    return (f"metric: '{metric}' is not computed for a {task} task "
            f"(one of {', '.join(f'{split}_{m}' for m in TASK_METRICS[task])})")


def monitor_problems(spec: ExperimentSpec, task: str) -> list[str]:
    """`field.monitor: problem` for each monitored metric the task does not compute.

    The spec checks this when it knows the task (a built-in data set, an explicit
    data.task); training checks it again once a file's 'auto' task is known.
    """
    computed = ["train_loss", *(f"val_{m}" for m in TASK_METRICS[task])]
    return [f"{field}.monitor: '{config.monitor}' is not computed for a {task} task (one of {', '.join(computed)})"
            for field, config in spec.monitors() if config.monitor not in computed]


def positive_class_problem(spec: ExperimentSpec, task: str, classes: list[str] | None,
                           source: str = "the data") -> str | None:
    """`data.positive_class: problem` when the data (`source`) cannot take the setting: not two
    classes, or no class of that name."""
    value = spec.data.positive_class
    if value is None:
        return None
    classes = [str(c) for c in classes or []]
    if task != "classification" or len(classes) != 2:
        what = f"{len(classes)} classes" if task == "classification" else f"a {task} task"
        return f"data.positive_class: {POSITIVE_CLASS_ONLY}, and this is {what}"
    if value not in classes:
        return (f"data.positive_class: no class '{value}' in {source}{did_you_mean(value, classes)} "
                f"(its classes: {', '.join(sorted(classes))})")  # sorted: the same whichever one came second
    return None


def class_weight_problem(spec: ExperimentSpec, task: str, classes: list[str] | None,
                         source: str = "the data") -> str | None:
    """`train.class_weight: problem` when the data (`source`) cannot take the setting: a regression
    task, or a class the data does not have (known once the data is loaded; the spec checks the
    task when it knows it)."""
    setting = spec.train.class_weight
    if setting is None:
        return None
    if task != "classification":
        return f"train.class_weight: only for classification, and this is a {task} task"
    classes = [str(c) for c in classes or []]
    unknown = [name for name in setting if name not in classes] if isinstance(setting, dict) else []
    if unknown:
        return (f"train.class_weight: no class '{unknown[0]}' in {source}{did_you_mean(unknown[0], classes)} "
                f"(its classes: {', '.join(classes)})")
    return None


# --------------------------------------------------------------------------- search


def _check_distinct(values: list) -> list:
    """A value listed twice would plan the same trials twice (and bias random choices)."""
    seen = {}
    for value in values:
        key = _sameness_key(value)
        if key in seen:
            first = seen[key]
            written = f" (as {yaml_text(first)} and {yaml_text(value)})" if yaml_text(first) != yaml_text(value) else ""
            raise ValueError(f"{yaml_text(first)} appears twice{written}")
        seen[key] = value
    return values


def _sameness_key(value):
    """Equal values share a key however written (0.1 and 1e-1, 1 and 1.0), but true is not 1."""
    try:
        return type(value) is bool, hash(value), value
    except TypeError:  # lists and mappings; orderings of the same mapping meet again in plan_search
        return repr(value)


def yaml_text(value) -> str:
    """A value as the user wrote it in YAML: relu, 0.1, [8, 8], {name: gaussian}."""
    if isinstance(value, str):
        return value
    try:
        text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6)
    except yaml.YAMLError:  # not a YAML value (e.g. a NumPy scalar from the Python API)
        return repr(value)
    return text.strip().removesuffix("\n...")  # a bare scalar ends its document with '...'


SpaceValues = Annotated[list, Field(min_length=1), AfterValidator(_check_distinct)]


class _Distribution(Strict):
    """A sampled search dimension; `points` makes it usable in a grid."""

    points: Annotated[int, Field(ge=2, le=1000)] | None = None
    scale: PositiveFloat = 1.0


class ChoiceDist(_Distribution):
    choice: SpaceValues


class UniformDist(_Distribution):
    uniform: tuple[float, float]

    @model_validator(mode="after")
    def _bounds(self):
        lo, hi = self.uniform
        if not lo < hi or not all(map(math.isfinite, (lo, hi))):
            raise ValueError(f"@uniform: needs finite [low, high] with low < high, got [{lo}, {hi}]")
        return self


class LogUniformDist(_Distribution):
    log_uniform: tuple[float, float]

    @model_validator(mode="after")
    def _bounds(self):
        lo, hi = self.log_uniform
        if not 0 < lo < hi or not math.isfinite(hi):
            raise ValueError(f"@log_uniform: needs [low, high] with 0 < low < high, got [{lo}, {hi}]")
        return self


class IntUniformDist(_Distribution):
    int_uniform: tuple[int, int]

    @model_validator(mode="after")
    def _bounds(self):
        lo, hi = self.int_uniform
        if not lo <= hi:
            raise ValueError(f"@int_uniform: needs [low, high] with low <= high, got [{lo}, {hi}]")
        return self


DISTRIBUTIONS = {"choice": ChoiceDist, "uniform": UniformDist, "log_uniform": LogUniformDist, "int_uniform": IntUniformDist}


def _dimension_tag(value) -> str:
    if isinstance(value, list):
        return "values"
    if isinstance(value, dict):
        for key in DISTRIBUTIONS:
            if key in value:
                return key
    if isinstance(value, _Distribution):
        return next(k for k in DISTRIBUTIONS if hasattr(value, k))
    return "unknown"


def _check_dimension(value):
    tag = _dimension_tag(value)
    if tag == "unknown":
        if isinstance(value, dict):
            keys = list(value)
            raise ValueError(
                f"unknown distribution {keys}{did_you_mean(keys[0] if keys else '', DISTRIBUTIONS)}"
                f" (a list of values, or one of {', '.join(DISTRIBUTIONS)})"
            )
        raise ValueError(f"expected a list of values or a distribution such as {{choice: [...]}}, got {describe(value)}")
    named = [key for key in DISTRIBUTIONS if isinstance(value, dict) and key in value]
    if len(named) > 1:  # pydantic would call the second one an unknown field of the first, unnamed
        raise ValueError(f"one distribution per entry, got {' and '.join(named)}")
    bounds = value.get(tag) if isinstance(value, dict) and tag.endswith("uniform") else None
    if bounds is not None and not (isinstance(bounds, (list, tuple)) and len(bounds) >= 2):  # more: "at most 2"
        raise ValueError(f"{tag}: expected [low, high], got {yaml_text(bounds)}")
    return value


Dimension = Annotated[
    Union[  # noqa: UP007
        Annotated[SpaceValues, Tag("values")],
        Annotated[ChoiceDist, Tag("choice")],
        Annotated[UniformDist, Tag("uniform")],
        Annotated[LogUniformDist, Tag("log_uniform")],
        Annotated[IntUniformDist, Tag("int_uniform")],
    ],
    Discriminator(_dimension_tag),
    BeforeValidator(_check_dimension),
]


class SearchSpec(Strict):
    """A grid or random search: a base experiment and the space to explore around it."""

    name: FolderName | None = None
    base: str | None = None
    experiment: dict | None = None
    strategy: Literal["grid", "random"] = "grid"
    trials: Annotated[int, Field(ge=1, le=1_000_000)] = 20
    repeats: Annotated[int, Field(ge=1, le=1000)] = 3
    seed: Annotated[int, Field(ge=0, lt=2**32)] = 0
    metric: RankingMetric = "val_loss"
    mode: Literal["max", "min"] | None = None
    n_jobs: int = -1
    space: dict[str, Dimension] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _resolve(self):
        if self.base is not None and self.experiment is not None:
            raise ValueError("@base: give either `base` (a spec file) or an inline `experiment`, not both")
        if self.mode is None:
            self.mode = metric_mode(self.metric)
        if self.n_jobs == 0 or self.n_jobs < -64:
            raise ValueError("@n_jobs: must be a positive number of workers, or -1 for all cores (-2 all but one, ...)")
        for key, reason in UNSEARCHABLE.items():
            if key in self.space:
                raise ValueError(f"@space.{key}: cannot be searched: {reason}")
        return self


UNSEARCHABLE = {  # experiment fields a space may not vary: every trial would silently replace them
    "seed": "each configuration runs `repeats` seeds (seed, seed+1, ...): set repeats instead",
    "name": "each configuration's name is the search's name and its config_id",
}


# --------------------------------------------------------------------------- dotted paths

KIND_FAMILIES = {
    "model.activation": ACTIVATION_CHOICES,
    "model.init": INIT_CHOICES,
    "optimizer": OPTIMIZER_CHOICES,
    "optimizer.schedule": SCHEDULE_CHOICES,
}


def experiment_paths() -> list[str]:
    """Every dotted path a search space or --set may name in an experiment spec."""
    paths: list[str] = []

    def walk(model: type[BaseModel], prefix: str):
        for field, info in model.model_fields.items():
            path = f"{prefix}{field}"
            paths.append(path)
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
                walk(info.annotation, f"{path}.")

    walk(ExperimentSpec, "")
    paths += ["model.dropout.input", "model.dropout.hidden", "train.early_stopping.patience",
              "train.early_stopping.monitor", "train.early_stopping.min_delta", "train.target.monitor",
              "train.target.value"]
    for prefix, choices in KIND_FAMILIES.items():
        for cls in choices:
            paths += [f"{prefix}.{f}" for f in cls.model_fields]
    return sorted(set(paths) | {"optimizer.schedule"})


def _dropout_as_mapping(key: str, value):
    """`dropout: 0.2` is the hidden layers' rate: as a mapping, {hidden: 0.2}."""
    return {"hidden": value} if key == "dropout" and isinstance(value, (int, float)) else value


def set_path(tree: dict, path: str, value) -> None:
    """Set `a.b.c` in a nested dict, turning a bare kind name into a mapping on the way."""
    keys = path.split(".")
    node = tree
    for key in keys[:-1]:
        child = _dropout_as_mapping(key, node.get(key))
        if isinstance(child, str):  # e.g. init: gaussian  ->  init: {name: gaussian}
            child = {"name": child}
        elif not isinstance(child, dict):
            child = {}
        node[key] = child
        node = child
    node[keys[-1]] = value
    if keys[-1] == "name" and len(keys) >= 2 and path.rsplit(".", 1)[0] in KIND_FAMILIES:
        _drop_foreign_params(node, path.rsplit(".", 1)[0])


def _drop_foreign_params(node: dict, family_path: str) -> None:
    """Switching a kind's name drops parameters the new choice does not take."""
    choices = {c.model_fields["name"].default: c for c in KIND_FAMILIES[family_path]}
    name = ACTIVATION_ALIASES.get(node.get("name"), node.get("name"))
    cls = choices.get(name)
    if cls is not None:
        for key in [k for k in node if k not in cls.model_fields]:
            del node[key]


SECTIONS = ("data", "model", "train")


def apply_override(tree: dict, path: str, value) -> None:
    """Apply one search-space or --set value at a dotted path of an experiment dict.

    A mapping given for a whole section (`data`, `model`, `train`) is merged
    into it field by field, so one search dimension can vary several fields
    together, e.g. `data: [{normalize: zscore}, {normalize: pca, pca_whiten: true}]`.
    A kind (optimizer, activation, init, schedule) given at its own path, by name
    or as a mapping, replaces the whole kind: `momentum` and `{name: momentum}`
    are momentum with its defaults, whatever the spec had, so a spec and its
    resolved form (`nnexp validate`) take an override alike. Setting only the
    name (`optimizer.name`) keeps the parameters both kinds have, and a mapping
    without a name (`optimizer: {lr: 0.5}`) sets those parameters of the spec's kind.
    """
    if isinstance(value, dict) and (path in SECTIONS or (path in KIND_FAMILIES and "name" not in value)):
        for key, item in value.items():
            apply_override(tree, f"{path}.{key}", item)
        return
    owner = max((f for f in KIND_FAMILIES if path.startswith(f + ".") and path != f + ".name"), key=len, default=None)
    if owner is not None:
        _name_kind(tree, owner)
    set_path(tree, path, value)


def _name_kind(tree: dict, family: str) -> None:
    """Before a kind's parameter is set, give the kind its current (or default) name.

    Without this, `optimizer.lr: 0.5` on a spec with no `optimizer` section would
    make a nameless `{lr: 0.5}` instead of the default optimizer with that rate.
    """
    *parents, last = family.split(".")
    node = tree
    for key in parents:
        child = node.get(key)
        if isinstance(child, str):
            child = {"name": child}
        elif not isinstance(child, dict):
            child = {}
        node[key] = child
        node = child
    current = node.get(last)
    if isinstance(current, str):
        node[last] = {"name": current}
    elif current is None:
        node[last] = {"name": KIND_DEFAULTS[family]}
    elif isinstance(current, dict) and "name" not in current:
        current["name"] = KIND_DEFAULTS[family]


# --------------------------------------------------------------------------- loading


def read_yaml(path: Path) -> dict:
    """Read a spec file as a mapping, with line and column on syntax errors."""
    try:
        if path.is_dir():
            raise SpecError(f"{path}: is a directory, not a spec file")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SPEC_BYTES + 1)  # never all of an endless device (/dev/zero) or a huge file
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except PermissionError:
        raise SpecError(f"{path}: permission denied") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: spec file is larger than {MAX_SPEC_BYTES // 1000} kB; is it really a spec?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    data = parse_yaml(text, str(path))
    if isinstance(data.get("search"), dict) and "source" in data:  # what a search folder keeps (store.save_spec)
        raise SpecError(f"{path}: the record a search keeps in its results folder, not a spec (the spec was "
                        f"{data['source']}); `nnexp report {path.parent}` rebuilds its tables")
    return data


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that refuses alias-heavy documents (billion laughs) and reads numbers and
    booleans as YAML 1.2 does.

    PyYAML follows YAML 1.1: `1e-3` needs a dot to be a float (a search space would plan the
    text '1e-3'), `010` is octal 8, `1:30` is 90 (base 60), `0b11` is 3 and `yes`/`on` are true.
    The resolvers below are YAML 1.2's core schema: those are text, which a number field refuses.
    """

    max_aliases = 100

    def construct_mapping(self, node, deep=False):
        """A key written twice is an error: YAML would keep the second silently (`data:` twice)."""
        if isinstance(node, yaml.MappingNode):
            first: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, str) and isinstance(key_node, yaml.ScalarNode):
                    raise yaml.constructor.ConstructorError(  # `1e3:` or `true:` as a field name: say so, as written
                        None, None, f"key '{key_node.value}' reads as {'null' if key is None else type(key).__name__}, "
                        "not a name; quote it if it is one", key_node.start_mark)
                try:
                    if key in first:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"key '{key}' is written twice (first at line {first[key] + 1}); "
                            "only one of them would count", key_node.start_mark)
                    first[key] = key_node.start_mark.line
                except TypeError:  # an unhashable key: the base class says what is wrong
                    continue
        return super().construct_mapping(node, deep)

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases = getattr(self, "_aliases", 0) + 1
            if self._aliases > self.max_aliases:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"more than {self.max_aliases} YAML aliases at line {mark.line + 1}; refusing to expand")
        return super().compose_node(parent, index)


# YAML 1.2 core schema scalars: tag, pattern, possible first characters (int before float: "10" is an int)
YAML12_SCALARS = [
    ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")),
    ("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")),
    ("tag:yaml.org,2002:float", re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                                           r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+0123456789.")),
]
_SpecLoader.yaml_implicit_resolvers = {  # SafeLoader's, without YAML 1.1's bool, int and float (its own table untouched)
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in {t for t, _, _ in YAML12_SCALARS}]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _scalar in YAML12_SCALARS:
    _SpecLoader.add_implicit_resolver(*_scalar)


def _yaml12_int(loader, node) -> int:
    """Decimal (`010` is ten), `0o` octal or `0x` hexadecimal, as YAML 1.2 reads an integer."""
    text = loader.construct_scalar(node)
    base = {"0o": 8, "0x": 16}.get(text[:2], 10)
    return int(text[2:] if base != 10 else text, base)


_SpecLoader.add_constructor("tag:yaml.org,2002:int", _yaml12_int)


def load_yaml(text: str):
    """Any YAML value as nnexp reads it (spec files and --set values alike)."""
    return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass


def parse_yaml(text: str, source: str) -> dict:
    """Parse YAML text into a mapping (empty document = empty mapping)."""
    try:
        data = load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        kind = "" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error: "  # valid YAML, refused
        raise SpecError(f"{source}: {where}{kind}{exc.problem or exc.context}") from None
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise SpecError(f"{source}: cannot parse YAML: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec must be a YAML mapping of fields, got {describe(data)}")
    return data


def parse_overrides(pairs: list[str] | None, source: str = "--set") -> list[tuple[str, Any]]:
    """Parse `--set PATH=VALUE` pairs; values are YAML."""
    parsed = []
    for pair in pairs or []:
        path, sep, text = pair.partition("=")
        path = path.strip()
        if not sep or not path:
            raise SpecError(f"{source}: '{pair}': expected PATH=VALUE, e.g. train.epochs=5")
        try:
            value = load_yaml(text) if text.strip() else None
        except (yaml.YAMLError, RecursionError, ValueError) as exc:
            problem = getattr(exc, "problem", None)  # e.g. `{1: 5}`: key '1' reads as int, not a name
            if isinstance(exc, yaml.constructor.ConstructorError) and problem:  # valid YAML that a spec refuses
                raise SpecError(f"{source} {path}: value '{text}': {problem}") from None
            raise SpecError(f"{source} {path}: value '{text}' is not valid YAML" + (f": {problem}" if problem else "")) from None
        parsed.append((path, value))
    return parsed


def format_errors(source: str, error: ValidationError, prefix: str = "",
                  schema: type[BaseModel] | None = None) -> list[str]:
    """Turn pydantic errors into `file: dotted.path: problem` lines, with suggestions.

    `schema` is the model that was validated (default: an experiment); it decides
    which field names an unknown top-level key is compared with.
    """
    lines = []
    for err in error.errors(include_url=False):
        loc = [part for part in err["loc"] if not (isinstance(part, str) and (part.startswith("~") or part in _UNION_TAGS))]
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if msg.startswith("@"):
            sub, _, msg = msg[1:].partition(": ")
            loc = [*loc, *sub.split(".")]
        path = _dotted(loc)
        if err["type"] == "extra_forbidden":
            parent = ".".join(str(p) for p in loc[:-1] if not isinstance(p, int))
            tag = next((part for part in err["loc"] if part in DISTRIBUTIONS), None)  # inside a space distribution
            known = list(DISTRIBUTIONS[tag].model_fields) if tag else _siblings(parent, schema or ExperimentSpec)
            msg = f"unknown field{did_you_mean(loc[-1], known)}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] in ("too_short", "too_long"):
            limit = err["ctx"]["min_length" if err["type"] == "too_short" else "max_length"]
            count = "one value" if limit == 1 else f"{limit} values"
            msg = f"needs at least {count}" if err["type"] == "too_short" else f"takes at most {count}"
        elif err["type"] in _TYPE_WORDS:
            msg = f"expected {_TYPE_WORDS[err['type']]}, got {describe(err.get('input'))}"
        elif err["type"] in _BOUND_WORDS:
            bound = next(iter(err.get("ctx", {}).values()), "")
            msg = f"must be {_BOUND_WORDS[err['type']]} {bound}, got {err.get('input')!r}"
        elif err["type"] in ("literal_error", "enum"):
            expected = err.get("ctx", {}).get("expected", "")
            options = [o.strip(" '") for o in expected.replace(" or ", ",").split(",") if o.strip(" '")]
            msg = f"'{err.get('input')}' is not allowed{did_you_mean(err.get('input'), options)} (one of {', '.join(options)})"
        full = f"{prefix}{path}" if path else prefix.rstrip(".")
        lines.append(f"{source}: {full}: {msg}" if full else f"{source}: {msg}")
    return list(dict.fromkeys(lines))


_BOUND_WORDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_TYPE_WORDS = {"int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
               "float_type": "a number", "float_parsing": "a number", "string_type": "text (quote it in YAML)",
               "model_type": "a mapping of fields (field: value, ...)", "dict_type": "a mapping (key: value, ...)",
               "list_type": "a list ([a, b, ...])"}
_UNION_TAGS = {"all-layers", "per-layer", "p", "rates", "values", "choice", "uniform", "log_uniform", "int_uniform"}


def _dotted(loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _siblings(parent: str, schema: type[BaseModel]) -> list[str]:
    """Field names allowed under a dotted parent of `schema` (for suggestions)."""
    if schema is SearchSpec:
        return [] if parent else list(SearchSpec.model_fields)
    depth = parent.count(".") + 1 if parent else 0
    return sorted({p.split(".")[depth] for p in experiment_paths() if p.startswith(f"{parent}.") or not parent})


def validate_experiment(data: dict, source: str, prefix: str = "") -> ExperimentSpec:
    """Validate an experiment mapping; all problems are reported at once (paths after `prefix`,
    e.g. `experiment.` for one written inside a search spec)."""
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_errors(source, exc, prefix=prefix)) from None
    except RecursionError:
        raise SpecError(f"{source}: spec is nested too deeply") from None


def is_search_spec(data: dict) -> bool:
    """Search specs are told apart by their `space`, `base` or `experiment` key."""
    return any(key in data for key in ("space", "base", "experiment", "strategy"))


def resolve_dataset_path(data: dict, spec_dir: Path) -> None:
    """A data file named relative to a spec is relative to the spec's folder, not the current one."""
    dataset = (data.get("data") or {}).get("dataset") if isinstance(data.get("data"), dict) else None
    if isinstance(dataset, str) and dataset not in BUILTIN_DATASETS and Path(dataset).suffix.lower() in DATA_FILE_SUFFIXES:
        path = Path(os.path.expanduser(dataset))
        data["data"]["dataset"] = str(path if path.is_absolute() else (spec_dir / path).resolve())


def _apply_all(data: dict, overrides: list[tuple[str, Any]], source: str) -> None:
    known = experiment_paths()
    for path, value in overrides:
        if path not in known:
            raise SpecError(f"{source} {path}: unknown field{did_you_mean(path, known)}")
        apply_override(data, path, value)


def load_experiment(path: str | os.PathLike, overrides: list[tuple[str, Any]] | None = None,
                    data: dict | None = None) -> ExperimentSpec:
    """Load and validate an experiment spec file, applying `--set` overrides (`data`: the file, already read)."""
    path = Path(path)
    data = read_yaml(path) if data is None else data
    if is_search_spec(data):
        raise SpecError(f"{path}: this is a search spec (it has space/base/experiment); "
                        f"use {said_as('`nnexp search`', 'nnexp.run_search')}")
    return experiment_from_dict(data, path, overrides)


def experiment_from_dict(data: dict, path: Path, overrides=None) -> ExperimentSpec:
    """Validate an experiment mapping that came from `path` (names and paths resolved)."""
    data = dict(data)
    _apply_all(data, overrides or [], OVERRIDE.get())
    if not isinstance(data.get("data", {}), dict):
        raise SpecError(f"{path}: data: expected a mapping of data fields")
    if "data" in data:
        data["data"] = dict(data["data"])
    resolve_dataset_path(data, path.parent)
    if data.get("name") is None:  # left out or left empty (`name:`)
        data["name"] = path.stem
    with blaming_overrides(str(path), overrides or []):
        spec = validate_experiment(data, str(path))
    warn_ignored(str(path), spec.ignored_fields(), overrides or [])
    return spec


def warn_ignored(source: str, lines: list[str], overrides: list[tuple[str, Any]] = ()) -> None:
    """One warning per `ExperimentSpec.ignored_fields` line, named by the file, or by `--set` when an
    override gave that field."""
    for line in lines:
        by_set = given_by_override(line.split(":", 1)[0], overrides)
        warn(f"{OVERRIDE.get()} {line}" if by_set else f"{source}: {line}")


def given_by_override(field: str, overrides: list[tuple[str, Any]]) -> bool:
    """Whether one of the (path, value) overrides gave `field`'s value: itself, or a section, kind
    or list around it whose value holds it. A section given without the field merges with the
    file's section (`--set 'data={dataset: b.csv}'`), which then gave the value."""
    for path, value in overrides:
        if field == path or field.startswith(f"{path}["):
            return True
        if field.startswith(f"{path}."):
            node = value
            for part in field[len(path) + 1:].split("."):
                if not isinstance(node, dict):
                    return True  # a kind written by name (optimizer=adam), a list: what is inside came with it
                if part not in node:
                    break
                node = node[part]
            else:
                return True
    return False


def given_by(field: str, paths: list[str]) -> bool:
    """Whether an override at one of `paths` set `field` (itself, or a section or kind around it)."""
    return any(field == path or field.startswith((f"{path}.", f"{path}[")) for path in paths)


@contextmanager
def blaming_overrides(source: str, overrides: list[tuple[str, Any]], prefix: str = ""):
    """A problem in a field that a --set override gave is the override's, not the file's
    (`--set train.epochs=abc` said `base.yaml: train.epochs: ...`, a value the file does not hold)."""
    try:
        yield
    except SpecError as exc:
        lines = []
        for line in exc.problems:
            field = line[len(source) + 2:] if line.startswith(f"{source}: ") else None
            if field is not None and prefix:
                field = field.removeprefix(prefix)
            given = field is not None and given_by_override(field.split(": ", 1)[0], overrides)
            lines.append(f"{OVERRIDE.get()} {field}" if given else line)
        raise SpecError(lines) from None


class LoadedSearch(BaseModel):
    """A validated search spec with its resolved base experiment (as a mapping)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    spec: SearchSpec
    base: dict
    base_spec: ExperimentSpec
    source: str
    base_source: str = ""  # the file the base experiment came from (the search's own when inline)
    override: str = "--set"  # how messages name an override: the command line's, or the API's
    overridden: tuple[str, ...] = ()  # the search fields overrides gave (`metric`, `space.optimizer.lr`, `space`)
    base_overrides: tuple[tuple[str, Any], ...] = ()  # (path, value) of the base experiment's (`data.positive_class`)

    def field(self, path: str) -> str:
        """How a message names a search field: by the file, or by the override that gave it."""
        return _named_field(path, self.source, self.overridden, self.override)

    def space_field(self, key: str) -> str:
        return self.field(f"space.{key}")


def _named_field(path: str, source: str, overridden: tuple[str, ...], override: str) -> str:
    return f"{override} {path}" if given_by(path, list(overridden)) else f"{source}: {path}"


EXPERIMENT_ONLY_KEYS = ("data", "model", "optimizer", "train")
SEARCH_ONLY_KEYS = ("name", "base", "experiment", "strategy", "trials", "repeats", "seed", "metric", "mode", "n_jobs", "space")


def load_search(path: str | os.PathLike, overrides: list[tuple[str, Any]] | None = None,
                data: dict | None = None, source: str | None = None) -> LoadedSearch:
    """Load a search spec, its base experiment and the `--set` overrides, and check every space path.

    `data`: the spec as a mapping instead of the file's; `path` then only names its default name
    and the folder its relative paths start from, and `source` names it in messages."""
    path = Path(path)
    source = source or str(path)
    data = read_yaml(path) if data is None else data
    sections = [key for key in EXPERIMENT_ONLY_KEYS if key in data]
    if sections and not is_search_spec(data):
        raise SpecError(f"{source}: this looks like an experiment spec (it has {'/'.join(sections)} at the top); "
                        f"use {said_as('`nnexp run`', 'nnexp.run_experiment')}, or write a search spec with `experiment:` (or `base:`) and `space:`")
    search_overrides, experiment_overrides = [], []
    for key, value in overrides or []:
        head = key.split(".", 1)[0]
        if key.startswith("experiment."):
            experiment_overrides.append((key.split(".", 1)[1], value))
        elif head in SEARCH_ONLY_KEYS:
            search_overrides.append((key, value))
        else:
            experiment_overrides.append((key, value))
    for key, value in search_overrides:
        if key.startswith("space."):
            data.setdefault("space", {})
            if isinstance(data["space"], dict):
                data["space"][key[len("space."):]] = value
        else:
            set_path(data, key, value)
    if data.get("name") is None:  # the default name is checked like a written one (a file '..yaml' has stem '.')
        data["name"] = path.stem
    with blaming_overrides(source, search_overrides):
        try:
            spec = SearchSpec.model_validate(data)
        except ValidationError as exc:
            raise SpecError(format_errors(source, exc, schema=SearchSpec)) from None
    if data.get("mode") is not None and spec.mode != metric_mode(spec.metric):
        warn(f"{source}: mode: {spec.mode} ranks {spec.metric} {'lowest' if spec.mode == 'min' else 'highest'} "
             "first, its worst first (leave `mode` out and it follows the metric)")

    if spec.base is not None:
        base_path = Path(os.path.expanduser(spec.base))
        base_path = base_path if base_path.is_absolute() else path.parent / base_path
        try:
            base_data = read_yaml(base_path)
        except SpecError as exc:  # a bad base file is named by its own path; a wrong `base` is this file's mistake
            if base_path.is_file():
                raise
            raise SpecError(f"{source}: base: {exc.problems[0]}") from None
        if is_search_spec(base_data):
            raise SpecError(f"{source}: base: {spec.base} is itself a search spec; point at an experiment spec")
        base_folder, base_source = base_path.parent, str(base_path)
    else:
        base_data = dict(spec.experiment or {})
        base_folder, base_source = path.parent, source
    base_data = dict(base_data)
    _apply_all(base_data, experiment_overrides, OVERRIDE.get())
    if isinstance(base_data.get("data"), dict):
        base_data["data"] = dict(base_data["data"])
        resolve_dataset_path(base_data, base_folder)
    base_data.setdefault("name", spec.name)

    overridden = tuple(key for key, _ in search_overrides)
    problems = []
    known = experiment_paths()
    for key in spec.space:
        if key not in known:
            where = _named_field(f"space.{key}", source, overridden, OVERRIDE.get())
            problems.append(f"{where}: unknown field{did_you_mean(key, known)}")
    problems += [f"{source}: {problem}" for problem in _overlapping_dimensions(spec.space)]
    if problems:
        raise SpecError(problems)
    inline = "experiment." if spec.base is None else ""  # its fields are named as the search file writes them
    with blaming_overrides(base_source, experiment_overrides, inline):
        base_spec = validate_experiment(base_data, base_source, inline)
    warn_ignored(base_source, base_spec.ignored_fields(spec.space), experiment_overrides)
    return LoadedSearch(spec=spec, base=base_data, base_spec=base_spec, source=source, base_source=base_source,
                        override=OVERRIDE.get(), overridden=overridden, base_overrides=tuple(experiment_overrides))


def listed_values(dim) -> list:
    """The values a dimension lists (a list, or a choice's); none for a continuous distribution."""
    return dim if isinstance(dim, list) else dim.choice if isinstance(dim, ChoiceDist) else []


def _overlapping_dimensions(space: dict) -> list[str]:
    """Two dimensions that set the same field (`model: [{hidden: [8]}]` and `model.hidden`): the
    longer path would win and the table would show a value that was never trained."""
    problems = []
    for outer in sorted(space):
        for inner in sorted(k for k in space if k.startswith(outer + ".")):
            sub = inner[len(outer) + 1:].split(".")
            for value in listed_values(space[outer]):
                node = _dropout_as_mapping(outer.rsplit(".", 1)[-1], value)  # a rate alone sets dropout.hidden
                for key in sub:
                    node = _dropout_as_mapping(key, node.get(key, _MISSING)) if isinstance(node, dict) else _MISSING
                if node is not _MISSING:
                    problems.append(f"space.{outer} and space.{inner} both set {inner} ({outer}'s value "
                                    f"{yaml_text(value)}); vary it in one of them")
                    break
    return problems


_MISSING = object()


def load_any(path: str | os.PathLike, overrides=None) -> ExperimentSpec | LoadedSearch:
    """Load an experiment or a search spec, whichever the file is."""
    data = read_yaml(Path(path))
    load = load_search if is_search_spec(data) else load_experiment
    return load(path, overrides, data)


class _SpecDumper(yaml.SafeDumper):
    """Block mappings, with lists of scalars on one line (`hidden: [128, 64]`)."""

    def represent_list(self, data):
        flow = all(not isinstance(item, (dict, list)) for item in data)
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_SpecDumper.add_representer(list, _SpecDumper.represent_list)
# the dumper quotes a string such as '1e5' that the loader would read back as a number (YAML 1.1's forms stay quoted too)
for _scalar in YAML12_SCALARS:
    _SpecDumper.add_implicit_resolver(*_scalar)


def dump_yaml(spec: BaseModel | dict) -> str:
    """The resolved spec as YAML, every default filled in, in field order."""
    data = spec.model_dump(mode="json") if isinstance(spec, BaseModel) else spec
    return yaml.dump(data, Dumper=_SpecDumper, sort_keys=False, default_flow_style=False, width=100)
