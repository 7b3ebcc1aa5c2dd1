from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gdscope.errors import GdscopeError
from gdscope.problem.losses import LOSS_NAMES, LossSpec
from gdscope.problem.maps import (
    Grid,
    loss_and_gradient,
    loss_map,
    loss_map_pointwise,
)


def article_loss_map(loss_fn, x, y):
    """The article's get_loss_map, verbatim in logic (rows reversed for its imshow)."""
    losses = [[0.0] * 101 for _ in range(101)]
    x = torch.from_numpy(x.copy())
    y = torch.from_numpy(y.copy())
    for wi in range(101):
        for wb in range(101):
            w = -5.0 + 13.0 * wi / 100.0
            b = -5.0 + 13.0 * wb / 100.0
            losses[wi][wb] = loss_fn(x * w + b, y).item()
    return list(reversed(losses))


def test_article_grid_matches_the_articles_own_loop_exactly(article_data):
    expected = np.array(article_loss_map(torch.nn.MSELoss(), article_data.x, article_data.y))
    ours = loss_map(article_data, LossSpec("mse")).values.numpy()
    # The article reversed its rows for imshow; ours keep weight increasing with the row index.
    np.testing.assert_array_equal(ours[::-1], expected.astype(np.float32))


@pytest.mark.parametrize("name", LOSS_NAMES)
@settings(max_examples=10, deadline=None)
@given(
    delta=st.floats(0.05, 5),
    beta=st.floats(0.0, 5),
    w_lo=st.floats(-20, 5),
    w_span=st.floats(0.1, 30),
    b_lo=st.floats(-20, 5),
    b_span=st.floats(0.1, 30),
    w_size=st.integers(2, 13),
    b_size=st.integers(2, 13),
)
def test_vectorized_equals_one_torch_loss_call_per_point(
    article_data, name, delta, beta, w_lo, w_span, b_lo, b_span, w_size, b_size
):
    grid = Grid((w_lo, w_lo + w_span), (b_lo, b_lo + b_span), w_size, b_size)
    loss = LossSpec(name, delta=delta, beta=beta)
    fast = loss_map(article_data, loss, grid).values
    slow = loss_map_pointwise(article_data, loss, grid).values
    assert fast.shape == (w_size, b_size)
    # one rounding per term of a 50-term mean, added in another order: a few eps of float32
    eps = torch.finfo(torch.float32).eps
    torch.testing.assert_close(fast, slow, rtol=16 * eps, atol=8 * eps)


def test_float64_and_blocked_evaluation(article_data, monkeypatch):
    import gdscope.problem.maps as module

    grid = Grid((-3, 4), (-2, 6), 17, 9)
    whole = loss_map(article_data, LossSpec("huber", delta=0.5), grid, dtype=torch.float64)
    monkeypatch.setattr(module, "_BLOCK_ELEMENTS", 50 * 9 * 2)  # two weight rows per block
    blocked = loss_map(article_data, LossSpec("huber", delta=0.5), grid, dtype=torch.float64)
    assert whole.values.dtype == torch.float64
    torch.testing.assert_close(whole.values, blocked.values, rtol=0, atol=0)


def test_grid_coordinates_and_pixel_centred_extent():
    grid = Grid((-5, 8), (-5, 8), 101, 101)
    assert grid.weights[0] == -5 and grid.weights[-1] == 8
    assert grid.weights[50] == pytest.approx(1.5)
    left, right, bottom, top = grid.extent
    assert (left, right) == pytest.approx((-5.065, 8.065))
    assert (bottom, top) == pytest.approx((-5.065, 8.065))


def test_argmin_and_effective_objective(article_data):
    grid = Grid((-2, 3), (-1, 4), 41, 31)
    plain = loss_map(article_data, LossSpec("mse"), grid, dtype=torch.float64)
    wd = 2.0
    effective = plain.with_weight_decay(wd)
    w, b = np.meshgrid(grid.weights, grid.biases, indexing="ij")
    np.testing.assert_allclose(
        effective.values.numpy(), plain.values.numpy() + wd / 2 * (w**2 + b**2), rtol=1e-12
    )
    i, j = np.unravel_index(np.argmin(effective.values.numpy()), effective.values.shape)
    assert effective.argmin()[:2] == (grid.weights[i], grid.biases[j])
    assert effective.effective and not plain.effective
    assert plain.with_weight_decay(0.0) is plain


def test_argmin_is_the_smallest_finite_value_and_refused_without_one():
    from gdscope.problem.maps import Landscape

    grid = Grid((0, 2), (0, 3), 3, 4)
    values = torch.arange(12, dtype=torch.float64).reshape(3, 4) - 20.0
    values[0, :3] = torch.nan  # torch.argmin would pick the first NaN
    values[0, 3] = -torch.inf
    plain = Landscape(grid, values, LossSpec("mse"))
    assert plain.argmin() == (grid.weights[1], grid.biases[0], -16.0)
    blank = Landscape(grid, torch.full((3, 4), torch.nan), LossSpec("mse"))
    assert not blank.any_finite and plain.any_finite
    with pytest.raises(GdscopeError, match="no finite value"):
        blank.argmin()


def test_effective_minimum_is_where_sgd_with_weight_decay_converges(article_data):
    from gdscope.engines.reference import train
    from gdscope.optim.sgdconfig import SGDConfig

    grid = Grid((-1, 2), (-1, 2), 301, 301)
    effective = loss_map(article_data, LossSpec("mse"), grid).with_weight_decay(2.0)
    run = train(article_data, sgd=SGDConfig(lr=0.1, weight_decay=2.0), epochs=2000)
    w, b, _ = effective.argmin()
    dw, db = grid.cell
    assert abs(run.final[0] - w) <= dw and abs(run.final[1] - b) <= db


@pytest.mark.parametrize(
    "kwargs",
    [
        {"w_size": 1},
        {"b_size": 4002},
        {"w_range": (1.0, 1.0)},
        {"b_range": (0.0, float("nan"))},
        {"w_size": 3.0},
    ],
)
def test_bad_grids(kwargs):
    with pytest.raises(GdscopeError):
        Grid(**kwargs)


def test_loss_and_gradient_match_autograd_through_nn_linear(article_data):
    model = torch.nn.Linear(1, 1, dtype=torch.float64)
    model.weight.data.fill_(1.5)
    model.bias.data.fill_(-0.5)
    x = torch.tensor(article_data.x, dtype=torch.float64).reshape(-1, 1)
    y = torch.tensor(article_data.y, dtype=torch.float64).reshape(-1, 1)
    value = torch.nn.L1Loss()(model(x), y)
    value.backward()
    ours, (gw, gb) = loss_and_gradient(article_data, LossSpec("l1"), 1.5, -0.5)
    assert ours == pytest.approx(value.item(), rel=1e-12)
    assert gw == pytest.approx(model.weight.grad.item(), rel=1e-12)
    assert gb == pytest.approx(model.bias.grad.item(), rel=1e-12)


@pytest.mark.parametrize("name", ["l1", "huber", "smoothl1"])
def test_find_minimum_polishes_within_its_cap_and_says_when_it_stops_short(name):
    import warnings

    from gdscope.problem.data import DataSpec, make_data
    from gdscope.problem.maps import MAX_COMPASS_MOVES, find_minimum

    data, loss = make_data(DataSpec()), LossSpec(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default cap is never reached on the article's data
        *_, value = find_minimum(data, loss, weight_decay=0.5, max_moves=MAX_COMPASS_MOVES)
    with pytest.warns(UserWarning, match=r"stopped after 3 moves with its step at"):
        short = find_minimum(data, loss, weight_decay=0.5, max_moves=3)
    assert np.isfinite(short).all() and short[2] >= value  # the best it found, not the minimum
    for bad in ({"weight_decay": -0.1}, {"weight_decay": float("nan")}, {"max_moves": 0}):
        with pytest.raises(GdscopeError):
            find_minimum(data, loss, **bad)
