"""A fair optimizer shoot-out: tune each optimizer under the same budget, from the same starts.

Each optimizer's learning rate (and optionally its momentum, or Adam's beta1) is searched on
the same grid; every setting runs from every start point for ``budget`` steps; a setting's
score is the mean final loss over the starts (a diverged run scores +inf). Nothing is
clipped. Optimizers the batched engine knows run batched, every setting from every start in
the runner's chunks (``sweep.run_cells``, as a sweep's cells), the others through real
``torch.optim`` one run at a time.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gdscope import interrupts
from gdscope.engines.batched import BatchResult
from gdscope.engines.reference import check_epochs, train
from gdscope.engines.runner import Results
from gdscope.engines.trajectory import Trajectory
from gdscope.errors import GdscopeError
from gdscope.optim.rules import TRANSFORMS
from gdscope.optim.specs import OPTIMIZERS, OptimizerSpec, momentum_argument
from gdscope.problem.data import Dataset
from gdscope.problem.grid import Grid
from gdscope.problem.losses import LossSpec
from gdscope.problem.objective import Objective
from gdscope.studies.sweep import COMPARE_BUDGET, COMPARE_STARTS, Axis, run_cells
from gdscope.version import __version__

__all__ = ["Contender", "Shootout", "compare", "refuse_repeats", "start_points", "tuning_edges"]

DEFAULT_LR = Axis("lr", tuple(float(v) for v in np.geomspace(1e-4, 1.0, 25)), log=True)


def refuse_repeats(names: Sequence[str]) -> None:
    """Refuse an optimizer named twice: a shoot-out keeps one result per name (the network's
    would read the second as missing, an interruption), so it would only run twice."""
    twice = sorted({name for name in names if list(names).count(name) > 1})
    if twice:
        raise GdscopeError(
            f"{', '.join(twice)} named more than once in the optimizers; name each once"
        )


@dataclass(frozen=True, eq=False)
class Contender:
    name: str
    options: dict[str, Any]
    """The winning keyword arguments."""
    score: float
    scores: np.ndarray
    """Score of every tried setting, in the order of ``settings``."""
    settings: list[dict[str, Any]]
    diverged: int
    """How many runs of the winning setting diverged (over all starts)."""
    path: Trajectory
    """The winning setting's run from the first start."""

    def edges(self) -> list[str]:
        """Where the winner sits on the edge of the tuned grid (``tuning_edges``)."""
        rows = [_tuned(s) for s in self.settings]
        tried = {key: [row[key] for row in rows] for key in rows[0] if all(key in r for r in rows)}
        best = {key: value for key, value in _tuned(self.options).items() if key in tried}
        return [f"{self.name}: {line}" for line in tuning_edges(best, tried)]


@dataclass(frozen=True, eq=False)
class Shootout:
    loss: Objective
    budget: int
    starts: np.ndarray
    seed: int
    contenders: list[Contender]
    meta: dict[str, Any] = field(default_factory=dict)
    asked: tuple[str, ...] = ()
    """Every optimizer asked for; after Ctrl-C, ``contenders`` holds the ones finished."""

    @property
    def interrupted(self) -> bool:
        return len(self.contenders) < len(self.asked)

    def table(self) -> list[dict[str, Any]]:
        """One row per optimizer, best first."""
        rows = [
            {"optimizer": c.name, **c.options, "mean_final_loss": c.score, "diverged": c.diverged}
            for c in self.contenders
        ]
        return sorted(rows, key=lambda row: row["mean_final_loss"])


def start_points(
    count: int,
    *,
    seed: int = 0,
    grid: Grid | None = None,
    first: tuple[float, float] | None = None,
) -> np.ndarray:
    """``first`` (default: the article's start), then ``count - 1`` uniform points in the grid's
    box (default: the article's grid), seeded."""
    if count < 1:
        raise GdscopeError(f"need at least one start point, got {count}")
    grid = grid or LossSpec().default_grid()
    first = first or LossSpec().start
    rng = np.random.RandomState(seed)
    extra = np.stack(
        [rng.uniform(*grid.w_range, count - 1), rng.uniform(*grid.b_range, count - 1)], axis=1
    )
    return np.concatenate([np.array([first]), extra])


_FLOORS = {"momentum": 0.0}
"""The tuned settings' lowest allowed values: a winner there has nothing below it to miss."""


def _tuned(setting: Mapping[str, Any]) -> dict[str, float]:
    """A setting's tuned values: ``lr``, and ``momentum`` (for the Adam family, beta1)."""
    tuned = {key: float(setting[key]) for key in ("lr", "momentum") if key in setting}
    if "betas" in setting:
        tuned["momentum"] = float(setting["betas"][0])
    return tuned


def tuning_edges(best: Mapping[str, float], tried: Mapping[str, Sequence[float]]) -> list[str]:
    """One line for each tuned setting whose ``best`` value is the highest or the lowest of
    several ``tried``: the best setting may lie beyond the grid, so the comparison may be unfair
    to that optimizer (not said at a floor such as momentum 0, below which nothing is allowed)."""
    lines = []
    for key, value in best.items():
        lo, hi = min(tried[key]), max(tried[key])
        side = "highest" if value >= hi else "lowest" if value <= lo else None
        if lo == hi or side is None or (side == "lowest" and value <= _FLOORS.get(key, -math.inf)):
            continue
        lines.append(f"the best {key}, {value:g}, is the {side} tried ({lo:g} to {hi:g}): a "
                     "better one may lie beyond the tuning grid")  # fmt: skip
    return lines


def _settings(name: str, lr: Axis, momentum: Axis | None) -> list[dict[str, Any]]:
    """The tried settings: every ``lr``, with every ``momentum`` where the optimizer has one
    (beta1 for the Adam family, beta2 then torch's default)."""
    taken = momentum_argument(name) if momentum is not None else None
    if momentum is None or taken is None:
        return [{"lr": v} for v in lr.values]
    pairs = itertools.product(lr.values, momentum.values)
    if taken[0] == "betas":
        return [{"lr": a, "betas": (b, taken[1][1])} for a, b in pairs]
    return [{"lr": a, "momentum": b} for a, b in pairs]


def _scores(finals: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(finals), finals, np.inf).mean(axis=1)


def compare(
    data: Dataset | None,
    optimizers: Sequence[str],
    *,
    loss: Objective | None = None,
    budget: int = COMPARE_BUDGET,
    starts: int | np.ndarray = COMPARE_STARTS,
    seed: int = 0,
    lr: Axis = DEFAULT_LR,
    momentum: Axis | None = None,
    fixed: Mapping[str, Mapping[str, Any]] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Shootout:
    """Tune and score each optimizer; see the module docstring for the rules. On a test function
    the starts are its customary one and random points of its standard domain."""
    loss = loss or LossSpec()
    check_epochs(budget)
    names = [name.lower() for name in optimizers]
    unknown = [name for name in names if name not in OPTIMIZERS]
    if unknown or not names:
        raise GdscopeError(
            f"unknown optimizer(s) {unknown or names}; choose from {', '.join(OPTIMIZERS)}"
        )
    refuse_repeats(names)
    points = (
        start_points(starts, seed=seed, grid=loss.default_grid(), first=loss.start)
        if isinstance(starts, int)
        else np.asarray(starts, float)
    )
    fixed = dict(fixed or {})
    contenders = []
    with interrupts.polled():  # Ctrl-C keeps the optimizers already scored
        for name in names:
            settings = [{**fixed.get(name, {}), **s} for s in _settings(name, lr, momentum)]
            finals = _final_losses(data, name, settings, points, loss, budget, dtype)
            if finals is None or interrupts.requested():
                break
            contenders.append(_winner(data, name, settings, finals, points, loss, budget, dtype))
            for line in contenders[-1].edges():  # said, and the winner drawn all the same
                warnings.warn(line, UserWarning, stacklevel=2)
    meta = {"gdscope": __version__, "torch": torch.__version__, "seed": seed, "budget": budget,
            "objective": loss.to_dict()}  # fmt: skip
    return Shootout(loss, budget, points, seed, contenders, meta, asked=tuple(names))


def _winner(
    data: Dataset | None,
    name: str,
    settings: list[dict[str, Any]],
    finals: np.ndarray,
    points: np.ndarray,
    loss: Objective,
    budget: int,
    dtype: torch.dtype,
) -> Contender:
    """The best-scoring setting of ``name``, with its run from the first start."""
    scores = _scores(finals)
    best = int(np.argmin(scores))
    options = settings[best]
    path = train(data, loss=loss, optimizer=OptimizerSpec.of(name, **options), epochs=budget,
                 start=tuple(points[0]), dtype=dtype)  # fmt: skip
    diverged = int((~np.isfinite(finals[best])).sum())
    return Contender(name, options, float(scores[best]), scores, settings, diverged, path)


def _final_losses(
    data: Dataset | None,
    name: str,
    settings: list[dict[str, Any]],
    points: np.ndarray,
    loss: Objective,
    budget: int,
    dtype: torch.dtype,
) -> np.ndarray | None:
    """``(settings, starts)`` final losses; NaN for diverged runs. None when Ctrl-C stopped it."""
    n_set, n_start = len(settings), len(points)
    if name in TRANSFORMS:
        keys = sorted({k for s in settings for k in s})
        hyper: dict[str, Any] = {}
        for key in keys:
            column = [s[key] for s in settings for _ in range(n_start)]
            if key == "betas":
                hyper["beta1"], hyper["beta2"] = [b[0] for b in column], [b[1] for b in column]
            else:
                hyper[key] = column

        def keep(index: np.ndarray, result: BatchResult, store: Results) -> None:
            finals = result.final_loss.double().cpu().numpy()
            diverged = result.diverged_at.cpu().numpy() >= 0
            store.put(index, {"final": np.where(diverged, np.nan, finals)})

        cells = {key: np.asarray(column) for key, column in hyper.items()}
        store = run_cells(data, name, fixed={}, cells=cells, keep=keep, total=n_set * n_start,
                          start=np.tile(points, (n_set, 1)), loss=loss, epochs=budget,
                          dtype=dtype)  # fmt: skip
        if not store.done.all():  # Ctrl-C: this optimizer is not scored
            return None
        return store.columns["final"].reshape(n_set, n_start)
    finals = np.full((n_set, n_start), np.nan)
    for i, setting in enumerate(settings):
        spec = OptimizerSpec.of(name, **setting)
        if interrupts.requested():
            return None
        for j, point in enumerate(points):
            run = train(
                data, loss=loss, optimizer=spec, epochs=budget, start=tuple(point), dtype=dtype
            )
            finals[i, j] = math.nan if run.diverged else run.losses[-1]
    return finals
