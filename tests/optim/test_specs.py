from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from gdscope.engines.reference import train
from gdscope.errors import GdscopeError
from gdscope.optim.specs import (
    OPTIMIZERS,
    SCHEDULERS,
    OptimizerSpec,
    SchedulerSpec,
    momentum_argument,
    parse_assignments,
    parse_value,
)
from gdscope.problem.losses import LossSpec

KWARGS = {
    "sgd": {"lr": 0.05, "momentum": 0.5},
    "adam": {"lr": 0.1, "betas": (0.8, 0.95), "amsgrad": True},
    "adamw": {"lr": 0.1, "weight_decay": 0.1},
    "nadam": {"lr": 0.1},
    "radam": {"lr": 0.1},
    "rmsprop": {"lr": 0.01, "centered": True, "momentum": 0.3},
    "adagrad": {"lr": 0.5, "lr_decay": 0.01},
    "adadelta": {"lr": 1.0},
    "adamax": {"lr": 0.1},
    "asgd": {"lr": 0.05, "t0": 5.0},
    "rprop": {"lr": 0.01},
    "lbfgs": {"lr": 0.5, "max_iter": 4},
}


def reference(data, cls, kwargs, loss_module, epochs, start, scheduler=None):
    model = torch.nn.Linear(1, 1)
    model.weight.data.fill_(start[0])
    model.bias.data.fill_(start[1])
    opt = cls(model.parameters(), **kwargs)
    sched = scheduler(opt) if scheduler else None
    x = torch.tensor(data.x).reshape(-1, 1)
    y = torch.tensor(data.y).reshape(-1, 1)

    def closure():
        opt.zero_grad()
        loss = loss_module(model(x), y)
        loss.backward()
        return loss

    path = [(model.weight.item(), model.bias.item())]
    for _ in range(epochs):
        opt.step(closure)
        if sched:
            sched.step()
        path.append((model.weight.item(), model.bias.item()))
    return np.array(path)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_matches_a_plain_torch_loop(article_data, name):
    assert set(KWARGS) == set(OPTIMIZERS)
    spec = OptimizerSpec.of(name, **KWARGS[name])
    run = train(article_data, loss=LossSpec("huber"), optimizer=spec, epochs=25, start=(3.0, -1.0))
    expected = reference(
        article_data, OPTIMIZERS[name], KWARGS[name], torch.nn.HuberLoss(), 25, (3.0, -1.0)
    )
    np.testing.assert_allclose(run.path, expected, rtol=1e-6, atol=1e-7)
    assert not run.diverged


def test_scheduler_changes_the_lr_like_torch(article_data):
    sched = SchedulerSpec.of("steplr", step_size=5, gamma=0.5)
    run = train(article_data, optimizer=OptimizerSpec.of("sgd", lr=0.1), scheduler=sched, epochs=12)
    np.testing.assert_allclose(run.lrs[:12], [0.1] * 5 + [0.05] * 5 + [0.025] * 2)
    expected = reference(
        article_data,
        torch.optim.SGD,
        {"lr": 0.1},
        torch.nn.MSELoss(),
        12,
        (6.0, -3.0),
        scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5),
    )
    np.testing.assert_allclose(run.path, expected, rtol=1e-6)
    assert "StepLR" in run.label


def test_plateau_scheduler_gets_the_loss(article_data):
    sched = SchedulerSpec.of("reducelronplateau", patience=0, factor=0.5)
    run = train(article_data, optimizer=OptimizerSpec.of("sgd", lr=1.5), scheduler=sched, epochs=30)
    assert np.nanmin(run.lrs) < 1.5


def test_torch_errors_surface_as_one_line():
    with pytest.raises(GdscopeError, match="Invalid beta"):
        OptimizerSpec.of("adam", betas=(1.5, 0.9))
    with pytest.raises(GdscopeError, match="unknown argument"):
        OptimizerSpec.of("adam", momentum=0.9)
    with pytest.raises(GdscopeError, match="unknown optimizer"):
        OptimizerSpec.of("adamx")
    with pytest.raises(GdscopeError, match="unknown scheduler"):
        SchedulerSpec.of("warmup")
    with pytest.raises(GdscopeError):
        SchedulerSpec.of("steplr")  # step_size is required


def test_value_parsing():
    assert parse_value("0.9,0.99") == (0.9, 0.99)
    assert parse_value("true") is True
    assert parse_value("[20, 40]") == [20, 40]
    assert parse_value("3") == 3 and parse_value("1e-3") == 1e-3
    assert parse_assignments(["lr=0.1", "amsgrad=false"], what="--opt") == {
        "lr": 0.1,
        "amsgrad": False,
    }
    with pytest.raises(GdscopeError):
        parse_assignments(["lr"], what="--opt")


def test_l2_weight_decay_only_for_coupled_decay():
    assert OptimizerSpec.of("adam", weight_decay=0.5).l2_weight_decay == 0.5
    assert OptimizerSpec.of("adamw", weight_decay=0.5).l2_weight_decay == 0.0
    assert OptimizerSpec.of("sgd", lr=0.1).l2_weight_decay == 0.0


def test_schedulers_listed():
    assert {"steplr", "exponentiallr", "cosineannealinglr", "reducelronplateau"} <= set(SCHEDULERS)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("sgd", ("momentum", None)), ("rmsprop", ("momentum", None)),
     ("adam", ("betas", (0.9, 0.999))), ("adamax", ("betas", (0.9, 0.999))),
     ("nadam", ("betas", (0.9, 0.999))), ("adagrad", None), ("rprop", None), ("Adadelta", None)],
)  # fmt: skip
def test_how_an_optimizer_takes_momentum_is_read_from_torch(name, expected):
    assert momentum_argument(name) == expected
    if expected is not None:  # and torch's optimizer really takes it
        OPTIMIZERS[name.lower()]([torch.zeros(1, requires_grad=True)], **{expected[0]: (
            (0.5, 0.99) if expected[0] == "betas" else 0.5)})  # fmt: skip


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SchedulerSpec.of("steplr", step_size=0), "StepLR: integer modulo by zero"),
        (lambda: SchedulerSpec.of("cosineannealinglr", T_max=0), "CosineAnnealingLR: "),
        (lambda: SchedulerSpec.of("steplr", step_size=2, gamma=parse_value("nan")),
         "StepLR: gamma must be finite"),
        (lambda: SchedulerSpec.of("steplr", step_size=2, gamma="abc"),
         "StepLR: gamma takes a number, got 'abc'"),
        (lambda: OptimizerSpec.of("adam", betas=0.9),
         "Adam: betas takes 2 comma-separated values (default 0.9,0.999), got 0.9"),
    ],
)  # fmt: skip
def test_arguments_torch_would_fail_on_later_are_refused_now_naming_them(make, message):
    with pytest.raises(GdscopeError, match=re.escape(message)):
        make()


def test_non_finite_numbers_parse_as_floats():
    assert math.isnan(parse_value("nan")) and parse_value("-inf") == -math.inf


def test_l2_decay_is_elementwise_and_knows_decoupled_adam():
    from gdscope.optim.specs import l2_decay

    decay = np.array([0.0, 0.5, 0.25])
    np.testing.assert_array_equal(l2_decay("sgd", decay), decay)
    np.testing.assert_array_equal(l2_decay("adamw", decay), np.zeros(3))
    np.testing.assert_array_equal(
        l2_decay("adam", decay, np.array([False, True, False])), [0.0, 0.0, 0.25]
    )
    spec = OptimizerSpec.of("adam", weight_decay=0.5, decoupled_weight_decay=True)
    assert spec.l2_weight_decay == 0.0
    for name in ("lbfgs", "rprop"):  # no weight_decay argument at all
        assert OptimizerSpec.of(name, lr=0.5).l2_weight_decay == 0.0
