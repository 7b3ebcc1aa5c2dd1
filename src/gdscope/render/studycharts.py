"""Matplotlib renderers for many runs: phase diagrams, small multiples, the shoot-out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, QuadMesh
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm, Normalize
from matplotlib.contour import QuadContourSet
from matplotlib.figure import Figure

from gdscope.engines.trajectory import Trajectory
from gdscope.optim.specs import format_value
from gdscope.problem.maps import Landscape
from gdscope.render.panels import (
    CMAP,
    START_ZORDER,
    panel_axes,
    plot_landscape,
    plot_path,
    wrap_caption,
)
from gdscope.studies.netstudy import NetRun, NetShootout
from gdscope.studies.phase import LOSS_METRICS, METRIC_LABELS, YES_NO_METRICS
from gdscope.studies.shootout import Shootout
from gdscope.studies.sweep import Axis, GridRun

__all__ = [
    "PhaseArtists",
    "mark_measured_border",
    "plot_loss_curves",
    "plot_network_shootout",
    "plot_phase",
    "plot_shootout",
    "plot_small_multiples",
]


@dataclass(frozen=True)
class PhaseArtists:
    mesh: QuadMesh
    border: QuadContourSet | LineCollection | None
    """The analytic stable region's outline (a contour), or a network's measured border."""
    marker: Any


FEW_VALUES = 8
"""A phase diagram's linear axis with at most this many values gets one tick per value."""


def _edges(axis: Axis) -> np.ndarray:
    values = np.array([float(v) for v in axis.values])
    if len(values) == 1:
        return np.array([values[0] - 0.5, values[0] + 0.5])
    if axis.log:
        logs = np.log(values)
        mids = (logs[1:] + logs[:-1]) / 2
        return np.exp(np.concatenate([[2 * logs[0] - mids[0]], mids, [2 * logs[-1] - mids[-1]]]))
    mids = (values[1:] + values[:-1]) / 2
    return np.concatenate([[2 * values[0] - mids[0]], mids, [2 * values[-1] - mids[-1]]])


def plot_phase(
    run: GridRun | NetRun,
    metric: str = "final_loss",
    *,
    ax: Axes | None = None,
    stable: np.ndarray | None = None,
    mark: tuple[float, float] | None = None,
    colorbar: bool = True,
) -> PhaseArtists:
    """Heatmap of ``metric`` over the run's two axes (x: second axis, y: first).

    ``stable`` (the analytic stable region on the same grid) is outlined in white; a network's
    run (``NetRun``) has no analytic border: its measured one is outlined in dashed white
    instead (``mark_measured_border``). ``mark`` puts a star at an ``(x, y)`` configuration.
    Diverged cells of loss metrics are grey.
    """
    if len(run.axes) != 2:
        raise ValueError("a phase diagram needs exactly two axes")
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    y_axis, x_axis = run.axes
    values = run.grid(metric)
    if metric in LOSS_METRICS:
        values = np.where(run.grid("diverged") > 0.5, np.nan, values)
    cmap: ListedColormap | None
    if metric in YES_NO_METRICS:
        cmap = ListedColormap(["#2c7bb6", "#d7191c"])
        norm: Normalize = BoundaryNorm([-0.5, 0.5, 1.5], 2)
    else:
        cmap = ListedColormap(["#000000"]) if np.isnan(values).all() else None
        finite = values[np.isfinite(values)]
        positive = finite[finite > 0]
        if metric.endswith("loss") and positive.size:
            norm = LogNorm(float(positive.min()), float(positive.max()))
        else:
            norm = Normalize(
                float(finite.min()) if finite.size else 0, float(finite.max()) if finite.size else 1
            )
    shown = (cmap or colormaps["viridis"]).with_extremes(bad="#bdbdbd")  # grey: diverged
    mesh = ax.pcolormesh(_edges(x_axis), _edges(y_axis), values, cmap=shown, norm=norm)
    if x_axis.log:
        ax.set_xscale("log")
    if y_axis.log:
        ax.set_yscale("log")
    for axis, set_ticks in ((x_axis, ax.set_xticks), (y_axis, ax.set_yticks)):
        if not axis.log and len(axis.values) <= FEW_VALUES:  # ticks at the values themselves:
            set_ticks([float(v) for v in axis.values])  # not at -0.4 for momentum 0 and 0.9
    ax.set_xlabel(x_axis.name)
    ax.set_ylabel(y_axis.name)
    label = METRIC_LABELS.get(metric, metric)
    ax.set_title(f"{label}: {run.optimizer}, {run.caption}")
    if colorbar:
        bar = ax.figure.colorbar(mesh, ax=ax)
        if metric in YES_NO_METRICS:
            bar.set_ticks([0, 1], labels=["converged", "diverged"])
    border: QuadContourSet | LineCollection | None = None
    if isinstance(run, NetRun):
        border = mark_measured_border(ax, run)
    if stable is not None and stable.any() and (~stable).any():
        xs = np.array([float(v) for v in x_axis.values])
        ys = np.array([float(v) for v in y_axis.values])
        border = ax.contour(
            xs, ys, stable.astype(float), levels=[0.5], colors="white", linewidths=2
        )
    marker = None
    if mark is not None:
        (marker,) = ax.plot(
            [mark[0]], [mark[1]], "*", color="white", markeredgecolor="black", markersize=14
        )
    return PhaseArtists(mesh, border, marker)


def plot_small_multiples(
    landscape: Landscape,
    trajectories: Sequence[Trajectory],
    titles: Sequence[str],
    *,
    fig: Figure | None = None,
    columns: int | None = None,
    log: bool = False,
) -> tuple[Figure, list[Axes]]:
    """One panel per run on the same landscape, all with one shared colour scale."""
    if len(trajectories) != len(titles) or not trajectories:
        raise ValueError("need one title per trajectory, and at least one")
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure()
    # Constrained layout: each row's x-label clears the next row's titles, and a caption the
    # caller adds with ``fig.suptitle`` afterwards gets its room too.
    fig.set_layout_engine("constrained")
    count = len(trajectories)
    cols = columns or min(count, max(1, int(np.ceil(np.sqrt(count)))))
    axes = panel_axes(fig, count, columns=cols, cell=(3.0, 3.0), extra=(1.2, 0.8))
    image = None
    for ax, run, title in zip(axes, trajectories, titles, strict=True):
        drawn = plot_landscape(landscape, ax=ax, log=log, colorbar=False, mark_minimum=True)
        image = drawn.image
        path = plot_path(run, ax=ax, grid=landscape.grid)
        if path.note is not None:
            path.note.set_fontsize(6)
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=6)
        vertical, horizontal = landscape.loss.labels
        ax.set_xlabel(horizontal, fontsize=7)
        ax.set_ylabel(vertical, fontsize=7)
    # All panels draw the same landscape with the same norm: one colorbar serves them all.
    if image is not None:
        fig.colorbar(image, ax=axes, fraction=0.03, pad=0.02, label=landscape.loss.title)
    return fig, axes


def plot_shootout(landscape: Landscape, shootout: Shootout, *, fig: Figure | None = None) -> Figure:
    """Each optimizer's best path on one landscape, and a table of the scores."""
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure()
    fig.set_size_inches(8.5, 10)
    map_ax, table_ax = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1.2]})
    plot_landscape(landscape, ax=map_ax, cmap=CMAP)
    colours = ["red", "black", "magenta", "cyan", "orange", "white", "yellow", "lime"]
    for contender, colour in zip(shootout.contenders, colours * 4, strict=False):
        plot_path(
            contender.path, ax=map_ax, grid=landscape.grid, color=colour, label=contender.name
        )
    handles = [h for h, label in zip(*map_ax.get_legend_handles_labels(), strict=True)
               if label in {c.name for c in shootout.contenders}]  # fmt: skip
    others = shootout.starts[1:]
    if len(others):
        (scored,) = map_ax.plot(
            others[:, 1], others[:, 0], linestyle="none", marker="o", markersize=7,
            markerfacecolor="none", markeredgecolor="white", markeredgewidth=1.5,
            label="other starts (scored, paths not drawn)", zorder=START_ZORDER,
        )  # fmt: skip
        handles.append(scored)
    map_ax.legend(handles=handles, loc="lower right", fontsize=8)
    # Every start is scored, but only the first start's paths are drawn: the title says so.
    first = landscape.loss.point_text(*shootout.starts[0])
    map_ax.set_title(
        wrap_caption(
            f"Best of each optimizer on {landscape.loss.title}: {shootout.budget} steps, "
            f"scored over {len(shootout.starts)} starts; paths from start {first}",
            70,
        )
    )
    table_ax.axis("off")
    rows = []
    for row in shootout.table():
        setting = ", ".join(f"{k}={format_value(v, '.3g')}" for k, v in row.items()
                            if k not in {"optimizer", "mean_final_loss", "diverged"})  # fmt: skip
        rows.append(
            [row["optimizer"], setting, f"{row['mean_final_loss']:.6g}", str(row["diverged"])]
        )
    table = table_ax.table(
        cellText=rows, colLabels=["optimizer", "best setting", "mean final loss", "diverged"],
        loc="center",
    )  # fmt: skip
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.3)
    fig.tight_layout()
    return fig


ANALYTIC_NOTE = "no analytic border: it holds for SGD on a quadratic (the neuron), not a network"


def mark_measured_border(ax: Axes, run: NetRun) -> LineCollection | None:
    """Outline the measured border of a network's phase diagram in dashed white: along the cell
    edges between a cell whose copy diverged and a neighbour whose copy did not (cells not
    computed, e.g. after Ctrl-C, have no border), and say why the analytic border is not
    drawn."""
    y_axis, x_axis = run.axes
    diverged = run.grid("diverged")
    xe, ye = _edges(x_axis), _edges(y_axis)
    known = np.isfinite(diverged)
    bad = diverged > 0.5
    segments: list[list[tuple[float, float]]] = []
    across = known[:, 1:] & known[:, :-1] & (bad[:, 1:] != bad[:, :-1])  # vertical edges
    for i, j in zip(*np.nonzero(across), strict=True):
        segments.append([(xe[j + 1], ye[i]), (xe[j + 1], ye[i + 1])])
    along = known[1:] & known[:-1] & (bad[1:] != bad[:-1])  # horizontal edges
    for i, j in zip(*np.nonzero(along), strict=True):
        segments.append([(xe[j], ye[i + 1]), (xe[j + 1], ye[i + 1])])
    border = None
    if segments:
        border = LineCollection(segments, colors="white", linewidths=2, linestyles="--",
                                label="measured border (diverged)")  # fmt: skip
        ax.add_collection(border)
        ax.legend(handles=[border], loc="upper right", fontsize=8, facecolor="#888888")
    ax.set_title(f"{ax.get_title()}\n{ANALYTIC_NOTE}", fontsize=9)
    return border


def _cell_title(run: NetRun, k: int) -> str:
    return ", ".join(f"{a.name}={format_value(run.options[a.name][k])}" for a in run.axes)


def plot_loss_curves(run: NetRun, *, fig: Figure | None = None, log: bool = False) -> Figure:
    """A network sweep: each finished configuration's mini-batch loss per step, one panel
    each (a diverged copy's curve stops where it diverged, marked with a dotted line; a panel
    says "diverged" where the phase diagram's ``diverged`` metric does)."""
    import matplotlib.pyplot as plt

    fig = fig or plt.figure()
    finished = np.flatnonzero(run.completed)
    axes = panel_axes(fig, len(finished))
    steps = np.arange(1, run.losses.shape[1] + 1)
    for ax, k in zip(axes, finished.tolist(), strict=False):
        ax.plot(steps, run.losses[k], lw=0.8, color="#2c7bb6")
        at = int(run.metrics["diverged_at"][k])
        if at > 0:
            ax.axvline(at, color="#d7191c", lw=1, ls=":")
        title = _cell_title(run, k)
        if run.metrics["diverged"][k] > 0.5:  # the phase diagram's rule: non-finite or growing
            title += f"\ndiverged at step {at}" if at > 0 else "\ndiverged: its loss grew"
        ax.set_title(title, fontsize=8)
        if log:
            _log_scale_if_positive(ax)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{run.optimizer} on {run.caption}: mini-batch loss per step", fontsize=10)
    return fig


def plot_network_shootout(result: NetShootout, *, fig: Figure | None = None) -> Figure:
    """A network shoot-out: each optimizer's score against lr (the best over its other tuned
    setting), winners starred; and the winners' mini-batch loss per step."""
    import matplotlib.pyplot as plt

    fig = fig or plt.figure(figsize=(11, 4.5))
    if fig.get_figwidth() < 10:
        fig.set_size_inches(11, 4.5)
    left, right = fig.subplots(1, 2)
    at_bottom = left.get_xaxis_transform()  # x in data, y in axes: where an ∞ score is shown
    for name, run in result.runs.items():
        scores = result.scores(name).reshape(run.shape)
        lr_axis = run.axes[-1]
        best = scores.min(axis=tuple(range(scores.ndim - 1))) if scores.ndim > 1 else scores
        lrs = np.array([float(v) for v in lr_axis.values])
        (line,) = left.plot(lrs, np.where(np.isfinite(best), best, np.nan), marker=".", label=name)
        gone = ~np.isfinite(best)
        if gone.any():
            left.plot(lrs[gone], np.zeros(int(gone.sum())), "x", color=line.get_color(),
                      markersize=9, transform=at_bottom, clip_on=False)  # fmt: skip
        k = result.winner(name)
        left.plot([float(run.options["lr"][k])], [float(result.scores(name)[k])], "*",
                  color=line.get_color(), markersize=14, markeredgecolor="black")  # fmt: skip
        steps = np.arange(1, run.losses.shape[1] + 1)
        diverged = "" if np.isfinite(result.scores(name)[k]) else " (every setting diverged)"
        right.plot(steps, run.losses[k], lw=0.8, color=line.get_color(),
                   label=f"{name}: {_cell_title(run, k)}{diverged}")  # fmt: skip
    left.set_xscale("log")
    if not _log_scale_if_positive(left):
        left.text(0.5, 0.5, "every setting diverged", transform=left.transAxes, ha="center",
                  color="#d7191c")  # fmt: skip
    left.set_xlabel("lr")
    left.set_ylabel(METRIC_LABELS.get(result.metric, result.metric))
    left.set_title(f"{result.network}: {result.steps} steps each, same batches and start\n"
                   "(×: that setting diverged, its score is ∞)", fontsize=9)  # fmt: skip
    left.legend(fontsize=8)
    _log_scale_if_positive(right)
    right.set_xlabel("step")
    right.set_ylabel("mini-batch loss")
    right.set_title("the winners' mini-batch loss", fontsize=9)
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _log_scale_if_positive(ax: Axes) -> bool:
    """A log y axis, unless nothing drawn on ``ax`` is finite and positive (every setting
    diverged: matplotlib cannot log-scale nothing)."""
    values = [
        np.asarray(line.get_ydata(), dtype=float)
        for line in ax.get_lines()
        if line.get_transform() == ax.transData
    ]  # not a divergence mark's axes heights
    shown = np.concatenate(values) if values else np.zeros(0)
    if not (np.isfinite(shown) & (shown > 0)).any():
        return False
    ax.set_yscale("log")
    return True
