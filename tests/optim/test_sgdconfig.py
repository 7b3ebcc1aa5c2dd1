from __future__ import annotations

import pytest
import torch

from gdscope.errors import GdscopeError
from gdscope.optim.sgdconfig import SGDConfig

# Configurations torch.optim.SGD itself refuses: ours must refuse them too.
TORCH_REJECTS = [
    {"lr": -0.1},
    {"momentum": -0.5},
    {"weight_decay": -1.0},
    {"momentum": 0.0, "nesterov": True},
    {"momentum": 0.9, "dampening": 0.5, "nesterov": True},
]
# Refused by gdscope although torch accepts them: nonsense that silently changes the maths.
GDSCOPE_ALSO_REJECTS = [
    {"dampening": -0.1},
    {"lr": float("nan")},
    {"momentum": float("inf")},
    {"weight_decay": float("nan")},
    {"nesterov": "yes"},
]


@pytest.mark.parametrize("kwargs", TORCH_REJECTS)
def test_rejects_what_torch_rejects(kwargs):
    param = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError):
        torch.optim.SGD([param], **{"lr": 0.1, **kwargs})
    with pytest.raises(GdscopeError):
        SGDConfig(**kwargs)


@pytest.mark.parametrize("kwargs", GDSCOPE_ALSO_REJECTS)
def test_rejects_non_finite_and_negative(kwargs):
    with pytest.raises(GdscopeError):
        SGDConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"momentum": 0.9, "nesterov": True},
        {"lr": 0.0},
        {"momentum": 0.9, "dampening": 0.8},
        {"weight_decay": 2.0, "maximize": True},
    ],
)
def test_accepts_what_torch_accepts(kwargs):
    config = SGDConfig(**kwargs)
    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], **config.kwargs())


def test_kwargs_cover_the_signature():
    assert set(SGDConfig().kwargs()) == {
        "lr",
        "momentum",
        "dampening",
        "weight_decay",
        "nesterov",
        "maximize",
    }


def test_describe():
    assert SGDConfig().describe() == "lr=0.1"
    assert SGDConfig(momentum=0.9, nesterov=True).describe() == "lr=0.1, momentum=0.9, nesterov"


def test_defaults_are_torchs_and_the_batched_rules():
    """One set of defaults: the batched rules' (``TRANSFORMS["sgd"]``), which are torch's."""
    import inspect

    from gdscope.optim.rules import TRANSFORMS

    signature = inspect.signature(torch.optim.SGD).parameters
    config = SGDConfig().kwargs()
    rules = {name: param.default for name, param in TRANSFORMS["sgd"].params.items()}
    assert set(config) == set(rules)
    for name, value in config.items():
        if name != "lr":  # the article's 0.1, not torch's 1e-3
            assert value == rules[name] == signature[name].default, name
    assert rules["lr"] == signature["lr"].default


def test_nesterov_rule_is_worded_once():
    from gdscope.optim.rules import NESTEROV_RULE, make_hyper

    with pytest.raises(GdscopeError, match=f"^{NESTEROV_RULE} \\(got momentum=0, dampening=0\\)$"):
        SGDConfig(nesterov=True)
    with pytest.raises(GdscopeError, match=f"^configuration 1: {NESTEROV_RULE}$"):
        make_hyper("sgd", {"nesterov": True, "momentum": [0.9, 0.9], "dampening": [0.0, 0.5]}, 2)
