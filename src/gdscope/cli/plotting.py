"""``gdscope train``, ``plot``, ``animate``, ``figure``, ``reproduce`` and ``replay``: one run, its
map and path, the article's figures, and re-making any figure from its record."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gdscope import interrupts
from gdscope.cli import options
from gdscope.cli.options import EXIT_INTERRUPTED, IMAGE_FILE, Parser, integer, number
from gdscope.errors import GdscopeError
from gdscope.files import FIGURE_FORMATS
from gdscope.jobs.plotconfig import VIEWS, PlotConfig, load_toml, parse_function
from gdscope.jobs.studyconfig import DTYPES
from gdscope.problem.data import DataSpec, make_data
from gdscope.problem.losses import LOSS_NAMES
from gdscope.problem.objective import Objective
from gdscope.render.overlays import OVERLAYS

if TYPE_CHECKING:
    from gdscope.cli.options import Subparsers

__all__ = ["COMMANDS", "add_parser", "plot_config", "run"]


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
    options.add_function_option(plot, many=True)
    options.add_sgd_options(plot)
    options.add_data_options(plot)
    options.add_grid_options(plot)
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


def add_parser(commands: Subparsers) -> None:
    train = commands.add_parser("train", help="train the neuron and print the losses")
    options.add_objective_options(train)
    train.add_argument("--log", action="store_true", help="print the article's epoch log")
    train.add_argument("--dtype", choices=DTYPES, default=DTYPES[0], help=options.DTYPE_HELP)
    train.add_argument("--save", type=Path, help="write the path: .csv, .json or .npz")
    train.add_argument("--force", action="store_true", help="overwrite an existing --save file")
    options.add_sgd_options(train)
    options.add_data_options(train)

    plot = commands.add_parser("plot", help="draw a loss map with the optimizer's path")
    _add_plot_options(plot)
    options.add_output_options(plot, what=IMAGE_FILE)
    plot.add_argument("--save", type=Path, help="also write the paths: .csv, .json or .npz")

    animate = commands.add_parser("animate", help="an animated GIF or MP4 of the descent")
    _add_plot_options(animate)
    movie = animate.add_argument_group("animation")
    movie.add_argument("--fps", type=integer, default=20, help="frames per second (default 20)")
    movie.add_argument(
        "--frames", type=integer, help="number of frames (default: one per step, at most 300)"
    )
    movie.add_argument("--seconds", type=number, help="length; sets --frames from --fps")
    movie.add_argument(
        "--size", type=integer, nargs=2, metavar=("W", "H"), help="pixels (default: the figure's)"
    )
    options.add_output_options(animate, what="animation file (.gif or .mp4)")

    replay = commands.add_parser("replay", help="re-make a figure or animation from its file")
    replay.add_argument("file", type=Path, help="a PNG/SVG/PDF/GIF/MP4 that gdscope wrote")
    replay.add_argument("--out", type=Path, help="where to write (default: FILE-replay.EXT)")
    replay.add_argument("--force", action="store_true", help="overwrite existing output")

    figure = commands.add_parser("figure", help="draw one of the article's figures")
    figure.add_argument("key", help="fig01 … fig10 (or its number or name)")
    options.add_output_options(figure, what=IMAGE_FILE)

    reproduce = commands.add_parser("reproduce", help="draw all the article's figures + gallery")
    options.add_output_options(reproduce, what="output directory")
    reproduce.add_argument("--format", choices=FIGURE_FORMATS, default="png",
                           help="the figures' file format (default: %(default)s)")  # fmt: skip


_CONFIG_FREE = {"config", "out", "force", "dpi", "title", "save", "fps", "frames", "seconds",
                "size", "command", "argv", "main", "parser"}  # fmt: skip


def _defaults(command: str) -> dict[str, object]:
    """Every option of ``command`` at its default (what ``--config`` must not be mixed with)."""
    parser = Parser(prog="gdscope")
    add_parser(parser.add_subparsers(dest="command", parser_class=Parser))
    return vars(parser.parse_args([command, "--out", "x"]))


def plot_config(ns: argparse.Namespace) -> PlotConfig:
    """The typed configuration behind ``gdscope plot``/``animate``: from ``--config`` (which then
    is the only source) or from the flags."""
    if ns.config is not None:
        defaults = _defaults(ns.command)
        given = sorted(
            k for k, v in vars(ns).items() if k not in _CONFIG_FREE and v != defaults.get(k)
        )
        if given:
            flags = ", ".join(options.flag(k) for k in given)
            raise GdscopeError(f"--config holds the whole configuration; drop {flags}")
        return load_toml(ns.config)
    objectives: list[Objective] = []
    if ns.loss is not None or ns.function is None:
        objectives += options.losses(ns.loss or ["all"], ns.huber_delta, ns.smoothl1_beta)
    objectives += [parse_function(text) for text in ns.function or []]
    return PlotConfig(
        data=options.data_spec(ns) if any(x.needs_data for x in objectives) else DataSpec(),
        losses=tuple(objectives),
        optimizer=options.optimizer(ns, objectives),
        scheduler=options.scheduler(ns),
        epochs=ns.epochs,
        start=options.start(ns),
        grid=options.grid(ns, objectives[0]),
        log=ns.log_color,
        effective=ns.effective,
        path=not ns.no_path,
        batch_size=ns.batch_size,
        shuffle_seed=ns.shuffle_seed,
        view=ns.view,
        overlays=tuple(ns.overlay),
    )


def _train(ns: argparse.Namespace) -> int:
    import torch

    from gdscope.engines.reference import train

    objective = options.objective(ns)
    data = make_data(options.data_spec(ns)) if objective.needs_data else None
    dtype = torch.float64 if ns.dtype == "float64" else torch.float32
    if ns.save is not None:
        from gdscope.jobs.export import EXPORT_FORMATS

        options.check_save(ns.save, EXPORT_FORMATS, ns.force)
        options.check_inputs(ns, (ns.save,))
    run = train(
        data, loss=objective, optimizer=options.optimizer(ns, [objective]),
        scheduler=options.scheduler(ns), epochs=ns.epochs, start=options.start(ns), dtype=dtype,
        batch_size=ns.batch_size, shuffle_seed=ns.shuffle_seed,
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
        print(f"diverged at step {run.diverged_at}: {run.why}", file=out)
    else:
        print(f"final loss {float(run.losses[-1])!r} after {run.epochs} epochs", file=out)
    if ns.save is not None:
        from gdscope.jobs.export import save_trajectories

        print(save_trajectories([run], ns.save, force=ns.force), file=out)
    return 0


def _plot(ns: argparse.Namespace) -> int:
    from gdscope.jobs.export import EXPORT_FORMATS
    from gdscope.jobs.plot import make_plot

    config = plot_config(ns)
    options.check_outputs(ns, saves=EXPORT_FORMATS)
    print(make_plot(config, ns.out, title=ns.title, dpi=ns.dpi, force=ns.force, save=ns.save))
    if ns.save is not None:
        print(ns.save)
    return 0


def _animate(ns: argparse.Namespace) -> int:
    from gdscope.jobs.plot import make_animation
    from gdscope.render.animation import AnimationOptions, animation_format

    config = plot_config(ns)
    animation_format(ns.out)
    movie = AnimationOptions(
        fps=ns.fps, frames=ns.frames, seconds=ns.seconds,
        size=tuple(ns.size) if ns.size else None,
    )  # fmt: skip
    shown = [0, 0]  # frames drawn, of how many
    update, close = options.progress("animate", unit="frame")

    def follow(done: int, total: int) -> None:
        shown[:] = [done, total]
        if update is not None:
            update(done, total)

    try:
        path = make_animation(config, ns.out, options=movie, title=ns.title, force=ns.force,
                              progress=follow)  # fmt: skip
    finally:
        close()
    print(path)
    if interrupts.requested():  # Ctrl-C while drawing: the film stops at the frame it reached
        print(f"gdscope: interrupted: kept the first {shown[0]} of {shown[1]} frames",
              file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    return 0


def _replay(ns: argparse.Namespace) -> int:
    from gdscope.jobs.replay import replay

    # a record of kind "argv" re-runs its command line through the CLI's own main (ns.main)
    print(replay(ns.file, ns.out, force=ns.force, run_argv=ns.main))
    return 0


def _figure(ns: argparse.Namespace) -> int:
    from gdscope.jobs.article import article_figure, make_article_figure

    spec = article_figure(ns.key)
    options.check_outputs(ns)
    print(make_article_figure(spec.key, ns.out, dpi=ns.dpi, force=ns.force))
    return 0


def _reproduce(ns: argparse.Namespace) -> int:
    from gdscope.jobs.reproduce import reproduce

    options.check_dpi(ns.dpi)
    paths = reproduce(
        ns.out,
        fmt=ns.format,
        force=ns.force,
        dpi=ns.dpi,
        progress=lambda spec, path: options.wrote(path, f"Fig. {spec.number:>2}  {path}"),
    )
    print(f"gallery: {paths[-1]}")
    return 0


_RUN = {"train": _train, "plot": _plot, "animate": _animate, "replay": _replay,
        "figure": _figure, "reproduce": _reproduce}  # fmt: skip
COMMANDS = tuple(_RUN)


def run(ns: argparse.Namespace) -> int:
    return _RUN[ns.command](ns)
