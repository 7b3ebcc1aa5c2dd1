"""The Hessian's spectrum of a model: its top eigenvalues, trace and spectral density.

The density (stochastic Lanczos quadrature) is drawn on a log scale, as PyHessian's figures do,
because a network's spectrum is a tall bulk near zero with a few outliers; the top eigenvalues
are marked on it. Without a density the top eigenvalues are drawn as stems.
"""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from gdscope.nets.curvature import Spectrum

__all__ = ["plot_spectrum", "spectrum_summary"]

TOP_COLOR = "#d7191c"
DENSITY_COLOR = "#2c7bb6"
CAPTION_SIZE = 7.5
CAPTION_VALUES = 60
"""The most eigenvalues the caption lists (the stems, ``--save`` and the CLI show them all)."""


def spectrum_summary(spectrum: Spectrum, *, width: int | None = None, most: int | None = None
                     ) -> str:  # fmt: skip
    """What was computed, in a few short lines (the figure's caption, the CLI's report): the
    eigenvalues wrapped to ``width`` characters, the first ``most`` of them if given."""
    options = spectrum.options
    values = spectrum.eigenvalues
    shown = values if most is None else values[:most]
    top = ", ".join(f"{v:.4g}" for v in shown)
    if len(shown) < len(values):
        top += f", … ({len(values) - len(shown)} more)"
    unmet = "" if spectrum.converged else f" (not all within {options.tol:g}: see residuals)"
    head = f"top {len(values)}: {top}{unmet}"
    lines = [head] if width is None else textwrap.wrap(head, width, subsequent_indent="  ")
    if spectrum.trace is not None and spectrum.trace_se is not None:
        lines.append(f"trace {spectrum.trace:.4g} ± {spectrum.trace_se:.2g} "
                     f"(Hutchinson, {spectrum.trace_samples} vectors, ± 1 s.e.)")  # fmt: skip
    mode = "train" if options.train else "eval"
    lines.append(f"{spectrum.parameters:,} parameters, {spectrum.samples:,} samples, {mode} mode, "
                 f"{spectrum.hvps} Hessian-vector products")  # fmt: skip
    return "\n".join(lines)


def plot_spectrum(spectrum: Spectrum, *, ax: Axes, points: int = 400) -> None:
    """The density with the top eigenvalues marked, or the top eigenvalues alone."""
    values = spectrum.eigenvalues
    density = spectrum.density
    if density is not None:
        weighted = density.weights > 0
        nodes = density.nodes[weighted]
        low, high = float(nodes.min()), float(nodes.max())
        if len(values):
            high = max(high, float(values.max()))
        span = (high - low) or max(abs(high), 1.0)
        sigma = 0.01 * span
        grid = np.linspace(low - 0.05 * span, high + 0.05 * span, points)
        curve = density.smoothed(grid, sigma)
        floor = max(float(curve.max()) * 1e-8, 1e-300)
        label = f"density (SLQ, {len(density.nodes)} run(s), σ = {sigma:.2g})"
        ax.semilogy(grid, np.maximum(curve, floor), color=DENSITY_COLOR, label=label)
        ax.set_ylim(bottom=floor * 10)
        ax.set_ylabel("spectral density")
        for i, value in enumerate(values):
            ax.axvline(value, color=TOP_COLOR, ls="--", lw=1,
                       label="top eigenvalues (Lanczos)" if i == 0 else None)  # fmt: skip
        ax.set_xlabel("eigenvalue")
    elif len(values):
        index = np.arange(1, len(values) + 1)
        ax.stem(index, values, linefmt=TOP_COLOR, markerfmt="o", basefmt=" ",
                label="top eigenvalues (Lanczos)")  # fmt: skip
        if len(values) <= 30:
            ax.set_xticks(index)
        else:  # a tick per rank would overlap
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("rank")
        ax.set_ylabel("eigenvalue")
        ax.axhline(0, color="0.6", lw=0.8)
    ax.legend(loc="upper right", fontsize=8)
    # Wrapped to the axes' width (a digit is about 0.64 em wide), so the caption stays inside
    # however many eigenvalues there are (else tight_layout gives up and it runs off).
    width = ax.bbox.width / ax.figure.dpi * 72 * 0.94
    caption = spectrum_summary(spectrum, width=max(20, int(width / (0.64 * CAPTION_SIZE))),
                               most=CAPTION_VALUES)  # fmt: skip
    if spectrum.interrupted:
        caption += "\ninterrupted: what finished is shown"
    box = {"facecolor": "white", "alpha": 0.85, "lw": 0}
    # Under the x-axis label, not on the chart, where it would cover the curve's tail.
    ax.annotate(caption, xy=(0, 0), xycoords=("axes fraction", ax.xaxis.label), xytext=(5, -4),
                textcoords="offset points", fontsize=CAPTION_SIZE, va="top", ha="left",
                bbox=box)  # fmt: skip
