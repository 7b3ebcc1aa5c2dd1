"""Loss landscapes: a loss sampled on a grid of (weight, bias), computed as broadcast tensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gdscope.errors import GdscopeError, check_finite
from gdscope.problem.data import Dataset, require
from gdscope.problem.losses import LossSpec
from gdscope.problem.testfunctions import TestFunction

__all__ = [
    "ARTICLE_GRID",
    "MAX_GRID_SIZE",
    "Grid",
    "Landscape",
    "find_minimum",
    "gradient_field",
    "loss_and_gradient",
    "loss_map",
    "loss_map_pointwise",
]

MAX_GRID_SIZE = 4001
# Upper bound on the elements of one (rows, columns, points) prediction block; keeps memory flat.
_BLOCK_ELEMENTS = 1 << 22


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


@dataclass(frozen=True, eq=False)
class Landscape:
    """``values[i, j]`` is the objective at ``(grid.weights[i], grid.biases[j])``.

    With ``weight_decay > 0`` the values are SGD's *effective* objective,
    ``loss + weight_decay / 2 · (w² + b²)``, which is what SGD with weight decay minimizes.
    """

    grid: Grid
    values: Tensor
    loss: LossSpec | TestFunction
    weight_decay: float = 0.0

    @property
    def effective(self) -> bool:
        return self.weight_decay > 0

    def argmin(self) -> tuple[float, float, float]:
        """``(weight, bias, value)`` of the smallest grid value."""
        flat = int(torch.argmin(self.values))
        i, j = divmod(flat, self.grid.b_size)
        return float(self.grid.weights[i]), float(self.grid.biases[j]), float(self.values[i, j])

    def with_weight_decay(self, weight_decay: float) -> Landscape:
        """The effective objective for SGD with this ``weight_decay`` (from a plain-loss map)."""
        if self.effective:
            raise ValueError("this landscape already includes weight decay")
        if weight_decay == 0:
            return self
        w = torch.as_tensor(self.grid.weights, dtype=self.values.dtype, device=self.values.device)
        b = torch.as_tensor(self.grid.biases, dtype=self.values.dtype, device=self.values.device)
        penalty = 0.5 * weight_decay * (w[:, None] ** 2 + b[None, :] ** 2)
        return Landscape(self.grid, self.values + penalty, self.loss, weight_decay)


def loss_map(
    data: Dataset | None,
    loss: LossSpec | TestFunction | None = None,
    grid: Grid = ARTICLE_GRID,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Landscape:
    """The mean loss at every grid point in one broadcast computation (blocked over weight rows).

    Predictions ``w·x + b`` are formed in ``dtype`` from the float64 grid, exactly as the article's
    per-point loop does with Python floats, then reduced with the ``torch.nn.functional`` loss.
    A ``TestFunction`` needs no data: its formula is evaluated on the grid directly.
    """
    loss = loss or LossSpec()
    if isinstance(loss, TestFunction):
        w = torch.tensor(grid.weights, dtype=dtype, device=device)
        b = torch.tensor(grid.biases, dtype=dtype, device=device)
        return Landscape(grid, loss.value(w[:, None], b[None, :]), loss)
    data = require(data, loss.title)
    elementwise = loss.elementwise()
    x = torch.tensor(data.x, dtype=dtype, device=device)
    y = torch.tensor(data.y, dtype=dtype, device=device)
    w = torch.tensor(grid.weights, dtype=dtype, device=device)
    b = torch.tensor(grid.biases, dtype=dtype, device=device)
    rows = max(1, _BLOCK_ELEMENTS // (grid.b_size * len(x)))
    blocks = []
    for start in range(0, grid.w_size, rows):
        w_block = w[start : start + rows, None, None]
        prediction = x * w_block + b[None, :, None]
        blocks.append(elementwise(prediction, y.expand_as(prediction)).mean(dim=-1))
    return Landscape(grid, torch.cat(blocks), loss)


def loss_map_pointwise(
    data: Dataset, loss: LossSpec | None = None, grid: Grid = ARTICLE_GRID
) -> Landscape:
    """The article's slow method, one ``nn`` loss call per grid point (reference for tests)."""
    loss = loss or LossSpec()
    loss_fn = loss.module()
    x = torch.from_numpy(data.x.copy())
    y = torch.from_numpy(data.y.copy())
    values = torch.empty(grid.w_size, grid.b_size)
    for i, w in enumerate(grid.weights.tolist()):
        for j, b in enumerate(grid.biases.tolist()):
            values[i, j] = loss_fn(x * w + b, y).item()
    return Landscape(grid, values, loss)


def _objective_at(data: Dataset | None, loss: LossSpec | TestFunction, params: Tensor) -> Tensor:
    """The objective at ``params[..., 0]`` (weight / y), ``params[..., 1]`` (bias / x)."""
    if isinstance(loss, TestFunction):
        return loss(params)
    data = require(data, loss.title)
    x = torch.tensor(data.x, dtype=params.dtype)
    y = torch.tensor(data.y, dtype=params.dtype)
    prediction = x * params[..., :1] + params[..., 1:]
    return loss.elementwise()(prediction, y.expand_as(prediction)).mean(-1)


def loss_and_gradient(
    data: Dataset | None,
    loss: LossSpec | TestFunction,
    w: float,
    b: float,
    *,
    dtype: torch.dtype = torch.float64,
) -> tuple[float, tuple[float, float]]:
    """The objective at ``(w, b)`` and its gradient ``(d/dw, d/db)``, by autograd."""
    params = torch.tensor([w, b], dtype=dtype, requires_grad=True)
    value = _objective_at(data, loss, params)
    (grad,) = torch.autograd.grad(value, params)
    return float(value.detach()), (float(grad[0]), float(grad[1]))


def gradient_field(
    data: Dataset | None,
    loss: LossSpec | TestFunction,
    grid: Grid,
    *,
    size: int = 15,
    weight_decay: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(points, gradients, values)`` on a coarse ``size``×``size`` grid spanning ``grid``.

    ``points[i, j] = (w, b)``; ``gradients`` is the gradient of the objective plus
    ``weight_decay/2·|p|²`` there (autograd, float64), the direction a gradient step goes against.
    """
    if not 2 <= size <= 200:
        raise GdscopeError(f"gradient field size must be in [2, 200], got {size}")
    coarse = Grid(grid.w_range, grid.b_range, size, size)
    w, b = np.meshgrid(coarse.weights, coarse.biases, indexing="ij")
    points = torch.tensor(np.stack([w, b], axis=-1), requires_grad=True)
    values = _objective_at(data, loss, points)
    values = values + 0.5 * weight_decay * (points * points).sum(-1)
    (grads,) = torch.autograd.grad(values.sum(), points)
    return points.detach().numpy(), grads.numpy(), values.detach().numpy()


def find_minimum(
    data: Dataset | None,
    loss: LossSpec | TestFunction | None = None,
    *,
    weight_decay: float = 0.0,
) -> tuple[float, float, float]:
    """``(w, b, value)`` minimizing ``loss + weight_decay/2·(w² + b²)``, in float64.

    MSE has a closed form (ridge-regularized least squares). The other losses are convex but
    not smooth everywhere: L-BFGS from the least-squares point, then a compass search that
    halves its step down to 1e-12 polishes kinks such as L1's.
    """
    loss = loss or LossSpec()
    if isinstance(loss, TestFunction):
        raise GdscopeError("a test function's minima are known: use its .minima")
    data = require(data, loss.title)
    x = data.x.astype(np.float64)
    y = data.y.astype(np.float64)
    n = len(x)
    design = np.stack([x, np.ones(n)], axis=1)
    normal = 2.0 / n * design.T @ design + weight_decay * np.eye(2)
    point = np.linalg.solve(normal, 2.0 / n * design.T @ y)

    xt, yt = torch.tensor(x), torch.tensor(y)
    module = loss.module()

    def objective(p: Tensor) -> Tensor:
        return module(xt * p[0] + p[1], yt) + 0.5 * weight_decay * (p * p).sum()

    if loss.name != "mse":
        params = torch.tensor(point, requires_grad=True)
        opt = torch.optim.LBFGS([params], max_iter=200, line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            opt.zero_grad()
            value = objective(params)
            value.backward()
            return value

        opt.step(closure)
        best = params.detach().clone()
        value = float(objective(best))
        step = 0.1
        moves = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=best.dtype)
        while step > 1e-12:
            trial = best + step * moves
            values = torch.stack([objective(t) for t in trial])
            k = int(torch.argmin(values))
            if float(values[k]) < value:
                best, value = trial[k], float(values[k])
            else:
                step /= 2
        point = best.numpy()
    value = float(objective(torch.tensor(point)))
    return float(point[0]), float(point[1]), value
