from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from PIL import Image

from gdscope.cli.main import main
from gdscope.jobs.records import read_record


def test_phase_sweep_and_compare_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["phase", "--x", "lr=0.05:3:12:log", "--y", "momentum=0:0.9:6", "--out", "p.png",
                 "--save", "p.csv"]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    assert out.splitlines() == ["p.png", "p.csv"]
    assert "%|" not in err  # no progress bar when stderr is not a terminal
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert len(rows) == 2 + 72 and rows[1].startswith("cell,")
    assert main(["sweep", "--vary", "momentum=0,0.9", "--vary", "lr=0.05,0.2", "--out", "s.png",
                 "--grid-size", "31", "--save", "s.npz"]) == 0  # fmt: skip
    assert capsys.readouterr().out.splitlines() == ["s.png", "s.npz"]
    assert main(["compare", "--optimizers", "sgd,adam", "--tune", "lr=0.01:1:4:log", "--budget",
                 "20", "--starts", "2", "--out", "c.png", "--save", "c.json"]) == 0  # fmt: skip
    printed = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in printed[:2]] == ["optimizer=sgd", "optimizer=adam"]
    assert printed[2:] == ["c.png", "c.json"]
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["budget"] == 20 and saved["seed"] == 0 and len(saved["tried"]["adam"]) == 4
    for name, kind in (("p.png", "phase"), ("s.png", "sweep"), ("c.png", "compare")):
        assert Image.open(tmp_path / name).size[0] > 300
        assert read_record(tmp_path / name)["kind"] == kind


def test_ctrl_c_keeps_the_finished_cells_and_exits_130(tmp_path, monkeypatch, capsys):
    import gdscope.studies.sweep as sweep

    real, chunks = sweep.run_batched, itertools.count()

    def stop_at_the_second_chunk(*args, **kwargs):
        if next(chunks) == 1:
            raise KeyboardInterrupt  # as Ctrl-C would
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep, "run_batched", stop_at_the_second_chunk)
    out, save = tmp_path / "p.png", tmp_path / "p.npz"
    code = main(["phase", "--x", "lr=0.01:0.3:3", "--y", "momentum=0,0.5", "--chunk", "4",
                 "--epochs", "10", "--out", str(out), "--save", str(save)])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 130
    assert printed.out.splitlines() == [str(out), str(save)]
    assert printed.err == "gdscope: interrupted: kept 4 of 6 configurations\n"
    assert np.load(save)["completed"].tolist() == [True] * 4 + [False] * 2
    assert read_record(out)["interrupted"] == "kept 4 of 6 configurations"
    assert main(["replay", str(out)]) == 2  # its finished part cannot be made again as it was
    assert "p.png was cut short by Ctrl-C (kept 4 of 6 configurations)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["phase", "--x", "lr=", "--y", "momentum=0,1"], "--x must look like name=values"),
        (["phase", "--x", "lr=0.1,1", "--y", "momentum=0,0.5", "--lr", "5"],
         "lr is both varied and fixed"),
        (["sweep", "--vary", "lr=0.1,1", "--opt", "lr=3"], "lr is both varied and fixed"),
        (["phase", "--optimizer", "adam", "--x", "lr=0.1,1", "--y", "amsgrad=2,0"],
         "amsgrad takes true or false"),
        (["compare", "--tune", "lr=1,2", "--tune", "lr=3"], "--tune names lr more than once"),
        (["compare", "--tune", "eps=1,2"], "gdscope: error: --tune takes lr and momentum"),
        (["sweep", "--vary", "lr=0.1,1", "--save", "s.txt"], "error: --save takes a .npz"),
    ],
)  # fmt: skip
def test_contradictory_or_malformed_axes_are_one_line(tmp_path, monkeypatch, capsys, argv,
                                                      message):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--out", "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_varying_beta1_beside_a_fixed_beta2_is_allowed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["phase", "--optimizer", "adam", "--x", "lr=0.1,1", "--y", "beta1=0,0.5",
            "--opt", "betas=0.9,0.99", "--epochs", "3", "--out", "x.png"]  # fmt: skip
    assert main(argv) == 0


def test_compare_warns_in_one_line_when_a_winner_is_on_the_edge_and_draws_it(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import gdscope

    src = str(Path(gdscope.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (src, os.environ.get("PYTHONPATH")) if p)}  # fmt: skip
    # Adagrad's best rate on the article's problem is the top of the default grid, 1e-4 to 1.
    done = subprocess.run(
        [sys.executable, "-m", "gdscope", "compare", "--optimizers", "sgd,adagrad", "--out",
         "c.png"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = "adagrad: the best lr, 1, is the highest tried (0.0001 to 1): a better one may lie"
    assert done.stderr == f"gdscope: warning: {said} beyond the tuning grid\n"
    assert "optimizer=adagrad  lr=1.0" in done.stdout
    assert Image.open(tmp_path / "c.png").size[0] > 0
