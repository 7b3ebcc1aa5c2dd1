"""Matplotlib renderers: axes-level functions that draw on ``ax`` and return what they drew.

Nothing here trains or reads files: every function takes results (``Dataset``, ``Landscape``,
``Trajectory``) and returns artists, so figures can be composed in notebooks and tested by
inspecting artists rather than pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.colorbar import Colorbar
from matplotlib.colors import LinearSegmentedColormap, LogNorm, Normalize, to_hex
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.text import Text

from gdscope.engines.trajectory import Trajectory
from gdscope.errors import one_of
from gdscope.problem.data import Dataset
from gdscope.problem.maps import Grid, Landscape

__all__ = [
    "MAP_KINDS",
    "DescentArtists",
    "LandscapeArtists",
    "PanelFigure",
    "PathArtists",
    "colour_stops",
    "contour_levels",
    "decay_term",
    "legend_below",
    "mark_minima",
    "panel_axes",
    "panel_legend",
    "plot_data",
    "plot_descent",
    "plot_fit",
    "plot_landscape",
    "plot_panels",
    "plot_path",
    "visible_path",
    "wrap_caption",
]

CMAP = "terrain"
"""The loss maps' colour map (matplotlib's name); the page gets it as ``colour_stops``."""


def colour_stops(name: str = CMAP) -> list[tuple[float, str]]:
    """The colour map ``name`` as ``(position, "#rrggbb")`` stops that, joined linearly, are
    the map: a segmented map's own breakpoints (exact), any other sampled at 65 points.
    What the page paints its maps with (Plotly's ``colorscale``), so it keeps no copy."""
    cmap = colormaps[name]
    data = getattr(cmap, "_segmentdata", None)
    if (
        isinstance(cmap, LinearSegmentedColormap)
        and data is not None
        and not any(callable(data[channel]) for channel in ("red", "green", "blue"))
    ):
        rows = {c: np.asarray(data[k], dtype=np.float64)
                for c, k in zip("rgb", ("red", "green", "blue"), strict=True)}  # fmt: skip
        places = np.unique(np.concatenate([row[:, 0] for row in rows.values()]))
        colours = np.stack([np.interp(places, row[:, 0], row[:, 2]) for row in rows.values()], 1)
    else:
        places = np.linspace(0.0, 1.0, 65)
        colours = cmap(places)[:, :3]
    return [(float(x), to_hex(rgb)) for x, rgb in zip(places, colours, strict=True)]


START_STYLE = {"marker": "o", "markersize": 8, "color": "#1a9641", "markeredgecolor": "white"}
END_STYLE = {"marker": "*", "markersize": 13, "color": "#d7191c", "markeredgecolor": "white"}
OFF_MAP_STYLE = {"marker": "X", "markersize": 10, "color": "#d7191c", "markeredgecolor": "white"}
LOSS_MIN_STYLE: dict[str, Any] = {
    "marker": "D", "markersize": 7, "color": "white", "markeredgecolor": "black"
}  # fmt: skip
EFFECTIVE_MIN_STYLE: dict[str, Any] = {
    "marker": "P", "markersize": 10, "color": "#ff00ff", "markeredgecolor": "k"
}  # fmt: skip
MINIMUM_ZORDER = 7.0
"""The minima's markers, above the path and the overlays' arrows (6)."""
END_ZORDER = 7.5
"""The end star, above the minimum it usually lands on, so that where the run ended shows."""
ON_END_SIZE = 7
"""The weight-decayed objective's minimum, where the end usually lands, is drawn small on top of
the end star: the star's points show around it, and neither hides the other."""
START_ZORDER = 8.0
"""The start, above the end marker, which sits on it when the run leaves at its first step."""
LEGEND_FACE = "#d9d9d9"
"""Legends below the maps are light grey, so that the white gradient arrows' key shows."""
# Paths are drawn until they pass this many map-widths beyond the map (then cut at that border),
# so that a diverging run never hands huge coordinates to the renderer.
_FAR = 10.0


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt  # lazily: only when the caller wants the current axes

    return plt.gca()


MAP_KINDS = ("heatmap", "contour")


@dataclass(frozen=True)
class LandscapeArtists:
    image: AxesImage | ContourSet
    """The colour layer: an image (heatmap) or filled contours."""
    colorbar: Colorbar | None
    minimum: Line2D | None
    lines: ContourSet | None = None
    """Labelled contour lines (``kind="contour"``)."""


@dataclass(frozen=True)
class PathArtists:
    line: Line2D
    start: Line2D
    end: Line2D
    note: Text | None
    """``None`` unless the path diverged or left the map (then it says at which step)."""


@dataclass(frozen=True)
class DescentArtists:
    landscape: LandscapeArtists
    path: PathArtists
    loss_minimum: Line2D | None
    effective_minimum: Line2D | None


@dataclass(frozen=True)
class PanelFigure:
    figure: Figure
    axes: list[Axes]
    panels: list[DescentArtists]
    caption: str
    notes: list[str] = field(default_factory=list)


def plot_data(data: Dataset, *, ax: Axes | None = None, **kwargs: Any) -> PathCollection:
    """Scatter the points (Fig. 1)."""
    ax = _axes(ax)
    style = {"facecolors": "none", "edgecolors": "tab:blue", "label": f"{len(data)} points"}
    artist = ax.scatter(data.x, data.y, **{**style, **kwargs})
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    return artist


def plot_fit(
    data: Dataset, trajectory: Trajectory, *, ax: Axes | None = None, **kwargs: Any
) -> Line2D:
    """The line ``y = w·x + b`` at the run's final point, over the data's x-range (Fig. 2)."""
    ax = _axes(ax)
    w, b = trajectory.final
    xs = np.array([float(data.x.min()), float(data.x.max())])
    style = {"color": "tab:red", "label": f"y = {w:.3f}·x + {b:.3f}"}
    (line,) = ax.plot(xs, w * xs + b, **{**style, **kwargs})
    return line


def _norm(values: np.ndarray, log: bool) -> Normalize:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Normalize(0.0, 1.0)
    if not log:
        return Normalize(float(finite.min()), float(finite.max()))
    positive = finite[finite > 0]
    if positive.size == 0:
        return Normalize(float(finite.min()), float(finite.max()))
    return LogNorm(float(positive.min()), float(positive.max()))


def contour_levels(values: np.ndarray, count: int, log: bool) -> np.ndarray:
    """``count`` levels spanning the finite values, evenly (or evenly in log for ``log``)."""
    norm = _norm(values, log)
    lo, hi = float(norm.vmin), float(norm.vmax)  # type: ignore[arg-type]
    if hi <= lo:
        hi = lo + 1.0
    if isinstance(norm, LogNorm):
        return np.geomspace(lo, hi, count)
    return np.linspace(lo, hi, count)


def _mark(
    ax: Axes, w: float, b: float, style: dict[str, Any], label: str, zorder: float = MINIMUM_ZORDER
) -> Line2D:
    (marker,) = ax.plot([b], [w], linestyle="none", label=label, zorder=zorder, **style)
    return marker


def plot_landscape(
    landscape: Landscape,
    *,
    ax: Axes | None = None,
    cmap: str = CMAP,
    log: bool = False,
    colorbar: bool = True,
    mark_minimum: bool = True,
    kind: str = "heatmap",
    levels: int = 12,
    **kwargs: Any,
) -> LandscapeArtists:
    """The map, bias (or ``x``) across and weight (or ``y``) up (Fig. 3).

    ``kind="heatmap"`` draws each sample at its pixel's centre; ``kind="contour"`` draws
    ``levels`` filled bands with labelled lines (spaced evenly in log with ``log``). Each call gets
    its own colorbar, so panels with different scales never share one. Non-finite samples (a
    function that overflows) are left blank.
    """
    one_of("kind", kind, MAP_KINDS)
    ax = _axes(ax)
    values = landscape.values.detach().cpu().double().numpy()
    norm = _norm(values, log)
    lines = None
    blank = not np.isfinite(values).any()  # every point overflowed: no scale to show
    if kind == "heatmap":
        image: AxesImage | ContourSet = ax.imshow(
            values, origin="lower", extent=landscape.grid.extent, cmap=cmap, norm=norm,
            interpolation="nearest", aspect="equal", **kwargs,
        )  # fmt: skip
    else:
        shown = np.where(np.isfinite(values), values, np.nan)
        steps = contour_levels(values, levels, log)
        if log:
            shown = np.where(shown > 0, shown, np.nan)
        mesh = (landscape.grid.biases, landscape.grid.weights)
        image = ax.contourf(*mesh, shown, levels=steps, cmap=cmap, norm=norm, extend="both",
                            **kwargs)  # fmt: skip
        lines = ax.contour(*mesh, shown, levels=steps, colors="black", linewidths=0.6, alpha=0.7)
        ax.clabel(lines, fontsize=7, fmt=lambda v: f"{v:.3g}")
        ax.set_aspect("equal")
        left, right, bottom, top = landscape.grid.extent
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
    vertical, horizontal = landscape.loss.labels
    ax.set_xlabel(horizontal)
    ax.set_ylabel(vertical)
    bar = None
    if blank:
        ax.text(0.5, 0.5, "no finite value", transform=ax.transAxes, ha="center",
                va="center", color="#d7191c")  # fmt: skip
    elif colorbar:
        bar = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
        if kind == "contour":
            ticks = [float(v) for v in steps[::2]]
            bar.set_ticks(ticks, labels=[f"{v:.3g}" for v in ticks])
        if landscape.effective:
            bar.set_label(f"loss + {decay_term(landscape.weight_decay)}")
        else:
            bar.set_label(landscape.loss.title + (" (log)" if log else ""))
    minimum = None
    if mark_minimum:
        minimum = mark_minima(landscape, ax=ax)
    return LandscapeArtists(image, bar, minimum, lines)


def mark_minima(
    landscape: Landscape, *, ax: Axes | None = None, zorder: float = MINIMUM_ZORDER
) -> Line2D | None:
    """Mark the minimum: a test function's known minima (or saddle point), else the grid's
    smallest finite value (of the effective objective, with weight decay); None, unmarked,
    when no value is finite. A grid minimum on the map's border is drawn whole over the frame
    (not clipped to a sliver) and labelled as the lowest point of the map, not a minimum: the
    function may go on falling beyond it."""
    ax = _axes(ax)
    function = landscape.loss
    if function.known_minima and not landscape.effective:
        points = np.array(function.known_minima)
        # One label per meaning (not per count), so panels of one and of four minima share
        # one legend entry.
        label = f"known {function.stationary}"
        (marker,) = ax.plot(points[:, 1], points[:, 0], linestyle="none", label=label,
                            zorder=zorder, **LOSS_MIN_STYLE)  # fmt: skip
        return marker
    if not landscape.any_finite:
        return None
    w, b, _ = landscape.argmin()
    label = "objective minimum" if landscape.effective else "loss minimum"
    style = EFFECTIVE_MIN_STYLE if landscape.effective else LOSS_MIN_STYLE
    marker = _mark(ax, w, b, style, label, zorder=zorder)
    if b in landscape.grid.b_range or w in landscape.grid.w_range:
        marker.set_clip_on(False)
        marker.set_label(f"lowest {'objective' if landscape.effective else 'loss'} on the map "
                         "(at its edge)")  # fmt: skip
    return marker


def decay_term(weight_decay: float) -> str:
    """The penalty coupled weight decay adds to the loss, ``wd/2·(w²+b²)``, with ``wd/2``
    worked out: ``1·(w²+b²)`` for weight decay 2."""
    return f"{weight_decay / 2:g}·(w²+b²)"


def visible_path(
    trajectory: Trajectory, grid: Grid | None
) -> tuple[np.ndarray, np.ndarray, int | None]:
    """The ``(weights, biases)`` to draw and the step at which the path left the map, if it did.

    Takes the finite prefix. A diverged path is cut at its first point off the map (the last
    segment then runs off the edge). Any other path is drawn whole (it may leave and come back)
    unless it goes further than ``_FAR`` map-widths outside ``grid``: then it is cut there, its
    last segment shortened to end on that far border.
    """
    w = trajectory.weights[: trajectory.n_finite]
    b = trajectory.biases[: trajectory.n_finite]
    if grid is None:
        return w, b, None
    left, right, bottom, top = grid.extent
    inside = (b >= left) & (b <= right) & (w >= bottom) & (w <= top)
    left_at = int(np.argmin(inside)) if not inside.all() else None
    if trajectory.diverged and left_at is not None:
        w, b = w[: left_at + 1], b[: left_at + 1]
    bw, bb = (top - bottom) * _FAR, (right - left) * _FAR
    lo_w, hi_w, lo_b, hi_b = bottom - bw, top + bw, left - bb, right + bb
    near = (w >= lo_w) & (w <= hi_w) & (b >= lo_b) & (b <= hi_b)
    if near.all():
        return w, b, left_at
    k = int(np.argmin(near))
    w, b = w[: k + 1].copy(), b[: k + 1].copy()
    if k > 0:
        # Shorten the segment (k-1 → k) to where it crosses the far border.
        dw, db = w[k] - w[k - 1], b[k] - b[k - 1]
        ts = [1.0]
        for delta, origin, lo, hi in ((dw, w[k - 1], lo_w, hi_w), (db, b[k - 1], lo_b, hi_b)):
            if delta > 0:
                ts.append((hi - origin) / delta)
            elif delta < 0:
                ts.append((lo - origin) / delta)
        t = max(0.0, min(ts))
        w[k], b[k] = w[k - 1] + t * dw, b[k - 1] + t * db
    return w, b, left_at


def plot_path(
    trajectory: Trajectory,
    *,
    ax: Axes | None = None,
    grid: Grid | None = None,
    color: str = "red",
    label: str | None = None,
    **kwargs: Any,
) -> PathArtists:
    """The optimizer's path: every step as ``+``, start and end marked (Fig. 4).

    With ``grid``, a path that leaves the map is drawn to the map's edge and its end is marked
    where it left; a diverged path stops at its last finite point and says at which step.
    """
    ax = _axes(ax)
    w, b, left_at = visible_path(trajectory, grid)
    (line,) = ax.plot(
        b, w, color=color, marker="+", linewidth=1.2, markersize=6, label=label, **kwargs
    )
    # Above the end marker, which sits on the start when the run leaves at its first step.
    start = _mark(ax, w[0], b[0], START_STYLE, "start", zorder=START_ZORDER)
    note = None
    messages = []
    if trajectory.diverged:
        messages.append(f"diverged at step {trajectory.diverged_at}")
    if left_at is not None:
        messages.append(f"left the map at step {left_at}")
    if left_at is not None and left_at > 0:
        end = _mark(ax, w[left_at - 1], b[left_at - 1], OFF_MAP_STYLE, "last point on the map",
                    zorder=END_ZORDER)  # fmt: skip
    elif trajectory.diverged and left_at is None:
        end = _mark(ax, w[-1], b[-1], OFF_MAP_STYLE, "last finite point", zorder=END_ZORDER)
    else:
        end = _mark(ax, w[-1], b[-1], END_STYLE, "end", zorder=END_ZORDER)
    if messages:
        note = ax.text(
            0.03,
            0.97,
            "; ".join(messages),
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize=8,
            color="white",
            bbox={"facecolor": "#d7191c", "alpha": 0.85, "edgecolor": "none"},
            zorder=START_ZORDER + 1,
        )
    if grid is not None:
        left, right, bottom, top = grid.extent
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
    return PathArtists(line, start, end, note)


def plot_descent(
    landscape: Landscape,
    trajectory: Trajectory,
    *,
    ax: Axes | None = None,
    log: bool = False,
    effective: bool = False,
    colorbar: bool = True,
    legend: bool = False,
    title: str | None = None,
    kind: str = "heatmap",
) -> DescentArtists:
    """A loss map with the optimizer's path on top (Figs. 4–6, 8–10).

    ``landscape`` is the plain loss. When the run uses weight decay, SGD minimizes
    ``loss + (wd/2)·(w²+b²)`` instead: that objective's grid minimum is marked beside the loss's
    own, and ``effective=True`` draws that objective as the map.
    """
    if landscape.effective:
        raise ValueError("pass the plain loss landscape; weight decay is taken from the trajectory")
    ax = _axes(ax)
    wd = trajectory.optimizer.l2_weight_decay
    objective = landscape.with_weight_decay(wd) if wd > 0 else landscape
    shown = objective if effective else landscape
    drawn = plot_landscape(shown, ax=ax, log=log, colorbar=colorbar, mark_minimum=False, kind=kind)
    loss_minimum = mark_minima(landscape, ax=ax)
    effective_minimum = None
    if wd > 0 and objective.any_finite:
        w, b, _ = objective.argmin()
        effective_minimum = _mark(
            ax, w, b, {**EFFECTIVE_MIN_STYLE, "markersize": ON_END_SIZE},
            f"minimum of loss + {decay_term(wd)}", zorder=END_ZORDER + 0.1,
        )  # fmt: skip
    path = plot_path(trajectory, ax=ax, grid=landscape.grid)
    ax.set_title(title if title is not None else landscape.loss.title)
    if legend:
        legend_below(ax)
    return DescentArtists(drawn, path, loss_minimum, effective_minimum)


def legend_below(ax: Axes, fontsize: float = 7, handles: Sequence[Any] | None = None,
                 face: str | None = None) -> Any:  # fmt: skip
    """The axes' legend (or one of ``handles``) under its x-axis label, where it covers no map
    (and no border running into a corner); ``face``: its background colour."""
    import matplotlib as mpl
    from matplotlib.font_manager import FontProperties

    rc = mpl.rcParams
    sizes = (rc["xtick.labelsize"], rc["axes.labelsize"])
    text = sum(float(FontProperties(size=size).get_size_in_points()) for size in sizes)
    # The height, in points, of the ticks, their labels and the axis label.
    below = rc["xtick.major.size"] + rc["xtick.major.pad"] + rc["axes.labelpad"] + text
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    else:
        labels = [handle.get_label() for handle in handles]
    return ax.legend(
        handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=fontsize,
        ncol=min(len(labels), 3) or 1, borderaxespad=below / fontsize + 0.5, framealpha=0.8,
        facecolor=face,
    )  # fmt: skip


def _identical_pairs(landscapes: Sequence[Landscape]) -> list[str]:
    notes = []
    for i, first in enumerate(landscapes):
        for second in landscapes[i + 1 :]:
            if first.loss.same_function_as(second.loss) and first.loss != second.loss:
                notes.append(
                    f"{first.loss.title} and {second.loss.title} are the same function, "
                    "so their panels are identical (set --huber-delta / --smoothl1-beta to tell "
                    "them apart)."
                )
    return notes


def panel_axes(
    fig: Figure,
    count: int,
    *,
    columns: int | None = None,
    cell: tuple[float, float] = (5.6, 4.9),
    extra: tuple[float, float] = (0.0, 0.0),
) -> list[Axes]:
    """``count`` axes in a grid ``columns`` wide (default: two, one for a single panel); the
    figure gets ``cell`` inches per panel plus ``extra`` (width, height) inches."""
    cols = columns or (1 if count == 1 else 2)
    rows = (count + cols - 1) // cols
    fig.set_size_inches(cell[0] * cols + extra[0], cell[1] * rows + extra[1])
    axes = list(fig.subplots(rows, cols, squeeze=False).ravel())
    for unused in axes[count:]:
        unused.remove()
    return axes[:count]


def plot_panels(
    landscapes: Sequence[Landscape],
    trajectories: Sequence[Trajectory],
    *,
    fig: Figure | None = None,
    log: bool = False,
    effective: bool = False,
    title: str | None = None,
    kind: str = "heatmap",
) -> PanelFigure:
    """One panel per loss (2×2 for the article's four), each with its own colour scale."""
    if len(landscapes) != len(trajectories) or not landscapes:
        raise ValueError("need one trajectory per landscape, and at least one of each")
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure()
    # Constrained layout keeps room for the caption, the colorbars and the legend below, also
    # when the legend is rebuilt after overlays were drawn (``panel_legend``).
    fig.set_layout_engine("constrained")
    axes = panel_axes(fig, len(landscapes), extra=(0.0, 0.9))
    panels = [
        plot_descent(landscape, trajectory, ax=ax, log=log, effective=effective, kind=kind)
        for landscape, trajectory, ax in zip(landscapes, trajectories, axes, strict=True)
    ]
    first = trajectories[0]
    same_start = all(t.start == first.start for t in trajectories)
    where = f"start {_point(first)}" if same_start else "each from its own start"
    caption = wrap_caption(
        title or f"{first.label}, {first.epochs} epochs, {where}", int(fig.get_figwidth() * 11)
    )
    fig.suptitle(caption)
    notes = _identical_pairs(landscapes)
    panel_legend(fig, axes, notes="\n".join(notes))
    return PanelFigure(fig, axes, panels, caption, notes)


def panel_legend(fig: Figure, axes: Sequence[Axes], *, notes: str | None = None) -> Any:
    """One figure legend below the panels, one entry per label across ``axes``, with ``notes``
    as its title (constrained layout places a legend, not free text). Call it again after
    drawing overlays: it replaces the previous legend, keeping its notes, and any legend inside
    a panel."""
    for old in list(fig.legends):
        notes = old.get_title().get_text() if notes is None else notes
        old.remove()
    for legend in [ax.get_legend() for ax in axes]:
        if legend is not None:
            legend.remove()
    handles, labels = _legend_entries(axes)
    width = fig.get_figwidth() * 72 / 8  # the figure's width in 8-point ems
    per_row = max(1, min(len(labels), int(width // max(len(text) * 0.6 + 4 for text in labels))))
    return fig.legend(
        handles, labels, loc="outside lower center", ncol=per_row, fontsize=8, title=notes or None,
        title_fontproperties={"size": 8, "style": "italic"}, facecolor=LEGEND_FACE,
    )  # fmt: skip


def wrap_caption(text: str, width: int) -> str:
    """``text`` in lines of about ``width`` characters, broken only after a ``, `` or ``; ``
    outside parentheses, so that a point such as ``(w=6, b=-3)`` stays whole; a part longer than a
    line is broken after the separators one level inside (an optimizer's options)."""
    lines: list[str] = []
    for part in _parts(text, 0, width):
        if lines and len(lines[-1]) + 1 + len(part) <= width:
            lines[-1] += " " + part
        else:
            lines.append(part)
    return "\n".join(lines)


def _parts(text: str, level: int, width: int) -> list[str]:
    """``text`` cut after each separator at parenthesis depth ``level``; parts longer than
    ``width`` are cut one level deeper, inside a call's parentheses (``SGD(lr=…, …)``) only:
    a parenthesis after a space opens a point or an aside, which stays whole."""
    parts, begin, calls = [], 0, []
    for i, char in enumerate(text):
        if char == "(":
            calls.append(i > 0 and text[i - 1].isalnum())
        elif char == ")" and calls:
            calls.pop()
        elif char in ",;" and text[i + 1 : i + 2] == " " and len(calls) == level and all(calls):
            parts.append(text[begin : i + 1])
            begin = i + 2
    parts.append(text[begin:])
    if level >= 1:
        return parts
    deeper = [_parts(part, level + 1, width) if len(part) > width else [part] for part in parts]
    return [piece for pieces in deeper for piece in pieces]


def _point(trajectory: Trajectory) -> str:
    """The start as ``(w, b)``, or ``(x=…, y=…)`` for a test function."""
    return trajectory.loss.point_text(*trajectory.start)


def _legend_entries(axes: Sequence[Axes]) -> tuple[list[Any], list[str]]:
    """Unique legend entries across panels (markers only, the path itself is self-evident)."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    return list(seen.values()), list(seen.keys())
