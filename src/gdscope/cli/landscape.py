"""``gdscope landscape`` and ``example``: the loss landscape of your own network (computed by
``gdscope.jobs.landscape``), with its optimizer's path."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gdscope import interrupts
from gdscope.cli import options
from gdscope.cli.options import EXIT_INTERRUPTED, IMAGE_FILE, integer, number
from gdscope.errors import GdscopeError
from gdscope.files import check_target
from gdscope.jobs.landscape import DEFAULT_LOSS, LOSS_HELP
from gdscope.jobs.plotconfig import VIEWS
from gdscope.nets.convexity import CONVEXITY_POINTS
from gdscope.nets.directions import IGNORES, NORMS
from gdscope.nets.plane import MEMORY_FORMATS, STRATEGIES
from gdscope.nets.survey import DIRECTIONS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gdscope.cli.options import Subparsers
    from gdscope.nets.survey import LandscapeResult

__all__ = ["COMMANDS", "add_model_options", "add_parser", "run"]


_CHOICE_HELP = {
    "--directions": "filter-normalized random (default), PCA of --path (of every --path "
    "together), a line --to, or the top two Hessian eigenvectors (unit vectors with --norm none)",
    "--norm": "scale random directions filter by filter (default), per layer, or not at all",
    "--ignore": "1-D parameters (biases, norm layers): zero them, or keep them",
    "--strategy": "vmap: many grid points per forward pass; loop: one at a time; auto (default): "
    "time both on a sliver of the data, evaluate every point with the faster",
    "--memory-format": "the loop's layout of image tensors (auto: timed with --strategy auto)",
    "--metric": "what the map shows (accuracy: classification only; heatmap or contour)",
}


def _choice(parser: argparse.ArgumentParser, flag: str, choices: tuple[str, ...]) -> None:
    """An option whose default is its first choice."""
    parser.add_argument(flag, choices=choices, default=choices[0], help=_CHOICE_HELP[flag])


def add_model_options(scape: argparse.ArgumentParser, *, path: bool = True) -> None:
    """What to map: the model, its data and loss, the weights, the recorded path (``path``)."""
    scape.add_argument(
        "--model",
        metavar="MODULE:FUNCTION",
        help="returns the nn.Module (e.g. gdscope.examples.cnn:make_model); required unless "
        "--from-h5",
    )
    scape.add_argument(
        "--data",
        metavar="MODULE:FUNCTION",
        help="returns a DataLoader, a Dataset, or one (inputs, targets) pair",
    )
    scape.add_argument(
        "--loss",
        default=DEFAULT_LOSS,
        metavar="NAME|MODULE:FUNCTION",
        help=LOSS_HELP,
    )
    scape.add_argument(
        "--checkpoint",
        type=Path,
        help="weights to load (torch.save of a state_dict, or a checkpoint dict holding one)",
    )
    if path:
        scape.add_argument("--path", type=Path, action="append",
                           help="a recording (Recorder(path=...)) to project; repeat it to draw "
                           "several runs on one plane (PCA of their union)")  # fmt: skip


def _add_file_options(scape: argparse.ArgumentParser) -> None:
    """Or what to draw: a surface already computed, in the reference implementation's layout."""
    scape.add_argument(
        "--from-h5",
        type=Path,
        metavar="SURFACE.h5",
        help="draw a surface computed by loss-landscape's plot_surface.py (or --save'd as .h5) "
        "instead of computing one",
    )
    scape.add_argument(
        "--proj",
        type=Path,
        metavar="PROJ.h5",
        help="with --from-h5: the path its projection.py projected (proj_xcoord, proj_ycoord)",
    )


def _add_plane_options(scape: argparse.ArgumentParser) -> None:
    """The directions of the plane (or line) and its grid."""
    _choice(scape, "--directions", DIRECTIONS)
    scape.add_argument("--to", type=Path, help="checkpoint at the end of a line")
    _choice(scape, "--norm", NORMS)
    _choice(scape, "--ignore", IGNORES)
    scape.add_argument("--seed", type=integer, default=0, help="seed of the random directions")
    scape.add_argument(
        "--states",
        action="store_true",
        help="directions also move BatchNorm's running statistics (dir_type=states)",
    )
    scape.add_argument(
        "--x",
        type=number,
        nargs=3,
        metavar=("LO", "HI", "N"),
        help="grid along the first direction (default: the path's extent plus margins on a "
        "PCA plane; -0.5 1.5 41 on a line; else -1 1 21)",
    )
    scape.add_argument(
        "--y",
        type=number,
        nargs=3,
        metavar=("LO", "HI", "N"),
        help="grid along the second direction (default: as --x, 21 points)",
    )
    scape.add_argument("--line", action="store_true", help="1-D: along x only")


def _add_evaluation_options(scape: argparse.ArgumentParser) -> None:
    """How the grid is evaluated: device, batching, layout, a Ray cluster, resuming."""
    scape.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    scape.add_argument(
        "--chunk",
        default="auto",
        help="grid points per vmapped evaluation (default: sized to free memory)",
    )
    _choice(scape, "--strategy", STRATEGIES)
    _choice(scape, "--memory-format", MEMORY_FORMATS)
    scape.add_argument("--plan", type=_plan, default=(), help=argparse.SUPPRESS)  # replays
    options.add_backend_options(scape)
    scape.add_argument("--resume", type=Path, help="save finished chunks here; resume from it")
    scape.add_argument(
        "--convexity", type=integer, nargs="?", const=CONVEXITY_POINTS, metavar="N",
        help="also map Li et al.'s non-convexity |λ_min/λ_max| of the Hessian on N×N points "
        f"of the plane (default N: {CONVEXITY_POINTS}; a Lanczos run at each point)",
    )  # fmt: skip
    scape.add_argument("--convexity-samples", type=integer, metavar="N",
                       help="the convexity map's Hessians on the first N samples of the data "
                       "(default: all)")  # fmt: skip


def _add_display_options(scape: argparse.ArgumentParser) -> None:
    """What is drawn and written."""
    scape.add_argument("--view", choices=VIEWS, default="contour",
                       help="map kind (default: %(default)s)")  # fmt: skip
    _choice(scape, "--metric", ("loss", "accuracy"))
    scape.add_argument("--log-color", action="store_true", help="logarithmic colour scale")
    scape.add_argument("--title", help="figure title")
    scape.add_argument("--save", type=Path, help="the surface: .npz, or .h5 (reference layout)")
    scape.add_argument(
        "--animate",
        type=Path,
        metavar="GIF|MP4",
        help="also animate the projected path over the map (needs --path)",
    )
    options.add_output_options(scape, what=IMAGE_FILE)


def add_parser(commands: Subparsers) -> None:
    scape = commands.add_parser(
        "landscape", help="the loss landscape of your own model, with its optimizer's path"
    )
    for add in (add_model_options, _add_plane_options, _add_evaluation_options,
                _add_display_options, _add_file_options):  # fmt: skip
        add(scape)

    from gdscope.examples.skip import LAYERS
    from gdscope.jobs.hessian import EOS_DATA, EOS_DEFAULT, EOS_RATES
    from gdscope.jobs.landscape import EXAMPLES
    from gdscope.jobs.papers import BATCH_SIZES

    rates = ", ".join(f"{rate:g}" for rate in EOS_RATES)
    small, large = (batch for batch, _ in BATCH_SIZES.values())
    what = {
        **{name: f"{_first_sentence(module)} Trained with SGD+momentum and with Adam, each "
                 "path drawn over the loss on its PCA plane (a figure and a surface file each), "
                 "then a phase diagram (lr × momentum) and a shoot-out of optimizers."
           for name, module in EXAMPLES.items()},
        "eos": f"The edge of stability: full-batch GD at η = {rates} on a small tanh MLP, the "
               "loss beside the sharpness and 2/η (on the CPU; --data digits: on real data, "
               "at η = " + ", ".join(f"{r:g}" for r in EOS_DATA["digits"].rates) + ").",
        "skip": f"Skip connections smooth the landscape (Li et al. 2018): a {LAYERS}-layer "
                "residual MLP and the same without skip connections, trained on scikit-learn's "
                "digits; their loss on a filter-normalized random plane above their maps of "
                "|λ_min/λ_max| (on the CPU; --grid sets the loss maps' points).",
        "batch-size": "Sharp and flat minima (Keskar et al. 2017; Li et al. 2018): the digits "
                      f"MLP trained with batches of {small} and of {large} to the same training "
                      "loss; the line between them and each one's filter-normalized slice, with "
                      "its top Hessian eigenvalue (on the CPU).",
        "connect": "Mode connectivity: two digits MLPs trained from different seeds, a Bézier "
                   "curve trained between them, the loss along it and along the straight line, "
                   "and their plane (scikit-learn's digits; on the CPU; takes only --out and "
                   "--force).",
    }  # fmt: skip
    example = commands.add_parser(
        "example", help="train an example network, draw its landscape",
        description="Train a small example network (offline: its data is made, or shipped with "
        "scikit-learn; nothing is downloaded) "
        "and write its figures into a folder.",
        epilog="\n".join(f"{name}: {text}" for name, text in what.items()),
        formatter_class=_Epilog,
    )  # fmt: skip
    example.add_argument("name", choices=tuple(what), help="which example (see below)")
    example.add_argument("--out", type=Path, required=True,
                         help="the folder its files go in (made if missing)")  # fmt: skip
    example.add_argument(
        "--epochs",
        type=integer,
        default=3,
        help="mlp, cnn: epochs each optimizer trains (default: %(default)s)",
    )
    example.add_argument(
        "--grid",
        type=integer,
        default=21,
        help="mlp, cnn, skip: samples per axis of each plane (default: %(default)s)",
    )
    example.add_argument("--device", default="cpu",
                         help="mlp, cnn: where they train and are evaluated: cpu (default), "
                         "cuda, cuda:1, mps, …")  # fmt: skip
    example.add_argument("--force", action="store_true",
                         help="replace files a previous run left in --out (without it, an "
                         "existing file is refused before any training)")  # fmt: skip
    example.add_argument(
        "--no-studies", action="store_true",
        help="mlp, cnn: skip the phase diagram and the shoot-out",
    )  # fmt: skip
    example.add_argument("--data", choices=tuple(EOS_DATA), default=EOS_DEFAULT,
                         help="eos: the spiral (default) or scikit-learn's digits")  # fmt: skip
    options.remember("example", example)


class _Epilog(argparse.HelpFormatter):
    """Help whose epilog keeps its lines (``name: what it is``, one per example), each wrapped
    to the width under its name."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        hang = indent + "  " if "\n" in text else indent  # (the description: one paragraph)
        return "\n".join(textwrap.fill(line, width, initial_indent=indent, subsequent_indent=hang)
                         for line in text.splitlines())  # fmt: skip


def _first_sentence(module: str) -> str:
    """The first sentence of an example module's docstring: what the example trains on."""
    import importlib
    import re

    doc = " ".join((importlib.import_module(module).__doc__ or "").split())
    return re.split(r"(?<=\.) ", doc)[0]


_USES = {"mlp": ("epochs", "grid", "device", "no_studies"),
         "cnn": ("epochs", "grid", "device", "no_studies"),
         "eos": ("data",), "skip": ("grid",), "batch-size": (), "connect": ()}  # fmt: skip
"""The options (besides ``--out`` and ``--force``) each example takes; the others are refused
(eos, skip, batch-size and connect train their own networks on the CPU)."""
_OPTIONS = tuple(dict.fromkeys(name for names in _USES.values() for name in names))


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


def _check_sources(ns: argparse.Namespace) -> None:
    """A model and its data to compute a surface from, or a surface file and nothing that
    would compute one (the flags ``--from-h5`` leaves unused are found by parsing the command
    line again with only the options that draw)."""
    if ns.from_h5 is None:
        if ns.model is None or ns.data is None:
            raise GdscopeError("landscape needs --model and --data (or --from-h5 SURFACE.h5)")
        if ns.proj is not None:
            raise GdscopeError("--proj is the path projected on a --from-h5 surface")
        return
    drawing = argparse.ArgumentParser(add_help=False)
    _add_display_options(drawing)
    _add_file_options(drawing)
    _, unused = drawing.parse_known_args([*ns.argv[1:], "--out", str(ns.out)])
    if unused or ns.save is not None:
        flag = unused[0].split("=")[0] if unused else "--save"
        raise GdscopeError(f"--from-h5 draws a surface already computed: drop {flag}")


def _check(ns: argparse.Namespace) -> None:
    """Refuse bad outputs and clashing options before the (long) evaluation starts."""
    _check_sources(ns)
    options.check_outputs(ns)
    if ns.save is not None:
        from gdscope.nets.surface_io import surface_targets

        options.check_inputs(ns, surface_targets(ns.save, force=ns.force))
    if ns.animate is not None:
        from gdscope.render.animation import animation_format

        animation_format(ns.animate)
        if ns.path is None and ns.proj is None:
            given = "--proj" if ns.from_h5 is not None else "--path"
            raise GdscopeError(f"--animate draws the recorded path: give {given}")
        if ns.path is not None and len(ns.path) > 1:
            raise GdscopeError("--animate moves one recorded path: give one --path")
        if ns.metric != "loss":
            raise GdscopeError("--animate draws the path over the loss: drop --metric")
        if ns.line or ns.directions == "line":
            raise GdscopeError("--animate moves the path over a plane, not along a line")
        check_target(ns.animate, force=ns.force)
    if ns.convexity_samples is not None and ns.convexity is None:
        raise GdscopeError("--convexity-samples sets the convexity map's data: add --convexity")
    if ns.metric == "accuracy" and ns.view == "surface":
        raise GdscopeError("the accuracy is mapped as a heatmap or contours: drop --view surface")
    options.check_backend(ns)


def _landscape(ns: argparse.Namespace) -> int:
    from gdscope.jobs.landscape import LandscapeJob, run_job
    from gdscope.nets.convexity import ConvexityOptions

    _check(ns)
    pinned = _pinned(ns)  # before the work: what was read, not what is there afterwards
    if ns.from_h5 is not None:
        return _from_h5(ns, pinned)
    from gdscope.nets.distributed import RayBackend

    backend = options.ray_backend(ns, RayBackend)
    job = LandscapeJob(
        model=ns.model, data=ns.data, loss=ns.loss, checkpoint=ns.checkpoint,
        path=ns.path[0] if ns.path is not None and len(ns.path) == 1 else ns.path,
        directions=ns.directions, to=ns.to, norm=ns.norm, ignore=ns.ignore, seed=ns.seed,
        states=ns.states,
        x=_grid_axis(ns.x, "--x") if ns.x else None,
        y=_grid_axis(ns.y, "--y") if ns.y else None, line=ns.line,
        device=ns.device, chunk=options.chunk_size(ns.chunk), strategy=ns.strategy, backend=backend,
        resume=ns.resume, memory_format=ns.memory_format, plan=ns.plan,
        convexity=None if ns.convexity is None else ConvexityOptions(
            points=ns.convexity, samples=ns.convexity_samples),
    )  # fmt: skip
    update, close = options.progress("landscape")
    later, close_later = (
        options.progress("convexity", "pt") if ns.convexity is not None else (None, _no)
    )
    try:
        result = run_job(job, progress=update, convexity_progress=later)
    finally:
        close()
        close_later()
    points = int(result.surface.meta["points"])
    done = points - int(result.surface.meta.get("unfinished", 0))
    for note in result.notes if done == points else ():  # (blank where not evaluated)
        print(f"gdscope: warning: {note}", file=sys.stderr)
    if not done:
        raise KeyboardInterrupt  # Ctrl-C before any point was evaluated: nothing to write
    with interrupts.deferred():  # what was evaluated is written even if Ctrl-C comes now
        _write_landscape(ns, result, done, pinned)
    if interrupts.requested():
        print(f"gdscope: interrupted: kept {done} of {points} grid points"
              + _convexity_kept(result), file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    return 0


def _no() -> None:
    """Nothing to close."""


def _convexity_kept(result: LandscapeResult) -> str:
    """How much of an asked-for convexity map Ctrl-C left (nothing if none was asked for)."""
    found = result.convexity
    if found is None:
        return ""
    return f" and {found.done} of {found.lowest.size} points of the convexity map"


def _cut(result: LandscapeResult, done: int) -> str | None:
    """What Ctrl-C left unfinished, for the record (None: nothing)."""
    points = int(result.surface.meta["points"])
    found = result.convexity
    if done < points:
        return f"{done} of {points} grid points evaluated"
    if found is not None and found.done < found.lowest.size:
        return f"{found.done} of {found.lowest.size} points of the convexity map computed"
    return None


_PINNED = tuple(name for name in options.READ_FILES if name not in ("data", "resume"))
"""The files a landscape reads (its ``--data`` is code, ``module:function``; its ``--resume``
is its own progress): its record pins each one's content, so a replay refuses a file that
changed since (as a CSV's in the other records)."""


def _pinned(ns: argparse.Namespace) -> dict[str, str]:
    """The SHA-256 of each file the landscape reads, by its name on the command line."""
    from gdscope.files import content_sha256

    given = [getattr(ns, name) for name in _PINNED if getattr(ns, name, None) is not None]
    files = [file for value in given for file in (value if isinstance(value, list) else [value])]
    return {str(file): content_sha256(file) for file in files}


def _write_landscape(
    ns: argparse.Namespace, result: LandscapeResult, done: int, pinned: dict[str, str]
) -> None:
    """The surface (``--save``), the figure with its record, the animation (``--animate``)."""
    from gdscope.jobs.landscape import draw_landscape

    if ns.save is not None:  # first: the computation is kept even if drawing it fails
        from gdscope.nets.surface_io import save_surface

        runs = [(run.name, run.projected) for run in result.runs]
        for path in save_surface(result.surface, ns.save, explained=result.explained,
                                 projected=None if runs else result.projected, runs=runs,
                                 force=ns.force):  # fmt: skip
            options.wrote(path)
    fig = draw_landscape(result, view=ns.view, metric=ns.metric, log=ns.log_color, title=ns.title)
    points = int(result.surface.meta["points"])
    if done < points:
        fig.text(0.01, 0.01, f"interrupted: {done} of {points} grid points evaluated; the rest "
                 "is left blank", fontsize=8, va="bottom")  # fmt: skip
    # What auto chose (it times this machine): a replay computes the same way, so the same values.
    meta = result.surface.meta
    chosen = {"strategy": meta["strategy"], "chunk": meta["chunk"],
              "memory_format": meta["memory_format"], "plan": meta["plan"]}  # fmt: skip
    from gdscope.jobs.records import record
    from gdscope.jobs.replay import EVALUATION_FLAGS, strip_outputs

    argv = strip_outputs(ns.argv, EVALUATION_FLAGS)  # kept in "evaluation", as it was done
    cut = _cut(result, done)
    _publish(ns, result, fig, record("argv", argv=argv, evaluation=chosen, sha256=pinned,
                                     interrupted=cut))  # fmt: skip


def _from_h5(ns: argparse.Namespace, pinned: dict[str, str]) -> int:
    """Draw a surface file (and its projected path); the record is the command line, which
    names the files, so ``gdscope replay`` reads them again."""
    from gdscope.jobs.landscape import draw_landscape, from_h5
    from gdscope.jobs.records import record

    result = from_h5(ns.from_h5, proj=ns.proj)
    for note in result.notes:
        print(f"gdscope: warning: {note}", file=sys.stderr)
    fig = draw_landscape(result, view=ns.view, metric=ns.metric, log=ns.log_color, title=ns.title)
    with interrupts.deferred():
        _publish(ns, result, fig, record("argv", argv=ns.argv, sha256=pinned))
    return 0


def _publish(ns: argparse.Namespace, result: LandscapeResult, fig: Figure, rec: dict[str, Any]
             ) -> None:  # fmt: skip
    """Write the figure with its record, then the animation (``--animate``)."""
    from gdscope.files import save_figure

    options.wrote(save_figure(fig, ns.out, force=ns.force, dpi=ns.dpi, config=rec))
    if ns.animate is not None:
        from gdscope.jobs.landscape import animate
        from gdscope.render.animation import write_animation

        animator = animate(result, view=ns.view, log=ns.log_color, title=ns.title)
        options.wrote(write_animation(animator.frames(), ns.animate, fps=15, force=ns.force))


def _example(ns: argparse.Namespace) -> int:
    from gdscope.files import check_folder
    from gdscope.jobs.landscape import run_example

    check_folder(ns.out)  # before the training: a folder that cannot be made is refused now

    def log(text: str) -> None:
        sys.stderr.write(text + "\n")  # one write: a Ctrl-C cannot split the line from its end

    unused = options.given(ns, [name for name in _OPTIONS if name not in _USES[ns.name]])
    if unused:
        verb = "do" if len(unused) > 1 else "does"
        raise GdscopeError(f"{', '.join(unused)} {verb} not apply to example {ns.name}")
    if ns.name == "eos":
        from gdscope.jobs.hessian import EOS_DATA, make_eos

        rates = EOS_DATA[ns.data].rates
        done = make_eos(ns.out, data=ns.data, force=ns.force, log=log, wrote=options.wrote)
        if len(done.runs) < len(rates) or interrupts.requested():
            print(f"gdscope: interrupted: kept {len(done.runs)} of {len(rates)} learning "
                  "rates", file=sys.stderr)  # fmt: skip
            return EXIT_INTERRUPTED
        return 0
    if ns.name == "connect":
        from gdscope.cli.connect import report
        from gdscope.jobs.connect import make_connect_example

        connected = make_connect_example(ns.out, force=ns.force, log=log, wrote=options.wrote)
        return report(connected.result, None)
    if ns.name in ("skip", "batch-size"):
        from gdscope.jobs import papers

        if ns.name == "skip":
            made = papers.make_skip(ns.out, grid=ns.grid, force=ns.force, log=log,
                                    wrote=options.wrote)  # fmt: skip
        else:
            made = papers.make_batch_size(ns.out, force=ns.force, log=log, wrote=options.wrote)
        if made.interrupted:
            print("gdscope: interrupted: the figure shows what finished", file=sys.stderr)
            return EXIT_INTERRUPTED
        return 0
    from gdscope.jobs.presets import EXAMPLE_STUDIES, example_studies, example_study_files

    later = [] if ns.no_studies else example_study_files(ns.name, ns.out)
    for target in later if ns.out.is_dir() else []:
        check_target(target, force=ns.force)
    run_example(ns.name, ns.out, epochs=ns.epochs, grid=ns.grid, device=ns.device,
                force=ns.force, log=log, wrote=options.wrote)  # fmt: skip
    if later and not interrupts.requested():
        steps = EXAMPLE_STUDIES[ns.name].steps
        log(f"{ns.name}: a phase diagram (lr × momentum) and a shoot-out (SGD, Adam, RMSprop), "
            f"{steps} steps, every setting a copy of the network, trained together")  # fmt: skip
        for path in example_studies(ns.name, ns.out, device=ns.device, force=ns.force):
            options.wrote(path)
    return 0


_RUN = {"landscape": _landscape, "example": _example}
COMMANDS = tuple(_RUN)


def run(ns: argparse.Namespace) -> int:
    return _RUN[ns.command](ns)
