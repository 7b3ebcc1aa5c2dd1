"""The study jobs on the user's network: figures with their record, replay, saved cells."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gdscope.errors import GdscopeError
from gdscope.jobs.records import read_record
from gdscope.jobs.replay import replay
from gdscope.jobs.studies import make_compare, make_phase, make_sweep
from gdscope.jobs.studyconfig import (
    CompareConfig,
    NetworkSpec,
    PhaseConfig,
    RunSettings,
    SweepConfig,
)
from gdscope.jobs.studyfiles import Outputs
from gdscope.studies.phase import METRICS, NETWORK_METRICS

HERE = "tests.jobs.test_studies_network"


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))


def tiny_data() -> DataLoader:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(48, 2, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=16)


def empty_data() -> list:
    return []


def regression_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Float targets: a regression, where an accuracy means nothing."""
    generator = torch.Generator().manual_seed(2)
    return torch.randn(16, 2, generator=generator), torch.randn(16, 3, generator=generator)


def no_samples() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)


def not_a_model() -> str:
    return "a model"


NETWORK = NetworkSpec(f"{HERE}:tiny_model", f"{HERE}:tiny_data", val_data=f"{HERE}:tiny_data",
                      steps=6)  # fmt: skip


def test_network_metrics_are_in_the_one_list():
    assert set(NETWORK_METRICS) <= set(METRICS)


def test_phase_on_a_network_writes_figure_and_cells_and_replays_the_same_bytes(tmp_path):
    config = PhaseConfig("lr=0.01:3:4:log", "momentum=0,0.9", network=NETWORK,
                         metric="val_accuracy")  # fmt: skip
    done = make_phase(config, Outputs(tmp_path / "p.png", save=tmp_path / "p.npz"))
    assert [p.name for p in done.written] == ["p.png", "p.npz"]
    rec = read_record(tmp_path / "p.png")
    assert rec["kind"] == "phase" and rec["config"]["network"]["model"] == f"{HERE}:tiny_model"
    ran = rec["config"]["network"]  # the record says how it was trained: a replay does so too
    assert ran["strategy"] in ("vmap", "loop") and ran["chunk"] >= 8
    as_run = replace(NETWORK, chunk=ran["chunk"], strategy=ran["strategy"])
    assert PhaseConfig.from_dict(rec["config"]) == replace(config, network=as_run)
    again = replay(tmp_path / "p.png")
    assert again.read_bytes() == (tmp_path / "p.png").read_bytes()
    with np.load(tmp_path / "p.npz") as saved:
        assert saved["option_lr"].shape == (8,) and saved["losses"].shape == (8, 6)
        assert saved["completed"].all() and "metric_val_accuracy" in saved.files
        described = json.loads(str(saved["description"]))
    assert described["network"] == f"{HERE}:tiny_model" and described["steps"] == 6


def test_phase_json_and_csv_hold_each_cells_exact_configuration(tmp_path):
    config = PhaseConfig("lr=0.1,0.2", "momentum=0,0.5", network=NETWORK, metric="final_loss")
    make_phase(config, Outputs(tmp_path / "p.png", save=tmp_path / "p.json"))
    cells = json.loads((tmp_path / "p.json").read_text())["cells"]
    assert [(c["momentum"], c["lr"]) for c in cells] == [(0, 0.1), (0, 0.2), (0.5, 0.1), (0.5, 0.2)]
    assert all(c["nesterov"] is False and c["completed"] for c in cells)


def test_sweep_and_compare_on_a_network(tmp_path):
    sweep = SweepConfig(("lr=0.1,1",), network=NETWORK)
    assert [p.name for p in make_sweep(sweep, Outputs(tmp_path / "s.png")).written] == ["s.png"]
    assert read_record(tmp_path / "s.png")["config"]["network"]["steps"] == 6
    compare = CompareConfig(("sgd", "adam"), tune=("lr=0.01:1:3:log",), network=NETWORK,
                            run=RunSettings(), score="val_loss")  # fmt: skip
    done = make_compare(compare, Outputs(tmp_path / "c.png", save=tmp_path / "c.json"))
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["score"] == "val_loss" and len(saved["tried"]["adam"]) == 3
    assert {row["optimizer"] for row in saved["table"]} == {"sgd", "adam"}
    assert replay(tmp_path / "c.png").read_bytes() == done.written[0].read_bytes()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": f"{HERE}:not_a_model"}, "not nn.Module"),
        ({"data": f"{HERE}:empty_data"}, "no batches"),
        ({"model": "no_such_module:f"}, "cannot import"),
        ({"steps": 0}, r"^steps must be in 1\.\.1000000, got 0$"),
        ({"init": "random"}, "^init must be one of "),
        ({"strategy": "fast"}, "^strategy must be one of auto, vmap, loop, got 'fast'$"),
    ],
)
def test_bad_network_input_is_one_clear_error_and_writes_nothing(tmp_path, change, message):
    with pytest.raises(GdscopeError, match=message):
        spec = NetworkSpec(**{**NETWORK.to_dict(), **change})
        make_phase(PhaseConfig("lr=0.1,1", "momentum=0,0.5", network=spec),
                   Outputs(tmp_path / "p.png"))  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_a_metric_the_study_does_not_measure_is_refused():
    with pytest.raises(GdscopeError, match="not measured for a network"):
        PhaseConfig("lr=0.1,1", "momentum=0,0.5", network=NETWORK, metric="path_length")
    with pytest.raises(GdscopeError, match="not measured for a 2-D objective"):
        PhaseConfig("lr=0.1,1", "momentum=0,0.5", metric="val_loss")
    with pytest.raises(GdscopeError, match=r"^metric steps_to_target needs target LOSS$"):
        PhaseConfig("lr=0.1,1", "momentum=0,0.5", network=NETWORK, metric="steps_to_target")


def _strict(text: str) -> object:
    """``text`` parsed as strict JSON: NaN and Infinity refused, as ``JSON.parse`` does."""

    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_saved_study_files_are_strict_json_with_null_for_nan_and_inf(tmp_path):
    """Diverged cells' NaN/inf metrics and ∞ scores are written as null."""
    lr = "lr=0.1,1e8"  # lr 1e8: finite weights whose final loss is NaN
    phase = PhaseConfig(lr, "momentum=0,0.5", network=NETWORK, metric="final_loss")
    for suffix in (".json", ".csv", ".npz"):
        make_phase(phase, Outputs(tmp_path / f"p{suffix}.png", save=tmp_path / f"p{suffix}"))
    cells = _strict((tmp_path / "p.json").read_text())["cells"]  # type: ignore[index]
    assert any(cell["final_loss"] is None for cell in cells)
    _strict((tmp_path / "p.csv").read_text().splitlines()[0][2:])
    with np.load(tmp_path / "p.npz") as saved:
        _strict(str(saved["description"]))
    make_sweep(
        SweepConfig((lr,), network=NETWORK), Outputs(tmp_path / "s.png", save=tmp_path / "s.json")
    )
    assert any(c["final_loss"] is None for c in _strict((tmp_path / "s.json").read_text())["cells"])
    compare = CompareConfig(("sgd",), tune=(lr,), network=NETWORK, run=RunSettings())
    make_compare(compare, Outputs(tmp_path / "c.png", save=tmp_path / "c.json"))
    tried = _strict((tmp_path / "c.json").read_text())["tried"]["sgd"]  # type: ignore[index]
    assert [row["score"] is None for row in tried] == [False, True]


@pytest.mark.parametrize(
    ("val_data", "metric", "message"),
    [
        ("regression_data", "val_accuracy", "val_accuracy needs class labels"),
        ("no_samples", "val_loss", "the validation data has no batches"),
    ],
)
def test_validation_data_that_cannot_be_measured_is_refused_before_training(
    tmp_path, monkeypatch, val_data, metric, message
):
    import gdscope.studies.netstudy as netstudy

    monkeypatch.setattr(netstudy, "train_stacked", None)  # training would fail otherwise
    spec = NetworkSpec(**{**NETWORK.to_dict(), "val_data": f"{HERE}:{val_data}"})
    with pytest.raises(GdscopeError, match=message):
        make_phase(PhaseConfig("lr=0.1,1", "momentum=0,0.5", network=spec, metric=metric),
                   Outputs(tmp_path / "p.png"))  # fmt: skip
    assert list(tmp_path.iterdir()) == []
