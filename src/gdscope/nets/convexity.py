"""Li et al. (2018)'s map of non-convexity: ``|λ_min / λ_max|`` of the loss's Hessian at points
of a landscape's plane (their Figure 7). Near zero the surface is convex there (it curves down
in no direction, or only slightly next to how it curves up); large values mark strong negative
curvature, which a 2-D slice can hide.

Each point's two extreme eigenvalues come from one Lanczos run (``curvature.
extreme_eigenvalues``) on the Hessian of the mean loss over the data (its first ``samples``
samples, if given), with the model in eval mode as the surface is evaluated, at the parameters
``centre + x·dx + y·dy``. Where ``λ_min ≥ 0`` the Hessian is positive semi-definite there, so
the point counts as convex: the ratio is 0 (in a network of thousands of weights that hardly
happens, but a tiny model can be convex, and ``λ_min/λ_max`` of a convex bowl is no
non-convexity).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from gdscope import interrupts
from gdscope.errors import GdscopeError
from gdscope.modules import left_as_it_was
from gdscope.nets.curvature import LANCZOS_STEPS, HessianOperator, extreme_eigenvalues
from gdscope.nets.plane import Batches, LossFn, ModelSurface, first_samples

__all__ = [
    "CONVEXITY_POINTS",
    "CONVEXITY_TOL",
    "NON_CONVEX",
    "ConvexityMap",
    "ConvexityOptions",
    "convexity_map",
]

CONVEXITY_POINTS = 11
"""Points per axis of a convexity map unless asked otherwise: each costs a Lanczos run (tens
of Hessian-vector products), so the map is coarser than the surface it goes with."""
CONVEXITY_TOL = 1e-2
"""The extreme eigenvalues' tolerance, relative to the spectral radius: the ratio to about
two digits, which a colour map shows."""
NON_CONVEX = 0.1
"""``|λ_min/λ_max|`` above which a point counts as markedly non-convex: the negative curvature
is at least a tenth of the positive (Li et al.'s maps run from 0, blue, to about 0.5 and more,
yellow; a tenth is where their colour leaves the convex blue)."""


@dataclass(frozen=True)
class ConvexityOptions:
    """A convexity map on ``points`` × ``points`` points spanning the surface's plane, on the
    first ``samples`` samples of the data (None: all), each point's eigenvalues to relative
    tolerance ``tol`` in at most ``steps`` products, Lanczos started from a vector seeded by
    ``seed`` (the same at every point)."""

    points: int = CONVEXITY_POINTS
    samples: int | None = None
    tol: float = CONVEXITY_TOL
    steps: int = LANCZOS_STEPS
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("points", "steps", "samples", "seed"):
            value = getattr(self, name)
            if value is None and name == "samples":
                continue
            least = 0 if name == "seed" else 2 if name == "points" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise GdscopeError(f"convexity {name} must be an integer ≥ {least}, got {value!r}",
                                   settings=[f"convexity_{name}"])  # fmt: skip
        if not 0 < self.tol < 1:
            raise GdscopeError(f"convexity tol must be in (0, 1), got {self.tol!r}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, eq=False)
class ConvexityMap:
    """``lowest[j, i]`` and ``highest[j, i]``: the extreme Hessian eigenvalues at
    ``(xs[i], ys[j])`` of the plane (NaN where Ctrl-C left a point out); ``converged`` per
    point; ``samples`` the data's; ``hvps`` products in ``seconds``."""

    xs: np.ndarray
    ys: np.ndarray
    lowest: np.ndarray
    highest: np.ndarray
    converged: np.ndarray
    samples: int
    hvps: int
    seconds: float
    options: ConvexityOptions

    @property
    def ratio(self) -> np.ndarray:
        """``|λ_min/λ_max|`` where ``λ_min < 0``, 0 where the Hessian is positive
        semi-definite (convex there), NaN where not computed."""
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.abs(self.lowest / self.highest)
        return np.where(self.lowest >= 0, 0.0, ratio)

    @property
    def done(self) -> int:
        return int(np.isfinite(self.lowest).sum())

    def non_convex(self, threshold: float = NON_CONVEX) -> float:
        """The fraction of the computed points whose ratio exceeds ``threshold``."""
        ratio = self.ratio[np.isfinite(self.ratio)]
        return float((ratio > threshold).mean()) if ratio.size else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "xs": self.xs.tolist(), "ys": self.ys.tolist(), "lowest": self.lowest.tolist(),
            "highest": self.highest.tolist(), "converged": self.converged.tolist(),
            "samples": self.samples, "hvps": self.hvps, "seconds": self.seconds,
            "options": self.options.to_dict(),
        }  # fmt: skip


def convexity_map(
    model: nn.Module,
    batches: Batches,
    loss_fn: LossFn,
    surface: ModelSurface,
    *,
    options: ConvexityOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ConvexityMap:
    """The convexity map over ``surface``'s plane (its extent, ``options.points`` per axis) for
    ``model`` (its layout: the surface's), on ``batches``. ``progress(done, total)`` counts
    points. Under Ctrl-C (``interrupts``) it stops between points and keeps what finished."""
    options = options or ConvexityOptions()
    if surface.dy is None:
        raise GdscopeError("a convexity map is of a plane, not a line: drop --line")
    data = first_samples(batches, options.samples)
    xs = np.linspace(surface.xs[0], surface.xs[-1], options.points)
    ys = np.linspace(surface.ys[0], surface.ys[-1], options.points)
    lowest = np.full((len(ys), len(xs)), np.nan)
    highest, converged = lowest.copy(), np.zeros(lowest.shape, dtype=bool)
    total, hvps, began = lowest.size, 0, time.perf_counter()
    generator = torch.Generator().manual_seed(options.seed)
    start = torch.randn(surface.layout.size, generator=generator, dtype=torch.float64)
    with left_as_it_was(model), interrupts.polled():
        model.eval()
        for index in range(total):
            if interrupts.requested():
                break
            j, i = divmod(index, len(xs))
            point = surface.point(float(xs[i]), float(ys[j]))
            operator = HessianOperator(model, data, loss_fn, layout=surface.layout, point=point)
            found = extreme_eigenvalues(operator, start.to(operator.point), tol=options.tol,
                                        steps=options.steps)  # fmt: skip
            hvps += found.hvps
            if not found.hvps or (interrupts.requested() and not found.converged):
                break  # cut short: left out rather than kept half-done
            lowest[j, i], highest[j, i], converged[j, i] = (found.lowest, found.highest,
                                                            found.converged)  # fmt: skip
            if progress is not None:
                progress(index + 1, total)
    seen = sum(len(targets) for _, targets in data)
    return ConvexityMap(xs, ys, lowest, highest, converged, seen, hvps,
                        time.perf_counter() - began, options)  # fmt: skip
