"""Hyperparameters of ``torch.optim.SGD``, validated with the rules torch itself enforces."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from gdscope.errors import GdscopeError, check_finite
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.grid import ARTICLE_LR

__all__ = ["SGDConfig"]


@dataclass(frozen=True)
class SGDConfig:
    """Every ``torch.optim.SGD`` argument that changes the maths, with torch's defaults.

    ``lr`` defaults to the article's 0.1 (torch's own default is 1e-3).
    """

    lr: float = ARTICLE_LR
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    maximize: bool = False

    def __post_init__(self) -> None:
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            value = check_finite(name, getattr(self, name))
            if value < 0:
                raise GdscopeError(f"{name} must be >= 0, got {value:g}")
            object.__setattr__(self, name, value)
        for name in ("nesterov", "maximize"):
            if not isinstance(getattr(self, name), bool):
                raise GdscopeError(f"{name} must be true or false, got {getattr(self, name)!r}")
        # torch.optim.SGD raises "Nesterov momentum requires a momentum and zero dampening".
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise GdscopeError(
                "nesterov requires momentum > 0 and dampening = 0 "
                f"(got momentum={self.momentum:g}, dampening={self.dampening:g})"
            )

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``torch.optim.SGD``."""
        return asdict(self)

    def spec(self) -> OptimizerSpec:
        """The generic optimizer spec: ``lr`` always, other arguments where not torch's default."""
        defaults = SGDConfig()
        given = {k: v for k, v in self.kwargs().items() if k == "lr" or v != getattr(defaults, k)}
        return OptimizerSpec.of("sgd", **given)

    def describe(self) -> str:
        """Short human label listing the non-default settings, e.g. ``lr=0.1, momentum=0.9``."""
        parts = [f"lr={self.lr:g}"]
        defaults = SGDConfig()
        for name in ("momentum", "dampening", "weight_decay"):
            if getattr(self, name) != getattr(defaults, name):
                parts.append(f"{name}={getattr(self, name):g}")
        parts.extend(name for name in ("nesterov", "maximize") if getattr(self, name))
        return ", ".join(parts)
