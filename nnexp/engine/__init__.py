"""Pure NumPy feed-forward network engine with hand-written backprop.

It takes plain arguments and arrays (no spec objects, files or joblib) and
draws every random number from an explicit ``numpy.random.Generator``.

Conventions
-----------
* Shapes are (n_samples, n_features); W has shape (fan_in, fan_out).
* Targets: softmax -> int class indices (n,); logistic -> 0/1 (n,);
  linear -> floats (n,) or (n, n_out).
* Losses (losses.py): softmax + cross-entropy, logistic + binary cross-entropy
  (both from the logits, log-sum-exp / logaddexp), linear + squared error as
  the mean over rows of 0.5 * ||y_hat - y||^2; for all three dL/dz = (y_hat - y)/n.
* Objective = mean loss + (l2/2) ||W||^2 + l1 ||W||_1 over weight matrices only
  (never biases, batch-norm gamma/beta or PReLU slopes).
* gelu is the tanh approximation 0.5 z (1 + tanh(sqrt(2/pi)(z + 0.044715 z^3))),
  with its exact derivative.
* Batch norm (before the activation, dense bias dropped): batch mean and biased
  variance in training; running averages with momentum 0.9 (running variance
  from the unbiased batch variance) at inference; eps = 1e-5.
* Dropout is inverted (kept units scaled by 1/(1-p)), off at inference; the
  network's dropout generator is spawned from the ``rng`` it is built with.
* float32 by default, float64 when asked, end to end.
"""

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
