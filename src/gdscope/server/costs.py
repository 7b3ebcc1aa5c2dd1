"""What an explorer request costs, in seconds of compute on the machine that measured it.

The work budget is time, not point evaluations: an SGD step over a million points and an Adam
step on the L1 loss differ by an order of magnitude. A batched run costs
``epochs × (step + configuration × configurations + element × configurations × points)``
(a configuration's own state and metrics cost as much as a few dozen points); a map
``element × cells × points``; solving for a loss's minimum (``find_minimum``, which a phase
diagram measures against) ``fixed + element × points``. A run the native kernel can take is
priced as it when the kernel loads here (``GDSCOPE_NO_NATIVE=1`` or no C compiler: as the
tensor engine).
The numbers are measured by ``benchmarks/calibrate_costs.py`` (2-core Xeon shared with other
work, float32, one torch thread, as ``gdscope serve`` runs) and kept here, as data, in one
place; re-run it on a slower machine and paste.
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
        "mse": (0.0007, 2.76e-07, 2.96e-08),
        "l1": (0.000716, 2.71e-07, 1.12e-07),
        "huber": (0.00114, 2.32e-07, 9.89e-08),
        "smoothl1": (0.000771, 1.02e-06, 6.19e-08),
        "function": (0.00134, 4.11e-07, 0),
    },
    "adam": {
        "mse": (0.000898, 8.8e-07, 7.62e-09),
        "l1": (0.000694, 8.98e-07, 1.76e-08),
        "huber": (0.000855, 5.59e-07, 3.8e-08),
        "smoothl1": (0.00161, 3.85e-07, 3.34e-08),
        "function": (0.000867, 1.07e-06, 0),
    },
    "adamw": {
        "mse": (0.000645, 3.64e-07, 3.42e-08),
        "l1": (0.00162, 4.06e-07, 1.35e-08),
        "huber": (0.000907, 5.05e-07, 3.8e-08),
        "smoothl1": (0.00179, 1.84e-06, 5.91e-08),
        "function": (0.00149, 1.14e-06, 0),
    },
    "rmsprop": {
        "mse": (0.000884, 6.12e-07, 3.39e-08),
        "l1": (0.00129, 3.29e-07, 3.21e-08),
        "huber": (0.00125, 8.06e-07, 5.09e-08),
        "smoothl1": (0.00159, 5.7e-07, 8.85e-08),
        "function": (0.00096, 1.87e-06, 0),
    },
    "adagrad": {
        "mse": (0.000985, 4.41e-07, 1.85e-08),
        "l1": (0.000817, 4.71e-07, 1.85e-08),
        "huber": (0.000689, 4.12e-07, 4.03e-08),
        "smoothl1": (0.000676, 3.21e-07, 3.69e-08),
        "function": (0.00103, 1.05e-06, 0),
    },
}
"""optimizer → loss (or ``FUNCTION``) → seconds per (step, configuration·step,
configuration·point·step)."""
NATIVE_COSTS: Mapping[str, Mapping[str, tuple[float, float, float]]] = {
    "sgd": {
        "mse": (3.62e-06, 2.26e-08, 7.1e-10),
        "l1": (2.53e-06, 1.99e-08, 5.22e-10),
        "huber": (2.65e-06, 1.86e-08, 4.76e-10),
        "smoothl1": (2.28e-06, 1.78e-08, 5.09e-10),
    },
}
"""The runs the fused native engine takes (SGD on a regression loss, where the kernel loads),
as in ``COSTS``: some 100× cheaper per point."""
MAP_COSTS: Mapping[str, float] = {
    "mse": 1.69e-08,
    "l1": 1.47e-08,
    "huber": 8.41e-09,
    "smoothl1": 9.53e-09,
    "function": 7.35e-08,
}
"""loss (or ``FUNCTION``) → seconds per grid cell·point of a map."""
MINIMUM_COSTS: Mapping[str, tuple[float, float]] = {
    "mse": (0.0, 0.0),
    "l1": (0.0, 0.0),
    "huber": (0.0, 0.0),
    "smoothl1": (0.0, 0.0),
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
