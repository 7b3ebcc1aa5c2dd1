"""Recording a real network's path: parameter snapshots taken inside the user's training loop.

    rec = gdscope.Recorder(model)            # snapshot 0: the starting weights
    for x, y in loader:
        ...; optimizer.step()
        rec.step(loss.item())                 # every ``every``-th call takes a snapshot

Snapshots are the model's trainable parameters flattened in ``named_parameters()`` order (as
float32 on the CPU). In memory they cost ``snapshots × parameters × 4`` bytes; with ``path``
each one is appended to ``path/snapshots.f32`` as it is taken and only the small index
(``path/index.json``, rewritten atomically) stays in memory, so memory does not grow with the run.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from gdscope.errors import GdscopeError
from gdscope.files import write_text

__all__ = ["ParamLayout", "RecordedPath", "Recorder", "open_path"]


def _tensors(model: nn.Module, states: bool) -> dict[str, Tensor]:
    """Trainable parameters (``named_parameters()`` order), then with ``states`` the
    floating-point buffers of ``state_dict()`` (BatchNorm's running statistics; not counters,
    and not non-persistent buffers: a saved direction lists ``state_dict()``, so a tensor it
    moved outside it could not be moved again from the file)."""
    out: dict[str, Tensor] = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if states:
        saved = model.state_dict(keep_vars=True)
        out.update({n: b for n, b in model.named_buffers()
                    if b.is_floating_point() and n in saved})  # fmt: skip
    return out


@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of a model's trainable parameters, in ``named_parameters()`` order;
    with ``states``, followed by its floating-point buffers in ``state_dict()`` (the reference's
    ``dir_type=states``).

    ``listing`` is how the reference implementation lists the same model (``parameters()``, or
    with ``states`` the ``state_dict()``: module by module, counters and frozen tensors
    included), for files that its scripts read; it is not part of the layout's identity.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    states: bool = False
    listing: tuple[tuple[str, tuple[int, ...]], ...] = field(default=(), compare=False)

    @classmethod
    def of(cls, model: nn.Module, *, states: bool = False) -> ParamLayout:
        pairs = [(n, tuple(t.shape)) for n, t in _tensors(model, states).items()]
        if not pairs:
            raise GdscopeError("the model has no trainable parameters")
        listed = model.state_dict().items() if states else model.named_parameters()
        listing = tuple((n, tuple(t.shape)) for n, t in listed)
        return cls(tuple(n for n, _ in pairs), tuple(s for _, s in pairs), states, listing)

    @property
    def sizes(self) -> list[int]:
        return [math.prod(s) for s in self.shapes]

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def flatten(self, tensors: dict[str, Tensor] | Sequence[Tensor]) -> Tensor:
        items = [tensors[n] for n in self.names] if isinstance(tensors, dict) else list(tensors)
        return torch.cat([t.detach().reshape(-1) for t in items])

    def unflatten(self, vector: Tensor) -> dict[str, Tensor]:
        """Views into ``vector`` (works under ``torch.vmap`` on the last dimension too)."""
        out, start = {}, 0
        for name, shape, size in zip(self.names, self.shapes, self.sizes, strict=True):
            out[name] = vector[..., start : start + size].reshape(*vector.shape[:-1], *shape)
            start += size
        return out

    def vector(self, model: nn.Module) -> Tensor:
        tensors = _tensors(model, self.states)
        return self.flatten({n: tensors[n] for n in self.names})

    def targets(self, model: nn.Module) -> dict[str, Tensor]:
        """The model's own tensors (parameters and, with ``states``, buffers) by name."""
        return _tensors(model, self.states)

    def check(self, model: nn.Module) -> None:
        other = ParamLayout.of(model, states=self.states)
        if other != self:
            raise GdscopeError("the model's parameters do not match the recorded path's")

    def to_dict(self) -> dict[str, object]:
        return {"names": list(self.names), "shapes": [list(s) for s in self.shapes],
                "states": self.states}  # fmt: skip


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

    def __len__(self) -> int:
        return len(self.steps)

    def vector(self, i: int) -> Tensor:
        return torch.from_numpy(np.array(self.snapshots[i], dtype=np.float32))

    def state(self, i: int) -> dict[str, Tensor]:
        """Snapshot ``i`` as ``{name: tensor}`` (load with ``model.load_state_dict(...,
        strict=False)``)."""
        return {k: v.clone() for k, v in self.layout.unflatten(self.vector(i)).items()}


class Recorder:
    """Takes parameter snapshots of ``model`` (see the module docstring)."""

    def __init__(
        self,
        model: nn.Module,
        *,
        every: int = 1,
        path: str | os.PathLike[str] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        force: bool = False,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise GdscopeError(f"every must be a positive integer, got {every!r}")
        self.model, self.every = model, every
        self.layout = ParamLayout.of(model)
        self.optimizer = type(optimizer).__name__ if optimizer is not None else None
        self._memory: list[np.ndarray] = []
        self._steps: list[int] = []
        self._losses: list[float] = []
        self._calls = 0
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            if (self.path / "index.json").exists() and not force:
                raise GdscopeError(f"{self.path} already holds a recording; pass force=True")
            (self.path / "snapshots.f32").write_bytes(b"")
        self._take(float("nan"))

    def step(self, loss: float | Tensor | None = None) -> bool:
        """Call after each ``optimizer.step()``; snapshots every ``every``-th call. Returns
        whether it took one."""
        self._calls += 1
        if self._calls % self.every:
            return False
        value = float(loss.detach()) if isinstance(loss, Tensor) else loss
        self._take(float("nan") if value is None else float(value))
        return True

    def _take(self, loss: float) -> None:
        row = self.layout.vector(self.model).to("cpu", torch.float32).numpy()
        self._steps.append(self._calls)
        self._losses.append(loss)
        if self.path is None:
            self._memory.append(row)
            return
        with (self.path / "snapshots.f32").open("ab") as handle:
            handle.write(row.astype("<f4").tobytes())
        index = {**self.layout.to_dict(), "steps": self._steps, "optimizer": self.optimizer,
                 "losses": [None if math.isnan(v) else v for v in self._losses]}  # fmt: skip
        write_text(self.path / "index.json", json.dumps(index), force=True)

    def __len__(self) -> int:
        return len(self._steps)

    def result(self) -> RecordedPath:
        """The recording so far."""
        if self.path is not None:
            return open_path(self.path)
        return RecordedPath(self.layout, np.stack(self._memory), np.array(self._steps),
                            np.array(self._losses, dtype=np.float64), self.optimizer)  # fmt: skip


def open_path(path: str | os.PathLike[str]) -> RecordedPath:
    """A recording streamed to ``path`` (memory-mapped, read-only)."""
    folder = Path(path)
    try:
        index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise GdscopeError(f"{folder} holds no readable recording ({error})") from None
    layout = ParamLayout(tuple(index["names"]), tuple(tuple(s) for s in index["shapes"]))
    count = len(index["steps"])
    snapshots = np.memmap(folder / "snapshots.f32", dtype="<f4", mode="r",
                          shape=(count, layout.size))  # fmt: skip
    losses = np.array([math.nan if v is None else v for v in index["losses"]], dtype=np.float64)
    return RecordedPath(layout, snapshots, np.array(index["steps"]), losses, index.get("optimizer"))
