"""Overlays that look behind the step: drawn on a map that ``plots`` already made.

All are axes-level renderers over precomputed results (a ``gradient_field``, a ``Trajectory``'s
steps, momentum buffers and learning rates, ``batch_gradients``); they return what they drew.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.quiver import Quiver

from gdscope.engines.trajectory import Trajectory
from gdscope.problem.maps import Grid

__all__ = [
    "OVERLAYS",
    "plot_batch_spread",
    "plot_gradient_field",
    "plot_lr",
    "plot_momentum",
    "plot_steps",
    "thin",
]

OVERLAYS = ("gradient", "steps", "momentum", "lr", "batches")
"""Names accepted by ``--overlay``: the gradient field, each actual step, the momentum buffer,
the learning rate per step, and the spread of per-batch gradients (mini-batch runs)."""

MAX_ARROWS = 60


def thin(count: int, most: int = MAX_ARROWS) -> int:
    """Stride that keeps at most ``most`` of ``count`` arrows."""
    return max(1, -(-count // most))


def _quiver(ax: Axes, origins: np.ndarray, vectors: np.ndarray, **style: Any) -> Quiver:
    """Arrows in data units: ``vectors[:, 0]`` vertical (weight), ``[:, 1]`` horizontal."""
    return ax.quiver(
        origins[:, 1], origins[:, 0], vectors[:, 1], vectors[:, 0],
        angles="xy", scale_units="xy", scale=1.0, **style,
    )  # fmt: skip


def plot_gradient_field(
    points: np.ndarray, gradients: np.ndarray, *, ax: Axes, grid: Grid, **kwargs: Any
) -> Quiver:
    """Arrows along −∇ at each point of a coarse ``gradient_field``, all of the same length (a
    cell's 0.8): the direction a gradient step goes; the map's colours already show the size."""
    origins = points.reshape(-1, 2)
    vectors = -gradients.reshape(-1, 2)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    rows, cols = points.shape[:2]
    cell = min((grid.w_range[1] - grid.w_range[0]) / max(1, rows - 1),
               (grid.b_range[1] - grid.b_range[0]) / max(1, cols - 1))  # fmt: skip
    safe = np.where((norms > 0) & np.isfinite(norms), norms, np.inf)
    unit = np.where(np.isfinite(vectors), vectors / safe, 0.0) * 0.8 * cell
    style = {"color": "white", "alpha": 0.75, "width": 0.004, "zorder": 3, "label": "−gradient"}
    return _quiver(ax, origins, unit, **{**style, **kwargs})


def _finite_steps(trajectory: Trajectory) -> tuple[np.ndarray, np.ndarray]:
    path = trajectory.path[: trajectory.n_finite]
    return path[:-1], np.diff(path, axis=0)


def plot_steps(
    trajectory: Trajectory, *, ax: Axes, every: int | None = None, **kwargs: Any
) -> Quiver:
    """Each actual step as an arrow from point ``i`` to point ``i + 1``."""
    origins, moves = _finite_steps(trajectory)
    stride = every or thin(len(moves))
    style = {"color": "#ffd700", "width": 0.005, "zorder": 6, "label": "actual step"}
    return _quiver(ax, origins[::stride], moves[::stride], **{**style, **kwargs})


def plot_momentum(
    trajectory: Trajectory, *, ax: Axes, every: int | None = None, **kwargs: Any
) -> Quiver | None:
    """The optimizer's momentum buffer after each step, drawn as ``−lr·buffer`` from the point
    where that step started (beside the step it produced); ``None`` if the optimizer keeps none."""
    origins, _ = _finite_steps(trajectory)
    buffers = trajectory.buffers[1 : len(origins) + 1]
    lrs = trajectory.lrs[: len(origins)]
    vectors = -lrs[:, None] * buffers
    keep = np.isfinite(vectors).all(axis=1)
    if not keep.any():
        return None
    stride = every or thin(len(origins))
    chosen = np.zeros(len(origins), dtype=bool)
    chosen[::stride] = True
    chosen &= keep
    style = {"color": "#00e5ff", "width": 0.004, "zorder": 6, "label": "−lr × momentum buffer"}
    return _quiver(ax, origins[chosen], vectors[chosen], **{**style, **kwargs})


def plot_batch_spread(
    trajectory: Trajectory,
    points: list[int],
    gradients: np.ndarray,
    *,
    ax: Axes,
    **kwargs: Any,
) -> Quiver:
    """At each chosen point, one faint arrow ``−lr·g`` per mini-batch gradient (from
    ``batch_gradients``): the fan's width is the noise of stochastic gradient descent."""
    origins, vectors = [], []
    for row, i in enumerate(points):
        lr = trajectory.lrs[i] if np.isfinite(trajectory.lrs[i]) else trajectory.lrs[0]
        for g in gradients[row]:
            if np.isfinite(g).all():
                origins.append(trajectory.path[i])
                vectors.append(-lr * g)
    style = {"color": "#ff66ff", "alpha": 0.55, "width": 0.003, "zorder": 5,
             "label": "−lr × per-batch gradient"}  # fmt: skip
    return _quiver(ax, np.array(origins).reshape(-1, 2), np.array(vectors).reshape(-1, 2),
                   **{**style, **kwargs})  # fmt: skip


def plot_lr(trajectory: Trajectory, *, ax: Axes, inset: bool = True) -> Line2D:
    """The learning rate of every step: in a small inset of ``ax`` (or on ``ax`` itself)."""
    target = ax.inset_axes((0.6, 0.04, 0.37, 0.22)) if inset else ax
    steps = np.arange(trajectory.steps)
    (line,) = target.plot(steps, trajectory.lrs[:-1], color="black", lw=1.2, label="lr")
    target.set_title("lr per step", fontsize=7, pad=2)
    target.tick_params(labelsize=6)
    if inset:
        target.set_facecolor((1, 1, 1, 0.8))
    return line
