"""The reference engine: a real ``nn.Linear(1, 1)`` trained by a real ``torch.optim`` optimizer."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from gdscope.engines.trajectory import Trajectory
from gdscope.errors import GdscopeError, check_finite
from gdscope.optim.sgdconfig import SGDConfig
from gdscope.optim.specs import OptimizerSpec, SchedulerSpec
from gdscope.problem.data import Dataset, require
from gdscope.problem.losses import LossSpec
from gdscope.problem.testfunctions import TestFunction

__all__ = [
    "ARTICLE_START",
    "MAX_EPOCHS",
    "check_batch",
    "check_epochs",
    "check_start",
    "steps_per_epoch",
    "train",
]

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


def check_batch(batch_size: int | None, shuffle_seed: int, n: int | None) -> None:
    if batch_size is None:
        return
    if n is None:
        raise GdscopeError("mini-batches need data; a test function has none")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not batch_size >= 1:
        raise GdscopeError(f"batch size must be a positive integer, got {batch_size!r}")
    if batch_size > n:
        raise GdscopeError(f"batch size {batch_size} is larger than the data ({n} points)")
    if isinstance(shuffle_seed, bool) or not isinstance(shuffle_seed, int):
        raise GdscopeError(f"shuffle seed must be an integer, got {shuffle_seed!r}")
    if not 0 <= shuffle_seed < 2**63:
        raise GdscopeError(f"shuffle seed must be in [0, 2**63), got {shuffle_seed}")


def steps_per_epoch(n: int, batch_size: int | None) -> int:
    return 1 if batch_size is None else -(-n // batch_size)


def _momentum(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> tuple[float, float]:
    """The optimizer's momentum-like buffer (SGD's momentum_buffer, Adam's exp_avg, …)."""
    values = []
    for p in params:
        state = opt.state.get(p, {})
        buf = next((state[k] for k in _BUFFERS if state.get(k) is not None), None)
        if buf is None:
            return (math.nan, math.nan)
        values += buf.detach().reshape(-1).tolist()
    return (float(values[0]), float(values[1]))


# State entries that carry a running average of past gradients, by optimizer.
_BUFFERS = ("momentum_buffer", "exp_avg", "momentum")


def train(
    data: Dataset | None,
    *,
    loss: LossSpec | TestFunction | None = None,
    sgd: SGDConfig | None = None,
    optimizer: OptimizerSpec | None = None,
    scheduler: SchedulerSpec | None = None,
    epochs: int = 100,
    start: tuple[float, float] | None = None,
    dtype: torch.dtype = torch.float32,
    batch_size: int | None = None,
    shuffle_seed: int = 0,
) -> Trajectory:
    """Training exactly as the article's loop does it, recording every step.

    Each step: zero the gradients, forward, compute the mean loss, backward, step (LBFGS gets a
    closure and may evaluate several times within its step); the scheduler steps once per
    epoch. Give either ``sgd`` (default: the article's SGD, lr 0.1) or any ``optimizer``.

    The objective is a regression ``LossSpec`` on ``data`` through a real ``nn.Linear(1, 1)``,
    or a ``TestFunction`` (``data`` unused) on a real 2-element ``nn.Parameter``. With
    ``batch_size``, each epoch is one pass of a real ``DataLoader(shuffle=True)`` whose
    generator is seeded with ``shuffle_seed``: one step per mini-batch. ``losses`` are always
    the objective on all the data (what the map shows); ``batch_losses`` what each step saw.
    Training stops at the first non-finite parameter or loss (the run *diverged*).
    """
    if sgd is not None and optimizer is not None:
        raise GdscopeError("give either sgd or optimizer, not both")
    spec = optimizer or (sgd or SGDConfig()).spec()
    loss = loss or LossSpec()
    check_epochs(epochs)
    if start is None:
        start = loss.start if isinstance(loss, TestFunction) else ARTICLE_START
    start = check_start(start)
    if isinstance(loss, LossSpec):
        require(data, loss.title)
    check_batch(batch_size, shuffle_seed, None if data is None or isinstance(loss, TestFunction)
                else len(data))  # fmt: skip

    if isinstance(loss, TestFunction):
        point = torch.nn.Parameter(torch.tensor(start, dtype=dtype))
        params = [point]

        def objective(_: object = None) -> torch.Tensor:
            return loss(point)

        def read() -> tuple[float, float]:
            return float(point[0].detach()), float(point[1].detach())

        batches: Any = None
        full = objective
    else:
        model = torch.nn.Linear(1, 1, dtype=dtype)
        with torch.no_grad():
            model.weight.fill_(start[0])
            model.bias.fill_(start[1])
        params = [model.weight, model.bias]
        loss_fn = loss.module()
        assert data is not None
        # The article marks its inputs as requiring grad; it changes no value but we keep it.
        inputs = torch.tensor(data.x, dtype=dtype).requires_grad_().reshape(-1, 1)
        labels = torch.tensor(data.y, dtype=dtype).reshape(-1, 1)

        def objective(batch: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
            xs, ys = batch if batch is not None else (inputs, labels)
            return loss_fn(model(xs), ys)

        def read() -> tuple[float, float]:
            return model.weight.item(), model.bias.item()

        def full(_: object = None) -> torch.Tensor:
            return objective()

        batches = None
        if batch_size is not None:
            from torch.utils.data import DataLoader, TensorDataset

            loader_data = TensorDataset(inputs.detach(), labels)
            generator = torch.Generator().manual_seed(shuffle_seed)
            batches = DataLoader(loader_data, batch_size=batch_size, shuffle=True,
                                 generator=generator)  # fmt: skip

    opt = spec.build(params)
    sched = scheduler.build(opt) if scheduler is not None else None
    per_epoch = 1 if batches is None else len(batches)
    size = epochs * per_epoch + 1
    weights, biases, losses, lrs, batch_losses = (np.full(size, np.nan) for _ in range(5))
    buffers = np.full((size, 2), np.nan)
    diverged_at: int | None = None
    step = 0

    def record(value: torch.Tensor) -> bool:
        """Store point ``step``; False when it is not finite (the run diverged there)."""
        nonlocal diverged_at
        w, b = read()
        current = value.item()
        if not (math.isfinite(w) and math.isfinite(b) and math.isfinite(current)):
            diverged_at = step
            return False
        weights[step], biases[step], losses[step] = w, b, current
        return True

    def take(batch: Any, value: torch.Tensor | None = None) -> torch.Tensor:
        """One optimizer step on ``batch`` (None: all the data); returns the loss it saw.
        ``value`` is that loss when the caller already computed it (the article's full-batch
        loop computes it once, prints it, then steps)."""
        lrs[step] = opt.param_groups[0]["lr"]
        try:
            if spec.needs_closure:
                seen = opt.step(lambda: _backward(opt, lambda: objective(batch)))
            else:
                if value is None:
                    opt.zero_grad()
                    value = objective(batch)
                value.backward()
                opt.step()
                seen = value
        except RuntimeError as error:
            # torch refuses some settings only when it steps, e.g. an lr beyond float32's range
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise GdscopeError(
                f"torch.optim.{type(opt).__name__} failed at step {step + 1}: {first}"
            ) from None
        buffers[step + 1] = _momentum(opt, params)
        return seen

    for _ in range(epochs):
        if batches is None:
            opt.zero_grad()
            value = full()
            if not record(value):
                break
            batch_losses[step] = current = value.item()
            take(None, value)
            step += 1
        else:
            seen = []
            for batch in batches:
                with torch.no_grad():
                    if not record(full()):
                        break
                seen.append(float(take(batch).detach()))
                batch_losses[step] = seen[-1]
                step += 1
            if diverged_at is not None:
                break
            current = float(np.mean(seen))  # the epoch's loss, as a training loop reports it
        if sched is not None:
            if scheduler is not None and scheduler.needs_metric:
                sched.step(current)
            else:
                sched.step()
    else:
        with torch.no_grad():
            record(full())  # the last point only needs its loss
    return Trajectory(
        weights, biases, losses, diverged_at, loss, spec, start, lrs, scheduler,
        steps_per_epoch=per_epoch, batch_size=batch_size,
        shuffle_seed=shuffle_seed if batch_size is not None else None,
        batch_losses=batch_losses, buffers=buffers,
    )  # fmt: skip


def _backward(opt: torch.optim.Optimizer, objective: Any) -> torch.Tensor:
    opt.zero_grad()
    value = objective()
    value.backward()
    return value
