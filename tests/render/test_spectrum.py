"""The spectrum chart: the density on a log scale with the top eigenvalues marked where they
are, the stems without a density, the summary's numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from gdscope.nets.curvature import CurvatureOptions, Density, Spectrum
from gdscope.render.spectrum import plot_spectrum, spectrum_summary


def _spectrum(density: Density | None, **fields) -> Spectrum:
    return Spectrum(np.array([3.0, 1.5]), torch.zeros(2, 10), np.array([1e-6, 1e-5]), True,
                    parameters=10, samples=50, density=density, hvps=42,
                    options=CurvatureOptions(top=2), **fields)  # fmt: skip


def test_density_is_drawn_on_a_log_scale_with_the_top_eigenvalues_marked():
    nodes = np.array([[-0.5, 0.0, 1.5, 3.0]])
    density = Density(nodes, np.array([[0.2, 0.6, 0.1, 0.1]]))
    ax = Figure().add_subplot()
    plot_spectrum(_spectrum(density, trace=4.5, trace_se=0.25, trace_samples=30), ax=ax)
    assert ax.get_yscale() == "log"
    marks = [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert marks == [3.0, 1.5]
    curve = ax.get_lines()[0]
    assert curve.get_xdata()[np.argmax(curve.get_ydata())] == pytest.approx(0.0, abs=0.05)
    text = ax.texts[0].get_text()
    assert "trace 4.5 ± 0.25 (Hutchinson, 30 vectors" in text and "42 Hessian-vector" in text


def test_without_a_density_the_top_eigenvalues_are_stems():
    ax = Figure().add_subplot()
    plot_spectrum(_spectrum(None), ax=ax)
    assert ax.get_yscale() == "linear" and ax.get_xlabel() == "rank"
    assert len(ax.containers) == 1  # the stem container
    np.testing.assert_array_equal(ax.containers[0].markerline.get_ydata(), [3.0, 1.5])


def test_the_caption_says_what_is_unfinished_and_the_summary_leaves_it_to_the_cli():
    unfinished = _spectrum(None, interrupted=True)
    text = spectrum_summary(unfinished)
    assert text.splitlines()[0] == "top 2: 3, 1.5" and "interrupted" not in text
    ax = Figure().add_subplot()
    plot_spectrum(unfinished, ax=ax)
    assert ax.texts[0].get_text().splitlines()[-1] == "interrupted: what finished is shown"


@pytest.mark.parametrize("count", [27, 300])
def test_a_long_caption_is_wrapped_inside_the_figure_without_warnings(count):
    from gdscope.jobs.hessian import draw_spectrum

    values = np.linspace(5, -1, count) * 1.2345678
    spectrum = Spectrum(values, torch.zeros(count, count), np.full(count, 1e-6), False,
                        parameters=count, samples=50, hvps=42, interrupted=True,
                        options=CurvatureOptions(top=count))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tight_layout's "not applied" among them
        fig = draw_spectrum(spectrum)
        fig.draw_without_rendering()  # (lays the caption box out)
    (ax,) = fig.axes
    caption = ax.texts[0]
    box = caption.get_bbox_patch().get_window_extent()
    assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1
    assert fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1
    assert ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1
    # Under the chart and its x-axis label: it covers no curve.
    label = ax.xaxis.label.get_window_extent()
    assert box.y1 <= ax.bbox.y0 and box.y1 <= label.y0
    assert "top eigenvalues (Lanczos)" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ("more)" in caption.get_text()) == (count > 60)
