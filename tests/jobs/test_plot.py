"""``plot_results`` with overlays: their entries join the one figure legend below the panels,
and no legend is left inside a panel to cover its map."""

from __future__ import annotations

from gdscope.jobs.plot import plot_results, run_config
from gdscope.jobs.plotconfig import PlotConfig
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.testfunctions import TestFunction


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
