"""The ready trainer: what data it takes, and the model's modes afterwards."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gdscope.errors import GdscopeError
from gdscope.nets.fit import FitResult, fit

X = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] > 0).long()


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.1), nn.Linear(4, 2))


def _fit(model: nn.Module, data: object) -> FitResult:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return fit(model, data, nn.CrossEntropyLoss(), optimizer)


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ((X, Y), r"got one \(X, Y\) pair; pass \[\(X, Y\)\]"),
        ([{"x": X, "y": Y}], r"got a dict batch \(keys x, y\)"),
        ([(X, Y, torch.ones(32))], r"got a batch of 3 items \(Tensor, Tensor, Tensor\)"),
        (X, "got Tensor"),
    ],
)
def test_fit_refuses_what_is_not_batches_of_pairs_in_one_line(data, said):
    with pytest.raises(GdscopeError, match=r"fit takes an iterable of \(inputs, targets\) batches"):
        _fit(_model(), data)
    with pytest.raises(GdscopeError, match=said):
        _fit(_model(), data)


def test_fit_puts_every_modules_mode_back():
    model = _model()
    result = _fit(model, DataLoader(TensorDataset(X, Y), batch_size=8))
    assert len(result.losses) == 4 and model.training and model[1].training  # as it was: train
    model.eval()
    model[2].train()  # a mix: eval, with one module in train mode
    _fit(model, [(X, Y)])
    assert [m.training for m in model] == [False, False, True, False] and not model.training
    with pytest.raises(GdscopeError):  # a batch refused mid-way: the modes are back all the same
        _fit(model, [(X, Y), {"x": X}])
    assert [m.training for m in model] == [False, False, True, False]
