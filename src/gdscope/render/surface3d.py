"""The landscape as a 3D surface, with the optimizer's path lifted onto it (matplotlib mplot3d)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from mpl_toolkits.mplot3d.art3d import Line3D, Poly3DCollection

from gdscope.engines.trajectory import Trajectory
from gdscope.problem.maps import Landscape
from gdscope.render.panels import CMAP, _norm, visible_path

__all__ = ["SurfaceArtists", "lifted_path", "plot_surface3d"]

# A surface of more than this many cells per side draws slowly and looks no better.
_MAX_CELLS = 80


@dataclass(frozen=True)
class SurfaceArtists:
    surface: Poly3DCollection
    path: Line3D | None
    start: Line3D | None
    end: Line3D | None


def _height(values: np.ndarray, log: bool) -> np.ndarray:
    if not log:
        return values
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log10(values), np.nan)


def lifted_path(
    trajectory: Trajectory, landscape: Landscape, *, log: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The path's ``(weights, biases, heights)`` on ``landscape``'s surface: each point at its
    recorded loss (plus the weight-decay penalty on the effective objective), as
    ``plot_surface3d`` draws it; no height where the path is off the map."""
    pw, pb, _ = visible_path(trajectory, landscape.grid)
    losses = trajectory.losses[: len(pw)].copy()
    if landscape.effective:
        losses += 0.5 * landscape.weight_decay * (pw**2 + pb**2)
    (wl, wh), (bl, bh) = landscape.grid.w_range, landscape.grid.b_range
    inside = (pw >= wl) & (pw <= wh) & (pb >= bl) & (pb <= bh)
    return pw, pb, _height(np.where(inside, losses, np.nan), log)


def plot_surface3d(
    landscape: Landscape,
    trajectory: Trajectory | None = None,
    *,
    ax: Axes,
    log: bool = False,
    cmap: str = CMAP,
    **kwargs: Any,
) -> SurfaceArtists:
    """The map as a surface (height = value, or log10 of it with ``log``) on a 3D ``ax``, and the
    path drawn on it: each point at the height of its recorded loss (plus the weight-decay
    penalty when the landscape is the effective objective), so it lies exactly on the surface."""
    values = landscape.values.detach().cpu().double().numpy()
    heights = _height(np.where(np.isfinite(values), values, np.nan), log)
    b, w = np.meshgrid(landscape.grid.biases, landscape.grid.weights)
    stride = max(1, -(-max(values.shape) // _MAX_CELLS))
    norm = _norm(values, log)
    if isinstance(norm, LogNorm):
        norm = _norm(heights, False)
    surface = ax.plot_surface(  # type: ignore[attr-defined]
        b, w, heights, cmap=cmap, norm=norm, rstride=stride, cstride=stride, linewidth=0,
        antialiased=False, alpha=0.85, **kwargs,
    )  # fmt: skip
    vertical, horizontal = landscape.loss.labels
    ax.set_xlabel(horizontal)
    ax.set_ylabel(vertical)
    name = landscape.loss.title
    ax.set_zlabel(f"log10 {name}" if log else name)  # type: ignore[attr-defined]
    path = start = end = None
    if trajectory is not None:
        pw, pb, z = lifted_path(trajectory, landscape, log=log)
        (path,) = ax.plot(pb, pw, z, color="red", marker="+", lw=1.5, zorder=10)
        (start,) = ax.plot(pb[:1], pw[:1], z[:1], "o", color="#1a9641", zorder=11)
        (end,) = ax.plot(pb[-1:], pw[-1:], z[-1:], "*", color="#d7191c", ms=12, zorder=11)
    ax.set_title(name)
    return SurfaceArtists(surface, path, start, end)
