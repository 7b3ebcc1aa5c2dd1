"""The reference engine: a real ``nn.Linear(1, 1)`` trained by a real ``torch.optim`` optimizer."""

from __future__ import annotations

import math

import numpy as np
import torch

from .data import Dataset
from .errors import GdscopeError, check_finite
from .losses import LossSpec
from .optimizers import OptimizerSpec, SchedulerSpec
from .sgd import SGDConfig
from .trajectory import Trajectory

__all__ = ["ARTICLE_START", "MAX_EPOCHS", "check_epochs", "check_start", "train"]

ARTICLE_START = (6.0, -3.0)
MAX_EPOCHS = 100_000


def check_epochs(epochs: int) -> int:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= MAX_EPOCHS:
        raise GdscopeError(f"epochs must be an integer in [1, {MAX_EPOCHS}], got {epochs!r}")
    return epochs


def check_start(start: tuple[float, float]) -> tuple[float, float]:
    if len(start) != 2:
        raise GdscopeError(f"start must be (weight, bias), got {start!r}")
    return check_finite("start weight", start[0]), check_finite("start bias", start[1])


def train(
    data: Dataset,
    *,
    loss: LossSpec | None = None,
    sgd: SGDConfig | None = None,
    optimizer: OptimizerSpec | None = None,
    scheduler: SchedulerSpec | None = None,
    epochs: int = 100,
    start: tuple[float, float] = ARTICLE_START,
    dtype: torch.dtype = torch.float32,
) -> Trajectory:
    """Full-batch training exactly as the article's loop does it, recording every step.

    Each epoch: zero the gradients, forward all points, compute the mean loss, backward, step
    (LBFGS gets a closure and may evaluate several times within its step), then step the
    scheduler. Give either ``sgd`` (default: the article's SGD, lr 0.1) or any ``optimizer``.
    Training stops at the first non-finite parameter or loss (the run *diverged*).
    """
    if sgd is not None and optimizer is not None:
        raise GdscopeError("give either sgd or optimizer, not both")
    spec = optimizer or (sgd or SGDConfig()).spec()
    loss = loss or LossSpec()
    check_epochs(epochs)
    start = check_start(start)

    model = torch.nn.Linear(1, 1, dtype=dtype)
    with torch.no_grad():
        model.weight.fill_(start[0])
        model.bias.fill_(start[1])
    loss_fn = loss.module()
    opt = spec.build(model.parameters())
    sched = scheduler.build(opt) if scheduler is not None else None
    # The article marks its inputs as requiring grad; it changes no value but we keep it.
    inputs = torch.tensor(data.x, dtype=dtype).requires_grad_().reshape(-1, 1)
    labels = torch.tensor(data.y, dtype=dtype).reshape(-1, 1)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = loss_fn(model(inputs), labels)
        value.backward()
        return value

    size = epochs + 1
    weights, biases, losses, lrs = (np.full(size, np.nan) for _ in range(4))
    diverged_at: int | None = None
    for epoch in range(size):
        w, b = model.weight.item(), model.bias.item()
        opt.zero_grad()
        value = loss_fn(model(inputs), labels)
        current = value.item()
        if not (math.isfinite(w) and math.isfinite(b) and math.isfinite(current)):
            diverged_at = epoch
            break
        weights[epoch], biases[epoch], losses[epoch] = w, b, current
        if epoch == epochs:
            break  # the last point only needs its loss
        lrs[epoch] = opt.param_groups[0]["lr"]
        if spec.needs_closure:
            opt.step(closure)
        else:
            value.backward()
            opt.step()
        if sched is not None:
            if scheduler is not None and scheduler.needs_metric:
                sched.step(current)
            else:
                sched.step()
    return Trajectory(weights, biases, losses, diverged_at, loss, spec, start, lrs, scheduler)
