"""The article's toy data: noisy points on a parabola, generated exactly as the article does."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gdscope.errors import GdscopeError, check_finite
from gdscope.files import check_unchanged, content_sha256

__all__ = ["ARTICLE_SEED", "CsvData", "DataSpec", "Dataset", "load_csv", "make_data", "require"]

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
    spec: DataSpec | CsvData | None = None

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


@dataclass(frozen=True)
class CsvData:
    """Points read from a CSV file with columns ``x`` and ``y``; ``sha256`` pins its content, so
    a figure made from it can be re-made only from the very same points."""

    path: str
    sha256: str | None = None

    @classmethod
    def of(cls, path: str | Path) -> CsvData:
        file = Path(path)
        return cls(str(file), content_sha256(file))


def load_csv(path: str | Path, *, sha256: str | None = None) -> Dataset:
    """Read ``x,y`` points (a header row naming both columns; other columns are ignored).

    Errors name the file, row and column: missing columns, non-numeric or non-finite values,
    fewer than 2 rows; with ``sha256``, a file whose content changed.
    """
    file = Path(path)
    check_unchanged(file, sha256)
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in ("x", "y") if c not in columns]
            if missing:
                found = ", ".join(columns) if columns else "no header"
                raise GdscopeError(
                    f"{file}: missing column(s) {', '.join(missing)} (found: {found})"
                )
            reader.fieldnames = columns
            xs: list[float] = []
            ys: list[float] = []
            for row_number, row in enumerate(reader, start=2):
                for name, into in (("x", xs), ("y", ys)):
                    text = (row.get(name) or "").strip()
                    try:
                        value = float(text)
                    except ValueError:
                        raise GdscopeError(
                            f"{file}, line {row_number}: column {name} is not a number: {text!r}"
                        ) from None
                    if not math.isfinite(value):
                        raise GdscopeError(
                            f"{file}, line {row_number}: column {name} is not finite: {text!r}"
                        )
                    into.append(value)
    except OSError as error:
        raise GdscopeError(f"cannot read {file}: {error.strerror or error}") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise GdscopeError(f"{file} is not a readable CSV file ({error})") from None
    if len(xs) < 2:
        raise GdscopeError(f"{file}: need at least 2 rows of points, found {len(xs)}")
    if len(xs) > MAX_POINTS:
        raise GdscopeError(f"{file}: at most {MAX_POINTS} points, found {len(xs)}")
    return Dataset(np.array(xs, dtype=np.float32), np.array(ys, dtype=np.float32), None)


def make_data(spec: DataSpec | CsvData | None = None) -> Dataset:
    """Generate the points bit for bit as the article does.

    The article seeds NumPy's legacy global generator and draws ``x`` then the noise; a private
    ``RandomState`` with the same seed yields the same stream without touching global state.
    ``x`` is cast to float32 *before* ``y`` is computed from it, as in the article.
    """
    spec = spec or DataSpec()
    if isinstance(spec, CsvData):
        return load_csv(spec.path, sha256=spec.sha256)
    rng = np.random.RandomState(spec.seed)
    x = np.array(rng.randn(spec.n), dtype=np.float32)
    y = np.array(
        spec.quadratic * x**2 + spec.linear * x + spec.constant + spec.noise * rng.randn(spec.n),
        dtype=np.float32,
    )
    return Dataset(x, y, spec)


def require(data: Dataset | None, title: str) -> Dataset:
    """``data``, or a clear error naming the regression loss ``title`` that needs it."""
    if data is None:
        raise GdscopeError(f"{title} is a regression loss and needs data")
    return data
