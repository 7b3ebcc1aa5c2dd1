"""The ``gdscope`` command: parse arguments into typed configs, call the library, format results.

Bad input of any kind ends with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from . import __version__
from .config import PlotConfig
from .data import DataSpec
from .errors import GdscopeError
from .landscape import ARTICLE_GRID, MAX_GRID_SIZE, Grid
from .losses import ARTICLE_LOSSES, LOSS_NAMES, LossSpec
from .optimizers import OPTIMIZERS, OptimizerSpec, SchedulerSpec, parse_assignments
from .output import FIGURE_FORMATS
from .sgd import SGDConfig
from .train import ARTICLE_START, MAX_EPOCHS

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are a single line: ``gdscope: error: …``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"gdscope: error: {message} (see '{self.prog} --help')\n")


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data (defaults: the article's)")
    spec = DataSpec()
    group.add_argument("--seed", type=_integer, default=spec.seed, help="NumPy legacy seed")
    group.add_argument("--n", type=_integer, default=spec.n, help="number of points")
    group.add_argument(
        "--coefficients",
        type=_number,
        nargs=3,
        metavar=("A", "B", "C"),
        default=(spec.quadratic, spec.linear, spec.constant),
        help="y = A·x² + B·x + C + noise (default 0.75 1 2)",
    )
    group.add_argument("--noise", type=_number, default=spec.noise, help="noise level")


def _add_sgd_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("optimizer (default: torch.optim.SGD)")
    group.add_argument(
        "--optimizer",
        default="sgd",
        metavar="NAME",
        help=f"any of {', '.join(OPTIMIZERS)} (default sgd)",
    )
    group.add_argument(
        "--opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="optimizer keyword argument, repeatable (e.g. --opt betas=0.9,0.99)",
    )
    group.add_argument(
        "--scheduler", metavar="NAME", help="a torch.optim.lr_scheduler class, e.g. steplr"
    )
    group.add_argument(
        "--sched", action="append", default=[], metavar="KEY=VALUE", help="scheduler argument"
    )
    group.add_argument(
        "--lr", type=_number, help="learning rate (SGD default 0.1, others torch's default)"
    )
    group.add_argument("--momentum", type=_number, default=0.0)
    group.add_argument("--dampening", type=_number, default=0.0)
    group.add_argument("--weight-decay", type=_number, default=0.0)
    group.add_argument("--nesterov", action="store_true")
    group.add_argument("--maximize", action="store_true")
    group.add_argument(
        "--epochs", type=_integer, default=100, help=f"full-batch steps, 1..{MAX_EPOCHS}"
    )
    group.add_argument(
        "--start",
        type=_number,
        nargs=2,
        metavar=("W", "B"),
        default=ARTICLE_START,
        help="start weight and bias (default 6 -3)",
    )
    group.add_argument("--huber-delta", type=_number, default=1.0, help="HuberLoss delta")
    group.add_argument("--smoothl1-beta", type=_number, default=1.0, help="SmoothL1Loss beta")


def _add_output_options(parser: argparse.ArgumentParser, *, what: str) -> None:
    parser.add_argument("--out", type=Path, required=True, help=what)
    parser.add_argument("--force", action="store_true", help="overwrite existing output")
    parser.add_argument("--dpi", type=_number, default=110, help="raster resolution")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gdscope",
        description="See what a PyTorch optimizer does: loss landscapes and optimizer paths.",
    )
    parser.add_argument("--version", action="version", version=f"gdscope {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser("train", help="train the neuron and print the losses")
    train.add_argument("--loss", choices=LOSS_NAMES, default="mse")
    train.add_argument("--log", action="store_true", help="print the article's epoch log")
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    _add_sgd_options(train)
    _add_data_options(train)

    plot = commands.add_parser("plot", help="draw a loss map with the optimizer's path")
    plot.add_argument(
        "--loss",
        nargs="+",
        choices=(*LOSS_NAMES, "all"),
        default=["all"],
        help="one or more losses, one panel each; 'all' = the article's four (default)",
    )
    _add_sgd_options(plot)
    _add_data_options(plot)
    grid = plot.add_argument_group("grid")
    grid.add_argument(
        "--grid-size",
        type=_integer,
        nargs="+",
        metavar="N",
        default=[ARTICLE_GRID.w_size],
        help=f"samples per axis (one value, or weight and bias), 2..{MAX_GRID_SIZE}",
    )
    grid.add_argument("--w-range", type=_number, nargs=2, metavar=("LO", "HI"), default=(-5.0, 8.0))
    grid.add_argument("--b-range", type=_number, nargs=2, metavar=("LO", "HI"), default=(-5.0, 8.0))
    show = plot.add_argument_group("display")
    show.add_argument("--log-color", action="store_true", help="logarithmic colour scale")
    show.add_argument(
        "--effective",
        action="store_true",
        help="with weight decay, draw the objective SGD minimizes: loss + wd/2·(w²+b²)",
    )
    show.add_argument("--no-path", action="store_true", help="draw the map only")
    show.add_argument("--title", help="figure title")
    _add_output_options(plot, what="image file (.png, .svg or .pdf)")

    figure = commands.add_parser("figure", help="draw one of the article's figures")
    figure.add_argument("key", help="fig01 … fig10 (or its number or name)")
    _add_output_options(figure, what="image file (.png, .svg or .pdf)")

    reproduce = commands.add_parser("reproduce", help="draw all the article's figures + gallery")
    _add_output_options(reproduce, what="output directory")
    reproduce.add_argument("--format", choices=FIGURE_FORMATS, default="png")
    return parser


def _losses(names: Sequence[str], delta: float, beta: float) -> tuple[LossSpec, ...]:
    chosen: list[str] = []
    for name in names:
        for item in [x.name for x in ARTICLE_LOSSES] if name == "all" else [name]:
            if item not in chosen:
                chosen.append(item)
    return tuple(LossSpec(name, delta=delta, beta=beta) for name in chosen)


_SGD_FLAGS = ("momentum", "dampening", "weight_decay", "nesterov", "maximize")


def _optimizer(ns: argparse.Namespace) -> OptimizerSpec:
    """SGD from its own flags (and --opt), any other optimizer from --opt (and --lr)."""
    opts = parse_assignments(ns.opt, what="--opt")
    name = ns.optimizer.lower()
    if name == "sgd":
        given = {flag: getattr(ns, flag) for flag in _SGD_FLAGS}
        given["lr"] = 0.1 if ns.lr is None else ns.lr
        unknown = set(opts) - {"lr", *_SGD_FLAGS}
        if unknown:
            raise GdscopeError(f"SGD got unknown argument(s) {', '.join(sorted(unknown))}")
        return SGDConfig(**{**given, **opts}).spec()
    defaults = SGDConfig()
    used = [
        f"--{f.replace('_', '-')}" for f in _SGD_FLAGS if getattr(ns, f) != getattr(defaults, f)
    ]
    if used:
        raise GdscopeError(f"{', '.join(used)} apply to SGD only; use --opt KEY=VALUE for {name}")
    if ns.lr is not None:
        opts.setdefault("lr", ns.lr)
    return OptimizerSpec.of(name, **opts)


def _scheduler(ns: argparse.Namespace) -> SchedulerSpec | None:
    if ns.scheduler is None:
        if ns.sched:
            raise GdscopeError("--sched needs --scheduler")
        return None
    return SchedulerSpec.of(ns.scheduler, **parse_assignments(ns.sched, what="--sched"))


def _data(ns: argparse.Namespace) -> DataSpec:
    a, b, c = ns.coefficients
    return DataSpec(seed=ns.seed, n=ns.n, quadratic=a, linear=b, constant=c, noise=ns.noise)


def plot_config(ns: argparse.Namespace) -> PlotConfig:
    """The typed configuration behind ``gdscope plot``."""
    sizes = ns.grid_size
    if len(sizes) > 2:
        raise GdscopeError("--grid-size takes one value or two (weight, bias)")
    w_size, b_size = (sizes[0], sizes[0]) if len(sizes) == 1 else sizes
    return PlotConfig(
        data=_data(ns),
        losses=_losses(ns.loss, ns.huber_delta, ns.smoothl1_beta),
        optimizer=_optimizer(ns),
        scheduler=_scheduler(ns),
        epochs=ns.epochs,
        start=tuple(ns.start),
        grid=Grid(tuple(ns.w_range), tuple(ns.b_range), w_size, b_size),
        log=ns.log_color,
        effective=ns.effective,
        path=not ns.no_path,
    )


def _check_dpi(dpi: float) -> float:
    if not 10 <= dpi <= 1200:
        raise GdscopeError(f"--dpi must be in [10, 1200], got {dpi:g}")
    return dpi


def _run_train(ns: argparse.Namespace) -> int:
    import torch

    from .data import make_data
    from .train import train

    loss = LossSpec(ns.loss, delta=ns.huber_delta, beta=ns.smoothl1_beta)
    dtype = torch.float64 if ns.dtype == "float64" else torch.float32
    run = train(
        make_data(_data(ns)),
        loss=loss,
        optimizer=_optimizer(ns),
        scheduler=_scheduler(ns),
        epochs=ns.epochs,
        start=tuple(ns.start),
        dtype=dtype,
    )
    # With --log, stdout carries exactly the article's lines; the summary goes to stderr.
    out = sys.stderr if ns.log else sys.stdout
    if ns.log:
        print("\n".join(run.log_lines()[: run.n_finite]))
    w, b = run.final
    print(f"{loss.title}, {run.label}: weight {w!r}, bias {b!r}", file=out)
    if run.diverged:
        print(f"diverged at step {run.diverged_at}", file=out)
    else:
        print(f"final loss {float(run.losses[-1])!r} after {run.epochs} epochs", file=out)
    return 0


def _run_plot(ns: argparse.Namespace) -> int:
    from .figures import build_plot
    from .output import figure_format, save_figure

    config = plot_config(ns)
    figure_format(ns.out)
    _check_dpi(ns.dpi)
    drawn = build_plot(config, title=ns.title)
    path = save_figure(drawn.figure, ns.out, force=ns.force, dpi=ns.dpi, config=config.to_dict())
    print(path)
    return 0


def _run_figure(ns: argparse.Namespace) -> int:
    from .article import article_figure, draw_article_figure
    from .output import figure_format, save_figure

    spec = article_figure(ns.key)
    figure_format(ns.out)
    _check_dpi(ns.dpi)
    fig = draw_article_figure(spec)
    record = {"figure": spec.key, "config": spec.config.to_dict()}
    print(save_figure(fig, ns.out, force=ns.force, dpi=ns.dpi, config=record))
    return 0


def _run_reproduce(ns: argparse.Namespace) -> int:
    from .reproduce import reproduce

    _check_dpi(ns.dpi)
    paths = reproduce(
        ns.out,
        fmt=ns.format,
        force=ns.force,
        dpi=ns.dpi,
        progress=lambda spec, path: print(f"Fig. {spec.number:>2}  {path}", flush=True),
    )
    print(f"gallery: {paths[-1]}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    handlers = {
        "train": _run_train,
        "plot": _run_plot,
        "figure": _run_figure,
        "reproduce": _run_reproduce,
    }
    try:
        return handlers[ns.command](ns)
    except GdscopeError as error:
        print(f"gdscope: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gdscope: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
