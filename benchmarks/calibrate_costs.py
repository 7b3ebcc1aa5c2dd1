"""Measure the explorer's cost table on this machine; prints ``COSTS`` for ``server/costs.py``.

A run costs ``epochs × (step + element × configurations × points)`` seconds; a map
``element × cells × points``. ``step`` is one step's fixed overhead with every point recorded
(as trajectories do), ``element`` the time per configuration and data point, measured on a
phase-sized batch. Test functions (one point) are one column, ``"function"``: the slowest of them.
Run: ``python benchmarks/calibrate_costs.py`` (about half a minute; the server's own settings:
float32, the tensor engine, which ``should_stop`` selects).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from gdscope.engines.batched import run_batched
from gdscope.optim.table import OPTIMIZER_TABLE
from gdscope.problem.data import DataSpec, make_data
from gdscope.problem.losses import LOSS_NAMES, LossSpec
from gdscope.problem.maps import Grid, loss_map
from gdscope.problem.testfunctions import FUNCTIONS, TestFunction
from gdscope.server.costs import FUNCTION

NATIVE = ("sgd",)
"""The optimizers the fused native engine runs (on a regression loss, when not polled)."""


def best(fn: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of a few runs: the machine's cost without other work on it."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def never() -> bool:
    return False


def run_cost(optimizer: str, loss: str, *, native: bool = False) -> tuple[float, float]:
    """(step, element) for the tensor engine (polled, as the server runs it), or the native."""
    stop = None if native else never
    small, big = make_data(DataSpec(n=2)), make_data(DataSpec(n=1000))
    if loss == FUNCTION:
        return max((function_cost(optimizer, name) for name in FUNCTIONS), key=lambda c: c[1])

    hyper = OPTIMIZER_TABLE[optimizer].defaults()
    step = best(lambda: run_batched(small, optimizer, hyper, loss=[LossSpec(loss)], epochs=200,
                                    record="path", should_stop=stop)) / 200  # fmt: skip
    configs, points = 256, 1000
    lrs = {**hyper, "lr": torch.full((configs,), 0.01)}
    batch = best(lambda: run_batched(big, optimizer, lrs, loss=LossSpec(loss), epochs=20,
                                     record="metrics", should_stop=stop))  # fmt: skip
    return step, max(batch / 20 - step, 0.0) / (configs * points)


def function_cost(optimizer: str, name: str) -> tuple[float, float]:
    function = TestFunction(name)
    hyper = OPTIMIZER_TABLE[optimizer].defaults()
    step = best(lambda: run_batched(None, optimizer, hyper, loss=function, epochs=200,
                                    record="path", should_stop=never)) / 200  # fmt: skip
    configs = 4096
    lrs = {**hyper, "lr": torch.full((configs,), 1e-4)}
    batch = best(lambda: run_batched(None, optimizer, lrs, loss=function, epochs=20,
                                     record="metrics", should_stop=never))  # fmt: skip
    return step, max(batch / 20 - step, 0.0) / configs


def map_cost(loss: str) -> float:
    grid = Grid((-5, 5), (-5, 5), 101, 101)
    if loss == FUNCTION:
        cells = grid.w_size * grid.b_size
        return (
            max(best(lambda f=f: loss_map(None, TestFunction(f), grid)) for f in FUNCTIONS) / cells
        )
    data = make_data(DataSpec(n=1000))
    return best(lambda: loss_map(data, LossSpec(loss), grid)) / (101 * 101 * 1000)


def main() -> None:
    columns = (*LOSS_NAMES, FUNCTION)
    print("COSTS = {")
    for optimizer in OPTIMIZER_TABLE:
        print(f"    {optimizer!r}: {{")
        for loss in columns:
            step, element = run_cost(optimizer, loss)
            print(f"        {loss!r}: ({step:.3g}, {element:.3g}),")
        print("    },")
    print("}")
    print("NATIVE_COSTS = {")
    for optimizer in NATIVE:
        print(f"    {optimizer!r}: {{")
        for loss in LOSS_NAMES:
            step, element = run_cost(optimizer, loss, native=True)
            print(f"        {loss!r}: ({step:.3g}, {element:.3g}),")
        print("    },")
    print("}")
    print("MAP_COSTS = {")
    for loss in columns:
        print(f"    {loss!r}: {map_cost(loss):.3g},")
    print("}")


if __name__ == "__main__":
    main()
