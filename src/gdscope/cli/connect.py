"""``gdscope connect``: a low-loss curve between two trained networks (mode connectivity,
computed by ``gdscope.jobs.connect``), drawn with the straight line and their plane."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gdscope.cli import options
from gdscope.cli.options import EXIT_INTERRUPTED, IMAGE_FILE, integer, number
from gdscope.errors import GdscopeError
from gdscope.jobs.landscape import DEFAULT_LOSS, LOSS_HELP
from gdscope.nets.curves import ConnectOptions

if TYPE_CHECKING:
    from gdscope.cli.options import Subparsers
    from gdscope.nets.curves import ConnectResult

__all__ = ["COMMANDS", "add_parser", "run"]


def add_parser(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "connect", help="train a low-loss curve between two networks, draw it beside the line",
        description="Train a quadratic Bézier curve between two trained networks (Garipov et "
        "al. 2018): its bend minimizes the loss averaged over points drawn along it. Draws the "
        "loss along the straight line and along the curve, and the plane through the two "
        "networks and the bend.",
    )  # fmt: skip
    parser.add_argument("a", type=Path, metavar="A.pt",
                        help="the first network: a state_dict saved with torch.save (or a "
                        "checkpoint dict holding one; a saved nn.Module with "
                        "--unpickle)")  # fmt: skip
    parser.add_argument("b", type=Path, metavar="B.pt", help="the second network, the same way")
    parser.add_argument("--model", metavar="MODULE:FUNCTION", required=True,
                        help="returns the nn.Module both files fit")  # fmt: skip
    parser.add_argument("--data", metavar="MODULE:FUNCTION", required=True,
                        help="returns the training data: a DataLoader, a Dataset, or one "
                        "(inputs, targets) pair")  # fmt: skip
    parser.add_argument("--loss", default=DEFAULT_LOSS, metavar="NAME|MODULE:FUNCTION",
                        help=LOSS_HELP)  # fmt: skip
    given = ConnectOptions()  # every default is ConnectOptions'
    parser.add_argument("--epochs", type=integer, default=given.epochs,
                        help=f"epochs the bend trains (default {given.epochs})")  # fmt: skip
    parser.add_argument("--lr", type=number, default=given.lr,
                        help=f"SGD's learning rate: for half the epochs, then falling to 1%% of "
                        f"it (default {given.lr:g})")  # fmt: skip
    parser.add_argument("--momentum", type=number, default=given.momentum,
                        help=f"SGD's momentum (default {given.momentum:g})")  # fmt: skip
    parser.add_argument("--weight-decay", type=number, default=given.weight_decay,
                        help=f"SGD's weight decay (default {given.weight_decay:g})")  # fmt: skip
    parser.add_argument("--batch-size", type=integer,
                        help="samples per step (default: the data's first batch)")  # fmt: skip
    parser.add_argument("--seed", type=integer, default=given.seed,
                        help="seed of the shuffling and of the points drawn on the "
                        "curve")  # fmt: skip
    parser.add_argument("--points", type=integer, default=given.points,
                        help=f"values of t measured along the line and the curve (default "
                        f"{given.points})")  # fmt: skip
    parser.add_argument("--grid", type=integer, default=given.grid,
                        help=f"points per axis of the plane (default {given.grid})")  # fmt: skip
    parser.add_argument("--margin", type=number, default=given.margin,
                        help=f"the plane beyond the three networks, as a share of their extent "
                        f"(default {given.margin:g})")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    parser.add_argument("--unpickle", action="store_true",
                        help="load a whole saved nn.Module (runs code from the file: only for "
                        "files you trust)")  # fmt: skip
    parser.add_argument("--resume", type=Path,
                        help="save the progress here after every epoch and chunk of points; "
                        "go on from it")  # fmt: skip
    parser.add_argument("--title", help="figure title")
    parser.add_argument("--save", type=Path, help="the numbers as JSON (with the record)")
    options.add_output_options(parser, what=IMAGE_FILE)


def _check(ns: argparse.Namespace) -> None:
    """Refuse bad outputs, and an output that is one of the two networks, before any work."""
    options.check_outputs(ns, saves=(".json",))
    for network in (ns.a, ns.b):
        for output in (ns.out, ns.save, ns.resume):
            if output is not None and network.resolve() == output.resolve():
                raise GdscopeError(f"{network} is a network the command reads: name another file")


def _connect(ns: argparse.Namespace) -> int:
    from gdscope.jobs.connect import ConnectJob, make_connect

    _check(ns)
    curve = ConnectOptions(
        epochs=ns.epochs, lr=ns.lr, momentum=ns.momentum, weight_decay=ns.weight_decay,
        batch_size=ns.batch_size, seed=ns.seed, points=ns.points, grid=ns.grid, margin=ns.margin,
    )  # fmt: skip
    job = ConnectJob(model=ns.model, data=ns.data, a=ns.a, b=ns.b, loss=ns.loss,
                     device=ns.device, unpickle=ns.unpickle, options=curve)  # fmt: skip

    def log(text: str) -> None:
        sys.stderr.write(text + "\n")  # one write: a Ctrl-C cannot split the line from its end

    update, close = options.progress("connect", unit="pt")
    try:
        output = make_connect(job, ns.out, save=ns.save, resume=ns.resume, dpi=ns.dpi,
                              force=ns.force, title=ns.title, progress=update, log=log,
                              wrote=options.wrote)  # fmt: skip
    finally:
        close()
    return report(output.result, ns.resume)


def report(result: ConnectResult, resume: Path | None) -> int:
    """The summary line, or what Ctrl-C kept; the exit status."""
    from gdscope.render.connectivity import connect_summary

    if not result.trained:
        kept = f"; {resume} keeps them (--resume goes on from there)" if resume else ""
        print(f"gdscope: interrupted: the curve trained for {result.epochs_done} of "
              f"{result.options.epochs} epochs{kept}; nothing drawn", file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    sys.stderr.write(connect_summary(result) + "\n")
    if result.interrupted:
        print(f"gdscope: interrupted: kept {result.measured} of {result.total} points "
              "measured", file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    return 0


_RUN = {"connect": _connect}
COMMANDS = tuple(_RUN)


def run(ns: argparse.Namespace) -> int:
    return _RUN[ns.command](ns)
