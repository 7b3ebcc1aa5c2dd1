"""Overlays: gradient, step, momentum, batch and lr arrows drawn on a panel."""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.quiver import Quiver

from gdscope.jobs.plot import build_plot
from gdscope.jobs.plotconfig import PlotConfig
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.losses import LossSpec


def test_overlays_draw_their_arrows(article_data):
    config = PlotConfig(losses=(LossSpec("mse"),), epochs=20, batch_size=10,
                        optimizer=OptimizerSpec.of("sgd", lr=0.05, momentum=0.9),
                        overlays=("gradient", "steps", "momentum", "batches", "lr"))  # fmt: skip
    drawn = build_plot(config, fig=Figure())
    ax = drawn.axes[0]
    quivers = {q.get_label(): q for q in ax.findobj(Quiver)}
    assert quivers["−gradient"].N == 15 * 15
    steps = 20 * 5
    drawn_steps = quivers["actual step"].N
    assert drawn_steps == steps // 2  # thinned to at most 60 arrows
    assert quivers["−lr × momentum buffer"].N == quivers["actual step"].N
    assert quivers["−lr × per-batch gradient"].N % 5 == 0
    inset = [child for child in ax.child_axes if child.get_title() == "lr per step"]
    assert len(inset) == 1 and len(inset[0].lines[0].get_xdata()) == steps
