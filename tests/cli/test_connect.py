"""``gdscope connect`` end to end: files with records, replay, Ctrl-C, resume, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from gdscope.cli.main import main
from gdscope.jobs.records import read_record

MODULE = """
import torch
from torch import nn


def make_model():
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def make_other():
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))


def make_data():
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(40, 4, generator=generator)
    return x, (x[:, 0] > 0).long()
"""

BASE = ["connect", "a.pt", "b.pt", "--model", "netcli:make_model", "--data", "netcli:make_data",
        "--epochs", "3", "--points", "5", "--grid", "4", "--batch-size", "10"]  # fmt: skip


@pytest.fixture
def netcli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "netcli.py").write_text(MODULE)
    for seed, name in ((1, "a.pt"), (2, "b.pt")):
        torch.manual_seed(seed)
        torch.save(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).state_dict(),
                   tmp_path / name)  # fmt: skip
    yield tmp_path
    import sys

    sys.modules.pop("netcli", None)


def test_connect_writes_the_figure_and_json_and_replays_them(netcli, capsys):
    assert main([*BASE, "--out", "c.png", "--save", "c.json"]) == 0
    printed = capsys.readouterr()
    assert printed.out.splitlines() == ["c.json", "c.png"]
    assert printed.err.splitlines()[-1].startswith("connect: highest loss along the straight")
    saved = json.loads((netcli / "c.json").read_text())
    assert saved["record"] == read_record(netcli / "c.png")
    assert saved["record"]["job"]["options"]["epochs"] == 3 and len(saved["t"]) == 5
    assert main(["replay", "c.png", "--out", "r.png"]) == 0
    assert (netcli / "r.png").read_bytes() == (netcli / "c.png").read_bytes()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"b.pt": "missing.pt"}, "cannot read missing.pt: No such file or directory"),
        ({"netcli:make_model": "netcli:make_other"},
         "a.pt does not fit the model: 0.weight is (8, 4) in the file, (5, 4) in the model"),
        ({"5": "1"}, "--points must be an integer ≥ 2, got 1"),
        ({"4": "300"}, "--grid must be at most 201, got 300"),
        ({"netcli:make_data": "netcli:nothing"}, "--data: netcli has no callable 'nothing'"),
    ],
    ids=["missing file", "wrong model", "bad --points", "bad --grid", "bad --data"],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_nothing_written(netcli, capsys, change, message):
    args = [change.get(arg, arg) for arg in BASE]
    code = main([*args, "--out", "c.png", "--save", "c.json"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err == f"gdscope: error: {message}\n"
    assert not list(netcli.glob("c.*"))


def test_bad_outputs_are_refused_before_any_work(netcli, capsys):
    for args, message in (
        (["--out", "c.png", "--save", "c.txt"], "--save takes a .json file, got 'c.txt'"),
        (["--out", "a.pt", "--force"], "unsupported figure format 'pt'"),
        (["--out", "c.png", "--save", "b.pt", "--force"], "--save takes a .json file"),
        (["--out", "c.png", "--resume", "a.pt"], "a.pt is a network the command reads"),
    ):
        assert main([*BASE, *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert not list(netcli.glob("c.*"))


def test_existing_outputs_are_refused_without_force(netcli, capsys):
    (netcli / "c.png").write_bytes(b"mine")
    assert main([*BASE, "--out", "c.png"]) == 2
    assert capsys.readouterr().err == ("gdscope: error: c.png already exists; pass --force to "
                                       "overwrite it\n")  # fmt: skip
    assert (netcli / "c.png").read_bytes() == b"mine"
    assert main([*BASE, "--out", "c.png", "--force"]) == 0
    assert read_record(netcli / "c.png")["kind"] == "connect"


def test_ctrl_c_while_measuring_keeps_the_points_measured_and_exits_130(netcli, capsys,
                                                                         monkeypatch):  # fmt: skip
    from gdscope import interrupts
    from gdscope.nets import curves

    real = curves._measure
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            interrupts._STATE.request.set()  # Ctrl-C while the second chunk is measured
        return real(*args, **kwargs)

    monkeypatch.setattr(curves, "_measure", interrupted)
    args = [*BASE, "--grid", "6"]  # 2·5 + 6·6 = 46 points: three chunks of 16 (runner.LOOP_CHUNK)
    code = main([*args, "--out", "c.png", "--save", "c.json"])
    printed = capsys.readouterr()
    assert code == 130
    assert printed.out.splitlines() == ["c.json", "c.png"]
    assert printed.err.splitlines()[-1] == "gdscope: interrupted: kept 32 of 46 points measured"
    saved = json.loads((netcli / "c.json").read_text())
    assert saved["unfinished"] == 14 and saved["plane"]["loss"][-1] == [None] * 6
    assert read_record(netcli / "c.png")["interrupted"].endswith("points measured")
    assert main(["replay", "c.png", "--out", "r.png"]) == 2
    assert "cut short by Ctrl-C" in capsys.readouterr().err


def test_ctrl_c_while_training_writes_nothing_and_resume_goes_on(netcli, capsys, monkeypatch):
    from gdscope import interrupts
    from gdscope.nets import curves

    real = curves.learning_rate

    def interrupted(options, epoch):
        if epoch == 2:
            interrupts._STATE.request.set()  # Ctrl-C as the third epoch starts
        return real(options, epoch)

    monkeypatch.setattr(curves, "learning_rate", interrupted)
    code = main([*BASE, "--out", "c.png", "--resume", "p.npz"])
    printed = capsys.readouterr()
    assert code == 130 and printed.out == ""
    assert printed.err.splitlines()[-1] == (
        "gdscope: interrupted: the curve trained for 2 of 3 epochs; p.npz keeps them (--resume "
        "goes on from there); nothing drawn")  # fmt: skip
    assert not (netcli / "c.png").exists() and (netcli / "p.npz").exists()
    monkeypatch.setattr(curves, "learning_rate", real)
    assert main([*BASE, "--out", "c.png", "--resume", "p.npz"]) == 0
    assert main([*BASE, "--out", "straight.png"]) == 0
    assert (netcli / "c.png").read_bytes() == (netcli / "straight.png").read_bytes()


def test_example_connect_refuses_the_options_it_has_no_use_for(tmp_path, capsys):
    code = main(["example", "connect", "--out", str(tmp_path / "e"), "--epochs", "5"])
    assert code == 2
    assert capsys.readouterr().err == "gdscope: error: --epochs does not apply to example connect\n"
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_in_example_connect_keeps_the_network_saved_before_it(tmp_path, capsys,
                                                                     monkeypatch):  # fmt: skip
    from gdscope import interrupts
    from gdscope.examples import digits
    from gdscope.jobs import connect

    def train(seed, setup):
        if seed == 0:
            return digits.make_model(seed)  # (untrained: only what is kept matters here)
        interrupts._STATE.request.set()  # Ctrl-C while the second network trains
        return None

    monkeypatch.setattr(connect, "_train_digits", train)
    from gdscope.cli import options

    monkeypatch.setattr(options, "_WRITTEN", [])  # (this process's earlier commands wrote too)
    code = main(["example", "connect", "--out", str(tmp_path / "ex")])
    printed = capsys.readouterr()
    assert code == 130
    assert printed.out.splitlines() == [str(tmp_path / "ex" / "a.pt")]
    assert printed.err.splitlines()[-1] == ("gdscope: interrupted: kept 1 file(s) written "
                                            f"before it: {tmp_path / 'ex' / 'a.pt'}")  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "ex").iterdir()) == ["a.pt"]


@pytest.mark.slow
def test_example_connect_runs_with_progress_lines(tmp_path, capsys):
    assert main(["example", "connect", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt", "connect.json",
                                                          "connect.png"]  # fmt: skip
    assert "connect: epoch 100/100" in printed.err
    assert printed.err.splitlines()[-1].startswith("connect: highest loss along the straight")


def _two_digits_networks(folder) -> list[str]:
    """Two untrained digits MLPs (seeds 0 and 1) saved in ``folder``, and the command's start."""
    from gdscope.examples import digits

    for seed, name in ((0, "a.pt"), (1, "b.pt")):
        torch.save(digits.make_model(seed).state_dict(), folder / name)
    return ["connect", "a.pt", "b.pt", "--model", "gdscope.examples.digits:make_model",
            "--data", "gdscope.examples.digits:make_loader", "--batch-size", "64"]  # fmt: skip


@pytest.mark.slow
def test_a_real_ctrl_c_while_measuring_keeps_the_points_measured(tmp_path):
    import re

    from tests.cli.test_interrupts import interrupt, some_finished

    args = [*_two_digits_networks(tmp_path), "--epochs", "2", "--grid", "41", "--out", "c.png",
            "--save", "c.json"]  # fmt: skip
    outcome = interrupt(args, tmp_path, some_finished)
    found = re.fullmatch(r"gdscope: interrupted: kept (\d+) of (\d+) points measured",
                         outcome.line)  # fmt: skip
    assert found is not None and 0 < int(found[1]) < int(found[2]) == 2 * 41 + 41 * 41
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["unfinished"] == int(found[2]) - int(found[1])
    assert (
        read_record(tmp_path / "c.png")["interrupted"] == f"{found[1]} of {found[2]} points "
        "measured"
    )


@pytest.mark.slow
def test_a_real_ctrl_c_while_training_keeps_the_epochs_in_the_resume_file(tmp_path):
    import re

    from tests.cli.test_interrupts import interrupt

    args = [*_two_digits_networks(tmp_path), "--epochs", "400", "--resume", "p.npz", "--out",
            "c.png"]  # fmt: skip
    outcome = interrupt(args, tmp_path, lambda running: "connect: epoch 40/" in running.err)
    found = re.fullmatch(r"gdscope: interrupted: the curve trained for (\d+) of 400 epochs; "
                         r"p\.npz keeps them \(--resume goes on from there\); nothing drawn",
                         outcome.line)  # fmt: skip
    assert found is not None and 40 <= int(found[1]) < 400, outcome.line
    assert not (tmp_path / "c.png").exists()
    with np.load(tmp_path / "p.npz") as saved:
        assert int(saved["epochs_done"]) == int(found[1])
