"""What the ``gdscope`` commands share: the parser class, number parsers, option groups, and the
functions that turn parsed options into typed values (objective, optimizer, data, grid).

Bad input of any kind ends with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

from gdscope.engines.reference import MAX_EPOCHS
from gdscope.errors import GdscopeError
from gdscope.files import check_target
from gdscope.jobs.landscape import LOSS_HELP
from gdscope.jobs.plotconfig import parse_function
from gdscope.jobs.records import DEFAULT_DPI
from gdscope.jobs.studyconfig import DTYPES
from gdscope.optim.sgdconfig import SGDConfig
from gdscope.optim.specs import OPTIMIZERS, OptimizerSpec, SchedulerSpec, parse_assignments
from gdscope.optim.table import add_optimizer_options, flag_of, given_flags
from gdscope.problem.data import CsvData, DataSpec, make_data
from gdscope.problem.grid import ARTICLE_EPOCHS, ARTICLE_LR
from gdscope.problem.losses import (
    ARTICLE_LOSSES,
    HUBER_DELTA,
    LOSS_NAMES,
    SMOOTHL1_BETA,
    LossSpec,
)
from gdscope.problem.maps import MAX_GRID_SIZE, Grid
from gdscope.problem.objective import Objective, default_grid
from gdscope.problem.testfunctions import FUNCTIONS

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
IMAGE_FILE = "image file (.png, .svg or .pdf)"
DTYPE_HELP = f"the float type the runs compute in (default: {DTYPES[0]})"
_Pool = TypeVar("_Pool")

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are a single line: ``gdscope: error: …``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"gdscope: error: {message} (see '{self.prog} --help')\n")


_PARSERS: dict[str, argparse.ArgumentParser] = {}
"""Each command's parser, kept by ``remember`` when it is made: its defaults tell which
options were given."""


def remember(name: str, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Keep ``parser`` as command ``name``'s (for ``given``)."""
    _PARSERS[name] = parser
    return parser


def flag(dest: str) -> str:
    """An option's flag from its name in the parsed arguments (``grid_size`` → ``--grid-size``)."""
    return "--" + dest.replace("_", "-")


def given(ns: argparse.Namespace, names: Iterable[str]) -> list[str]:
    """Those of ``names`` the command has that were given values other than their defaults,
    as flags (``--grid-size``)."""
    parser = _PARSERS[ns.command]
    return [flag(n) for n in names
            if hasattr(ns, n) and getattr(ns, n) != parser.get_default(n)]  # fmt: skip


def spoken(error: GdscopeError, parser: argparse.ArgumentParser, command: str) -> str:
    """The library's error as ``command`` says it: each setting the error names
    (``GdscopeError.settings``) that the command has a flag for is said as that flag where the
    message first mentions it: ``val_data`` → ``--val-data``, ``to=CHECKPOINT`` → ``--to
    CHECKPOINT``, and for a switch ``force=True`` → ``--force``, ``path=False`` →
    ``--no-path``."""
    message = str(error)
    sub = next((action.choices[command] for action in parser._actions
                if isinstance(action, argparse._SubParsersAction) and command in action.choices),
               parser)  # fmt: skip
    switches = {flag for action in sub._actions if action.nargs == 0
                for flag in action.option_strings}  # fmt: skip
    flags = {flag for action in sub._actions for flag in action.option_strings}
    before = r"(?<![\w'\"./:-])"  # a whole word, not part of a name, a path or a quoted value
    for setting in error.settings:
        name = re.escape(setting)
        flag, negated = "--" + setting.replace("_", "-"), "--no-" + setting.replace("_", "-")
        said = {"True": flag, "False": negated}
        switch = rf"{before}{name}=(True|False)\b"
        found = re.search(switch, message)
        if found is not None and said[found.group(1)] in switches:
            message = re.sub(switch, said[found.group(1)], message, count=1)
        elif flag in flags:
            word = rf"{before}{name}(=(?=\w)|(?![\w'\"./=-]))"
            found = re.search(word, message)
            if found is not None:  # (``to=X`` is said ``--to X``)
                message = (message[: found.start()] + flag + (" " if found.group(1) else "")
                           + message[found.end() :])  # fmt: skip
    return message


def warning_line(message: Warning | str, category: type[Warning]) -> str:
    """A library's warning as one line of ours (not Python's two, with the source line)."""
    text = str(message).strip().splitlines()
    return f"gdscope: warning: {text[0] if text else category.__name__}"


def warn_now() -> None:
    """From now on print each warning at once, as one line (``main`` holds them to the end,
    which suits a command that finishes, not a server that runs until stopped)."""

    def show(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
        print(warning_line(message, category), file=sys.stderr)

    warnings.showwarning = show


def number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def chunk_size(text: str | None) -> int | str | None:
    """``--chunk`` (read after parsing, so a bad one is a ``GdscopeError``): a positive
    integer, ``auto`` (sized to the free memory), or None when not given."""
    if text is None or text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise GdscopeError(f"--chunk takes a positive integer or 'auto', got {text!r}")
    return value


def add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data (defaults: the article's)")
    spec = DataSpec()
    group.add_argument(
        "--data", type=Path, metavar="CSV", help="read the points from a CSV file (columns x,y)"
    )
    group.add_argument("--seed", type=integer, default=spec.seed, help="NumPy legacy seed")
    group.add_argument("--n", type=integer, default=spec.n, help="number of points")
    group.add_argument(
        "--coefficients",
        type=number,
        nargs=3,
        metavar=("A", "B", "C"),
        default=(spec.quadratic, spec.linear, spec.constant),
        help="y = A·x² + B·x + C + noise (default 0.75 1 2)",
    )
    group.add_argument("--noise", type=number, default=spec.noise, help="noise level")


def add_sgd_options(parser: argparse.ArgumentParser) -> None:
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
    add_scheduler_options(group)
    add_optimizer_options(group, number=number)
    group.add_argument(
        "--epochs",
        type=integer,
        default=ARTICLE_EPOCHS,
        help=f"passes over the data, 1..{MAX_EPOCHS} (default %(default)s)",
    )
    group.add_argument(
        "--start",
        type=number,
        nargs=2,
        metavar=("W", "B"),
        help="start weight and bias (default 6 -3), or a function's y and x (default: its own)",
    )
    group.add_argument(
        "--batch-size",
        type=integer,
        help="mini-batch SGD: one step per batch of this many points (default: full batch; "
        "with --model: the loader's)",
    )
    group.add_argument(
        "--shuffle-seed", type=integer, default=0, help="seed of the mini-batch shuffle"
    )
    add_loss_parameter_options(group)


def add_loss_parameter_options(group: argparse._ActionsContainer) -> None:
    """``--huber-delta`` and ``--smoothl1-beta``, with ``LossSpec``'s defaults."""
    group.add_argument("--huber-delta", type=number, default=HUBER_DELTA,
                       help="HuberLoss delta (default %(default)s)")  # fmt: skip
    group.add_argument("--smoothl1-beta", type=number, default=SMOOTHL1_BETA,
                       help="SmoothL1Loss beta (default %(default)s)")  # fmt: skip


def add_scheduler_options(group: argparse._ActionsContainer) -> None:
    """``--scheduler NAME`` and its ``--sched KEY=VALUE`` arguments (read by ``scheduler``)."""
    group.add_argument(
        "--scheduler",
        metavar="NAME",
        help="a torch.optim.lr_scheduler class, e.g. steplr, stepped after every epoch (with "
        "--model: after every mini-batch step, so step_size counts steps)",
    )
    group.add_argument(
        "--sched", action="append", default=[], metavar="KEY=VALUE", help="scheduler argument"
    )


BACKENDS = ("local", "ray")
"""Where chunks of work run: here, or as Ray tasks (``gdscope.raypool``)."""


def add_backend_options(group: argparse._ActionsContainer) -> None:
    """``--backend``, ``--address`` and ``--gpus-per-task``, for ``landscape`` and the
    ``--model`` studies (read by ``ray_backend``)."""
    group.add_argument("--backend", choices=BACKENDS, default=BACKENDS[0],
                       help="ray: split the chunks across a Ray cluster's workers")  # fmt: skip
    group.add_argument(
        "--address",
        help="Ray cluster address, e.g. auto or HEAD:6379 "
        "(default: $RAY_ADDRESS, else a Ray started on this machine)",
    )
    group.add_argument("--gpus-per-task", type=number, default=0.0, help="Ray: GPUs per chunk")


def check_backend(ns: argparse.Namespace) -> None:
    if ns.backend != "ray" and ns.address is not None:
        raise GdscopeError("--address needs --backend ray")


def ray_backend(ns: argparse.Namespace, kind: Callable[..., _Pool]) -> _Pool | None:
    """``kind`` (a ``RayPool``) made from the options, or None for ``--backend local``."""
    check_backend(ns)
    if ns.backend != "ray":
        return None
    return kind(address=ns.address, gpus_per_task=ns.gpus_per_task)


def add_output_options(parser: argparse.ArgumentParser, *, what: str) -> None:
    parser.add_argument("--out", type=Path, required=True, help=what)
    parser.add_argument("--force", action="store_true", help="overwrite existing output")
    parser.add_argument("--dpi", type=number, default=DEFAULT_DPI, help="raster resolution")


def add_grid_options(parser: argparse.ArgumentParser) -> None:
    grid = parser.add_argument_group("landscape grid (default: -5..8, or a function's domain)")
    grid.add_argument(
        "--grid-size",
        type=integer,
        nargs="+",
        metavar="N",
        help=f"samples per axis (one value, or weight and bias), 2..{MAX_GRID_SIZE} (101)",
    )
    grid.add_argument(
        "--w-range", "--y-range", type=number, nargs=2, metavar=("LO", "HI"),
        help="vertical range: the weight, or a function's y",
    )  # fmt: skip
    grid.add_argument(
        "--b-range", "--x-range", type=number, nargs=2, metavar=("LO", "HI"),
        help="horizontal range: the bias, or a function's x",
    )  # fmt: skip


def add_function_option(parser: argparse.ArgumentParser, *, many: bool) -> None:
    parser.add_argument(
        "--function",
        nargs="+" if many else None,
        metavar="NAME[:KEY=VALUE,...]",
        help=f"a test function instead of the regression: {', '.join(FUNCTIONS)} "
        "(e.g. quadratic:condition=100)",
    )


def add_objective_options(parser: argparse.ArgumentParser, *, network: bool = False) -> None:
    """One objective: ``--loss`` (LossSpec's default), or ``--function`` instead. With
    ``network`` the command also trains ``--model``, whose loss ``--loss`` then names."""
    neuron = f"{', '.join(LOSS_NAMES)} (default {LossSpec().name})"
    if network:
        parser.add_argument("--loss", metavar="NAME|MODULE:FUNCTION",
                            help=f"the neuron's loss: {neuron}; with --model the network's: "
                            f"{LOSS_HELP}")  # fmt: skip
    else:
        parser.add_argument("--loss", choices=LOSS_NAMES, default=LossSpec().name,
                            help=f"the neuron's loss: {neuron}")  # fmt: skip
    add_function_option(parser, many=False)


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    engine = parser.add_argument_group("batched engine")
    engine.add_argument("--dtype", choices=DTYPES, default=DTYPES[0], help=DTYPE_HELP)
    engine.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    engine.add_argument("--compile", action="store_true", help="torch.compile the step")
    engine.add_argument("--save", type=Path, help="results file: .npz, .csv or .json")


def losses(names: Sequence[str], delta: float, beta: float) -> tuple[LossSpec, ...]:
    chosen: list[str] = []
    for name in names:
        for item in [x.name for x in ARTICLE_LOSSES] if name == "all" else [name]:
            if item not in chosen:
                chosen.append(item)
    return tuple(LossSpec(name, delta=delta, beta=beta) for name in chosen)


def optimizer(ns: argparse.Namespace, objectives: Sequence[Objective] = ()) -> OptimizerSpec:
    """SGD from its own flags (and --opt), any other optimizer from --opt (and --lr).

    SGD's default lr is the article's 0.1, or on test functions the smallest of their
    customary learning rates (0.1 overshoots most of them)."""
    opts = parse_assignments(ns.opt, what="--opt")
    name = ns.optimizer.lower()
    given = given_flags(ns)
    lr = given.pop("lr", None)
    if name == "sgd":
        rates = [x.customary_lr for x in objectives] or [ARTICLE_LR]
        unknown = set(opts) - {f.name for f in fields(SGDConfig)}
        if unknown:
            raise GdscopeError(f"SGD got unknown argument(s) {', '.join(sorted(unknown))}")
        return SGDConfig(**{**given, "lr": min(rates) if lr is None else lr, **opts}).spec()
    if given:
        used = ", ".join(flag_of(key) for key in given)
        raise GdscopeError(f"{used} apply to SGD only; use --opt KEY=VALUE for {name}")
    if lr is not None:
        opts.setdefault("lr", lr)
    return OptimizerSpec.of(name, **opts)


def scheduler(ns: argparse.Namespace) -> SchedulerSpec | None:
    if ns.scheduler is None:
        if ns.sched:
            raise GdscopeError("--sched needs --scheduler")
        return None
    return SchedulerSpec.of(ns.scheduler, **parse_assignments(ns.sched, what="--sched"))


def data_spec(ns: argparse.Namespace) -> DataSpec | CsvData:
    a, b, c = ns.coefficients
    spec = DataSpec(seed=ns.seed, n=ns.n, quadratic=a, linear=b, constant=c, noise=ns.noise)
    if ns.data is None:
        return spec
    if spec != DataSpec():
        raise GdscopeError("--data reads the points; --seed/--n/--coefficients/--noise make them")
    csv = CsvData.of(ns.data)
    make_data(csv)  # check the file now: a bad CSV is an input error, before any work
    return csv


def objective(ns: argparse.Namespace) -> Objective:
    """One objective: ``--function`` if given, else ``--loss`` (train, sweep, phase)."""
    if ns.function is not None:
        return parse_function(ns.function)
    name = LossSpec().name if ns.loss is None else ns.loss
    return LossSpec(name, delta=ns.huber_delta, beta=ns.smoothl1_beta)


def grid(ns: argparse.Namespace, objective: Objective) -> Grid | None:
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


def start(ns: argparse.Namespace) -> tuple[float, float] | None:
    return None if ns.start is None else tuple(ns.start)


def check_outputs(ns: argparse.Namespace, *, saves: tuple[str, ...] = ()) -> None:
    """Refuse bad output names before any work is done, so nothing is computed in vain."""
    from gdscope.files import figure_format

    figure_format(ns.out)
    check_dpi(ns.dpi)
    check_target(ns.out, force=ns.force)
    save = getattr(ns, "save", None)
    if save is not None and saves:  # no ``saves``: the caller checks ``--save`` itself
        check_save(save, saves, ns.force)
    check_inputs(ns, (ns.out, save, getattr(ns, "animate", None)))


READ_FILES = ("data", "checkpoint", "to", "path", "from_h5", "proj", "resume")
"""The options that may name a file a command reads (``--resume``'s is read, then written)."""


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)  # a hard link, a path through another mount, ...
    except OSError:  # (one of them does not exist yet)
        return False


def check_inputs(ns: argparse.Namespace, outputs: Iterable[Path | None]) -> None:
    """Refuse an output that is a file the command reads: it would overwrite its own input
    (with ``--force``), or be refused only after the work."""
    written = [Path(p) for p in outputs if p is not None]
    for name in READ_FILES:
        given = getattr(ns, name, None)
        for value in given if isinstance(given, list) else [given]:  # (--path repeats)
            if value is not None and any(_same_file(Path(value), out) for out in written):
                raise GdscopeError(f"{flag(name)} {value} is also an output: name another file")


def check_dpi(dpi: float) -> None:
    if not 10 <= dpi <= 1200:
        raise GdscopeError(f"--dpi must be in [10, 1200], got {dpi:g}")


def check_save(save: Path, saves: Sequence[str], force: bool) -> None:
    if save.suffix.lower() not in saves:
        raise GdscopeError(f"--save takes a {' or '.join(saves)} file, got {save.name!r}")
    check_target(save, force=force)


def progress(
    label: str, unit: str = "cfg"
) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A tqdm bar on a terminal, nothing when stderr is piped. The job calls ``update(0,
    total)`` first, so the bar has its total at once, and its rate from the first chunk."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(desc=label, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)  # update(), not setting n: tqdm's rate comes from updates
        bar.refresh()

    return update, bar.close


_WRITTEN: list[Path] = []
"""The files this command wrote so far (``wrote``), for the line Ctrl-C ends with."""


def wrote(path: Path, line: str | None = None) -> None:
    """Print a file's name (or ``line``) once it is written, and remember it."""
    _WRITTEN.append(path)
    print(path if line is None else line, flush=True)


def kept_files() -> str:
    """What Ctrl-C left behind, in words: the files ``wrote`` printed, or nothing."""
    if not _WRITTEN:
        return "nothing finished; nothing written"
    return f"kept {len(_WRITTEN)} file(s) written before it: {', '.join(map(str, _WRITTEN))}"
