"""What recording costs inside a training framework: a Lightning ``fit`` with no callback, with
``RecorderCallback`` keeping snapshots in memory, and streaming them to a folder (one snapshot
per optimizer step, the most it takes).

Prints a table (milliseconds per optimizer step, median of ``--repeats`` fits); the callback's
cost is a snapshot (the parameters flattened and copied to the CPU as float32) per step, so it
matters for small steps of large models. ``--device cuda`` times it on a GPU, where each
snapshot is also a copy to the host. A second table adds ``landscape_every=LANDSCAPE_EVERY``
(an 11×11 landscape on one training batch, drawn and written as a PNG) to the folder's fit:
its cost per landscape is the difference, spread over the landscapes the fit drew.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from gdscope.examples import mlp, resnet
from gdscope.integrations.lightning import RecorderCallback

import lightning  # isort: skip

LANDSCAPE_EVERY = 10
MODELS = {
    "mlp": (mlp.make_model, lambda: mlp.make_dataset(1500), 100),
    "resnet56": (resnet.make_model, lambda: resnet.make_dataset(256, size=32, channels=3), 8),
}


class Classifier(lightning.LightningModule):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        return nn.functional.cross_entropy(self.model(inputs), targets)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)


class Clock(lightning.Callback):
    """The training loop's time (from before snapshot 0 to the end), without the Trainer's
    set-up."""

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.began = time.perf_counter()

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.seconds = time.perf_counter() - self.began


def fit_ms(name: str, mode: str, steps: int, device: str) -> float:
    make_model, make_data, batch = MODELS[name]
    loader = DataLoader(make_data(), batch_size=batch, shuffle=True)
    with tempfile.TemporaryDirectory() as folder:
        callbacks = {
            "none": [],
            "memory": [RecorderCallback(submodule="model")],
            "folder": [RecorderCallback(Path(folder) / "rec", submodule="model")],
            "landscape": [RecorderCallback(Path(folder) / "rec", submodule="model",
                                           landscape_every=LANDSCAPE_EVERY,
                                           landscape_data=[next(iter(loader))],
                                           landscape_loss=nn.CrossEntropyLoss())],
        }  # fmt: skip
        clock = Clock()
        trainer = lightning.Trainer(
            max_steps=steps, accelerator="gpu" if device == "cuda" else "cpu", devices=1,
            logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, callbacks=[clock, *callbacks[mode]],
            default_root_dir=folder,  # where the landscapes go without a logger
        )  # fmt: skip
        trainer.fit(Classifier(make_model()), loader)
        return 1000 * clock.seconds / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"threads, torch {torch.__version__}, lightning {lightning.__version__}, {args.device}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print("| model | parameters | no callback (ms/step) | in memory | to a folder | overhead |")
    print("|---|---:|---:|---:|---:|---:|")
    every = {}
    for name in MODELS:
        size = sum(p.numel() for p in MODELS[name][0]().parameters())
        times = {mode: statistics.median(fit_ms(name, mode, args.steps, args.device)
                                         for _ in range(args.repeats))
                 for mode in ("none", "memory", "folder", "landscape")}  # fmt: skip
        every[name] = times
        worst = max(times["memory"], times["folder"]) / times["none"] - 1
        print(
            f"| {name} | {size:,} | {times['none']:.2f} | {times['memory']:.2f} | "
            f"{times['folder']:.2f} | {100 * worst:+.0f}% |"
        )
    drawn = args.steps // LANDSCAPE_EVERY
    print(f"\nlandscape_every={LANDSCAPE_EVERY} (11x11, one batch), {drawn} landscapes a fit, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| model | to a folder (ms/step) | with landscapes (ms/step) | per landscape (s) |")
    print("|---|---:|---:|---:|")
    for name, times in every.items():
        each = (times["landscape"] - times["folder"]) * args.steps / max(drawn, 1) / 1000
        print(f"| {name} | {times['folder']:.2f} | {times['landscape']:.2f} | {each:.2f} |")


if __name__ == "__main__":
    main()
