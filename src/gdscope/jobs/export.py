"""Trajectories to CSV, JSON or NPZ: every point of every run, with the run's configuration."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gdscope.engines.trajectory import Trajectory
from gdscope.errors import GdscopeError
from gdscope.files import record_json, write_atomic
from gdscope.jobs.records import record

__all__ = ["EXPORT_FORMATS", "describe", "save_trajectories"]

EXPORT_FORMATS = (".csv", ".json", ".npz")
_COLUMNS = ("run", "objective", "step", "epoch", "weight", "bias", "loss", "batch_loss", "lr",
            "buffer_weight", "buffer_bias")  # fmt: skip


def describe(trajectory: Trajectory) -> dict[str, Any]:
    """The run's configuration and outcome as plain JSON values."""
    return {
        "objective": trajectory.loss.title,
        "labels": list(trajectory.labels),
        "optimizer": {"name": trajectory.optimizer.name, **trajectory.optimizer.kwargs()},
        "scheduler": None
        if trajectory.scheduler is None
        else {"name": trajectory.scheduler.name, **trajectory.scheduler.kwargs()},
        "start": list(trajectory.start),
        "epochs": trajectory.epochs,
        "steps": trajectory.steps,
        "batch_size": trajectory.batch_size,
        "shuffle_seed": trajectory.shuffle_seed,
        "diverged_at": trajectory.diverged_at,
    }


def _number(value: float | np.floating[Any]) -> float | None:
    return float(value) if np.isfinite(value) else None


def _filled(values: np.ndarray | None) -> np.ndarray:
    """A column ``Trajectory`` may leave ``None`` in its signature but always fills in."""
    if values is None:
        raise ValueError("a Trajectory fills lrs, batch_losses and buffers in")
    return values


def _rows(trajectories: Sequence[Trajectory]) -> list[list[Any]]:
    rows = []
    for k, t in enumerate(trajectories):
        lrs, batch_losses, buffers = _filled(t.lrs), _filled(t.batch_losses), _filled(t.buffers)
        for i in range(t.steps + 1):
            rows.append([
                k, t.loss.title, i, i // t.steps_per_epoch, t.weights[i], t.biases[i],
                t.losses[i], batch_losses[i], lrs[i], buffers[i, 0], buffers[i, 1],
            ])  # fmt: skip
    return rows


def save_trajectories(
    trajectories: Sequence[Trajectory],
    path: str | os.PathLike[str],
    *,
    force: bool = False,
    config: dict[str, Any] | None = None,
) -> Path:
    """One row per point (``_COLUMNS``; empty/NaN/null after divergence) in CSV or JSON, or
    arrays per run in NPZ; JSON and NPZ also hold each run's description and ``config``."""
    suffix = Path(path).suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise GdscopeError(f"results go to a .csv, .json or .npz file, got {Path(path).name!r}")
    # The header is a record like every other file's (its kind, the version, the config).
    meta = record("export", config=config, runs=[describe(t) for t in trajectories])

    def write_csv(tmp: Path) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(_COLUMNS)
        for row in _rows(trajectories):
            writer.writerow(["" if isinstance(v, float) and not np.isfinite(v) else
                             (repr(float(v)) if isinstance(v, (float, np.floating)) else v)
                             for v in row])  # fmt: skip
        tmp.write_text(buffer.getvalue(), encoding="utf-8")

    def write_json(tmp: Path) -> None:
        points = [dict(zip(_COLUMNS, row, strict=True)) for row in _rows(trajectories)]
        for point in points:
            for key, value in point.items():
                if isinstance(value, (float, np.floating)):
                    point[key] = _number(value)
        tmp.write_text(record_json({**meta, "points": points}), encoding="utf-8")

    def write_npz(tmp: Path) -> None:
        arrays: dict[str, Any] = {"meta": np.array(record_json(meta))}
        for k, t in enumerate(trajectories):
            arrays.update({f"run{k}_path": t.path, f"run{k}_losses": t.losses,
                           f"run{k}_batch_losses": t.batch_losses, f"run{k}_lrs": t.lrs,
                           f"run{k}_buffers": t.buffers})  # fmt: skip
        with tmp.open("wb") as handle:
            np.savez(handle, **arrays)

    writers = {".csv": write_csv, ".json": write_json, ".npz": write_npz}
    return write_atomic(path, writers[suffix], force=force)
