"""Measure the explorer's cost table on this machine; prints ``COSTS`` for ``server/costs.py``.

A run costs ``epochs × (step + configuration × configurations + element × configurations ×
points)`` seconds; a map ``element × cells × points``. Test functions (one point) are one
column, ``"function"``: the slowest of them.
Run: ``python benchmarks/calibrate_costs.py`` (minutes; the server's own settings: float32, one
torch thread, the tensor engine, which ``should_stop`` selects, and the native one for SGD).
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


def best(fn: Callable[[], object], repeat: int = 2) -> float:
    """The fastest of a few runs: the machine's cost without other work on it."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def never() -> bool:
    return False


def run_cost(optimizer: str, loss: str, *, native: bool = False) -> tuple[float, float, float]:
    """(step, configuration, element) seconds for the tensor engine (polled, as the server runs
    it) or the native one: a step's fixed cost with the path recorded, then per configuration
    (its state and metrics), then per configuration × data point."""
    if loss == FUNCTION:
        return max((function_cost(optimizer, name) for name in FUNCTIONS), key=lambda c: c[1])
    stop = None if native else never
    hyper = OPTIMIZER_TABLE[optimizer].defaults()

    def seconds(configs: int, n: int, epochs: int, record: str) -> float:
        data = make_data(DataSpec(n=n))
        lrs = {**hyper, "lr": torch.full((configs,), 0.01)}
        return best(lambda: run_batched(data, optimizer, lrs, loss=LossSpec(loss), epochs=epochs,
                                        record=record, should_stop=stop)) / epochs  # fmt: skip

    step = seconds(1, 2, 200, "path")
    config = max(seconds(4096, 2, 20, "metrics") - step, 0.0) / 4096
    element = max(seconds(256, 1000, 20, "metrics") - step - 256 * config, 0.0) / 256_000
    return step, config, element


def function_cost(optimizer: str, name: str) -> tuple[float, float, float]:
    """As ``run_cost`` for a test function: one point, so no element cost."""
    function = TestFunction(name)
    hyper = OPTIMIZER_TABLE[optimizer].defaults()
    step = best(lambda: run_batched(None, optimizer, hyper, loss=function, epochs=200,
                                    record="path", should_stop=never)) / 200  # fmt: skip
    configs = 4096
    lrs = {**hyper, "lr": torch.full((configs,), 1e-4)}
    batch = best(lambda: run_batched(None, optimizer, lrs, loss=function, epochs=20,
                                     record="metrics", should_stop=never))  # fmt: skip
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


def main() -> None:
    torch.set_num_threads(1)  # as gdscope serve runs its computations
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
    for optimizer in NATIVE:
        print(f"    {optimizer!r}: {{")
        for loss in LOSS_NAMES:
            costs = run_cost(optimizer, loss, native=True)
            print(f"        {loss!r}: ({', '.join(f'{c:.3g}' for c in costs)}),")
        print("    },")
    print("}")
    print("MAP_COSTS = {")
    for loss in columns:
        print(f"    {loss!r}: {map_cost(loss):.3g},")
    print("}")


if __name__ == "__main__":
    main()
