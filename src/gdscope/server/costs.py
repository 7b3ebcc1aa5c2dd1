"""What an explorer request costs, in seconds of compute on the machine that measured it.

The work budget is time, not point evaluations: an SGD step over a million points and an Adam
step on the L1 loss differ by an order of magnitude. A batched run costs
``epochs × (step + configuration × configurations + element × configurations × points)``
(a configuration's own state and metrics cost as much as a few dozen points); a map
``element × cells × points``; solving for a loss's minimum (``find_minimum``, which a phase
diagram measures against) ``fixed + element × points``. A run the native kernel can take is
priced as it when the kernel loads here (``GDSCOPE_NO_NATIVE=1`` or no C compiler: as the
tensor engine).
The numbers are measured by ``benchmarks/calibrate_costs.py`` (float32, one torch thread, as
the server's workers run) and kept here, as data, in one place; re-run it on a slower machine
and paste. Measured on a 2-core Xeon at a load average of 15 to 18 (other jobs running): about
four times the same machine's idle times (the previous table, measured idle, had SGD/MSE's
step at 0.7 ms, here 3 ms), so on an idle machine the budget is cautious.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from gdscope.engines.native import load as native_library

__all__ = [
    "BUDGET_S", "COSTS", "FUNCTION", "MAP_COSTS", "MARGIN", "MINIMUM_COSTS", "NATIVE_COSTS",
    "map_seconds", "minimum_seconds", "native", "run_seconds",
]  # fmt: skip

BUDGET_S = 2.0
"""The most estimated seconds of compute one request may ask for."""
MARGIN = 2.0
"""The tables are the best of a few runs; a busy machine, and a phase diagram's own extras
(the analytic border), took up to twice as long: estimates include that."""
FUNCTION = "function"
"""The column for a test function (one point): the slowest of them."""

COSTS: Mapping[str, Mapping[str, tuple[float, float, float]]] = {
    "sgd": {
        "mse": (0.00304, 1.66e-06, 4.43e-08),
        "l1": (0.00311, 1.77e-06, 6.77e-08),
        "huber": (0.003, 1.6e-06, 1.06e-07),
        "smoothl1": (0.00257, 1.37e-06, 1.01e-07),
        "function": (0.0045, 2.09e-06, 0),
    },
    "adam": {
        "mse": (0.0036, 1.67e-06, 3.68e-08),
        "l1": (0.00378, 1.55e-06, 3.29e-08),
        "huber": (0.0032, 2.15e-06, 9.64e-08),
        "smoothl1": (0.00379, 2.21e-06, 6.35e-08),
        "function": (0.00493, 2.61e-06, 0),
    },
    "adamw": {
        "mse": (0.00355, 2.08e-06, 5.82e-08),
        "l1": (0.00457, 2.12e-06, 3.74e-08),
        "huber": (0.00322, 2.09e-06, 7.28e-08),
        "smoothl1": (0.00324, 3.52e-06, 1.7e-07),
        "function": (0.00372, 2.08e-06, 0),
    },
    "rmsprop": {
        "mse": (0.00314, 1.49e-06, 6.85e-08),
        "l1": (0.00263, 1.26e-06, 9.81e-09),
        "huber": (0.00257, 1.22e-06, 1.53e-07),
        "smoothl1": (0.00186, 5.25e-07, 1.38e-07),
        "function": (0.00577, 2.25e-06, 0),
    },
    "adagrad": {
        "mse": (0.00369, 1.66e-06, 1.95e-07),
        "l1": (0.00347, 1.36e-06, 1.88e-07),
        "huber": (0.00383, 2.04e-06, 1.84e-07),
        "smoothl1": (0.00259, 1.09e-06, 2.17e-07),
        "function": (0.00496, 1.59e-06, 0),
    },
}
"""optimizer → loss (or ``FUNCTION``) → seconds per (step, configuration·step,
configuration·point·step)."""
NATIVE_COSTS: Mapping[str, Mapping[str, tuple[float, float, float]]] = {
    "sgd": {
        "mse": (3.34e-06, 2.61e-08, 5.12e-09),
        "l1": (2.39e-06, 2.72e-08, 3.66e-09),
        "huber": (3.39e-06, 2.92e-08, 4.8e-09),
        "smoothl1": (3.66e-06, 2.65e-08, 5.13e-10),
    },
}
"""The runs the fused native engine takes (SGD on a regression loss, where the kernel loads),
as in ``COSTS``: some 100× cheaper per point."""
MAP_COSTS: Mapping[str, float] = {
    "mse": 3.7e-08,
    "l1": 5.02e-08,
    "huber": 3.37e-08,
    "smoothl1": 4.25e-08,
    "function": 2.76e-08,
}
"""loss (or ``FUNCTION``) → seconds per grid cell·point of a map."""
MINIMUM_COSTS: Mapping[str, tuple[float, float]] = {
    "mse": (0.000323, 3.28e-08),
    "l1": (0.177, 0.000156),
    "huber": (0.0508, 2.39e-05),
    "smoothl1": (0.038, 3.97e-05),
}
"""loss → seconds of one ``find_minimum``: (fixed, per point), the slowest of a few data sets.
A loss whose minimum is slow to find (a Huber delta of 1e-8 on data far from the origin took
48 s) is beyond any table: the pool's deadline stops it."""


def native(optimizer: str, loss: str) -> bool:
    """Whether the native engine runs this optimizer on this loss here: it applies, and the
    kernel loads on this machine."""
    return loss in NATIVE_COSTS.get(optimizer, {}) and _kernel()


@functools.cache
def _kernel() -> bool:
    """Whether the native kernel loads (built on first use: the server asks at start)."""
    return native_library() is not None


def run_seconds(
    optimizer: str, loss: str, *, configurations: int, points: int, epochs: int
) -> float:
    """Estimated seconds of ``epochs`` steps of ``configurations`` runs over ``points`` points
    (by the native engine where it runs)."""
    table = NATIVE_COSTS if native(optimizer, loss) else COSTS
    step, configuration, element = table[optimizer][loss]
    return MARGIN * epochs * (step + configurations * (configuration + element * points))


def map_seconds(loss: str, *, cells: int, points: int) -> float:
    """Estimated seconds of one map of ``cells`` grid points over ``points`` points."""
    return MARGIN * MAP_COSTS[loss] * cells * points


def minimum_seconds(loss: str, *, points: int) -> float:
    """Estimated seconds of one ``find_minimum`` of ``loss`` over ``points`` points."""
    fixed, element = MINIMUM_COSTS[loss]
    return MARGIN * (fixed + element * points)
