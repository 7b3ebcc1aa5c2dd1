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
from matplotlib.lines import Line2D

from gdscope.engines.trajectory import Trajectory
from gdscope.optim.specs import format_value
from gdscope.problem.maps import Landscape
from gdscope.render.panels import (
    CMAP,
    START_ZORDER,
    legend_below,
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
    "clip_spikes",
    "hatch_unfinished",
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
YES_NO_TICKS = ("did not diverge", "diverged")
"""The colour bar's words for a yes/no metric's 0 and 1 (not diverging is not converging)."""
ANALYTIC_BORDER = "analytic stability border"
LEGEND_FACE = "#888888"
"""The phase legend's grey, against which the borders' white lines show."""


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

    ``stable`` (the analytic stable region on the same grid) is outlined in white where cells
    were computed (an interrupted run's border is not drawn through cells it did not reach); a
    network's run (``NetRun``) has no analytic border: its measured one is outlined in dashed
    white instead (``mark_measured_border``). ``mark`` puts a star at an ``(x, y)``
    configuration, or, when it lies outside the diagram, says so in the title. The borders and the
    star are named in a legend under the axes, where it covers no cell. Diverged cells of loss
    metrics are grey.
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
            bar.set_ticks([0, 1], labels=list(YES_NO_TICKS))
        else:
            scale = " (log)" if isinstance(norm, LogNorm) else ""
            gone = metric in LOSS_METRICS and bool((run.grid("diverged") > 0.5).any())
            grey = "; grey: diverged" if gone else ""  # (not a cell left unrun: it is hatched)
            bar.set_label(f"{label}{scale}{grey}")
    handles: list[Any] = []
    border: QuadContourSet | LineCollection | None = None
    if isinstance(run, NetRun):
        border = mark_measured_border(ax, run)
        if border is not None:
            handles.append(border)
    if stable is not None:
        border = _analytic_border(ax, run, stable)
        if border is not None:
            handles.append(Line2D([], [], color="white", lw=2, label=ANALYTIC_BORDER))
    marker = None
    if mark is not None:
        where = f"{x_axis.name}={format_value(mark[0])}, {y_axis.name}={format_value(mark[1])}"
        x_edges, y_edges = _edges(x_axis), _edges(y_axis)
        if x_edges[0] <= mark[0] <= x_edges[-1] and y_edges[0] <= mark[1] <= y_edges[-1]:
            (marker,) = ax.plot([mark[0]], [mark[1]], "*", color="white", markeredgecolor="black",
                                markersize=14, label=where)  # fmt: skip
            handles.append(marker)
        else:  # drawn there, the star would stretch the axes or vanish: said instead
            ax.set_title(f"{ax.get_title()}\n★ {where} lies outside this diagram")
    if handles:
        legend_below(ax, fontsize=8, handles=handles, face=LEGEND_FACE)
    return PhaseArtists(mesh, border, marker)


def hatch_unfinished(ax: Axes, mesh: QuadMesh, run: GridRun | NetRun, *, kept: str) -> None:
    """Hatch the cells Ctrl-C left unrun on a phase diagram's ``mesh``: one patch per block of
    rows with the same run of unrun columns (a stopped grid leaves the rest of one row and the
    rows after it); ``kept`` says in words what finished."""
    from matplotlib.patches import Polygon

    edges = np.asarray(mesh.get_coordinates())  # (rows + 1, columns + 1, 2)
    unrun = ~run.completed.reshape(run.shape)
    blocks: list[list[int]] = []  # [first row, last row, first column, last column]
    for i, row in enumerate(unrun):
        changes = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(int), [0]])))
        for j0, j1 in zip(changes[::2], changes[1::2] - 1, strict=True):
            last = blocks[-1] if blocks else None
            if last is not None and last[1] == i - 1 and last[2:] == [j0, j1]:
                last[1] = i
            else:
                blocks.append([i, i, int(j0), int(j1)])
    for i0, i1, j0, j1 in blocks:
        corners = [edges[i0, j0], edges[i0, j1 + 1], edges[i1 + 1, j1 + 1], edges[i1 + 1, j0]]
        ax.add_patch(Polygon(corners, closed=True, fill=False, hatch="//", lw=0,
                             edgecolor="#555555"))  # fmt: skip
    ax.text(0.01, 0.01, f"interrupted: {kept}; hatched cells were not run",
            transform=ax.transAxes, fontsize=8, va="bottom",
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})  # fmt: skip


def _analytic_border(ax: Axes, run: GridRun | NetRun, stable: np.ndarray) -> QuadContourSet | None:
    """The outline of ``stable`` over the computed cells, or None where no border crosses them
    (all stable, all unstable, or the border lies in cells an interruption left unrun)."""
    y_axis, x_axis = run.axes
    done = run.completed.reshape(run.shape)
    if not ((stable & done).any() and (~stable & done).any()):
        return None
    xs = np.array([float(v) for v in x_axis.values])
    ys = np.array([float(v) for v in y_axis.values])
    shown = np.ma.masked_where(~done, stable.astype(float))
    border = ax.contour(xs, ys, shown, levels=[0.5], colors="white", linewidths=2)
    if not any(len(segment) for segment in border.allsegs[0]):
        border.remove()
        return None
    return border


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
    table = shootout.table()
    # The table's axes is as tall as its rows (and the table fills it): no blank band under it.
    map_height, table_height = 7.6, TABLE_ROW * (len(table) + 1)
    # Wide enough that the square map is bounded by its height: constrained layout then keeps
    # its y-axis label inside the figure (at 8.5 inches the aspect and the layout fought, and the
    # label was pushed off the left edge).
    fig.set_size_inches(9.0, map_height + table_height + 0.4)
    fig.set_layout_engine("constrained")
    map_ax, table_ax = fig.subplots(2, 1, gridspec_kw={"height_ratios": [map_height, table_height]})
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
    for row in table:
        setting = ", ".join(f"{k}={format_value(v, '.3g')}" for k, v in row.items()
                            if k not in {"optimizer", "mean_final_loss", "diverged"})  # fmt: skip
        rows.append(
            [row["optimizer"], setting, f"{row['mean_final_loss']:.6g}", str(row["diverged"])]
        )
    drawn = table_ax.table(
        cellText=rows, colLabels=["optimizer", "best setting", "mean final loss", "diverged"],
        bbox=(0.0, 0.0, 1.0, 1.0),
    )  # fmt: skip
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(8)
    return fig


TABLE_ROW = 0.3
"""The height of a row of the shoot-out's table, in inches."""
SPIKES = 4.0
"""A linear loss curve whose peak is this many times its typical spread (95th percentile above
its minimum) is clipped there, so that a few spikes do not flatten the rest."""


ANALYTIC_NOTE = "no analytic border: it holds for SGD on a quadratic (the neuron), not a network"


def mark_measured_border(ax: Axes, run: NetRun) -> LineCollection | None:
    """Outline the measured border of a network's phase diagram in dashed white: along the cell
    edges between a cell whose copy diverged and a neighbour whose copy did not (cells not
    computed, e.g. after Ctrl-C, have no border), and say why the analytic border is not
    drawn. ``plot_phase`` names it in its legend."""
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
    ax.set_title(f"{ax.get_title()}\n{ANALYTIC_NOTE}", fontsize=9)
    return border


def _cell_title(run: NetRun, k: int) -> str:
    return ", ".join(f"{a.name}={format_value(run.options[a.name][k])}" for a in run.axes)


def plot_loss_curves(run: NetRun, *, fig: Figure | None = None, log: bool = False) -> Figure:
    """A network sweep: each finished configuration's mini-batch loss per step, one panel
    each (a diverged copy's curve stops where it diverged, marked with a dotted line; a panel
    says "diverged" where the phase diagram's ``diverged`` metric does). On a linear scale a
    curve with spikes far above the rest is clipped (``clip_spikes``), and the panel says so."""
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
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("mini-batch loss", fontsize=8)
        if log:
            _log_scale_if_positive(ax)
        else:
            clip_spikes(ax, run.losses[k])
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


def clip_spikes(ax: Axes, values: np.ndarray) -> float | None:
    """Clip ``ax``'s linear y-axis above ``values``' typical range when its peak lies more than
    ``SPIKES`` spreads above it, and say so in the corner; return the clipping top, if any."""
    finite = values[np.isfinite(values)]
    if finite.size < 2:
        return None
    low, typical, peak = float(finite.min()), float(np.percentile(finite, 95)), float(finite.max())
    spread = typical - low
    if spread <= 0 or peak <= low + SPIKES * spread:
        return None
    top = typical + 0.5 * spread
    ax.set_ylim(low - 0.05 * spread, top)
    ax.text(0.98, 0.98, f"clipped: spikes up to {peak:.3g}", transform=ax.transAxes,
            ha="right", va="top", fontsize=7, color="#d7191c")  # fmt: skip
    return top


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
