"""The one definition of "diverged" (problem.divergence): its bound and its two forms agree."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gdscope.errors import GdscopeError
from gdscope.problem.divergence import ESCAPE_FACTOR, Divergence, within
from gdscope.problem.losses import LossSpec
from gdscope.problem.testfunctions import FUNCTIONS, TestFunction


@pytest.mark.parametrize(
    ("objective", "bound"),
    [
        (LossSpec(), 8e6),  # the article's grid (-5, 8)²
        (LossSpec("huber", delta=0.5), 8e6),
        (TestFunction("saddle"), 3e6),
        (TestFunction("booth"), 1e7),
        (TestFunction("rastrigin"), 5.12e6),
        (TestFunction("rosenbrock"), 3e6),
    ],
)
def test_escape_bound_is_a_million_times_the_map(objective, bound):
    assert Divergence.of(objective).bound == bound
    assert ESCAPE_FACTOR == 1e6


def test_every_function_has_a_finite_bound_exact_in_float32():
    for name in FUNCTIONS:
        bound = Divergence.of(TestFunction(name)).bound
        assert math.isfinite(bound) and float(torch.tensor(bound, dtype=torch.float32)) == bound


def test_several_objectives_take_the_widest_bound():
    assert Divergence.of([LossSpec(), TestFunction("booth")]).bound == 1e7


class NoMap:
    """An objective without a default map (as a network's landscape)."""

    labels = ("y", "x")

    def default_grid(self, size: int = 101) -> None:
        raise GdscopeError("no default grid")


def test_an_objective_without_a_map_diverges_only_on_non_finite_values():
    test = Divergence.of(NoMap())  # type: ignore[arg-type]
    assert test.bound == math.inf
    assert test.point_ok(1e300, -1e300, 1.0)
    assert not test.point_ok(math.inf, 0.0, 1.0) and not test.point_ok(0.0, 0.0, math.nan)
    rows = torch.tensor([[math.inf, 0.0], [1e300, 0.0]], dtype=torch.float64)
    assert within(rows, torch.tensor(math.inf, dtype=torch.float64)).tolist() == [False, True]
    assert "non-finite" in test.describe()


@pytest.mark.parametrize(
    ("point", "ok"),
    [
        ((8e6, -8e6, 1e30), True),  # on the bound: not yet
        ((8e6 + 1, 0.0, 1.0), False),
        ((0.0, -8.000001e6, 1.0), False),
        ((math.nan, 0.0, 1.0), False),
        ((0.0, math.inf, 1.0), False),
        ((0.0, 0.0, math.inf), False),
        ((0.0, 0.0, math.nan), False),
        ((6.0, -3.0, 53.0), True),
    ],
)
def test_point_ok(point, ok):
    assert Divergence.of(LossSpec()).point_ok(*point) is ok


values = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.sampled_from(
    [8e6, -8e6, 8000000.5, 7999999.5, math.nextafter(8e6, math.inf)]
)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(values, values), min_size=1, max_size=8))
def test_the_tensor_form_agrees_with_the_scalar_form(rows):
    test = Divergence.of(LossSpec())
    for dtype in (torch.float32, torch.float64):
        params = torch.tensor(rows, dtype=dtype)
        expected = [test.point_ok(float(w), float(b), 0.0) for w, b in params.tolist()]
        assert test.params_ok(params).tolist() == expected


def test_reason_names_the_value():
    test = Divergence.of(TestFunction("saddle"))
    assert test.reason(("y", "x"), 3.1e6, 0.0, -9e12).startswith("|y| = 3.1e+06 is beyond")
    assert "escape bound 3e+06" in test.reason(("y", "x"), 3.1e6, 0.0, -9e12)
    assert test.reason(("Weight", "Bias"), 1.0, math.nan, 1.0) == "bias is nan"
    assert test.reason(("Weight", "Bias"), 1.0, 2.0, math.inf) == "the loss is inf"
