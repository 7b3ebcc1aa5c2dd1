"""``gdscope sweep``, ``phase`` and ``compare``: parse the options into a study config, run the
job in ``gdscope.jobs.studies`` and print what it wrote."""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gdscope import interrupts
from gdscope.cli import options
from gdscope.cli.options import EXIT_INTERRUPTED, IMAGE_FILE, integer, number
from gdscope.engines.stacked import INITS, METHODS
from gdscope.errors import GdscopeError
from gdscope.jobs.landscape import DEFAULT_LOSS
from gdscope.jobs.studies import make_compare, make_phase, make_sweep
from gdscope.jobs.studyconfig import (
    COMPARE_FORMATS,
    DTYPES,
    GRID_FORMATS,
    CompareConfig,
    NetworkSpec,
    PhaseConfig,
    Problem,
    RunSettings,
    SweepConfig,
    sweep_axes,
)
from gdscope.jobs.studyfiles import Outputs, StudyOutput, kept, kept_optimizers
from gdscope.optim.specs import OPTIMIZERS, OptimizerSpec, parse_assignments
from gdscope.optim.table import given_flags
from gdscope.problem.data import DataSpec
from gdscope.problem.losses import LossSpec
from gdscope.problem.objective import Objective
from gdscope.raypool import RayPool
from gdscope.studies.netstudy import DEFAULT_STEPS, SCORES
from gdscope.studies.phase import (
    DEFAULT_METRIC,
    METRICS,
    NETWORK_METRICS,
    NEURON_METRICS,
    STEPS_TOL,
)
from gdscope.studies.sweep import COMPARE_BUDGET, COMPARE_STARTS, GRID_CHUNK, Axis, refuse_both

if TYPE_CHECKING:
    from gdscope.cli.options import Subparsers

__all__ = ["COMMANDS", "add_parser", "run"]


def add_parser(commands: Subparsers) -> None:
    _add_sweep(commands)
    _add_phase(commands)
    _add_compare(commands)


_NETWORK_FLAGS = ("val_data", "steps", "init", "init_seed", "target", "resume",
                  "backend", "address", "gpus_per_task", "strategy")  # fmt: skip
"""The options of the network group that mean nothing without ``--model``."""
_NETWORK_ONLY = {
    "sweep": ("chunk",),
    "compare": ("batch_size", "shuffle_seed", "dtype", "device", "chunk", "score"),
}
"""Each command's other options that are read only with ``--model``."""
_NEURON_FLAGS = ("epochs", "start", "compile", "huber_delta", "smoothl1_beta", "seed", "n",
                 "coefficients", "noise", "grid_size", "w_range", "b_range", "tol")  # fmt: skip
"""Options of the one-neuron problem (or a test function) that mean nothing with ``--model``."""
_NEURON_ONLY = {"compare": ("budget", "starts", "start_seed")}


def _add_network_options(parser: argparse.ArgumentParser, *, engine: bool = False) -> None:
    """Your own network instead of the one-neuron model: ``--model`` and ``--data`` factories
    and where its chunks run (with ``engine``: also the batches, float type, device, chunk and
    scheduler, for ``compare``; ``sweep`` and ``phase`` have these in their optimizer group)."""
    net = parser.add_argument_group(
        "your network (--model; then --data is MODULE:FUNCTION returning a DataLoader)"
    )
    net.add_argument("--model", metavar="MODULE:FUNCTION", help="returns the nn.Module")
    net.add_argument("--val-data", metavar="MODULE:FUNCTION", help="validation data")
    net.add_argument("--steps", type=integer, default=DEFAULT_STEPS,
                     help="mini-batch steps per copy")  # fmt: skip
    net.add_argument("--init", choices=INITS, default=INITS[0],
                     help="copies start alike, or re-drawn with --init-seed + k")  # fmt: skip
    net.add_argument("--init-seed", type=integer, default=0, help="seed of --init seeded")
    net.add_argument("--target", type=number, help="the loss steps_to_target waits for")
    net.add_argument("--strategy", choices=METHODS, default=METHODS[0],
                     help="vmap the copies, or train them one by one; auto (default): time "
                     "both on the first chunk, go on with the faster")  # fmt: skip
    net.add_argument("--resume", type=Path, metavar="FILE.npz",
                     help="keep finished chunks here; continue from it if it exists "
                     "(compare: FILE-<optimizer>.npz beside it)")  # fmt: skip
    options.add_backend_options(net)
    if engine:
        options.add_scheduler_options(net)
        net.add_argument("--batch-size", type=integer, help="default: the loader's")
        net.add_argument("--shuffle-seed", type=integer, default=0,
                         help="seed of the mini-batch shuffle")  # fmt: skip
        net.add_argument("--dtype", choices=DTYPES, default=DTYPES[0], help=options.DTYPE_HELP)
        net.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
        net.add_argument("--chunk", default="auto",
                         help="copies trained together (default: auto)")  # fmt: skip


def _network(ns: argparse.Namespace) -> NetworkSpec | None:
    """The network the options name, or None; network options without ``--model`` refused."""
    scheduler = options.scheduler(ns)
    if ns.model is None:
        given = options.given(ns, (*_NETWORK_FLAGS, *_NETWORK_ONLY.get(ns.command, ())))
        given += ["--scheduler"] if scheduler is not None else []  # the 2-D studies apply none
        if given:
            raise GdscopeError(f"{', '.join(given)} need --model")
        return None
    ignored = options.given(ns, (*_NEURON_FLAGS, *_NEURON_ONLY.get(ns.command, ())))
    if ignored:
        raise GdscopeError(f"{', '.join(ignored)} set the one-neuron problem, not --model's "
                           "(a network study trains --steps mini-batch steps)")  # fmt: skip
    if ns.data is None:
        raise GdscopeError("--model needs --data MODULE:FUNCTION (a DataLoader, a Dataset, …)")
    return NetworkSpec(
        ns.model, str(ns.data), val_data=ns.val_data, loss=ns.loss or DEFAULT_LOSS, steps=ns.steps,
        init=ns.init, init_seed=ns.init_seed, target=ns.target,
        chunk=_copies(ns.chunk),
        scheduler=scheduler, strategy=ns.strategy,
    )  # fmt: skip


def _copies(text: str | None) -> int | None:
    """A network's ``--chunk``: copies trained together, None for auto."""
    given = options.chunk_size(text)
    return given if isinstance(given, int) else None


def _add_grid_run_options(parser: argparse.ArgumentParser, *, grid: bool) -> None:
    """A sweep's or phase diagram's run: optimizer, data, (the map's grid,) batched engine."""
    options.add_sgd_options(parser)
    options.add_data_options(parser)
    if grid:
        options.add_grid_options(parser)
    options.add_engine_options(parser)


def _add_sweep(commands: Subparsers) -> None:
    sweep = commands.add_parser("sweep", help="small multiples: one panel per configuration")
    sweep.add_argument(
        "--vary",
        action="append",
        required=True,
        metavar="NAME=VALUES",
        help="a hyperparameter and its values: lr=0.01:0.5:6, lr=1e-3:1:5:log, momentum=0,0.9",
    )
    options.add_objective_options(sweep, network=True)
    sweep.add_argument("--log-color", action="store_true", help="logarithmic colour scale")
    sweep.add_argument("--chunk",
                       help="with --model: copies trained together (default: auto)")  # fmt: skip
    _add_grid_run_options(sweep, grid=True)
    _add_network_options(sweep)
    options.add_output_options(sweep, what=IMAGE_FILE)
    options.remember("sweep", sweep)


def _add_phase(commands: Subparsers) -> None:
    phase = commands.add_parser("phase", help="phase diagram of a metric over two hyperparameters")
    phase.add_argument("--x", required=True, metavar="NAME=RANGE", help="e.g. lr=1e-3:2:256:log")
    phase.add_argument("--y", required=True, metavar="NAME=RANGE", help="e.g. momentum=0:0.99:128")
    measured = f"of a 2-D objective: {', '.join(NEURON_METRICS)}; of --model: " + ", ".join(
        NETWORK_METRICS
    )
    phase.add_argument("--metric", choices=METRICS, default=DEFAULT_METRIC,
                       help=f"what each cell shows (default: %(default)s); {measured}")  # fmt: skip
    phase.add_argument("--tol", type=number, default=STEPS_TOL,
                       help="for --metric steps (default %(default)s)")  # fmt: skip
    phase.add_argument("--mark", type=number, nargs=2, metavar=("X", "Y"), help="star a cell")
    options.add_objective_options(phase, network=True)
    phase.add_argument(
        "--chunk",
        help=f"configurations per batch (default {GRID_CHUNK}; --model: auto)",
    )
    _add_grid_run_options(phase, grid=False)
    _add_network_options(phase)
    options.add_output_options(phase, what=IMAGE_FILE)
    options.remember("phase", phase)


def _add_compare(commands: Subparsers) -> None:
    compare = commands.add_parser("compare", help="tune optimizers fairly and compare them")
    compare.add_argument(
        "--optimizers", default="sgd,adam,rmsprop,adagrad", help="comma-separated names"
    )
    compare.add_argument("--budget", type=integer, default=COMPARE_BUDGET,
                         help="steps per run (default %(default)s)")  # fmt: skip
    compare.add_argument("--starts", type=integer, default=COMPARE_STARTS,
                         help="start points (default %(default)s; the first: the objective's "
                              "own)")  # fmt: skip
    compare.add_argument(
        "--start-seed", type=integer, default=0, help="seed of the random start points"
    )
    compare.add_argument(
        "--tune",
        action="append",
        default=[],
        metavar="NAME=RANGE",
        help="lr=LO:HI:N:log (default 1e-4:1:25:log); momentum=… also tunes momentum/beta1",
    )
    options.add_objective_options(compare, network=True)
    options.add_loss_parameter_options(compare)
    options.add_data_options(compare)
    options.add_grid_options(compare)
    compare.add_argument("--save", type=Path, help="results file (.json)")
    compare.add_argument("--score", choices=SCORES, default=SCORES[0],
                         help="with --model: what a setting is scored by")  # fmt: skip
    _add_network_options(compare, engine=True)
    options.add_output_options(compare, what=IMAGE_FILE)
    options.remember("compare", compare)


def _objective(ns: argparse.Namespace) -> Objective:
    """The neuron's objective (``--loss`` or ``--function``). With ``--model``, ``--loss`` is the
    network's (``_network``), and the neuron's default objective only sets SGD's default lr."""
    if ns.model is not None:
        if ns.function is not None:
            raise GdscopeError("--function and --model are two different problems; choose one")
        return LossSpec()
    try:
        return options.objective(ns)
    except GdscopeError as error:
        if ns.loss is None or ns.function is not None:
            raise
        raise GdscopeError(f"--loss: {error} (a network's loss needs --model)") from None


def _problem(ns: argparse.Namespace, objective: Objective, *, grid: bool = True) -> Problem:
    data = options.data_spec(ns) if objective.needs_data else DataSpec()
    return Problem(objective, data, options.grid(ns, objective) if grid else None)


def _settings(
    ns: argparse.Namespace, objective: Objective, axes: Sequence[Axis] = ()
) -> RunSettings:
    return RunSettings(
        optimizer=_optimizer(ns, objective, axes), start=options.start(ns), epochs=ns.epochs,
        batch_size=ns.batch_size, shuffle_seed=ns.shuffle_seed, dtype=ns.dtype,
        device=ns.device, compile=ns.compile,
    )  # fmt: skip


def _optimizer(ns: argparse.Namespace, objective: Objective, axes: Sequence[Axis]) -> OptimizerSpec:
    """The fixed optimizer, validated with the axes' values applied: ``--opt nesterov=true``
    needs the momentum ``--y momentum=…`` gives, not torch's default 0. Where the fixed
    settings alone are not a valid optimizer, each varied torch argument's first value is
    applied (the engine replaces it per cell, and checks every cell before the run)."""
    try:
        return options.optimizer(ns, [objective])
    except GdscopeError:
        accepted = inspect.signature(OPTIMIZERS[ns.optimizer.lower()]).parameters
        first = [f"{axis.name}={str(axis.values[0]).lower()}" for axis in axes
                 if axis.name in accepted]  # fmt: skip
        if not first:
            raise
        applied = argparse.Namespace(**{**vars(ns), "opt": [*(ns.opt or []), *first]})
        return options.optimizer(applied, [objective])


def _backend(ns: argparse.Namespace) -> RayPool | None:
    return options.ray_backend(ns, RayPool)


def _outputs(ns: argparse.Namespace) -> Outputs:
    return Outputs(ns.out, dpi=ns.dpi, force=ns.force, save=ns.save, resume=ns.resume)


def _not_fixed(ns: argparse.Namespace, axes: Iterable[Axis]) -> None:
    """A varied hyperparameter may not also be set by its flag or ``--opt`` (which would be
    silently overridden); a fixed pair beside a varied half (``betas`` and ``beta1``) is merged
    as ``studies.sweep.merge_fixed`` says (``jobs.studyconfig.RunSettings.fixed``)."""
    fixed = {*given_flags(ns), *parse_assignments(ns.opt, what="--opt")}
    refuse_both(fixed, [axis.name for axis in axes], where=" (by its flag or --opt)")


def _sweep(ns: argparse.Namespace) -> int:
    axes = sweep_axes(tuple(ns.vary))
    _not_fixed(ns, axes)
    options.check_outputs(ns, saves=GRID_FORMATS)
    objective = _objective(ns)
    settings = _settings(ns, objective, axes)
    network = _network(ns)
    problem = Problem() if network is not None else _problem(ns, objective)
    config = SweepConfig(tuple(ns.vary), problem, settings, log=ns.log_color, network=network)
    return _run_study(ns, make_sweep, config)


def _phase(ns: argparse.Namespace) -> int:
    # refused first, before the outputs are looked at
    axes = [Axis.parse(text, what=what) for text, what in ((ns.x, "x"), (ns.y, "y"))]
    _not_fixed(ns, axes)
    options.check_outputs(ns, saves=GRID_FORMATS)
    objective = _objective(ns)
    settings = _settings(ns, objective, axes)
    network = _network(ns)
    problem = Problem() if network is not None else _problem(ns, objective, grid=False)
    given = options.chunk_size(ns.chunk)
    chunk = {"chunk": given} if isinstance(given, int) and network is None else {}
    config = PhaseConfig(
        ns.x, ns.y, problem, settings, metric=ns.metric, tol=ns.tol,
        mark=tuple(ns.mark) if ns.mark else None, network=network, **chunk,
    )  # fmt: skip
    return _run_study(ns, make_phase, config)


def _run_study(
    ns: argparse.Namespace, make: Callable[..., StudyOutput], config: SweepConfig | PhaseConfig
) -> int:
    """Run a grid study with a progress bar and report what it wrote (``_report``)."""
    update, close = options.progress(ns.command)
    try:
        done = make(config, _outputs(ns), progress=update, backend=_backend(ns))
    finally:
        close()
    _notes([done.run])
    return _report(done.written, interrupted=done.run.interrupted, kept=kept(done.run),
                   resume=getattr(ns, "resume", None))  # fmt: skip


def _notes(runs: Iterable[Any]) -> None:
    """Say how a network was trained where it differs from what was asked (vmap could not run
    it: copy by copy), once per distinct note."""
    seen = dict.fromkeys(n for run in runs for n in run.meta.get("notes", []))
    for note in seen:
        print(f"gdscope: note: {note}", file=sys.stderr)


def _report(
    written: Sequence[Path], *, interrupted: bool, kept: str, resume: Path | None = None
) -> int:
    """Print the files written; after Ctrl-C (during the run, or while the files were written,
    which then hold what finished) say what was kept in one line, and how to go on from a
    ``--resume`` file, and exit 130."""
    for path in written:
        print(path)
    if not (interrupted or interrupts.requested()):
        return 0
    more = f"; the same command with --force continues from {resume}" if resume else ""
    print(f"gdscope: interrupted: {kept}{more}", file=sys.stderr)
    return EXIT_INTERRUPTED


def _compare(ns: argparse.Namespace) -> int:
    options.check_outputs(ns, saves=COMPARE_FORMATS)
    objective = _objective(ns)
    network = _network(ns)
    run = None
    if network is not None:
        run = RunSettings(batch_size=ns.batch_size, shuffle_seed=ns.shuffle_seed,
                          dtype=ns.dtype, device=ns.device)  # fmt: skip
    config = CompareConfig(
        tuple(n.strip() for n in ns.optimizers.split(",") if n.strip()),
        Problem() if network is not None else _problem(ns, objective), budget=ns.budget,
        starts=ns.starts, start_seed=ns.start_seed, tune=tuple(ns.tune), network=network,
        run=run, score=ns.score,
    )  # fmt: skip
    done = make_compare(config, _outputs(ns), backend=_backend(ns))
    _notes(getattr(done.result, "runs", {}).values())
    for row in done.result.table():
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    return _report(done.written, interrupted=done.result.interrupted,
                   kept=kept_optimizers(done.result), resume=ns.resume)  # fmt: skip


_RUN = {"sweep": _sweep, "phase": _phase, "compare": _compare}
COMMANDS = tuple(_RUN)


def run(ns: argparse.Namespace) -> int:
    return _RUN[ns.command](ns)
