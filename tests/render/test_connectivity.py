"""The mode-connectivity figure's renderers draw the result's own numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from gdscope.nets.curves import connect
from gdscope.render.connectivity import (
    connect_summary,
    plane_labels,
    plot_connect_plane,
    plot_paths,
)


@pytest.fixture(scope="module")
def result():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(60, 4, generator=generator)
    y = (x[:, 0] > 0).long()
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        nets.append(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)))
    return connect(*nets, (x, y), nn.CrossEntropyLoss(), epochs=3, points=7, grid=5,
                   batch_size=20)  # fmt: skip


def test_the_paths_are_the_measured_losses_labelled_with_their_highest(result):
    ax = Figure().add_subplot()
    drawn = plot_paths(result, ax=ax, names=("a.pt", "b.pt"))
    np.testing.assert_array_equal(drawn.line.get_xdata(), result.ts)
    np.testing.assert_array_equal(drawn.line.get_ydata(), result.line_loss)
    np.testing.assert_array_equal(drawn.curve.get_ydata(), result.curve_loss)
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == [f"straight line (highest loss {result.line_max:.3g})",
                      f"Bézier curve (highest loss {result.curve_max:.3g})"]  # fmt: skip
    assert ax.get_yscale() == "log"
    ax.figure.draw_without_rendering()
    shown = [t.get_text() for t in (*ax.get_yticklabels(), *ax.get_yticklabels(minor=True))]
    assert shown and not any("$" in text or "times" in text for text in shown)  # 0.05, not 5×10⁻²
    ticks = [tick.get_text() for tick in ax.get_xticklabels()]
    assert ticks[0] == "0\na.pt" and ticks[-1] == "1\nb.pt"
    linear = Figure().add_subplot()
    plot_paths(result, ax=linear, log=False)
    assert linear.get_yscale() == "linear"


def test_the_plane_shows_the_paths_through_the_three_networks_to_scale(result):
    ax = Figure().add_subplot()
    drawn = plot_connect_plane(result, ax=ax, names=("a.pt", "b.pt"))
    a, b = result.corners[:2]
    np.testing.assert_array_equal(drawn.line.get_xdata(), [a[0], b[0]])
    np.testing.assert_array_equal(drawn.line.get_ydata(), [a[1], b[1]])
    curve = np.column_stack([drawn.curve.get_xdata(), drawn.curve.get_ydata()])
    np.testing.assert_allclose(curve[[0, 50, -1]], result.curve_xy([0, 0.5, 1]))
    np.testing.assert_array_equal(drawn.corners.get_offsets(), result.corners)
    assert [t.get_text() for t in ax.texts if t.get_text() in ("a.pt", "b.pt", "bend θ")] == [
        "a.pt", "b.pt", "bend θ"]  # fmt: skip
    assert (ax.get_ylabel(), ax.get_xlabel()) == plane_labels(("a.pt", "b.pt"))
    assert ax.get_aspect() == 1.0  # both axes are distances between weights
    assert drawn.landscape.colorbar is not None


def test_the_summary_says_both_highest_losses(result):
    line = connect_summary(result)
    assert f"straight line {result.line_max:.4g}" in line
    assert f"curve {result.curve_max:.4g}" in line
