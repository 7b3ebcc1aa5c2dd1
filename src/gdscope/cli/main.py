"""The ``gdscope`` command: parse arguments into typed configs, call the library, format results.

Bad input of any kind ends with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np

from gdscope.engines.reference import MAX_EPOCHS
from gdscope.errors import GdscopeError
from gdscope.files import FIGURE_FORMATS, check_target
from gdscope.jobs.plotconfig import VIEWS, PlotConfig, load_toml, parse_function
from gdscope.optim.sgdconfig import SGDConfig
from gdscope.optim.specs import OPTIMIZERS, OptimizerSpec, SchedulerSpec, parse_assignments
from gdscope.problem.data import CsvData, DataSpec, make_data
from gdscope.problem.losses import ARTICLE_LOSSES, LOSS_NAMES, LossSpec
from gdscope.problem.maps import MAX_GRID_SIZE, Grid
from gdscope.problem.objective import Objective, default_grid
from gdscope.problem.testfunctions import FUNCTIONS, TestFunction
from gdscope.render.overlays import OVERLAYS
from gdscope.studies.phase import METRICS
from gdscope.version import __version__

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
    group.add_argument(
        "--data", type=Path, metavar="CSV", help="read the points from a CSV file (columns x,y)"
    )
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
        "--epochs", type=_integer, default=100, help=f"passes over the data, 1..{MAX_EPOCHS}"
    )
    group.add_argument(
        "--start",
        type=_number,
        nargs=2,
        metavar=("W", "B"),
        help="start weight and bias (default 6 -3), or a function's y and x (default: its own)",
    )
    group.add_argument(
        "--batch-size",
        type=_integer,
        help="mini-batch SGD: one step per batch of this many points (default: full batch)",
    )
    group.add_argument(
        "--shuffle-seed", type=_integer, default=0, help="seed of the mini-batch shuffle"
    )
    group.add_argument("--huber-delta", type=_number, default=1.0, help="HuberLoss delta")
    group.add_argument("--smoothl1-beta", type=_number, default=1.0, help="SmoothL1Loss beta")


def _add_output_options(parser: argparse.ArgumentParser, *, what: str) -> None:
    parser.add_argument("--out", type=Path, required=True, help=what)
    parser.add_argument("--force", action="store_true", help="overwrite existing output")
    parser.add_argument("--dpi", type=_number, default=110, help="raster resolution")


def _add_grid_options(parser: argparse.ArgumentParser) -> None:
    grid = parser.add_argument_group("landscape grid (default: -5..8, or a function's domain)")
    grid.add_argument(
        "--grid-size",
        type=_integer,
        nargs="+",
        metavar="N",
        help=f"samples per axis (one value, or weight and bias), 2..{MAX_GRID_SIZE} (101)",
    )
    grid.add_argument(
        "--w-range", "--y-range", type=_number, nargs=2, metavar=("LO", "HI"),
        help="vertical range: the weight, or a function's y",
    )  # fmt: skip
    grid.add_argument(
        "--b-range", "--x-range", type=_number, nargs=2, metavar=("LO", "HI"),
        help="horizontal range: the bias, or a function's x",
    )  # fmt: skip


def _add_function_option(parser: argparse.ArgumentParser, *, many: bool) -> None:
    parser.add_argument(
        "--function",
        nargs="+" if many else None,
        metavar="NAME[:KEY=VALUE,...]",
        help=f"a test function instead of the regression: {', '.join(FUNCTIONS)} "
        "(e.g. quadratic:condition=100)",
    )


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    engine = parser.add_argument_group("batched engine")
    engine.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    engine.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    engine.add_argument("--compile", action="store_true", help="torch.compile the step")
    engine.add_argument("--save", type=Path, help="results file: .npz, .csv or .json")


def _add_plot_options(plot: argparse.ArgumentParser) -> None:
    plot.add_argument(
        "--config", type=Path, metavar="TOML", help="read the whole configuration from a TOML file"
    )
    plot.add_argument(
        "--loss",
        nargs="+",
        choices=(*LOSS_NAMES, "all"),
        help="one or more losses, one panel each; 'all' = the article's four (default)",
    )
    _add_function_option(plot, many=True)
    _add_sgd_options(plot)
    _add_data_options(plot)
    _add_grid_options(plot)
    show = plot.add_argument_group("display")
    show.add_argument("--log-color", action="store_true", help="logarithmic colour scale")
    show.add_argument(
        "--effective",
        action="store_true",
        help="with weight decay, draw the objective SGD minimizes: loss + wd/2·(w²+b²)",
    )
    show.add_argument("--no-path", action="store_true", help="draw the map only")
    show.add_argument("--title", help="figure title")
    show.add_argument("--view", choices=VIEWS, default="heatmap", help="map kind (default heatmap)")
    show.add_argument(
        "--overlay", nargs="+", choices=OVERLAYS, default=[], help="look behind the step: "
        "gradient field, actual steps, momentum buffer, lr per step, per-batch gradients",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gdscope",
        description="See what a PyTorch optimizer does: loss landscapes and optimizer paths.",
    )
    parser.add_argument("--version", action="version", version=f"gdscope {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser("train", help="train the neuron and print the losses")
    train.add_argument("--loss", choices=LOSS_NAMES, default="mse")
    _add_function_option(train, many=False)
    train.add_argument("--log", action="store_true", help="print the article's epoch log")
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    train.add_argument("--save", type=Path, help="write the path: .csv, .json or .npz")
    train.add_argument("--force", action="store_true", help="overwrite an existing --save file")
    _add_sgd_options(train)
    _add_data_options(train)

    plot = commands.add_parser("plot", help="draw a loss map with the optimizer's path")
    _add_plot_options(plot)
    _add_output_options(plot, what="image file (.png, .svg or .pdf)")
    plot.add_argument("--save", type=Path, help="also write the paths: .csv, .json or .npz")

    animate = commands.add_parser("animate", help="an animated GIF or MP4 of the descent")
    _add_plot_options(animate)
    movie = animate.add_argument_group("animation")
    movie.add_argument("--fps", type=_integer, default=20, help="frames per second (default 20)")
    movie.add_argument(
        "--frames", type=_integer, help="number of frames (default: one per step, at most 300)"
    )
    movie.add_argument("--seconds", type=_number, help="length; sets --frames from --fps")
    movie.add_argument(
        "--size", type=_integer, nargs=2, metavar=("W", "H"), help="pixels (default: the figure's)"
    )
    _add_output_options(animate, what="animation file (.gif or .mp4)")

    replay = commands.add_parser("replay", help="re-make a figure or animation from its file")
    replay.add_argument("file", type=Path, help="a PNG/SVG/PDF/GIF/MP4 that gdscope wrote")
    replay.add_argument("--out", type=Path, help="where to write (default: FILE-replay.EXT)")
    replay.add_argument("--force", action="store_true", help="overwrite existing output")

    figure = commands.add_parser("figure", help="draw one of the article's figures")
    figure.add_argument("key", help="fig01 … fig10 (or its number or name)")
    _add_output_options(figure, what="image file (.png, .svg or .pdf)")

    sweep = commands.add_parser("sweep", help="small multiples: one panel per configuration")
    sweep.add_argument(
        "--vary",
        action="append",
        required=True,
        metavar="NAME=VALUES",
        help="a hyperparameter and its values: lr=0.01:0.5:6, lr=1e-3:1:5:log, momentum=0,0.9",
    )
    sweep.add_argument("--loss", choices=LOSS_NAMES, default="mse")
    _add_function_option(sweep, many=False)
    sweep.add_argument("--log-color", action="store_true")
    _add_sgd_options(sweep)
    _add_data_options(sweep)
    _add_grid_options(sweep)
    _add_engine_options(sweep)
    _add_output_options(sweep, what="image file (.png, .svg or .pdf)")

    phase = commands.add_parser("phase", help="phase diagram of a metric over two hyperparameters")
    phase.add_argument("--x", required=True, metavar="NAME=RANGE", help="e.g. lr=1e-3:2:256:log")
    phase.add_argument("--y", required=True, metavar="NAME=RANGE", help="e.g. momentum=0:0.99:128")
    phase.add_argument("--metric", choices=METRICS, default="diverged")
    phase.add_argument("--tol", type=_number, default=1e-3, help="for --metric steps")
    phase.add_argument("--mark", type=_number, nargs=2, metavar=("X", "Y"), help="star a cell")
    phase.add_argument("--loss", choices=LOSS_NAMES, default="mse")
    _add_function_option(phase, many=False)
    phase.add_argument("--chunk", type=_integer, default=65_536, help="configurations per batch")
    _add_sgd_options(phase)
    _add_data_options(phase)
    _add_engine_options(phase)
    _add_output_options(phase, what="image file (.png, .svg or .pdf)")

    compare = commands.add_parser("compare", help="tune optimizers fairly and compare them")
    compare.add_argument(
        "--optimizers", default="sgd,adam,rmsprop,adagrad", help="comma-separated names"
    )
    compare.add_argument("--budget", type=_integer, default=100, help="steps per run")
    compare.add_argument("--starts", type=_integer, default=5, help="start points (1st: 6,-3)")
    compare.add_argument(
        "--start-seed", type=_integer, default=0, help="seed of the random start points"
    )
    compare.add_argument(
        "--tune",
        action="append",
        default=[],
        metavar="NAME=RANGE",
        help="lr=LO:HI:N:log (default 1e-4:1:25:log); momentum=… also tunes momentum/beta1",
    )
    compare.add_argument("--loss", choices=LOSS_NAMES, default="mse")
    _add_function_option(compare, many=False)
    compare.add_argument("--huber-delta", type=_number, default=1.0)
    compare.add_argument("--smoothl1-beta", type=_number, default=1.0)
    _add_data_options(compare)
    _add_grid_options(compare)
    compare.add_argument("--save", type=Path, help="results file (.json)")
    _add_output_options(compare, what="image file (.png, .svg or .pdf)")

    scape = commands.add_parser(
        "landscape", help="the loss landscape of your own model, with its optimizer's path"
    )
    scape.add_argument(
        "--model",
        required=True,
        metavar="MODULE:FUNCTION",
        help="returns the nn.Module (e.g. gdscope.examples.cnn:make_model)",
    )
    scape.add_argument(
        "--data",
        required=True,
        metavar="MODULE:FUNCTION",
        help="returns a DataLoader, a Dataset, or one (inputs, targets) pair",
    )
    scape.add_argument(
        "--loss",
        default="crossentropy",
        metavar="NAME|MODULE:FUNCTION",
        help="crossentropy (default), mse, l1, nll, bce, or a factory",
    )
    scape.add_argument(
        "--checkpoint",
        type=Path,
        help="weights to load (torch.save of a state_dict, or a checkpoint dict holding one)",
    )
    scape.add_argument("--path", type=Path, help="a recording (Recorder(path=...)) to project")
    scape.add_argument(
        "--directions",
        choices=("random", "pca", "line"),
        default="random",
        help="filter-normalized random (default), PCA of --path, or a line --to",
    )
    scape.add_argument("--to", type=Path, help="checkpoint at the end of a line")
    scape.add_argument(
        "--norm",
        choices=("filter", "layer", "none"),
        default="filter",
        help="scale random directions filter by filter (default), per layer, or not at all",
    )
    scape.add_argument(
        "--ignore",
        choices=("biasbn", "keep"),
        default="biasbn",
        help="1-D parameters (biases, norm layers): zero them, or keep them",
    )
    scape.add_argument("--seed", type=_integer, default=0, help="seed of the random directions")
    scape.add_argument(
        "--states",
        action="store_true",
        help="directions also move BatchNorm's running statistics (dir_type=states)",
    )
    scape.add_argument(
        "--x",
        type=_number,
        nargs=3,
        metavar=("LO", "HI", "N"),
        help="grid along the first direction (default: the path's extent plus margins on a "
        "PCA plane; -0.5 1.5 41 on a line; else -1 1 21)",
    )
    scape.add_argument(
        "--y",
        type=_number,
        nargs=3,
        metavar=("LO", "HI", "N"),
        help="grid along the second direction (default: as --x, 21 points)",
    )
    scape.add_argument("--line", action="store_true", help="1-D: along x only")
    scape.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    scape.add_argument(
        "--chunk",
        default="auto",
        help="grid points per vmapped evaluation (default: sized to free memory)",
    )
    scape.add_argument(
        "--strategy",
        choices=("auto", "vmap", "loop"),
        default="auto",
        help="vmap: many grid points per forward pass; loop: one at a time; auto (default): "
        "time both on the first points, go on with the faster",
    )
    scape.add_argument(
        "--memory-format",
        choices=("auto", "contiguous", "channels_last"),
        default="auto",
        help="the loop's layout of image tensors (auto: timed with --strategy auto)",
    )
    scape.add_argument("--plan", type=_plan, default=(), help=argparse.SUPPRESS)  # replays
    scape.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="ray: split the grid across a Ray cluster's workers",
    )
    scape.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    scape.add_argument("--gpus-per-task", type=_number, default=0.0, help="Ray: GPUs per chunk")
    scape.add_argument("--resume", type=Path, help="save finished chunks here; resume from it")
    scape.add_argument("--view", choices=VIEWS, default="contour")
    scape.add_argument(
        "--metric",
        choices=("loss", "accuracy"),
        default="loss",
        help="what the map shows (accuracy: classification only; heatmap or contour)",
    )
    scape.add_argument("--log-color", action="store_true")
    scape.add_argument("--title")
    scape.add_argument("--save", type=Path, help="the surface: .npz, or .h5 (reference layout)")
    scape.add_argument(
        "--animate",
        type=Path,
        metavar="GIF|MP4",
        help="also animate the projected path over the map (needs --path)",
    )
    _add_output_options(scape, what="image file (.png, .svg or .pdf)")

    example = commands.add_parser("example", help="train an example network, draw its landscape")
    example.add_argument("name", choices=("mlp", "cnn"))
    example.add_argument("--out", type=Path, required=True, help="output directory")
    example.add_argument("--epochs", type=_integer, default=3)
    example.add_argument("--grid", type=_integer, default=21, help="samples per axis")
    example.add_argument("--device", default="cpu")
    example.add_argument("--force", action="store_true")

    serve = commands.add_parser("serve", help="the interactive explorer in the browser")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    serve.add_argument("--port", type=_integer, default=8000)
    serve.add_argument("--open", action="store_true", help="open the page in a browser")

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


def _optimizer(ns: argparse.Namespace, objectives: Sequence[Objective] = ()) -> OptimizerSpec:
    """SGD from its own flags (and --opt), any other optimizer from --opt (and --lr).

    SGD's default lr is the article's 0.1, or on test functions the smallest of their
    customary learning rates (0.1 overshoots most of them)."""
    opts = parse_assignments(ns.opt, what="--opt")
    name = ns.optimizer.lower()
    if name == "sgd":
        given = {flag: getattr(ns, flag) for flag in _SGD_FLAGS}
        rates = [x.definition.lr for x in objectives if isinstance(x, TestFunction)]
        if any(isinstance(x, LossSpec) for x in objectives) or not rates:
            rates.append(0.1)
        given["lr"] = min(rates) if ns.lr is None else ns.lr
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


def _data(ns: argparse.Namespace) -> DataSpec | CsvData:
    a, b, c = ns.coefficients
    spec = DataSpec(seed=ns.seed, n=ns.n, quadratic=a, linear=b, constant=c, noise=ns.noise)
    if ns.data is None:
        return spec
    if spec != DataSpec():
        raise GdscopeError("--data reads the points; --seed/--n/--coefficients/--noise make them")
    csv = CsvData.of(ns.data)
    make_data(csv)  # check the file now: a bad CSV is an input error, before any work
    return csv


def _objective(ns: argparse.Namespace) -> Objective:
    """One objective: ``--function`` if given, else ``--loss`` (train, sweep, phase)."""
    if ns.function is not None:
        return parse_function(ns.function)
    return LossSpec(ns.loss, delta=ns.huber_delta, beta=ns.smoothl1_beta)


def _grid(ns: argparse.Namespace, objective: Objective) -> Grid | None:
    """The grid the options ask for; ``None`` when none is given (each objective's own)."""
    if ns.grid_size is None and ns.w_range is None and ns.b_range is None:
        return None
    default = default_grid(objective)
    sizes = ns.grid_size or [default.w_size]
    if len(sizes) > 2:
        raise GdscopeError("--grid-size takes one value or two (weight, bias)")
    w_size, b_size = (sizes[0], sizes[0]) if len(sizes) == 1 else sizes
    w_range = tuple(ns.w_range) if ns.w_range is not None else default.w_range
    b_range = tuple(ns.b_range) if ns.b_range is not None else default.b_range
    return Grid(w_range, b_range, w_size, b_size)


def _start(ns: argparse.Namespace) -> tuple[float, float] | None:
    return None if ns.start is None else tuple(ns.start)


_CONFIG_FREE = {"config", "out", "force", "dpi", "title", "save", "fps", "frames", "seconds",
                "size", "command", "argv"}  # fmt: skip


def plot_config(ns: argparse.Namespace) -> PlotConfig:
    """The typed configuration behind ``gdscope plot``/``animate``: from ``--config`` (which then
    is the only source) or from the flags."""
    if ns.config is not None:
        defaults = vars(build_parser().parse_args([ns.command, "--out", "x"]))
        given = sorted(
            k for k, v in vars(ns).items() if k not in _CONFIG_FREE and v != defaults.get(k)
        )
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise GdscopeError(f"--config holds the whole configuration; drop {flags}")
        return load_toml(ns.config)
    objectives: list[Objective] = []
    if ns.loss is not None or ns.function is None:
        objectives += _losses(ns.loss or ["all"], ns.huber_delta, ns.smoothl1_beta)
    objectives += [parse_function(text) for text in ns.function or []]
    return PlotConfig(
        data=_data(ns) if any(isinstance(x, LossSpec) for x in objectives) else DataSpec(),
        losses=tuple(objectives),
        optimizer=_optimizer(ns, objectives),
        scheduler=_scheduler(ns),
        epochs=ns.epochs,
        start=_start(ns),
        grid=_grid(ns, objectives[0]),
        log=ns.log_color,
        effective=ns.effective,
        path=not ns.no_path,
        batch_size=ns.batch_size,
        shuffle_seed=ns.shuffle_seed,
        view=ns.view,
        overlays=tuple(ns.overlay),
    )


def _check_outputs(ns: argparse.Namespace, *, saves: tuple[str, ...] = ()) -> None:
    """Refuse bad output names before any work is done, so nothing is computed in vain."""
    from gdscope.files import figure_format

    figure_format(ns.out)
    if not 10 <= ns.dpi <= 1200:
        raise GdscopeError(f"--dpi must be in [10, 1200], got {ns.dpi:g}")
    check_target(ns.out, force=ns.force)
    save = getattr(ns, "save", None)
    if save is not None and saves:  # no ``saves``: the caller checks ``--save`` itself
        _check_save(save, saves, ns.force)


def _check_save(save: Path, saves: Sequence[str], force: bool) -> None:
    if save.suffix.lower() not in saves:
        raise GdscopeError(f"--save takes a {' or '.join(saves)} file, got {save.name!r}")
    check_target(save, force=force)


def _run_train(ns: argparse.Namespace) -> int:
    import torch

    from gdscope.engines.reference import train

    objective = _objective(ns)
    data = make_data(_data(ns)) if isinstance(objective, LossSpec) else None
    dtype = torch.float64 if ns.dtype == "float64" else torch.float32
    if ns.save is not None:
        from gdscope.jobs.export import EXPORT_FORMATS

        _check_save(ns.save, EXPORT_FORMATS, ns.force)
    run = train(
        data, loss=objective, optimizer=_optimizer(ns, [objective]), scheduler=_scheduler(ns),
        epochs=ns.epochs, start=_start(ns), dtype=dtype, batch_size=ns.batch_size,
        shuffle_seed=ns.shuffle_seed,
    )  # fmt: skip
    # With --log, stdout carries exactly the article's lines; the summary goes to stderr.
    out = sys.stderr if ns.log else sys.stdout
    if ns.log:
        print("\n".join(run.log_lines()[: run.n_finite]))
    w, b = run.final
    vertical, horizontal = run.labels
    print(f"{objective.title}, {run.label}: {vertical.lower()} {w!r}, {horizontal.lower()} {b!r}",
          file=out)  # fmt: skip
    if run.diverged:
        print(f"diverged at step {run.diverged_at}", file=out)
    else:
        print(f"final loss {float(run.losses[-1])!r} after {run.epochs} epochs", file=out)
    if ns.save is not None:
        from gdscope.jobs.export import save_trajectories

        print(save_trajectories([run], ns.save, force=ns.force), file=out)
    return 0


def _run_plot(ns: argparse.Namespace) -> int:
    from gdscope.jobs.export import EXPORT_FORMATS
    from gdscope.jobs.plot import make_plot

    config = plot_config(ns)
    _check_outputs(ns, saves=EXPORT_FORMATS)
    print(make_plot(config, ns.out, title=ns.title, dpi=ns.dpi, force=ns.force, save=ns.save))
    if ns.save is not None:
        print(ns.save)
    return 0


def _run_animate(ns: argparse.Namespace) -> int:
    from gdscope.jobs.plot import make_animation
    from gdscope.render.animation import AnimationOptions, animation_format

    config = plot_config(ns)
    animation_format(ns.out)
    options = AnimationOptions(
        fps=ns.fps, frames=ns.frames, seconds=ns.seconds,
        size=tuple(ns.size) if ns.size else None,
    )  # fmt: skip
    print(make_animation(config, ns.out, options=options, title=ns.title, force=ns.force))
    return 0


def _run_replay(ns: argparse.Namespace) -> int:
    from gdscope.jobs.replay import replay

    print(replay(ns.file, ns.out, force=ns.force))
    return 0


def _run_figure(ns: argparse.Namespace) -> int:
    from gdscope.jobs.article import article_figure
    from gdscope.jobs.article import make_article_figure

    spec = article_figure(ns.key)
    _check_outputs(ns)
    print(make_article_figure(spec.key, ns.out, dpi=ns.dpi, force=ns.force))
    return 0


def _run_reproduce(ns: argparse.Namespace) -> int:
    from gdscope.jobs.reproduce import reproduce

    if not 10 <= ns.dpi <= 1200:
        raise GdscopeError(f"--dpi must be in [10, 1200], got {ns.dpi:g}")
    paths = reproduce(
        ns.out,
        fmt=ns.format,
        force=ns.force,
        dpi=ns.dpi,
        progress=lambda spec, path: print(f"Fig. {spec.number:>2}  {path}", flush=True),
    )
    print(f"gallery: {paths[-1]}")
    return 0


MAX_PANELS = 64


def _fixed(
    ns: argparse.Namespace, varied: set[str], objective: Objective
) -> tuple[str, dict[str, object]]:
    """The optimizer's name and its fixed (not varied) hyperparameters, validated by torch."""
    spec = _optimizer(ns, [objective])
    fixed = spec.kwargs()
    if varied & {"beta1", "beta2"} and "betas" in fixed:
        beta1, beta2 = fixed.pop("betas")
        fixed.update({"beta1": beta1, "beta2": beta2})
    return spec.name, {k: v for k, v in fixed.items() if k not in varied}


def _engine(ns: argparse.Namespace) -> dict[str, object]:
    import torch

    if ns.device.startswith("cuda") and not torch.cuda.is_available():
        raise GdscopeError("--device cuda: no CUDA device is available")
    dtype = torch.float64 if ns.dtype == "float64" else torch.float32
    return {"dtype": dtype, "device": ns.device, "compile": ns.compile}


def _progress(
    label: str,
) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A tqdm bar on a terminal, nothing when stderr is piped."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(desc=label, unit="cfg", file=sys.stderr, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar.close


def _interrupted(run: object) -> int:
    if getattr(run, "interrupted", False):
        done = int(run.completed.sum())  # type: ignore[attr-defined]
        total = len(run.completed)  # type: ignore[attr-defined]
        print(f"gdscope: interrupted: kept {done} of {total} configurations", file=sys.stderr)
        return 130
    return 0


def _run_sweep(ns: argparse.Namespace) -> int:
    from matplotlib.figure import Figure

    from gdscope.files import save_figure
    from gdscope.problem.data import make_data
    from gdscope.problem.maps import loss_map
    from gdscope.render.studycharts import plot_small_multiples
    from gdscope.studies.sweep import Axis, run_grid, save_grid

    axes = [Axis.parse(text) for text in ns.vary]
    if len(axes) > 2:
        raise GdscopeError("sweep varies one or two hyperparameters; use phase for dense grids")
    count = 1
    for axis in axes:
        count *= len(axis.values)
    if count > MAX_PANELS:
        raise GdscopeError(
            f"{count} panels; a sweep draws at most {MAX_PANELS} (try gdscope phase)"
        )
    _check_outputs(ns, saves=(".npz", ".csv", ".json"))
    loss = _objective(ns)
    name, fixed = _fixed(ns, {axis.name for axis in axes}, loss)
    data = make_data(_data(ns)) if isinstance(loss, LossSpec) else None
    run = run_grid(
        data, name, axes, fixed=fixed, loss=loss, start=_start(ns), epochs=ns.epochs,
        record="path", batch_size=ns.batch_size, shuffle_seed=ns.shuffle_seed, **_engine(ns),
    )  # fmt: skip
    landscape = loss_map(data, loss, _grid(ns, loss) or default_grid(loss))
    titles = [
        ", ".join(f"{a.name}={_show(run.options[a.name][k])}" for a in axes)
        for k in range(len(run.completed))
    ]
    trajectories = [run.trajectory(k) for k in range(len(run.completed))]
    fig, _ = plot_small_multiples(landscape, trajectories, titles, fig=Figure(), log=ns.log_color)
    held = ", ".join(f"{k}={v}" for k, v in sorted(fixed.items()))
    fig.suptitle(f"{name} on {loss.title}, {ns.epochs} epochs" + (f"; {held}" if held else ""))
    record = {"kind": "argv", "argv": ns.argv, "fixed": fixed, "optimizer": name}
    print(save_figure(fig, ns.out, force=ns.force, dpi=ns.dpi, config=record))
    if ns.save is not None:
        print(save_grid(run, ns.save, force=ns.force))
    return 0


def _show(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    return f"{float(value):.4g}"  # type: ignore[arg-type]


def _run_phase(ns: argparse.Namespace) -> int:
    from matplotlib.figure import Figure

    from gdscope.files import save_figure
    from gdscope.problem.data import make_data
    from gdscope.render.studycharts import plot_phase
    from gdscope.studies.phase import analytic_stable, phase_diagram
    from gdscope.studies.sweep import Axis, save_grid

    x, y = Axis.parse(ns.x), Axis.parse(ns.y)
    _check_outputs(ns, saves=(".npz", ".csv", ".json"))
    if ns.chunk < 1:
        raise GdscopeError(f"--chunk must be >= 1, got {ns.chunk}")
    loss = _objective(ns)
    name, fixed = _fixed(ns, {x.name, y.name}, loss)
    data = make_data(_data(ns)) if isinstance(loss, LossSpec) else None
    update, close = _progress("phase")
    try:
        run = phase_diagram(
            data, x=x, y=y, optimizer=name, fixed=fixed, loss=loss, start=_start(ns),
            epochs=ns.epochs, tol=ns.tol, chunk=ns.chunk, progress=update,
            batch_size=ns.batch_size, shuffle_seed=ns.shuffle_seed, **_engine(ns),
        )  # fmt: skip
    finally:
        close()
    fig = Figure(figsize=(8, 6.5))
    ax = fig.subplots()
    stable = analytic_stable(run, data) if data is not None else None
    plot_phase(run, ns.metric, ax=ax, stable=stable, mark=tuple(ns.mark) if ns.mark else None)
    if stable is not None:
        ax.plot([], [], color="white", lw=2, label="analytic stability border")
        ax.legend(loc="upper right", fontsize=8, facecolor="#888888")
    fig.tight_layout()
    record = {"kind": "argv", "argv": ns.argv, "fixed": fixed, "optimizer": name}
    print(save_figure(fig, ns.out, force=ns.force, dpi=ns.dpi, config=record))
    if ns.save is not None:
        print(save_grid(run, ns.save, force=ns.force))
    return _interrupted(run)


def _run_compare(ns: argparse.Namespace) -> int:
    import json

    from matplotlib.figure import Figure

    from gdscope.files import save_figure, write_text
    from gdscope.problem.data import make_data
    from gdscope.problem.maps import loss_map
    from gdscope.render.studycharts import plot_shootout
    from gdscope.studies.shootout import DEFAULT_LR, compare
    from gdscope.studies.sweep import Axis

    _check_outputs(ns, saves=(".json",))
    tuned = {axis.name: axis for axis in (Axis.parse(text) for text in ns.tune)}
    unknown = set(tuned) - {"lr", "momentum"}
    if unknown:
        raise GdscopeError(f"--tune takes lr and momentum, got {', '.join(sorted(unknown))}")
    loss = _objective(ns)
    data = make_data(_data(ns)) if isinstance(loss, LossSpec) else None
    names = [n.strip() for n in ns.optimizers.split(",") if n.strip()]
    result = compare(
        data, names, loss=loss, budget=ns.budget, starts=ns.starts, seed=ns.start_seed,
        lr=tuned.get("lr", DEFAULT_LR), momentum=tuned.get("momentum"),
    )  # fmt: skip
    for row in result.table():
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    fig = plot_shootout(
        loss_map(data, loss, _grid(ns, loss) or default_grid(loss)), result, fig=Figure()
    )
    record = {"kind": "argv", "argv": ns.argv, **result.meta}
    print(save_figure(fig, ns.out, force=ns.force, dpi=ns.dpi, config=record))
    if ns.save is not None:
        payload = {
            **result.meta,
            "loss": loss.title,
            "starts": result.starts.tolist(),
            "table": result.table(),
            "tried": {
                c.name: [
                    {**s, "score": float(v)} for s, v in zip(c.settings, c.scores, strict=True)
                ]
                for c in result.contenders
            },
        }
        print(write_text(ns.save, json.dumps(payload, default=str), force=ns.force))
    return 0


def _grid_axis(values: Sequence[float], flag: str) -> tuple[float, float, int]:
    lo, hi, count = values
    if count != int(count):
        raise GdscopeError(f"{flag}: the number of points must be an integer, got {count:g}")
    return lo, hi, int(count)


def _plan(text: str) -> tuple[tuple[str, int], ...]:
    """``--plan``: the JSON list of ``[method, count]`` steps a replay repeats."""
    import json

    try:
        steps = json.loads(text)
        return tuple((str(name), int(count)) for name, count in steps)
    except (ValueError, TypeError) as error:
        raise argparse.ArgumentTypeError(f"not a plan ({error})") from None


def _chunk(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise GdscopeError(f"--chunk takes a positive integer or 'auto', got {text!r}")
    return value


def _run_landscape(ns: argparse.Namespace) -> int:
    from gdscope.files import save_figure
    from gdscope.jobs.landscape import LandscapeJob, draw_landscape, run_job

    _check_outputs(ns)
    if ns.save is not None:
        from gdscope.nets.surface_io import surface_targets

        surface_targets(ns.save, force=ns.force)
    if ns.animate is not None:
        from gdscope.render.animation import animation_format

        animation_format(ns.animate)
        if ns.path is None:
            raise GdscopeError("--animate draws the recorded path: give --path")
        if ns.metric != "loss":
            raise GdscopeError("--animate draws the path over the loss: drop --metric")
        if ns.line or ns.directions == "line":
            raise GdscopeError("--animate moves the path over a plane, not along a line")
    if ns.metric == "accuracy" and ns.view == "surface":
        raise GdscopeError("the accuracy is mapped as a heatmap or contours: drop --view surface")
        check_target(ns.animate, force=ns.force)
    backend = None
    if ns.backend == "ray":
        from gdscope.nets.distributed import RayBackend

        backend = RayBackend(address=ns.address, gpus_per_task=ns.gpus_per_task)
    elif ns.address is not None:
        raise GdscopeError("--address needs --backend ray")
    job = LandscapeJob(
        model=ns.model, data=ns.data, loss=ns.loss, checkpoint=ns.checkpoint, path=ns.path,
        directions=ns.directions, to=ns.to, norm=ns.norm, ignore=ns.ignore, seed=ns.seed,
        states=ns.states,
        x=_grid_axis(ns.x, "--x") if ns.x else None,
        y=_grid_axis(ns.y, "--y") if ns.y else None, line=ns.line,
        device=ns.device, chunk=_chunk(ns.chunk), strategy=ns.strategy, backend=backend,
        resume=ns.resume, memory_format=ns.memory_format, plan=ns.plan,
    )  # fmt: skip
    update, close = _progress("landscape")
    try:
        result = run_job(job, progress=update)
    finally:
        close()
    for note in result.notes:
        print(f"gdscope: warning: {note}", file=sys.stderr)
    if ns.save is not None:  # first: the computation is kept even if drawing it fails
        from gdscope.nets.surface_io import save_surface

        for path in save_surface(result.surface, ns.save, projected=result.projected,
                                 explained=result.explained, force=ns.force):  # fmt: skip
            print(path)
    fig = draw_landscape(result, view=ns.view, metric=ns.metric, log=ns.log_color, title=ns.title)
    # What auto chose (it times this machine): a replay computes the same way, so the same values.
    meta = result.surface.meta
    chosen = {"strategy": meta["strategy"], "chunk": meta["chunk"],
              "memory_format": meta["memory_format"], "plan": meta["plan"]}  # fmt: skip
    from gdscope.jobs.replay import EVALUATION_FLAGS, strip_outputs

    argv = strip_outputs(ns.argv, EVALUATION_FLAGS)  # kept in "evaluation", as it was done
    record = {"kind": "argv", "argv": argv, "evaluation": chosen}
    print(save_figure(fig, ns.out, force=ns.force, dpi=ns.dpi, config=record))
    if ns.animate is not None:
        from gdscope.jobs.landscape import animate
        from gdscope.render.animation import write_animation

        animator = animate(result, view=ns.view, log=ns.log_color, title=ns.title)
        print(write_animation(animator.frames(), ns.animate, fps=15, force=ns.force))
    return 0


def _run_example(ns: argparse.Namespace) -> int:
    from gdscope.jobs.landscape import run_example

    def log(text: str) -> None:
        print(text, file=sys.stderr)

    written = run_example(ns.name, ns.out, epochs=ns.epochs, grid=ns.grid, device=ns.device,
                          force=ns.force, log=log)  # fmt: skip
    for path in written:
        print(path)
    return 0


def _run_serve(ns: argparse.Namespace) -> int:
    import ipaddress

    if not 0 < ns.port < 65536:
        raise GdscopeError(f"--port must be in 1..65535, got {ns.port}")
    try:
        import uvicorn

        from gdscope.server.app import create_app
    except ImportError as error:
        raise GdscopeError(
            f"the explorer needs the web extra: pip install 'gdscope[web]' ({error})"
        ) from None
    try:
        loopback = ns.host == "localhost" or ipaddress.ip_address(ns.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        print(
            f"gdscope: warning: serving on {ns.host}, reachable from other machines",
            file=sys.stderr,
        )
    url = f"http://{'127.0.0.1' if ns.host in ('0.0.0.0', '::') else ns.host}:{ns.port}/"
    print(f"gdscope explorer on {url}", file=sys.stderr)
    if ns.open:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(create_app(), host=ns.host, port=ns.port, log_level="warning")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    from gdscope.jobs.replay import strip_outputs

    # What replay re-runs: the arguments without the output names, so a replay's record (and
    # so its bytes) equals the original's.
    ns.argv = strip_outputs(list(sys.argv[1:] if argv is None else argv))
    handlers = {
        "train": _run_train,
        "plot": _run_plot,
        "animate": _run_animate,
        "replay": _run_replay,
        "figure": _run_figure,
        "sweep": _run_sweep,
        "phase": _run_phase,
        "compare": _run_compare,
        "serve": _run_serve,
        "landscape": _run_landscape,
        "example": _run_example,
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
