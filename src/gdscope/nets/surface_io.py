"""Saving model landscapes: NPZ (everything), or the reference implementation's HDF5 layout;
reading that layout back (``read_surface``), from gdscope or from the reference's own scripts.

HDF5 (needs ``h5py``): ``NAME.h5`` is the surface file (``xcoordinates``, ``ycoordinates``,
``train_loss``, ``train_acc`` in percent, ``dir_file``), ``NAME_directions.h5`` holds the
``xdirection``/``ydirection`` groups (one dataset per tensor, named ``"0"``, ``"1"``, …, listed
as the reference lists the model: ``parameters()``, or with ``states`` the ``state_dict()``;
tensors the direction does not move, such as frozen parameters or BatchNorm's batch counter,
are zeros), plus the PCA's
``explained_variance_ratio_``; with a projected path, ``NAME_proj.h5`` holds ``proj_xcoord`` and
``proj_ycoord``. The loss array is indexed ``[y, x]``, which is what the reference's
``plot_2D.py`` (``meshgrid(x, y)``) reads.

Several paths on one plane (``runs``): the first is stored as the one path is (so a reader of
one path reads it), the others beside it with their index, ``path_x_1``… in the NPZ,
``proj_xcoord_1``… in ``NAME_proj.h5``, and the names of all of them, in order, as
``path_names``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gdscope.errors import GdscopeError, first_line, needs_extra
from gdscope.files import check_target, write_atomic
from gdscope.modules import ParamLayout
from gdscope.nets.plane import ModelSurface
from gdscope.nets.projection import ProjectedPath

__all__ = ["SURFACE_FORMATS", "read_surface", "save_surface", "surface_targets"]

SURFACE_FORMATS = (".npz", ".h5")

# The reference's HDF5 key names (its plot_surface.py, net_plotter.py and projection.py).
X_KEY, Y_KEY, DIR_KEY = "xcoordinates", "ycoordinates", "dir_file"
LOSS_KEYS = ("train_loss", "test_loss")
"""The surface's values: the training loss (what the reference computes), else the test loss."""
ACCURACY_KEYS = {"train_loss": "train_acc", "test_loss": "test_acc"}
"""The accuracy (in percent) beside each loss."""
DIRECTION_KEYS = ("xdirection", "ydirection")
EXPLAINED_KEY = "explained_variance_ratio_"
PROJ_KEYS = ("proj_xcoord", "proj_ycoord")
NAMES_KEY = "path_names"
"""The names of several paths saved on one plane (``runs``), in order."""
UNSET = -1.0
"""What the reference fills a surface with before computing it (a point not yet evaluated)."""


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
        raise needs_extra("HDF5 files (.h5) need h5py", "hdf5") from None
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
    runs: Sequence[tuple[str, ProjectedPath]] = (),
) -> list[Path]:
    """Write ``surface`` (and the projected path, or several named ``runs`` on its plane) to
    ``path`` (.npz or .h5); returns the files."""
    if runs and projected is not None:
        raise GdscopeError("save one projected path, or several runs: not both")
    projected = runs[0][1] if runs else projected
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
        for i, (_, other) in enumerate(runs[1:], start=1):
            arrays.update({f"path_x_{i}": other.xs, f"path_y_{i}": other.ys,
                           f"off_plane_{i}": other.off_plane})  # fmt: skip
        if runs:
            arrays[NAMES_KEY] = np.array([name for name, _ in runs])
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
            for key, vector in zip(DIRECTION_KEYS, (surface.dx, surface.dy), strict=True):
                if vector is None:
                    continue
                group = f.create_group(key)
                for i, array in enumerate(_split(surface, vector)):
                    group.create_dataset(str(i), data=array)
            if explained is not None:
                f[EXPLAINED_KEY] = explained

    def write_surface(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f[DIR_KEY] = str(directions)
            f[X_KEY] = surface.xs
            if surface.dy is not None:
                f[Y_KEY] = surface.ys
            loss = surface.loss if surface.dy is not None else surface.loss[0]
            f[LOSS_KEYS[0]] = loss
            acc = surface.accuracy if surface.accuracy is not None else np.full_like(
                surface.loss, UNSET)  # fmt: skip
            acc = acc * 100 if surface.accuracy is not None else acc
            f[ACCURACY_KEYS[LOSS_KEYS[0]]] = acc if surface.dy is not None else acc[0]

    written.append(write_atomic(directions, write_directions, force=force))
    written.append(write_atomic(target, write_surface, force=force))
    if projected is not None:

        def write_proj(tmp: Path) -> None:
            with h5py.File(tmp, "w") as f:
                f[PROJ_KEYS[0]] = projected.xs
                f[PROJ_KEYS[1]] = projected.ys
                for i, (_, other) in enumerate(runs[1:], start=1):
                    f[f"{PROJ_KEYS[0]}_{i}"] = other.xs
                    f[f"{PROJ_KEYS[1]}_{i}"] = other.ys
                if runs:
                    f[NAMES_KEY] = [name.encode() for name, _ in runs]

        written.append(write_atomic(proj, write_proj, force=force))
    return written


def _dataset(f: Any, key: str, source: Path) -> np.ndarray | None:
    """``f[key]`` as a float array, None if absent; an error if it is not numbers."""
    if key not in f:
        return None
    try:
        return np.asarray(f[key][()], dtype=np.float64)
    except (TypeError, ValueError, AttributeError):
        raise GdscopeError(f"{source.name}: {key!r} is not an array of numbers") from None


def _read_h5(path: Path, keys: tuple[str, ...]) -> tuple[dict[str, np.ndarray], Any]:
    """The datasets ``keys`` of an HDF5 file that has them, and its ``dir_file`` (or None)."""
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            found = {k: a for k in keys if (a := _dataset(f, k, path)) is not None}
            directions = f[DIR_KEY][()] if DIR_KEY in f else None
    except OSError as error:
        first = first_line(error)
        raise GdscopeError(f"cannot read {path} as HDF5: {first}") from None
    if isinstance(directions, bytes):
        directions = directions.decode("utf-8", "replace")
    return found, directions


def _axis(values: np.ndarray | None, key: str, source: Path) -> np.ndarray:
    if values is None:
        raise GdscopeError(f"{source.name} is not a loss-landscape surface file: no {key!r}")
    if values.ndim != 1 or len(values) < 2 or not (np.diff(values) > 0).all():
        raise GdscopeError(f"{source.name}: {key!r} must list 2 or more increasing coordinates")
    return values


def _grid_values(values: np.ndarray, nx: int, ny: int, key: str, source: Path) -> np.ndarray:
    """``values`` as ``[y, x]``. The reference stores a surface with shape ``(len(x), len(y))``
    but fills it in the order of ``meshgrid(x, y)`` flattened, ``[y, x]``; ``save_surface``
    writes ``(len(y), len(x))`` in the same order: either way the flat order is ``[y, x]``."""
    if values.shape not in ((nx, ny), (ny, nx), (nx,) if ny == 1 else (nx, ny)):  # 1: a line
        raise GdscopeError(f"{source.name}: {key!r} has shape {values.shape}, the coordinates "
                           f"make a {nx}×{ny} grid")  # fmt: skip
    return values.reshape(ny, nx)


def read_surface(
    path: str | os.PathLike[str], *, proj: str | os.PathLike[str] | None = None
) -> tuple[ModelSurface, ProjectedPath | None]:
    """A surface in the reference's HDF5 layout (its ``plot_surface.py``'s, or ``save_surface``'s),
    and with ``proj`` the path its ``projection.py`` projected (``proj_xcoord``, ``proj_ycoord``).

    The values are its ``train_loss`` (else ``test_loss``) and the accuracy beside it; points
    the reference had not evaluated yet (loss and accuracy both −1) are NaN, drawn blank. The
    directions are not read: drawing needs the grid and its values only, so the surface's
    ``centre``, ``dx`` and ``dy`` are empty (``dy`` None for a 1-D surface). The projected
    path's steps are its points' indices; its distance off the plane is unknown (NaN).
    """
    source = Path(path)
    keys = (X_KEY, Y_KEY, *LOSS_KEYS, *ACCURACY_KEYS.values())
    found, directions = _read_h5(source, keys)
    xs = _axis(found.get(X_KEY), X_KEY, source)
    line = Y_KEY not in found
    ys = np.zeros(1) if line else _axis(found[Y_KEY], Y_KEY, source)
    loss_key = next((k for k in LOSS_KEYS if k in found), None)
    if loss_key is None:
        raise GdscopeError(f"{source.name} holds no surface values ({' or '.join(LOSS_KEYS)})")
    acc_key = ACCURACY_KEYS[loss_key]
    shape = (len(xs), len(ys))
    loss = _grid_values(found[loss_key], *shape, loss_key, source)
    accuracy = (_grid_values(found[acc_key], *shape, acc_key, source)
                if acc_key in found else None)  # fmt: skip
    unset = (loss == UNSET) & (accuracy == UNSET if accuracy is not None else True)
    loss = np.where(unset, np.nan, loss)
    if accuracy is not None:
        accuracy = None if (accuracy == UNSET).all() else np.where(unset, np.nan, accuracy / 100)
    empty = torch.zeros(0)
    meta = {"source": str(source), "points": loss.size, "dir_file": directions,
            "values": loss_key}  # fmt: skip
    surface = ModelSurface(xs, ys, loss, accuracy, empty, empty, None if line else empty,
                           ParamLayout((), ()), meta)  # fmt: skip
    if proj is None:
        return surface, None
    if line:
        raise GdscopeError(f"{source.name} is 1-D (no {Y_KEY!r}): a path is drawn on a plane")
    return surface, _read_projection(Path(proj))


def _read_projection(source: Path) -> ProjectedPath:
    found, _ = _read_h5(source, PROJ_KEYS)
    if len(found) < 2:
        raise GdscopeError(f"{source.name} is not a projected path: no {' and '.join(PROJ_KEYS)}")
    xs, ys = (found[k] for k in PROJ_KEYS)
    if xs.ndim != 1 or xs.shape != ys.shape or not len(xs):
        raise GdscopeError(f"{source.name}: {' and '.join(PROJ_KEYS)} must be two lists of the "
                           f"same length, got shapes {xs.shape} and {ys.shape}")  # fmt: skip
    return ProjectedPath(xs, ys, np.full(len(xs), np.nan), np.arange(len(xs)))
