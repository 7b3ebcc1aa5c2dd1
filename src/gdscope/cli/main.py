"""The ``gdscope`` command: parse arguments, hand them to the command's module, map errors.

Each command group (``plotting``, ``studies``, ``landscape``, ``serve``) adds its sub-commands
with ``add_parser`` and runs them with ``run``. Bad input of any kind ends with one line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from gdscope import interrupts
from gdscope.cli import completion, hessian, landscape, options, plotting, serve, studies
from gdscope.cli.options import EXIT_INTERRUPTED, EXIT_USAGE, Parser
from gdscope.cli.plotting import plot_config
from gdscope.errors import GdscopeError
from gdscope.version import __version__

__all__ = ["build_parser", "main", "plot_config"]

_GROUPS = (plotting, studies, landscape, serve, completion, hessian)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gdscope",
        description="See what a PyTorch optimizer does: loss landscapes and optimizer paths.",
    )
    parser.add_argument("--version", action="version", version=f"gdscope {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in _GROUPS:
        group.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` (default: this program's arguments); its exit status. As the
    program itself (no ``argv``), the libraries' warnings are held and printed at the end, one
    line each, unless the command failed: then its one line of error says what went wrong."""
    if argv is None:
        with warnings.catch_warnings(record=True) as caught:
            code = _main(argv)
        if code != EXIT_USAGE:
            for line in dict.fromkeys(options.warning_line(w.message, w.category) for w in caught):
                print(line, file=sys.stderr)
    else:
        code = _main(argv)
    if argv is None and code == EXIT_INTERRUPTED:
        # The program was interrupted: its files are complete and closed, so skip the
        # interpreter's teardown (a second or more with torch loaded) and end now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    from gdscope.jobs.replay import strip_outputs

    # What replay re-runs: the arguments without the output names, so a replay's record (and
    # so its bytes) equals the original's.
    ns.argv = strip_outputs(list(sys.argv[1:] if argv is None else argv))
    ns.main = main  # for replay: old records re-run their command line (no import cycle)
    ns.parser = parser  # for completion: the script is written from this parser
    group = next(group for group in _GROUPS if ns.command in group.COMMANDS)
    try:
        with interrupts.handle_sigint():
            return group.run(ns)
    except GdscopeError as error:
        print(f"gdscope: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C outside a computation that keeps what it finished
        print(f"gdscope: interrupted: {options.kept_files()}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
