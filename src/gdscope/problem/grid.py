"""The (weight, bias) plane the article looks at: the sampling ``Grid``, its grid and its start.

These are the problem's base facts: the maps, the objectives' defaults, the engines and the
renderers all take them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gdscope.errors import GdscopeError, check_finite

__all__ = [
    "ARTICLE_EPOCHS",
    "ARTICLE_GRID",
    "ARTICLE_LR",
    "ARTICLE_START",
    "MAX_GRID_SIZE",
    "Grid",
    "Point",
]

Point = tuple[float, float]
"""``(vertical, horizontal)``: ``(weight, bias)``, or a test function's ``(y, x)``."""

MAX_GRID_SIZE = 4001

ARTICLE_START: Point = (6.0, -3.0)
"""Where the article's ``nn.Linear(1, 1)`` starts: weight 6, bias −3."""

ARTICLE_LR = 0.1
"""The article's SGD learning rate (torch's own default is 1e-3)."""

ARTICLE_EPOCHS = 100
"""How long the article trains: 100 full-batch epochs (every run's default length)."""


@dataclass(frozen=True)
class Grid:
    """``w_size`` weights evenly spaced over ``w_range`` (ends included), likewise for biases."""

    w_range: tuple[float, float] = (-5.0, 8.0)
    b_range: tuple[float, float] = (-5.0, 8.0)
    w_size: int = 101
    b_size: int = 101

    def __post_init__(self) -> None:
        for axis in ("w", "b"):
            lo, hi = getattr(self, f"{axis}_range")
            lo = check_finite(f"{axis}-range low", lo)
            hi = check_finite(f"{axis}-range high", hi)
            if not lo < hi:
                raise GdscopeError(f"{axis}-range must have low < high, got ({lo:g}, {hi:g})")
            object.__setattr__(self, f"{axis}_range", (lo, hi))
            size = getattr(self, f"{axis}_size")
            if isinstance(size, bool) or not isinstance(size, int):
                raise GdscopeError(f"grid size must be an integer, got {size!r}")
            if not 2 <= size <= MAX_GRID_SIZE:
                raise GdscopeError(f"grid size must be in [2, {MAX_GRID_SIZE}], got {size}")

    @classmethod
    def square(cls, lo: float = -5.0, hi: float = 8.0, size: int = 101) -> Grid:
        return cls((lo, hi), (lo, hi), size, size)

    @staticmethod
    def _axis(lo: float, hi: float, size: int) -> np.ndarray:
        # The article's formula, lo + span * i / (size - 1), in float64.
        return lo + (hi - lo) * np.arange(size, dtype=np.float64) / (size - 1)

    @property
    def weights(self) -> np.ndarray:
        return self._axis(*self.w_range, self.w_size)

    @property
    def biases(self) -> np.ndarray:
        return self._axis(*self.b_range, self.b_size)

    @property
    def cell(self) -> tuple[float, float]:
        """Spacing ``(dw, db)`` between neighbouring samples."""
        (wl, wh), (bl, bh) = self.w_range, self.b_range
        return (wh - wl) / (self.w_size - 1), (bh - bl) / (self.b_size - 1)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """``(left, right, bottom, top)`` for ``imshow`` with samples at pixel centres."""
        dw, db = self.cell
        (wl, wh), (bl, bh) = self.w_range, self.b_range
        return bl - db / 2, bh + db / 2, wl - dw / 2, wh + dw / 2

    def contains(self, w: float, b: float) -> bool:
        left, right, bottom, top = self.extent
        return left <= b <= right and bottom <= w <= top


ARTICLE_GRID = Grid()
