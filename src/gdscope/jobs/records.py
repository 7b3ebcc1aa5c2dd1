"""The record every gdscope file carries: what made it, so ``replay`` can make it again.

A record is a JSON object ``{"kind": ..., "gdscope": version, ...}``. PNG keeps it in a text
chunk, SVG in its metadata, PDF in its Subject; a GIF, MP4 or data file has a side-car
``.json``. ``record`` builds one and ``read_record`` reads it back; nothing else does either.
Wherever it is kept, its text is ``files.record_json``'s (the one writer of a record's JSON).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gdscope.errors import GdscopeError
from gdscope.files import DEFAULT_DPI, RECORD_KEYS
from gdscope.version import __version__

__all__ = ["DEFAULT_DPI", "evaluation_argv", "read_record", "record", "sidecar"]


def record(kind: str, *, interrupted: str | None = None, **fields: Any) -> dict[str, Any]:
    """A record of ``kind`` with the version that wrote it; ``interrupted`` says what was kept
    when Ctrl-C cut the work short (such a file cannot be made again as it is)."""
    rec = {"kind": kind, "gdscope": __version__, **fields}
    return rec if interrupted is None else {**rec, "interrupted": interrupted}


def evaluation_argv(chosen: Mapping[str, Any]) -> list[str]:
    """The options that evaluate a landscape as ``chosen`` (a landscape record's
    ``evaluation``, or its surface's ``meta``) says it was: auto's choice depends on timing,
    and another chunking sums in float32 in another order (``replay.EVALUATION_FLAGS``)."""
    return ["--strategy", str(chosen["strategy"]), "--chunk", str(chosen["chunk"]),
            "--memory-format", str(chosen["memory_format"]),
            "--plan", json.dumps(chosen.get("plan", []))]  # fmt: skip


def sidecar(path: str | os.PathLike[str]) -> Path:
    """Where a record lives beside its file: ``movie.gif`` → ``movie.gif.json``."""
    target = Path(path)
    return target.with_name(target.name + ".json")


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
                text = getattr(image, "text", {}).get(RECORD_KEYS["png"])
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
