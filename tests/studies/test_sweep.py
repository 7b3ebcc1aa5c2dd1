"""Grid runs on a test function save in every format, through the CLI, in-process."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from gdscope.cli.main import main

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
