"""The plot job: run the pipeline for a ``PlotConfig``, hand the results to the renderers, save.

Builders compute each loss map once per figure (or take maps already computed, so several
figures can share them) and return what the renderers drew.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gdscope.engines.reference import train
from gdscope.engines.trajectory import Trajectory
from gdscope.errors import GdscopeError
from gdscope.files import check_target, record_json, save_figure, write_text
from gdscope.jobs.export import save_trajectories
from gdscope.jobs.plotconfig import PlotConfig
from gdscope.jobs.records import DEFAULT_DPI, record, sidecar
from gdscope.problem.data import Dataset, make_data
from gdscope.problem.maps import Landscape, gradient_field, loss_map
from gdscope.problem.objective import Objective
from gdscope.render.animation import AnimationOptions, Animator, animation_format, write_animation
from gdscope.render.panels import PanelFigure, panel_axes, plot_landscape, plot_panels

__all__ = ["MapCache", "build_plot", "make_animation", "make_plot", "plot_results", "run_config"]

MapCache = dict[tuple[object, ...], Landscape]


def _landscape(
    config: PlotConfig, data: Dataset | None, loss: Objective, cache: MapCache | None
) -> Landscape:
    grid = config.grid_for(loss)
    key = (config.data if loss.needs_data else None, loss, grid)
    if cache is not None and key in cache:
        return cache[key]
    landscape = loss_map(data, loss, grid)
    if cache is not None:
        cache[key] = landscape
    return landscape


def run_config(
    config: PlotConfig, *, cache: MapCache | None = None
) -> tuple[Dataset | None, list[Landscape], list[Trajectory]]:
    """The data, one landscape per objective and (unless ``config.path`` is off) one trajectory
    each, from the reference engine (real ``torch.optim`` on a real module)."""
    data = make_data(config.data) if config.needs_data else None
    landscapes = [_landscape(config, data, loss, cache) for loss in config.losses]
    if not config.path:
        return data, landscapes, []
    trajectories = [
        train(
            data,
            loss=loss,
            optimizer=config.optimizer,
            scheduler=config.scheduler,
            epochs=config.epochs,
            start=config.start_for(loss),
            batch_size=config.batch_size,
            shuffle_seed=config.shuffle_seed,
        )
        for loss in config.losses
    ]
    return data, landscapes, trajectories


def build_plot(
    config: PlotConfig,
    *,
    fig: Figure | None = None,
    cache: MapCache | None = None,
    title: str | None = None,
) -> PanelFigure:
    """One panel per objective in ``config``: the map, and unless ``config.path`` is off, the
    path, in the configured view with the configured overlays."""
    data, landscapes, trajectories = run_config(config, cache=cache)
    return plot_results(config, data, landscapes, trajectories, fig=fig, title=title)


def plot_results(
    config: PlotConfig,
    data: Dataset | None,
    landscapes: list[Landscape],
    trajectories: list[Trajectory],
    *,
    fig: Figure | None = None,
    title: str | None = None,
) -> PanelFigure:
    """Draw results that ``run_config`` computed (renderers only; nothing trains here)."""
    fig = fig if fig is not None else Figure()
    if config.view == "surface":
        return _surfaces(config, landscapes, trajectories, fig, title)
    if not trajectories:
        return _maps_only(config, landscapes, fig, title)
    drawn = plot_panels(
        landscapes, trajectories, fig=fig, log=config.log, effective=config.effective,
        title=title, kind=config.view,
    )  # fmt: skip
    for ax, landscape, trajectory in zip(drawn.axes, landscapes, trajectories, strict=True):
        _overlay(config, data, landscape, trajectory, ax)
    if config.overlays:
        from gdscope.render.panels import panel_legend  # the overlays join the figure legend

        panel_legend(drawn.figure, drawn.axes)
    return drawn


def _overlay(
    config: PlotConfig,
    data: Dataset | None,
    landscape: Landscape,
    trajectory: Trajectory,
    ax: Axes,
) -> None:
    from gdscope.render import overlays

    decay = trajectory.optimizer.l2_weight_decay
    if "gradient" in config.overlays:
        points, grads, _ = gradient_field(data, landscape.loss, landscape.grid, weight_decay=decay)
        overlays.plot_gradient_field(points, grads, ax=ax, grid=landscape.grid)
    if "steps" in config.overlays:
        overlays.plot_steps(trajectory, ax=ax)
    if "momentum" in config.overlays:
        overlays.plot_momentum(trajectory, ax=ax)
    regression = landscape.loss.regression
    if "batches" in config.overlays and data is not None and regression is not None:
        from gdscope.engines.minibatch import batch_gradients

        stride = overlays.thin(trajectory.n_finite, 12)
        points_at = list(range(0, trajectory.n_finite - 1, stride))
        grads = batch_gradients(data, regression, trajectory, points_at)
        overlays.plot_batch_spread(trajectory, points_at, grads, ax=ax)
    if "lr" in config.overlays:
        overlays.plot_lr(trajectory, ax=ax)


def _surfaces(
    config: PlotConfig,
    landscapes: list[Landscape],
    trajectories: list[Trajectory],
    fig: Figure,
    title: str | None,
) -> PanelFigure:
    from gdscope.render.surface3d import plot_surface3d

    count = len(landscapes)
    cols = 1 if count == 1 else 2
    rows = -(-count // cols)
    fig.set_size_inches(6.0 * cols, 5.2 * rows + 0.4)
    axes = []
    for i, landscape in enumerate(landscapes):
        ax = fig.add_subplot(rows, cols, i + 1, projection="3d")
        shown = landscape
        if trajectories and config.effective and trajectories[i].optimizer.l2_weight_decay > 0:
            shown = landscape.with_weight_decay(trajectories[i].optimizer.l2_weight_decay)
        plot_surface3d(shown, trajectories[i] if trajectories else None, ax=ax, log=config.log)
        axes.append(ax)
    first = trajectories[0] if trajectories else None
    caption = title or (f"{first.label}, {first.epochs} epochs" if first else "Loss landscape")
    fig.suptitle(caption)
    fig.tight_layout()
    return PanelFigure(fig, axes, [], caption)


def _maps_only(
    config: PlotConfig, landscapes: list[Landscape], fig: Figure, title: str | None
) -> PanelFigure:
    axes = panel_axes(fig, len(landscapes), extra=(0.0, 0.4))
    for ax, landscape in zip(axes, landscapes, strict=True):
        shown = landscape
        decay = config.optimizer.l2_weight_decay
        if config.effective and decay > 0:
            shown = landscape.with_weight_decay(decay)
        plot_landscape(shown, ax=ax, log=config.log, kind=config.view)
        ax.set_title(landscape.loss.title)
    caption = title or "Loss landscape"
    fig.suptitle(caption)
    fig.tight_layout()
    return PanelFigure(fig, axes, [], caption)


def make_plot(
    config: PlotConfig,
    out: str | os.PathLike[str],
    *,
    title: str | None = None,
    dpi: float = DEFAULT_DPI,
    force: bool = False,
    save: str | os.PathLike[str] | None = None,
) -> Path:
    """Draw ``config`` (``gdscope plot``) into ``out`` (.png/.svg/.pdf); with ``save``, also
    write its paths there (.csv/.json/.npz, ``save_trajectories``)."""
    data, landscapes, trajectories = run_config(config)
    drawn = plot_results(config, data, landscapes, trajectories, title=title)
    rec = record("plot", config=config.to_dict(), title=title, dpi=dpi)
    path = save_figure(drawn.figure, out, force=force, dpi=dpi, config=rec)
    if save is not None:
        save_trajectories(trajectories, save, force=force, config=config.to_dict())
    return path


def make_animation(
    config: PlotConfig,
    out: str | os.PathLike[str],
    *,
    options: AnimationOptions | None = None,
    title: str | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Animate ``config``'s paths (``gdscope animate``) into ``out`` (.gif/.mp4) and write the
    record beside it (``sidecar``). Both files are checked before any work is done.
    ``progress(done, total)`` follows the frames; Ctrl-C (``interrupts``) shortens the film."""
    options = options or AnimationOptions()
    animation_format(out)
    for target in (out, sidecar(out)):
        check_target(target, force=force)
    if not config.path:
        raise GdscopeError("an animation shows the paths; drop path=False", settings=["path"])
    _, landscapes, trajectories = run_config(config)
    animator = Animator(
        landscapes, [[t] for t in trajectories], options=options, log=config.log,
        kind=config.view, effective=config.effective, title=title,
    )  # fmt: skip
    path = write_animation(animator.frames(progress=progress), out, fps=options.fps, force=force)
    rec = record("animate", config=config.to_dict(), animation=options.to_dict(), title=title)
    write_text(sidecar(out), record_json(rec), force=force)
    return path
