"""Mini-batch SGD: the reference engine is a real DataLoader loop; the batched engine matches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from gdscope.engines.batched import run_batched
from gdscope.engines.minibatch import batch_gradients, batch_indices
from gdscope.engines.reference import train
from gdscope.errors import GdscopeError
from gdscope.optim.rules import TRANSFORMS
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.losses import LossSpec

from .test_batched import MIN_HORIZON, TORCH_OPTIMIZERS, batches, check_against_torch, name_of


def loop(data, *, loss, batch_size, seed, epochs, lr, momentum, dtype=torch.float64):
    """The textbook loop: DataLoader(shuffle=True, generator), one step per batch."""
    model = torch.nn.Linear(1, 1, dtype=dtype)
    with torch.no_grad():
        model.weight.fill_(6.0)
        model.bias.fill_(-3.0)
    x = torch.tensor(data.x, dtype=dtype).reshape(-1, 1)
    y = torch.tensor(data.y, dtype=dtype).reshape(-1, 1)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    fn = loss.module()
    points = [(model.weight.item(), model.bias.item())]
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            fn(model(xb), yb).backward()
            opt.step()
            points.append((model.weight.item(), model.bias.item()))
    return np.array(points)


@given(
    batch=st.integers(1, 50),
    seed=st.integers(0, 2**31),
    loss=st.sampled_from(["mse", "l1", "huber", "smoothl1"]),
    momentum=st.sampled_from([0.0, 0.9]),
)
@settings(max_examples=20, deadline=None)
def test_reference_engine_is_the_textbook_loop(article_data, batch, seed, loss, momentum):
    spec = LossSpec(loss)
    expected = loop(article_data, loss=spec, batch_size=batch, seed=seed, epochs=3, lr=0.05,
                    momentum=momentum)  # fmt: skip
    run = train(article_data, loss=spec, optimizer=OptimizerSpec.of("sgd", lr=0.05,
                momentum=momentum), epochs=3, batch_size=batch, shuffle_seed=seed,
                dtype=torch.float64)  # fmt: skip
    assert run.steps == 3 * -(-50 // batch) == len(expected) - 1
    assert run.epochs == 3
    np.testing.assert_array_equal(run.path, expected)


@pytest.mark.parametrize("cls", TORCH_OPTIMIZERS, ids=name_of)
def test_every_optimizer_on_mini_batches_agrees_with_torch_optim_to_its_rounding(article_data,
                                                                                 cls):  # fmt: skip
    @settings(max_examples=10, deadline=None)
    @given(batch=batches(cls), size=st.integers(1, 50), seed=st.integers(0, 2**31))
    def agrees(batch, size, seed):
        per_epoch = -(-50 // size)
        epochs = max(2, -(-(MIN_HORIZON + 1) // per_epoch))  # at least MIN_HORIZON steps
        check_against_torch(article_data, cls, *batch, dtype=torch.float64, epochs=epochs,
                            batch_size=size, seed=seed)  # fmt: skip

    agrees()


@pytest.mark.parametrize("optimizer", sorted(TRANSFORMS))
@given(batch=st.integers(1, 50), seed=st.integers(0, 2**31))
@settings(max_examples=10, deadline=None)
def test_batched_engine_equals_reference_for_the_same_seed(article_data, batch, seed, optimizer):
    hyper = {"lr": 0.02, **({"momentum": 0.9} if optimizer == "sgd" else {})}
    ref = train(article_data, optimizer=OptimizerSpec.of(optimizer, **hyper), epochs=2,
                batch_size=batch, shuffle_seed=seed, dtype=torch.float64)  # fmt: skip
    ours = run_batched(article_data, optimizer, hyper, epochs=2, batch_size=batch,
                       shuffle_seed=seed, dtype=torch.float64).trajectory(0)  # fmt: skip
    np.testing.assert_allclose(ours.path, ref.path, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.losses, ref.losses, rtol=1e-10)
    np.testing.assert_allclose(ours.batch_losses[:-1], ref.batch_losses[:-1], rtol=1e-10)
    assert ours.steps_per_epoch == ref.steps_per_epoch


def test_different_seeds_give_different_paths_and_batch_order_is_dataloaders(article_data):
    a = train(article_data, epochs=1, batch_size=8, shuffle_seed=1)
    b = train(article_data, epochs=1, batch_size=8, shuffle_seed=2)
    assert not np.array_equal(a.path, b.path)
    order = batch_indices(50, 8, 1, 2)
    assert [len(i) for i in order] == [8] * 6 + [2] + [8] * 6 + [2]
    assert sorted(torch.cat(order[:7]).tolist()) == list(range(50))
    generator = torch.Generator().manual_seed(1)
    loader = DataLoader(range(50), batch_size=8, shuffle=True, generator=generator)
    again = [b for _ in range(2) for b in loader]
    assert all(torch.equal(x, y) for x, y in zip(order, again, strict=True))


def test_full_batch_size_equals_full_batch_descent(article_data):
    full = train(article_data, epochs=10, dtype=torch.float64)
    batch = train(article_data, epochs=10, batch_size=50, dtype=torch.float64)
    np.testing.assert_allclose(batch.path, full.path, rtol=1e-12)


def test_batch_gradients_average_to_the_full_gradient(article_data):
    run = train(article_data, epochs=2, batch_size=10, dtype=torch.float64)
    grads = batch_gradients(article_data, LossSpec("mse"), run, [0, 3, 7])
    assert grads.shape == (3, 5, 2)
    for row, i in enumerate([0, 3, 7]):
        w, b = run.path[i]
        p = torch.tensor([w, b], dtype=torch.float64, requires_grad=True)
        x = torch.tensor(article_data.x, dtype=torch.float64)
        y = torch.tensor(article_data.y, dtype=torch.float64)
        (full,) = torch.autograd.grad(torch.nn.MSELoss()(x * p[0] + p[1], y), p)
        # Equal batches of 10: the mean of the batch gradients is the full gradient.
        np.testing.assert_allclose(grads[row].mean(axis=0), full.numpy(), rtol=1e-10)
        assert grads[row].std(axis=0).max() > 0


def test_bad_batch_sizes(article_data):
    for bad, message in ((0, "positive"), (51, "larger than the data"), (2.5, "positive")):
        with pytest.raises(GdscopeError, match=message):
            train(article_data, batch_size=bad)
