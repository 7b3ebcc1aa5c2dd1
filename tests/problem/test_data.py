from __future__ import annotations

import numpy as np
import pytest

from gdscope.errors import GdscopeError
from gdscope.problem.data import Dataset, DataSpec, make_data


def article_points(seed=20240215, n=50):
    """The article's own code, global seeding included."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        x = np.array(np.random.randn(n), dtype=np.float32)
        y = np.array(0.75 * x**2 + 1.0 * x + 2.0 + 0.3 * np.random.randn(n), dtype=np.float32)
    finally:
        np.random.set_state(state)
    return x, y


def test_article_points_bit_for_bit():
    x, y = article_points()
    data = make_data()
    assert data.x.dtype == np.float32 and data.y.dtype == np.float32
    np.testing.assert_array_equal(data.x, x)
    np.testing.assert_array_equal(data.y, y)
    assert len(data) == 50


def test_does_not_touch_global_numpy_state():
    before = np.random.get_state()[1].copy()
    make_data()
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_parameters_change_the_points():
    x, _ = article_points(seed=7, n=20)
    data = make_data(DataSpec(seed=7, n=20, quadratic=0.0, linear=2.0, constant=-1.0, noise=0.0))
    np.testing.assert_array_equal(data.x, x)
    np.testing.assert_allclose(data.y, 2.0 * x - 1.0, rtol=1e-6)


def test_points_are_read_only():
    data = make_data()
    with pytest.raises(ValueError):
        data.x[0] = 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": 0},
        {"n": 2.5},
        {"noise": -1.0},
        {"quadratic": float("nan")},
        {"seed": -1},
        {"linear": float("inf")},
        {"seed": 2**32},
    ],
)
def test_bad_specs_are_rejected(kwargs):
    with pytest.raises(GdscopeError):
        DataSpec(**kwargs)


def test_dataset_validation():
    with pytest.raises(GdscopeError, match="equal length"):
        Dataset(np.zeros(3), np.zeros(4))
    with pytest.raises(GdscopeError, match="non-finite"):
        Dataset(np.array([0.0, np.nan]), np.zeros(2))
