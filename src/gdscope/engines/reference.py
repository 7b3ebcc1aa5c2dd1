"""The reference engine: a real ``nn.Linear(1, 1)`` trained by a real ``torch.optim`` optimizer."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gdscope.engines.trajectory import Trajectory
from gdscope.errors import GdscopeError, check_finite, first_line
from gdscope.optim.sgdconfig import SGDConfig
from gdscope.optim.specs import OptimizerSpec, SchedulerSpec
from gdscope.problem.data import Dataset, require
from gdscope.problem.divergence import Divergence
from gdscope.problem.grid import ARTICLE_EPOCHS, ARTICLE_START, Point
from gdscope.problem.losses import LossSpec
from gdscope.problem.objective import Objective

__all__ = [
    "ARTICLE_START",
    "MAX_EPOCHS",
    "check_batch",
    "check_epochs",
    "check_start",
    "steps_per_epoch",
    "train",
]

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


Batch = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class _Model:
    """What the loop trains: the real parameters, the objective on a mini-batch (None: on all
    the data), how to read the point, and the mini-batches of one epoch (None: full batch)."""

    params: list[torch.nn.Parameter]
    objective: Callable[[Batch | None], Tensor]
    read: Callable[[], Point]
    batches: Iterable[Batch] | None = None
    per_epoch: int = 1


def _point_model(objective: Objective, start: Point, dtype: torch.dtype) -> _Model:
    """A data-free objective on a real 2-element ``nn.Parameter``."""
    point = torch.nn.Parameter(torch.tensor(start, dtype=dtype))
    return _Model(
        [point],
        lambda _: objective.at(None, point),
        lambda: (float(point[0].detach()), float(point[1].detach())),
    )


def _linear_model(
    loss: LossSpec,
    data: Dataset,
    start: Point,
    dtype: torch.dtype,
    batch_size: int | None,
    shuffle_seed: int,
) -> _Model:
    """A real ``nn.Linear(1, 1)`` under the real ``torch.nn`` loss; with ``batch_size``, a real
    ``DataLoader(shuffle=True)`` seeded with ``shuffle_seed``."""
    model = torch.nn.Linear(1, 1, dtype=dtype)
    with torch.no_grad():
        model.weight.fill_(start[0])
        model.bias.fill_(start[1])
    loss_fn = loss.module()
    # The article marks its inputs as requiring grad; it changes no value but we keep it.
    inputs = torch.tensor(data.x, dtype=dtype).requires_grad_().reshape(-1, 1)
    labels = torch.tensor(data.y, dtype=dtype).reshape(-1, 1)

    def objective(batch: Batch | None) -> Tensor:
        xs, ys = batch if batch is not None else (inputs, labels)
        return loss_fn(model(xs), ys)

    batches = None
    if batch_size is not None:
        from torch.utils.data import DataLoader, TensorDataset

        generator = torch.Generator().manual_seed(shuffle_seed)
        batches = DataLoader(TensorDataset(inputs.detach(), labels), batch_size=batch_size,
                             shuffle=True, generator=generator)  # fmt: skip
    return _Model(list(model.parameters()), objective,  # [weight, bias]
                  lambda: (model.weight.item(), model.bias.item()), batches,
                  1 if batches is None else len(batches))  # fmt: skip


class _Recording:
    """The run's per-point arrays, filled as the loop goes (``step`` is the current point);
    ``test`` says when a point has diverged, ``labels`` name its coordinates in the reason."""

    def __init__(self, size: int, test: Divergence, labels: tuple[str, str]) -> None:
        self.weights, self.biases, self.losses, self.lrs, self.batch_losses = (
            np.full(size, np.nan) for _ in range(5)
        )
        self.buffers = np.full((size, 2), np.nan)
        self.diverged_at: int | None = None
        self.reason: str | None = None
        self.step = 0
        self.test, self.labels = test, labels

    def point(self, model: _Model, value: Tensor) -> bool:
        """Store point ``step``; False when it has diverged (``problem.divergence``)."""
        w, b = model.read()
        current = value.item()
        if not self.test.point_ok(w, b, current):
            self.diverged_at = self.step
            self.reason = self.test.reason(self.labels, w, b, current)
            return False
        self.weights[self.step], self.biases[self.step], self.losses[self.step] = w, b, current
        return True


def _take(
    opt: torch.optim.Optimizer,
    spec: OptimizerSpec,
    model: _Model,
    run: _Recording,
    batch: Batch | None,
    value: Tensor | None = None,
) -> Tensor:
    """One optimizer step on ``batch`` (None: all the data); returns the loss it saw.
    ``value`` is that loss when the caller already computed it (the article's full-batch
    loop computes it once, prints it, then steps)."""
    run.lrs[run.step] = opt.param_groups[0]["lr"]
    try:
        if spec.needs_closure:
            evaluated: list[Tensor] = []

            def closure() -> float:
                evaluated.append(_backward(opt, lambda: model.objective(batch)))
                return float(evaluated[-1].detach())

            opt.step(closure)
            seen = evaluated[0]  # LBFGS's step returns its first evaluation, too
        else:
            if value is None:
                opt.zero_grad()
                value = model.objective(batch)
            value.backward()
            opt.step()
            seen = value
    except RuntimeError as error:
        # torch refuses some settings only when it steps, e.g. an lr beyond float32's range
        first = first_line(error)
        raise GdscopeError(
            f"torch.optim.{type(opt).__name__} failed at step {run.step + 1}: {first}"
        ) from None
    run.buffers[run.step + 1] = _momentum(opt, model.params)
    return seen


def _full_batch_epoch(opt: torch.optim.Optimizer, spec: OptimizerSpec, model: _Model,
                      run: _Recording) -> float | None:  # fmt: skip
    """The article's loop body: zero, forward, record, backward, step. Returns the epoch's loss,
    None when the run diverged."""
    opt.zero_grad()
    value = model.objective(None)
    if not run.point(model, value):
        return None
    run.batch_losses[run.step] = current = value.item()
    _take(opt, spec, model, run, None, value)
    run.step += 1
    return current


def _minibatch_epoch(
    opt: torch.optim.Optimizer, spec: OptimizerSpec, model: _Model, batches: Iterable[Batch],
    run: _Recording,
) -> float | None:  # fmt: skip
    """One step per mini-batch; returns the mean loss the steps saw (as a training loop reports
    it), None when the run diverged."""
    seen = []
    for batch in batches:
        with torch.no_grad():
            if not run.point(model, model.objective(None)):
                return None
        seen.append(float(_take(opt, spec, model, run, batch).detach()))
        run.batch_losses[run.step] = seen[-1]
        run.step += 1
    return float(np.mean(seen))


def _start_of(objective: Objective, start: Point | None) -> Point:
    return check_start(start if start is not None else objective.start)


def _checked_model(
    objective: Objective,
    data: Dataset | None,
    start: Point,
    dtype: torch.dtype,
    batch_size: int | None,
    shuffle_seed: int,
) -> _Model:
    """The model for ``objective``, after checking it has the data (and mini-batches) it needs."""
    loss = objective.regression
    if loss is None:
        check_batch(batch_size, shuffle_seed, None)
        return _point_model(objective, start, dtype)
    found = require(data, loss.title)
    check_batch(batch_size, shuffle_seed, len(found))
    return _linear_model(loss, found, start, dtype, batch_size, shuffle_seed)


def train(
    data: Dataset | None,
    *,
    loss: Objective | None = None,
    sgd: SGDConfig | None = None,
    optimizer: OptimizerSpec | None = None,
    scheduler: SchedulerSpec | None = None,
    epochs: int = ARTICLE_EPOCHS,
    start: Point | None = None,
    dtype: torch.dtype = torch.float32,
    batch_size: int | None = None,
    shuffle_seed: int = 0,
) -> Trajectory:
    """Training exactly as the article's loop does it, recording every step.

    Each step: zero the gradients, forward, compute the mean loss, backward, step (LBFGS gets a
    closure and may evaluate several times within its step); the scheduler steps once per
    epoch. Give either ``sgd`` (default: the article's SGD, lr 0.1) or any ``optimizer``.

    The objective is a regression ``LossSpec`` on ``data`` through a real ``nn.Linear(1, 1)``,
    or a data-free objective such as a ``TestFunction`` (``data`` unused) on a real 2-element
    ``nn.Parameter``. With ``batch_size``, each epoch is one pass of a real
    ``DataLoader(shuffle=True)`` whose generator is seeded with ``shuffle_seed``: one step per
    mini-batch. ``losses`` are always the objective on all the data (what the map shows);
    ``batch_losses`` what each step saw. Training stops at the first non-finite parameter or
    loss, or a parameter beyond the objective's escape bound: the run *diverged* there (see
    ``problem.divergence``; ``reason`` says which value).
    """
    if sgd is not None and optimizer is not None:
        raise GdscopeError("give either sgd or optimizer, not both")
    spec = optimizer or (sgd or SGDConfig()).spec()
    objective = loss or LossSpec()
    check_epochs(epochs)
    point = _start_of(objective, start)
    model = _checked_model(objective, data, point, dtype, batch_size, shuffle_seed)
    opt = spec.build(model.params)
    sched = scheduler.build(opt) if scheduler is not None else None
    run = _Recording(epochs * model.per_epoch + 1, Divergence.of(objective), objective.labels)
    for _ in range(epochs):
        if model.batches is None:
            current = _full_batch_epoch(opt, spec, model, run)
        else:
            current = _minibatch_epoch(opt, spec, model, model.batches, run)
        if current is None:
            break
        if sched is not None and scheduler is not None and scheduler.needs_metric:
            sched.step(current)
        elif sched is not None:
            sched.step()
    else:
        with torch.no_grad():
            run.point(model, model.objective(None))  # the last point only needs its loss
    return Trajectory(
        weights=run.weights, biases=run.biases, losses=run.losses, diverged_at=run.diverged_at,
        reason=run.reason, loss=objective, optimizer=spec, start=point, lrs=run.lrs,
        scheduler=scheduler,
        steps_per_epoch=model.per_epoch, batch_size=batch_size,
        shuffle_seed=shuffle_seed if batch_size is not None else None,
        batch_losses=run.batch_losses, buffers=run.buffers,
    )  # fmt: skip


def _momentum(opt: torch.optim.Optimizer, params: Sequence[Tensor]) -> tuple[float, float]:
    """The optimizer's momentum-like buffer (SGD's momentum_buffer, Adam's exp_avg, …)."""
    values: list[float] = []
    for p in params:
        state = opt.state.get(p, {})
        buf = next((state[k] for k in _BUFFERS if state.get(k) is not None), None)
        if buf is None:
            return (math.nan, math.nan)
        values += buf.detach().reshape(-1).tolist()
    return (float(values[0]), float(values[1]))


# State entries that carry a running average of past gradients, by optimizer.
_BUFFERS = ("momentum_buffer", "exp_avg", "momentum")


def _backward(opt: torch.optim.Optimizer, objective: Callable[[], Tensor]) -> Tensor:
    opt.zero_grad()
    value = objective()
    value.backward()
    return value
