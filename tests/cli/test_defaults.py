"""Each default is written once: the CLI's options, the configs, the library's keyword defaults and
the API's request models all read the same constant, so a copy that comes back (a literal 100 in
one of them) makes one of these differ as soon as the constant changes."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import pytest

from gdscope.cli.main import build_parser
from gdscope.engines.batched import run_batched
from gdscope.engines.reference import train
from gdscope.jobs.plotconfig import PlotConfig
from gdscope.jobs.studyconfig import CompareConfig, PhaseConfig, RunSettings
from gdscope.problem import grid, losses
from gdscope.problem.losses import LossSpec
from gdscope.server.models import LossModel, TrajectoryRequest
from gdscope.server.schema import schema
from gdscope.studies import phase, sweep
from gdscope.studies.phase import phase_diagram
from gdscope.studies.shootout import compare
from gdscope.studies.sweep import run_grid

COMMANDS = {
    "plot": ["plot", "--out", "x.png"],
    "sweep": ["sweep", "--vary", "lr=0.1,0.2", "--out", "x.png"],
    "phase": ["phase", "--x", "lr=0.1:0.2:2", "--y", "momentum=0:0.5:2", "--out", "x.png"],
    "compare": ["compare", "--out", "x.png"],
}


def _parsed(command: str) -> argparse.Namespace:
    return build_parser().parse_args(COMMANDS[command])


def _field(cls: type, name: str) -> Any:
    return next(f.default for f in fields(cls) if f.name == name)


def _keyword(function: Callable[..., Any], name: str) -> Any:
    return inspect.signature(function).parameters[name].default


@pytest.mark.parametrize("command", ["plot", "sweep", "phase", "compare"])
def test_epochs_and_loss_parameters_are_the_constants(command: str) -> None:
    ns = _parsed(command)
    assert getattr(ns, "epochs", grid.ARTICLE_EPOCHS) == grid.ARTICLE_EPOCHS  # compare: --budget
    assert ns.huber_delta == losses.HUBER_DELTA
    assert ns.smoothl1_beta == losses.SMOOTHL1_BETA


def test_epochs_everywhere_is_the_articles() -> None:
    expected = grid.ARTICLE_EPOCHS
    assert _field(PlotConfig, "epochs") == expected
    assert _field(RunSettings, "epochs") == expected
    for function in (train, run_batched, run_grid, phase_diagram):
        assert _keyword(function, "epochs") == expected, function.__name__
    assert TrajectoryRequest.model_fields["epochs"].default == expected
    assert schema()["defaults"]["epochs"] == expected


def test_loss_parameters_everywhere_are_the_losses() -> None:
    assert LossSpec() == LossSpec("mse", losses.HUBER_DELTA, losses.SMOOTHL1_BETA)
    assert LossModel.model_fields["delta"].default == losses.HUBER_DELTA
    assert LossModel.model_fields["beta"].default == losses.SMOOTHL1_BETA
    assert schema()["defaults"]["loss"]["delta"] == losses.HUBER_DELTA
    assert schema()["defaults"]["loss"]["beta"] == losses.SMOOTHL1_BETA


def test_phase_tol_and_chunk_are_the_studies() -> None:
    ns = _parsed("phase")
    assert ns.tol == _field(PhaseConfig, "tol") == _keyword(phase_diagram, "tol")
    assert ns.tol == phase.STEPS_TOL
    assert _field(PhaseConfig, "chunk") == _keyword(phase_diagram, "chunk") == sweep.GRID_CHUNK
    assert _keyword(run_grid, "chunk") == sweep.GRID_CHUNK
    phase_parser = build_parser()._subparsers._group_actions[0].choices["phase"]  # type: ignore[union-attr]
    chunk = next(a for a in phase_parser._actions if a.dest == "chunk")
    assert f"default {sweep.GRID_CHUNK}" in (chunk.help or "")


def test_compare_budget_and_starts_are_the_shootouts() -> None:
    ns = _parsed("compare")
    assert ns.budget == _field(CompareConfig, "budget") == _keyword(compare, "budget")
    assert ns.starts == _field(CompareConfig, "starts") == _keyword(compare, "starts")
    assert (ns.budget, ns.starts) == (sweep.COMPARE_BUDGET, sweep.COMPARE_STARTS)
