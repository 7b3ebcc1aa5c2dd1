"""Views of a model's landscape, drawn by the same renderers as the article's maps.

A ``ModelSurface`` becomes a ``Landscape`` (rows: the y direction) and a projected path a
``Trajectory`` (vertical: y, horizontal: x), so heatmaps, contours, 3D surfaces and animations
all work unchanged. ``plot_honesty`` draws the recorded models' true loss beside the surface's.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from gdscope.engines.trajectory import Trajectory
from gdscope.errors import GdscopeError, one_of
from gdscope.nets.convexity import NON_CONVEX, ConvexityMap
from gdscope.nets.plane import ModelSurface
from gdscope.nets.projection import Honesty, ProjectedPath
from gdscope.optim.specs import OPTIMIZERS, OptimizerSpec
from gdscope.problem.data import Dataset
from gdscope.problem.grid import ARTICLE_GRID, Grid, Point
from gdscope.problem.maps import Landscape
from gdscope.problem.objective import register_reader, typed
from gdscope.render.panels import CMAP, legend_below, mark_minima, plot_landscape, plot_path
from gdscope.render.surface3d import lifted_path, plot_surface3d

__all__ = [
    "ACCURACY_CMAP",
    "CONVEXITY_SCALE",
    "HONESTY_TITLE",
    "METRICS",
    "RUN_COLOURS",
    "ModelObjective",
    "path_trajectory",
    "plot_convexity",
    "plot_honesty",
    "plot_honesty_runs",
    "plot_line",
    "plot_runs",
    "plot_runs3d",
    "run_colour",
    "surface_landscape",
]


@dataclass(frozen=True)
class ModelObjective:
    """A network's loss (or accuracy) over a plane through its parameters: an ``Objective``
    whose values were sampled by ``nets.plane.evaluate_plane``, so it names itself and its
    axes but cannot be evaluated again here (that needs the model and its data)."""

    title: str = "loss"
    labels: tuple[str, str] = ("y direction", "x direction")

    needs_data: ClassVar[bool] = False
    regression: ClassVar[None] = None
    known_minima: ClassVar[tuple[Point, ...]] = ()
    stationary: ClassVar[str] = "minimum"
    start: ClassVar[Point] = (0.0, 0.0)
    """The model the plane is centred on."""
    customary_lr: ClassVar[float] = float("nan")
    """Unknown: the network was trained by the user's own loop."""

    def default_grid(self, size: int = ARTICLE_GRID.w_size) -> Grid:
        raise GdscopeError("a model landscape has the grid it was sampled on (model_landscape)")

    def same_function_as(self, other: object) -> bool:
        return self == other

    def point_text(self, vertical: float, horizontal: float) -> str:
        return f"(x={horizontal:g}, y={vertical:g})"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.title, "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "objective") -> ModelObjective:
        labels = typed(raw.get("labels", list(cls.labels)), list, f"{where}.labels")
        if len(labels) != 2:
            raise GdscopeError(f"{where}.labels must name two axes, got {labels!r}")
        names = (typed(labels[0], str, f"{where}.labels"), typed(labels[1], str, f"{where}.labels"))
        return cls(typed(raw["model"], str, f"{where}.model"), names)

    def at(self, data: Dataset | None, params: torch.Tensor) -> torch.Tensor:
        raise GdscopeError("a model's loss is measured with the model (nets.plane), not here")


register_reader("model", ModelObjective.from_dict)


METRICS = ("loss", "accuracy")
ACCURACY_CMAP = "RdYlGn"
"""The accuracy map's colours: red is poor, green is good (the loss maps' blue lows would read
as good and mean the opposite)."""
HONESTY_TITLE = "along the path: the true loss and the surface's"


def surface_landscape(
    surface: ModelSurface, metric: str = "loss", *, labels: tuple[str, str] | None = None
) -> Landscape:
    """The surface's loss, or its accuracy in percent, as a ``Landscape`` for the renderers;
    ``labels`` name its (vertical, horizontal) axes."""
    if surface.is_line:
        raise ValueError("a line has no map; use plot_line")
    one_of("metric", metric, METRICS)
    accuracy = surface.accuracy
    if metric == "accuracy" and accuracy is None:
        raise GdscopeError(
            "this landscape has no accuracy: it is measured for classification (outputs of shape "
            "(N, classes) and integer targets of shape (N,))"
        )
    values = surface.loss if metric == "loss" or accuracy is None else 100 * accuracy
    title = "loss" if metric == "loss" else "accuracy (%)"
    ys, xs = surface.ys, surface.xs
    grid = Grid((float(ys[0]), float(ys[-1])), (float(xs[0]), float(xs[-1])), len(ys), len(xs))
    objective = ModelObjective(title, labels or ModelObjective.labels)
    return Landscape(grid, torch.from_numpy(values), objective)


def path_trajectory(
    projected: ProjectedPath, losses: np.ndarray, *, optimizer: str | None = None
) -> Trajectory:
    """The projected path as a ``Trajectory`` whose losses are the models' true losses."""
    name = (optimizer or "sgd").lower()
    spec = OptimizerSpec.of(name if name in OPTIMIZERS else "sgd")
    start = (float(projected.ys[0]), float(projected.xs[0]))
    return Trajectory(weights=projected.ys, biases=projected.xs,
                      losses=np.asarray(losses, dtype=np.float64), diverged_at=None,
                      loss=ModelObjective(), optimizer=spec, start=start)  # fmt: skip


def plot_honesty(honesty: Honesty, steps: np.ndarray, *, ax: Axes) -> tuple[Line2D, Line2D]:
    """The true loss of each recorded model and the surface's value at its projection, titled;
    a warning that the surface misleads goes under the x-axis label, off the curves."""
    (true,) = ax.plot(steps, honesty.true_loss, color="black", lw=1.6, label="true loss")
    (plane,) = ax.plot(steps, honesty.plane_loss, color="#d7191c", lw=1.2, ls="--",
                       label="surface at the projected point")  # fmt: skip
    ax.set_xlabel("optimizer step")
    # Not just "loss": the map's colour bar beside it says "loss" already.
    ax.set_ylabel("loss at that step")
    ax.set_title(HONESTY_TITLE, fontsize=10)
    if (honesty.true_loss > 0).all() and (honesty.plane_loss > 0).all():
        ax.set_yscale("log")
    warning = honesty.warning()
    if warning:  # under the x-axis label, where no curve runs
        ax.annotate(textwrap.fill("⚠ " + warning, 80), xy=(0, 0),
                    xycoords=("axes fraction", ax.xaxis.label), xytext=(0, -4),
                    textcoords="offset points", va="top", fontsize=8, color="#d7191c")  # fmt: skip
    ax.legend(fontsize=7, loc="upper right")
    return true, plane


RUN_COLOURS = ("red", "black", "#e7298a", "#7570b3", "#ff7f00", "#a6761d", "#e6ab02")
"""The colours of several recorded paths on one map (the first is the one path's red); none
is one of the ``terrain`` map's own."""


def run_colour(index: int) -> str:
    """The colour of the ``index``-th of several paths (the colours repeat after seven)."""
    return RUN_COLOURS[index % len(RUN_COLOURS)]


def _unique_legend(ax: Axes, **kwargs: Any) -> Any:
    """The legend with one entry per label (every path marks its start and end alike)."""
    handles: dict[str, Any] = {}
    for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
        handles.setdefault(label, handle)
    return legend_below(ax, handles=list(handles.values()), **kwargs)


def plot_runs(
    landscape: Landscape,
    runs: Sequence[tuple[str, Trajectory]],
    *,
    ax: Axes,
    log: bool = False,
    kind: str = "contour",
    cmap: str | None = None,
    mark_minimum: bool = True,
) -> list[Line2D]:
    """Several recorded paths over one map, each in its colour (``run_colour``) and named in
    the legend under the map; the map's minimum is marked unless ``mark_minimum`` is False."""
    plot_landscape(landscape, ax=ax, log=log, kind=kind, mark_minimum=False, cmap=cmap or CMAP)
    if mark_minimum:
        mark_minima(landscape, ax=ax)
    lines = [plot_path(trajectory, ax=ax, grid=landscape.grid, color=run_colour(i),
                       label=name).line for i, (name, trajectory) in enumerate(runs)]  # fmt: skip
    _unique_legend(ax)
    return lines


def plot_runs3d(
    landscape: Landscape, runs: Sequence[tuple[str, Trajectory]], *, ax: Axes, log: bool = False
) -> list[Any]:
    """The map as a 3D surface with several recorded paths on it (each point at its model's
    true loss, as ``plot_surface3d`` draws one), each in its colour, named in the legend."""
    plot_surface3d(landscape, None, ax=ax, log=log)
    lines = []
    for i, (name, trajectory) in enumerate(runs):
        pw, pb, z = lifted_path(trajectory, landscape, log=log)
        colour = run_colour(i)
        (line,) = ax.plot(pb, pw, z, color=colour, marker="+", lw=1.5, zorder=10, label=name)
        ax.plot(pb[:1], pw[:1], z[:1], "o", color="#1a9641", zorder=11)
        ax.plot(pb[-1:], pw[-1:], z[-1:], "*", color=colour, ms=12, zorder=11)
        lines.append(line)
    ax.legend(handles=lines, fontsize=7, loc="upper left")
    return lines


def plot_honesty_runs(
    runs: Sequence[tuple[str, Honesty, np.ndarray]], *, ax: Axes
) -> list[tuple[Line2D, Line2D]]:
    """``plot_honesty`` for several paths ``(name, honesty, steps)``: each one's true loss
    (solid) and the surface's value at its projections (dashed) in its colour; the warnings of
    those that mislead under the x-axis label."""
    drawn = []
    for i, (name, check, steps) in enumerate(runs):
        colour = run_colour(i)
        (true,) = ax.plot(steps, check.true_loss, color=colour, lw=1.6, label=f"{name}: true")
        (plane,) = ax.plot(steps, check.plane_loss, color=colour, lw=1.2, ls="--",
                           label=f"{name}: surface")  # fmt: skip
        drawn.append((true, plane))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss at that step")
    ax.set_title(HONESTY_TITLE, fontsize=10)
    if all((c.true_loss > 0).all() and (c.plane_loss > 0).all() for _, c, _ in runs):
        ax.set_yscale("log")
    warnings = [f"{name}: {w}" for name, c, _ in runs if (w := c.warning())]
    if warnings:
        text = "\n".join(textwrap.fill("⚠ " + w, 80) for w in warnings)
        ax.annotate(text, xy=(0, 0), xycoords=("axes fraction", ax.xaxis.label),
                    xytext=(0, -4), textcoords="offset points", va="top", fontsize=8,
                    color="#d7191c")  # fmt: skip
    ax.legend(fontsize=7, loc="upper right")
    return drawn


def plot_line(
    surface: ModelSurface,
    *,
    ax: Axes,
    log: bool = False,
    marks: Mapping[float, str] | None = None,
) -> list[Line2D]:
    """A 1-D landscape: loss (and accuracy on a second axis) along the direction; ``marks``
    labels positions on it (e.g. ``{0: "start.pt", 1: "end.pt"}`` on a line between models)."""
    (loss,) = ax.plot(surface.xs, surface.loss[0], color="tab:blue", label="loss")
    ax.set_xlabel("step along the direction")
    for x, label in (marks or {}).items():
        ax.axvline(x, color="0.4", linestyle=":", linewidth=1)
        ax.annotate(label, (x, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", fontsize=8, color="0.3")  # fmt: skip
    ax.set_ylabel("loss", color="tab:blue")
    if log:
        ax.set_yscale("log")
    lines = [loss]
    if surface.accuracy is not None:
        twin = ax.twinx()
        (acc,) = twin.plot(surface.xs, 100 * surface.accuracy[0], color="tab:red",
                           label="accuracy")  # fmt: skip
        twin.set_ylabel("accuracy (%)", color="tab:red")
        lines.append(acc)
    return lines


CONVEXITY_SCALE = 0.5
"""The top of every convexity map's colour scale (higher ratios get its top colour), fixed so
that maps side by side compare by colour, as Li et al.'s do."""


def plot_convexity(
    found: ConvexityMap,
    *,
    ax: Axes,
    threshold: float = NON_CONVEX,
    labels: tuple[str, str] = ModelObjective.labels,
) -> Any:
    """The map of ``|λ_min/λ_max|`` over the plane (0, convex: dark blue; ``CONVEXITY_SCALE``
    and more: yellow), a white contour at ``threshold``, its colour bar, and a title saying
    which fraction of the plane exceeds it; ``labels`` name the (vertical, horizontal) axes.
    Points left out (Ctrl-C) are blank (and the contour is left out); points whose
    eigenvalues missed their tolerance are counted in the title."""
    ratio = found.ratio
    whole = bool(np.isfinite(ratio).all())
    # Interpolated between the points, like the loss map beside it (blank cells if Ctrl-C
    # left points out: Gouraud shading cannot leave any out).
    mesh = ax.pcolormesh(found.xs, found.ys, ratio if whole else np.ma.masked_invalid(ratio),
                         cmap="viridis", vmin=0.0, vmax=CONVEXITY_SCALE,
                         shading="gouraud" if whole else "nearest")  # fmt: skip
    if whole and ratio.max() > threshold > ratio.min():
        ax.contour(found.xs, found.ys, ratio, levels=[threshold], colors="white",
                   linewidths=1.0)  # fmt: skip
    bar = ax.figure.colorbar(mesh, ax=ax, extend="max")
    bar.set_label("|λ_min / λ_max|")
    ax.plot([0], [0], marker="*", color="white", markeredgecolor="black", markersize=10)
    ax.set_xlabel(labels[1])
    ax.set_ylabel(labels[0])
    title = (
        f"{100 * found.non_convex(threshold):.0f}% of the plane has |λ_min/λ_max| > {threshold:g}"
    )
    missed = int((np.isfinite(found.lowest) & ~found.converged).sum())
    left = found.lowest.size - found.done
    notes = [f"{missed} point(s) short of tolerance"] if missed else []
    notes += [f"{left} point(s) not computed"] if left else []
    ax.set_title(title + ("\n" + "; ".join(notes) if notes else ""), fontsize=9)
    return mesh
