"""What the framework callbacks share: a ``Recorder`` started when training starts and fed once
per optimizer step, whatever calls the step (Lightning, the Hugging Face ``Trainer``).

A framework reports a loss per batch (or micro-batch, with gradient accumulation) but steps the
optimizer less often; the loss recorded with a step is the mean of those reported since the
previous step, so a snapshot pairs the weights after a step with the loss that made it.

With ``landscape_every=N`` a small loss landscape around the current weights is drawn every
``N`` optimizer steps (``Capture.landscape``), for the callback to hand to the trainer's
loggers; a logger that takes no images gets it as a PNG file (``save_landscape``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from gdscope.errors import GdscopeError, needs_extra
from gdscope.modules import left_as_it_was
from gdscope.nets.recorder import RecordedPath, Recorder

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gdscope.nets.curvature import LossFn

__all__ = [
    "LANDSCAPE_TAG",
    "Capture",
    "Landscapes",
    "landscape_file",
    "missing",
    "save_landscape",
    "unwrap_optimizer",
]

LANDSCAPE_TAG = "gdscope/landscape"
"""The name a landscape snapshot is logged under (TensorBoard's tag, W&B's key)."""
PATH_SNAPSHOTS = 50
"""The most snapshots of the path so far a landscape snapshot uses (spread evenly, the first
and the last kept): its PCA plane and its honesty check cost this many, not the whole run's."""


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


@dataclass(frozen=True)
class Landscapes:
    """Landscape snapshots every ``every`` optimizer steps: ``points × points`` losses of
    ``loss`` over ``data`` (batches, as ``sharpness_data`` takes them), in eval mode."""

    every: int
    points: int
    data: Any
    loss: LossFn

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Landscapes | None:
        """Take the ``landscape_*`` keywords out of a callback's ``options`` (the rest go to
        ``Recorder``), checked; None without ``landscape_every``. Without ``landscape_data`` or
        ``landscape_loss`` it uses the sharpness's (``sharpness_data``, ``sharpness_loss``)."""
        every = options.pop("landscape_every", None)
        points = options.pop("landscape_points", 11)
        data = options.pop("landscape_data", None)
        loss = options.pop("landscape_loss", None)
        if every is None:
            return None
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise GdscopeError(f"landscape_every must be a positive integer, got {every!r}")
        from gdscope.nets.survey import PlaneOptions

        try:  # the count checked as for every other landscape
            PlaneOptions(points=points)
        except GdscopeError as error:
            raise GdscopeError(
                f"landscape_points: {error}", settings=["landscape_points"]
            ) from None
        data = data if data is not None else options.get("sharpness_data")
        loss = loss if loss is not None else options.get("sharpness_loss")
        absent = [n for n, v in (("landscape_data", data), ("landscape_loss", loss)) if v is None]
        if absent or loss is None:
            raise GdscopeError(f"landscape_every needs {' and '.join(absent)} (a few fixed "
                               "batches and the loss; or the sharpness_data and sharpness_loss "
                               "it then uses)", settings=absent)  # fmt: skip
        return cls(every, int(points), data, loss)


class Capture:
    """A ``Recorder`` over ``model`` (or its ``submodule``) with ``options`` passed to it as they
    are (``path``, ``every``, ``force``, and any keyword ``Recorder`` takes) but the
    ``landscape_*`` ones (``Landscapes``). ``log_sharpness``: the callback will hand each
    measurement to the trainer's loggers (``measured``), so the sharpness must be measured."""

    def __init__(
        self, submodule: str | None, options: dict[str, Any], *, log_sharpness: bool = False
    ) -> None:
        if "model" in options or "optimizer" in options:
            raise GdscopeError("the callback takes the model and optimizer from the trainer")
        if log_sharpness and options.get("sharpness_every") is None:
            raise GdscopeError("log_sharpness needs the sharpness measured: give sharpness_every "
                               "(with sharpness_data and sharpness_loss)")  # fmt: skip
        options = dict(options)
        self.landscapes = Landscapes.from_options(options)
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

    def landscape(self) -> tuple[int, Figure] | None:
        """The landscape snapshot due now (``landscape_every``), with its step; None when none
        is due. Drawn around the model's current weights on the PCA plane of the path recorded
        so far (at most ``PATH_SNAPSHOTS`` of its snapshots), with the path on it; while the
        path has fewer than 3 snapshots, or they span less than a plane, on two random
        filter-normalized directions (seeds 0 and 1). The model's train/eval modes, parameters,
        gradients and the random number generators are left as they were, so the training goes
        on exactly as it would have without it."""
        options, recorder = self.landscapes, self.recorder
        if options is None or recorder is None:
            return None
        step = recorder.step_count
        if step == 0 or step % options.every:
            return None
        from gdscope.jobs.landscape import draw_landscape
        from gdscope.nets.survey import model_landscape

        model = recorder.model
        path = _thinned(recorder.result(), PATH_SNAPSHOTS)
        device = next(model.parameters()).device
        cuda = [device] if device.type == "cuda" else []
        directions = "pca" if _has_plane(path) else "random"
        with torch.random.fork_rng(devices=cuda), _grads_kept(model), left_as_it_was(model):
            result = model_landscape(model, options.data, options.loss, path=path,
                                     directions=directions, points=options.points,
                                     device=device)  # fmt: skip
        plane = f"PCA plane of {len(path)} snapshots" if directions == "pca" else "random plane"
        return step, draw_landscape(result, title=f"loss at step {step} ({plane})")

    def result(self) -> RecordedPath:
        """The recording (streamed to ``path`` as it was taken, if one was given)."""
        if self.recorder is None:
            raise GdscopeError("nothing was recorded: training has not started")
        return self.recorder.result()


def _thinned(path: RecordedPath, most: int) -> RecordedPath:
    """At most ``most`` of ``path``'s snapshots, spread evenly, its first and last kept."""
    if len(path) <= most:
        return path
    keep = np.unique(np.linspace(0, len(path) - 1, most).round().astype(np.int64))
    return replace(path, snapshots=np.asarray(path.snapshots[keep]), steps=path.steps[keep],
                   losses=path.losses[keep])  # fmt: skip


def _has_plane(path: RecordedPath) -> bool:
    """Whether ``path`` has a PCA plane: 3 snapshots or more, finite, spanning two dimensions."""
    from gdscope.nets.directions import pca_plane

    if len(path) < 3:
        return False
    try:
        pca_plane(path)
    except GdscopeError:
        return False
    return True


@contextmanager
def _grads_kept(model: nn.Module) -> Iterator[None]:
    """Each parameter's ``.grad`` put back afterwards (the landscape evaluates without
    gradients; this keeps the promise whatever it does)."""
    grads = [(param, param.grad) for param in model.parameters()]
    try:
        yield
    finally:
        for param, grad in grads:
            param.grad = grad


def landscape_file(folder: str | Path, step: int) -> Path:
    """Where a landscape snapshot is written as a PNG: named by its step."""
    return Path(folder) / f"gdscope-landscape-step{step:07d}.png"


def save_landscape(figure: Figure, folder: str | Path, step: int) -> Path | None:
    """``figure`` written atomically to ``landscape_file(folder, step)``; a file already there
    is kept, with a warning (a diagnostic image must not stop the training), and None
    returned."""
    from gdscope.files import save_figure

    target = landscape_file(folder, step)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        return save_figure(figure, target)
    except GdscopeError as error:
        warnings.warn(f"landscape snapshot not saved: {error}", UserWarning, stacklevel=2)
        return None
