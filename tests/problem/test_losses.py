from __future__ import annotations

import pytest
import torch

from gdscope.errors import GdscopeError
from gdscope.problem.losses import LOSS_NAMES, LossSpec


@pytest.mark.parametrize(
    ("spec", "module"),
    [
        (LossSpec("mse"), torch.nn.MSELoss()),
        (LossSpec("l1"), torch.nn.L1Loss()),
        (LossSpec("huber", delta=0.3), torch.nn.HuberLoss(delta=0.3)),
        (LossSpec("smoothl1", beta=2.5), torch.nn.SmoothL1Loss(beta=2.5)),
    ],
)
def test_modules_and_elementwise_agree_with_torch(spec, module):
    torch.manual_seed(0)
    p, t = torch.randn(64) * 3, torch.randn(64)
    assert type(spec.module()) is type(module)
    torch.testing.assert_close(spec.module()(p, t), module(p, t))
    torch.testing.assert_close(spec.elementwise()(p, t).mean(), module(p, t))


def test_aliases_and_titles():
    assert LossSpec("MSELoss").name == "mse"
    assert LossSpec("smooth_l1").name == "smoothl1"
    assert LossSpec("huber", delta=2).title == "HuberLoss(delta=2)"


def test_unknown_and_out_of_range():
    with pytest.raises(GdscopeError, match="unknown loss"):
        LossSpec("hinge")
    with pytest.raises(GdscopeError):
        LossSpec("huber", delta=0.0)
    with pytest.raises(GdscopeError):
        LossSpec("smoothl1", beta=-1.0)


def test_huber_one_is_smoothl1_one():
    torch.manual_seed(1)
    p, t = torch.randn(200) * 4, torch.randn(200)
    huber, smooth = LossSpec("huber"), LossSpec("smoothl1")
    torch.testing.assert_close(huber.module()(p, t), smooth.module()(p, t), rtol=0, atol=0)
    assert huber.same_function_as(smooth)
    other = LossSpec("huber", delta=2.0)
    assert not other.same_function_as(smooth)
    assert (other.module()(p, t) - smooth.module()(p, t)).abs() > 1e-3


def test_every_name_builds():
    for name in LOSS_NAMES:
        LossSpec(name).module()
