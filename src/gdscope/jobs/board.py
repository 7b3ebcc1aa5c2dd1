"""``gdscope board``'s data: the runs under a folder, read while training writes them.

A run is one of

- a **recording**: a folder holding ``index.json`` (``Recorder(path=...)``, the Lightning and
  Hugging Face callbacks), with its ``snapshots.f32`` and ``steps.bin``;
- a **surface**: a ``.npz`` that ``gdscope landscape --save`` wrote (``xs``, ``ys``, ``loss``),
  or an ``.h5`` in the reference implementation's layout;
- a **study**: a network study's ``--save`` ``.npz`` (its ``description``);
- a **shoot-out**: a ``gdscope compare --save`` ``.json`` (its ``table`` and ``tried``);
- a **spectrum**: a ``gdscope hessian --save`` ``.json`` (its ``eigenvalues`` and record).

``Runs`` lists them (each file's kind decided once per size and modification time) and turns
a name from a request into a path, refusing any that leads outside the folder. ``Tail`` reads
only the rows of ``steps.bin`` (or ``validation.bin``) appended since it last read, so
following a run of a million steps costs what its new rows cost. ``Recording`` adds what
``index.json`` says (the layout, the optimizer, the sharpness with its learning rate and
threshold), re-read only when the file changes (the Recorder rewrites it, atomically, when it
measures the sharpness), and says what cannot be read instead of failing.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shlex
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np

from gdscope.errors import GdscopeError
from gdscope.files import json_ready
from gdscope.nets.recorder import INDEX_FILE as INDEX
from gdscope.nets.recorder import SNAPSHOTS_FILE as SNAPSHOTS
from gdscope.nets.recorder import STEP_ROW
from gdscope.nets.recorder import STEPS_FILE as STEPS
from gdscope.nets.recorder import VALIDATION_FILE as VALIDATION

__all__ = [
    "CACHE",
    "KINDS",
    "MAX_SHARED",
    "Entry",
    "Kind",
    "NoSuchRun",
    "OutsideRuns",
    "Recording",
    "Rows",
    "Runs",
    "Subject",
    "Tail",
    "Watcher",
    "curves_record",
    "draw_curves",
    "make_curves",
    "read_file_run",
    "read_recording",
    "thin",
]

Kind = Literal["recording", "surface", "study", "shootout", "spectrum"]
KINDS: tuple[Kind, ...] = ("recording", "surface", "study", "shootout", "spectrum")
MAX_ROWS = 20_000
"""Rows of a series ``/api/run`` sends at most: a longer one is thinned to the lowest and the
highest loss of each run of consecutive rows (``thin``), so its chart
keeps every spike and dip; the rows that arrive after are sent whole."""
CACHE = ".board"
"""The folder, inside a recording's folder, where the board keeps what it computed for it (the
landscapes and their resume files), and inside the runs' folder, what it computed for several
(their shared planes: ``Subject``); hidden folders are not listed as runs."""
MAX_DEPTH = 8
"""Folders below the runs' folder that are searched for runs, at most."""
MAX_RUNS = 2000
"""Runs listed at most (the listing says when there are more)."""
JSON_BYTES = 8 << 20
"""A ``.json`` larger than this is not opened to see whether it is a spectrum."""
ROW = STEP_ROW.itemsize


class OutsideRuns(GdscopeError):
    """A name that leads outside the runs' folder (``..``, an absolute path, a symlink out)."""


class NoSuchRun(GdscopeError):
    """A name that is not a run under the runs' folder."""


@dataclass(frozen=True)
class Entry:
    """A run: its ``name`` (its path under the runs' folder, with ``/``) and ``kind``."""

    name: str
    kind: Kind


def _signature(stat: os.stat_result) -> tuple[int, int, int]:
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class Runs:
    """The runs under ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        folder = Path(root)
        # A folder that is not there yet is followed until it is (the board may be started
        # before the first training makes it); a file is no folder of runs.
        if folder.exists() and not folder.is_dir():
            raise GdscopeError(f"{folder} is not a folder of runs")
        self.root = folder.resolve()
        self._kinds: dict[str, tuple[tuple[int, int, int], Kind | None]] = {}
        self.truncated = False
        """Whether the last ``scan`` stopped at ``MAX_RUNS``."""
        self._last: tuple[float, list[Entry]] | None = None
        self._lock = threading.Lock()

    def scan(self, *, within_s: float = 0.0) -> list[Entry]:
        """Every run, sorted by name; symlinks that lead outside the folder are left out. A
        listing made less than ``within_s`` ago is returned as it was: the pages that follow
        the folder share one walk of it instead of making one each."""
        with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < within_s:
                return list(self._last[1])
            listed = self._walk()
            self._last = time.monotonic(), listed
            return list(listed)

    def _walk(self) -> list[Entry]:
        found: list[Entry] = []
        self.truncated = False
        seen: dict[str, tuple[tuple[int, int, int], Kind | None]] = {}
        for folder, subfolders, names in os.walk(self.root, followlinks=False):
            here = Path(folder)
            depth = len(here.relative_to(self.root).parts)
            if INDEX in names:
                subfolders[:] = []  # a recording's folder holds no other runs (its cache: hidden)
                found.append(Entry(self._name(here), "recording"))
                continue
            subfolders[:] = sorted(
                s for s in subfolders if not s.startswith(".") and depth < MAX_DEPTH
                and self._within(here / s)
            )  # fmt: skip
            for name in sorted(names):
                path = here / name
                if name.startswith(".") or not self._within(path):
                    continue
                kind = self._kind(path, seen)
                if kind is not None:
                    found.append(Entry(self._name(path), kind))
            if len(found) >= MAX_RUNS:
                self.truncated = True
                break
        self._kinds = seen
        return sorted(found[:MAX_RUNS], key=lambda e: e.name)

    def _name(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()  # the folder itself: "."

    def _within(self, path: Path) -> bool:
        """Whether ``path`` (a symlink: where it leads) is inside the folder."""
        if not path.is_symlink():
            return True
        try:
            return path.resolve(strict=True).is_relative_to(self.root)
        except OSError:  # a dangling or looping link
            return False

    def _kind(self, path: Path, seen: dict[str, tuple[tuple[int, int, int], Kind | None]]
              ) -> Kind | None:  # fmt: skip
        """The kind of the file ``path`` (None: not a run), decided once per version of it."""
        suffix = path.suffix.lower()
        if suffix not in (".npz", ".h5", ".json"):
            return None
        try:
            signature = _signature(path.stat())
        except OSError:
            return None
        key = str(path)
        known = self._kinds.get(key)
        kind = known[1] if known is not None and known[0] == signature else _classify(path)
        seen[key] = (signature, kind)
        return kind

    def path(self, name: str) -> Path:
        """The run ``name`` as a path under the folder: ``OutsideRuns`` if it is absolute, has
        a ``..`` or leads out through a symlink; ``NoSuchRun`` if nothing is there."""
        if not isinstance(name, str) or "\x00" in name or "\\" in name:
            raise OutsideRuns(f"not a run's name: {name!r}")
        pure = PurePosixPath(name)
        if not name or pure.is_absolute() or any(p in ("..", "") for p in name.split("/")):
            raise OutsideRuns(f"{name!r} is not a name under the runs' folder")
        if any(part.startswith(".") for part in pure.parts):
            raise NoSuchRun(f"{name!r} is not a run (hidden names are not listed)")
        target = self.root / pure
        try:
            resolved = target.resolve(strict=True)
        except OSError:
            raise NoSuchRun(f"no run {name!r} under the runs' folder") from None
        if not resolved.is_relative_to(self.root):
            raise OutsideRuns(f"{name!r} leads outside the runs' folder (a symlink)")
        return resolved

    def kind(self, name: str) -> Kind:
        """The kind of run ``name`` (``NoSuchRun`` if it is not one)."""
        path = self.path(name)
        if path.is_dir():
            if (path / INDEX).is_file():
                return "recording"
            raise NoSuchRun(f"{name!r} is a folder without {INDEX}: not a recording")
        kind = _classify(path)
        if kind is None:
            raise NoSuchRun(f"{name!r} is not a recording, surface, study, shoot-out or spectrum")
        return kind


def _classify(path: Path) -> Kind | None:
    """What a file is, from its names (an NPZ's directory) or its top-level keys (JSON)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with zipfile.ZipFile(path) as archive:
                keys = {name.removesuffix(".npy") for name in archive.namelist()}
            if {"xs", "ys", "loss"} <= keys:
                return "surface"
            return "study" if "description" in keys else None
        if suffix == ".h5":
            return "surface"
        if path.stat().st_size > JSON_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            return None
        if "eigenvalues" in data:
            return "spectrum"
        return "shootout" if {"table", "tried"} <= data.keys() else None
    except (OSError, ValueError, zipfile.BadZipFile):
        # A file being written, or not one of ours: listed as nothing until it reads.
        return None


@dataclass(frozen=True, eq=False)
class Rows:
    """Rows ``start …`` of a ``steps.bin``: optimizer steps and losses (NaN: none given)."""

    start: int
    steps: np.ndarray
    losses: np.ndarray
    restarted: bool = False
    """The file was started again (a new recording over the old): these rows replace all."""

    def to_dict(self) -> dict[str, Any]:
        losses = json_ready(self.losses.tolist())
        return {"start": self.start, "steps": self.steps.tolist(), "losses": losses,
                "restarted": self.restarted}  # fmt: skip


class Tail:
    """The rows appended to ``steps.bin`` since the last ``read``: each call reads only the new
    whole rows (a row cut short by a writer still writing is read once it is whole)."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.offset = 0
        """Bytes read so far (whole rows)."""
        self.head = b""
        """The first row read, to notice a recording started again over this one."""
        self.partial = 0
        """Bytes at the end that do not make a whole row (as of the last read)."""

    @property
    def rows(self) -> int:
        return self.offset // ROW

    def _restarted(self, handle: Any, size: int) -> bool:
        if size < self.offset:
            return True
        if not self.head:
            return False
        handle.seek(0)
        return bool(handle.read(ROW) != self.head)

    def read(self, *, limit: int | None = None) -> Rows:
        """The new whole rows (at most ``limit``); none if the file is missing."""
        try:
            handle = self.file.open("rb")
        except OSError:
            return Rows(self.rows, np.zeros(0, np.int64), np.zeros(0))
        with handle:
            size = os.fstat(handle.fileno()).st_size
            restarted = self._restarted(handle, size)
            if restarted:
                self.offset, self.head = 0, b""
            whole = (size - self.offset) // ROW
            if limit is not None:
                whole = min(whole, limit)
            self.partial = (size - self.offset) % ROW if limit is None else 0
            handle.seek(self.offset)
            data = handle.read(whole * ROW)
        whole = len(data) // ROW  # the file may have shrunk between fstat and read
        data = data[: whole * ROW]
        rows = np.frombuffer(data, STEP_ROW)
        start = self.rows
        if start == 0 and whole:
            self.head = data[:ROW]
        self.offset += whole * ROW
        return Rows(start, rows["step"].astype(np.int64), rows["loss"].astype(np.float64),
                    restarted)  # fmt: skip

    def skip(self) -> None:
        """Start after the rows already there (a watcher that only wants what comes next)."""
        try:
            with self.file.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                self.head = handle.read(ROW) if size >= ROW else b""
        except OSError:
            return
        self.offset = size - size % ROW


@dataclass
class Recording:
    """A recording's folder as far as it can be read now: its rows (``tail``) and what its
    ``index.json`` says, with ``problems`` saying what cannot be read."""

    folder: Path
    tail: Tail = field(init=False)
    validation: Tail = field(init=False)
    """The rows of ``validation.bin`` (none while the recording has no validation losses)."""
    index: dict[str, Any] | None = field(default=None, init=False)
    index_error: str | None = field(default=None, init=False)
    _signature: tuple[int, int, int] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tail = Tail(self.folder / STEPS)
        self.validation = Tail(self.folder / VALIDATION)

    def refresh_index(self) -> bool:
        """Read ``index.json`` again if it changed; whether it did."""
        file = self.folder / INDEX
        try:
            signature = _signature(file.stat())
        except OSError as error:
            changed = self.index_error is None or self.index is not None
            self.index, self.index_error = None, f"{INDEX} cannot be read ({error.strerror})"
            self._signature = None
            return changed
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            index = json.loads(file.read_text(encoding="utf-8"))
            if not isinstance(index, dict):
                raise ValueError("not a JSON object")
            names, shapes = index["names"], index["shapes"]
            if not isinstance(names, list) or not isinstance(shapes, list) or \
                    len(names) != len(shapes):  # fmt: skip
                raise ValueError("its names and shapes do not match")
            self.index, self.index_error = index, None
        except (OSError, ValueError, KeyError, TypeError) as error:
            self.index, self.index_error = None, f"{INDEX} is not a recording's index ({error})"
        return True

    @property
    def parameters(self) -> int | None:
        """Parameters per snapshot (from the layout), None if the index cannot be read."""
        if self.index is None:
            return None
        try:
            return sum(math.prod(int(d) for d in shape) for shape in self.index["shapes"])
        except (TypeError, ValueError):
            return None

    def snapshots(self) -> tuple[int, int]:
        """Whole snapshots in ``snapshots.f32`` and the bytes left over (0, 0 if unknown)."""
        size = self.parameters
        try:
            length = (self.folder / SNAPSHOTS).stat().st_size
        except OSError:
            return 0, 0
        if not size:
            return 0, 0
        return length // (4 * size), length % (4 * size)

    def old_rows(self) -> Rows | None:
        """Steps and losses kept in ``index.json`` (recordings made before ``steps.bin``)."""
        if self.index is None or "steps" not in self.index:
            return None
        losses = [math.nan if v is None else v for v in self.index.get("losses", [])]
        return Rows(0, np.array(self.index["steps"], dtype=np.int64),
                    np.array(losses, dtype=np.float64))  # fmt: skip

    def sharpness(self) -> dict[str, Any] | None:
        """The sharpness trace the index holds (steps, values, lr, threshold, rule), if any."""
        if self.index is None or not isinstance(self.index.get("sharpness"), dict):
            return None
        return dict(self.index["sharpness"])

    def problems(self, rows: int) -> list[str]:
        """What cannot be read, or is not there yet, in words (``rows``: rows read so far)."""
        found = [self.index_error] if self.index_error else []
        whole, left = self.snapshots()
        if self.tail.partial:
            found.append(f"{STEPS} ends in {self.tail.partial} bytes of a row being written "
                         f"(a row is {ROW} bytes); not shown until it is whole")  # fmt: skip
        if self.validation.partial:
            found.append(f"{VALIDATION} ends in {self.validation.partial} bytes of a row being "
                         "written; not shown until it is whole")  # fmt: skip
        if self.index is not None:
            if left:
                found.append(f"{SNAPSHOTS} ends in {left} bytes of a snapshot being written or "
                             f"cut short (one is {4 * (self.parameters or 0)} bytes)")  # fmt: skip
            if rows > whole:
                found.append(f"{rows - whole} of {rows} steps have no snapshot in {SNAPSHOTS} "
                             f"(it holds {whole}): they are not on the path")  # fmt: skip
        if not (self.folder / STEPS).exists() and self.old_rows() is None:
            found.append(f"no {STEPS}: no steps recorded")
        return found

    def summary(self, rows: int) -> dict[str, Any]:
        """What the listing shows of it (``rows``: rows read so far)."""
        whole, _ = self.snapshots()
        sharp = self.sharpness()
        return {"rows": rows, "validation": self.validation.rows, "snapshots": whole,
                "parameters": self.parameters,
                "optimizer": self.index.get("optimizer") if self.index else None,
                "measured": len(sharp.get("steps") or ()) if sharp is not None else 0,
                "problems": self.problems(rows)}  # fmt: skip


class Watcher:
    """Follows every run under ``runs``: each ``poll`` says what changed since the last one, as
    ``(event, data)`` pairs: ``("runs", the listing)`` when it changed, ``("rows", ...)``
    with each recording's new rows (``Rows.to_dict`` and its ``name``), ``("index", ...)``
    when a recording's ``index.json`` changed (its sharpness, optimizer), ``("validation",
    ...)`` as ``rows`` for ``validation.bin``. The first poll lists
    the runs; rows already there then are not sent (``from_start``: they are)."""

    def __init__(self, runs: Runs, *, from_start: bool = False, rows_limit: int = 100_000,
                 shared_s: float = 0.0) -> None:  # fmt: skip
        self.runs, self.from_start, self.rows_limit = runs, from_start, rows_limit
        self.shared_s = shared_s
        """A listing of the folder this recent is used as it is (``Runs.scan``'s ``within_s``):
        the recordings' new rows are still read at every poll."""
        self.recordings: dict[str, Recording] = {}
        self.listing: list[dict[str, Any]] | None = None

    def poll(self) -> list[tuple[str, dict[str, Any]]]:
        events: list[tuple[str, dict[str, Any]]] = []
        first = self.listing is None
        listing = []
        entries = self.runs.scan(within_s=self.shared_s)
        for entry in entries:
            item: dict[str, Any] = {"name": entry.name, "kind": entry.kind}
            if entry.kind == "recording":
                run = self.recordings.get(entry.name)
                if run is None:
                    run = self.recordings[entry.name] = Recording(self.runs.root / entry.name)
                    if first and not self.from_start:
                        run.tail.skip()
                        run.validation.skip()
                if run.refresh_index() and not first:
                    events.append(("index", {"name": entry.name, **index_part(run)}))
                for event, tail in (("rows", run.tail), ("validation", run.validation)):
                    rows = tail.read(limit=self.rows_limit)
                    if len(rows.steps) or rows.restarted:
                        events.append((event, {"name": entry.name, **rows.to_dict()}))
                item.update(run.summary(rows_of(run)))
            listing.append(item)
        for gone in set(self.recordings) - {e.name for e in entries}:
            del self.recordings[gone]
        if listing != self.listing:
            self.listing = listing
            events.insert(0, ("runs", {"runs": listing, "truncated": self.runs.truncated}))
        return events


def rows_of(run: Recording) -> int:
    """The rows read of a recording (those in its index, for one made before ``steps.bin``)."""
    old = run.old_rows()
    return len(old.steps) if old is not None and not run.tail.rows else run.tail.rows


def index_part(run: Recording) -> dict[str, Any]:
    """What a recording's ``index.json`` says that the page draws (strict JSON values)."""
    return json_ready({"optimizer": run.index.get("optimizer") if run.index else None,
                       "parameters": run.parameters, "sharpness": run.sharpness()})  # fmt: skip


def thin(rows: Rows, limit: int = MAX_ROWS) -> dict[str, Any]:
    """``rows`` as ``Rows.to_dict`` gives them, at most ``limit`` of them: beyond, the first
    and last rows and those of the lowest and the highest loss of each of ``(limit - 2) // 2``
    runs of consecutive rows, so a chart of them keeps every spike and dip. ``end``: the
    row after the last read (the page appends what arrives from there); ``thinned``: rows
    were left out."""
    count = len(rows.steps)
    if count <= limit:
        return {**rows.to_dict(), "end": rows.start + count, "thinned": False}
    size = -(-count // max(1, (limit - 2) // 2))  # rows per run: at most that many runs
    runs = -(-count // size)
    pad = runs * size - count  # the last run padded with what never wins
    low = np.pad(np.where(np.isnan(rows.losses), np.inf, rows.losses), (0, pad),
                 constant_values=np.inf).reshape(runs, size)  # fmt: skip
    high = np.pad(np.where(np.isnan(rows.losses), -np.inf, rows.losses), (0, pad),
                  constant_values=-np.inf).reshape(runs, size)  # fmt: skip
    first = np.arange(runs) * size
    index = np.unique(np.concatenate([[0, count - 1], first + low.argmin(axis=1),
                                      first + high.argmax(axis=1)]))  # fmt: skip
    kept = Rows(rows.start, rows.steps[index], rows.losses[index], rows.restarted)
    return {**kept.to_dict(), "end": rows.start + count, "thinned": True}


def read_recording(folder: Path, *, limit: int = MAX_ROWS) -> dict[str, Any]:
    """A recording as the page first draws it: its rows and validation rows (each at most
    ``limit``: ``thin``), the index's part, the problems."""
    run = Recording(folder)
    run.refresh_index()
    rows = run.tail.read()
    if not len(rows.steps) and (old := run.old_rows()) is not None:
        rows = old
    count = max(run.tail.rows, len(rows.steps))
    validation = thin(run.validation.read(), limit)
    return {"kind": "recording", **thin(rows, limit), "validation_rows": validation,
            **index_part(run), **run.summary(count)}  # fmt: skip


def read_file_run(path: Path, kind: Kind) -> dict[str, Any]:
    """What the page draws of a surface, study or spectrum file (strict JSON values); a file
    that cannot be read gives ``{"problems": [why]}``."""
    try:
        if kind == "surface":
            return _surface(path)
        if kind == "study":
            return _study(path)
        data = json.loads(path.read_text(encoding="utf-8"))
        if kind == "shootout":
            return _shootout(data)
        keep = ("eigenvalues", "residuals", "converged", "trace", "trace_se", "density",
                "hvps", "seconds", "interrupted", "record")  # fmt: skip
        return {**{k: data[k] for k in keep if k in data}, "problems": []}
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, GdscopeError) as error:
        return {"problems": [f"{path.name} cannot be read ({error})"]}


CURVE_POINTS = 200
"""Points of each cell's loss curve a study sends at most (every k-th step, and the last)."""


def _curves(losses: np.ndarray) -> dict[str, Any]:
    """Each row of ``losses`` (a cell's loss per step) at ``CURVE_POINTS`` steps at most."""
    steps = losses.shape[1]
    every = max(1, -(-steps // CURVE_POINTS))
    index = np.unique(np.append(np.arange(0, steps, every), steps - 1))
    return {"steps": index.tolist(), "losses": json_ready(losses[:, index].tolist()),
            "every": every}  # fmt: skip


def _study(path: Path) -> dict[str, Any]:
    """A study's description, its cells' option and metric columns, (a network study's) each
    cell's loss curve, thinned (``_curves``), and the record of what made it, if it keeps one."""
    from gdscope.studies.sweep import unpack_columns

    with np.load(path, allow_pickle=False) as saved:
        description = json.loads(str(saved["description"]))
        columns = {k: saved[k] for k in saved.files if k != "description" and saved[k].ndim == 1}
        losses = saved["losses"] if "losses" in saved.files else None
        made = json.loads(str(saved["record"])) if "record" in saved.files else None
    options, metrics = unpack_columns(columns)
    curves = None
    if losses is not None and losses.ndim == 2 and losses.shape[1] and \
            len(losses) == len(columns.get("completed", losses)):  # fmt: skip
        curves = _curves(losses.astype(np.float64))

    def listed(values: dict[str, np.ndarray]) -> dict[str, Any]:
        return {k: json_ready(v.tolist()) for k, v in values.items()}

    completed = columns.get("completed")
    return {"description": description, "options": listed(options), "metrics": listed(metrics),
            "completed": None if completed is None else completed.tolist(), "curves": curves,
            "record": made, "problems": []}  # fmt: skip


def _shootout(data: dict[str, Any]) -> dict[str, Any]:
    """A shoot-out's table (each optimizer's tuned setting and score, best first), every
    setting it tried, what it scored by, its winners' loss curves if it kept them (a network
    shoot-out does) and its record, if it holds one."""
    table, tried = data["table"], data["tried"]
    if not isinstance(table, list) or not isinstance(tried, dict):
        raise ValueError("its table or tried settings are not a list and an object")
    keep = ("score", "network", "steps", "loss", "curves", "record")
    return {"table": table, "tried": tried, **{k: data[k] for k in keep if k in data},
            "problems": []}  # fmt: skip


def _surface(path: Path) -> dict[str, Any]:
    if path.suffix.lower() == ".h5":
        from gdscope.nets.surface_io import read_surface

        surface, _ = read_surface(path)
        xs, ys, loss = surface.xs, surface.ys, surface.loss
        command = ["gdscope", "landscape", "--from-h5", str(path), "--out", FIGURE]
        extra: dict[str, Any] = {"command": command, "shell": shlex.join(command)}
    else:
        with np.load(path, allow_pickle=False) as saved:
            xs, ys, loss = saved["xs"], saved["ys"], saved["loss"]
            extra = {k: json_ready(saved[k].tolist()) for k in ("path_x", "path_y")
                     if k in saved.files}  # fmt: skip
    if loss.shape != (len(ys), len(xs)):  # rows are y (``ModelSurface``)
        raise ValueError(f"its loss has shape {loss.shape}, not {(len(ys), len(xs))}")
    return {"xs": xs.tolist(), "ys": ys.tolist(), "loss": json_ready(loss.tolist()),
            **extra, "problems": []}  # fmt: skip


# The landscape around a recording ----------------------------------------------------------

COARSE = 11
"""Points per axis of the first, quick landscape; the refined one has as many as asked."""
LINE_POINTS = 41
"""Points of the line from the first snapshot to the last (``gdscope landscape``'s default)."""
FIGURE = "landscape.png"
"""The figure file the shown commands write."""
DEADLINE_S = 900.0
"""The most compute one landscape or spectrum may use, in its process's CPU seconds (where the
system tells them; else the seconds it has run): beyond, it is stopped and says so. What
finished stays cached and a refined grid's finished chunks in its resume file, so pressing
Compute again goes on from them. ``gdscope board --deadline`` sets it."""


@dataclass(frozen=True)
class Sources:
    """The model, data and loss the board computes with: ``module:function`` names given on
    the command line or to ``gdscope.board``, never by a request."""

    model: str
    data: str
    loss: str = "crossentropy"

    def args(self) -> list[str]:
        return ["--model", self.model, "--data", self.data, "--loss", self.loss]


def cache_folder(folder: Path) -> Path:
    return folder / CACHE


def snapshot_file(folder: Path, index: int) -> Path:
    """The weights of snapshot ``index`` as a ``torch.save`` state dict (``--checkpoint``)."""
    return cache_folder(folder) / f"snapshot-{index}.pt"


def plane_file(folder: Path, snapshots: int, points: int) -> Path:
    """The surface (``gdscope landscape --save`` layout) of the first ``snapshots`` snapshots'
    PCA plane at ``points`` per axis; its ``.json`` beside it is what the page draws."""
    return cache_folder(folder) / f"plane-{snapshots}-{points}.npz"


def line_file(folder: Path, snapshots: int) -> Path:
    return cache_folder(folder) / f"line-{snapshots}.npz"


MAX_SHARED = 8
"""Recordings on one shared plane, at most (each is read whole, and drawn in a colour)."""


@dataclass(frozen=True)
class Subject:
    """What a landscape is of: recordings (``folders``, named ``names`` as the board lists
    them) on one PCA plane, each by its first ``snapshots``, centred on the first one's last
    snapshot. One recording is the usual case: its files go to its own ``CACHE``
    (``plane_file``, ``line_file``). Several (``MAX_SHARED`` at most) share the PCA plane of
    their union, with no line, and go to the runs' folder's ``CACHE`` (``root``), in files
    named ``compare-HASH-COUNTS-POINTS`` (``shared_file``)."""

    folders: tuple[Path, ...]
    names: tuple[str, ...]
    snapshots: tuple[int, ...]
    root: Path

    def __post_init__(self) -> None:
        if not 1 <= len(self.folders) <= MAX_SHARED:
            raise GdscopeError(f"a shared plane is of 1 to {MAX_SHARED} recordings, "
                               f"not {len(self.folders)}")  # fmt: skip
        if len(set(self.names)) != len(self.names):
            raise GdscopeError(f"a recording named twice: {', '.join(self.names)}")
        if not len(self.names) == len(self.snapshots) == len(self.folders):
            raise GdscopeError("as many names and snapshot counts as recordings")

    @property
    def several(self) -> bool:
        return len(self.folders) > 1

    def plane_file(self, points: int) -> Path:
        """The surface of the plane at ``points`` per axis (its ``.json``: the page's)."""
        if not self.several:
            return plane_file(self.folders[0], self.snapshots[0], points)
        return shared_file(self.root, self.names, self.snapshots, points)

    def line_file(self) -> Path | None:
        """The line from the first snapshot to the last (one recording only)."""
        return None if self.several else line_file(self.folders[0], self.snapshots[0])

    def files(self, points: int) -> list[Path]:
        """The files of each stage computed for ``points``: coarse, line, refined."""
        line = self.line_file()
        return [self.plane_file(COARSE), *([line] if line else []), self.plane_file(points)]

    def at(self, snapshots: tuple[int, ...]) -> Subject:
        """The same recordings by their first ``snapshots``."""
        return Subject(self.folders, self.names, snapshots, self.root)

    def newest(self) -> tuple[int, ...] | None:
        """The snapshot counts of the newest coarse plane cached (the most snapshots)."""
        if not self.several:
            pattern = f"plane-*-{COARSE}.json"
            found = cache_folder(self.folders[0]).glob(pattern)
        else:
            found = cache_folder(self.root).glob(
                f"compare-{_names_key(self.names)}-*-{COARSE}.json"
            )
        counts = [c for c in map(_counts, found) if c is not None and len(c) == len(self.names)]
        return max(counts, key=sum, default=None)

    def to_dict(self) -> dict[str, Any]:
        return {"folders": [str(f) for f in self.folders], "names": list(self.names),
                "snapshots": list(self.snapshots), "root": str(self.root)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Subject:
        return cls(tuple(Path(f) for f in data["folders"]), tuple(data["names"]),
                   tuple(int(n) for n in data["snapshots"]), Path(data["root"]))  # fmt: skip


def _names_key(names: tuple[str, ...]) -> str:
    """12 hex digits of the SHA-256 of the names, in order (the first is the centre)."""
    import hashlib

    return hashlib.sha256(json.dumps(list(names)).encode()).hexdigest()[:12]


def shared_file(root: Path, names: tuple[str, ...], snapshots: tuple[int, ...], points: int
                ) -> Path:  # fmt: skip
    """The surface of several recordings' shared plane: ``compare-HASH-COUNTS-POINTS.npz``
    in the runs' folder's ``CACHE``, HASH from their names in order (``_names_key``), COUNTS
    their snapshot counts joined by ``_``."""
    counts = "_".join(str(n) for n in snapshots)
    return cache_folder(root) / f"compare-{_names_key(names)}-{counts}-{points}.npz"


def _counts(file: Path) -> tuple[int, ...] | None:
    """The snapshot counts in a cached file's name (``plane-301-11.json``: 301;
    ``compare-HASH-6_9-11.json``: 6, 9)."""
    parts = file.stem.split("-")
    try:
        return tuple(int(n) for n in parts[-2].split("_")) if len(parts) >= 3 else None
    except ValueError:
        return None


def line_command(sources: Sources, folder: Path, snapshots: int, surface: Any) -> list[str]:
    """The ``gdscope landscape`` arguments of the line from snapshot 0 to the last."""
    from gdscope.jobs.records import evaluation_argv

    return ["gdscope", "landscape", *sources.args(),
            "--checkpoint", str(snapshot_file(folder, 0)),
            "--to", str(snapshot_file(folder, snapshots - 1)), "--directions", "line",
            *evaluation_argv(surface.meta), "--out", FIGURE]  # fmt: skip


def cached(file: Path) -> dict[str, Any] | None:
    """A landscape computed before (its ``.json``), or None."""
    try:
        data = json.loads(file.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def compute_landscape(
    subject: Subject,
    sources: Sources,
    *,
    points: int,
    report: Any = None,
) -> None:
    """The PCA plane of the ``subject``'s recordings (their first snapshots; several: of
    their union), centred on the first one's last snapshot, at ``COARSE`` points per axis,
    then (one recording) the line from its first snapshot to its last, then the plane at
    ``points`` per axis on the coarse one's extent; each written where ``subject`` says (a
    surface ``.npz`` as ``gdscope landscape --save`` writes it, and its ``.json`` for the page,
    with the command that computes it again), each refined grid resumable (``--resume``).
    ``report(message)`` hears the stage and progress. Recordings of different layouts are
    refused (``check_layouts``'s words). Runs the user's code: meant for a process of its own."""

    from gdscope.files import write_text
    from gdscope.jobs.landscape import landscape_command, load_parts, users_code
    from gdscope.nets.plane import EvaluationOptions
    from gdscope.nets.recorder import RecordedPath, open_path
    from gdscope.nets.surface_io import save_surface
    from gdscope.nets.survey import PlaneOptions, check_layouts, model_landscape

    def say(**message: Any) -> None:
        if report is not None:
            report(message)

    paths = []
    for folder, name, snapshots in zip(subject.folders, subject.names, subject.snapshots,
                                       strict=True):  # fmt: skip
        recorded = open_path(folder)
        if len(recorded) < snapshots:
            raise GdscopeError(f"{name} holds {len(recorded)} snapshots, not {snapshots}")
        if snapshots < 3:
            raise GdscopeError(f"the landscape of a path needs 3 snapshots, {name} has "
                               f"{snapshots}")  # fmt: skip
        paths.append(RecordedPath(recorded.layout, recorded.snapshots[:snapshots],
                                  recorded.steps[:snapshots], recorded.losses[:snapshots],
                                  recorded.optimizer, recorded.sharpness))  # fmt: skip
    check_layouts([p.layout for p in paths], subject.names)
    first, count = subject.folders[0], subject.snapshots[0]
    subject.plane_file(COARSE).parent.mkdir(exist_ok=True)
    cache_folder(first).mkdir(exist_ok=True)
    make_model, make_data, loss_fn = load_parts(sources.model, sources.data, sources.loss)
    with users_code(f"evaluating {sources.model} on {sources.data} with loss {sources.loss}"):
        ends = (count - 1,) if subject.several else (0, count - 1)
        models = {i: snapshot_model(first, paths[0], make_model, i) for i in ends}
        data = make_data()
        end = models[count - 1]
        stages: list[tuple[str, int, Path]] = [("coarse", COARSE, subject.plane_file(COARSE))]
        line = subject.line_file()
        if line is not None:
            stages.append(("line", LINE_POINTS, line))
        if points != COARSE:
            stages.append(("refined", points, subject.plane_file(points)))
        extent: tuple[np.ndarray, np.ndarray] | None = None
        for stage, points_here, file in stages:
            done = cached(file)
            if done is not None:
                if stage == "coarse":
                    extent = np.array(done["xs"]), np.array(done["ys"])
                say(stage=stage, done=1, total=1, finished=True)
                continue

            def progress(done: int, total: int, stage: str = stage) -> None:
                say(stage=stage, done=done, total=total, finished=False)

            resume = file.with_suffix(".resume.npz")
            # The coarse grid is over before a resume file would pay for its writing.
            evaluation = EvaluationOptions(resume=None if stage == "coarse" else resume)
            if stage == "line":
                result = model_landscape(models[0], data, loss_fn, to=end, progress=progress,
                                         directions="line", evaluation=evaluation)  # fmt: skip
                command = line_command(sources, first, count, result.surface)
            else:
                # The refined grid on the coarse one's extent (the same: fit_axis pads the
                # path's extent whatever the count), given, so that the command names it.
                x, y = (None, None) if extent is None else (
                    (float(axis[0]), float(axis[-1]), points_here) for axis in extent)  # fmt: skip
                plane = PlaneOptions(directions="pca", points=points_here, x=x, y=y)
                result = model_landscape(end, data, loss_fn, path=paths,
                                         run_names=subject.names, progress=progress,
                                         plane=plane, evaluation=evaluation)  # fmt: skip
                if stage == "coarse":
                    extent = result.surface.xs, result.surface.ys
                command = landscape_command(model=sources.model, data=sources.data,
                                            loss=sources.loss,
                                            checkpoint=snapshot_file(first, count - 1),
                                            paths=subject.folders, surface=result.surface,
                                            out=FIGURE)  # fmt: skip
            surface = result.surface
            on_plane = [(run.name, run.projected) for run in result.runs]
            save_surface(surface, file, projected=None if on_plane else result.projected,
                         explained=result.explained, force=True, runs=on_plane)  # fmt: skip
            page: dict[str, Any] = {
                "stage": stage, "snapshots": count, "counts": list(subject.snapshots),
                "names": list(subject.names), "xs": surface.xs.tolist(),
                "ys": surface.ys.tolist(), "loss": surface.loss.tolist(),
                "notes": list(result.notes), "command": command, "shell": shlex.join(command),
                "explained": None if result.explained is None else result.explained.tolist(),
            }  # fmt: skip
            if result.projected is not None:
                page.update(path_x=result.projected.xs.tolist(),
                            path_y=result.projected.ys.tolist(),
                            path_steps=result.projected.steps.tolist())  # fmt: skip
            if on_plane:
                page["runs"] = [{"name": run.name, "path_x": run.projected.xs.tolist(),
                                 "path_y": run.projected.ys.tolist(),
                                 "path_steps": run.projected.steps.tolist()}
                                for run in result.runs]  # fmt: skip
            if result.marks:
                page["marks"] = {str(k): v for k, v in result.marks.items()}
            write_text(file.with_suffix(".json"), json.dumps(json_ready(page)), force=True)
            resume.unlink(missing_ok=True)
            say(stage=stage, done=1, total=1, finished=True)


def snapshot_model(folder: Path, path: Any, make_model: Any, index: int) -> Any:
    """A new model with snapshot ``index`` of the recorded ``path``'s weights, which are also
    written as ``snapshot_file`` (once) for the commands that name them."""
    from gdscope.files import write_atomic

    model = make_model()
    path.layout.check(model)
    model.load_state_dict(path.state(index), strict=False)
    file = snapshot_file(folder, index)
    if not file.exists():
        write_atomic(file, functools.partial(_save_state, model), force=True)
    return model


SPECTRUM_TOP = 10
"""Eigenvalues of the Hessian spectrum the board computes (with its density)."""


def spectrum_file(folder: Path, snapshots: int) -> Path:
    """The Hessian spectrum at the last of ``snapshots`` snapshots (``.json``, as the page
    draws it)."""
    return cache_folder(folder) / f"spectrum-{snapshots}.json"


def compute_spectrum(folder: Path, sources: Sources, *, snapshots: int, report: Any = None
                     ) -> None:  # fmt: skip
    """The Hessian's top ``SPECTRUM_TOP`` eigenvalues and its spectral density at the
    recording's snapshot ``snapshots − 1``, as ``gdscope hessian`` computes them (the command
    is kept with them), written to ``spectrum_file``."""
    from gdscope.files import write_text
    from gdscope.jobs.hessian import HessianJob, run_hessian
    from gdscope.jobs.landscape import load_parts, users_code
    from gdscope.nets.curvature import CurvatureOptions
    from gdscope.nets.recorder import open_path

    file = spectrum_file(folder, snapshots)
    if cached(file) is not None:
        if report is not None:
            report({"stage": "spectrum", "done": 1, "total": 1, "finished": True})
        return
    recorded = open_path(folder)
    if len(recorded) < snapshots:
        raise GdscopeError(f"the recording holds {len(recorded)} snapshots, not {snapshots}")
    cache_folder(folder).mkdir(exist_ok=True)
    make_model, _, _ = load_parts(sources.model, sources.data, sources.loss)
    with users_code(f"loading {sources.model}"):
        snapshot_model(folder, recorded, make_model, snapshots - 1)
    checkpoint = snapshot_file(folder, snapshots - 1)
    job = HessianJob(model=sources.model, data=sources.data, loss=sources.loss,
                     checkpoint=checkpoint,
                     curvature=CurvatureOptions(top=SPECTRUM_TOP, density=True))  # fmt: skip

    def progress(done: int, total: int) -> None:
        if report is not None:
            report({"stage": "spectrum", "done": done, "total": total, "finished": False})

    spectrum = run_hessian(job, progress=progress)
    command = ["gdscope", "hessian", *sources.args(), "--checkpoint", str(checkpoint),
               "--top", str(SPECTRUM_TOP), "--density", "--out", "spectrum.png"]  # fmt: skip
    step = int(recorded.steps[snapshots - 1])
    page = {**spectrum.to_dict(), "snapshots": snapshots, "step": step, "command": command,
            "shell": shlex.join(command)}  # fmt: skip
    write_text(file, json.dumps(json_ready(page)), force=True)
    if report is not None:
        report({"stage": "spectrum", "done": 1, "total": 1, "finished": True})


def _save_state(model: Any, tmp: Path) -> None:
    import torch

    torch.save(model.state_dict(), tmp)


def landscape_worker(conn: Any, sources: Sources) -> None:
    """A process that imports torch, gdscope and the user's modules, then waits for one order
    ``{"subject": Subject.to_dict(), "points"}`` down ``conn`` and computes
    ``compute_landscape`` (or, with ``"what": "spectrum"``, ``compute_spectrum``):
    its messages, then ``{"end": None}`` or ``{"end": "the reason it failed"}``, go back up.
    Started ahead of the order, so that a landscape starts without that import."""
    import torch

    torch.set_num_threads(1)  # one core; the server's event loop keeps the other
    from gdscope.jobs.landscape import load_parts

    # A failure here is said when an order comes (compute_landscape loads them again).
    with contextlib.suppress(Exception):
        load_parts(sources.model, sources.data, sources.loss)
    try:
        order = conn.recv()
    except (EOFError, OSError):  # the server went away, or gave this process no work
        return
    # Its imports are done: the server's deadline counts from this word (server.board).
    conn.send({"stage": "starting", "done": 0, "total": 0, "finished": False})
    try:
        if order.get("what") == "spectrum":
            subject = Subject.from_dict(order["subject"])
            compute_spectrum(subject.folders[0], sources, snapshots=subject.snapshots[0],
                             report=conn.send)  # fmt: skip
        else:
            compute_landscape(Subject.from_dict(order["subject"]), sources,
                              points=order["points"], report=conn.send)  # fmt: skip
    except GdscopeError as error:
        conn.send({"end": str(error)})
    except Exception as error:  # the user's code: any failure is the job's answer
        conn.send({"end": f"{type(error).__name__}: {error}"})
    else:
        conn.send({"end": None})
    finally:
        conn.close()


# What each view's PNG carries -------------------------------------------------------------
#
# The board's PNG of a view carries the record the view's command writes into its own figure,
# so that ``gdscope replay`` makes that figure: a landscape's or spectrum's, built from the
# command the page shows (``jobs.boardrecords``, which reads ``jobs.replay``: replay reads
# this module), or, for the recording's charts, a ``curves`` record of the rows they drew.

CHARTS = ("loss", "sharpness", "lr")
"""A recording's charts that a ``curves`` record draws."""


def _head_sha256(file: Path, rows: int) -> str:
    """The SHA-256 of the first ``rows`` rows of a ``steps.bin`` or ``validation.bin``."""
    import hashlib

    try:
        with file.open("rb") as handle:
            return hashlib.sha256(handle.read(rows * ROW)).hexdigest()
    except OSError:
        return hashlib.sha256(b"").hexdigest()


def curves_record(runs: list[tuple[str, Path]], chart: str, *, log: bool = True
                  ) -> dict[str, Any]:  # fmt: skip
    """The record of a recording's chart (``CHARTS``) of ``runs`` (label, folder) as they are
    now: how many rows of each file (and sharpness measurements) it drew, with the SHA-256 of
    those rows, so that a replay draws the same ones from the folders however long they grew
    (and refuses a folder recorded over)."""
    from gdscope.files import DEFAULT_DPI
    from gdscope.jobs.records import record

    if chart not in CHARTS:
        raise GdscopeError(f"no chart {chart!r}: one of {', '.join(CHARTS)}")
    drawn = []
    for label, folder in runs:
        run = Recording(folder)
        run.refresh_index()
        sharp = run.sharpness()
        rows, validation = run.tail.read(), run.validation.read()
        drawn.append({"label": label, "folder": str(folder), "rows": len(rows.steps),
                      "rows_sha256": _head_sha256(folder / STEPS, len(rows.steps)),
                      "validation": len(validation.steps),
                      "validation_sha256": _head_sha256(folder / VALIDATION,
                                                        len(validation.steps)),
                      "measured": len((sharp or {}).get("steps") or ())})  # fmt: skip
    return record("curves", chart=chart, runs=drawn, log=log, dpi=DEFAULT_DPI)


def draw_curves(rec: dict[str, Any]) -> Any:
    """The figure of a ``curves`` record (``curves_record``): the rows and measurements it
    names, read again from the folders (refused where they are no longer those rows)."""
    from matplotlib.figure import Figure

    from gdscope.nets.sharpness import SharpnessTrace

    chart = rec["chart"]
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    colors = [f"C{i}" for i in range(10)]
    for i, run in enumerate(rec["runs"]):
        folder, color, label = Path(run["folder"]), colors[i % 10], run["label"]
        if chart == "loss":
            for file, count, sha, style, name in (
                (STEPS, run["rows"], run["rows_sha256"], "-", label),
                (VALIDATION, run["validation"], run["validation_sha256"], "--",
                 f"{label}: validation"),
            ):  # fmt: skip
                if not count:
                    continue
                if _head_sha256(folder / file, count) != sha:
                    raise GdscopeError(f"{folder / file} is not the one the figure drew "
                                       "(its first rows differ)")  # fmt: skip
                rows = Tail(folder / file).read(limit=count)
                ax.plot(rows.steps, rows.losses, style, color=color, lw=1.2, label=name)
            continue
        recording = Recording(folder)
        recording.refresh_index()
        sharp = recording.sharpness()
        count = run["measured"]
        if not count:
            continue
        if sharp is None or len(sharp.get("steps") or ()) < count:
            raise GdscopeError(f"{folder / INDEX} holds fewer sharpness measurements than the "
                               f"figure drew ({count})")  # fmt: skip
        trace = SharpnessTrace.from_dict(sharp)
        steps = trace.steps[:count]
        if chart == "lr":
            ax.step(steps, trace.lr[:count], where="post", color=color, marker=".", label=label)
            continue
        ax.plot(steps, trace.values[:count, 0], color=color, marker=".", label=label)
        if np.isfinite(trace.threshold[:count]).any():
            ax.plot(steps, trace.threshold[:count], "--", color=color, label=f"{label}: threshold")
    titles = {
        "loss": "training loss (as passed to Recorder.step)",
        "sharpness": "sharpness against its stability threshold",
        "lr": "learning rate",
    }
    ax.set_title(titles[chart])
    ax.set_xlabel("step")
    ax.set_ylabel({"loss": "loss", "sharpness": "top eigenvalue", "lr": "lr"}[chart])
    if chart == "loss" and rec.get("log", True):
        ax.set_yscale("log")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    return fig


def make_curves(rec: dict[str, Any], out: Path, *, force: bool = False) -> Path:
    """Write ``draw_curves(rec)`` to ``out`` with ``rec`` (``gdscope replay``)."""
    from gdscope.files import save_figure

    return save_figure(draw_curves(rec), out, force=force, dpi=rec["dpi"], config=rec)
