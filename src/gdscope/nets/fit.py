"""A ready training loop that records the path for you: model, data, loss, any optimizer."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gdscope.errors import GdscopeError
from gdscope.modules import left_as_it_was
from gdscope.nets.recorder import RecordedPath, Recorder

__all__ = ["FitResult", "fit"]


@dataclass(frozen=True, eq=False)
class FitResult:
    path: RecordedPath
    losses: np.ndarray
    """The training loss of every step (the mini-batch's)."""
    diverged_at: int | None
    stopped: bool = False
    """``should_stop`` ended the training before its last epoch."""


def _one_pass(loader: Iterable[Any]) -> list[Any]:
    """The loader's batches, read without moving its shuffling on: its generator's state and
    torch's global random state are as before."""
    generator = getattr(loader, "generator", None)
    if not isinstance(generator, torch.Generator):
        generator = None
    state = generator.get_state() if generator is not None else None
    with torch.random.fork_rng(devices=[]):
        batches = list(loader)
    if generator is not None and state is not None:
        generator.set_state(state)
    return batches


def fit(
    model: nn.Module,
    loader: Iterable[Any],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int = 1,
    every: int = 1,
    path: str | os.PathLike[str] | None = None,
    device: torch.device | str | None = None,
    force: bool = False,
    sharpness_every: int | None = None,
    sharpness_data: Any = None,
    sharpness_top: int = 1,
    sharpness_train: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> FitResult:
    """Train ``model`` in train mode for ``epochs`` passes over ``loader``, one optimizer step
    per batch, snapshotting every ``every`` steps (``Recorder``; streamed to ``path`` if given).
    Stops at the first non-finite loss (the run diverged). With ``sharpness_every`` it measures
    the sharpness of ``loss_fn`` over ``sharpness_data`` (default: all of ``loader``, read once
    before training with its generator and torch's random state put back, so training sees the
    batches it would have seen without the measurement) every that
    many steps (``Recorder``'s options of the same names). ``should_stop`` is asked before every
    step; when it says yes, training ends there (``FitResult.stopped``). ``loader`` yields
    ``(inputs, targets)`` batches (a ``DataLoader``, or ``[(X, Y)]`` for one full batch). When it
    returns, every module is in the mode (train or eval) it was in before: a notebook that goes
    on training keeps its dropout and BatchNorm as they were."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise GdscopeError(f"epochs must be a positive integer, got {epochs!r}")
    _check_loader(loader)
    with left_as_it_was(model):
        model.to(device).train()
        probe_data = sharpness_data
        if probe_data is None and sharpness_every is not None:
            probe_data = _one_pass(loader)
        recorder = Recorder(model, every=every, path=path, optimizer=optimizer, force=force,
                            sharpness_every=sharpness_every, sharpness_data=probe_data,
                            sharpness_loss=loss_fn, sharpness_top=sharpness_top,
                            sharpness_train=sharpness_train)  # fmt: skip
        losses: list[float] = []
        diverged = None
        stopped = False
        for _ in range(epochs):
            for batch in loader:
                if should_stop is not None and should_stop():
                    stopped = True
                    break
                inputs, targets = (t.to(device) for t in _pair(batch))
                optimizer.zero_grad()
                loss = loss_fn(model(inputs), targets)
                value = float(loss.detach())
                if not math.isfinite(value):
                    diverged = len(losses)
                    break
                loss.backward()
                optimizer.step()
                losses.append(value)
                recorder.step(value)
            if diverged is not None or stopped:
                break
        return FitResult(recorder.result(), np.array(losses), diverged, stopped)


WHAT_FIT_TAKES = "an iterable of (inputs, targets) batches (a DataLoader, or [(X, Y)])"


def _check_loader(loader: object) -> None:
    """Refuse, before any work, data that is not an iterable of batches (one bare pair)."""
    if isinstance(loader, (tuple, list)) and len(loader) == 2 and \
            all(isinstance(t, Tensor) for t in loader):  # fmt: skip
        raise GdscopeError(f"fit takes {WHAT_FIT_TAKES}, got one (X, Y) pair; pass [(X, Y)]")
    if not isinstance(loader, Iterable) or isinstance(loader, (Tensor, str, dict)):
        raise GdscopeError(f"fit takes {WHAT_FIT_TAKES}, got {type(loader).__name__}")


def _pair(batch: object) -> tuple[Tensor, Tensor]:
    """A batch's ``(inputs, targets)``, or refused in one line."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2 and \
            all(isinstance(t, Tensor) for t in batch):  # fmt: skip
        return batch[0], batch[1]
    if isinstance(batch, dict):
        what = f"a dict batch (keys {', '.join(map(str, batch))})"
    elif isinstance(batch, (tuple, list)):
        kinds = ", ".join(type(t).__name__ for t in batch)
        what = f"a batch of {len(batch)} items ({kinds})"
    else:
        what = f"a batch of type {type(batch).__name__}"
    raise GdscopeError(f"fit takes {WHAT_FIT_TAKES}, got {what}")
