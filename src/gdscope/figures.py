"""Figure builders: run the pipeline for a ``PlotConfig`` and hand the results to the renderers.

Builders compute each loss map once per figure (or take maps already computed, so several
figures can share them) and return what the renderers drew.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from .config import PlotConfig
from .data import make_data
from .landscape import Landscape, loss_map
from .losses import LossSpec
from .plots import PanelFigure, panel_axes, plot_landscape, plot_panels
from .train import train

__all__ = ["MapCache", "build_plot"]

MapCache = dict[tuple[object, ...], Landscape]


def _landscape(config: PlotConfig, loss: LossSpec, cache: MapCache | None) -> Landscape:
    key = (config.data, loss, config.grid)
    if cache is not None and key in cache:
        return cache[key]
    landscape = loss_map(make_data(config.data), loss, config.grid)
    if cache is not None:
        cache[key] = landscape
    return landscape


def build_plot(
    config: PlotConfig,
    *,
    fig: Figure | None = None,
    cache: MapCache | None = None,
    title: str | None = None,
) -> PanelFigure:
    """One panel per loss in ``config``: the map, and unless ``config.path`` is off, the path."""
    fig = fig if fig is not None else Figure()
    data = make_data(config.data)
    landscapes = [_landscape(config, loss, cache) for loss in config.losses]
    if not config.path:
        return _maps_only(config, landscapes, fig, title)
    trajectories = [
        train(
            data,
            loss=loss,
            optimizer=config.optimizer,
            scheduler=config.scheduler,
            epochs=config.epochs,
            start=config.start,
        )
        for loss in config.losses
    ]
    return plot_panels(
        landscapes, trajectories, fig=fig, log=config.log, effective=config.effective, title=title
    )


def _maps_only(
    config: PlotConfig, landscapes: list[Landscape], fig: Figure, title: str | None
) -> PanelFigure:
    axes = panel_axes(fig, len(landscapes), extra=(0.0, 0.4))
    for ax, landscape in zip(axes, landscapes, strict=True):
        shown = landscape
        decay = config.optimizer.l2_weight_decay
        if config.effective and decay > 0:
            shown = landscape.with_weight_decay(decay)
        plot_landscape(shown, ax=ax, log=config.log)
        ax.set_title(landscape.loss.title)
    caption = title or "Loss landscape"
    fig.suptitle(caption)
    fig.tight_layout()
    return PanelFigure(fig, axes, [], caption)
