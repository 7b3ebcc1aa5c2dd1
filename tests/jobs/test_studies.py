from __future__ import annotations

import json

import pytest

from gdscope.errors import GdscopeError
from gdscope.jobs import studies
from gdscope.jobs.records import read_record
from gdscope.jobs.replay import replay
from gdscope.jobs.studyconfig import CompareConfig, PhaseConfig, Problem, RunSettings, SweepConfig
from gdscope.jobs.studyfiles import Outputs
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.data import DataSpec
from gdscope.problem.maps import Grid
from gdscope.problem.testfunctions import TestFunction

SMALL = Problem(grid=Grid((-5.0, 8.0), (-5.0, 8.0), 11, 11))
SHORT = RunSettings(epochs=8, start=(5.0, -2.0))
CONFIGS = {
    "sweep": SweepConfig(("lr=0.01,0.1",), SMALL, SHORT, log=True),
    "phase": PhaseConfig(
        "lr=0.05:1:4:log", "momentum=0,0.5", SMALL, SHORT, metric="final_loss", mark=(0.1, 0.0)
    ),
    "compare": CompareConfig(
        ("sgd", "adam"), SMALL, budget=10, starts=2, tune=("lr=0.01:1:3:log",)
    ),
}
MAKE = {kind: getattr(studies, f"make_{kind}") for kind in CONFIGS}


@pytest.mark.parametrize(("kind", "fmt"), [("sweep", "png"), ("phase", "svg"), ("compare", "pdf")])
def test_a_study_file_replays_to_the_same_bytes(tmp_path, kind, fmt):
    config = CONFIGS[kind]
    out = MAKE[kind](config, Outputs(tmp_path / f"a.{fmt}", dpi=60)).written[0]
    record = read_record(out)
    assert record["kind"] == kind and record["dpi"] == 60
    assert type(config).from_dict(record["config"]) == config
    assert replay(out).read_bytes() == out.read_bytes()


def test_configs_round_trip_through_json():
    other = SweepConfig(
        ("beta1=0.5,0.9",),
        Problem(TestFunction.of("quadratic", condition=10.0), DataSpec()),
        RunSettings(OptimizerSpec.of("adam", lr=0.05, betas=(0.8, 0.99)), batch_size=None),
    )
    for config in (*CONFIGS.values(), other):
        raw = json.loads(json.dumps(config.to_dict()))
        assert type(config).from_dict(raw) == config
    expected = other.run.optimizer.kwargs()
    assert expected.pop("betas") == (0.8, 0.99)
    assert other.run.fixed({"beta1"}) == {**expected, "beta2": 0.99}


def test_bad_records_say_where():
    raw = CONFIGS["sweep"].to_dict()
    with pytest.raises(GdscopeError, match=r"s\.png: unknown key"):
        SweepConfig.from_dict({**raw, "colour": 1}, where="s.png")
    with pytest.raises(GdscopeError, match="at most 64"):
        SweepConfig.from_dict({**raw, "vary": ["lr=0.1:1:9", "momentum=0:0.9:9"]})
    with pytest.raises(GdscopeError, match=r"^tune takes lr and momentum"):
        CompareConfig(("sgd",), tune=("eps=1,2",))


def test_a_ray_backend_for_a_2d_study_is_refused_in_the_librarys_words(tmp_path):
    from gdscope.jobs.studies import make_phase

    with pytest.raises(GdscopeError, match=r"^a Ray backend runs a network's study \(model\)"):
        make_phase(PhaseConfig("lr=0.1,1", "momentum=0,0.5"), Outputs(tmp_path / "p.png"),
                   backend=object())  # type: ignore[arg-type]  # fmt: skip
    assert list(tmp_path.iterdir()) == []
