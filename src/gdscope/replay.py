"""``gdscope replay``: read the record a gdscope file carries and make the file again.

PNG keeps it in a text chunk, SVG in its metadata, PDF in its Subject; a GIF or MP4 has a
side-car ``.json``. The same record through the same code gives the same bytes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .errors import GdscopeError

__all__ = ["read_record", "replay", "strip_outputs"]


def _pdf_subject(data: bytes) -> str | None:
    """The ``/Subject`` literal string of a PDF's info dictionary, unescaped."""
    start = data.find(b"/Subject (")
    if start < 0:
        return None
    i, out = start + len(b"/Subject ("), bytearray()
    escapes = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b",
               ord("f"): b"\f"}  # fmt: skip
    while i < len(data):
        c = data[i]
        if c == ord("\\"):
            nxt = data[i + 1]
            octal = re.match(rb"[0-7]{1,3}", data[i + 1 : i + 4])
            if octal:
                out.append(int(octal.group(), 8))
                i += 1 + len(octal.group())
                continue
            out += escapes.get(nxt, bytes([nxt]))
            i += 2
            continue
        if c == ord(")"):
            return out.decode("latin-1")
        out.append(c)
        i += 1
    return None


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The configuration record embedded in (or beside) a file gdscope wrote."""
    from .jobs import sidecar

    file = Path(path)
    if not file.is_file():
        raise GdscopeError(f"{file} does not exist")
    suffix = file.suffix.lower()
    text: str | None = None
    if suffix in (".gif", ".mp4"):
        side = sidecar(file)
        if not side.is_file():
            raise GdscopeError(f"{file} has no record beside it ({side.name} is missing)")
        text = side.read_text(encoding="utf-8")
    elif suffix == ".png":
        from PIL import Image

        try:
            with Image.open(file) as image:
                text = getattr(image, "text", {}).get("Description")
        except OSError as error:
            raise GdscopeError(f"{file} is not a readable PNG ({error})") from None
    elif suffix == ".svg":
        import xml.etree.ElementTree as ET

        try:
            root = ET.parse(file).getroot()
        except ET.ParseError as error:
            raise GdscopeError(f"{file} is not a readable SVG ({error})") from None
        found = [e.text for e in root.iter() if e.tag.endswith("}description")]
        text = found[0] if found else None
    elif suffix == ".pdf":
        text = _pdf_subject(file.read_bytes())
    else:
        raise GdscopeError(f"replay reads .png, .svg, .pdf, .gif or .mp4 files, got {file.name!r}")
    if not text:
        raise GdscopeError(f"{file} carries no gdscope record")
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        raise GdscopeError(f"{file} carries a record that is not valid JSON") from None
    if not isinstance(record, dict):
        raise GdscopeError(f"{file} carries no gdscope record")
    return record


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
    from .animation import AnimationOptions
    from .config import PlotConfig
    from .jobs import make_animation, make_article_figure, make_plot

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
            from .cli import main

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
