"""What the framework callbacks share: a ``Recorder`` started when training starts and fed once
per optimizer step, whatever calls the step (Lightning, the Hugging Face ``Trainer``).

A framework reports a loss per batch (or micro-batch, with gradient accumulation) but steps the
optimizer less often; the loss recorded with a step is the mean of those reported since the
previous step, so a snapshot pairs the weights after a step with the loss that made it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from gdscope.errors import GdscopeError, needs_extra
from gdscope.nets.recorder import RecordedPath, Recorder

__all__ = ["Capture", "missing", "unwrap_optimizer"]


def missing(module: str, extra: str) -> GdscopeError:
    """The error for a framework that is not installed: which extra installs it."""
    return needs_extra(f"{module} is not installed", extra)


def unwrap_optimizer(optimizer: Any) -> torch.optim.Optimizer | None:
    """The ``torch.optim`` optimizer inside a framework's wrapper (accelerate's
    ``AcceleratedOptimizer``, itself an ``Optimizer``, or Lightning's ``LightningOptimizer``),
    whose class name the recording keeps."""
    for _ in range(4):
        inner = getattr(optimizer, "optimizer", None) or getattr(optimizer, "_optimizer", None)
        if not isinstance(inner, torch.optim.Optimizer):
            break
        optimizer = inner
    return optimizer if isinstance(optimizer, torch.optim.Optimizer) else None


class Capture:
    """A ``Recorder`` over ``model`` (or its ``submodule``) with ``options`` passed to it as they
    are (``path``, ``every``, ``force``, and any keyword ``Recorder`` takes). ``log_sharpness``:
    the callback will hand each measurement to the trainer's loggers (``measured``), so the
    sharpness must be measured."""

    def __init__(
        self, submodule: str | None, options: dict[str, Any], *, log_sharpness: bool = False
    ) -> None:
        if "model" in options or "optimizer" in options:
            raise GdscopeError("the callback takes the model and optimizer from the trainer")
        if log_sharpness and options.get("sharpness_every") is None:
            raise GdscopeError("log_sharpness needs the sharpness measured: give sharpness_every "
                               "(with sharpness_data and sharpness_loss)")  # fmt: skip
        self.submodule, self.options = submodule, options
        self.recorder: Recorder | None = None
        self._losses: list[float] = []
        self._logged: int | None = None
        """The step of the last sharpness handed to a logger (``measured``)."""

    def start(self, model: nn.Module, optimizer: Any) -> None:
        """Take snapshot 0 (the starting weights); called when training starts."""
        if self.submodule is not None:
            try:
                model = model.get_submodule(self.submodule)
            except AttributeError:
                raise GdscopeError(f"the model has no submodule {self.submodule!r}") from None
        self._losses = []
        self.recorder = Recorder(model, optimizer=unwrap_optimizer(optimizer), **self.options)

    def loss(self, value: float | Tensor | None) -> None:
        """A loss the framework reported for a batch since the last step."""
        if value is not None:
            self._losses.append(float(value.detach()) if isinstance(value, Tensor) else value)

    def step(self, *, shares: bool = False) -> None:
        """The optimizer stepped: record (every ``every``-th step) with the mean loss (or with
        ``shares`` their sum: each was already divided by the step's total count)."""
        if self.recorder is None:
            return
        count = 1 if shares else len(self._losses)
        mean = math.fsum(self._losses) / count if self._losses else None
        self._losses = []
        self.recorder.step(mean)

    def validation(self, value: float | Tensor | None) -> None:
        """A validation loss the framework computed now (None: the metric was not there; before
        training starts, nothing to record it in): recorded at the current step."""
        if self.recorder is not None and value is not None:
            self.recorder.validation(float(value.detach()) if isinstance(value, Tensor) else value)

    def measured(self) -> tuple[int, dict[str, float]] | None:
        """The sharpness measured since the last call, for a trainer's logger: its step and
        ``{"gdscope/sharpness", "gdscope/threshold", "gdscope/lr"}`` (a value that is NaN, e.g.
        no threshold known, left out); None when nothing new was measured."""
        last = self.recorder.last_sharpness() if self.recorder is not None else None
        if last is None or last[0] == self._logged:
            return None
        step, value, lr, limit = last
        self._logged = step
        named = {"gdscope/sharpness": value, "gdscope/threshold": limit, "gdscope/lr": lr}
        return step, {k: float(v) for k, v in named.items() if math.isfinite(v)}

    def result(self) -> RecordedPath:
        """The recording (streamed to ``path`` as it was taken, if one was given)."""
        if self.recorder is None:
            raise GdscopeError("nothing was recorded: training has not started")
        return self.recorder.result()
