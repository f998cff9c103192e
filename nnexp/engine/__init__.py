"""Pure NumPy feed-forward network engine with hand-written backprop."""

from .activations import ACTIVATIONS, make_activation
from .gradcheck import gradient_check
from .init import INITIALIZERS, init_weights
from .losses import OUTPUTS, make_output
from .network import EpochStats, Network
from .optimizers import OPTIMIZERS, SCHEDULES, make_optimizer, make_schedule

__all__ = [
    "ACTIVATIONS", "INITIALIZERS", "OPTIMIZERS", "OUTPUTS", "SCHEDULES", "EpochStats", "Network",
    "gradient_check", "init_weights", "make_activation", "make_optimizer", "make_output",
    "make_schedule",
]
