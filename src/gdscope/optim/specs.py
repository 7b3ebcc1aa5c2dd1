"""Any ``torch.optim`` optimizer or ``lr_scheduler`` by name, with its keyword arguments.

Specs are validated by constructing the real torch object, so the errors are torch's own.
"""

from __future__ import annotations

import ast
import inspect
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from gdscope.errors import GdscopeError, unknown

__all__ = [
    "COUPLED_DECAY",
    "OPTIMIZERS",
    "SCHEDULERS",
    "OptimizerSpec",
    "SchedulerSpec",
    "format_value",
    "l2_decay",
    "momentum_argument",
    "parse_assignments",
    "parse_value",
]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "nadam": torch.optim.NAdam,
    "radam": torch.optim.RAdam,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
    "adadelta": torch.optim.Adadelta,
    "adamax": torch.optim.Adamax,
    "asgd": torch.optim.ASGD,
    "rprop": torch.optim.Rprop,
    "lbfgs": torch.optim.LBFGS,
}
# Arguments that change nothing about the maths (implementation switches) or that we control.
_IGNORED = {"params", "foreach", "fused", "capturable", "differentiable"}
_SKIPPED_SCHEDULERS = {"LRScheduler", "_LRScheduler", "LambdaLR", "MultiplicativeLR"}
# Optimizers whose weight_decay adds wd·p to the gradient (an L2 penalty, objective
# loss + wd/2·|p|²). AdamW's decay is decoupled and minimizes no such objective.
COUPLED_DECAY = frozenset(
    {"sgd", "adam", "nadam", "radam", "rmsprop", "adagrad", "adadelta", "adamax", "asgd"}
)


def l2_decay(name: str, weight_decay: ArrayLike, decoupled: ArrayLike = False) -> np.ndarray:
    """``weight_decay`` where optimizer ``name`` minimizes ``loss + wd/2·|p|²`` (its decay is
    coupled and not switched to decoupled), else 0; elementwise over arrays of settings."""
    decay = np.asarray(weight_decay, dtype=np.float64)
    if name not in COUPLED_DECAY:
        return np.zeros_like(decay)
    return np.where(np.asarray(decoupled, dtype=bool), 0.0, decay)


def _scheduler_classes() -> dict[str, type[Any]]:
    from torch.optim import lr_scheduler

    found = {}
    for name, cls in vars(lr_scheduler).items():
        if (
            inspect.isclass(cls)
            and name not in _SKIPPED_SCHEDULERS
            and not name.startswith("_")
            and (issubclass(cls, lr_scheduler.LRScheduler) or name == "ReduceLROnPlateau")
        ):
            found[name.lower()] = cls
    return found


SCHEDULERS = _scheduler_classes()


def parse_value(text: str) -> Any:
    """``0.1`` → float, ``3`` → int, ``true`` → True, ``0.9,0.99`` → tuple, ``[2,5]`` → list."""
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    if lowered in {"nan", "inf", "+inf", "-inf"}:  # literal_eval knows none of them
        return float(lowered)
    if "," in stripped and not stripped.startswith(("[", "(")):
        return tuple(parse_value(part) for part in stripped.split(","))
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError):
        return stripped


def parse_assignments(items: Iterable[str], *, what: str) -> dict[str, Any]:
    """``["lr=0.05", "betas=0.9,0.99"]`` → ``{"lr": 0.05, "betas": (0.9, 0.99)}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise GdscopeError(f"{what} must look like name=value, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


def _freeze(kwargs: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))


def _not_finite(options: Iterable[tuple[str, Any]]) -> list[str]:
    """The options holding a NaN or an infinity (alone or in a tuple such as ``betas``): torch
    takes ``lr=nan`` without a word and every step is then NaN."""

    def bad(value: Any) -> bool:
        if isinstance(value, tuple | list):
            return any(bad(v) for v in value)
        return isinstance(value, float) and not math.isfinite(value)

    return [key for key, value in options if bad(value)]


def _known(name: str, registry: Mapping[str, type[Any]], kind: str) -> str:
    """``name`` in lower case, when ``registry`` has it (else the choices, in the error)."""
    lower = name.lower()
    if lower not in registry:
        raise unknown(kind, name, registry)
    return lower


def _accepted(cls: type[Any]) -> set[str]:
    return {name for name in inspect.signature(cls).parameters if name not in _IGNORED}


def _check_kinds(cls: type[Any], kwargs: Mapping[str, Any]) -> None:
    """Refuse, naming the argument, what torch would fail on obscurely: one number where its
    default is several (``betas=0.9``), or text where it is a number."""
    parameters = inspect.signature(cls).parameters
    for key, value in kwargs.items():
        default = parameters[key].default if key in parameters else None
        if isinstance(default, tuple) and not isinstance(value, tuple | list):
            example = ",".join(format_value(v) for v in default)
            raise GdscopeError(f"{cls.__name__}: {key} takes {len(default)} comma-separated "
                               f"values (default {example}), got {value!r}")  # fmt: skip
        number = isinstance(default, int | float) and not isinstance(default, bool)
        if number and isinstance(value, str):
            raise GdscopeError(f"{cls.__name__}: {key} takes a number, got {value!r}")


def momentum_argument(name: str) -> tuple[str, Any] | None:
    """How torch's optimizer ``name`` takes a momentum, read from its signature:
    ``("momentum", None)``, ``("betas", default betas)`` (the momentum is ``beta1``), or None
    (it has none)."""
    parameters = inspect.signature(OPTIMIZERS[_known(name, OPTIMIZERS, "optimizer")]).parameters
    if "betas" in parameters:
        return "betas", parameters["betas"].default
    if "momentum" in parameters:
        return "momentum", None
    return None


@dataclass(frozen=True)
class OptimizerSpec:
    """A ``torch.optim`` optimizer by (lower-case) name with keyword arguments."""

    name: str = "sgd"
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, name: str, **kwargs: Any) -> OptimizerSpec:
        return cls(name, _freeze(kwargs))

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _known(self.name, OPTIMIZERS, "optimizer"))
        options = self.options if isinstance(self.options, tuple) else _freeze(dict(self.options))
        object.__setattr__(self, "options", _freeze(dict(options)))
        unknown = set(self.kwargs()) - _accepted(self.cls)
        if unknown:
            raise GdscopeError(
                f"{self.cls.__name__} got unknown argument(s) {', '.join(sorted(unknown))}; "
                f"it accepts {', '.join(sorted(_accepted(self.cls)))}"
            )
        bad = _not_finite(self.options)
        if bad:
            raise GdscopeError(f"{self.cls.__name__}: {', '.join(bad)} must be finite")
        self.build([torch.nn.Parameter(torch.zeros(1))])  # torch validates the values

    @property
    def cls(self) -> type[torch.optim.Optimizer]:
        return OPTIMIZERS[self.name]

    def kwargs(self) -> dict[str, Any]:
        return dict(self.options)

    def get(self, key: str) -> Any:
        """The value torch would use: given, or the constructor's default."""
        given = self.kwargs()
        if key in given:
            return given[key]
        return inspect.signature(self.cls).parameters[key].default

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        _check_kinds(self.cls, self.kwargs())
        try:
            return self.cls(params, **self.kwargs())
        except (ValueError, TypeError, RuntimeError) as error:
            raise GdscopeError(f"{self.cls.__name__}: {error}") from None

    @property
    def needs_closure(self) -> bool:
        return self.name == "lbfgs"

    @property
    def l2_weight_decay(self) -> float:
        """``wd`` when the optimizer minimizes ``loss + wd/2·|p|²``, else 0."""
        if self.name not in COUPLED_DECAY:  # (L-BFGS and Rprop take no weight_decay at all)
            return 0.0
        decoupled = bool(self.kwargs().get("decoupled_weight_decay"))
        return float(l2_decay(self.name, float(self.get("weight_decay") or 0.0), decoupled))

    def describe(self) -> str:
        """``SGD(lr=0.1, momentum=0.9)``: the class and the arguments given."""
        ordered = sorted(self.options, key=lambda item: item[0] != "lr")  # lr first
        args = ", ".join(f"{k}={format_value(v)}" for k, v in ordered)
        return f"{self.cls.__name__}({args})"


def format_value(value: Any, spec: str = "g") -> str:
    """A hyperparameter for people: floats with ``spec``, tuples as ``0.9,0.999``."""
    if isinstance(value, float):
        return format(value, spec)
    if isinstance(value, tuple):
        return ",".join(format_value(v, spec) for v in value)
    return str(value)


@dataclass(frozen=True)
class SchedulerSpec:
    """A ``torch.optim.lr_scheduler`` class by (lower-case) name with keyword arguments.

    ``ReduceLROnPlateau`` is stepped with the epoch's loss; every other scheduler once per epoch
    (one epoch is one step in full-batch training).
    """

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, name: str, **kwargs: Any) -> SchedulerSpec:
        return cls(name, _freeze(kwargs))

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _known(self.name, SCHEDULERS, "scheduler"))
        object.__setattr__(self, "options", _freeze(dict(self.options)))
        bad = _not_finite(self.options)
        if bad:
            raise GdscopeError(f"{self.cls.__name__}: {', '.join(bad)} must be finite")
        # Made and stepped once on a stand-in: torch checks some arguments only when it steps
        # (StepLR's step_size=0 divides by zero there). Once: OneCycleLR may allow one step.
        param = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([param], lr=0.1)
        scheduler = self.build(optimizer)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                optimizer.step()
                scheduler.step(0.0) if self.needs_metric else scheduler.step()
        except ZeroDivisionError as error:
            raise GdscopeError(f"{self.cls.__name__}: {error} (an argument it divides by is 0)"
                               ) from None  # fmt: skip
        except (ValueError, TypeError, OverflowError, IndexError) as error:
            raise GdscopeError(f"{self.cls.__name__}: {error}") from None

    @property
    def cls(self) -> type[Any]:
        return SCHEDULERS[self.name]

    def kwargs(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def needs_metric(self) -> bool:
        return self.name == "reducelronplateau"

    def build(self, optimizer: torch.optim.Optimizer) -> Any:
        unknown = set(self.kwargs()) - (set(inspect.signature(self.cls).parameters) - {"optimizer"})
        if unknown:
            raise GdscopeError(
                f"{self.cls.__name__} got unknown argument(s) {', '.join(sorted(unknown))}"
            )
        _check_kinds(self.cls, self.kwargs())
        try:
            return self.cls(optimizer, **self.kwargs())
        except (ValueError, TypeError, KeyError) as error:
            raise GdscopeError(f"{self.cls.__name__}: {error}") from None

    def describe(self) -> str:
        args = ", ".join(f"{k}={format_value(v)}" for k, v in self.options)
        return f"{self.cls.__name__}({args})"
