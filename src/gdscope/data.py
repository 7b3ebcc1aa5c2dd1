"""The article's toy data: noisy points on a parabola, generated exactly as the article does."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import GdscopeError, check_finite

__all__ = ["ARTICLE_SEED", "DataSpec", "Dataset", "make_data"]

ARTICLE_SEED = 20240215
MAX_POINTS = 1_000_000


@dataclass(frozen=True)
class DataSpec:
    """How to generate ``y = quadratic·x² + linear·x + constant + noise·ε`` at ``n`` points."""

    seed: int = ARTICLE_SEED
    n: int = 50
    quadratic: float = 0.75
    linear: float = 1.0
    constant: float = 2.0
    noise: float = 0.3

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or not 1 <= self.n <= MAX_POINTS:
            raise GdscopeError(f"n must be an integer in [1, {MAX_POINTS}], got {self.n!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise GdscopeError(f"seed must be an integer, got {self.seed!r}")
        if not 0 <= self.seed < 2**32:
            raise GdscopeError(f"seed must be in [0, 2**32), got {self.seed}")
        for name in ("quadratic", "linear", "constant", "noise"):
            object.__setattr__(self, name, check_finite(name, getattr(self, name)))
        if self.noise < 0:
            raise GdscopeError(f"noise must be >= 0, got {self.noise}")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Points ``x``, ``y`` (read-only float32 arrays of equal length) and their spec."""

    x: np.ndarray
    y: np.ndarray
    spec: DataSpec | None = None

    def __post_init__(self) -> None:
        x = np.array(self.x, dtype=np.float32)
        y = np.array(self.y, dtype=np.float32)
        if x.ndim != 1 or x.shape != y.shape:
            raise GdscopeError(f"x and y must be 1-D of equal length, got {x.shape} and {y.shape}")
        if len(x) < 1:
            raise GdscopeError("the data set has no points")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise GdscopeError("the data contains non-finite values")
        x.flags.writeable = False
        y.flags.writeable = False
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    def __len__(self) -> int:
        return len(self.x)


def make_data(spec: DataSpec | None = None) -> Dataset:
    """Generate the points bit for bit as the article does.

    The article seeds NumPy's legacy global generator and draws ``x`` then the noise; a private
    ``RandomState`` with the same seed yields the same stream without touching global state.
    ``x`` is cast to float32 *before* ``y`` is computed from it, as in the article.
    """
    spec = spec or DataSpec()
    rng = np.random.RandomState(spec.seed)
    x = np.array(rng.randn(spec.n), dtype=np.float32)
    y = np.array(
        spec.quadratic * x**2 + spec.linear * x + spec.constant + spec.noise * rng.randn(spec.n),
        dtype=np.float32,
    )
    return Dataset(x, y, spec)
