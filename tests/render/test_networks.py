"""The honesty chart drawn beside a network's landscape."""

from __future__ import annotations

import numpy as np


def test_honesty_chart_draws_both_curves_and_warns_above_them():
    from matplotlib.figure import Figure

    from gdscope.nets.projection import Honesty
    from gdscope.render.networks import plot_honesty

    steps = np.arange(4)
    true = np.array([1.0, 0.5, 0.3, 0.2])
    fine = Honesty(true, true + 0.01)
    ax = Figure().add_subplot()
    line, plane = plot_honesty(fine, steps, ax=ax)
    np.testing.assert_array_equal(line.get_ydata(), true)
    np.testing.assert_array_equal(plane.get_ydata(), true + 0.01)
    assert fine.warning() is None and ax.get_title(loc="left") == ""
    misleading = Honesty(true, np.array([0.6, 0.5, 0.3, 0.2]))  # 0.4 of a 0.8 range
    ax = Figure().add_subplot()
    plot_honesty(misleading, steps, ax=ax)
    title = ax.get_title(loc="left")
    assert title.startswith("⚠ the projected path misleads") and "50%" in title
    assert max(len(line) for line in title.splitlines()) <= 80
