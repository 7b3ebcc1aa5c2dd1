"""The optimizer table against the real torch.optim classes, and the CLI options built from it."""

from __future__ import annotations

import argparse
import inspect
from dataclasses import fields

import pytest
import torch

from gdscope.optim.rules import TORCH_PAIRS, torch_kwargs, torch_name
from gdscope.optim.sgdconfig import SGDConfig
from gdscope.optim.specs import OPTIMIZERS, OptimizerSpec
from gdscope.optim.table import OPTIMIZER_TABLE, add_optimizer_options, given_flags

# torch arguments that switch implementations and change no number.
SWITCHES = {"params", "foreach", "fused", "capturable", "differentiable"}
# Bounds gdscope keeps that torch does not check (a negative dampening is nonsense).
UNCHECKED_BY_TORCH = {("sgd", "dampening")}
ENTRIES = list(OPTIMIZER_TABLE.values())
BOUNDED = [
    (entry, hyper) for entry in ENTRIES for hyper in entry.hyperparameters if hyper.low is not None
]


def _torch_defaults(name: str) -> dict[str, object]:
    optimizer = OPTIMIZERS[name]([torch.nn.Parameter(torch.zeros(1))])
    return {k: v for k, v in optimizer.defaults.items() if k not in SWITCHES}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_the_table_holds_every_argument_of_the_torch_class_with_its_default(entry):
    assert entry.title == OPTIMIZERS[entry.name].__name__
    signature = set(inspect.signature(OPTIMIZERS[entry.name]).parameters) - SWITCHES
    assert {torch_name(h.name) for h in entry.hyperparameters} == signature
    torch_defaults = _torch_defaults(entry.name)
    for hyper in entry.hyperparameters:
        expected = torch_defaults[torch_name(hyper.name)]
        if isinstance(expected, tuple):  # betas: beta1, beta2
            expected = expected[TORCH_PAIRS[torch_name(hyper.name)].index(hyper.name)]
        assert hyper.default == expected
        assert isinstance(hyper.default, bool) == isinstance(expected, bool)
    for hyper in entry.hyperparameters:
        assert isinstance(hyper.default, bool) == (hyper.kind == "bool")


@pytest.mark.parametrize(
    ("entry", "hyper"), BOUNDED, ids=[f"{e.name}-{h.name}" for e, h in BOUNDED]
)
def test_bounds_are_torchs(entry, hyper):
    """Just outside a bound torch refuses the value (where torch checks it at all)."""
    assert hyper.low is not None
    outside = [hyper.low - 1e-3] + ([] if hyper.below is None else [hyper.below])
    inside = {h.name: h.default for h in entry.hyperparameters}
    for value in outside:
        kwargs = torch_kwargs(entry.name, {**inside, hyper.name: value})
        params = [torch.nn.Parameter(torch.zeros(1))]
        if (entry.name, hyper.name) in UNCHECKED_BY_TORCH:
            OPTIMIZERS[entry.name](params, **kwargs)
        else:
            with pytest.raises(ValueError):
                OPTIMIZERS[entry.name](params, **kwargs)
    low, high = hyper.span
    assert hyper.low <= low < high and (hyper.below is None or high < hyper.below)


def test_the_table_is_the_batched_engine_s_optimizers_in_torch_s_names():
    assert next(iter(OPTIMIZER_TABLE)) == "sgd"
    assert set(OPTIMIZER_TABLE) <= set(OPTIMIZERS)


def test_sgd_starts_from_sgdconfig_and_flags_are_its_fields():
    sgd = OPTIMIZER_TABLE["sgd"]
    assert sgd.spec(sgd.defaults()) == SGDConfig().spec()
    flagged = {h.name for h in sgd.hyperparameters if h.flag is not None}
    assert flagged == {f.name for f in fields(SGDConfig)}
    for entry in ENTRIES[1:]:
        assert [h.name for h in entry.hyperparameters if h.flag] == ["lr"]
        assert entry.defaults() == {h.name: h.default for h in entry.hyperparameters}


def test_spec_gives_torch_arguments_that_differ_from_torch_defaults():
    adam = OPTIMIZER_TABLE["adam"]
    assert adam.spec({"beta1": 0.8}) == OptimizerSpec.of("adam", lr=1e-3, betas=(0.8, 0.999))
    assert adam.spec({"decoupled_weight_decay": True, "weight_decay": 0.1}) == OptimizerSpec.of(
        "adam", lr=1e-3, weight_decay=0.1, decoupled_weight_decay=True
    )
    assert OPTIMIZER_TABLE["adamw"].spec({}) == OptimizerSpec.of("adamw", lr=1e-3)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_optimizer_options(parser.add_argument_group("optimizer"), number=float)
    return parser


def test_cli_options_come_from_the_table():
    parser = _parser()
    flags = {s for action in parser._actions for s in action.option_strings} - {"-h", "--help"}
    table = {h.flag for e in ENTRIES for h in e.hyperparameters if h.flag is not None}
    assert flags == table
    assert given_flags(parser.parse_args([])) == {}
    typed = parser.parse_args(
        ["--lr", "0.2", "--momentum", "0.9", "--nesterov", "--weight-decay", "0"]
    )  # fmt: skip
    assert given_flags(typed) == {"lr": 0.2, "momentum": 0.9, "nesterov": True, "weight_decay": 0}


def test_the_cli_accepts_every_flag_of_the_table():
    """Until the CLI builds its options with ``add_optimizer_options``, they must agree."""
    from gdscope.cli.main import build_parser

    plot = next(
        action.choices["plot"]
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    known = {s for action in plot._actions for s in action.option_strings}
    assert {h.flag for e in ENTRIES for h in e.hyperparameters if h.flag} <= known
