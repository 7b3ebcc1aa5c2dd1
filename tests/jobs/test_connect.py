"""``jobs.connect``: checkpoints of either kind, files with records, replay, and the example."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gdscope.errors import GdscopeError
from gdscope.jobs.connect import (
    EXAMPLE,
    ConnectJob,
    ExampleSetup,
    load_network,
    make_connect,
    make_connect_example,
)
from gdscope.jobs.records import read_record
from gdscope.jobs.replay import replay
from gdscope.nets.curves import ConnectOptions

MODULE = """
import torch
from torch import nn


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def make_data():
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(40, 4, generator=generator)
    return x, (x[:, 0] > 0).long()
"""


@pytest.fixture
def netmod(tmp_path, monkeypatch):
    """A model module and two networks of it from different seeds, ``a.pt`` and ``b.pt``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "netmod.py").write_text(MODULE)
    for seed, name in ((1, "a.pt"), (2, "b.pt")):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
        torch.save(net.state_dict(), tmp_path / name)
    yield tmp_path
    import sys

    sys.modules.pop("netmod", None)


def make() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def test_a_state_dict_a_checkpoint_dict_and_an_unpickled_module_load_the_same(netmod):
    state = torch.load(netmod / "a.pt", weights_only=True)
    torch.save({"model_state_dict": state, "epoch": 3}, netmod / "dict.pt")
    whole = make()
    whole.load_state_dict(state)
    torch.save(whole, netmod / "module.pt")
    for name, unpickle in (("a.pt", False), ("dict.pt", False), ("module.pt", True)):
        loaded = load_network(make, netmod / name, unpickle=unpickle)
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items()), name


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "module",
            r"holds Python objects, not only tensors \(a saved nn\.Module\?\): pass "
            "unpickle",
        ),
        ("wide", r"0\.weight is \(9, 4\) in the file, \(8, 4\) in the model"),
        ("short", r"the model has 2\.weight, the file not"),
        ("extra", r"the file has extra, the model not"),
        ("text", "not a torch.save file"),
        ("missing", "does not exist"),
    ],
)
def test_a_file_that_does_not_fit_is_refused_in_one_line(netmod, content, message):
    file = netmod / "bad.pt"
    state = torch.load(netmod / "a.pt", weights_only=True)
    if content == "module":
        torch.save(make(), file)
    elif content == "wide":
        torch.save(nn.Sequential(nn.Linear(4, 9), nn.Tanh(), nn.Linear(9, 3)).state_dict(), file)
    elif content == "short":
        torch.save({k: v for k, v in state.items() if not k.startswith("2.")}, file)
    elif content == "extra":
        torch.save({**state, "extra": torch.zeros(1)}, file)
    elif content == "text":
        file.write_text("not a checkpoint")
    with pytest.raises(GdscopeError, match=message) as error:
        load_network(make, file)
    assert "\n" not in str(error.value)


def job(**options: object) -> ConnectJob:
    """A small job on ``netmod``'s two networks (paths relative to the current folder)."""
    curve = ConnectOptions(**{"epochs": 3, "points": 5, "grid": 4, "batch_size": 10, **options})
    return ConnectJob(model="netmod:make_model", data="netmod:make_data", a=Path("a.pt"),
                      b=Path("b.pt"), options=curve)  # fmt: skip


def test_make_connect_writes_the_figure_and_numbers_with_records_and_replays_them(netmod):
    made = make_connect(job(), netmod / "c.png", save=netmod / "c.json")
    assert [p.name for p in made.written] == ["c.json", "c.png"]
    saved = json.loads((netmod / "c.json").read_text())
    rec = read_record(netmod / "c.png")
    assert rec == saved["record"] and rec["kind"] == "connect"
    assert rec["job"]["a_sha256"] and rec["job"]["options"]["grid"] == 4
    result = made.result
    assert saved["line_loss"] == result.line_loss.tolist()
    assert saved["line_max"] == result.line_max and saved["curve_max"] == result.curve_max
    assert np.array(saved["plane"]["loss"]).shape == (4, 4)
    again = replay(netmod / "c.png", netmod / "r.png")
    assert again.read_bytes() == (netmod / "c.png").read_bytes()


def test_replay_refuses_a_checkpoint_that_changed(netmod):
    make_connect(job(), netmod / "c.png")
    torch.save(make().state_dict(), netmod / "b.pt")
    with pytest.raises(GdscopeError, match=r"b\.pt has changed since the figure was made"):
        replay(netmod / "c.png", netmod / "r.png")


def test_existing_outputs_are_refused_before_any_work(netmod):
    (netmod / "c.png").write_bytes(b"mine")
    with pytest.raises(GdscopeError, match="already exists; pass force=True"):
        make_connect(job(), netmod / "c.png")
    assert (netmod / "c.png").read_bytes() == b"mine"
    assert make_connect(job(), netmod / "c.png", force=True).written


def test_the_job_goes_to_a_dict_and_back(netmod):
    made = job(seed=4)
    assert ConnectJob.from_dict(made.to_dict()) == made
    with pytest.raises(GdscopeError, match="unknown field"):
        ConnectJob.from_dict({**made.to_dict(), "colour": 1})
    with pytest.raises(GdscopeError, match="threads must be a positive integer"):
        ConnectJob(model="m:f", data="d:f", a=made.a, b=made.b, threads=0)


SMALL = ExampleSetup(epochs=20, curve=ConnectOptions(epochs=20, lr=0.1, batch_size=64, grid=3))


def test_the_example_in_small_writes_both_networks_and_the_figure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines: list[str] = []
    made = make_connect_example(tmp_path / "ex", setup=SMALL, log=lines.append)
    names = sorted(p.name for p in (tmp_path / "ex").iterdir())
    assert names == ["a.pt", "b.pt", "connect.json", "connect.png"]
    assert lines[0] == "connect: training a digits MLP from seed 0 (20 epochs)"
    assert any(line.startswith("connect: epoch 20/20") for line in lines)
    result = made.result
    assert result.curve_max < result.line_max / 4
    rec = read_record(tmp_path / "ex" / "connect.png")
    assert rec["job"]["threads"] == 1
    with pytest.raises(GdscopeError, match="already exists"):
        make_connect_example(tmp_path / "ex", setup=SMALL, log=lines.append)


@pytest.mark.slow
def test_the_example_connects_two_digits_networks_well_below_the_lines_barrier(tmp_path):
    """``gdscope example connect`` as it runs. Measured (2-core VM, load ~12, one torch
    thread): the line's highest loss 0.347, the curve's 0.0083, the ends' 0.00045; 7 s on a
    quieter machine, 32 s at load 13."""
    lines: list[str] = []
    made = make_connect_example(tmp_path, log=lines.append)
    result = made.result
    print(f"line {result.line_max:.4g}, curve {result.curve_max:.4g}, ends "
          f"{max(result.line_loss[0], result.line_loss[-1]):.4g}")  # fmt: skip
    assert result.options == EXAMPLE.curve
    assert result.line_max > 0.2
    assert result.curve_max < result.line_max / 20
    assert result.barrier("curve") < result.barrier("line") / 20
    again = replay(tmp_path / "connect.png", tmp_path / "replayed.png")
    assert again.read_bytes() == (tmp_path / "connect.png").read_bytes()
