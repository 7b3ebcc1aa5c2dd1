"""Loss landscapes: a loss sampled on a grid of (weight, bias), computed as broadcast tensors."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gdscope.errors import GdscopeError, check_finite
from gdscope.problem.data import Dataset, require
from gdscope.problem.grid import ARTICLE_GRID, MAX_GRID_SIZE, Grid
from gdscope.problem.losses import LossSpec
from gdscope.problem.objective import Objective

# Upper bound on the elements of one (rows, columns, points) prediction block; keeps memory flat.
_BLOCK_ELEMENTS = 1 << 22
MAX_COMPASS_MOVES = 10_000
"""The most moves ``find_minimum``'s compass search makes (the article's losses
need 48 to 172)."""

__all__ = [
    "ARTICLE_GRID",
    "MAX_COMPASS_MOVES",
    "MAX_GRID_SIZE",
    "Grid",
    "Landscape",
    "find_minimum",
    "gradient_field",
    "loss_and_gradient",
    "loss_map",
    "loss_map_pointwise",
]


@dataclass(frozen=True, eq=False)
class Landscape:
    """``values[i, j]`` is the objective at ``(grid.weights[i], grid.biases[j])``.

    With ``weight_decay > 0`` the values are SGD's *effective* objective,
    ``loss + weight_decay / 2 · (w² + b²)``, which is what SGD with weight decay minimizes.
    """

    grid: Grid
    values: Tensor
    loss: Objective
    weight_decay: float = 0.0

    @property
    def effective(self) -> bool:
        return self.weight_decay > 0

    @property
    def any_finite(self) -> bool:
        """Whether some value is finite (else the map has no minimum and no scale)."""
        return bool(torch.isfinite(self.values).any())

    def argmin(self) -> tuple[float, float, float]:
        """``(weight, bias, value)`` of the smallest finite grid value (``torch.argmin`` would
        pick a NaN: an overflowed point is no minimum); refused when no value is finite."""
        if not self.any_finite:
            raise GdscopeError("the map has no finite value: it has no minimum")
        values = self.values.detach()
        flat = int(torch.argmin(torch.where(torch.isfinite(values), values, torch.inf)))
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
    loss: Objective | None = None,
    grid: Grid = ARTICLE_GRID,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Landscape:
    """The objective at every grid point in one broadcast computation (blocked over weight rows).

    The points are formed in ``dtype`` from the float64 grid and handed to ``Objective.at``: for
    a regression loss, predictions ``w·x + b`` in ``dtype``, exactly as the article's per-point
    loop does with Python floats, reduced with the ``torch.nn.functional`` loss; a test function
    needs no data, its formula is evaluated on the grid directly.
    """
    loss = loss or LossSpec()
    w = torch.tensor(grid.weights, dtype=dtype, device=device)
    b = torch.tensor(grid.biases, dtype=dtype, device=device)
    points = torch.stack(torch.broadcast_tensors(w[:, None], b[None, :]), dim=-1)
    per_point = len(data) if data is not None and loss.needs_data else 1
    rows = max(1, _BLOCK_ELEMENTS // (grid.b_size * per_point))
    blocks = [loss.at(data, points[start : start + rows]) for start in range(0, grid.w_size, rows)]
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


def loss_and_gradient(
    data: Dataset | None,
    loss: Objective,
    w: float,
    b: float,
    *,
    dtype: torch.dtype = torch.float64,
) -> tuple[float, tuple[float, float]]:
    """The objective at ``(w, b)`` and its gradient ``(d/dw, d/db)``, by autograd."""
    params = torch.tensor([w, b], dtype=dtype, requires_grad=True)
    value = loss.at(data, params)
    (grad,) = torch.autograd.grad(value, params)
    return float(value.detach()), (float(grad[0]), float(grad[1]))


def gradient_field(
    data: Dataset | None,
    loss: Objective,
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
    values = loss.at(data, points)
    values = values + 0.5 * weight_decay * (points * points).sum(-1)
    (grads,) = torch.autograd.grad(values.sum(), points)
    return points.detach().numpy(), grads.numpy(), values.detach().numpy()


def find_minimum(
    data: Dataset | None,
    loss: Objective | None = None,
    *,
    weight_decay: float = 0.0,
    max_moves: int = MAX_COMPASS_MOVES,
) -> tuple[float, float, float]:
    """``(w, b, value)`` minimizing ``loss + weight_decay/2·(w² + b²)``, in float64.

    MSE has a closed form (ridge-regularized least squares). The other losses are convex but
    not smooth everywhere: L-BFGS from the least-squares point, then a compass search that
    halves its step down to 1e-12 polishes kinks such as L1's. The search makes at most
    ``max_moves`` moves; one stopped there returns the best point found, with a warning.
    """
    loss = (loss or LossSpec()).regression
    if loss is None:
        raise GdscopeError("a test function's minima are known: use its .minima")
    # A negative decay makes the objective unbounded below: no minimum to find.
    if check_finite("weight_decay", weight_decay) < 0:
        raise GdscopeError(f"weight_decay must be >= 0, got {weight_decay:g}")
    if isinstance(max_moves, bool) or not isinstance(max_moves, int) or max_moves < 1:
        raise GdscopeError(f"max_moves must be a positive integer, got {max_moves!r}")
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
        for _ in range(max_moves):
            if step <= 1e-12:
                break
            trial = best + step * moves
            values = torch.stack([objective(t) for t in trial])
            k = int(torch.argmin(values))
            if float(values[k]) < value:
                best, value = trial[k], float(values[k])
            else:
                step /= 2
        else:
            if step > 1e-12:
                warnings.warn(
                    f"find_minimum: the compass search stopped after {max_moves} moves with its "
                    f"step at {step:.3g}, not 1e-12; the point is the best it found",
                    UserWarning,
                    stacklevel=2,
                )
        point = best.numpy()
    value = float(objective(torch.tensor(point)))
    return float(point[0]), float(point[1]), value
