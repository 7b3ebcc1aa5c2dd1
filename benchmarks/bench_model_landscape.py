"""A model's landscape plane, every way gdscope evaluates it and the reference implementation's
``crunch`` loop, side by side on the same plane, interleaved, in one process.

Rows: ``strategy="auto"`` as users get it (its timing trials included), each explicit strategy
(``loop``, ``loop`` in channels-last layout for images, ``vmap``), and the reference
implementation's evaluation (tomgoldstein/loss-landscape: ``crunch`` sets the weights of one
point, runs ``eval_loss`` over the loader, and writes the whole loss array to its HDF5 file
after every point), re-implemented here from its description, with the HDF5 write and
without. Each row is timed ``--repeat`` times, the ways taking turns (so a change of load hits
all alike); the table gives the fastest time of each, the ratios, and the load average before
and after. Where the plane's forward pass is convolutions on the CPU, it also gives the bound
compute sets: the forward FLOPs of all points (``torch.utils.flop_counter``) over the
machine's peak FLOP/s, measured here by a timed large matmul.

    python benchmarks/bench_model_landscape.py                            # MLP, CNN, ResNet-56
    python benchmarks/bench_model_landscape.py --models mlp --repeat 5
    python benchmarks/bench_model_landscape.py --models cnn --cnn-samples 2000 --grid 11
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gdscope.examples import cnn, mlp, resnet
from gdscope.modules import ParamLayout
from gdscope.nets.directions import random_direction
from gdscope.nets.plane import Batches, ModelSurface, evaluate_plane, materialize


def reference_crunch(
    model: nn.Module,
    batches: Batches,
    loss_fn: nn.Module,
    dx: torch.Tensor,
    dy: torch.Tensor,
    xs: np.ndarray,
    ys: np.ndarray,
    h5: Path | None,
) -> np.ndarray:
    """The reference's evaluation, point by point: the weights set to ``w + x·dx + y·dy``,
    the mean loss over the batches (each batch's loss times its size, over the samples) and
    the hits (``.item()`` of both every batch, as its ``eval_loss`` does), and with ``h5`` the
    whole loss array written to the HDF5 file and flushed after every point."""
    layout = ParamLayout.of(model)
    params = layout.targets(model)
    start = layout.vector(model)
    losses = -np.ones((len(ys), len(xs)))
    handle = None
    if h5 is not None:
        import h5py

        handle = h5py.File(h5, "w")
        handle.create_dataset("train_loss", data=losses)
    model.eval()
    try:
        with torch.no_grad():
            for j, y in enumerate(ys):
                for i, x in enumerate(xs):
                    vector = start + float(x) * dx + float(y) * dy
                    for name, value in layout.unflatten(vector).items():
                        params[name].copy_(value)
                    total, correct, seen = 0.0, 0, 0
                    for inputs, targets in batches:
                        outputs = model(inputs)
                        total += loss_fn(outputs, targets).item() * len(targets)
                        correct += int(outputs.argmax(1).eq(targets).sum().item())
                        seen += len(targets)
                    losses[j, i] = total / seen
                    if handle is not None:
                        handle["train_loss"][:] = losses
                        handle.flush()
    finally:
        with torch.no_grad():
            for name, value in layout.unflatten(start).items():
                params[name].copy_(value)
        if handle is not None:
            handle.close()
    return losses


def peak_flops(size: int = 2048, repeat: int = 5) -> float:
    """FLOP/s of a large float32 matmul here, the best of ``repeat``: what compute allows."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    best = min(_seconds(lambda: a @ b) for _ in range(repeat))
    return 2 * size**3 / best


def forward_flops(model: nn.Module, batches: Batches) -> tuple[float, float]:
    """FLOPs of one evaluation over all batches, and the share of them in convolutions."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        for inputs, _ in batches:
            model(inputs)
    by_op = counter.get_flop_counts().get("Global", {})
    total = float(sum(by_op.values()))
    conv = float(sum(v for k, v in by_op.items() if "convolution" in str(k)))
    return total, (conv / total if total else 0.0)


def _seconds(run: Callable[[], object]) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def bench(name: str, args: argparse.Namespace, peak: float) -> None:
    module = {"mlp": mlp, "cnn": cnn, "resnet56": resnet}[name]
    model = module.make_model().eval()
    sized = {"cnn": {"n": args.cnn_samples}, "resnet56": {"n": args.resnet_samples,
             "batch_size": 256}}.get(name, {})  # fmt: skip
    batches = materialize(module.make_loader(**sized))
    loss_fn = nn.CrossEntropyLoss()
    dx, dy = random_direction(model, seed=1), random_direction(model, seed=2)
    xs = ys = np.linspace(-1, 1, args.grid)
    images = batches[0][0].dim() == 4
    surfaces: dict[str, ModelSurface] = {}

    def plane(**options: object) -> Callable[[], None]:
        def run() -> None:
            surfaces[str(options)] = evaluate_plane(
                model, batches, loss_fn, dx=dx, dy=dy, xs=xs, ys=ys, **options
            )  # type: ignore[arg-type]

        return run

    tmp = Path(tempfile.mkdtemp())
    reference: dict[str, np.ndarray] = {}

    def crunch(h5: bool) -> Callable[[], None]:
        def run() -> None:
            path = tmp / "surface.h5" if h5 else None
            reference["loss"] = reference_crunch(model, batches, loss_fn, dx, dy, xs, ys, path)

        return run

    ways: dict[str, Callable[[], None]] = {
        "reference crunch, HDF5 write per point": crunch(True),
        "reference crunch, no HDF5": crunch(False),
        "gdscope loop": plane(strategy="loop", memory_format="contiguous"),
    }
    if images:
        ways["gdscope loop, channels-last"] = plane(strategy="loop", memory_format="channels_last")
    ways["gdscope vmap"] = plane(strategy="vmap")
    ways["gdscope auto"] = plane()
    for run in ways.values():  # warm-up: one-off costs (kernels, allocations) out of the race
        if not args.no_warmup:
            run()
    best = dict.fromkeys(ways, float("inf"))
    load = os.getloadavg()
    for _ in range(args.repeat):
        for way, run in ways.items():
            best[way] = min(best[way], _seconds(run))
    after = os.getloadavg()
    auto = surfaces[str({})]
    choice = f"{auto.meta['strategy']} over {auto.meta['chunk']}"
    if auto.meta["memory_format"] != "contiguous":
        choice += f", {auto.meta['memory_format']}"
    gap = float(np.max(np.abs(auto.loss - reference["loss"])))
    points = args.grid**2
    print(f"\n{name}: {ParamLayout.of(model).size:,} parameters, "
          f"{sum(len(y) for _, y in batches):,} samples, {args.grid}×{args.grid} plane; "
          f"{platform.machine()}, {torch.get_num_threads()} torch threads; load average "
          f"{load[0]:.1f} before, {after[0]:.1f} after; auto chose {choice}; "
          f"max |auto − reference| = {gap:.1e}")  # fmt: skip
    explicit = [w for w in ways if w.startswith("gdscope") and w != "gdscope auto"]
    fastest = min(best[w] for w in explicit)
    base = best["reference crunch, HDF5 write per point"]
    print("| way | seconds | points/s | vs reference (HDF5) | vs best explicit |")
    print("|---|---:|---:|---:|---:|")
    for way, seconds in best.items():
        print(f"| {way} | {seconds:.3g} | {points / seconds:.1f} | {base / seconds:.2f}× | "
              f"{seconds / fastest:.2f} |")  # fmt: skip
    print(f"auto / best explicit = {best['gdscope auto'] / fastest:.2f}")
    if images:
        flops, conv = forward_flops(model, batches)
        bound = points * flops / peak
        print(f"forward: {flops / 1e9:.2f} GFLOP a point, {conv:.0%} in convolutions; at the "
              f"measured peak {peak / 1e9:.1f} GFLOP/s the plane needs {bound:.3g} s: the "
              f"fastest way runs at {bound / fastest:.0%} of that bound")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", choices=("mlp", "cnn", "resnet56"),
                        default=["mlp", "cnn", "resnet56"])  # fmt: skip
    parser.add_argument("--grid", type=int, default=11, help="points per side of the plane")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many, interleaved")
    parser.add_argument("--cnn-samples", type=int, default=10_000)
    parser.add_argument("--resnet-samples", type=int, default=256)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed first run")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    peak = peak_flops()
    print(f"peak: {peak / 1e9:.1f} GFLOP/s (float32 matmul 2048², best of 5)")
    for name in args.models:
        bench(name, args, peak)


if __name__ == "__main__":
    main()
