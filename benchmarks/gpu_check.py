"""Every GPU figure of the docs in one run (under 8 minutes on one GPU), printed as one table.

1. K copies of a network trained at once (``train_stacked``, vmap) against torch.func's
   ensembling recipe and K sequential ``torch.optim`` trainings (``bench_model_study``'s ways),
   for the MLP and the residual CNN;
2. a 2-D landscape plane of the residual CNN (``model_landscape``, auto) against the same plane
   evaluated point by point as the reference implementation does (load the weights, evaluate);
3. the Hessian's top eigenvalues, trace and density of the MLP (``curvature``).

``--device cpu --quick`` runs the same code on tiny sizes (the test suite does, so the script
cannot rot before a GPU is at hand). Numbers only from a run on the device named.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_model_study as study

from gdscope.nets.curvature import curvature
from gdscope.nets.survey import model_landscape


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _seconds(run: Callable[..., object], *args: object, device: str, **kwargs: object) -> float:
    _sync(device)
    began = time.perf_counter()
    run(*args, **kwargs)
    _sync(device)
    return time.perf_counter() - began


def _reference_plane(model: nn.Module, x: torch.Tensor, y: torch.Tensor, points: int,
                     device: str) -> None:  # fmt: skip
    """The reference's way: for each grid point, write base + a·d1 + b·d2 into the model and
    evaluate the loss (random directions; what differs from gdscope is one point at a time)."""
    net = model.to(device).eval()
    base = [p.detach().clone() for p in net.parameters()]
    d1 = [torch.randn_like(p) for p in base]
    d2 = [torch.randn_like(p) for p in base]
    axis = torch.linspace(-1, 1, points).tolist()
    with torch.no_grad():
        for a in axis:
            for b in axis:
                for p, p0, u, v in zip(net.parameters(), base, d1, d2, strict=True):
                    p.copy_(p0 + a * u + b * v)
                nn.functional.cross_entropy(net(x), y).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the test suite's)")
    args = parser.parse_args()
    device, quick = args.device, args.quick
    name = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor()
    print(f"device: {device} ({name}), torch {torch.__version__}, load {os.getloadavg()[0]:.2f}")
    print("| figure | gdscope | the alternative | ratio |")
    print("|---|---:|---:|---:|")
    sizes = (4,) if quick else (256, 1024)
    for model_name in ("mlp", "cnn"):
        caption, make, data, batch = study.MODELS[model_name]
        x, y = (t.to(device) for t in data().tensors)
        if quick:
            x, y = x[:256], y[:256]
        model = make()
        steps = 3 if quick else (50 if model_name == "mlp" else 10)
        study.gdscope("vmap")(model, x, y, 2, 2, batch, device)  # warm-up
        for size in sizes:
            sample = min(size, 8)
            ours = _seconds(study.gdscope("auto"), model, x, y, size, steps, batch, device,
                            device=device)  # fmt: skip
            recipe = _seconds(study.recipe, model, x, y, size, steps, batch, device,
                              device=device)  # fmt: skip
            alone = _seconds(study.sequential, model, x, y, sample, steps, batch, device,
                             device=device) * size / sample  # fmt: skip
            rate = size * steps
            print(
                f"| {caption}, K={size} × {steps} steps: config-steps/s vs recipe | "
                f"{rate / ours:,.0f} | {rate / recipe:,.0f} | {recipe / ours:.2f}× |"
            )
            print(f"| {caption}, K={size}: vs {size} sequential torch.optim trainings | "
                  f"{rate / ours:,.0f} | {rate / alone:,.0f} | {alone / ours:.2f}× |",
                  flush=True)  # fmt: skip
    caption, make, data, _ = study.MODELS["cnn"]
    x, y = (t.to(device) for t in data().tensors)
    x, y = (x[:32], y[:32]) if quick else (x[:1000], y[:1000])
    points = 5 if quick else 41
    model = make().to(device)
    ours = _seconds(model_landscape, model, [(x, y)], nn.CrossEntropyLoss(), points=points,
                    device=device)  # fmt: skip
    reference = _seconds(_reference_plane, model, x, y, points, device, device=device)
    print(
        f"| {caption}: {points}×{points} plane on {len(x)} images | {ours:.2f} s | "
        f"{reference:.2f} s | {reference / ours:.2f}× |"
    )
    caption, make, data, _ = study.MODELS["mlp"]
    x, y = (t.to(device) for t in data().tensors)
    model = make().to(device)
    top = 2 if quick else 5
    spent = _seconds(curvature, model, [(x, y)], nn.CrossEntropyLoss(), device=device, top=top,
                     trace=True, trace_samples=10 if quick else 100, density=True,
                     density_steps=10 if quick else 80)  # fmt: skip
    print(f"| {caption}: Hessian top-{top}, trace, density | {spent:.2f} s | | |")


if __name__ == "__main__":
    main()
