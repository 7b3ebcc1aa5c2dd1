"""K copies of a network trained at once: gdscope against what a user could write instead.

Every way trains the same K copies (SGD, momentum 0.9, lr log-spaced over the copies) on the
same mini-batches, in one process, one after another for each K (interleaved):

- ``recipe``: torch.func's model-ensembling recipe, about 30 lines: ``stack_module_state``,
  ``vmap(grad(...))`` and a hand-written SGD-momentum step on the stacked tensors;
- ``sequential``: K ordinary trainings one after another (a fresh model, ``torch.optim.SGD``, a
  seeded shuffling ``DataLoader``), timed on ``--sample`` of them and scaled to K;
- ``vmap``, ``loop``, ``auto``: ``gdscope.engines.stacked.train_stacked`` with each method
  (``auto`` includes its trial: steps 1 and 2 vmapped, step 2 timed, and one copy's gradient
  timed alone).

Prints configuration-steps per second (K × steps / seconds, set-up included) and each way's
ratio to the recipe, with the load average. The loop and sequential ways run fewer steps at
large K (their cost per step grows with K; the rate is what is compared).
``--device cuda`` runs everything on the GPU.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import platform
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from gdscope.engines.stacked import train_stacked
from gdscope.examples import cnn, mlp


class _Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


def residual_cnn() -> nn.Module:
    """A small residual CNN with BatchNorm for 1×16×16 images of ten classes."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), _Block(8),
        nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
        nn.ReLU(), _Block(16), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip


def mlp_64() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                         nn.Linear(64, 3))  # fmt: skip


MODELS: dict[str, tuple[str, Callable[[], nn.Module], Callable[[], TensorDataset], int]] = {
    "mlp": ("MLP 2-64-64-3", mlp_64, lambda: mlp.make_dataset(1500), 100),
    "cnn": ("residual CNN, BatchNorm, 1×16×16", residual_cnn, lambda: cnn.make_dataset(2000), 32),
}
"""Each model: its caption, its maker, its data and the batch size."""


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _lrs(size: int) -> Tensor:
    return torch.logspace(-3, -0.5, size)


def recipe(model: nn.Module, x: Tensor, y: Tensor, size: int, steps: int, batch: int,
           device: str) -> None:  # fmt: skip
    """torch.func's ensembling recipe with a hand-written SGD-momentum step."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    models = [copy.deepcopy(model).to(device) for _ in range(size)]
    params, buffers = stack_module_state(models)  # type: ignore[arg-type]
    params = {k: v.detach() for k, v in params.items()}
    base = copy.deepcopy(model).to("meta")

    def loss(p: dict[str, Tensor], b: dict[str, Tensor], xb: Tensor, yb: Tensor) -> Tensor:
        out = functional_call(base, (p, b), (xb,))
        return nn.functional.cross_entropy(out, yb)

    gradients = vmap(grad(loss), in_dims=(0, 0, None, None), randomness="different")
    lr = _lrs(size).to(device)
    momenta = {k: torch.zeros_like(v) for k, v in params.items()}
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    batches = (pair for _ in itertools.count() for pair in loader)
    for xb, yb in itertools.islice(batches, steps):
        found = gradients(params, buffers, xb, yb)
        for name, p in params.items():
            momenta[name].mul_(0.9).add_(found[name])
            p.sub_(lr.view(-1, *[1] * (p.dim() - 1)) * momenta[name])


def sequential(model: nn.Module, x: Tensor, y: Tensor, size: int, steps: int, batch: int,
               device: str) -> None:  # fmt: skip
    """``size`` ordinary trainings one after another."""
    for lr in _lrs(size).tolist():
        net = copy.deepcopy(model).to(device).train()
        optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
        loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True,
                            generator=torch.Generator().manual_seed(0))  # fmt: skip
        batches = (pair for _ in itertools.count() for pair in loader)
        for xb, yb in itertools.islice(batches, steps):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(xb), yb).backward()
            optimizer.step()


def gdscope(method: str) -> Callable[..., str]:
    def run(model: nn.Module, x: Tensor, y: Tensor, size: int, steps: int, batch: int,
            device: str) -> str:  # fmt: skip
        result = train_stacked(model, x, y, nn.functional.cross_entropy, "sgd",
                               {"lr": _lrs(size).tolist(), "momentum": 0.9}, size=size,
                               steps=steps, batch_size=batch, device=device,
                               method=method)  # type: ignore[arg-type]  # fmt: skip
        return result.method

    return run


def _timed(run: Callable[..., object], *args: object) -> tuple[float, object]:
    _sync(str(args[-1]))
    began = time.perf_counter()
    out = run(*args)
    _sync(str(args[-1]))
    return time.perf_counter() - began, out


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--sizes", default="64,256,1024", help="the K to time")
    parser.add_argument("--steps", type=int, default=50, help="steps of the MLP's runs")
    parser.add_argument("--cnn-steps", type=int, default=6, help="steps of the CNN's runs")
    parser.add_argument("--sample", type=int, default=8, help="sequential trainings timed")
    parser.add_argument("--ways", default="recipe,vmap,loop,auto,sequential")
    parser.add_argument(
        "--threads", type=int, help="torch threads (default torch's; 1 on a shared machine, "
        "where a thread descheduled at a barrier stalls every op)"
    )  # fmt: skip
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    print(
        f"machine: {machine}, torch {torch.__version__}, {torch.get_num_threads()} torch "
        f"threads, {args.device}; SGD momentum 0.9; configuration-steps/s (× the recipe)"
    )
    ways: dict[str, Callable[..., object]] = {
        "recipe": recipe, "sequential": sequential, "vmap": gdscope("vmap"),
        "loop": gdscope("loop"), "auto": gdscope("auto"),
    }  # fmt: skip
    chosen = [w for w in args.ways.split(",") if w]
    print(f"| model | K | {' | '.join(chosen)} | auto chose | load average |")
    print("|---|---:|" + "---:|" * len(chosen) + "---|---|")
    for name in args.models.split(","):
        caption, make, data, batch = MODELS[name]
        x, y = (t.to(args.device) for t in data().tensors)
        model = make()
        steps = args.steps if name == "mlp" else args.cnn_steps
        for way in chosen:  # warm-up: first calls, imports, the allocator
            ways[way](model, x, y, 2, 2, batch, args.device)
        for size in (int(v) for v in args.sizes.split(",")):
            rates: dict[str, float] = {}
            picked = ""
            for way in chosen:
                # The loop's and sequential cost grows with K: fewer steps, the same rate.
                count = steps if way not in ("loop", "sequential") else max(6, steps * 64 // size)
                copies = min(size, args.sample) if way == "sequential" else size
                seconds, out = _timed(ways[way], model, x, y, copies, count, batch, args.device)
                rates[way] = copies * count / seconds
                if way == "auto":
                    picked = str(out)
            base = rates.get("recipe")
            cells = [f"{rates[w]:,.0f}" + (f" ({rates[w] / base:.2f}×)" if base else "")
                     for w in chosen]  # fmt: skip
            print(f"| {caption} | {size} | {' | '.join(cells)} | {picked} | {_load()} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
