"""Mode connectivity drawn (``nets.curves``): the loss along the straight line and along the
trained curve, and the plane through the two networks and the bend with both paths on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from gdscope.nets.curves import ConnectResult
from gdscope.render.networks import surface_landscape
from gdscope.render.panels import LandscapeArtists, plot_landscape

__all__ = [
    "CURVE_STYLE",
    "LINE_STYLE",
    "CurveArtists",
    "PlaneArtists",
    "connect_summary",
    "plane_labels",
    "plot_connect_plane",
    "plot_paths",
]

LINE_STYLE: dict[str, Any] = {"color": "#d7191c", "linestyle": "--", "linewidth": 1.6}
"""The straight line, in both panels."""
CURVE_STYLE: dict[str, Any] = {"color": "black", "linestyle": "-", "linewidth": 1.8}
"""The trained Bézier curve, in both panels."""


def plane_labels(names: tuple[str, str]) -> tuple[str, str]:
    """The plane's (vertical, horizontal) axes, both distances between weights: along the
    line from the first network to the second, and across it towards the bend."""
    return "across it, towards the bend", f"along the line from {names[0]} to {names[1]}"


@dataclass(frozen=True)
class CurveArtists:
    """What ``plot_paths`` drew: the line's loss and the curve's (None where not measured)."""

    line: Line2D
    curve: Line2D


@dataclass(frozen=True)
class PlaneArtists:
    """What ``plot_connect_plane`` drew: the map (``plot_landscape``'s), the two paths, and
    the three networks' markers."""

    landscape: LandscapeArtists
    line: Line2D
    curve: Line2D
    corners: PathCollection


def _label(name: str, highest: float) -> str:
    return f"{name} (highest loss {highest:.3g})" if np.isfinite(highest) else name


def _log_axis(ax: Axes, values: np.ndarray) -> None:
    """A logarithmic loss axis labelled in plain numbers (0.01, not 10⁻²); over less than a
    two decades also at 2× and 5× each power of ten (matplotlib's own labels there
    crowd: 6×10⁻¹, 4×10⁻¹, …)."""
    ax.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:.3g}")
    ax.yaxis.set_major_formatter(plain)
    if np.log10(values.max() / values.min()) < 2:
        ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        ax.yaxis.set_minor_formatter(plain)
    else:
        ax.yaxis.set_minor_formatter(NullFormatter())


def plot_paths(result: ConnectResult, *, ax: Axes, log: bool = True,
               names: tuple[str, str] = ("A", "B")) -> CurveArtists:  # fmt: skip
    """The loss against ``t`` along the straight line and along the curve, each labelled with
    its highest loss; ``log``: a logarithmic loss axis (where every loss is positive);
    ``names``: the two networks, marked at t = 0 and t = 1."""
    (line,) = ax.plot(result.ts, result.line_loss, label=_label("straight line", result.line_max),
                      **LINE_STYLE)  # fmt: skip
    (curve,) = ax.plot(result.ts, result.curve_loss,
                       label=_label("Bézier curve", result.curve_max), **CURVE_STYLE)  # fmt: skip
    measured = np.concatenate([result.line_loss, result.curve_loss])
    measured = measured[np.isfinite(measured)]
    if log and measured.size and (measured > 0).all():
        _log_axis(ax, measured)
    ax.set_xlim(0, 1)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0\n" + names[0], "0.25", "0.5", "0.75",
                                            "1\n" + names[1]])  # fmt: skip
    ax.set_xlabel("t along the path")
    ax.set_ylabel("loss")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower center")
    return CurveArtists(line, curve)


def plot_connect_plane(result: ConnectResult, *, ax: Axes, log: bool = True,
                       names: tuple[str, str] = ("A", "B")) -> PlaneArtists:  # fmt: skip
    """The loss on the plane through the two networks and the bend (contours, the paths'
    colours), the straight line and the curve on it, the three marked. Both axes are
    distances between weights, drawn to the same scale."""
    landscape = surface_landscape(result.plane, labels=plane_labels(names))
    drawn = plot_landscape(landscape, ax=ax, log=log, kind="contour", mark_minimum=False)
    a, b = result.corners[:2]
    (line,) = ax.plot([a[0], b[0]], [a[1], b[1]], label="straight line", **LINE_STYLE)
    xy = result.curve_xy(np.linspace(0, 1, 101))
    (curve,) = ax.plot(xy[:, 0], xy[:, 1], label="Bézier curve", **CURVE_STYLE)
    corners = ax.scatter(result.corners[:, 0], result.corners[:, 1], s=36, c="white",
                         edgecolors="black", zorder=5)  # fmt: skip
    for (x, y), text in zip(result.corners, (*names, "bend θ"), strict=True):
        ax.annotate(text, (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                          "alpha": 0.8})  # fmt: skip
    ax.legend(fontsize=7, loc="upper right", framealpha=0.8)
    return PlaneArtists(drawn, line, curve, corners)


def connect_summary(result: ConnectResult) -> str:
    """One line: the highest loss along the line and along the curve, and the ends'."""
    ends = max(float(result.line_loss[0]), float(result.line_loss[-1]))
    return (f"connect: highest loss along the straight line {result.line_max:.4g}, along the "
            f"curve {result.curve_max:.4g} (the ends: {ends:.4g})")  # fmt: skip
