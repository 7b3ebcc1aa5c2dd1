"""The four regression losses of the article, as real ``torch.nn`` modules and functionals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gdscope.errors import GdscopeError, check_finite, unknown
from gdscope.problem.data import Dataset, require
from gdscope.problem.grid import ARTICLE_GRID, ARTICLE_LR, ARTICLE_START, Grid, Point

__all__ = ["ARTICLE_LOSSES", "HUBER_DELTA", "LOSS_NAMES", "SMOOTHL1_BETA", "LossSpec"]

LOSS_NAMES = ("mse", "l1", "huber", "smoothl1")
HUBER_DELTA = 1.0
"""HuberLoss's ``delta`` unless told otherwise (torch's default)."""
SMOOTHL1_BETA = 1.0
"""SmoothL1Loss's ``beta`` unless told otherwise (torch's default)."""
_CLASS_NAMES = {"mse": "MSELoss", "l1": "L1Loss", "huber": "HuberLoss", "smoothl1": "SmoothL1Loss"}


@dataclass(frozen=True)
class LossSpec:
    """A loss by name; ``delta`` is HuberLoss's parameter, ``beta`` SmoothL1Loss's (default 1,
    as torch's)."""

    name: str = "mse"
    delta: float = HUBER_DELTA
    beta: float = SMOOTHL1_BETA

    def __post_init__(self) -> None:
        name = str(self.name).lower().replace("_", "").replace("-", "")
        name = {"mseloss": "mse", "l1loss": "l1", "huberloss": "huber"}.get(name, name)
        name = {"smoothl1loss": "smoothl1", "l2": "mse"}.get(name, name)
        if name not in LOSS_NAMES:
            raise unknown("loss", self.name, LOSS_NAMES)
        object.__setattr__(self, "name", name)
        delta = check_finite("huber delta", self.delta)
        beta = check_finite("smoothl1 beta", self.beta)
        # The same limits torch enforces: HuberLoss needs delta > 0, SmoothL1Loss beta >= 0.
        if delta <= 0:
            raise GdscopeError(f"huber delta must be > 0, got {delta}")
        if beta < 0:
            raise GdscopeError(f"smoothl1 beta must be >= 0, got {beta}")
        object.__setattr__(self, "delta", delta)
        object.__setattr__(self, "beta", beta)

    labels = ("Weight", "Bias")
    """Axis names of the (vertical, horizontal) coordinates: ``nn.Linear(1, 1)``'s parameters."""

    needs_data = True
    """A regression loss is measured on data points."""

    stationary = "minimum"

    known_minima: ClassVar[tuple[Point, ...]] = ()
    """None known in advance: the minimum depends on the data (``maps.find_minimum``)."""

    @property
    def regression(self) -> LossSpec:
        """The loss an ``nn.Linear(1, 1)`` is fitted with: this one."""
        return self

    @property
    def start(self) -> Point:
        """The article's start, ``(weight, bias) = (6, -3)``."""
        return ARTICLE_START

    @property
    def customary_lr(self) -> float:
        return ARTICLE_LR

    def default_grid(self, size: int = ARTICLE_GRID.w_size) -> Grid:
        """The article's grid, with ``size`` samples per axis."""
        return Grid(ARTICLE_GRID.w_range, ARTICLE_GRID.b_range, size, size)

    def point_text(self, vertical: float, horizontal: float) -> str:
        # Named: the maps draw the bias across and the weight up, so "(6, -3)" reads backwards.
        return f"(w={vertical:g}, b={horizontal:g})"

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., "delta": ..., "beta": ...}``, the record format since 0.1."""
        return asdict(self)

    def at(self, data: Dataset | None, params: Tensor) -> Tensor:
        """The mean loss of ``w·x + b`` at ``params[..., 0] = w``, ``params[..., 1] = b``:
        predictions are formed in ``params``' dtype, as the article's loop does, then reduced
        with the ``torch.nn.functional`` loss."""
        data = require(data, self.title)
        x = torch.tensor(data.x, dtype=params.dtype, device=params.device)
        y = torch.tensor(data.y, dtype=params.dtype, device=params.device)
        prediction = x * params[..., :1] + params[..., 1:]
        return self.elementwise()(prediction, y.expand_as(prediction)).mean(-1)

    @property
    def class_name(self) -> str:
        return _CLASS_NAMES[self.name]

    @property
    def title(self) -> str:
        """Panel title: the torch class, with its parameter where it has one."""
        if self.name == "huber":
            return f"HuberLoss(delta={self.delta:g})"
        if self.name == "smoothl1":
            return f"SmoothL1Loss(beta={self.beta:g})"
        return self.class_name

    def module(self) -> nn.Module:
        """The real ``torch.nn`` loss module (mean reduction), as the article uses."""
        if self.name == "mse":
            return nn.MSELoss()
        if self.name == "l1":
            return nn.L1Loss()
        if self.name == "huber":
            return nn.HuberLoss(delta=self.delta)
        return nn.SmoothL1Loss(beta=self.beta)

    def elementwise(self) -> Callable[[Tensor, Tensor], Tensor]:
        """``f(prediction, target)`` with no reduction, for broadcast evaluation on grids."""
        if self.name == "mse":
            return lambda p, t: F.mse_loss(p, t, reduction="none")
        if self.name == "l1":
            return lambda p, t: F.l1_loss(p, t, reduction="none")
        if self.name == "huber":
            return lambda p, t: F.huber_loss(p, t, reduction="none", delta=self.delta)
        return lambda p, t: F.smooth_l1_loss(p, t, reduction="none", beta=self.beta)

    def same_function_as(self, other: object) -> bool:
        """True when both compute the same values (HuberLoss(δ) ≡ SmoothL1Loss(β) iff δ=β=1)."""
        if self == other:
            return True
        if not isinstance(other, LossSpec):  # the type test of __eq__, not a dispatch
            return False
        pair = {self.name, other.name}
        if pair == {"huber", "smoothl1"}:
            huber, smooth = (self, other) if self.name == "huber" else (other, self)
            return huber.delta == 1.0 and smooth.beta == 1.0
        return False


ARTICLE_LOSSES = (LossSpec("mse"), LossSpec("l1"), LossSpec("huber"), LossSpec("smoothl1"))
