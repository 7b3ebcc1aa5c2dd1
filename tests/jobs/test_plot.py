"""Building a figure from a PlotConfig."""

from __future__ import annotations

from matplotlib.figure import Figure

from gdscope.jobs.plotconfig import PlotConfig
from gdscope.optim.sgdconfig import SGDConfig

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
