"""Hyperparameters of ``torch.optim.SGD``, validated with the rules torch itself enforces."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from gdscope.errors import GdscopeError, check_finite
from gdscope.optim.rules import NESTEROV_RULE, TRANSFORMS, nesterov_refused
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.grid import ARTICLE_LR

__all__ = ["SGDConfig"]

_SGD = TRANSFORMS["sgd"].params
"""torch.optim.SGD's arguments, defaults and bounds, as the batched rules know them."""


def _number(name: str) -> float:
    return float(_SGD[name].default)


def _flag(name: str) -> bool:
    return bool(_SGD[name].default)


@dataclass(frozen=True)
class SGDConfig:
    """Every ``torch.optim.SGD`` argument that changes the maths, with torch's defaults (those
    of ``optim.rules.TRANSFORMS["sgd"]``, as are the bounds and the nesterov rule).

    ``lr`` defaults to the article's 0.1 (torch's own default is 1e-3).
    """

    lr: float = ARTICLE_LR
    momentum: float = _number("momentum")
    dampening: float = _number("dampening")
    weight_decay: float = _number("weight_decay")
    nesterov: bool = _flag("nesterov")
    maximize: bool = _flag("maximize")

    def __post_init__(self) -> None:
        for name, param in _SGD.items():
            if isinstance(param.default, bool):
                if not isinstance(getattr(self, name), bool):
                    raise GdscopeError(f"{name} must be true or false, got {getattr(self, name)!r}")
                continue
            value = check_finite(name, getattr(self, name))
            if param.low is not None and value < param.low:
                raise GdscopeError(f"{name} must be >= {param.low:g}, got {value:g}")
            object.__setattr__(self, name, value)
        if nesterov_refused(self.nesterov, self.momentum, self.dampening):
            raise GdscopeError(
                f"{NESTEROV_RULE} (got momentum={self.momentum:g}, dampening={self.dampening:g})"
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
