"""Fig. 7: the classical momentum step beside the Nesterov look-ahead step, from real numbers.

The article drew this by hand. Here the vectors come from the article's own problem: the point
and velocity after a few steps of SGD with momentum, and the true gradients there and at the
look-ahead point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gdscope.engines.reference import train
from gdscope.optim.sgdconfig import SGDConfig
from gdscope.problem.data import Dataset
from gdscope.problem.grid import ARTICLE_START
from gdscope.problem.losses import LossSpec
from gdscope.problem.maps import Grid, loss_and_gradient, loss_map
from gdscope.render.panels import CMAP

__all__ = ["MomentumVectors", "momentum_vectors", "plot_momentum_step", "plot_nesterov_diagram"]


@dataclass(frozen=True)
class MomentumVectors:
    """Everything in (weight, bias) coordinates at step ``step`` of a heavy-ball run."""

    step: int
    point: np.ndarray
    """Current parameters p."""
    momentum: np.ndarray
    """The momentum part of the next step, μ·(p − p_prev) = −lr·μ·v."""
    gradient_step: np.ndarray
    """−lr·∇L(p): the gradient part of a classical momentum step."""
    lookahead_gradient_step: np.ndarray
    """−lr·∇L(p + momentum): the gradient part of a Nesterov step, taken at the look-ahead point."""

    @property
    def classical_step(self) -> np.ndarray:
        return self.momentum + self.gradient_step

    @property
    def nesterov_step(self) -> np.ndarray:
        return self.momentum + self.lookahead_gradient_step


def momentum_vectors(
    data: Dataset,
    *,
    loss: LossSpec | None = None,
    lr: float = 0.1,
    momentum: float = 0.9,
    step: int = 3,
    start: tuple[float, float] = ARTICLE_START,
) -> MomentumVectors:
    """Run heavy-ball SGD for ``step`` steps with the real optimizer and measure both updates."""
    loss = loss or LossSpec()
    run = train(data, loss=loss, sgd=SGDConfig(lr=lr, momentum=momentum), epochs=step, start=start)
    path = run.path
    point, previous = path[step], path[step - 1]
    # torch: v_t = μ v_{t-1} + g_t and p_{t+1} = p_t − lr v_t, so −lr μ v_{t-1} = μ (p_t − p_{t-1}).
    carried = momentum * (point - previous)
    _, grad = loss_and_gradient(data, loss, *point)
    ahead = point + carried
    _, grad_ahead = loss_and_gradient(data, loss, *ahead)
    return MomentumVectors(
        step, point, carried, -lr * np.asarray(grad), -lr * np.asarray(grad_ahead)
    )


def _arrow(
    ax: Axes,
    origin: np.ndarray,
    vector: np.ndarray,
    color: str,
    label: str,
    *,
    above: bool = True,
) -> None:
    # Coordinates are (weight, bias); the plot puts bias on x.
    ax.annotate(
        "",
        xy=(origin[1] + vector[1], origin[0] + vector[0]),
        xytext=(origin[1], origin[0]),
        arrowprops={"arrowstyle": "-|>", "color": color, "lw": 2, "mutation_scale": 16},
    )
    # Labels sit beside the arrow's middle, above-right or below-left, so pairs never collide.
    mid = origin + vector / 2
    ax.annotate(
        label,
        xy=(mid[1], mid[0]),
        xytext=(8, 6) if above else (-8, -8),
        textcoords="offset points",
        ha="left" if above else "right",
        va="bottom" if above else "top",
        fontsize=8,
        color=color,
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1},
    )


def plot_momentum_step(
    vectors: MomentumVectors, *, ax: Axes | None = None, nesterov: bool = False
) -> Axes:
    """Draw one update as vectors: momentum, gradient step, and the resulting step."""
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    p = vectors.point
    _arrow(ax, p, vectors.momentum, "#2b83ba", "momentum  μ·(p − p_prev)")
    if nesterov:
        ahead = p + vectors.momentum
        _arrow(ax, ahead, vectors.lookahead_gradient_step, "#d7191c", "gradient at look-ahead")
        _arrow(ax, p, vectors.nesterov_step, "black", "Nesterov step", above=False)
        ax.plot([ahead[1]], [ahead[0]], "o", color="#d7191c", markersize=5)
        ax.set_title("(b) Nesterov: gradient taken at the look-ahead point")
    else:
        _arrow(ax, p, vectors.gradient_step, "#d7191c", "gradient step  −lr·∇L(p)")
        _arrow(ax, p, vectors.classical_step, "black", "momentum step", above=False)
        ax.set_title("(a) Momentum: gradient taken at the current point")
    ax.plot([p[1]], [p[0]], "o", color="#1a9641", markersize=7)
    ax.annotate("p", xy=(p[1], p[0]), xytext=(-12, -4), textcoords="offset points")
    vertical, horizontal = LossSpec.labels  # the article's figure: nn.Linear(1, 1)'s parameters
    ax.set_xlabel(horizontal)
    ax.set_ylabel(vertical)
    ax.set_aspect("equal")
    return ax


def plot_nesterov_diagram(
    data: Dataset, *, fig: Figure | None = None, loss: LossSpec | None = None, step: int = 3
) -> Figure:
    """Fig. 7: both updates side by side over the loss's contours, at the same point."""
    loss = loss or LossSpec()
    vectors = momentum_vectors(data, loss=loss, step=step)
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure()
    fig.set_size_inches(11, 5.4)
    axes = fig.subplots(1, 2)
    tips = [
        vectors.point + v
        for v in (
            vectors.momentum,
            vectors.classical_step,
            vectors.nesterov_step,
            vectors.momentum + vectors.gradient_step,
        )
    ]
    tips.append(vectors.point + vectors.momentum + vectors.lookahead_gradient_step)
    corners = np.array([vectors.point, *tips])
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    pad = 0.25 * float((hi - lo).max()) + 0.1
    grid = Grid((lo[0] - pad, hi[0] + pad), (lo[1] - pad, hi[1] + pad), 81, 81)
    landscape = loss_map(data, loss, grid)
    for ax, nesterov in zip(axes, (False, True), strict=True):
        ax.contour(
            grid.biases,
            grid.weights,
            landscape.values.numpy(),
            levels=14,
            cmap=CMAP,
            linewidths=0.8,
        )
        plot_momentum_step(vectors, ax=ax, nesterov=nesterov)
        ax.set_xlim(*grid.b_range)
        ax.set_ylim(*grid.w_range)
    fig.suptitle(
        f"Momentum vs Nesterov at step {vectors.step} of SGD(lr=0.1, momentum=0.9) on "
        f"{loss.title} (vectors to scale)"
    )
    fig.tight_layout()
    return fig
