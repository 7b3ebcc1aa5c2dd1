"""Hessian-vector products per second, and the time to the top Hessian eigenvalue at a relative
tolerance of 1e-3, for the example MLP, small CNN and ResNet-56 on a sample of their data;
PyHessian's ``hessian(...).eigenvalues()`` on the same model and data side by side (if it is
installed; it is not a dependency of gdscope). A second table times each of ``curvature``'s
computations on its own (top-1, top-2 as ``--directions hessian`` asks, top-5, the trace, the
density), and a third checks top-5 against ``torch.linalg.eigh`` on a model whose every
eigenvalue is repeated four times (``nn.Linear(60, 4, bias=False)``, MSE).

The two stop differently: gdscope's Lanczos stops when the Ritz pair's residual is within
``tol·|λ|`` (a guarantee: an eigenvalue lies that close), PyHessian's power iteration when two
successive estimates differ by less than ``tol`` relative (no guarantee). Both are compared with
a reference eigenvalue from Lanczos at 1e-6.

    python benchmarks/bench_hessian.py                       # mlp, cnn, resnet56 on this CPU
    python benchmarks/bench_hessian.py --models mlp --repeat 3
    python benchmarks/bench_hessian.py --device cuda --samples 1024
    python benchmarks/bench_hessian.py --models mlp cnn --tasks --repeat 3   # the second table
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gdscope.examples import cnn, mlp, resnet
from gdscope.nets.curvature import HessianOperator, curvature
from gdscope.nets.plane import materialize

MODULES = {"mlp": mlp, "cnn": cnn, "resnet56": resnet}
SAMPLES = {"mlp": 1500, "cnn": 512, "resnet56": 64}
"""A sample of each data set on a CPU (the MLP's spiral is all of it)."""


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(run: Callable[[], Any], device: str, repeat: int) -> tuple[float, Any]:
    """Best time of ``repeat`` runs, and the last run's result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        _sync(device)
        began = time.perf_counter()
        result = run()
        _sync(device)
        best = min(best, time.perf_counter() - began)
    return best, result


def _data(name: str, samples: int | None, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch: the first ``samples`` samples of the example's data."""
    module = MODULES[name]
    count = samples or SAMPLES[name]
    loader = module.make_loader() if name == "mlp" else module.make_loader(n=count)
    inputs, targets = zip(*materialize(loader), strict=True)
    return torch.cat(inputs)[:count].to(device), torch.cat(targets)[:count].to(device)


def _pyhessian(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], device: str,
               tol: float) -> tuple[float, int] | None:  # fmt: skip
    """PyHessian's top eigenvalue and its number of products, or None if it is missing."""
    try:
        import pyhessian  # noqa: F401 (its package shadows the module with the class)
    except ImportError:
        return None
    module = sys.modules["pyhessian.hessian"]
    real, count = module.hessian_vector_product, [0]

    def counted(*args: Any) -> Any:
        count[0] += 1
        return real(*args)

    module.hessian_vector_product = counted
    try:
        model.zero_grad()
        computer = module.hessian(model, nn.CrossEntropyLoss(), data=data,
                                  cuda=device.startswith("cuda"))  # fmt: skip
        values, _ = computer.eigenvalues(top_n=1, tol=tol)
    finally:
        module.hessian_vector_product = real
        model.zero_grad(set_to_none=True)  # it leaves gradients holding their graph
    return float(values[0]), count[0]


def bench(name: str, args: argparse.Namespace) -> str:
    model = MODULES[name].make_model().to(args.device).eval()
    data = _data(name, args.samples, args.device)
    loss = nn.CrossEntropyLoss()
    operator = HessianOperator(model, [data], loss)
    vector = torch.randn(operator.size, device=args.device)
    block = torch.randn(args.batch, operator.size, device=args.device)
    operator(vector)  # builds (and keeps) the gradient's graph: not a product's cost
    single, _ = _timed(lambda: [operator(vector) for _ in range(args.products)], args.device,
                       args.repeat)  # fmt: skip
    batched, _ = _timed(lambda: operator.matmat(block), args.device, args.repeat)
    ours_s, ours = _timed(lambda: curvature(model, [data], loss, tol=args.tol), args.device,
                          args.repeat)  # fmt: skip
    reference = curvature(model, [data], loss, tol=1e-6, steps=100).eigenvalues[0]
    theirs = _timed(lambda: _pyhessian(model, data, args.device, args.tol), args.device,
                    args.repeat)  # fmt: skip
    theirs_s, found = theirs
    lam = ours.eigenvalues[0]
    row = (f"| {name} | {operator.size:,} | {len(data[1]):,} | "
           f"{args.products / single:.1f} | {args.batch / batched:.1f} | "
           f"{ours_s:.2f} s ({ours.hvps} HVPs, λ = {lam:.5g}, rel. err. "
           f"{abs(lam / reference - 1):.1e}) |")  # fmt: skip
    if found is None:
        return row + " not installed |"
    value, count = found
    return row + (f" {theirs_s:.2f} s ({count} HVPs, λ = {value:.5g}, rel. err. "
                  f"{abs(value / reference - 1):.1e}) |")  # fmt: skip


TASKS: dict[str, dict[str, Any]] = {
    "top-1": {"top": 1},
    "top-2": {"top": 2},
    "top-5": {"top": 5},
    "trace (20 vectors)": {"top": 1, "steps": 1, "trace": True, "trace_samples": 20},
    "density (1 × 40 steps)": {"top": 1, "steps": 1, "density": True, "density_steps": 40},
}
"""Each computation on its own; the trace and density rows include one Lanczos step (the
eigenvalue ``curvature`` always computes), not subtracted."""


def tasks(name: str, args: argparse.Namespace) -> str:
    """One row: each of ``TASKS``'s best wall time, best CPU time of this process (less
    sensitive to other jobs on the machine) and its products (at ``--tol``)."""
    model = MODULES[name].make_model().to(args.device).eval()
    data = _data(name, args.samples, args.device)
    cells = []
    for fields in TASKS.values():
        wall = cpu = float("inf")
        for _ in range(args.repeat):
            _sync(args.device)
            began, used = time.perf_counter(), time.process_time()
            spectrum = curvature(model, [data], nn.CrossEntropyLoss(), tol=args.tol, **fields)
            _sync(args.device)
            wall = min(wall, time.perf_counter() - began)
            cpu = min(cpu, time.process_time() - used)
        cells.append(f"{wall:.2f} / {cpu:.2f} s ({spectrum.hvps})")
    return f"| {name} | " + " | ".join(cells) + " |"


def repeated(tol: float) -> str:
    """Top-5 of a Hessian whose every eigenvalue is repeated four times, against ``eigh``."""
    torch.manual_seed(0)
    model = nn.Linear(60, 4, bias=False).double()
    x, y = torch.randn(200, 60, dtype=torch.float64), torch.randn(200, 4, dtype=torch.float64)
    exact = torch.linalg.eigvalsh(2 / (200 * 4) * torch.kron(torch.eye(4, dtype=torch.float64),
                                                              x.T @ x)).flip(0)[:5]  # fmt: skip
    spectrum = curvature(model, [(x, y)], nn.MSELoss(), top=5, tol=tol, steps=400)
    error = float((torch.from_numpy(spectrum.eigenvalues) - exact).abs().max() / exact[0])
    found = ", ".join(f"{v:.4f}" for v in spectrum.eigenvalues)
    return (f"| {tol:g} | {found} | {', '.join(f'{v:.4f}' for v in exact.tolist())} | "
            f"{error:.1e} | {spectrum.converged} | {spectrum.hvps} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", choices=tuple(MODULES), default=list(MODULES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--samples", type=int, help="samples per model (default: per model)")
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--products", type=int, default=10, help="single products timed")
    parser.add_argument("--batch", type=int, default=10, help="vectors in one batched product")
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs")
    parser.add_argument(
        "--tasks",
        action="store_true",
        help="time each computation on its own instead (the second table)",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    warnings.filterwarnings("ignore", message=r"Using backward\(\) with create_graph")
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, device {args.device}, tol {args.tol:g}, load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")  # fmt: skip
    if args.tasks:
        print("wall / CPU seconds (Hessian-vector products), best of --repeat")
        print("| model | " + " | ".join(TASKS) + " |")
        print("|---|" + "---:|" * len(TASKS))
        for name in args.models:
            print(tasks(name, args), flush=True)
        print("\n| tol | top-5 found | exact (eigh) | max error / λ₁ | converged | HVPs |")
        print("|---:|---|---|---:|---|---:|")
        for tol in (1e-3, 1e-8):
            print(repeated(tol), flush=True)
        print(f"# load average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        return
    print("| model | parameters | samples | HVP/s (one vector) | HVP/s (batched) | "
          "gdscope top-1 (Lanczos) | PyHessian top-1 (power iteration) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---|---|")
    for name in args.models:
        print(bench(name, args), flush=True)
    print(f"# load average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
