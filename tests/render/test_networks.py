"""The honesty chart drawn beside a network's landscape."""

from __future__ import annotations

import numpy as np


def test_honesty_chart_draws_both_curves_and_warns_above_them():
    from matplotlib.figure import Figure

    from gdscope.nets.projection import Honesty
    from gdscope.render.networks import HONESTY_TITLE, plot_honesty

    steps = np.arange(4)
    true = np.array([1.0, 0.5, 0.3, 0.2])
    fine = Honesty(true, true + 0.01)
    ax = Figure().add_subplot()
    line, plane = plot_honesty(fine, steps, ax=ax)
    np.testing.assert_array_equal(line.get_ydata(), true)
    np.testing.assert_array_equal(plane.get_ydata(), true + 0.01)
    assert fine.warning() is None and not ax.texts
    assert ax.get_title() == HONESTY_TITLE  # the right panel says what it is
    assert ax.get_ylabel() == "loss at that step"  # not a second bare "loss" by the colour bar
    misleading = Honesty(true, np.array([0.6, 0.5, 0.3, 0.2]))  # 0.4 of a 0.8 range
    fig = Figure()
    ax = fig.add_subplot()
    plot_honesty(misleading, steps, ax=ax)
    assert ax.get_title() == HONESTY_TITLE
    (warning,) = ax.texts
    text = warning.get_text()
    assert text.startswith("⚠ the projected path misleads") and "50%" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    fig.tight_layout()
    fig.draw_without_rendering()
    box = warning.get_window_extent()
    assert box.y1 <= ax.xaxis.label.get_window_extent().y0  # under the chart, off the curves
    assert box.y0 >= 0
