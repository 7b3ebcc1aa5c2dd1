"""The curvature jobs: the spectrum's record round trip, the edge-of-stability example (its
sharpness settles at 2/η), replay of both."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gdscope.errors import GdscopeError
from gdscope.jobs.hessian import HessianJob, draw_sharpness, make_eos
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
    out = make_eos(tmp_path / "eos", rates=(0.4,), steps=200, every=50, log=lambda _: None)
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
def test_full_batch_gd_settles_at_the_edge_of_stability(tmp_path):
    lr = 0.4  # the network starts at a sharpness near 4.2, below 2/η = 5
    (_, trace, losses), = make_eos(tmp_path, rates=(lr,), steps=3000, every=50,
                                   log=lambda _: None).runs  # fmt: skip
    assert trace.values[0, 0] < 0.9 * 2 / lr
    settled = trace.values[len(trace.values) // 2 :, 0]
    assert np.median(settled) == pytest.approx(2 / lr, rel=0.05)
    assert np.all(settled < 1.15 * 2 / lr)
    assert np.any(np.diff(losses[1000:]) > 0)  # at the edge the loss is not monotone


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
