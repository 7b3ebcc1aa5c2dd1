"""Contour and 3D surface views: the path lies on the surface torch computed."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from gdscope.engines.reference import train
from gdscope.jobs.plot import build_plot
from gdscope.jobs.plotconfig import PlotConfig
from gdscope.problem.losses import LossSpec
from gdscope.problem.maps import loss_map
from gdscope.render.surface3d import plot_surface3d


def test_contour_view_labels_levels_and_surface_path_lies_on_it(article_data):
    config = PlotConfig(losses=(LossSpec("mse"),), view="contour", log=True, epochs=10)
    drawn = build_plot(config, fig=Figure())
    assert drawn.panels[0].landscape.lines is not None
    assert drawn.panels[0].landscape.lines.labelTexts
    landscape = loss_map(article_data)
    trajectory = train(article_data, epochs=10)
    fig = Figure()
    artists = plot_surface3d(landscape, trajectory, ax=fig.add_subplot(projection="3d"))
    xs, ys, zs = artists.path.get_data_3d()
    np.testing.assert_array_equal(zs, trajectory.losses)
    np.testing.assert_array_equal(xs, trajectory.biases)
    np.testing.assert_array_equal(ys, trajectory.weights)
