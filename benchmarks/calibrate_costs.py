"""Measure the explorer's cost table on this machine; prints the tables of ``server/costs.py``.

A run costs ``epochs × (step + configuration × configurations + element × configurations ×
points)`` seconds; a map ``element × cells × points``; a loss's minimum (``find_minimum``)
``fixed + element × points``. Test functions (one point) are one column, ``"function"``: the
slowest of them.
Run: ``python benchmarks/calibrate_costs.py`` (minutes; the server's workers' settings: float32,
one torch thread; ``COSTS`` by the tensor engine, which runs everything where the native
kernel does not load (``GDSCOPE_NO_NATIVE=1``, no C compiler), ``NATIVE_COSTS`` by the
kernel).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace

import torch

from gdscope.engines.batched import Engine, run_batched
from gdscope.optim.table import OPTIMIZER_TABLE
from gdscope.problem.data import DataSpec, make_data
from gdscope.problem.losses import LOSS_NAMES, LossSpec
from gdscope.problem.maps import Grid, find_minimum, loss_map
from gdscope.problem.testfunctions import FUNCTIONS, TestFunction
from gdscope.server.costs import FUNCTION, NATIVE_COSTS

MINIMUM_DATA = (DataSpec(), DataSpec(seed=1, noise=3.0), DataSpec(quadratic=-2, constant=50))
"""Data sets whose minimum is timed: the article's and two others; the slowest counts."""


def best(fn: Callable[[], object], repeat: int = 2) -> float:
    """The fastest of a few runs: the machine's cost without other work on it."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def run_cost(optimizer: str, loss: str, *, engine: Engine = "torch") -> tuple[float, float, float]:
    """(step, configuration, element) seconds for ``engine``: a step's fixed cost with the
    path recorded, then per configuration (its state and metrics), then per configuration ×
    data point."""
    if loss == FUNCTION:
        return max((function_cost(optimizer, name) for name in FUNCTIONS), key=lambda c: c[1])
    hyper = OPTIMIZER_TABLE[optimizer].defaults()

    def seconds(configs: int, n: int, epochs: int, record: str) -> float:
        data = make_data(DataSpec(n=n))
        lrs = {**hyper, "lr": torch.full((configs,), 0.01)}
        return best(lambda: run_batched(data, optimizer, lrs, loss=LossSpec(loss), epochs=epochs,
                                        record=record, engine=engine)) / epochs  # fmt: skip

    step = seconds(1, 2, 200, "path")
    config = max(seconds(4096, 2, 20, "metrics") - step, 0.0) / 4096
    element = max(seconds(256, 1000, 20, "metrics") - step - 256 * config, 0.0) / 256_000
    return step, config, element


def function_cost(optimizer: str, name: str) -> tuple[float, float, float]:
    """As ``run_cost`` for a test function: one point, so no element cost."""
    function = TestFunction(name)
    hyper = OPTIMIZER_TABLE[optimizer].defaults()
    step = best(lambda: run_batched(None, optimizer, hyper, loss=function, epochs=200,
                                    record="path")) / 200  # fmt: skip
    configs = 4096
    lrs = {**hyper, "lr": torch.full((configs,), 1e-4)}
    batch = best(lambda: run_batched(None, optimizer, lrs, loss=function, epochs=20,
                                     record="metrics"))  # fmt: skip
    return step, max(batch / 20 - step, 0.0) / configs, 0.0


def map_cost(loss: str) -> float:
    grid = Grid((-5, 5), (-5, 5), 101, 101)
    if loss == FUNCTION:
        cells = grid.w_size * grid.b_size
        return (
            max(best(lambda f=f: loss_map(None, TestFunction(f), grid)) for f in FUNCTIONS) / cells
        )
    data = make_data(DataSpec(n=1000))
    return best(lambda: loss_map(data, LossSpec(loss), grid)) / (101 * 101 * 1000)


def minimum_cost(loss: str) -> tuple[float, float]:
    """(fixed, per point) seconds of ``find_minimum``: the slowest of ``MINIMUM_DATA`` at 2 and
    at 1000 points."""

    def seconds(n: int) -> float:
        return max(
            best(lambda s=spec: find_minimum(make_data(replace(s, n=n)), LossSpec(loss)))
            for spec in MINIMUM_DATA
        )  # fmt: skip

    fixed = seconds(2)
    return fixed, max(seconds(1000) - fixed, 0.0) / 1000


def main() -> None:
    torch.set_num_threads(1)  # as the server's workers run their computations
    print(f"# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    columns = (*LOSS_NAMES, FUNCTION)
    print("COSTS = {")
    for optimizer in OPTIMIZER_TABLE:
        print(f"    {optimizer!r}: {{")
        for loss in columns:
            print(
                f"        {loss!r}: ({', '.join(f'{c:.3g}' for c in run_cost(optimizer, loss))}),"
            )
        print("    },")
    print("}")
    print("NATIVE_COSTS = {")
    for optimizer in NATIVE_COSTS:
        print(f"    {optimizer!r}: {{")
        for loss in LOSS_NAMES:
            costs = run_cost(optimizer, loss, engine="native")
            print(f"        {loss!r}: ({', '.join(f'{c:.3g}' for c in costs)}),")
        print("    },")
    print("}")
    print("MAP_COSTS = {")
    for loss in columns:
        print(f"    {loss!r}: {map_cost(loss):.3g},")
    print("}")
    print("MINIMUM_COSTS = {")
    for loss in LOSS_NAMES:
        print(f"    {loss!r}: ({', '.join(f'{c:.3g}' for c in minimum_cost(loss))}),")
    print("}")
    print(f"# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
