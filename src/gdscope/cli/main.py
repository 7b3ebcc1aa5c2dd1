"""The ``gdscope`` command: parse arguments, hand them to the command's module, map errors.

Each command group (``plotting``, ``studies``, ``landscape``, ``serve``) adds its sub-commands
with ``add_parser`` and runs them with ``run``. Bad input of any kind ends with one line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from gdscope import interrupts
from gdscope.errors import GdscopeError
from gdscope.version import __version__

if TYPE_CHECKING:
    from gdscope.cli.plotting import plot_config

__all__ = ["build_parser", "main", "plot_config"]

# Light on purpose: the entry point (``gdscope.cli:main``) imports this module before anything
# handles Ctrl-C; the command groups (torch, matplotlib: seconds) are loaded by ``_groups``,
# which the program calls inside ``interrupts.starting()``.


def _groups() -> tuple[ModuleType, ...]:
    """The command groups, each adding its sub-commands (``add_parser``) and running them
    (``run``)."""
    from gdscope.cli import board, completion, connect, hessian, landscape, plotting, serve, studies

    return (plotting, studies, landscape, serve, completion, hessian, connect, board)


def __getattr__(name: str) -> object:
    """``plot_config`` (tests and notebooks build a ``PlotConfig`` from arguments with it),
    imported when asked for."""
    if name == "plot_config":
        from gdscope.cli.plotting import plot_config

        return plot_config
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_parser() -> argparse.ArgumentParser:
    from gdscope.cli.options import Parser

    parser = Parser(
        prog="gdscope",
        description="See what a PyTorch optimizer does: loss landscapes and optimizer paths.",
    )
    parser.add_argument("--version", action="version", version=f"gdscope {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in _groups():
        group.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` (default: this program's arguments); its exit status. As the
    program itself (no ``argv``), the libraries' warnings are held and printed at the end, one
    line each, unless the command failed: then its one line of error says what went wrong."""
    if argv is None:
        with warnings.catch_warnings(record=True) as caught:
            code = _main(argv)
    else:
        caught, code = [], _main(argv)
    from gdscope.cli import options  # (loaded by ``_main``)

    if code != options.EXIT_USAGE:
        for line in dict.fromkeys(options.warning_line(w.message, w.category) for w in caught):
            print(line, file=sys.stderr)
    if argv is None and code == options.EXIT_INTERRUPTED:
        # The program was interrupted: its files are complete and closed, so skip the
        # interpreter's teardown (a second or more with torch loaded) and end now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    # The program (no ``argv``): Ctrl-C while it loads and reads its arguments ends it in one
    # line; ``handle_sigint`` takes over for the command itself.
    with interrupts.starting() if argv is None else contextlib.nullcontext():
        parser = build_parser()
        ns = parser.parse_args(argv)
    from gdscope.cli import options
    from gdscope.jobs.replay import strip_outputs

    # What replay re-runs: the arguments without the output names, so a replay's record (and
    # so its bytes) equals the original's.
    ns.argv = strip_outputs(list(sys.argv[1:] if argv is None else argv))
    ns.main = main  # for replay: old records re-run their command line (no import cycle)
    ns.parser = parser  # for completion: the script is written from this parser
    group = next(group for group in _groups() if ns.command in group.COMMANDS)
    try:
        with interrupts.handle_sigint():
            return group.run(ns)
    except GdscopeError as error:
        print(f"gdscope: error: {options.spoken(error, parser, ns.command)}", file=sys.stderr)
        return options.EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C outside a computation that keeps what it finished
        print(f"gdscope: interrupted: {options.kept_files()}", file=sys.stderr)
        return options.EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
