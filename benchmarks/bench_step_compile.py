"""Would ``torch.compile`` make the copies' step faster? One step's gradients of K copies of the
MLP 2-64-64-3 (vmapped forward, one backward of the summed losses: what ``engines.stacked``
runs), eager against ``torch.compile``d, interleaved in one process, with the compile time and
the load average.

    python benchmarks/bench_step_compile.py                  # K = 1024, 20 timed steps each
    python benchmarks/bench_step_compile.py --copies 256 --steps 50
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                        nn.Linear(64, 3))  # fmt: skip
    params, _ = stack_module_state([net] * args.copies)  # type: ignore[arg-type]
    params = {k: v.detach() for k, v in params.items()}
    x, y = torch.randn(100, 2), torch.randint(0, 3, (100,))

    def loss(p: dict[str, Tensor], xb: Tensor, yb: Tensor) -> Tensor:
        return nn.functional.cross_entropy(functional_call(net, p, (xb,)), yb)

    mapped = vmap(loss, in_dims=(0, None, None))

    def step(p: dict[str, Tensor], xb: Tensor, yb: Tensor) -> tuple[Tensor, ...]:
        leaves = {k: v.detach().requires_grad_() for k, v in p.items()}
        return torch.autograd.grad(mapped(leaves, xb, yb).sum(), list(leaves.values()))

    compiled = torch.compile(step)
    began = time.perf_counter()
    compiled(params, x, y)
    compile_s = time.perf_counter() - began

    def per_step(run: Callable[..., object]) -> float:
        run(params, x, y)
        began = time.perf_counter()
        for _ in range(args.steps):
            run(params, x, y)
        return (time.perf_counter() - began) / args.steps

    best = {"eager": float("inf"), "torch.compile": float("inf")}
    load = _load()
    for _ in range(args.repeat):
        best["eager"] = min(best["eager"], per_step(step))
        best["torch.compile"] = min(best["torch.compile"], per_step(compiled))
    print(f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads; MLP 2-64-64-3, K = {args.copies}, batch 100; "
          f"load average {load} before, {_load()} after")  # fmt: skip
    print("| way | ms per step | × eager |")
    print("|---|---:|---:|")
    for way, seconds in best.items():
        print(f"| {way} | {seconds * 1e3:.1f} | {best['eager'] / seconds:.2f}× |")
    print(f"torch.compile's first call (compiling): {compile_s:.1f} s")


if __name__ == "__main__":
    main()
