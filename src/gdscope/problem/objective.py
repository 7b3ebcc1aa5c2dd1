"""What is minimized: a regression loss on data (``LossSpec``) or a ``TestFunction``.

Both are two-parameter objectives. Their first coordinate is drawn on the vertical axis (the
weight, or a test function's ``y``), the second on the horizontal one (the bias, or ``x``).
"""

from __future__ import annotations

from typing import Union

from gdscope.engines.reference import ARTICLE_START
from gdscope.problem.losses import LossSpec
from gdscope.problem.maps import ARTICLE_GRID, Grid
from gdscope.problem.testfunctions import TestFunction

__all__ = ["Objective", "default_grid", "default_start"]

Objective = Union[LossSpec, TestFunction]  # noqa: UP007 (a runtime alias, Python 3.10 too)


def default_grid(objective: Objective, size: int = ARTICLE_GRID.w_size) -> Grid:
    """The article's grid for a regression loss, a test function's standard domain otherwise."""
    if isinstance(objective, TestFunction):
        vertical, horizontal = objective.domain
        return Grid(vertical, horizontal, size, size)
    return Grid(ARTICLE_GRID.w_range, ARTICLE_GRID.b_range, size, size)


def default_start(objective: Objective) -> tuple[float, float]:
    return objective.start if isinstance(objective, TestFunction) else ARTICLE_START
