"""The curvature jobs: the spectrum's record round trip, the edge-of-stability example (its
sharpness settles at 2/η), replay of both."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gdscope.errors import GdscopeError
from gdscope.jobs.hessian import EOS_RATES, EOS_STEPS, HessianJob, draw_sharpness, make_eos
from gdscope.jobs.records import read_record
from gdscope.jobs.replay import replay
from gdscope.nets.curvature import CurvatureOptions


def test_a_job_round_trips_through_its_record():
    options = CurvatureOptions(top=4, trace=True, samples=100, train=True)
    job = HessianJob(model="m:f", data="d:g", loss="mse", checkpoint=Path("w.pt"), double=True,
                     curvature=options)  # fmt: skip
    assert HessianJob.from_dict(json.loads(json.dumps(job.to_dict()))) == job
    with pytest.raises(GdscopeError, match="unknown field"):
        HessianJob.from_dict({**job.to_dict(), "colour": "red"})
    with pytest.raises(GdscopeError, match="top must be a positive integer"):
        HessianJob.from_dict({**job.to_dict(), "curvature": {"top": 0}})


def test_eos_example_writes_its_figure_and_curves_and_replays(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the example trains on one thread and puts the count back
    try:
        out = make_eos(tmp_path / "eos", rates=(0.4,), steps=200, every=50, log=lambda _: None)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    figure, curves = tmp_path / "eos" / "eos.png", tmp_path / "eos" / "eos.json"
    assert out.written == (curves, figure)
    rec = read_record(figure)
    assert rec["kind"] == "eos" and rec["rates"] == [0.4] and rec["steps"] == 200
    saved = json.loads(curves.read_text())
    assert saved["runs"][0]["sharpness"]["steps"] == [0, 50, 100, 150, 200]
    assert len(saved["runs"][0]["loss"]) == 200
    again = replay(figure)
    assert again.read_bytes() == figure.read_bytes()
    with pytest.raises(GdscopeError, match="already exists"):
        make_eos(tmp_path / "eos", rates=(0.4,), steps=10, every=5)


@pytest.mark.slow
def test_the_example_settles_at_the_edge_of_stability_at_every_rate(tmp_path):
    """The example itself, as ``gdscope example eos`` runs it: each rate starts below its edge
    2/η, and the median sharpness over the second half is within 5% of it."""
    out = make_eos(tmp_path, log=lambda _: None)
    assert [lr for lr, _, _ in out.runs] == list(EOS_RATES)
    for lr, trace, losses in out.runs:
        assert len(losses) == EOS_STEPS
        assert trace.values[0, 0] < 0.9 * 2 / lr
        settled = trace.values[len(trace.values) // 2 :, 0]
        assert np.median(settled) == pytest.approx(2 / lr, rel=0.05), lr
        assert np.all(settled < 1.25 * 2 / lr), lr
        assert np.any(np.diff(losses) > 0), lr  # a spike where the sharpness overshot


def test_draw_sharpness_needs_a_recorded_sharpness():
    from torch import nn

    from gdscope.nets.recorder import Recorder

    path = Recorder(nn.Linear(2, 1)).result()
    with pytest.raises(GdscopeError, match="no sharpness"):
        draw_sharpness([("run", path)])


def test_ctrl_c_during_eos_keeps_only_the_rates_that_finished(tmp_path, monkeypatch):
    import gdscope.interrupts as interrupts

    asked_since = []  # Ctrl-C 50 questions after the first run finished: mid second run

    def requested() -> bool:
        if asked_since:
            asked_since.append(1)
        return len(asked_since) > 50

    monkeypatch.setattr(interrupts, "requested", requested)
    out = make_eos(tmp_path / "eos", rates=(0.4, 0.3), steps=200, every=50,
                   log=lambda _: asked_since.append(1))  # fmt: skip
    assert [lr for lr, _, _ in out.runs] == [0.4]
    ((_, trace, losses),) = out.runs
    assert len(losses) == 200 and np.isfinite(trace.values).all()
    assert read_record(tmp_path / "eos" / "eos.png")["rates"] == [0.4]


def test_make_eos_refuses_a_file_where_its_folder_goes_before_any_work(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("x")
    with pytest.raises(GdscopeError, match=r"taken is a file, not a directory: .* cannot be"):
        make_eos(taken / "sub", rates=(0.1,), steps=2, log=lambda _: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_eos_on_the_digits_writes_its_own_files_and_replays(tmp_path):
    from tests.conftest import require

    require("sklearn.datasets")
    out = make_eos(tmp_path, data="digits", rates=(1.0,), steps=100, every=50,
                   log=lambda _: None)  # fmt: skip
    figure = tmp_path / "eos-digits.png"
    assert out.written == (tmp_path / "eos-digits.json", figure)
    rec = read_record(figure)
    assert rec["data"] == "digits" and rec["rates"] == [1.0]
    assert replay(figure).read_bytes() == figure.read_bytes()
    with pytest.raises(GdscopeError, match="unknown eos data 'cifar'; choose one of synthetic"):
        make_eos(tmp_path, data="cifar")


@pytest.mark.slow
def test_the_digits_settle_at_the_edge_of_stability_at_every_rate(tmp_path):
    """``gdscope example eos --data digits``: each rate starts below 2/η and its median
    sharpness over the second half is within 10% of it."""
    from gdscope.jobs.hessian import EOS_DATA, eos_median

    out = make_eos(tmp_path, data="digits", log=lambda _: None)
    assert [lr for lr, _, _ in out.runs] == list(EOS_DATA["digits"].rates)
    for lr, trace, _ in out.runs:
        assert trace.values[0, 0] < 0.9 * 2 / lr
        assert eos_median(trace) == pytest.approx(2 / lr, rel=0.1), lr
