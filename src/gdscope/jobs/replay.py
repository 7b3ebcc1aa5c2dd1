"""``gdscope replay``: read the record a gdscope file carries and make the file again.

PNG keeps it in a text chunk, SVG in its metadata, PDF in its Subject; a GIF or MP4 has a
side-car ``.json``. The same record through the same code gives the same bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gdscope.errors import GdscopeError
from gdscope.jobs.records import read_record

__all__ = ["read_record", "replay", "strip_outputs"]


_OUTPUT_FLAGS = {"--out": 1, "--force": 0, "--save": 1, "--animate": 1}
EVALUATION_FLAGS = {"--strategy": 1, "--chunk": 1, "--memory-format": 1, "--plan": 1}


def strip_outputs(argv: list[str], flags: dict[str, int] | None = None) -> list[str]:
    """``argv`` without ``--out``/``--save``/``--animate`` and their values, and without
    ``--force`` (or without the given ``flags``: name → number of values)."""
    flags = _OUTPUT_FLAGS if flags is None else flags
    kept, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        name = arg.split("=", 1)[0]
        if name in flags:
            skip = 0 if "=" in arg else flags[name]
            continue
        kept.append(arg)
    return kept


def replay(
    path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *, force: bool = False
) -> Path:
    """Make ``path`` again from its record, into ``out`` (default ``NAME-replay.EXT``)."""
    from gdscope.jobs.article import make_article_figure
    from gdscope.jobs.plot import make_animation, make_plot
    from gdscope.jobs.plotconfig import PlotConfig
    from gdscope.render.animation import AnimationOptions

    source = Path(path)
    record = read_record(source)
    target = (
        Path(out) if out is not None else source.with_name(f"{source.stem}-replay{source.suffix}")
    )
    kind = record.get("kind")
    try:
        if kind == "plot":
            config = PlotConfig.from_dict(record["config"], where=f"{source.name} record")
            return make_plot(config, target, title=record.get("title"), dpi=record["dpi"],
                             force=force)  # fmt: skip
        if kind == "figure":
            return make_article_figure(record["figure"], target, dpi=record["dpi"], force=force)
        if kind == "animate":
            config = PlotConfig.from_dict(record["config"], where=f"{source.name} record")
            options = AnimationOptions.from_dict(record["animation"])
            return make_animation(config, target, options=options, title=record.get("title"),
                                  force=force)  # fmt: skip
        if kind == "argv":
            from gdscope.cli.main import main

            argv = [*strip_outputs(list(record["argv"])), "--out", str(target)]
            chosen = record.get("evaluation")
            if chosen:  # evaluate as the original did (auto's choice depended on timing);
                # the record's argv holds none of these flags (the CLI strips them)
                argv += ["--strategy", str(chosen["strategy"]), "--chunk", str(chosen["chunk"]),
                         "--memory-format", str(chosen["memory_format"]),
                         "--plan", json.dumps(chosen.get("plan", []))]  # fmt: skip
            if force:
                argv.append("--force")
            if main(argv) != 0:
                raise GdscopeError(f"re-running {' '.join(record['argv'][:1])} failed")
            return target
    except KeyError as missing:
        raise GdscopeError(f"{source.name}: its record lacks {missing}") from None
    raise GdscopeError(f"{source.name}: unknown record kind {kind!r}")
