from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gdscope.engines.reference import MAX_EPOCHS, train
from gdscope.errors import GdscopeError
from gdscope.optim.sgdconfig import SGDConfig
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.losses import LOSS_NAMES, LossSpec

from ..reference import ARTICLE_LOG, sgd_path
from .test_batched import HYPER, MIN_HORIZON, TORCH_OPTIMIZERS, loader_batches, name_of, torch_run
from .test_batched import losses as batched_losses


def test_golden_log(article_data):
    lines = train(article_data).log_lines()
    assert len(lines) == 100
    for epoch, line in ARTICLE_LOG.items():
        assert lines[epoch] == line


def torch_loop(data, loss_module, sgd_kwargs, epochs, start, dtype=torch.float32):
    """A plain torch training loop, written here independently of gdscope.engines.reference."""
    model = torch.nn.Linear(1, 1).to(dtype)
    model.weight.data.fill_(start[0])
    model.bias.data.fill_(start[1])
    opt = torch.optim.SGD(model.parameters(), **sgd_kwargs)
    x = torch.tensor(data.x, dtype=dtype).reshape(-1, 1)
    y = torch.tensor(data.y, dtype=dtype).reshape(-1, 1)
    path, losses = [(model.weight.item(), model.bias.item())], []
    for _ in range(epochs):
        opt.zero_grad()
        loss = loss_module(model(x), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
        path.append((model.weight.item(), model.bias.item()))
    return np.array(path), np.array(losses)


sgd_configs = st.builds(
    lambda lr, momentum, dampening, wd, nesterov, maximize: SGDConfig(
        lr=lr,
        momentum=momentum,
        dampening=0.0 if nesterov else dampening,
        weight_decay=wd,
        nesterov=nesterov and momentum > 0,
        maximize=maximize,
    ),
    lr=st.floats(0.0, 0.5),
    momentum=st.sampled_from([0.0, 0.5, 0.9]) | st.floats(0.0, 0.99),
    dampening=st.sampled_from([0.0, 0.8]) | st.floats(0.0, 1.0),
    wd=st.sampled_from([0.0, 2.0]) | st.floats(0.0, 3.0),
    nesterov=st.booleans(),
    maximize=st.booleans(),
)
losses = st.builds(
    LossSpec,
    name=st.sampled_from(LOSS_NAMES),
    delta=st.floats(0.1, 5.0),
    beta=st.floats(0.1, 5.0),
)
starts = st.tuples(st.floats(-5, 8), st.floats(-5, 8))


@settings(max_examples=40, deadline=None)
@given(sgd=sgd_configs, loss=losses, start=starts)
def test_float32_run_equals_a_plain_torch_loop(article_data, sgd, loss, start):
    run = train(article_data, loss=loss, sgd=sgd, epochs=30, start=start)
    path, values = torch_loop(article_data, loss.module(), sgd.kwargs(), 30, start)
    if run.diverged:
        k = run.diverged_at
        # diverged (problem.divergence): non-finite, or beyond the article's escape bound 8e6
        within = np.isfinite(path[k]).all() and np.abs(path[k]).max() <= 8e6
        assert not (within and (k == 30 or math.isfinite(values[k])))
        path, values = path[:k], values[:k]
    n = len(path)
    np.testing.assert_array_equal(run.path[:n], path)
    np.testing.assert_array_equal(run.losses[: len(values)], values[: run.n_finite])


@settings(max_examples=40, deadline=None)
@given(sgd=sgd_configs, loss=losses, start=starts)
def test_float64_run_matches_the_documented_sgd_algorithm(article_data, sgd, loss, start):
    run = train(article_data, loss=loss, sgd=sgd, epochs=40, start=start, dtype=torch.float64)
    path, values = sgd_path(
        article_data.x,
        article_data.y,
        loss=loss.name,
        delta=loss.delta,
        beta=loss.beta,
        epochs=40,
        start=start,
        **sgd.kwargs(),
    )
    bounded = np.all(np.abs(path) < 1e6, axis=1)
    n = int(np.argmin(bounded)) if not bounded.all() else len(path)
    assert not run.diverged or run.diverged_at >= n
    np.testing.assert_allclose(run.path[:n], path[:n], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(run.losses[:n], values[:n], rtol=1e-9, atol=1e-9)


def test_path_and_loss_shapes(article_data):
    run = train(article_data, epochs=7, start=(1.0, 2.0))
    assert run.path.shape == (8, 2)
    assert run.losses.shape == (8,)
    assert tuple(run.path[0]) == (1.0, 2.0)
    assert not run.diverged and run.n_finite == 8


def test_divergence_is_reported_at_the_first_step_beyond_the_escape_bound(article_data):
    run = train(article_data, sgd=SGDConfig(lr=2.0))
    path, values = torch_loop(article_data, torch.nn.MSELoss(), {"lr": 2.0}, 100, (6.0, -3.0))
    finite = (np.abs(path) <= 8e6).all(axis=1) & np.isfinite(np.append(values, 0.0))
    expected = int(np.argmin(finite))
    assert run.diverged and run.diverged_at == expected
    assert np.isnan(run.path[expected:]).all()
    assert np.isfinite(run.path[:expected]).all()
    assert run.final == tuple(path[expected - 1])


def test_no_divergence_on_the_article_run(article_data):
    assert train(article_data).diverged_at is None


@pytest.mark.parametrize("epochs", [0, -1, MAX_EPOCHS + 1, 2.5, True])
def test_bad_epochs(article_data, epochs):
    with pytest.raises(GdscopeError, match="epochs"):
        train(article_data, epochs=epochs)


@pytest.mark.parametrize("start", [(float("nan"), 0.0), (0.0, float("inf")), (1.0,)])
def test_bad_start(article_data, start):
    with pytest.raises(GdscopeError):
        train(article_data, start=start)


def test_momentum_buffer_is_torchs_own(article_data):
    run_ = train(article_data, optimizer=OptimizerSpec.of("sgd", lr=0.1, momentum=0.9), epochs=3,
                 dtype=torch.float64)  # fmt: skip
    model = torch.nn.Linear(1, 1, dtype=torch.float64)
    with torch.no_grad():
        model.weight.fill_(6.0)
        model.bias.fill_(-3.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.tensor(article_data.x, dtype=torch.float64).reshape(-1, 1)
    y = torch.tensor(article_data.y, dtype=torch.float64).reshape(-1, 1)
    for step in range(3):
        opt.zero_grad()
        torch.nn.MSELoss()(model(x), y).backward()
        opt.step()
        buf = [float(opt.state[p]["momentum_buffer"].reshape(-1)[0]) for p in model.parameters()]
        np.testing.assert_array_equal(run_.buffers[step + 1], buf)
    assert np.isnan(run_.buffers[0]).all()


@pytest.mark.parametrize("cls", TORCH_OPTIMIZERS, ids=name_of)
def test_every_optimizer_runs_as_a_plain_torch_loop_bit_for_bit(article_data, cls):
    @settings(max_examples=10, deadline=None)
    @given(config=HYPER[cls], loss=batched_losses, start=starts)
    def same(config, loss, start):
        steps = loader_batches(len(article_data.x), None, 0, 30)
        path, values = torch_run(cls, config, loss, article_data, start, steps, torch.float32)
        run = train(article_data, loss=loss, optimizer=OptimizerSpec.of(name_of(cls), **config),
                    epochs=30, start=start)  # fmt: skip
        n = min(run.n_finite, int(np.isfinite(path).all(axis=1).sum()))
        assert n > MIN_HORIZON
        np.testing.assert_array_equal(run.path[:n], path[:n])
        np.testing.assert_array_equal(run.losses[:n], values[:n])

    same()
