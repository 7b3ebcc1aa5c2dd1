"""Phase diagrams: a metric over a 2-D grid of hyperparameters, every cell one batched run.

Metrics (per cell):

* ``final_loss``, ``best_loss``: the loss after the last step, and the lowest seen;
* ``steps``: the first step whose loss is within ``tol`` of the loss's true minimum
  (NaN if never);
* ``path_length``: the summed length of all steps in (weight, bias);
* ``diverged``: 1 if the run diverged (``problem.divergence``: its ``diverged_at`` is set, as
  the engines, the CLI and the API report it), or if it is on its way there, its distance to
  the minimum *growing*: the largest distance over the last tenth of the points exceeds the
  largest over the first tenth (start included); else 0. So every run reported diverged is
  marked diverged; a growing one is marked before it leaves its map. Comparing the spread of
  windows rather than two single points tells a slowly shrinking oscillation (high momentum)
  from a growing one, so the verdict is decided within the run's epochs. The minimum is that of
  ``loss + wd/2·|p|²`` for optimizers whose weight decay is an L2 penalty, else the loss's.
  Near ``momentum → 1`` the oscillation shrinks only by ``√μ`` per step, so a verdict needs
  epochs ≫ 1/(1 − √μ): about 200 for μ = 0.99, 2,000 for μ = 0.999. With fewer, such rows
  read as diverged where the analytic border says they converge (slowly).

  For a network (``studies.netstudy``) the same metric reads: diverged (non-finite), or
  *growing*: its final loss on the training data above ``NETWORK_GROWTH`` × its starting
  loss (``network_growing``). A network trained with too large a step often stays finite
  (cross-entropy saturates) while it learns nothing; that is its border.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from gdscope.engines.batched import BatchResult
from gdscope.errors import GdscopeError
from gdscope.optim.specs import l2_decay
from gdscope.problem.data import Dataset
from gdscope.problem.grid import ARTICLE_EPOCHS
from gdscope.problem.losses import LossSpec
from gdscope.problem.maps import find_minimum
from gdscope.problem.objective import Objective
from gdscope.problem.stability import hessian_eigenvalues, is_stable
from gdscope.studies.sweep import GRID_CHUNK, Axis, GridRun, run_grid

__all__ = [
    "DEFAULT_METRIC",
    "LOSS_METRICS",
    "METRICS",
    "METRIC_LABELS",
    "NETWORK_GROWTH",
    "NETWORK_METRICS",
    "NEURON_METRICS",
    "STEPS_TOL",
    "YES_NO_METRICS",
    "analytic_stable",
    "network_growing",
    "phase_diagram",
]

METRIC_LABELS = {
    "final_loss": "final loss",
    "best_loss": "best loss",
    "steps": "steps to reach min + tol",
    "diverged": "diverged",
    "path_length": "path length",
    "val_loss": "validation loss",
    "val_accuracy": "validation accuracy",
    "steps_to_target": "steps to reach the target loss",
}
"""Every metric a phase diagram computes, with what a chart calls it."""
METRICS = tuple(METRIC_LABELS)
DEFAULT_METRIC = "diverged"
"""What a phase diagram shows unless told otherwise: where the optimizer diverges."""
STEPS_TOL = 1e-3
"""How near the minimum's loss the ``steps`` metric counts as reached unless told otherwise."""
YES_NO_METRICS = ("diverged",)
"""The metrics whose cells are yes (1) or no (0): a chart pins their colours to 0 and 1."""
LOSS_METRICS = ("final_loss", "best_loss", "path_length", "val_loss", "val_accuracy")
"""The metrics that mean nothing for a diverged run."""
NEURON_METRICS = ("final_loss", "best_loss", "steps", "diverged", "path_length")
"""What a phase diagram of a 2-D objective computes (``phase_diagram``)."""
NETWORK_METRICS = ("final_loss", "val_loss", "val_accuracy", "diverged", "steps_to_target")
"""What a phase diagram of a network computes (``studies.netstudy``; val_*: with val data)."""
NETWORK_GROWTH = 1.5
"""A network whose final loss is above ``NETWORK_GROWTH`` × its starting loss counts as
diverged (growing): above the drift of a copy that barely moves (lr 1e-4: ±1 %), below what a
copy that blew up ends at (2–10× on the examples' MLP and CNN, measured)."""


def network_growing(final: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Which copies of a network are *growing* (see the ``diverged`` metric above): the loss
    rose by more than ``NETWORK_GROWTH - 1`` times the start's size (a loss may be negative),
    or ended non-finite (huge finite weights whose loss overflows in eval mode)."""
    with np.errstate(invalid="ignore"):
        grew = final - start > (NETWORK_GROWTH - 1) * np.abs(start)
    return np.asarray(grew | ~np.isfinite(final))


def phase_diagram(
    data: Dataset | None,
    *,
    x: Axis,
    y: Axis,
    optimizer: str = "sgd",
    fixed: Mapping[str, Any] | None = None,
    loss: Objective | None = None,
    start: tuple[float, float] | None = None,
    epochs: int = ARTICLE_EPOCHS,
    tol: float = STEPS_TOL,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    compile: bool = False,
    chunk: int = GRID_CHUNK,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int | None = None,
    shuffle_seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> GridRun:
    """Run the ``y × x`` grid (rows are ``y``) and compute every metric in ``METRICS``.

    For a test function the spreads are measured to its known minimum nearest to ``start``
    (weight decay's shift of that minimum is not accounted for), and ``steps`` counts steps to
    within ``tol`` of the lowest known minimum's value.
    """
    loss = loss or LossSpec()
    if not tol > 0:
        raise GdscopeError(f"tol must be > 0, got {tol}")
    fixed = dict(fixed or {})
    start = start if start is not None else loss.start
    minima: dict[float, np.ndarray] = {}
    known = np.array(loss.known_minima)
    if len(known):
        values = loss.at(data, torch.tensor(known, dtype=torch.float64))
        lowest = float(values.min())
        nearest = known[int(np.argmin(np.linalg.norm(known - np.array(start), axis=1)))]
    else:
        lowest = find_minimum(data, loss)[2]

    def minimum_for(decay: float) -> np.ndarray:
        if len(known):
            return nearest
        if decay not in minima:
            minima[decay] = np.array(find_minimum(data, loss, weight_decay=decay)[:2])
        return minima[decay]

    def decay_of(hyper: Mapping[str, Any], size: int) -> np.ndarray:
        decay = np.broadcast_to(np.asarray(hyper.get("weight_decay", 0.0), float), (size,))
        return l2_decay(optimizer, decay, hyper.get("decoupled_weight_decay", False))

    def centre(hyper: dict[str, np.ndarray]) -> np.ndarray:
        size = max(np.size(v) for v in hyper.values())
        return np.stack([minimum_for(float(d)) for d in decay_of(hyper, size)])

    def finish(result: BatchResult, cells: np.ndarray) -> dict[str, np.ndarray]:
        assert result.early_spread is not None and result.late_spread is not None
        diverged = result.diverged.cpu().numpy()
        growing = (result.late_spread > result.early_spread).cpu().numpy()
        steps = result.steps_to_target.cpu().numpy().astype(np.float64)
        return {
            "diverged": (diverged | growing).astype(np.float64),
            "steps": np.where(steps >= 0, steps, np.nan),
            "early_spread": result.early_spread.double().cpu().numpy(),
            "late_spread": result.late_spread.double().cpu().numpy(),
        }

    return run_grid(
        data, optimizer, (y, x), fixed=fixed, loss=loss, start=start, epochs=epochs,
        record="metrics", target=lowest + tol, chunk=chunk, dtype=dtype, device=device,
        compile=compile, progress=progress, finish=finish, centre=centre, batch_size=batch_size,
        shuffle_seed=shuffle_seed, should_stop=should_stop,
    )  # fmt: skip


def analytic_stable(run: GridRun, data: Dataset) -> np.ndarray | None:
    """The analytic stable region on the run's grid (rows ``y``), for SGD on MSE; else None."""
    regression = run.loss.regression
    if run.optimizer != "sgd" or regression is None or regression.name != "mse":
        return None
    if run.meta.get("batch_size") is not None:
        return None
    if run.options.get("maximize", np.zeros(1, dtype=bool)).any():
        return None
    _, lam = hessian_eigenvalues(data)
    opts = run.options
    nesterov = opts["nesterov"]
    stable = np.where(
        nesterov,
        is_stable(
            opts["lr"], opts["momentum"], lam, nesterov=True, weight_decay=opts["weight_decay"]
        ),
        is_stable(
            opts["lr"],
            opts["momentum"],
            lam,
            dampening=opts["dampening"],
            weight_decay=opts["weight_decay"],
        ),
    )
    return stable.reshape(run.shape)
