"""What an explorer request costs, in seconds of compute on the machine that measured it.

The work budget is time, not point evaluations: an SGD step over a million points and an Adam
step on the L1 loss differ by an order of magnitude. A batched run costs
``epochs × (step + element × configurations × points)``; a map ``element × cells × points``.
The numbers are measured by ``benchmarks/calibrate_costs.py`` (2-core AMD EPYC, float32, the
tensor engine) and kept here, as data, in one place; re-run it on a slower machine and paste.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "BUDGET_S", "COSTS", "FUNCTION", "MAP_COSTS", "NATIVE_COSTS", "map_seconds", "native",
    "run_seconds",
]  # fmt: skip

BUDGET_S = 2.0
"""The most estimated seconds of compute one request may ask for."""
FUNCTION = "function"
"""The column for a test function (one point): the slowest of them."""

COSTS: Mapping[str, Mapping[str, tuple[float, float]]] = {
    "sgd": {
        "mse": (0.000321, 2.34e-07),
        "l1": (0.000402, 2.44e-08),
        "huber": (0.00025, 4.56e-08),
        "smoothl1": (0.000507, 2.9e-08),
        "function": (0.000293, 4.55e-07),
    },
    "adam": {
        "mse": (0.000428, 2.45e-07),
        "l1": (0.000464, 1.24e-07),
        "huber": (0.000599, 7.44e-08),
        "smoothl1": (0.000695, 2.37e-07),
        "function": (0.00112, 2.42e-05),
    },
    "adamw": {
        "mse": (0.000652, 4.13e-07),
        "l1": (0.000921, 3.05e-07),
        "huber": (0.000466, 6.23e-07),
        "smoothl1": (0.000725, 9.8e-07),
        "function": (0.00299, 2.6e-05),
    },
    "rmsprop": {
        "mse": (0.00113, 3.77e-07),
        "l1": (0.00136, 3.56e-07),
        "huber": (0.000767, 1.09e-06),
        "smoothl1": (0.00203, 1.47e-06),
        "function": (0.00131, 2.55e-05),
    },
    "adagrad": {
        "mse": (0.00103, 3.28e-07),
        "l1": (0.000982, 5.56e-07),
        "huber": (0.000924, 1.31e-06),
        "smoothl1": (0.00128, 1.07e-06),
        "function": (0.00149, 2.19e-05),
    },
}
"""optimizer → loss (or ``FUNCTION``) → (seconds per step, seconds per configuration·point·step)."""
NATIVE_COSTS: Mapping[str, Mapping[str, tuple[float, float]]] = {
    "sgd": {
        "mse": (5.48e-05, 2.86e-09),
        "l1": (1.89e-05, 4.37e-09),
        "huber": (4.88e-05, 1.99e-09),
        "smoothl1": (5.46e-06, 3.53e-10),
    },
}
"""The runs the fused native engine takes, when not polled for a stop (SGD on a regression
loss), as in ``COSTS``: some 100× cheaper per point."""
MAP_COSTS: Mapping[str, float] = {
    "mse": 8.27e-08,
    "l1": 6.56e-08,
    "huber": 6.57e-08,
    "smoothl1": 4.39e-08,
    "function": 6.68e-06,
}
"""loss (or ``FUNCTION``) → seconds per grid cell·point of a map."""


def native(optimizer: str, loss: str) -> bool:
    """Whether the native engine runs this optimizer on this loss (when not polled)."""
    return loss in NATIVE_COSTS.get(optimizer, {})


def run_seconds(
    optimizer: str, loss: str, *, configurations: int, points: int, epochs: int
) -> float:
    """Estimated seconds of ``epochs`` steps of ``configurations`` runs over ``points`` points
    (by the native engine where it applies, run unpolled)."""
    table = NATIVE_COSTS if native(optimizer, loss) else COSTS
    step, element = table[optimizer][loss]
    return epochs * (step + element * configurations * points)


def map_seconds(loss: str, *, cells: int, points: int) -> float:
    """Estimated seconds of one map of ``cells`` grid points over ``points`` points."""
    return MAP_COSTS[loss] * cells * points
