"""The schema's names and the registries behind them are the same sets."""

from nnexp import spec
from nnexp.engine import ACTIVATIONS, INITIALIZERS, OPTIMIZERS, SCHEDULES


def test_activation_names():
    assert set(spec.ACTIVATION_NAMES) == set(ACTIVATIONS)


def test_initialiser_names():
    assert set(spec.INIT_NAMES) == set(INITIALIZERS)


def test_optimizer_names():
    assert set(spec.OPTIMIZER_NAMES) == set(OPTIMIZERS)


def test_schedule_names():
    assert set(spec.SCHEDULE_NAMES) == set(SCHEDULES)


def test_every_kind_parameter_is_accepted_by_the_engine():
    """A spec parameter the engine would not understand is a silent bug; build every one."""
    import numpy as np

    from nnexp.build import build_network, build_optimizer

    for act in spec.ACTIVATION_CHOICES:
        for init in spec.INIT_CHOICES:
            model = spec.ModelSpec(hidden=[3], activation=act().model_dump(), init=init().model_dump())
            net = build_network(model, 4, "classification", 3, np.random.default_rng(0))
            assert net.predict(np.zeros((2, 4), np.float32)).shape == (2, 3)
    net = build_network(spec.ModelSpec(hidden=[3]), 4, "regression", 1, np.random.default_rng(0))
    for opt in spec.OPTIMIZER_CHOICES:
        for sched in spec.SCHEDULE_CHOICES:
            optimizer = opt(schedule=sched().model_dump())
            _, schedule = build_optimizer(optimizer, net, spec.TrainSpec(epochs=5))
            assert schedule(0) == optimizer.lr


def _lower_edge(info):
    """The smallest value a spec field accepts (just above a `gt` bound)."""
    import annotated_types

    for item in info.metadata:
        if isinstance(item, annotated_types.Ge):
            return item.ge
        if isinstance(item, annotated_types.Gt):
            return item.gt + (1 if isinstance(item.gt, int) and info.annotation is int else 1e-9)
    return info.default


def _at_edge(cls):
    return cls(**{k: _lower_edge(f) for k, f in cls.model_fields.items() if k not in ("name", "schedule")})


def test_the_engine_accepts_every_value_the_schema_accepts():
    """Bounds are checked in two places (schema, engine); the schema must never let through what the engine refuses."""
    import numpy as np

    from nnexp.build import build_network, build_optimizer

    for act in spec.ACTIVATION_CHOICES:
        for init in spec.INIT_CHOICES:
            model = spec.ModelSpec(hidden=[3], activation=_at_edge(act).model_dump(), init=_at_edge(init).model_dump())
            net = build_network(model, 4, "classification", 3, np.random.default_rng(0))
    for opt in spec.OPTIMIZER_CHOICES:
        for sched in spec.SCHEDULE_CHOICES:
            optimizer = _at_edge(opt).model_copy(update={"schedule": _at_edge(sched)})
            build_optimizer(optimizer, net, spec.TrainSpec(epochs=3))
