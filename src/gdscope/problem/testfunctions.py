"""Classic 2-D optimization test functions, as a small registry of plain torch formulas.

A test function is an objective with no data: ``f(x, y)``. gdscope's maps put the second
coordinate (``x``) on the horizontal axis and the first on the vertical one, so a function's
point is stored as ``(y, x)``, the same order as the regression's ``(weight, bias)``. Every
optimizer in torch.optim is elementwise or permutation-equivariant, so that order changes no
value.

Adding a function is one decorated formula::

    @register(domain=((-2, 2), (-1, 3)), minima=[(1, 1)], start=(-1.2, 1.0), lr=1e-3)
    def rosenbrock(x, y, a=1.0, b=100.0):
        return (a - x) ** 2 + b * (y - x**2) ** 2

Keyword arguments with defaults are the function's options (``--function-opt b=10``).
``domain``, ``minima`` and ``start`` are in ``(x, y)`` order, as the literature writes them;
``minima`` may be a callable of the options.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gdscope.errors import GdscopeError, check_finite, unknown
from gdscope.problem.data import Dataset
from gdscope.problem.grid import ARTICLE_GRID, Grid

__all__ = ["FUNCTIONS", "FunctionDef", "TestFunction", "register"]

Point = tuple[float, float]  # (x, y) here, as the literature writes it


@dataclass(frozen=True)
class FunctionDef:
    """A registered formula and what the literature says about it (all in ``(x, y)`` order)."""

    name: str
    formula: Callable[..., Tensor]
    domain: tuple[Point, Point]
    minima: Callable[..., Sequence[Point]]
    start: Point
    lr: float
    defaults: dict[str, float]
    stationary: str = "minimum"
    """What the marked points are: ``minimum``, or ``saddle point`` for a function with none."""


FUNCTIONS: dict[str, FunctionDef] = {}


def register(
    *,
    domain: tuple[Point, Point],
    minima: Sequence[Point] | Callable[..., Sequence[Point]],
    start: Point,
    lr: float,
    stationary: str = "minimum",
) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Add ``formula`` to ``FUNCTIONS`` under its own name (see the module docstring)."""

    def add(formula: Callable[..., Tensor]) -> Callable[..., Tensor]:
        parameters = list(inspect.signature(formula).parameters.values())[2:]
        defaults = {p.name: float(p.default) for p in parameters}
        found = minima if callable(minima) else (lambda **_: minima)
        FUNCTIONS[formula.__name__] = FunctionDef(
            formula.__name__, formula, domain, found, start, lr, defaults, stationary
        )
        return formula

    return add


@register(domain=((-2.0, 2.0), (-1.0, 3.0)), minima=lambda a, b: [(a, a * a)], start=(-1.2, 1.0),
          lr=1e-3)  # fmt: skip
def rosenbrock(x: Tensor, y: Tensor, a: float = 1.0, b: float = 100.0) -> Tensor:
    """The banana valley: easy to find, slow to follow."""
    return (a - x) ** 2 + b * (y - x * x) ** 2


@register(domain=((-5.12, 5.12), (-5.12, 5.12)), minima=[(0.0, 0.0)], start=(3.3, -2.4), lr=1e-3)
def rastrigin(x: Tensor, y: Tensor, a: float = 10.0) -> Tensor:
    """A bowl covered in local minima."""
    tau = 2 * math.pi
    return 2 * a + (x * x - a * torch.cos(tau * x)) + (y * y - a * torch.cos(tau * y))


@register(
    domain=((-5.0, 5.0), (-5.0, 5.0)),
    minima=[(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)],
    start=(0.0, -0.5),
    lr=0.01,
)
def himmelblau(x: Tensor, y: Tensor) -> Tensor:
    """Four equal minima: where you start decides where you end."""
    return (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2


@register(domain=((-4.5, 4.5), (-4.5, 4.5)), minima=[(3.0, 0.5)], start=(1.0, 1.5), lr=1e-3)
def beale(x: Tensor, y: Tensor) -> Tensor:
    """Flat plateaus and steep walls (use the log colour scale)."""
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y * y) ** 2 + (2.625 - x + x * y**3) ** 2


@register(domain=((-10.0, 10.0), (-10.0, 10.0)), minima=[(1.0, 3.0)], start=(-8.0, 8.0), lr=0.05)
def booth(x: Tensor, y: Tensor) -> Tensor:
    """A plain, mildly ill-conditioned quadratic bowl."""
    return (x + 2 * y - 7) ** 2 + (2 * x + y - 5) ** 2


@register(domain=((-5.0, 5.0), (-5.0, 5.0)), minima=[(0.0, 0.0)], start=(-4.0, 3.0), lr=0.4)
def quadratic(x: Tensor, y: Tensor, condition: float = 10.0, angle: float = 30.0) -> Tensor:
    """``u² + v²/condition`` in axes rotated by ``angle`` degrees: Hessian eigenvalues 2 and
    2/condition, so plain gradient descent is stable for lr < 1."""
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    u = c * x + s * y
    v = -s * x + c * y
    return u * u + v * v / condition


@register(domain=((-3.0, 3.0), (-3.0, 3.0)), minima=[(0.0, 0.0)], start=(-2.5, 0.05), lr=0.05,
          stationary="saddle point")  # fmt: skip
def saddle(x: Tensor, y: Tensor) -> Tensor:
    """``x² − y²``: no minimum; a path that starts near the ridge lingers, then escapes."""
    return x * x - y * y


@dataclass(frozen=True)
class TestFunction:
    """A registered test function with its options, e.g. ``TestFunction.of("quadratic",
    condition=100)``. Used wherever a ``LossSpec`` is (one panel, one path)."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    options: tuple[tuple[str, float], ...] = ()

    @classmethod
    def of(cls, name: str, **options: Any) -> TestFunction:
        return cls(name, tuple(sorted(options.items())))

    def __post_init__(self) -> None:
        name = str(self.name).lower()
        if name not in FUNCTIONS:
            raise unknown("function", self.name, FUNCTIONS)
        object.__setattr__(self, "name", name)
        known = FUNCTIONS[name].defaults
        options = []
        for key, value in dict(self.options).items():
            if key not in known:
                accepted = ", ".join(known) or "none"
                raise GdscopeError(f"{name} has no option {key!r} (options: {accepted})")
            options.append((key, check_finite(f"{name} {key}", value)))
        if name == "quadratic" and dict(options).get("condition", 1.0) <= 0:
            raise GdscopeError("quadratic condition must be > 0")
        object.__setattr__(self, "options", tuple(sorted(options)))

    @property
    def definition(self) -> FunctionDef:
        return FUNCTIONS[self.name]

    def kwargs(self) -> dict[str, float]:
        """Every option, defaults filled in."""
        return {**self.definition.defaults, **dict(self.options)}

    @property
    def title(self) -> str:
        given = ", ".join(f"{k}={v:g}" for k, v in self.options)
        return f"{self.name.capitalize()}({given})" if given else self.name.capitalize()

    labels = ("y", "x")
    """Axis names of the (vertical, horizontal) coordinates."""

    needs_data = False
    """A formula of its two coordinates only."""

    regression = None
    """No ``nn.Linear`` is fitted: the engines optimize the point itself."""

    @property
    def stationary(self) -> str:
        """What the known points are: ``minimum``, or ``saddle point``."""
        return self.definition.stationary

    @property
    def known_minima(self) -> tuple[Point, ...]:
        return tuple(self.minima)

    @property
    def customary_lr(self) -> float:
        return self.definition.lr

    def default_grid(self, size: int = ARTICLE_GRID.w_size) -> Grid:
        """The function's standard domain, with ``size`` samples per axis."""
        vertical, horizontal = self.domain
        return Grid(vertical, horizontal, size, size)

    def point_text(self, vertical: float, horizontal: float) -> str:
        return f"(x={horizontal:g}, y={vertical:g})"

    def to_dict(self) -> dict[str, Any]:
        """``{"function": name, **options}``, the record format since 0.1."""
        return {"function": self.name, **dict(self.options)}

    def at(self, data: Dataset | None, params: Tensor) -> Tensor:
        """``f`` at ``params[..., 0] = y``, ``params[..., 1] = x``; ``data`` is not used."""
        return self(params)

    def value(self, vertical: Tensor, horizontal: Tensor) -> Tensor:
        """``f(x=horizontal, y=vertical)``, broadcast over tensors."""
        return self.definition.formula(horizontal, vertical, **self.kwargs())

    def __call__(self, params: Tensor) -> Tensor:
        """``f`` at ``params[..., 0] = y``, ``params[..., 1] = x``, as a model's loss."""
        return self.value(params[..., 0], params[..., 1])

    @property
    def minima(self) -> list[Point]:
        """Known minima (or the saddle point) as ``(vertical, horizontal)`` = ``(y, x)``."""
        return [(float(y), float(x)) for x, y in self.definition.minima(**self.kwargs())]

    @property
    def start(self) -> Point:
        """The customary start, as ``(y, x)``."""
        x, y = self.definition.start
        return (float(y), float(x))

    @property
    def domain(self) -> tuple[Point, Point]:
        """``(y-range, x-range)``."""
        x_range, y_range = self.definition.domain
        return (tuple(y_range), tuple(x_range))  # type: ignore[return-value]

    def same_function_as(self, other: object) -> bool:
        return self == other
