"""Grids of runs: axes, chunks, progress, interruption, saved results."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from gdscope.cli.main import main
from gdscope.errors import GdscopeError
from gdscope.studies.sweep import Axis, expand, pack_columns, run_grid, save_grid, unpack_columns


def test_axis_parsing():
    assert Axis.parse("lr=0.01:0.5:3").values == (0.01, 0.255, 0.5)
    log = Axis.parse("lr=1e-3:1:4:log")
    assert log.log and log.values == pytest.approx((1e-3, 1e-2, 1e-1, 1.0))
    assert Axis.parse("nesterov=false,true").values == (False, True)
    for bad in ["lr", "lr=", "lr=1:2", "lr=0:1:3:log", "lr=a,b", "lr=1:2:0", "lr=nan,1"]:
        with pytest.raises(GdscopeError):
            Axis.parse(bad)
    grid = expand([Axis("a", (1.0, 2.0)), Axis("b", (10.0, 20.0, 30.0))])
    assert grid["a"].tolist() == [1, 1, 1, 2, 2, 2] and grid["b"].tolist() == [10, 20, 30] * 2


def test_chunks_progress_and_save(article_data, tmp_path):
    seen = []
    axes = [Axis.parse("lr=0.01:0.3:5"), Axis.parse("momentum=0,0.9")]
    run = run_grid(article_data, "sgd", axes, fixed={"dampening": 0.1}, epochs=20, chunk=3,
                   progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    assert seen == [(0, 10), (3, 10), (6, 10), (9, 10), (10, 10)]  # the total first
    whole = run_grid(article_data, "sgd", axes, fixed={"dampening": 0.1}, epochs=20)
    np.testing.assert_array_equal(run.metrics["final_loss"], whole.metrics["final_loss"])
    for suffix in (".csv", ".json", ".npz"):
        path = save_grid(run, tmp_path / f"r{suffix}")
        with pytest.raises(GdscopeError, match="already exists"):
            save_grid(run, path)
    cells = json.loads((tmp_path / "r.json").read_text())["cells"]
    assert len(cells) == 10 and cells[9]["lr"] == 0.3 and cells[9]["momentum"] == 0.9
    assert cells[0]["dampening"] == pytest.approx(0.1)
    npz = np.load(tmp_path / "r.npz")
    np.testing.assert_array_equal(npz["metric_final_loss"], run.metrics["final_loss"])
    assert (tmp_path / "r.csv").read_text().splitlines()[1].startswith("cell,")


def test_interrupted_grid_keeps_finished_chunks(article_data, monkeypatch):
    import gdscope.studies.sweep as sweep

    real, calls = sweep.run_batched, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep, "run_batched", flaky)
    run = run_grid(article_data, "sgd", [Axis.parse("lr=0.01:0.3:6")], epochs=10, chunk=4)
    assert run.interrupted and run.completed.tolist() == [True] * 4 + [False] * 2
    assert np.isnan(run.grid("final_loss")[4:]).all()


_FORMATS = (".npz", ".csv", ".json")


def _description(path):
    """The run's description as ``save_grid`` wrote it."""
    if path.suffix == ".npz":
        with np.load(path) as archive:
            return json.loads(str(archive["description"]))
    if path.suffix == ".csv":
        with open(path, newline="") as handle:
            first = handle.readline()
            assert first.startswith("# ")
            rows = list(csv.reader(handle))
        assert rows[0][0] == "cell" and len(rows) > 1
        return json.loads(first[2:])
    raw = json.loads(path.read_text())
    assert raw["cells"]
    return raw


@pytest.mark.parametrize("suffix", _FORMATS)
def test_phase_of_a_test_function_saves(tmp_path, suffix, capsys):
    saved = tmp_path / f"p{suffix}"
    code = main(["phase", "--function", "booth", "--x", "lr=1e-3:0.5:3:log",
                 "--y", "momentum=0:0.9:2", "--epochs", "5", "--out", str(tmp_path / "p.png"),
                 "--save", str(saved)])  # fmt: skip
    assert code == 0 and (tmp_path / "p.png").stat().st_size > 0
    assert _description(saved)["loss"] == {"function": "booth"}


@pytest.mark.parametrize("suffix", _FORMATS)
def test_sweep_of_a_test_function_saves(tmp_path, suffix, capsys):
    saved = tmp_path / f"s{suffix}"
    out = str(tmp_path / "s.png")
    code = main(["sweep", "--function", "quadratic:condition=20", "--vary", "lr=0.05,0.2",
                 "--epochs", "5", "--out", out, "--save", str(saved)])  # fmt: skip
    assert code == 0 and (tmp_path / "s.png").stat().st_size > 0
    assert _description(saved)["loss"] == {"function": "quadratic", "condition": 20.0}


def test_compare_of_a_test_function_saves(tmp_path, capsys):
    saved = tmp_path / "c.json"
    code = main(["compare", "--function", "booth", "--optimizers", "sgd,adam",
                 "--tune", "lr=0.01:0.1:2:log", "--budget", "5", "--starts", "2",
                 "--out", str(tmp_path / "c.png"), "--save", str(saved)])  # fmt: skip
    assert code == 0 and (tmp_path / "c.png").stat().st_size > 0
    raw = json.loads(saved.read_text())
    assert raw["objective"] == {"function": "booth"} and raw["table"]


def test_a_regression_loss_is_saved_as_before(tmp_path, capsys):
    saved = tmp_path / "p.json"
    code = main(["phase", "--loss", "huber", "--huber-delta", "0.5", "--x", "lr=0.05,0.1",
                 "--y", "momentum=0,0.5", "--epochs", "5", "--out", str(tmp_path / "p.png"),
                 "--save", str(saved)])  # fmt: skip
    assert code == 0
    assert _description(saved)["loss"] == {"name": "huber", "delta": 0.5, "beta": 1.0}


def test_columns_packed_for_a_file_unpack_to_the_same_columns():
    options = {"lr": np.array([0.1, 0.2]), "nesterov": np.array([False, True])}
    metrics = {"final_loss": np.array([1.0, np.nan])}
    packed = pack_columns(options, metrics)
    assert len(packed) == 3
    back = unpack_columns({**packed, "completed": np.array([True, True])})
    assert back[0].keys() == options.keys() and back[1].keys() == metrics.keys()
    np.testing.assert_array_equal(back[1]["final_loss"], metrics["final_loss"])


def test_a_fixed_pair_beside_a_varied_half_is_merged_and_a_fixed_flag_checked_per_cell(
    article_data,
):
    run = run_grid(article_data, "adam", [Axis("beta2", (0.9, 0.99))],
                   fixed={"betas": (0.5, 0.999)}, epochs=2)  # fmt: skip
    np.testing.assert_array_equal(run.options["beta1"], [0.5, 0.5])
    np.testing.assert_array_equal(run.options["beta2"], [0.9, 0.99])
    assert run.fixed == {"beta1": 0.5}
    run = run_grid(article_data, "sgd", [Axis("momentum", (0.73, 0.84))],
                   fixed={"nesterov": True}, epochs=2)  # fmt: skip
    assert run.completed.all() and run.options["nesterov"].all()
