"""What "diverged" means, written once: every engine, study, message and the API derive from it.

A run has *diverged* at the first point whose loss is not finite, or one of whose parameters is
not finite or has a magnitude above the objective's *escape bound*: ``ESCAPE_FACTOR`` (1e6)
times the largest |coordinate| of the objective's default map (8e6 for the article's
(−5, 8)² grid, 3e6 for ``saddle``'s (−3, 3)²). The run is kept up to the point before it and
flagged at that step. A path a million map-widths out never comes back to anything the map
shows, and its numbers (a loss of 1e34, x = 2.8e10) only grow until they overflow, so it is
reported as diverged there rather than left to run off silently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gdscope.errors import GdscopeError
from gdscope.problem.objective import Objective

__all__ = ["ESCAPE_FACTOR", "Divergence", "within"]

ESCAPE_FACTOR = 1e6
"""How many times its map's largest |coordinate| a parameter may reach before the run counts
as diverged."""


@dataclass(frozen=True)
class Divergence:
    """The divergence test for one objective: ``bound`` is its escape bound (``inf`` for an
    objective without a default map, where only non-finite values count)."""

    bound: float

    @classmethod
    def of(cls, objective: Objective | Sequence[Objective]) -> Divergence:
        """The test for ``objective`` (for several, the widest of their bounds)."""
        found = list(objective) if isinstance(objective, Sequence) else [objective]
        return cls(max(_bound(o) for o in found))

    def point_ok(self, vertical: float, horizontal: float, loss: float) -> bool:
        """True while a point has not diverged (the reference engine's test, on scalars)."""
        values = (vertical, horizontal, loss)
        return all(map(math.isfinite, values)) and max(abs(vertical), abs(horizontal)) <= self.bound

    def params_ok(self, params: Tensor) -> Tensor:
        """``(K,)``: rows of ``(K, N)`` parameters that have not diverged (see ``within``)."""
        if math.isinf(self.bound):  # no escape bound: finite is enough
            # A row's sum is finite only if all its values are (inf and NaN propagate): one
            # pass over the rows instead of isfinite's three; only a sum that overflowed (or a
            # row that really diverged) needs the element-wise test.
            fast = torch.isfinite(params.sum(-1))
            return fast if bool(fast.all()) else torch.isfinite(params).all(-1)
        return within(params, torch.tensor(self.bound, dtype=params.dtype))

    def reason(
        self, labels: tuple[str, str], vertical: float, horizontal: float, loss: float
    ) -> str:
        """Why the point ``(vertical, horizontal)`` with ``loss`` diverged, as a message says it."""
        for name, value in zip(labels, (vertical, horizontal), strict=True):
            if not math.isfinite(value):
                return f"{name.lower()} is {value}"
            if abs(value) > self.bound:
                return f"|{name.lower()}| = {abs(value):.3g} is beyond {self.describe_bound()}"
        return f"the loss is {loss}"

    def describe_bound(self) -> str:
        return f"the escape bound {self.bound:g} ({ESCAPE_FACTOR:g} × the map's extent)"

    def describe(self) -> str:
        """The definition in one line, for a run whose offending value is not known."""
        if math.isinf(self.bound):
            return "a parameter or the loss became non-finite"
        return f"a parameter went beyond {self.describe_bound()} or a value became non-finite"


def _bound(objective: Objective) -> float:
    try:
        grid = objective.default_grid()
    except GdscopeError:  # e.g. a network's landscape: its grid is the one it was sampled on
        return math.inf
    extent = max(abs(v) for v in (*grid.w_range, *grid.b_range))
    # Held as a float32 number, so float32 and float64 runs compare against the same value.
    return float(np.float32(ESCAPE_FACTOR * extent))


def within(params: Tensor, bound: Tensor) -> Tensor:
    """``(K,)``: rows of ``(K, 2)`` parameters that are finite and at most ``bound`` (a 0-d
    tensor, so a compiled step takes it as an input) in magnitude: the batched engine's test
    (its loss is tested with ``torch.isfinite``)."""
    return (torch.isfinite(params) & (params.abs() <= bound)).all(-1)
