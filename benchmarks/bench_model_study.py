"""Time K copies of a network trained at once (``engines.stacked``) against K ordinary
``torch.optim`` trainings one after another, on the examples' MLP and CNN.

Prints two tables: configuration-steps per second and peak memory against K (each K in its own
process, so the peaks do not mix), and the speed-up over sequential training (the issue's target:
at least 10x for the MLP at K = 256, 300 steps). The sequential side is timed on ``--sample``
of the K trainings and scaled to K (each training costs the same; ``--full`` times them all).
``--device cuda`` runs both on the GPU.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gdscope.engines.stacked import train_stacked
from gdscope.examples import cnn, mlp

MODELS = {"mlp": (mlp, 100), "cnn": (cnn, 500)}
"""Each example and its loader's batch size."""


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _data(name: str, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    module, _ = MODELS[name]
    dataset = module.make_dataset() if n is None else module.make_dataset(n)
    return dataset.tensors


def stacked_seconds(
    name: str, size: int, steps: int, device: str, n: int | None
) -> tuple[float, float]:
    """The run's seconds and its median step's (the machine may be shared: the median is the
    step time without the pauses other work causes)."""
    module, batch = MODELS[name]
    x, y = _data(name, n)
    lrs = torch.logspace(-3, 0, size).tolist()
    model = module.make_model()

    marks: list[float] = []

    def tick() -> bool:  # asked before every step
        _sync(device)
        marks.append(time.perf_counter())
        return False

    def run(count: int) -> None:
        train_stacked(model, x, y, nn.CrossEntropyLoss(), "sgd", {"lr": lrs, "momentum": 0.9},
                      size=size, steps=count, batch_size=batch, device=device,
                      should_stop=tick)  # fmt: skip

    run(2)  # warm-up: vmap's first trace, the allocator
    marks.clear()
    _sync(device)
    began = time.perf_counter()
    run(steps)
    _sync(device)
    ended = time.perf_counter()
    steps_taken = np.diff([*marks, ended])
    return ended - began, float(np.median(steps_taken))


def study_seconds(name: str, size: int, steps: int, device: str, n: int | None,
                  method: str) -> tuple[float, str]:  # fmt: skip
    """A whole study (``run_network_grid``: K cells of lr, metrics included) with ``method``;
    its seconds and the method it trained with (``auto`` times vmap against the loop first)."""
    from gdscope.studies.netstudy import Network, run_network_grid
    from gdscope.studies.sweep import Axis

    module, batch = MODELS[name]
    x, y = _data(name, n)
    network = Network.of(module.make_model(), [(x, y)], nn.CrossEntropyLoss(), batch_size=batch)
    axis = Axis("lr", tuple(float(v) for v in np.geomspace(1e-3, 1.0, size)), log=True)
    began = time.perf_counter()
    run = run_network_grid(network, "sgd", (axis,), fixed={"momentum": 0.9}, steps=steps,
                           chunk=size, device=device, method=method)  # fmt: skip
    _sync(device)
    return time.perf_counter() - began, run.meta["method"]


def sequential_seconds(
    name: str, count: int, steps: int, device: str, n: int | None
) -> tuple[float, float]:
    """``count`` ordinary trainings, each a fresh model, torch.optim.SGD and a seeded loader:
    their seconds, and the median step's."""
    module, batch = MODELS[name]
    x, y = _data(name, n)
    x, y = x.to(device), y.to(device)
    base = module.make_model()
    marks: list[float] = []
    taken: list[float] = []
    _sync(device)
    began = time.perf_counter()
    for k in range(count):
        net = copy.deepcopy(base).to(device).train()
        optimizer = torch.optim.SGD(net.parameters(), lr=10 ** (-3 + 3 * k / max(count, 1)),
                                    momentum=0.9)  # fmt: skip
        loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True,
                            generator=torch.Generator().manual_seed(0))  # fmt: skip
        epochs = (pair for _ in itertools.count() for pair in loader)
        for xb, yb in itertools.islice(epochs, steps):
            marks.append(time.perf_counter())
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(xb), yb).backward()
            optimizer.step()
            _sync(device)
            taken.append(time.perf_counter() - marks[-1])
    _sync(device)
    return time.perf_counter() - began, float(np.median(taken))


def _one(args: argparse.Namespace) -> None:
    """Child process: one K, print seconds and peak memory (MiB) as JSON."""
    x = _data(args.model, args.n)[0]
    del x
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    seconds, step = stacked_seconds(args.model, args.k, args.steps, args.device, args.n)
    if args.device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({"seconds": seconds, "step": step, "peak_mib": peak}))


def _child(args: argparse.Namespace, size: int, steps: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--one", "--model", args.model, "--k", str(size),
               "--steps", str(steps), "--device", args.device]  # fmt: skip
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    if args.n is not None:
        command += ["--n", str(args.n)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", choices=tuple(MODELS), default="mlp")
    parser.add_argument("--k", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--n", type=int, help="data points (default: the example's)")
    parser.add_argument("--sizes", default="1,16,256,4096", help="K of the throughput table")
    parser.add_argument("--table-steps", type=int, default=30, help="steps per K in the table")
    parser.add_argument("--sample", type=int, default=16, help="sequential trainings timed")
    parser.add_argument("--cnn-k", type=int, default=32)
    parser.add_argument("--cnn-steps", type=int, default=20)
    parser.add_argument("--full", action="store_true", help="time every sequential training")
    parser.add_argument("--study-only", action="store_true",
                        help="only the table of whole studies (auto against vmap)")  # fmt: skip
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--threads", type=int, help="torch threads (default torch's; 1 on a shared machine, "
        "where a thread descheduled at a barrier stalls every op)"
    )  # fmt: skip
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.one:
        _one(args)
        return
    machine = f"{platform.processor() or platform.machine()}, {platform.system()}"
    threads = torch.get_num_threads()
    print(f"machine: {machine}, torch {torch.__version__}, {threads} threads, {args.device}")
    if not args.study_only:
        _engine_tables(args)
    print("\nWhole studies (run_network_grid, metrics included): auto times vmap against the "
          "loop on the first chunk")  # fmt: skip
    print("| model | K × steps | vmap | auto | auto chose |")
    print("|---|---|---|---|---|")
    for name, size, steps, n in (("mlp", args.k, args.steps, None),
                                 ("cnn", args.cnn_k, args.cnn_steps, 2000)):  # fmt: skip
        vmapped, _ = study_seconds(name, size, steps, args.device, n, "vmap")
        auto, chose = study_seconds(name, size, steps, args.device, n, "auto")
        print(f"| {name} | {size} × {steps} | {vmapped:.1f} s | {auto:.1f} s | {chose} |",
              flush=True)  # fmt: skip


def _engine_tables(args: argparse.Namespace) -> None:
    print(f"\nMLP 2-32-32-3, batch 100, SGD momentum 0.9; {args.table_steps} steps per K")
    print("| K | config-steps/s (median step) | (whole run) | peak memory |")
    print("|---|---|---|---|")
    for size in (int(v) for v in args.sizes.split(",")):
        got = _child(args, size, args.table_steps)
        rate, whole = size / got["step"], size * args.table_steps / got["seconds"]
        print(f"| {size} | {rate:,.0f} | {whole:,.0f} | {got['peak_mib']:.0f} MiB |", flush=True)
    print("\n| model | K × steps | K copies at once | K sequential torch.optim | speed-up "
          "| speed-up (median steps) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, size, steps, n in (("mlp", args.k, args.steps, None),
                                 ("cnn", args.cnn_k, args.cnn_steps, 2000)):  # fmt: skip
        at_once, step = stacked_seconds(name, size, steps, args.device, n)
        timed = size if args.full else min(size, args.sample)
        seconds, one_step = sequential_seconds(name, timed, steps, args.device, n)
        one_by_one = seconds * size / timed
        scaled = "" if timed == size else f" (timed {timed}, scaled)"
        print(f"| {name} | {size} × {steps} | {at_once:.1f} s | {one_by_one:.1f} s{scaled} "
              f"| {one_by_one / at_once:.1f}× | {one_step * size / step:.1f}× |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
