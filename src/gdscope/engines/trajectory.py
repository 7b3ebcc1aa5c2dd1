"""The record of one optimizer run through (weight, bias) space."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gdscope.optim.specs import OptimizerSpec, SchedulerSpec
from gdscope.problem.divergence import Divergence
from gdscope.problem.objective import Objective

__all__ = ["Trajectory"]


def _unset() -> np.ndarray:
    """An empty array: the field was not given (``__post_init__`` fills in its default)."""
    return np.empty(0)


@dataclass(frozen=True, eq=False)
class Trajectory:
    """One run: ``steps + 1`` points (start included) and the loss at each of them.

    ``weights``/``biases`` are the vertical/horizontal coordinates (a test function's ``y``/``x``).
    ``losses[i]`` is the objective on all the data at point ``i``, i.e. the value torch reports
    before step ``i`` in full-batch training; the last entry is the loss after the final step.
    ``lrs[i]`` is the learning rate step ``i`` used (NaN for the last point, which takes no
    step); ``batch_losses[i]`` the loss step ``i`` saw (its mini-batch's); ``buffers[i]`` the
    optimizer's momentum-like buffer after the step into point ``i`` (NaN if it keeps none). With
    mini-batches an epoch is ``steps_per_epoch`` steps. If the run diverged
    (``problem.divergence``: a non-finite loss or parameter, or a parameter beyond the
    objective's escape bound), ``diverged_at`` is the first such index, that entry and all later
    ones are NaN, and ``reason`` says which value did it (None where the engine does not know:
    ``why`` then states the definition).
    """

    weights: np.ndarray
    biases: np.ndarray
    losses: np.ndarray
    diverged_at: int | None
    loss: Objective
    optimizer: OptimizerSpec
    start: tuple[float, float]
    lrs: np.ndarray = field(default_factory=_unset)
    scheduler: SchedulerSpec | None = None
    steps_per_epoch: int = 1
    batch_size: int | None = None
    shuffle_seed: int | None = None
    batch_losses: np.ndarray = field(default_factory=_unset)
    buffers: np.ndarray = field(default_factory=_unset)
    reason: str | None = None

    def __post_init__(self) -> None:
        size = len(self.weights)
        given = {n: getattr(self, n) is not None and np.size(getattr(self, n)) > 0
                 for n in ("lrs", "batch_losses", "buffers")}  # fmt: skip
        if not given["lrs"]:
            object.__setattr__(self, "lrs", np.full(size, np.nan))
        if not given["batch_losses"]:
            batch = np.array(self.losses, dtype=np.float64).copy()
            batch[-1:] = np.nan
            object.__setattr__(self, "batch_losses", batch)
        if not given["buffers"]:
            object.__setattr__(self, "buffers", np.full((size, 2), np.nan))
        for name in ("weights", "biases", "losses", "lrs", "batch_losses", "buffers"):
            array = np.array(getattr(self, name), dtype=np.float64)
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        lengths = {len(getattr(self, n)) for n in ("biases", "losses", "lrs", "batch_losses")}
        if lengths != {size} or self.buffers.shape != (size, 2):
            raise ValueError("every per-point array must have one entry per point")

    @classmethod
    def from_path(
        cls,
        path: np.ndarray,
        losses: np.ndarray,
        diverged_at: int,
        loss: Objective,
        optimizer: OptimizerSpec,
        start: tuple[float, float],
        **extra: Any,
    ) -> Trajectory:
        """From an engine's ``(steps + 1, 2)`` path (``diverged_at`` < 0: none), no scheduler:
        every step used the optimizer's ``lr``. ``extra``: the mini-batch fields."""
        lrs = np.full(len(path), float(optimizer.get("lr")))
        lrs[-1] = np.nan
        at = None if diverged_at < 0 else int(diverged_at)
        return cls(weights=path[:, 0], biases=path[:, 1], losses=losses, diverged_at=at, loss=loss,
                   optimizer=optimizer, start=start, lrs=lrs, **extra)  # fmt: skip

    @property
    def steps(self) -> int:
        return len(self.weights) - 1

    @property
    def epochs(self) -> int:
        return self.steps // self.steps_per_epoch

    @property
    def labels(self) -> tuple[str, str]:
        """Names of the (vertical, horizontal) coordinates."""
        return self.loss.labels

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @property
    def why(self) -> str:
        """Why the run diverged, for a message: ``diverged at step {k}: {why}``."""
        return self.reason or Divergence.of(self.loss).describe()

    @property
    def path(self) -> np.ndarray:
        """``(epochs + 1, 2)`` array of ``(weight, bias)``; NaN rows after divergence."""
        return np.stack([self.weights, self.biases], axis=1)

    @property
    def n_finite(self) -> int:
        """Number of leading points that are finite."""
        return self.steps + 1 if self.diverged_at is None else self.diverged_at

    @property
    def final(self) -> tuple[float, float]:
        """The last finite ``(weight, bias)``."""
        i = self.n_finite - 1
        return float(self.weights[i]), float(self.biases[i])

    @property
    def label(self) -> str:
        """``SGD(lr=0.1, momentum=0.9)``, plus the scheduler if there is one."""
        text = self.optimizer.describe()
        if self.scheduler:
            text += f" + {self.scheduler.describe()}"
        if self.batch_size is not None:
            text += f", batch {self.batch_size} (shuffle seed {self.shuffle_seed})"
        return text

    def log_lines(self) -> list[str]:
        """``epoch {i}, loss {value}`` lines as the article prints them (one per training step)."""
        return [f"epoch {i}, loss {float(self.batch_losses[i])!r}" for i in range(self.steps)]
