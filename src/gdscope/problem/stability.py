"""Where full-batch SGD on the MSE loss converges: the analytic stability border.

For ``L(w, b) = mean((w·x + b − y)²)`` the Hessian is constant,
``H = (2/n)·[[Σx², Σx], [Σx, n]]``, and SGD's weight decay adds ``wd·I``. Along an eigenvector
of ``H + wd·I`` with eigenvalue ``λ`` the error ``e`` of each SGD variant follows a linear
recurrence; the run converges iff every root of its characteristic polynomial lies inside the
unit circle, and the largest eigenvalue decides. Write ``α = lr·λ``.

* **Plain SGD** (``momentum = 0``): ``e' = (1 − α)·e``; stable iff ``0 < α < 2``.
* **Heavy ball** (``momentum μ``, ``dampening d``): torch keeps ``v ← μ·v + (1 − d)·g`` and
  steps ``p ← p − lr·v``. Eliminating ``v`` gives ``e_{t+1} = (1 + μ − α')·e_t − μ·e_{t−1}``
  with ``α' = (1 − d)·α``, i.e. ``z² − (1 + μ − α')·z + μ = 0``. By the Jury (Schur–Cohn)
  conditions it is stable iff ``0 ≤ μ < 1`` and ``0 < α' < 2·(1 + μ)``: the border is
  ``lr* = 2·(1 + μ) / ((1 − d)·λmax)``. (The first step, which torch seeds with ``v = g``,
  changes the transient, not the stability.)
* **Nesterov** (torch's form ``v ← μ·v + g``, step ``g + μ·v``): ``e_{t+1} =
  (1 + μ)(1 − α)·e_t − μ(1 − α)·e_{t−1}``, i.e. ``z² − (1 + μ)(1 − α)·z + μ(1 − α) = 0``,
  stable iff ``0 < α < 2·(1 + μ) / (1 + 2μ)``: the border is
  ``lr* = 2·(1 + μ) / ((1 + 2μ)·λmax)``, lower than the heavy ball's for every ``μ > 0``.

With ``maximize=True`` the iteration ascends the convex loss and never converges (``lr > 0``).

Read the other way, for a fixed ``lr`` the same border bounds the sharpness ``λmax`` a run can
stay stable at (``critical_sharpness``): ``2/lr`` for plain gradient descent, the "edge of
stability" that networks trained with full-batch GD settle at (Cohen et al. 2021). Adam's
first moment is the heavy ball with ``μ = d = β₁``, so its preconditioned sharpness is bounded
by ``2(1 + β₁)/((1 − β₁)·lr)`` = ``38/lr`` for ``β₁ = 0.9`` (Cohen et al. 2022).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from gdscope.problem.data import Dataset

__all__ = ["critical_lr", "critical_sharpness", "hessian_eigenvalues", "is_stable"]


def hessian_eigenvalues(data: Dataset) -> tuple[float, float]:
    """``(λmin, λmax)`` of the MSE loss's Hessian in (weight, bias), in float64."""
    x = data.x.astype(np.float64)
    n = len(x)
    hessian = (2.0 / n) * np.array([[np.sum(x * x), np.sum(x)], [np.sum(x), n]])
    low, high = np.linalg.eigvalsh(hessian)
    return float(low), float(high)


def critical_lr(
    lam_max: float,
    momentum: ArrayLike = 0.0,
    *,
    nesterov: bool = False,
    dampening: ArrayLike = 0.0,
    weight_decay: ArrayLike = 0.0,
) -> np.ndarray:
    """The largest stable learning rate for each ``momentum`` (0 where ``momentum >= 1``)."""
    mu = np.asarray(momentum, dtype=np.float64)
    lam = lam_max + np.asarray(weight_decay, dtype=np.float64)
    if nesterov:
        border = 2 * (1 + mu) / ((1 + 2 * mu) * lam)
    else:
        # torch ignores dampening when momentum == 0.
        scale = np.where(mu > 0, 1 - np.asarray(dampening, dtype=np.float64), 1.0)
        with np.errstate(divide="ignore"):
            border = np.where(scale > 0, 2 * (1 + mu) / (scale * lam), np.inf)
    return np.where((mu >= 0) & (mu < 1), border, 0.0)


def is_stable(
    lr: ArrayLike,
    momentum: ArrayLike,
    lam_max: float,
    *,
    nesterov: bool = False,
    dampening: ArrayLike = 0.0,
    weight_decay: ArrayLike = 0.0,
) -> np.ndarray:
    """Whether SGD with these settings converges on the quadratic (element-wise)."""
    border = critical_lr(
        lam_max, momentum, nesterov=nesterov, dampening=dampening, weight_decay=weight_decay
    )
    lr = np.asarray(lr, dtype=np.float64)
    return (lr > 0) & (lr < border)


def critical_sharpness(
    lr: float,
    momentum: float = 0.0,
    *,
    nesterov: bool = False,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
) -> float:
    """The largest sharpness (top eigenvalue of the loss's Hessian, weight decay not included)
    at which SGD with these settings is stable: ``critical_lr`` solved for ``λmax``."""
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    unit = float(critical_lr(1.0, momentum, nesterov=nesterov, dampening=dampening))
    return unit / lr - weight_decay
