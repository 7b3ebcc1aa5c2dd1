"""The records the board's PNGs of a landscape and a spectrum carry: the record the command
the board shows under the view (``jobs.landscape.landscape_command`` for a plane of one run or
several, ``jobs.board.line_command``, ``compute_spectrum``) writes into its own figure, so that
``gdscope replay`` makes that figure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["LANDSCAPE_READS", "landscape_record", "spectrum_record"]

LANDSCAPE_READS = ("--checkpoint", "--to", "--path", "--from-h5", "--proj")
"""The flags of ``gdscope landscape`` that name a file it reads, whose content its record pins
(``cli.landscape``'s ``_PINNED``: the test compares this record with the one it writes)."""


def _flags(argv: list[str]) -> dict[str, str]:
    """``--flag value`` pairs of a command the board built (every flag it names takes one
    value, but for ``--density``)."""
    found: dict[str, str] = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--") and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            found[arg] = argv[i + 1]
    return found


def landscape_record(command: list[str]) -> dict[str, Any]:
    """The record ``command`` (a ``gdscope landscape`` command line the board shows) writes into
    its figure: its arguments without the outputs and the evaluation flags, the evaluation they
    name (a replay evaluates as they say), the SHA-256 of each file it reads (now)."""
    from gdscope.files import content_sha256
    from gdscope.jobs.records import record
    from gdscope.jobs.replay import EVALUATION_FLAGS, strip_outputs

    argv = strip_outputs(list(command[1:]))
    flags = _flags(argv)
    fields: dict[str, Any] = {"argv": strip_outputs(argv, EVALUATION_FLAGS)}
    if "--strategy" in flags:
        fields["evaluation"] = {"strategy": flags["--strategy"], "chunk": int(flags["--chunk"]),
                                "memory_format": flags["--memory-format"],
                                "plan": json.loads(flags["--plan"])}  # fmt: skip
    read = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in LANDSCAPE_READS]
    fields["sha256"] = {file: content_sha256(file) for file in read}  # each --path of several
    return record("argv", **fields)


def spectrum_record(command: list[str]) -> dict[str, Any]:
    """The record ``command`` (the ``gdscope hessian`` command line ``compute_spectrum`` keeps)
    writes into its figure: its job, with the checkpoint's SHA-256 (now)."""
    from gdscope.files import DEFAULT_DPI, content_sha256
    from gdscope.jobs.hessian import HessianJob
    from gdscope.jobs.records import record
    from gdscope.nets.curvature import CurvatureOptions

    flags = _flags(list(command[2:]))
    checkpoint = Path(flags["--checkpoint"])
    curvature = CurvatureOptions(top=int(flags["--top"]), density="--density" in command)
    job = HessianJob(model=flags["--model"], data=flags["--data"], loss=flags["--loss"],
                     checkpoint=checkpoint, checkpoint_sha256=content_sha256(checkpoint),
                     curvature=curvature)  # fmt: skip
    return record("hessian", job=job.to_dict(), dpi=DEFAULT_DPI, title=None)
