"""The record of one optimizer run through (weight, bias) space."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .losses import LossSpec
from .optimizers import OptimizerSpec, SchedulerSpec

__all__ = ["Trajectory"]


@dataclass(frozen=True, eq=False)
class Trajectory:
    """One run: ``epochs + 1`` points (start included) and the loss at each of them.

    ``losses[i]`` is the loss at ``(weights[i], biases[i])``, i.e. the value torch reports in
    epoch ``i`` before its step; the last entry is the loss after the final step. ``lrs[i]`` is
    the learning rate step ``i`` used (NaN for the last point, which takes no step). If the run
    diverged, ``diverged_at`` is the first index whose parameters or loss are not finite, and that
    entry and all later ones are NaN.
    """

    weights: np.ndarray
    biases: np.ndarray
    losses: np.ndarray
    diverged_at: int | None
    loss: LossSpec
    optimizer: OptimizerSpec
    start: tuple[float, float]
    lrs: np.ndarray | None = None
    scheduler: SchedulerSpec | None = None

    def __post_init__(self) -> None:
        lrs = np.full(len(self.weights), np.nan) if self.lrs is None else self.lrs
        object.__setattr__(self, "lrs", lrs)
        for name in ("weights", "biases", "losses", "lrs"):
            array = np.array(getattr(self, name), dtype=np.float64)
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        if not self.weights.shape == self.biases.shape == self.losses.shape == self.lrs.shape:
            raise ValueError("weights, biases, losses and lrs must have the same length")

    @classmethod
    def from_path(
        cls,
        path: np.ndarray,
        losses: np.ndarray,
        diverged_at: int,
        loss: LossSpec,
        optimizer: OptimizerSpec,
        start: tuple[float, float],
    ) -> Trajectory:
        """From an engine's ``(epochs + 1, 2)`` path (``diverged_at`` < 0: none), no scheduler:
        every step used the optimizer's ``lr``."""
        lrs = np.full(len(path), float(optimizer.get("lr")))
        lrs[-1] = np.nan
        at = None if diverged_at < 0 else int(diverged_at)
        return cls(path[:, 0], path[:, 1], losses, at, loss, optimizer, start, lrs)

    @property
    def epochs(self) -> int:
        return len(self.weights) - 1

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @property
    def path(self) -> np.ndarray:
        """``(epochs + 1, 2)`` array of ``(weight, bias)``; NaN rows after divergence."""
        return np.stack([self.weights, self.biases], axis=1)

    @property
    def n_finite(self) -> int:
        """Number of leading points that are finite."""
        return self.epochs + 1 if self.diverged_at is None else self.diverged_at

    @property
    def final(self) -> tuple[float, float]:
        """The last finite ``(weight, bias)``."""
        i = self.n_finite - 1
        return float(self.weights[i]), float(self.biases[i])

    @property
    def label(self) -> str:
        """``SGD(lr=0.1, momentum=0.9)``, plus the scheduler if there is one."""
        text = self.optimizer.describe()
        return f"{text} + {self.scheduler.describe()}" if self.scheduler else text

    def log_lines(self) -> list[str]:
        """``epoch {i}, loss {value}`` lines as the article prints them (one per training epoch)."""
        return [f"epoch {i}, loss {float(self.losses[i])!r}" for i in range(self.epochs)]
