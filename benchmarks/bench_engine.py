"""Configuration-steps per second: one torch.optim loop per run vs the batched engine.

The article's problem (50 points, 100 epochs, SGD momentum 0.9, learning rates spread over
[0.001, 0.5]), for MSELoss and L1Loss. Prints a Markdown table. ``--quick`` skips K = 1e6.
Run: ``python benchmarks/bench_engine.py [--quick] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from gdscope.engines.batched import run_batched
from gdscope.engines.reference import train
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.data import make_data
from gdscope.problem.losses import LossSpec

EPOCHS = 100


def naive(data, loss: LossSpec, runs: int = 30) -> float:
    train(data, loss=loss, epochs=EPOCHS)  # warm-up: first-call costs are not the loop's
    began = time.perf_counter()
    for k in range(runs):
        spec = OptimizerSpec.of("sgd", lr=0.001 + 0.499 * k / runs, momentum=0.9)
        train(data, loss=loss, optimizer=spec, epochs=EPOCHS)
    return runs * EPOCHS / (time.perf_counter() - began)


def batched(
    data, loss: LossSpec, k: int, *, record: str, device: str, **engine: object
) -> tuple[float, float]:
    """(configuration-steps per second on a warm run, seconds of the first call)."""
    hyper = {"lr": torch.linspace(0.001, 0.5, k), "momentum": 0.9}

    def once() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        run_batched(data, "sgd", hyper, loss=loss, epochs=EPOCHS, record=record, device=device,
                    **engine)  # fmt: skip
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - began

    first = once()
    warm = min(once() for _ in range(1 if k >= 1_000_000 else 3))
    return k * EPOCHS / warm, first


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip K = 1,000,000")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    data = make_data()
    name = torch.cuda.get_device_name() if args.device == "cuda" else platform.machine()
    threads = torch.get_num_threads()
    print(f"device: {args.device} ({name}), {threads} CPU threads, torch {torch.__version__}\n")
    sizes = [1, 100, 10_000] + ([] if args.quick else [1_000_000])
    print("| engine | K | record | MSE cfg-steps/s | L1 cfg-steps/s | first call (s) |")
    print("|---|---:|---|---:|---:|---:|")
    losses = [LossSpec("mse"), LossSpec("l1")]
    rates = [naive(data, loss) for loss in losses]
    print(f"| torch.optim loop | 1 | path | {rates[0]:.3g} | {rates[1]:.3g} | |", flush=True)
    engines = [
        ("batched, torch eager", {"engine": "torch"}),
        ("batched, torch.compile", {"engine": "torch", "compile": True}),
    ]
    if args.device == "cpu":
        engines.append(("batched, native C kernel", {"engine": "native"}))
    for label, engine in engines:
        for k in sizes:
            for record in ("metrics", "path"):
                if k >= 1_000_000 and record == "path" and engine == {"engine": "torch"}:
                    continue  # eager at 1e6 with the path: minutes, adds nothing
                results = [
                    batched(data, loss, k, record=record, device=args.device, **engine)
                    for loss in losses
                ]
                first = max(r[1] for r in results)
                print(f"| {label} | {k:,} | {record} | {results[0][0]:.3g} | {results[1][0]:.3g} "
                      f"| {first:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
