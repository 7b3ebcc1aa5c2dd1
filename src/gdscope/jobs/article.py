"""The article's ten figures: what each shows, the exact configuration, and how to draw it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from gdscope.engines.reference import train
from gdscope.errors import unknown
from gdscope.files import save_figure
from gdscope.jobs.plot import MapCache, build_plot
from gdscope.jobs.plotconfig import PlotConfig
from gdscope.jobs.records import DEFAULT_DPI, record
from gdscope.optim.sgdconfig import SGDConfig
from gdscope.problem.data import make_data
from gdscope.problem.grid import ARTICLE_EPOCHS
from gdscope.problem.losses import LossSpec
from gdscope.render.nesterov import plot_nesterov_diagram
from gdscope.render.panels import plot_data, plot_fit

__all__ = [
    "ARTICLE_FIGURES",
    "ArticleFigure",
    "article_figure",
    "draw_article_figure",
    "make_article_figure",
    "save_article_figure",
]

MSE_ONLY = (LossSpec("mse"),)


@dataclass(frozen=True)
class ArticleFigure:
    key: str
    """``fig01`` … ``fig10``."""
    slug: str
    title: str
    caption: str
    config: PlotConfig
    kind: str
    """``data``, ``fit``, ``plot`` (a map/path figure ``gdscope plot`` can make) or ``nesterov``."""

    @property
    def number(self) -> int:
        return int(self.key[3:])

    def filename(self, fmt: str) -> str:
        return f"{self.key}-{self.slug}.{fmt}"

    def commands(self, out: str) -> list[str]:
        """Shell commands that re-make this figure alone."""
        commands = [f"gdscope figure {self.key} --out {out}"]
        if self.kind == "plot":
            commands.append(self.config.command(out))
        return commands


def _panels(key: str, slug: str, title: str, caption: str, sgd: SGDConfig) -> ArticleFigure:
    return ArticleFigure(key, slug, title, caption, PlotConfig(optimizer=sgd.spec()), "plot")


ARTICLE_FIGURES: tuple[ArticleFigure, ...] = (
    ArticleFigure(
        "fig01",
        "data",
        "The toy data",
        "Fifty points y = 0.75x² + x + 2 + 0.3ε drawn with NumPy's legacy generator, "
        "seed 20240215.",
        PlotConfig(losses=MSE_ONLY),
        "data",
    ),
    ArticleFigure(
        "fig02",
        "fit",
        "The fitted line",
        f"The line w·x + b that a single neuron reaches after {ARTICLE_EPOCHS} epochs of "
        "full-batch SGD (lr 0.1, MSELoss) from w = 6, b = −3. A line cannot follow the parabola, "
        "so it compromises.",
        PlotConfig(losses=MSE_ONLY),
        "fit",
    ),
    ArticleFigure(
        "fig03",
        "mse-map",
        "The MSE loss landscape",
        "MSELoss sampled on a 101×101 grid of (weight, bias) over [−5, 8]²; each sample sits at "
        "its pixel's centre. The diamond marks the grid's minimum.",
        PlotConfig(losses=MSE_ONLY, path=False),
        "plot",
    ),
    ArticleFigure(
        "fig04",
        "mse-path",
        "Gradient descent on the MSE landscape",
        f"The path of SGD (lr 0.1, {ARTICLE_EPOCHS} epochs) from the forced start (w = 6, b = −3): "
        "steps shrink as the gradient flattens near the minimum.",
        PlotConfig(losses=MSE_ONLY),
        "plot",
    ),
    _panels(
        "fig05",
        "losses",
        "Four loss functions",
        f"The same run (lr 0.1, {ARTICLE_EPOCHS} epochs) under MSELoss, L1Loss, HuberLoss and "
        "SmoothL1Loss, each with its own colour scale. MSE's steep walls give large early steps; "
        "the L1-like losses approach more gradually.",
        SGDConfig(),
    ),
    _panels(
        "fig06",
        "momentum",
        "Momentum 0.9",
        "Heavy-ball momentum 0.9 overshoots the minimum and swings back; on MSELoss it comes close "
        "to diverging.",
        SGDConfig(momentum=0.9),
    ),
    ArticleFigure(
        "fig07",
        "nesterov-diagram",
        "Momentum versus Nesterov look-ahead",
        "Both updates at the same point, drawn to scale from the article's problem: classical "
        "momentum adds the gradient at the current point; Nesterov takes it at the point the "
        "momentum is about to carry us to. (torch implements Nesterov in the equivalent "
        "reformulated form, g + μ·v, whose parameters are the look-ahead points.)",
        PlotConfig(losses=MSE_ONLY),
        "nesterov",
    ),
    _panels(
        "fig08",
        "nesterov",
        "Nesterov momentum 0.9",
        "Nesterov's look-ahead gradient corrects course earlier and cuts the overshoot of plain "
        "momentum, most visibly on MSELoss.",
        SGDConfig(momentum=0.9, nesterov=True),
    ),
    _panels(
        "fig09",
        "weight-decay",
        "Weight decay 2.0 (with Nesterov momentum 0.9)",
        "Weight decay pulls every solution toward the origin: SGD now minimizes "
        "loss + (2.0/2)·(w² + b²), whose minimum (the magenta cross) is where each path ends, "
        "not at the loss's own minimum (the diamond).",
        SGDConfig(momentum=0.9, nesterov=True, weight_decay=2.0),
    ),
    _panels(
        "fig10",
        "dampening",
        "Momentum 0.9 with dampening 0.8",
        "Dampening scales each new gradient by (1 − 0.8) before it enters the momentum buffer, "
        "which tames the momentum's swings.",
        SGDConfig(momentum=0.9, dampening=0.8),
    ),
)


def article_figure(key: str) -> ArticleFigure:
    """Look a figure up by key (``fig06``), number (``6``) or slug (``momentum``)."""
    wanted = key.strip().lower()
    for spec in ARTICLE_FIGURES:
        if wanted in {spec.key, spec.slug, str(spec.number), f"fig{spec.number}"}:
            return spec
    raise unknown("figure", key, (spec.key for spec in ARTICLE_FIGURES))


def draw_article_figure(
    spec: ArticleFigure, *, fig: Figure | None = None, cache: MapCache | None = None
) -> Figure:
    """Draw one article figure on ``fig`` (a new ``Figure`` if omitted) and return it."""
    fig = fig if fig is not None else Figure()
    config = spec.config
    title = f"Fig. {spec.number}. {spec.title}"
    if spec.kind == "nesterov":
        plot_nesterov_diagram(make_data(config.data), fig=fig)
        return fig
    if spec.kind in ("data", "fit"):
        data = make_data(config.data)
        fig.set_size_inches(6.4, 4.8)
        ax = fig.subplots()
        plot_data(data, ax=ax)
        if spec.kind == "fit":
            run = train(
                data, loss=config.losses[0], optimizer=config.optimizer, epochs=config.epochs
            )
            plot_fit(data, run, ax=ax)
        ax.legend()
        ax.set_title(title)
        fig.tight_layout()
        return fig
    build_plot(config, fig=fig, cache=cache, title=title)
    return fig


def make_article_figure(
    key: str, out: str | os.PathLike[str], *, dpi: float = DEFAULT_DPI, force: bool = False
) -> Path:
    """One of the article's figures (``gdscope figure``)."""
    spec = article_figure(key)
    return save_article_figure(spec, draw_article_figure(spec), out, dpi=dpi, force=force)


def save_article_figure(
    spec: ArticleFigure,
    fig: Figure,
    out: str | os.PathLike[str],
    *,
    dpi: float = DEFAULT_DPI,
    force: bool = False,
    fmt: str | None = None,
) -> Path:
    """Save a drawn article figure with its record (``gdscope figure`` and ``reproduce``), so
    ``replay`` re-makes either file."""
    rec = record("figure", figure=spec.key, config=spec.config.to_dict(), dpi=dpi)
    return save_figure(fig, out, fmt=fmt, force=force, dpi=dpi, config=rec)
