"""Directions in a network's parameter space, as Li et al. (2018) draw landscapes along them.

A direction is a flat vector laid out like ``ParamLayout`` (``named_parameters()`` order). By
default it moves the trainable parameters only, like the reference's ``dir_type=weights``:
buffers such as BatchNorm's running statistics stay those of the model the plane is centred on.
With ``states=True`` it also covers the floating-point buffers of ``state_dict()``
(``dir_type=states``; a non-persistent buffer is not saved, so it is not moved), so that a line
between two BatchNorm networks really ends at the second one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
from torch import Tensor, nn

from gdscope.errors import GdscopeError, one_of
from gdscope.nets.curvature import TOL, LossFn, curvature
from gdscope.nets.recorder import ParamLayout, RecordedPath

__all__ = [
    "IGNORES",
    "NORMS",
    "Ignore",
    "Norm",
    "PCAPlane",
    "hessian_directions",
    "line_direction",
    "normalize",
    "pca_plane",
    "random_direction",
]

Norm = Literal["filter", "layer", "none"]
"""How a direction is scaled to the model: filter by filter, weight by weight, or not at all."""
Ignore = Literal["biasbn", "keep"]
"""What 1-D parameters (biases, normalization layers) get: zeros, or the model's own values."""
NORMS: tuple[Norm, ...] = get_args(Norm)
IGNORES: tuple[Ignore, ...] = get_args(Ignore)


def normalize(
    direction: Tensor,
    model: nn.Module,
    *,
    norm: Norm = "filter",
    ignore: Ignore = "biasbn",
    states: bool = False,
) -> Tensor:
    """Rescale ``direction`` like the reference implementation does.

    ``filter``: each filter (slice along the first dimension) of each weight gets the norm of the
    matching filter of the model (``d_i · |w_i| / (|d_i| + 1e-10)``); ``layer``: each weight
    tensor gets the norm of the model's; ``none``: unchanged. One-dimensional parameters (biases,
    normalization layers' scales and shifts, and with ``states`` their running statistics) are
    zeroed with ``ignore="biasbn"`` or set equal to the model's own values with ``ignore="keep"``
    (the reference's two choices).
    """
    one_of("norm", norm, NORMS)
    one_of("ignore", ignore, IGNORES)
    layout = ParamLayout.of(model, states=states)
    if direction.shape != (layout.size,):
        raise GdscopeError(
            f"the direction has {direction.numel()} entries, the model {layout.size}"
        )
    weights = layout.unflatten(layout.vector(model).to(direction))
    parts = layout.unflatten(direction.clone())
    for name in layout.names:
        d, w = parts[name], weights[name]
        if d.dim() <= 1:
            d.copy_(torch.zeros_like(d) if ignore == "biasbn" else w)
        elif norm == "filter":
            dims = tuple(range(1, d.dim()))
            norm_of = torch.linalg.vector_norm
            scale = norm_of(w, dim=dims, keepdim=True) / (
                norm_of(d, dim=dims, keepdim=True) + 1e-10
            )
            d.mul_(scale)
        elif norm == "layer":
            d.mul_(w.norm() / d.norm())
    return layout.flatten(parts)


def random_direction(
    model: nn.Module,
    *,
    norm: Norm = "filter",
    ignore: Ignore = "biasbn",
    seed: int | None = 0,
    states: bool = False,
) -> Tensor:
    """A Gaussian direction, normalized (see ``normalize``); ``seed`` makes it reproducible."""
    layout = ParamLayout.of(model, states=states)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    raw = torch.randn(layout.size, generator=generator, dtype=torch.float32)
    return normalize(raw, model, norm=norm, ignore=ignore, states=states)


def hessian_directions(
    model: nn.Module,
    batches: list[tuple[Tensor, Tensor]],
    loss_fn: LossFn,
    *,
    count: int = 2,
    norm: Norm = "none",
    ignore: Ignore = "biasbn",
    seed: int = 0,
    tol: float = TOL,
) -> tuple[list[Tensor], np.ndarray]:
    """The top ``count`` eigenvectors of the loss's Hessian at the model (``nets.curvature``,
    eval mode) and their eigenvalues. With ``norm="none"`` they are unit vectors, so the loss
    along the first is ``L + g·x + ½·λ₁·x²`` near 0; else they are rescaled like random
    directions (``normalize``: no longer eigenvectors, but comparable across models)."""
    spectrum = curvature(model, batches, loss_fn, top=count, tol=tol, seed=seed)
    vectors = [v.float() for v in spectrum.eigenvectors]
    if norm != "none":
        vectors = [normalize(v, model, norm=norm, ignore=ignore) for v in vectors]
    return vectors, spectrum.eigenvalues


def line_direction(start: nn.Module, end: nn.Module, *, states: bool = False) -> Tensor:
    """``end − start``: 0 is ``start``, 1 is ``end`` (1-D interpolation between two models)."""
    layout = ParamLayout.of(end, states=states)
    layout.check(start, against="the model's at the line's end (--to, to=)")
    return layout.vector(end).float() - layout.vector(start).float()


@dataclass(frozen=True, eq=False)
class PCAPlane:
    """The top two principal directions of a recorded path (unit vectors), through ``centre``
    (the model the landscape is of, or the path's last point), with the explained variance
    like scikit-learn reports it and the components' signs as its PCA chose them
    (``_svd_flip``)."""

    centre: Tensor
    dx: Tensor
    dy: Tensor
    explained_variance_ratio: np.ndarray
    explained_variance: np.ndarray


def _svd_flip(u: Tensor) -> Tensor:
    """Columns of ``u`` (the left singular vectors) signed as scikit-learn's ``svd_flip`` with
    ``u_based_decision=True`` signs them (its PCA's rule until 1.5, when the reference drew its
    planes): each column's entry of largest magnitude is positive. The component is ``uᵀX/σ``,
    so it takes the column's sign, and a plane has the reference's orientation, not a mirror."""
    rows = u.abs().argmax(dim=0)
    signs = torch.sign(u[rows, torch.arange(u.shape[1])])
    return u * torch.where(signs == 0, 1.0, signs).to(u)


def _union_rows(paths: Sequence[RecordedPath], start: int, stop: int) -> Tensor:
    """Columns ``start:stop`` of every path's snapshots, one under the other, in float64."""
    blocks = [np.array(path.snapshots[:, start:stop], dtype=np.float64) for path in paths]
    return torch.from_numpy(blocks[0] if len(blocks) == 1 else np.concatenate(blocks))


def pca_plane(
    path: RecordedPath | Sequence[RecordedPath],
    *,
    centre: Tensor | None = None,
    block: int = 1 << 20,
) -> PCAPlane:
    """PCA of the snapshots' differences to the final one (as the reference does it), centred.
    The plane goes through ``centre``: the model the landscape is of, at its current weights
    (the reference centres on its final model, which need not be the last snapshot taken);
    by default the path's last point. The directions do not depend on it (PCA centres).

    Several paths (one layout: ``nets.survey.check_layouts``) share one plane: the PCA of the
    union of their snapshots, differences to the first path's final one, centred on their
    common mean; by default through the first path's last point.

    Works on the ``T × T`` Gram matrix accumulated over column blocks of at most ``block``
    parameters, so a million-parameter path streamed to disk is never loaded whole. A path
    that is not finite somewhere (a diverged run) is refused, naming its first such snapshot.
    """
    paths = [path] if isinstance(path, RecordedPath) else list(path)
    sizes = {p.snapshots.shape[1] for p in paths}
    if not paths or len(sizes) > 1:
        raise GdscopeError("PCA of several paths needs paths of one parameter layout")
    count = sum(len(p) for p in paths)
    if count < 3:
        raise GdscopeError(f"PCA needs at least 3 snapshots, the path has {count}")
    final = torch.from_numpy(np.array(paths[0].snapshots[-1], dtype=np.float64))
    size = final.numel()
    gram = torch.zeros(count, count, dtype=torch.float64)
    finite = torch.ones(count, dtype=torch.bool)
    for start in range(0, size, block):
        cols = _union_rows(paths, start, start + block)
        finite &= torch.isfinite(cols).all(dim=1)
        cols = cols - final[start : start + block]
        cols = cols - cols.mean(0, keepdim=True)
        gram += cols @ cols.T
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0])
        which, first = _which(paths, first)
        run = "" if len(paths) == 1 else f" {which + 1} of {len(paths)}"
        raise GdscopeError(
            f"the recorded path{run} is not finite from snapshot {first} (step "
            f"{int(paths[which].steps[first])}): the run diverged; PCA needs finite snapshots, "
            "so stop the path before it (record fewer steps, or lower the learning rate)"
        )
    values, vectors = torch.linalg.eigh(gram)  # ascending
    values, vectors = values.flip(0).clamp_min(0), _svd_flip(vectors.flip(1)[:, :2])
    if values[1] <= 0:
        raise GdscopeError("the path spans fewer than two dimensions; PCA has no plane")
    components = torch.zeros(2, size, dtype=torch.float64)
    for start in range(0, size, block):
        cols = _union_rows(paths, start, start + block)
        cols = cols - final[start : start + block]
        cols = cols - cols.mean(0, keepdim=True)
        components[:, start : start + block] = vectors.T @ cols
    components /= components.norm(dim=1, keepdim=True)
    total = float(values.sum())
    ratio = (values[:2] / total).numpy()
    variance = (values[:2] / (count - 1)).numpy()
    through = final.float() if centre is None else centre.detach().to("cpu", torch.float32)
    return PCAPlane(through, components[0].float(), components[1].float(), ratio, variance)


def _which(paths: Sequence[RecordedPath], row: int) -> tuple[int, int]:
    """Row ``row`` of the union of ``paths``' snapshots as (path, snapshot)."""
    for which, path in enumerate(paths):
        if row < len(path):
            return which, row
        row -= len(path)
    raise IndexError(row)
