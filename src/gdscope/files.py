"""Writing results to disk: atomically, never silently replacing a file."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from gdscope import interrupts
from gdscope.errors import GdscopeError

__all__ = [
    "DEFAULT_DPI",
    "FIGURE_FORMATS",
    "check_folder",
    "check_target",
    "check_unchanged",
    "content_sha256",
    "figure_format",
    "fingerprint",
    "make_folder",
    "record_json",
    "save_figure",
    "write_atomic",
    "write_text",
]

DEFAULT_DPI = 110
"""Raster resolution of a saved figure unless told otherwise (records made before ``reproduce``
wrote its dpi were saved at it)."""


def check_target(path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """``path`` as a ``Path`` if a file may be written there: its folder exists and takes a new
    file (tried: an empty ``PROBE_SUFFIX`` file made and removed there), it is not a folder,
    and it does not exist unless ``force``. Jobs call it for every output before they start
    working."""
    target = Path(path)
    if target.is_dir():
        raise GdscopeError(f"{target} is a directory; name a file")
    if not force and target.exists():
        raise GdscopeError(f"{target} already exists; pass force=True to overwrite it",
                           settings=["force"])  # fmt: skip
    if not target.parent.is_dir():
        _refuse_missing(target.parent)
    _probe(target.parent, target.name)
    return target


def check_folder(path: str | os.PathLike[str]) -> Path:
    """``path`` as a ``Path`` if it is a folder outputs can be written in, or one that can be
    made (its nearest existing parent takes a new folder, tried); nothing is left behind. The
    commands that write a folder of files call it before they start working."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise GdscopeError(f"{folder} is a file, not a directory")
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == Path(p.anchor))
    if not existing.is_dir():
        raise GdscopeError(f"{existing} is a file, not a directory: {folder} cannot be made")
    _probe(existing, folder.name, make=existing != folder)
    return folder


def make_folder(path: str | os.PathLike[str]) -> Path:
    """The folder ``path``, made with its missing parents if need be (``check_folder`` first,
    so a refusal says why in one line)."""
    folder = check_folder(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # (taken, or made unwritable, since the check)
        raise GdscopeError(f"cannot make the directory {folder}: {_why(error)}") from None
    return folder


def _refuse_missing(folder: Path) -> None:
    """The error for a file whose folder is missing: a file stands where a folder should
    (``existing.png/x.png``), or the folder does not exist."""
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            raise GdscopeError(f"{parent} is a file, not a directory")
    raise GdscopeError(f"directory {folder} does not exist")


PROBE_SUFFIX = ".probe"
"""The suffix of the empty file (or folder) ``check_target`` and ``check_folder`` make and
remove at once to learn that a folder takes new entries (``write_atomic``'s own is ``.tmp``)."""


def _probe(folder: Path, name: str, *, make: bool = False) -> None:
    """Create and remove a temporary file (``make``: a folder) in ``folder``; refuse it in one
    line if that fails."""
    try:
        # Under a deferred Ctrl-C: one pressed between making and removing it left the probe
        # behind. One pressed there is honoured once the probe is gone (unless an outer section
        # holds it; one pressed before, which a stopping job is handling, is not raised here).
        pressed = interrupts.requested()
        with interrupts.deferred():
            if make:
                os.rmdir(tempfile.mkdtemp(prefix=f".{name}.", suffix=PROBE_SUFFIX, dir=folder))
            else:
                fd, probe = tempfile.mkstemp(prefix=f".{name}.", suffix=PROBE_SUFFIX, dir=folder)
                os.close(fd)
                os.unlink(probe)
        if not pressed:
            interrupts.honour()
    except OSError as error:
        what = "make a directory" if make else "write"
        raise GdscopeError(f"cannot {what} in {folder}: {_why(error)}") from None


_REASONS = {errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on the device",
            errno.EDQUOT: "disk quota exceeded"}  # fmt: skip
"""The reasons an existing folder refuses a new entry that the system's own words say truly.
Others (``/proc`` answers "No such file or directory" about a folder that exists) are not
passed on."""


def _why(error: OSError) -> str:
    return _REASONS.get(error.errno or 0, "it does not take new files")


def content_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of what a file holds, or of a directory's files (their relative names and
    bytes, in order): a record pins its inputs with it, so a replay reads the very same ones.
    Hidden names in a directory (``.board``, the board's cache beside a recording; ``.DS_Store``)
    are not its content: what is written there later must not make its figures unreplayable."""
    source = Path(path)
    try:
        if not source.is_dir():
            return hashlib.sha256(source.read_bytes()).hexdigest()
        digest = hashlib.sha256()
        files = (f.relative_to(source) for f in source.rglob("*") if f.is_file())
        for relative in sorted(f for f in files if not any(p.startswith(".") for p in f.parts)):
            file, name = source / relative, relative.as_posix().encode()
            digest.update(len(name).to_bytes(8, "little") + name)
            digest.update(hashlib.sha256(file.read_bytes()).digest())
        return digest.hexdigest()
    except OSError as error:
        raise GdscopeError(f"cannot read {source}: {error.strerror or error}") from None


def check_unchanged(path: str | os.PathLike[str], sha256: str | None) -> None:
    """Refuse ``path`` if its content is no longer the one ``sha256`` pinned (None: not pinned)."""
    if sha256 is not None and content_sha256(path) != sha256:
        raise GdscopeError(f"{path} has changed since the figure was made (sha256 differs)")


FIGURE_FORMATS = ("png", "svg", "pdf")
RECORD_KEYS = {"png": "Description", "svg": "Description", "pdf": "Subject"}
"""The metadata entry a figure's record goes in, by format (``jobs.records`` reads it back)."""


def write_atomic(
    path: str | os.PathLike[str], write: Callable[[Path], object], *, force: bool = False
) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it into place.

    Readers never see a half-written file. Without ``force`` an existing ``path`` is an error,
    checked again at the moment of publishing (a hard link fails if the name was taken since).
    """
    target = check_target(path, force=force)
    tmp: Path | None = None
    try:
        # Made under a deferred Ctrl-C, inside the try: one pressed between making the file and
        # entering the try left it behind (it is raised on leaving the block, with tmp known).
        with interrupts.deferred():
            fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                            dir=target.parent)  # fmt: skip
            os.close(fd)
            tmp = Path(tmp_name)
        write(tmp)
        with interrupts.deferred():  # a Ctrl-C now waits until the file is published
            os.chmod(tmp, _file_mode())  # mkstemp makes 0600 files; outputs get the umask mode
            _publish(tmp, target, force=force)
    finally:
        if tmp is not None:
            try:
                with interrupts.deferred(), contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            except KeyboardInterrupt:  # (raised before the section began: remove it still)
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                raise
    return target


def fingerprint(*parts: Any) -> str:
    """What identifies a computation in its progress file: a hash of ``parts`` (arrays,
    tensors or text), each with its dtype and shape, so equal numbers of another dtype or
    layout differ."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            digest.update(b"str:" + part.encode())
            continue
        data = part.detach().cpu().numpy() if hasattr(part, "detach") else np.asarray(part)
        data = np.ascontiguousarray(data)
        digest.update(f"{data.dtype.str}{data.shape}:".encode())
        digest.update(data.tobytes())
    return digest.hexdigest()[:24]


def save_progress(path: Path, key: str, arrays: Mapping[str, np.ndarray]) -> None:
    """A long computation's progress file (``--resume``): ``arrays`` and the ``key`` of the
    computation they belong to, written atomically over the last one."""

    contents: dict[str, Any] = {"key": np.array(key), **arrays}

    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.savez(handle, **contents)

    write_atomic(path, write, force=True)


def load_progress(
    path: Path, key: str, *, differs: str, shapes: Mapping[str, tuple[int, ...]] | None = None
) -> dict[str, np.ndarray] | None:
    """The arrays of the progress file ``path`` (None if there is none yet). Refused in one
    line when it is not one, or when it belongs to another computation: another ``key``, or
    arrays not of ``shapes``; ``differs`` says what would differ."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            state = {k: saved[k] for k in saved.files}
    except (OSError, ValueError) as error:
        raise GdscopeError(f"{path} is not a gdscope resume file ({error})") from None
    wrong = any(k not in state or state[k].shape != s for k, s in (shapes or {}).items())
    if str(state.get("key")) != key or wrong:
        raise GdscopeError(f"{path} belongs to another computation ({differs}); remove it or "
                           "choose another resume file", settings=["resume"])  # fmt: skip
    return state


def _publish(tmp: Path, target: Path, *, force: bool) -> None:
    """Move ``tmp`` to ``target``; without ``force`` only if no file has taken the name."""
    taken = GdscopeError(f"{target} already exists; pass force=True to overwrite it",
                         settings=["force"])  # fmt: skip
    if force:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise taken from None
    except OSError:  # file systems without hard links
        if target.exists():
            raise taken from None
        os.replace(tmp, target)


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def json_ready(value: Any) -> Any:
    """``value`` with every NaN or infinity as null, for strict JSON (which has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    return value


def record_json(value: Mapping[str, Any]) -> str:
    """A record (``jobs.records.record``), or a data file that holds one, as gdscope writes it
    everywhere (a figure's metadata, a side-car, a ``--save`` file): strict JSON (NaN and
    infinities as null), keys sorted, so the same record always gives the same bytes."""
    return json.dumps(json_ready(dict(value)), sort_keys=True, allow_nan=False)


def write_text(path: str | os.PathLike[str], text: str, *, force: bool = False) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), force=force)


def figure_format(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """The format to save in: ``fmt`` if given, else the file's suffix; must be png, svg or pdf."""
    chosen = (fmt or Path(path).suffix.lstrip(".") or "png").lower()
    if chosen not in FIGURE_FORMATS:
        raise GdscopeError(
            f"unsupported figure format {chosen!r}; use one of {', '.join(FIGURE_FORMATS)}"
        )
    return chosen


def save_figure(
    fig: Figure,
    path: str | os.PathLike[str],
    *,
    force: bool = False,
    fmt: str | None = None,
    dpi: float = DEFAULT_DPI,
    config: dict[str, Any] | None = None,
) -> Path:
    """Save ``fig`` atomically; ``config`` is embedded as JSON in the file's metadata.

    Output is reproducible: no dates, fixed SVG ids, so the same figure gives the same bytes.
    """
    import matplotlib

    chosen = figure_format(path, fmt)
    metadata: dict[str, str | None] = {}
    if config is not None:
        metadata = {RECORD_KEYS[chosen]: record_json(config)}
    if chosen == "png":
        metadata["Software"] = "gdscope"
    if chosen == "pdf":
        metadata.update(Creator="gdscope", Producer="gdscope", CreationDate=None)
    if chosen == "svg":
        metadata["Date"] = None

    def write(tmp: Path) -> None:
        with matplotlib.rc_context({"svg.hashsalt": "gdscope", "pdf.compression": 6}):
            fig.savefig(tmp, format=chosen, dpi=dpi, metadata=metadata)

    return write_atomic(path, write, force=force)
