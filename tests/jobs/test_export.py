"""Saved paths (.csv, .json, .npz) hold exactly the trajectories torch computed."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from gdscope.engines.reference import train
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.data import make_data
from gdscope.problem.losses import LossSpec
from gdscope.problem.testfunctions import TestFunction

from ..reference import run


def test_plot_save_csv_rows_match_the_trajectories(tmp_path, capsys):
    out, save = tmp_path / "p.png", tmp_path / "p.csv"
    assert run(capsys, "plot", "--loss", "mse", "l1", "--epochs", "7", "--momentum", "0.9",
               "--grid-size", "11", "--out", out, "--save", save)[0] == 0  # fmt: skip
    rows = list(csv.DictReader(save.open()))
    assert len(rows) == 2 * 8
    data = make_data()
    for k, loss in enumerate(("mse", "l1")):
        ref = train(data, loss=LossSpec(loss),
                    optimizer=OptimizerSpec.of("sgd", lr=0.1, momentum=0.9), epochs=7)  # fmt: skip
        mine = [r for r in rows if r["run"] == str(k)]
        np.testing.assert_array_equal([float(r["weight"]) for r in mine], ref.weights)
        np.testing.assert_array_equal([float(r["loss"]) for r in mine], ref.losses)
        buffers = [float(r["buffer_bias"]) for r in mine[1:]]
        np.testing.assert_array_equal(buffers, ref.buffers[1:, 1])


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_train_save_json_and_npz(tmp_path, capsys, suffix):
    save = tmp_path / f"t{suffix}"
    assert run(capsys, "train", "--function", "booth", "--epochs", "5", "--save", save)[0] == 0
    ref = train(None, loss=TestFunction("booth"), optimizer=OptimizerSpec.of("sgd", lr=0.05),
                epochs=5)  # fmt: skip
    if suffix == ".json":
        payload = json.loads(save.read_text())
        assert payload["runs"][0]["objective"] == "Booth"
        assert [p["loss"] for p in payload["points"]] == pytest.approx(ref.losses.tolist())
    else:
        arrays = np.load(save)
        np.testing.assert_array_equal(arrays["run0_path"], ref.path)
    assert run(capsys, "train", "--epochs", "5", "--save", save)[0] == 2


def test_the_header_is_the_same_record_in_json_and_npz(tmp_path, capsys):
    """Both files open with one record (kind, version, the plot's config, the runs), written
    the one way gdscope writes records: the same bytes in each."""
    from gdscope.jobs.records import record
    from gdscope.version import __version__

    saved = {}
    for suffix in (".json", ".npz"):
        save = tmp_path / f"p{suffix}"
        args = ("plot", "--loss", "mse", "--epochs", "3", "--out", tmp_path / f"p{suffix}.png")
        assert run(capsys, *args, "--save", save)[0] == 0
        if suffix == ".json":
            payload = json.loads(save.read_text())
            payload.pop("points")
            saved[suffix] = payload
        else:
            saved[suffix] = json.loads(str(np.load(save)["meta"]))
    assert saved[".json"] == saved[".npz"]
    header = saved[".json"]
    assert (header["kind"], header["gdscope"]) == ("export", __version__)
    assert header["config"]["epochs"] == 3 and header["runs"][0]["epochs"] == 3
    assert set(header) == set(record("export", config=None, runs=[]))
