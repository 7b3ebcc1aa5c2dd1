"""``gdscope board RUNS``: the runs under a folder, live in the browser (``server.board``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from gdscope.cli.options import integer, number
from gdscope.cli.serve import serve
from gdscope.errors import GdscopeError, needs_extra

if TYPE_CHECKING:
    from gdscope.cli.options import Subparsers
    from gdscope.jobs.board import Sources

__all__ = ["COMMANDS", "add_parser", "run"]

COMMANDS = ("board",)
PORT = 8010
"""The board's default port (the explorer's is 8000: both can run at once)."""


def add_parser(commands: Subparsers) -> None:
    from gdscope.jobs.board import DEADLINE_S
    from gdscope.jobs.landscape import DEFAULT_LOSS, LOSS_HELP

    board = commands.add_parser(
        "board",
        help="the runs under a folder, live in the browser (loss, sharpness, landscape)",
        description="Serve a page listing every run under RUNS (recordings written by "
        "gdscope.Recorder(path=...) or the Lightning/Hugging Face callbacks, surface, study "
        "and Hessian files) that follows them while they are written. With --model and "
        "--data it also computes the landscape around a recorded path.",
    )
    board.add_argument("runs", type=Path, metavar="RUNS", help="the folder of runs")
    board.add_argument("--model", metavar="MODULE:FUNCTION",
                       help="returns the nn.Module the runs record (for landscapes)")  # fmt: skip
    board.add_argument("--data", metavar="MODULE:FUNCTION",
                       help="returns the data the landscape is evaluated on")  # fmt: skip
    board.add_argument("--loss", default=DEFAULT_LOSS, metavar="NAME|MODULE:FUNCTION",
                       help=LOSS_HELP)  # fmt: skip
    board.add_argument("--deadline", type=number, default=DEADLINE_S, metavar="SECONDS",
                       help="a landscape's or spectrum's compute, at most, in CPU "
                       "seconds (default: %(default)g): beyond, it stops; what finished "
                       "is kept")  # fmt: skip
    board.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    board.add_argument("--port", type=integer, default=PORT, help="port (default: %(default)s)")
    board.add_argument("--no-browser", action="store_true", help="do not open a browser")
    board.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="also answer requests for this host name (repeatable)")  # fmt: skip
    board.add_argument("--frame-ancestor", action="append", default=[], metavar="ORIGIN",
                       help="let pages of this origin frame the board (repeatable)")  # fmt: skip


def _sources(ns: argparse.Namespace) -> Sources | None:
    """The model, data and loss for landscapes, imported now so that a wrong name is one line
    before the server starts; None without --model."""
    if ns.model is None and ns.data is None:
        return None
    if ns.model is None or ns.data is None:
        raise GdscopeError("--model and --data go together (the landscape needs both)",
                           settings=["model", "data"])  # fmt: skip
    from gdscope.jobs.board import Sources
    from gdscope.jobs.landscape import load_parts

    load_parts(ns.model, ns.data, ns.loss)
    return Sources(ns.model, ns.data, ns.loss)


def run(ns: argparse.Namespace) -> int:
    sources = _sources(ns)
    try:
        from gdscope.server.board import create_board
    except ImportError as error:
        raise needs_extra(f"the board needs the web extra ({error})", "web") from None

    # Built first: a bad setting (--deadline 0) is one line before anything is said.
    app = create_board(ns.runs, sources=sources, hosts=(ns.host, *ns.allow_host),
                       frame_ancestors=tuple(ns.frame_ancestor),
                       deadline_s=ns.deadline)  # fmt: skip
    waiting = [] if ns.runs.exists() else [
        f"{ns.runs} does not exist yet: its runs appear once it does"]  # fmt: skip
    return serve(lambda: app, ns, title=f"board of {ns.runs}", open_page=not ns.no_browser,
                 notes=waiting)  # fmt: skip
