"""Grid points per second for a 51×51 model landscape: the per-point loop vs the batched one.

The per-point loop is the reference implementation's method (load the weights, evaluate the
data set); the batched evaluator runs a chunk of grid points through each batch at once with
``torch.func.functional_call`` under ``vmap``. Both evaluate a sample of the 2,601 points (the
time per point does not depend on the point) and the full surface's time is extrapolated.

    python benchmarks/bench_model_landscape.py                      # small CNN, 10k images, CPU
    python benchmarks/bench_model_landscape.py --model mlp --points 1024 --chunks 4 16 64 256 1024 \
        --auto-points 2601 --repeat 5
    python benchmarks/bench_model_landscape.py --model resnet56 --device cuda --points 64
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from torch import nn

from gdscope.examples import cnn, mlp, resnet
from gdscope.nets.directions import random_direction
from gdscope.nets.plane import (
    channels_last,
    evaluate_plane,
    evaluate_plane_loop,
    evaluate_vectors,
    materialize,
)
from gdscope.nets.recorder import ParamLayout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("mlp", "cnn", "resnet56"), default="cnn")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--points", type=int, default=32, help="grid points timed per method")
    parser.add_argument("--chunks", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs")
    parser.add_argument("--samples", type=int, help="fewer images (a quick check of the script)")
    parser.add_argument(
        "--auto-points",
        type=int,
        default=153,
        help="points for strategy='auto' (rows of 51; 0: none)",
    )
    args = parser.parse_args()
    module = {"mlp": mlp, "cnn": cnn, "resnet56": resnet}[args.model]
    model = module.make_model().to(args.device).eval()
    if args.samples is not None and args.model == "mlp":
        parser.error("--samples is for the image examples (the MLP's spiral has 1,500 points)")
    sized = {} if args.samples is None else {"n": args.samples}
    batches = materialize(module.make_loader(**sized), args.device)
    samples = sum(len(y) for _, y in batches)
    layout = ParamLayout.of(model)
    centre = layout.vector(model)
    dx = random_direction(model, seed=1).to(args.device)
    dy = random_direction(model, seed=2).to(args.device)
    coords = np.stack(np.meshgrid(np.linspace(-1, 1, 51), np.linspace(-1, 1, 51)), -1)
    coords = torch.tensor(coords.reshape(-1, 2)[: args.points], dtype=torch.float32,
                          device=args.device)  # fmt: skip
    vectors = centre[None] + coords[:, :1] * dx[None] + coords[:, 1:] * dy[None]
    loss_fn = nn.CrossEntropyLoss()

    def timed(run) -> float:
        """Best of --repeat runs (small models finish in milliseconds: take the least noisy)."""
        best = float("inf")
        for _ in range(args.repeat):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            began = time.perf_counter()
            run()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - began)
        return best

    evaluate_vectors(model, batches[:1], loss_fn, vectors[:2])  # warm-up
    rows = [("per-point loop (reference method)",
             timed(lambda: evaluate_plane_loop(model, batches, loss_fn, vectors)),
             len(vectors))]  # fmt: skip
    if batches[0][0].dim() == 4:  # images: the same loop with channels-last tensors
        nhwc = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in batches]

        def loop_nhwc() -> None:
            with channels_last(model):
                evaluate_plane_loop(model, nhwc, loss_fn, vectors)

        with channels_last(model):  # warm-up: the layout's own kernels
            evaluate_plane_loop(model, nhwc, loss_fn, vectors[:1])
        rows.append(("per-point loop, channels-last", timed(loop_nhwc), len(vectors)))
    for chunk in args.chunks:

        def batched(chunk: int = chunk) -> None:
            for start in range(0, len(vectors), chunk):
                evaluate_vectors(model, batches, loss_fn, vectors[start : start + chunk])

        rows.append((f"batched, vmap over {chunk} points", timed(batched), len(vectors)))
    # strategy="auto" as users get it: timing trials on the first points, then the winner;
    # whole rows of the 51×51 grid, at least --auto-points of them, trials included.
    rows_of_grid = -(-args.auto_points // 51)
    surface = None

    def auto() -> None:
        nonlocal surface
        surface = evaluate_plane(model, batches, loss_fn, dx=dx, dy=dy, centre=centre,
                                 xs=np.linspace(-1, 1, 51),
                                 ys=np.linspace(-1, 1, 51)[:rows_of_grid])  # fmt: skip

    if rows_of_grid:
        seconds = timed(auto)
        assert surface is not None
        choice = f"{surface.meta['strategy']} over {surface.meta['chunk']}"
        if surface.meta["memory_format"] != "contiguous":
            choice += f", {surface.meta['memory_format']}"
        rows.append((f"auto: chose {choice}, trials included", seconds, 51 * rows_of_grid))
    device = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    if args.device.startswith("cuda"):
        device = torch.cuda.get_device_name()
    print(f"{args.model}: {layout.size:,} parameters, {samples:,} samples; {device}")
    print("| method | points/s | s per point | 51×51 surface (s) | vs loop |")
    print("|---|---:|---:|---:|---:|")
    base = rows[0][1] / rows[0][2]
    for name, seconds, count in rows:
        per = seconds / count
        print(f"| {name} | {1 / per:.2f} | {per:.4f} | {2601 * per:.3g} | {base / per:.2f}× |")


if __name__ == "__main__":
    main()
