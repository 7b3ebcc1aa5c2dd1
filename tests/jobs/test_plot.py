"""Building a figure from a PlotConfig."""

from __future__ import annotations

from matplotlib.figure import Figure

from gdscope.jobs.plot import plot_results, run_config
from gdscope.jobs.plotconfig import PlotConfig
from gdscope.optim.sgdconfig import SGDConfig
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.testfunctions import TestFunction

from ..reference import SMALL


def test_build_plot_computes_each_map_once(monkeypatch):
    import gdscope.jobs.plot as figures

    calls = []
    real = figures.loss_map
    monkeypatch.setattr(figures, "loss_map", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    cache = {}
    config = PlotConfig(grid=SMALL, epochs=5)
    figures.build_plot(config, fig=Figure(), cache=cache)
    assert len(calls) == 4
    figures.build_plot(
        PlotConfig(grid=SMALL, epochs=5, optimizer=SGDConfig(momentum=0.9).spec()), cache=cache
    )
    assert len(calls) == 4  # the second configuration reuses the maps


def test_overlay_entries_join_the_figure_legend_and_leave_the_maps_clear():
    config = PlotConfig(
        losses=(TestFunction("himmelblau"), TestFunction("rosenbrock")),
        optimizer=OptimizerSpec.of("sgd", lr=1e-3, momentum=0.8), epochs=10, view="contour",
        overlays=("gradient", "momentum"),
    )  # fmt: skip
    drawn = plot_results(config, *run_config(config))
    assert all(ax.get_legend() is None for ax in drawn.axes)
    (legend,) = drawn.figure.legends
    labels = [text.get_text() for text in legend.get_texts()]
    assert len(labels) == len(set(labels))
    assert {"known minimum", "start", "end", "−gradient", "−lr × momentum buffer"} <= set(labels)
