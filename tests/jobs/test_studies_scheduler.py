"""A network study with an LR scheduler: each copy follows a real torch.optim.lr_scheduler,
the record carries it, and replay re-makes the figure byte for byte."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gdscope.errors import GdscopeError
from gdscope.jobs.records import read_record
from gdscope.jobs.replay import replay
from gdscope.jobs.studies import make_phase, make_sweep
from gdscope.jobs.studyconfig import NetworkSpec, PhaseConfig, RunSettings, SweepConfig
from gdscope.jobs.studyfiles import Outputs
from gdscope.optim.specs import SchedulerSpec
from tests.jobs.test_studies_network import HERE, tiny_data, tiny_model

STEPS = 8
STEPLR = SchedulerSpec.of("steplr", step_size=3, gamma=0.5)
NETWORK = NetworkSpec(f"{HERE}:tiny_model", f"{HERE}:tiny_data", steps=STEPS, scheduler=STEPLR)
FLOAT64 = RunSettings(dtype="float64")


def torch_losses(lr: float, momentum: float) -> list[float]:
    """The ordinary training loop: a fresh model, torch.optim.SGD, torch's StepLR, the seeded
    shuffling DataLoader over the same data; each step's mini-batch loss."""
    net = tiny_model().double().train()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    data = tiny_data()
    x, y = (torch.cat(parts) for parts in zip(*data, strict=True))
    loader = DataLoader(TensorDataset(x.double(), y), batch_size=16, shuffle=True,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    losses: list[float] = []
    while len(losses) < STEPS:
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(net(xb), yb)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            if len(losses) == STEPS:
                break
    return losses


def test_each_copy_follows_torchs_scheduler(tmp_path):
    config = SweepConfig(("lr=0.3,0.8",), run=FLOAT64, network=NETWORK)
    run = make_sweep(config, Outputs(tmp_path / "s.png")).run
    for k, lr in enumerate((0.3, 0.8)):
        np.testing.assert_allclose(run.losses[k], torch_losses(lr, 0.0), rtol=1e-10, atol=0)
    unscheduled = SweepConfig(
        ("lr=0.3,0.8",),
        run=FLOAT64,
        network=NetworkSpec(**{**NETWORK.to_dict(), "scheduler": None}),
    )
    plain = make_sweep(unscheduled, Outputs(tmp_path / "plain.png")).run  # fmt: skip
    assert not np.allclose(plain.losses[1, 3:], run.losses[1, 3:])  # the schedule mattered


def test_the_record_carries_the_scheduler_and_replay_is_byte_identical(tmp_path):
    config = PhaseConfig("lr=0.1:1:3:log", "momentum=0,0.9", network=NETWORK, metric="final_loss")
    done = make_phase(config, Outputs(tmp_path / "p.png"))
    rec = read_record(tmp_path / "p.png")
    assert rec["config"]["network"]["scheduler"] == {"name": "steplr", "step_size": 3,
                                                     "gamma": 0.5}  # fmt: skip
    ran = rec["config"]["network"]  # with the chunk and strategy it ran with
    as_run = replace(NETWORK, chunk=ran["chunk"], strategy=ran["strategy"])
    assert PhaseConfig.from_dict(rec["config"]) == replace(config, network=as_run)
    assert replay(tmp_path / "p.png").read_bytes() == done.written[0].read_bytes()


def test_a_bad_scheduler_in_a_record_says_where():
    raw = {**NETWORK.to_dict(), "scheduler": {"name": "steplr", "gamma": 0.5}}
    with pytest.raises(GdscopeError, match="network: scheduler: StepLR"):
        NetworkSpec.from_dict(raw)
