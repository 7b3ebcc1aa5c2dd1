"""Sharpness along training against the optimizer's stability threshold: the edge of stability.

Each run's sharpness (its top Hessian eigenvalue, or Adam's preconditioned one) is a solid line
and its threshold (``nets.sharpness``: ``2/η`` for gradient descent, …) a dashed line of the same
colour, drawn as a step because the learning rate may change; the legend says which threshold
and why. The training loss, drawn beside it, is non-monotone once a run is at the edge.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes

from gdscope.nets.sharpness import SharpnessTrace

__all__ = ["plot_sharpness", "plot_training_loss"]

COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e")


def plot_sharpness(runs: Sequence[tuple[str, SharpnessTrace]], *, ax: Axes) -> None:
    """Sharpness against step for each ``(label, trace)``, with its threshold dashed."""
    measures = {trace.measure for _, trace in runs}
    for i, (label, trace) in enumerate(runs):
        color = COLORS[i % len(COLORS)]
        ax.plot(trace.steps, trace.values[:, 0], color=color, lw=1.4, label=label)
        for k in range(1, trace.values.shape[1]):
            ax.plot(trace.steps, trace.values[:, k], color=color, lw=0.7, alpha=0.5)
        finite = trace.threshold[np.isfinite(trace.threshold)]
        if len(finite):
            formula = trace.rule.split(":")[0]
            ax.step(trace.steps, trace.threshold, where="post", color=color, ls="--", lw=1,
                    label=f"{formula} = {finite[-1]:.3g}")  # fmt: skip
    drawn = dict.fromkeys(t.rule for _, t in runs if np.isfinite(t.threshold).any())
    missing = dict.fromkeys(t.rule for _, t in runs if t.rule and t.rule not in drawn)
    notes = (["dashed: " + "; ".join(drawn) + " (the stability border)"]
             if drawn else []) + list(missing)  # fmt: skip
    if notes:  # which threshold is drawn, and why: once, under the chart
        ax.text(0.01, 0.01, "\n".join(notes), transform=ax.transAxes, fontsize=7, va="bottom",
                wrap=True)  # fmt: skip
    measure = "preconditioned sharpness λ₁(P⁻¹H)" if measures == {"preconditioned"} else (
        "sharpness λ₁(H)")  # fmt: skip
    modes = {"train mode" if trace.train else "eval mode" for _, trace in runs}
    ax.set_ylabel(f"{measure}, {' and '.join(sorted(modes))}")
    ax.set_xlabel("step")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right", fontsize=7.5, ncols=2, bbox_to_anchor=(1, 0.06))


LOSS_TITLE = "training loss at each step (on that step's batch)"
"""True of a full-batch run (the batch is all the data) and of a mini-batch ``fit`` alike."""


def plot_training_loss(runs: Sequence[tuple[str, np.ndarray]], *, ax: Axes) -> None:
    """The training loss of every step for each ``(label, losses)``, on a log scale."""
    for i, (label, losses) in enumerate(runs):
        ax.semilogy(np.arange(1, len(losses) + 1), losses, color=COLORS[i % len(COLORS)],
                    lw=0.9, label=label)  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(LOSS_TITLE)
    ax.legend(loc="upper right", fontsize=7.5)
