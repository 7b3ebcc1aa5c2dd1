"""Projecting a recorded path onto a landscape's plane, and saying how honest that picture is.

A 2-D picture of a million-parameter path can mislead: the recorded models lie off the plane,
so their true loss need not be the surface's value where they are drawn. ``project`` finds each
model's plane coordinates (least squares, so non-orthogonal directions are handled) and
``honesty`` evaluates, for each, the true loss and the loss at its projected point on the plane.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from gdscope.nets.directions import PCAPlane
from gdscope.nets.plane import Batches, ModelSurface, evaluate_plane_loop, evaluate_vectors
from gdscope.nets.recorder import RecordedPath

__all__ = ["Honesty", "ProjectedPath", "honesty", "project"]


@dataclass(frozen=True, eq=False)
class ProjectedPath:
    xs: np.ndarray
    ys: np.ndarray
    off_plane: np.ndarray
    """Distance of each model from the plane, relative to its distance from the centre."""
    steps: np.ndarray


def project(path: RecordedPath, surface: ModelSurface | PCAPlane) -> ProjectedPath:
    """Plane coordinates of every snapshot: least squares of ``w − centre`` on ``[dx, dy]`` (of a
    landscape, or of a PCA plane before any landscape is computed on it)."""
    basis = surface.dx[None].double() if surface.dy is None else torch.stack(
        [surface.dx, surface.dy]).double()  # fmt: skip
    gram = basis @ basis.T
    xs, ys, off = [], [], []
    for i in range(len(path)):
        delta = path.vector(i).double() - surface.centre.double()
        coef = torch.linalg.solve(gram, basis @ delta)
        residual = delta - coef @ basis
        xs.append(float(coef[0]))
        ys.append(float(coef[1]) if len(coef) > 1 else 0.0)
        scale = float(delta.norm())
        off.append(float(residual.norm()) / scale if scale > 0 else 0.0)
    return ProjectedPath(np.array(xs), np.array(ys), np.array(off), np.asarray(path.steps))


@dataclass(frozen=True, eq=False)
class Honesty:
    true_loss: np.ndarray
    """Each recorded model's own loss on the data."""
    plane_loss: np.ndarray
    """The loss at its projected point on the plane (what the picture shows there)."""

    @property
    def gap(self) -> np.ndarray:
        return self.plane_loss - self.true_loss

    @property
    def relative_gap(self) -> float:
        """Largest ``|gap|`` relative to the range of true losses along the path."""
        spread = float(np.ptp(self.true_loss)) or float(np.abs(self.true_loss).max()) or 1.0
        return float(np.abs(self.gap).max() / spread)

    def warning(self, threshold: float = 0.1) -> str | None:
        if self.relative_gap <= threshold:
            return None
        return (f"the projected path misleads: the surface differs from the recorded models' "
                f"true loss by up to {np.abs(self.gap).max():.3g} "
                f"({100 * self.relative_gap:.0f}% of the path's loss range)")  # fmt: skip


def honesty(
    model: nn.Module,
    batches: Batches,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    path: RecordedPath,
    projected: ProjectedPath,
    surface: ModelSurface,
) -> Honesty:
    """Evaluate every recorded model and its projection (exactly, not interpolated) the way the
    surface was evaluated (its ``meta``'s strategy, vmapped or one point after another; a loop
    for a surface read from elsewhere), in chunks no larger than its, so that a long path of a
    large model never sits on the device whole. (Point by point, a 300-step path's check cost
    more than the 41×41 plane it is drawn on.)"""
    device = batches[0][0].device
    method = surface.meta.get("strategy")
    evaluate = evaluate_vectors if method == "vmap" else evaluate_plane_loop
    size = max(1, int(surface.meta.get("chunk", 16))) if method == "vmap" else 16
    true_loss, plane_loss = [], []
    for start in range(0, len(path), size):
        indices = range(start, min(start + size, len(path)))
        true = torch.stack([path.vector(i) for i in indices]).to(device)
        on_plane = torch.stack([surface.point(projected.xs[i], projected.ys[i])
                                for i in indices]).to(device)  # fmt: skip
        true_loss.append(evaluate(model, batches, loss_fn, true)[0].cpu().numpy())
        plane_loss.append(evaluate(model, batches, loss_fn, on_plane)[0].cpu().numpy())
    return Honesty(np.concatenate(true_loss), np.concatenate(plane_loss))
