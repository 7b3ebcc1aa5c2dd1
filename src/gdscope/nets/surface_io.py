"""Saving model landscapes: NPZ (everything), or the reference implementation's HDF5 layout.

HDF5 (needs ``h5py``): ``NAME.h5`` is the surface file (``xcoordinates``, ``ycoordinates``,
``train_loss``, ``train_acc`` in percent, ``dir_file``), ``NAME_directions.h5`` holds the
``xdirection``/``ydirection`` groups (one dataset per tensor, named ``"0"``, ``"1"``, …, listed
as the reference lists the model: ``parameters()``, or with ``states`` the ``state_dict()``;
tensors the direction does not move, such as frozen parameters or BatchNorm's batch counter,
are zeros), plus the PCA's
``explained_variance_ratio_``; with a projected path, ``NAME_proj.h5`` holds ``proj_xcoord`` and
``proj_ycoord``. The loss array is indexed ``[y, x]``, which is what the reference's
``plot_2D.py`` (``meshgrid(x, y)``) reads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from gdscope.errors import GdscopeError
from gdscope.files import check_target, write_atomic
from gdscope.nets.plane import ModelSurface
from gdscope.nets.projection import ProjectedPath

__all__ = ["SURFACE_FORMATS", "save_surface", "surface_targets"]

SURFACE_FORMATS = (".npz", ".h5")


def _files(path: str | os.PathLike[str]) -> list[Path]:
    """The files a surface saved at ``path`` consists of: the NPZ, or the HDF5 surface, its
    ``_directions.h5`` and its ``_proj.h5`` (written when there is a projected path)."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in SURFACE_FORMATS:
        raise GdscopeError(f"a surface is saved as .npz or .h5, got {target.name!r}")
    if suffix == ".npz":
        return [target]
    stem = target.with_suffix("")
    return [target, stem.with_name(stem.name + "_directions.h5"),
            stem.with_name(stem.name + "_proj.h5")]  # fmt: skip


def surface_targets(path: str | os.PathLike[str], *, force: bool = False) -> list[Path]:
    """Every file ``save_surface`` may write for ``path``, checked before any work is done: the
    format, h5py for HDF5, and no file overwritten without ``force``."""
    files = _files(path)
    if len(files) > 1:
        _h5py()
    return [check_target(f, force=force) for f in files]


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise GdscopeError("HDF5 output needs h5py: pip install 'gdscope[hdf5]'") from None
    return h5py


def _split(surface: ModelSurface, vector: Any) -> list[np.ndarray]:
    """``vector`` as the reference's list of tensors (see the module docstring)."""
    parts = {k: v.numpy() for k, v in surface.layout.unflatten(vector.float()).items()}
    listing = surface.layout.listing or tuple(zip(parts, surface.layout.shapes, strict=True))
    return [parts.get(name, np.zeros(shape, np.float32)) for name, shape in listing]


def save_surface(
    surface: ModelSurface,
    path: str | os.PathLike[str],
    *,
    projected: ProjectedPath | None = None,
    explained: np.ndarray | None = None,
    force: bool = False,
) -> list[Path]:
    """Write ``surface`` (and the projected path) to ``path`` (.npz or .h5); returns the files."""
    files = _files(path)
    target = files[0]
    if len(files) == 1:
        arrays: dict[str, Any] = {
            "xs": surface.xs, "ys": surface.ys, "loss": surface.loss,
            "centre": surface.centre.numpy(), "dx": surface.dx.numpy(),
            "layout": np.array(json.dumps(surface.layout.to_dict())),
            "meta": np.array(json.dumps(surface.meta)),
        }  # fmt: skip
        if surface.accuracy is not None:
            arrays["accuracy"] = surface.accuracy
        if surface.dy is not None:
            arrays["dy"] = surface.dy.numpy()
        if projected is not None:
            arrays.update(path_x=projected.xs, path_y=projected.ys, off_plane=projected.off_plane)
        if explained is not None:
            arrays["explained_variance_ratio"] = explained

        def write_npz(tmp: Path) -> None:
            with tmp.open("wb") as handle:
                np.savez(handle, **arrays)

        return [write_atomic(target, write_npz, force=force)]
    h5py = _h5py()
    _, directions, proj = files
    written = []

    def write_directions(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            for key, vector in (("xdirection", surface.dx), ("ydirection", surface.dy)):
                if vector is None:
                    continue
                group = f.create_group(key)
                for i, array in enumerate(_split(surface, vector)):
                    group.create_dataset(str(i), data=array)
            if explained is not None:
                f["explained_variance_ratio_"] = explained

    def write_surface(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f["dir_file"] = str(directions)
            f["xcoordinates"] = surface.xs
            if surface.dy is not None:
                f["ycoordinates"] = surface.ys
            loss = surface.loss if surface.dy is not None else surface.loss[0]
            f["train_loss"] = loss
            acc = surface.accuracy if surface.accuracy is not None else np.full_like(
                surface.loss, -1.0)  # fmt: skip
            acc = acc * 100 if surface.accuracy is not None else acc
            f["train_acc"] = acc if surface.dy is not None else acc[0]

    written.append(write_atomic(directions, write_directions, force=force))
    written.append(write_atomic(target, write_surface, force=force))
    if projected is not None:

        def write_proj(tmp: Path) -> None:
            with h5py.File(tmp, "w") as f:
                f["proj_xcoord"] = projected.xs
                f["proj_ycoord"] = projected.ys

        written.append(write_atomic(proj, write_proj, force=force))
    return written
