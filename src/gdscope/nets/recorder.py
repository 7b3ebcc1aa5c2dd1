"""Recording a real network's path: parameter snapshots taken inside the user's training loop.

    rec = gdscope.Recorder(model)            # snapshot 0: the starting weights
    for x, y in loader:
        ...; optimizer.step()
        rec.step(loss.item())                 # every ``every``-th call takes a snapshot

Snapshots are the model's trainable parameters flattened in ``named_parameters()`` order (as
float32 on the CPU). In memory they cost ``snapshots × parameters × 4`` bytes; with ``path``
each one is appended to ``path/snapshots.f32`` as it is taken, and its step and loss to
``path/steps.bin``, so a snapshot costs the same at the millionth step as at the first and memory
does not grow with the run. ``validation(loss)`` appends a validation loss the same way, to
``path/validation.bin`` (rows like ``steps.bin``'s: the step it was measured at and the loss).
``path/index.json`` (the layout, the optimizer, the sharpness) is written at the start and
rewritten atomically only when the sharpness is measured. A recording whose writer died is read
up to its last whole snapshot (and validation row); recordings made before ``steps.bin`` keep
their steps and losses in ``index.json``, and ``open_path`` reads both.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from gdscope.errors import GdscopeError
from gdscope.files import json_ready, write_text
from gdscope.modules import ParamLayout

if TYPE_CHECKING:
    from gdscope.nets.curvature import LossFn
    from gdscope.nets.sharpness import SharpnessProbe, SharpnessTrace

__all__ = [
    "INDEX_FILE",
    "SNAPSHOTS_FILE",
    "STEPS_FILE",
    "STEP_ROW",
    "VALIDATION_FILE",
    "ParamLayout",
    "RecordedPath",
    "Recorder",
    "open_path",
]

STEP_ROW = np.dtype([("step", "<i8"), ("loss", "<f8")])
"""A row of ``steps.bin``: the optimizer step of a snapshot and its loss (NaN if none); and of
``validation.bin``: the optimizer step a validation loss was measured at, and that loss."""
INDEX_FILE, SNAPSHOTS_FILE = "index.json", "snapshots.f32"
STEPS_FILE, VALIDATION_FILE = "steps.bin", "validation.bin"
"""The files of a recording's folder: ``STEP_ROW`` rows, appended as they come."""


@dataclass(frozen=True, eq=False)
class RecordedPath:
    """A finished recording: ``snapshots`` ``(T, N)`` float32 (a read-only memory map when it
    was streamed to disk), the optimizer step of each, and the loss passed to ``step`` (NaN if
    none)."""

    layout: ParamLayout
    snapshots: np.ndarray
    steps: np.ndarray
    losses: np.ndarray
    optimizer: str | None = None
    sharpness: SharpnessTrace | None = None
    """The sharpness measured along the run (``Recorder(sharpness_every=...)``), or None."""
    validation_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    validation_losses: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    """The validation losses given to ``Recorder.validation`` and the steps they were measured
    at, in the order given (empty when none)."""

    def __len__(self) -> int:
        return len(self.steps)

    def vector(self, i: int) -> Tensor:
        return torch.from_numpy(np.array(self.snapshots[i], dtype=np.float32))

    def state(self, i: int) -> dict[str, Tensor]:
        """Snapshot ``i`` as ``{name: tensor}`` (load with ``model.load_state_dict(...,
        strict=False)``)."""
        return {k: v.clone() for k, v in self.layout.unflatten(self.vector(i)).items()}


class Recorder:
    """Takes parameter snapshots of ``model`` (see the module docstring).

    With ``sharpness_every=N`` it also measures the sharpness (the top ``sharpness_top``
    eigenvalues of ``sharpness_loss`` over ``sharpness_data``, in eval mode, or in train mode
    with ``sharpness_train`` (BatchNorm on each batch's statistics, dropout's mask fixed); Adam's
    preconditioned one) at step 0 and every ``N`` steps, with the optimizer's learning rate and
    stability threshold then (``nets.sharpness``): ``result().sharpness``. It needs the
    ``optimizer``. Each measurement costs tens of Hessian-vector products on that data."""

    def __init__(
        self,
        model: nn.Module,
        *,
        every: int = 1,
        path: str | os.PathLike[str] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        force: bool = False,
        sharpness_every: int | None = None,
        sharpness_data: Any = None,
        sharpness_loss: LossFn | None = None,
        sharpness_top: int = 1,
        sharpness_train: bool = False,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise GdscopeError(f"every must be a positive integer, got {every!r}")
        self.model, self.every = model, every
        self.layout = ParamLayout.of(model)
        self.optimizer = type(optimizer).__name__ if optimizer is not None else None
        self._optimizer = optimizer
        self._probe = _probe(sharpness_every, sharpness_data, sharpness_loss, sharpness_top,
                             optimizer, train=sharpness_train)  # fmt: skip
        self.sharpness_every = sharpness_every
        self._memory: list[np.ndarray] = []
        self._steps: list[int] = []
        self._losses: list[float] = []
        self._validation: list[tuple[int, float]] = []
        self._calls = 0
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            _start_folder(self.path, force=force)
            self._write_index()
        self._take(float("nan"))
        self._measure()

    def _measure(self) -> None:
        """The sharpness now, if it is due (``sharpness_every``)."""
        every = self.sharpness_every
        if self._probe is not None and every is not None and self._calls % every == 0:
            self._probe.measure(self.model, self._optimizer, self._calls)
            if self.path is not None:
                self._write_index()

    def step(self, loss: float | Tensor | None = None) -> bool:
        """Call after each ``optimizer.step()``; snapshots every ``every``-th call. Returns
        whether it took one."""
        _check_loss(loss)  # every call, so a wrong loss is refused at once (and without a sync)
        self._calls += 1
        self._measure()
        if self._calls % self.every:
            return False
        value = float(loss.detach()) if isinstance(loss, Tensor) else loss
        self._take(float("nan") if value is None else float(value))
        return True

    def validation(self, loss: float | Tensor, *, step: int | None = None) -> None:
        """Record a validation loss measured at optimizer step ``step`` (default: now, the
        number of ``step`` calls so far); with ``path`` it is appended to ``validation.bin``."""
        _check_loss(loss)
        if loss is None:
            raise GdscopeError("the validation loss must be one number, got None")
        if step is None:
            step = self._calls
        elif isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise GdscopeError(f"step must be a whole number >= 0, got {step!r}")
        value = float(loss.detach()) if isinstance(loss, Tensor) else float(loss)
        self._validation.append((int(step), value))
        if self.path is not None:
            with (self.path / VALIDATION_FILE).open("ab") as handle:
                handle.write(np.array([(int(step), value)], dtype=STEP_ROW).tobytes())

    def _take(self, loss: float) -> None:
        row = self._vector().to("cpu", torch.float32).numpy()
        self._steps.append(self._calls)
        self._losses.append(loss)
        if self.path is None:
            self._memory.append(row)
            return
        # The snapshot first, then its step: a writer dying between the two leaves a snapshot
        # without a step, which open_path ignores.
        with (self.path / SNAPSHOTS_FILE).open("ab") as handle:
            handle.write(row.astype("<f4").tobytes())
        with (self.path / STEPS_FILE).open("ab") as handle:
            handle.write(np.array([(self._calls, loss)], dtype=STEP_ROW).tobytes())

    def _vector(self) -> Tensor:
        """The model's parameters now, in the layout recorded from the start; refused in one
        line if one of them was frozen or reshaped since (a recording has one layout)."""
        tensors = self.layout.targets(self.model)
        changed = [n for n, shape in zip(self.layout.names, self.layout.shapes, strict=True)
                   if n not in tensors or tuple(tensors[n].shape) != shape]  # fmt: skip
        if changed:
            raise GdscopeError(
                f"parameter {', '.join(changed)} is no longer trainable with the shape it had when "
                "the Recorder started (frozen or replaced?); a recording keeps one set of "
                "parameters, so start a new Recorder after changing them"
            )
        return self.layout.flatten(tensors)

    def _write_index(self) -> None:
        """The layout, the optimizer and the sharpness so far; steps and losses are in
        ``steps.bin``."""
        assert self.path is not None
        index: dict[str, Any] = {**self.layout.to_dict(), "optimizer": self.optimizer}
        if self._probe is not None:
            index["sharpness"] = json_ready(self._probe.trace().to_dict())
        write_text(self.path / INDEX_FILE, json.dumps(index), force=True)

    @property
    def step_count(self) -> int:
        """The optimizer steps so far: the number of ``step`` calls."""
        return self._calls

    def last_sharpness(self) -> tuple[int, float, float, float] | None:
        """The last sharpness measured (``SharpnessProbe.last``: step, top value, learning rate,
        threshold), or None (none yet, or ``sharpness_every`` not given)."""
        return self._probe.last() if self._probe is not None else None

    def __len__(self) -> int:
        return len(self._steps)

    def result(self) -> RecordedPath:
        """The recording so far."""
        if self.path is not None:
            return open_path(self.path)
        rows = np.array(self._validation, dtype=STEP_ROW)
        return RecordedPath(
            self.layout, np.stack(self._memory), np.array(self._steps),
            np.array(self._losses, dtype=np.float64), self.optimizer,
            self._probe.trace() if self._probe is not None else None,
            rows["step"].astype(np.int64), rows["loss"].astype(np.float64),
        )  # fmt: skip


def _probe(
    every: int | None,
    data: Any,
    loss_fn: LossFn | None,
    top: int,
    optimizer: torch.optim.Optimizer | None,
    *,
    train: bool,
) -> SharpnessProbe | None:
    """The sharpness probe ``sharpness_every`` asks for (checked), or None."""
    if every is None:
        return None
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise GdscopeError(f"sharpness_every must be a positive integer, got {every!r}")
    if data is None or loss_fn is None:
        raise GdscopeError("sharpness_every needs sharpness_data and sharpness_loss")
    if optimizer is None:
        raise GdscopeError("sharpness_every needs the optimizer (its learning rate, its kind)")
    from gdscope.nets.sharpness import SharpnessProbe

    return SharpnessProbe(data, loss_fn, top=top, train=bool(train))


def _start_folder(folder: Path, *, force: bool) -> None:
    """Make ``folder`` ready for a new recording: refused in one line if it is a file, cannot be
    made, or holds a recording (unless ``force``)."""
    if folder.exists() and not folder.is_dir():
        raise GdscopeError(f"{folder} is a file; path names a folder for the recording")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise GdscopeError(f"cannot make the folder {folder}: {error.strerror or error}") from None
    if (folder / INDEX_FILE).exists() and not force:
        raise GdscopeError(f"{folder} already holds a recording; pass force=True")
    for name in (SNAPSHOTS_FILE, STEPS_FILE, VALIDATION_FILE):
        (folder / name).write_bytes(b"")


def _check_loss(loss: object) -> None:
    """Refuse a loss that is not one number (a tensor of one element, a real number, or None)."""
    if isinstance(loss, Tensor):
        if loss.numel() != 1:
            raise GdscopeError(
                f"the loss must be one number, got a tensor of shape {tuple(loss.shape)} "
                "(reduce it, e.g. loss.mean())"
            )
    elif loss is not None and (isinstance(loss, bool) or not isinstance(loss, numbers.Real)):
        raise GdscopeError(f"the loss must be one number, got {type(loss).__name__} {loss!r:.40}")


def open_path(path: str | os.PathLike[str]) -> RecordedPath:
    """A recording streamed to ``path`` (memory-mapped, read-only), up to its last whole
    snapshot if its writer died."""
    folder = Path(path)
    try:
        index = json.loads((folder / INDEX_FILE).read_text(encoding="utf-8"))
        layout = ParamLayout(tuple(index["names"]), tuple(tuple(s) for s in index["shapes"]))
        if "steps" in index:  # written before steps.bin: steps and losses in the index
            steps = np.array(index["steps"], dtype=np.int64)
            losses = np.array([math.nan if v is None else v for v in index["losses"]],
                              dtype=np.float64)  # fmt: skip
        else:
            steps, losses = _rows(folder / STEPS_FILE)
        # A recording made before validation.bin has none.
        validation = _rows(folder / VALIDATION_FILE, missing_ok=True)
        whole = (folder / SNAPSHOTS_FILE).stat().st_size // (4 * layout.size)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise GdscopeError(f"{folder} holds no readable recording ({error})") from None
    count = min(len(steps), whole)
    if count == 0:
        raise GdscopeError(f"{folder} holds no snapshot")
    snapshots = np.memmap(folder / SNAPSHOTS_FILE, dtype="<f4", mode="r",
                          shape=(count, layout.size))  # fmt: skip
    sharpness = None
    if index.get("sharpness") is not None:
        from gdscope.nets.sharpness import SharpnessTrace

        sharpness = SharpnessTrace.from_dict(index["sharpness"])
    return RecordedPath(layout, snapshots, steps[:count], losses[:count], index.get("optimizer"),
                        sharpness, *validation)  # fmt: skip


def _rows(file: Path, *, missing_ok: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The steps and losses of a file of ``STEP_ROW`` rows, without a last row cut short by a
    writer that died (empty if ``missing_ok`` and there is no file)."""
    if missing_ok and not file.exists():
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    data = file.read_bytes()
    rows = np.frombuffer(data[: len(data) - len(data) % STEP_ROW.itemsize], STEP_ROW)
    return rows["step"].astype(np.int64), rows["loss"].astype(np.float64)
