"""Loss map on the article's 101×101 grid: one torch loss call per point vs one broadcast call.

Run: ``python benchmarks/bench_loss_map.py``. Prints a Markdown table (median of repeats).
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import torch

from gdscope.problem.data import make_data
from gdscope.problem.losses import ARTICLE_LOSSES
from gdscope.problem.maps import ARTICLE_GRID, loss_map, loss_map_pointwise


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    data = make_data()
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads,"
    )
    print(f"torch {torch.__version__}, Python {platform.python_version()}\n")
    print("| loss | per-point loop (ms) | vectorized (ms) | speed-up |")
    print("|---|---:|---:|---:|")
    for loss in ARTICLE_LOSSES:
        slow = median_seconds(lambda loss=loss: loss_map_pointwise(data, loss, ARTICLE_GRID), 5)
        fast = median_seconds(lambda loss=loss: loss_map(data, loss, ARTICLE_GRID), 50)
        print(f"| {loss.title} | {slow * 1e3:.1f} | {fast * 1e3:.2f} | {slow / fast:.0f}× |")


if __name__ == "__main__":
    main()
