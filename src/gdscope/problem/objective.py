"""What is minimized: the ``Objective`` protocol, and the one reader of its records.

A regression loss on data (``LossSpec``), a ``TestFunction`` and a network's landscape
(``render.networks.ModelObjective``) all implement it, so callers ask the objective instead of
testing its type. Every objective is two-parameter: its first coordinate is drawn on the
vertical axis (the weight, or a test function's ``y``), the second on the horizontal one (the
bias, or ``x``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from torch import Tensor

from gdscope.errors import GdscopeError
from gdscope.problem.data import Dataset
from gdscope.problem.grid import ARTICLE_GRID, Grid, Point
from gdscope.problem.losses import LossSpec
from gdscope.problem.testfunctions import TestFunction

__all__ = [
    "Objective",
    "default_grid",
    "default_start",
    "objective_from_dict",
    "register_reader",
    "typed",
]


class Objective(Protocol):
    """What the engines, studies, renderers and records need from an objective."""

    @property
    def title(self) -> str:
        """Panel and colour-bar title, e.g. ``HuberLoss(delta=1)`` or ``Booth``."""
        ...

    @property
    def labels(self) -> tuple[str, str]:
        """Names of the (vertical, horizontal) axes: ``Weight``/``Bias``, ``y``/``x``, …"""
        ...

    @property
    def needs_data(self) -> bool:
        """True when its values are measured on data points (a regression loss)."""
        ...

    @property
    def regression(self) -> LossSpec | None:
        """The loss an ``nn.Linear(1, 1)`` is fitted with on data; None when the engines
        optimize the point itself."""
        ...

    @property
    def start(self) -> Point:
        """The customary start, ``(vertical, horizontal)``."""
        ...

    def default_grid(self, size: int = ARTICLE_GRID.w_size) -> Grid:
        """Where to look when no grid is given."""
        ...

    @property
    def customary_lr(self) -> float:
        """The SGD learning rate that shows this objective well (the article's 0.1 for a
        regression loss; most test functions need a smaller one)."""
        ...

    @property
    def known_minima(self) -> Sequence[Point]:
        """Minima (or the saddle point, see ``stationary``) known without computing; empty
        when they depend on data or are unknown."""
        ...

    @property
    def stationary(self) -> str:
        """What ``known_minima`` are: ``minimum`` or ``saddle point``."""
        ...

    def same_function_as(self, other: object) -> bool:
        """True when both compute the same values (so one map serves both)."""
        ...

    def point_text(self, vertical: float, horizontal: float) -> str:
        """A point as people read it: ``(w=6, b=-3)``, or ``(x=1, y=3)`` for a test function."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The record's form; ``objective_from_dict`` reads it back."""
        ...

    def at(self, data: Dataset | None, params: Tensor) -> Tensor:
        """The value at ``params[..., 0]`` (vertical), ``params[..., 1]`` (horizontal), in
        ``params``' dtype and device, differentiable; broadcast over the leading dimensions (a
        whole grid at once in ``maps.loss_map``)."""
        ...


def default_grid(objective: Objective, size: int = ARTICLE_GRID.w_size) -> Grid:
    """The article's grid for a regression loss, a test function's standard domain otherwise."""
    return objective.default_grid(size)


def default_start(objective: Objective) -> Point:
    return objective.start


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
               list: "a list"}  # fmt: skip


def typed(value: Any, kind: type, where: str) -> Any:
    """``value`` when it is of ``kind`` (an int is a float; a bool is neither), else a
    ``GdscopeError`` naming ``where``, the key's path."""
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise GdscopeError(f"{where} must be {_TYPE_NAMES[kind]}, got {value!r}")
    return value


Reader = Callable[[Mapping[str, Any], str], Objective]


def _function(raw: Mapping[str, Any], where: str) -> Objective:
    options = {k: typed(v, float, f"{where}.{k}") for k, v in raw.items() if k != "function"}
    return TestFunction.of(typed(raw["function"], str, f"{where}.function"), **options)


def _loss(raw: Mapping[str, Any], where: str) -> Objective:
    unknown = sorted(set(raw) - {"name", "delta", "beta"})
    if unknown:
        known = "beta, delta, name"
        raise GdscopeError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {known})")
    return LossSpec(
        typed(raw.get("name", "mse"), str, f"{where}.name"),
        typed(raw.get("delta", 1.0), float, f"{where}.delta"),
        typed(raw.get("beta", 1.0), float, f"{where}.beta"),
    )


_READERS: dict[str, Reader] = {"function": _function}
"""By the key that marks a record; a record with none of them is a regression loss."""


def register_reader(key: str, reader: Reader) -> None:
    """Let ``objective_from_dict`` read records holding ``key`` (e.g. ``"model"``)."""
    _READERS[key] = reader


def objective_from_dict(raw: Mapping[str, Any], where: str = "objective") -> Objective:
    """The inverse of every objective's ``to_dict``; wrong keys or types name ``where``."""
    if not isinstance(raw, Mapping):
        raise GdscopeError(f"{where} must be a table, got {type(raw).__name__}")
    for key, reader in _READERS.items():
        if key in raw:
            return reader(raw, where)
    return _loss(raw, where)
