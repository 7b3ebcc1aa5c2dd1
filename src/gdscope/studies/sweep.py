"""Grids of configurations: parse ``--vary`` axes, run them in chunks, save the results.

A grid is the Cartesian product of axes (first axis slowest). It runs through the batched
engine in chunks, so a progress callback sees each chunk finish, and an interruption
(Ctrl-C) keeps every finished chunk: unfinished cells are marked as not ``completed``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from gdscope.engines.batched import BatchResult, Record, run_batched
from gdscope.engines.runner import GrowingChunks, Results, run_chunks, section, stopping
from gdscope.engines.trajectory import Trajectory
from gdscope.errors import GdscopeError
from gdscope.files import json_ready, record_json, write_atomic
from gdscope.optim.rules import TORCH_PAIRS, torch_kwargs
from gdscope.optim.specs import OptimizerSpec, parse_value
from gdscope.problem.data import Dataset
from gdscope.problem.grid import ARTICLE_EPOCHS
from gdscope.problem.losses import LossSpec
from gdscope.problem.objective import Objective
from gdscope.version import __version__

__all__ = [
    "COMPARE_BUDGET",
    "COMPARE_STARTS",
    "GRID_CHUNK",
    "Axis",
    "GridRun",
    "SavedGrid",
    "expand",
    "merge_fixed",
    "pack_columns",
    "refuse_both",
    "run_grid",
    "save_grid",
    "unpack_columns",
]

GRID_CHUNK = 65_536
"""Configurations of a 2-D objective's grid run per batch unless told otherwise."""

# The shoot-out's (``studies.shootout.compare``) defaults live here, in the module every study
# imports, so its CLI, config and API read them without importing the shoot-out itself.
COMPARE_BUDGET = 100
"""Steps each run of a shoot-out takes unless told otherwise."""
COMPARE_STARTS = 5
"""Start points of a shoot-out unless told otherwise (the first: the objective's own)."""

_OPTION, _METRIC = "option_", "metric_"
"""How a grid's columns are named among other arrays in an NPZ file (saved grids, progress)."""


def pack_columns(
    options: Mapping[str, np.ndarray], metrics: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """A grid's option and metric columns as named arrays for an NPZ file."""
    return {**{_OPTION + k: v for k, v in options.items()},
            **{_METRIC + k: v for k, v in metrics.items()}}  # fmt: skip


def unpack_columns(
    arrays: Mapping[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The option and metric columns among ``arrays`` (what ``pack_columns`` named)."""
    options = {k[len(_OPTION) :]: v for k, v in arrays.items() if k.startswith(_OPTION)}
    metrics = {k[len(_METRIC) :]: v for k, v in arrays.items() if k.startswith(_METRIC)}
    return options, metrics


MAX_AXIS = 4096
MAX_CELLS = 16_777_216


@dataclass(frozen=True)
class Axis:
    """One varied hyperparameter: its name and values (``log`` only says how they were made)."""

    name: str
    values: tuple[Any, ...]
    log: bool = False

    def __post_init__(self) -> None:
        if not self.values:
            raise GdscopeError(f"{self.name} has no values")
        if len(self.values) > MAX_AXIS:
            raise GdscopeError(f"{self.name} has {len(self.values)} values; at most {MAX_AXIS}")

    @classmethod
    def parse(cls, text: str, *, what: str = "vary") -> Axis:
        """``lr=0.01:0.5:6`` (6 evenly spaced, ends included), ``lr=1e-3:2:256:log``,
        ``momentum=0,0.5,0.9`` or ``nesterov=false,true``; ``what`` names the setting in errors."""
        name, sep, spec = text.partition("=")
        name = name.strip()
        if not sep or not name or not spec.strip():
            raise GdscopeError(f"{what} must look like name=values, got {text!r}", settings=[what])
        if ":" in spec:
            parts = spec.split(":")
            log = parts[-1].strip().lower() == "log"
            if log:
                parts = parts[:-1]
            if len(parts) != 3:
                raise GdscopeError(f"a range is lo:hi:count[:log], got {spec!r}")
            try:
                lo, hi, count = float(parts[0]), float(parts[1]), int(parts[2])
            except ValueError:
                raise GdscopeError(f"a range is lo:hi:count[:log], got {spec!r}") from None
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise GdscopeError(f"range ends must be finite, got {spec!r}")
            if not 1 <= count <= MAX_AXIS:
                raise GdscopeError(f"a range needs 1..{MAX_AXIS} values, got {count}")
            if log and (lo <= 0 or hi <= 0):
                raise GdscopeError(f"a log range needs positive ends, got {spec!r}")
            points = np.geomspace(lo, hi, count) if log else np.linspace(lo, hi, count)
            return cls(name, tuple(float(v) for v in points), log)
        values: list[bool | float] = []
        for item in spec.split(","):
            value = parse_value(item)
            if isinstance(value, bool):
                values.append(value)
            elif isinstance(value, (int, float)) and math.isfinite(value):
                values.append(float(value))
            else:
                raise GdscopeError(f"{name}: {item!r} is not a finite number or true/false")
        return cls(name, tuple(values))


def refuse_both(fixed: Iterable[str], varied: Iterable[str], *, where: str = "") -> None:
    """Refuse a setting both fixed and varied, naming it (see ``merge_fixed``)."""
    varied = set(varied)
    both = [name for name in fixed if name in varied]
    if both:
        raise GdscopeError(f"{', '.join(both)} is both varied and fixed{where}")


def merge_fixed(
    fixed: Mapping[str, Any], varied: Iterable[str], *, where: str = ""
) -> dict[str, Any]:
    """The fixed settings beside the varied ones, merged explicitly: a name both fixed and
    varied is refused, naming it (``where``: how the fixed ones were given, the CLI's flags
    and ``--opt``); a fixed torch pair that holds a varied setting (``betas`` holds ``beta1``
    and ``beta2``, ``optim.rules.TORCH_PAIRS``) is split and its varied half left to the axis:
    varying ``beta1`` beside ``betas=(0.9, 0.99)`` keeps ``beta2 = 0.99``, and the run's
    ``fixed`` says so. The one check of it: the API's grids and the CLI call it where they
    build a study (a pair once overrode the axis in every cell without a word)."""
    varied = set(varied)
    refuse_both(fixed, varied, where=where)
    merged: dict[str, Any] = {}
    for name, value in fixed.items():
        parts = TORCH_PAIRS.get(name, ())
        if not varied & set(parts):
            merged[name] = value
            continue
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
            raise GdscopeError(f"{name} must be a pair ({', '.join(parts)}), got {value!r}")
        merged.update({part: v for part, v in zip(parts, value, strict=True) if part not in varied})
    return merged


def expand(axes: Sequence[Axis]) -> dict[str, np.ndarray]:
    """Flattened Cartesian product (first axis slowest) as one array per axis name."""
    names = [axis.name for axis in axes]
    if len(set(names)) != len(names):
        raise GdscopeError(f"an axis is varied twice: {', '.join(names)}")
    cells = math.prod(len(axis.values) for axis in axes)
    if cells > MAX_CELLS:
        raise GdscopeError(f"{cells} configurations; at most {MAX_CELLS}")
    grids = np.meshgrid(*[np.array(axis.values) for axis in axes], indexing="ij")
    return {axis.name: grid.reshape(-1) for axis, grid in zip(axes, grids, strict=True)}


@dataclass(frozen=True, eq=False)
class GridRun:
    """The merged result of a chunked grid run; arrays are NumPy, one entry per cell."""

    optimizer: str
    axes: tuple[Axis, ...]
    fixed: dict[str, Any]
    loss: Objective
    start: tuple[float, float]
    epochs: int
    options: dict[str, np.ndarray]
    """Every hyperparameter of every cell (torch's names), including the fixed ones."""
    metrics: dict[str, np.ndarray]
    completed: np.ndarray
    interrupted: bool = False
    paths: np.ndarray | None = None
    losses: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(axis.values) for axis in self.axes)

    def options_of(self, k: int) -> dict[str, Any]:
        """Cell ``k``'s hyperparameters as torch keyword arguments."""
        return torch_kwargs(self.optimizer, {key: v[k] for key, v in self.options.items()})

    @property
    def caption(self) -> str:
        """What a chart's title says was run."""
        return f"{self.loss.title}, {self.epochs} epochs"

    def describe(self) -> dict[str, Any]:
        """The run's settings, as ``save_grid`` writes them beside the cells."""
        return {
            "optimizer": self.optimizer,
            "axes": [{"name": a.name, "values": list(a.values), "log": a.log} for a in self.axes],
            "fixed": self.fixed,
            "loss": self.loss.to_dict(),
            "start": list(self.start),
            "epochs": self.epochs,
            "interrupted": self.interrupted,
            **self.meta,
        }

    def curves(self) -> dict[str, np.ndarray]:
        """The per-step arrays ``save_grid`` adds to an ``.npz`` (every cell's path)."""
        return {} if self.paths is None else {"paths": self.paths}

    def trajectory(self, k: int) -> Trajectory:
        """Cell ``k`` as a ``Trajectory`` (runs with ``record="path"``)."""
        if self.paths is None or self.losses is None:
            raise ValueError('trajectory() needs a run with record="path"')
        spec = OptimizerSpec.of(self.optimizer, **self.options_of(k))
        at = int(self.metrics["diverged_at"][k])
        batch = self.meta.get("batch_size")
        extra: dict[str, Any] = {}
        if batch is not None:
            per_epoch = (self.paths.shape[1] - 1) // self.epochs
            extra = {"steps_per_epoch": per_epoch, "batch_size": batch,
                     "shuffle_seed": self.meta.get("shuffle_seed")}  # fmt: skip
        return Trajectory.from_path(
            self.paths[k], self.losses[k], at, self.loss, spec, self.start, **extra
        )

    def grid(self, metric: str) -> np.ndarray:
        """A metric reshaped to the axes' shape (NaN where not completed)."""
        if metric not in self.metrics:  # no chunk finished
            return np.full(self.shape, np.nan)
        values = np.where(self.completed, self.metrics[metric].astype(np.float64), np.nan)
        return values.reshape(self.shape)


class _Engine:
    """``run_batched`` as ``"auto"`` would pick it, but checking for Ctrl-C every step where it
    runs the tensor engine; the native kernel, which cannot check, is kept to short chunks."""

    def __init__(self, stop: Callable[[], bool]) -> None:
        self.polled = False
        self.stop = stop  # Ctrl-C, or the caller's own reason (runner.stopping)

    def run(self, *args: Any, **kwargs: Any) -> BatchResult:
        if not self.polled:
            try:
                return run_batched(*args, engine="native", **kwargs)
            except GdscopeError:  # native does not apply (or is not built); bad input is
                self.polled = True  # refused again just below by the same checks
        return run_batched(*args, engine="torch", should_stop=self.stop, **kwargs)


def _chunk_columns(
    result: BatchResult, keep_paths: bool, extra: dict[str, np.ndarray] | None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A finished chunk's metrics, options and (with ``keep_paths``) path and loss curves, by
    cell."""
    metrics = {
        key: value.detach().cpu().numpy()
        for key, value in (
            ("final_loss", result.final_loss),
            ("best_loss", result.best_loss),
            ("path_length", result.path_length),
            ("steps_to_target", result.steps_to_target),
            ("diverged_at", result.diverged_at),
            ("final_w", result.final[:, 0]),
            ("final_b", result.final[:, 1]),
        )
    }
    metrics.update(extra or {})
    options = {key: tensor[:, 0].cpu().numpy() for key, tensor in result.hyper.items()}
    curves = {}
    if keep_paths and result.path is not None and result.losses is not None:
        curves = {"paths": result.path.permute(1, 0, 2).double().cpu().numpy(),
                  "losses": result.losses.T.double().cpu().numpy()}  # fmt: skip
    return metrics, options, curves


def run_cells(
    data: Dataset | None,
    optimizer: str,
    *,
    fixed: Mapping[str, Any],
    cells: Mapping[str, np.ndarray],
    keep: Callable[[np.ndarray, BatchResult, Results], None],
    total: int,
    start: tuple[float, float] | np.ndarray,
    loss: Objective,
    epochs: int,
    record: Record = "metrics",
    target: float | None = None,
    chunk: int = GRID_CHUNK,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    compile: bool = False,
    centre: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None,
    batch_size: int | None = None,
    shuffle_seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Results:
    """``total`` configurations of ``optimizer`` through the batched engine, in the runner's
    chunks (grown from small; Ctrl-C checked between chunks and, in the tensor engine, every
    step; ``progress(done, total)`` after each): the ``fixed`` hyperparameters and, per
    configuration, the arrays of ``cells``; ``start`` one ``(w, b)`` for all or a ``(total, 2)``
    array, one each. ``keep(index, result, results)`` puts a finished chunk's columns in the
    ``Results``, which then marks its configurations done; a chunk Ctrl-C cut short is not
    kept. The grid of a sweep or phase diagram (``run_grid``) and a shoot-out's tuning runs
    (``studies.shootout``) go through it."""
    store = Results(total, progress=progress)
    sizes = GrowingChunks(chunk)
    stop = stopping(should_stop)
    engine = _Engine(stop)
    starts = np.asarray(start, dtype=np.float64)
    each = starts.ndim == 2  # one start per configuration

    def compute(index: np.ndarray) -> BatchResult | None:
        hyper = {**fixed, **{name: values[index] for name, values in cells.items()}}
        began = time.perf_counter()
        result = engine.run(
            data, optimizer, hyper, loss=loss, start=starts[index] if each else start,
            epochs=epochs, record=record, target=target, dtype=dtype, device=device,
            compile=compile, centre=None if centre is None else centre(hyper),
            batch_size=batch_size, shuffle_seed=shuffle_seed,
        )  # fmt: skip
        if result.completed < result.epochs * result.steps_per_epoch:
            return None  # stopped mid-run: this chunk's cells stay unfinished
        sizes.took(len(index), time.perf_counter() - began, polled=engine.polled)
        return result

    def kept(index: np.ndarray, result: BatchResult) -> None:
        keep(index, result, store)
        store.finish(index)  # last: an interruption above leaves the cells unfinished

    store.start()
    with section():
        run_chunks(sizes.over(np.arange(total)), kept, compute=compute, stop=stop)
    return store


def run_grid(
    data: Dataset | None,
    optimizer: str,
    axes: Sequence[Axis],
    *,
    fixed: Mapping[str, Any] | None = None,
    loss: Objective | None = None,
    start: tuple[float, float] | None = None,
    epochs: int = ARTICLE_EPOCHS,
    record: Record = "metrics",
    target: float | None = None,
    chunk: int = GRID_CHUNK,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    compile: bool = False,
    progress: Callable[[int, int], None] | None = None,
    finish: Callable[[BatchResult, np.ndarray], dict[str, np.ndarray]] | None = None,
    centre: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None,
    batch_size: int | None = None,
    shuffle_seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> GridRun:
    """Run every cell of ``axes`` (with ``fixed`` hyperparameters) through the batched engine.

    ``centre(hyper)`` gives each chunk's reference points for the spread metrics, and
    ``finish(result, cells)`` may add metrics per chunk. ``batch_size``/``shuffle_seed``: mini-batch
    SGD, the same batches for every cell. ``should_stop`` is passed to ``run_batched`` (a
    stopped run's metrics are partial: the caller that stops it discards them).
    """
    fixed = dict(fixed or {})
    loss = loss or LossSpec()
    if start is None:
        start = loss.start
    fixed = merge_fixed(fixed, [axis.name for axis in axes])
    cells = expand(axes)
    total = len(next(iter(cells.values()))) if cells else 1

    def keep(index: np.ndarray, result: BatchResult, store: Results) -> None:
        extra = None if finish is None else finish(result, index)
        metrics, options, curves = _chunk_columns(result, record == "path", extra)
        store.put(index, pack_columns({}, metrics))
        store.put(index, pack_columns(options, {}), fill=0)
        store.put(index, curves)

    store = run_cells(
        data, optimizer, fixed=fixed, cells=cells, keep=keep, total=total, start=start,
        loss=loss, epochs=epochs,
        record=record, target=target, chunk=chunk, dtype=dtype, device=device, compile=compile,
        centre=centre, batch_size=batch_size, shuffle_seed=shuffle_seed, progress=progress,
        should_stop=should_stop,
    )  # fmt: skip
    options, metrics = unpack_columns(store.columns)
    meta: dict[str, Any] = {
        "gdscope": __version__,
        "torch": torch.__version__,
        "dtype": str(dtype).replace("torch.", ""),
        "device": str(device or "cpu"),
    }
    if batch_size is not None:
        meta.update(batch_size=batch_size, shuffle_seed=shuffle_seed)
    return GridRun(
        optimizer=optimizer, axes=tuple(axes), fixed=fixed, loss=loss,
        start=(float(start[0]), float(start[1])), epochs=epochs, options=options,
        metrics=metrics, completed=store.done, interrupted=not store.done.all(),
        paths=store.columns.get("paths"), losses=store.columns.get("losses"), meta=meta,
    )  # fmt: skip


class SavedGrid(Protocol):
    """What ``save_grid`` writes: a ``GridRun``, or a network's ``studies.netstudy.NetRun``."""

    @property
    def options(self) -> dict[str, np.ndarray]: ...
    @property
    def metrics(self) -> dict[str, np.ndarray]: ...
    @property
    def completed(self) -> np.ndarray: ...
    def describe(self) -> dict[str, Any]: ...
    def curves(self) -> dict[str, np.ndarray]: ...


def _rows(run: SavedGrid) -> tuple[list[str], list[list[Any]]]:
    option_names = sorted(run.options)
    metric_names = sorted(run.metrics)
    header = ["cell", *option_names, *metric_names, "completed"]
    rows = []
    for k in range(len(run.completed)):
        row: list[Any] = [k]
        for name in option_names:
            value = run.options[name][k]
            row.append(bool(value) if run.options[name].dtype == bool else float(value))
        row += [
            float(run.metrics[name][k]) if name in run.metrics else math.nan
            for name in metric_names
        ]
        row.append(bool(run.completed[k]))
        rows.append(row)
    return header, rows


def _write_text(target: Path, text: str, *, force: bool) -> Path:
    def write(tmp: Path) -> None:
        tmp.write_text(text)

    return write_atomic(target, write, force=force)


def save_grid(
    run: SavedGrid,
    path: str | os.PathLike[str],
    *,
    force: bool = False,
    record: Mapping[str, Any] | None = None,
) -> Path:
    """Write every cell's exact configuration and metrics as ``.npz``, ``.csv`` or ``.json``;
    an ``.npz`` or ``.json`` also keeps ``record``, what made it (the figure's record: the
    board's PNG of the file carries it, so ``gdscope replay`` makes the study's figure)."""
    target = Path(path)
    kind = target.suffix.lower()
    if kind not in {".npz", ".csv", ".json"}:
        raise GdscopeError(
            f"save takes a .npz, .csv or .json file, got {target.name!r}", settings=["save"]
        )
    description = json_ready(run.describe())  # strict JSON: NaN and inf as null
    if kind == ".csv":
        header, rows = _rows(run)
        buffer = io.StringIO()
        buffer.write("# " + json.dumps(description, allow_nan=False) + "\n")
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(rows)
        return _write_text(target, buffer.getvalue(), force=force)
    if kind == ".json":
        header, rows = _rows(run)
        cells = [dict(zip(header, row, strict=True)) for row in rows]
        kept = {} if record is None else {"record": record}
        text = json.dumps(json_ready({**description, "cells": cells, **kept}), allow_nan=False)
        return _write_text(target, text, force=force)

    def write_npz(tmp: Path) -> None:
        arrays: dict[str, Any] = pack_columns(run.options, run.metrics)
        arrays["completed"] = run.completed
        arrays.update(run.curves())
        if record is not None:
            arrays["record"] = record_json(record)
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, description=json.dumps(description, allow_nan=False),
                                **arrays)  # fmt: skip

    return write_atomic(target, write_npz, force=force)
