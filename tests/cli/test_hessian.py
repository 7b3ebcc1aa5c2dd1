"""``gdscope hessian`` end to end: files with records, replay, Ctrl-C, bad input."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from gdscope.cli.main import main
from gdscope.jobs.records import read_record

MODULE = textwrap.dedent("""
    import torch
    from torch import nn

    def make_model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2))

    def make_frozen():
        return make_model().requires_grad_(False)

    def make_data():
        generator = torch.Generator().manual_seed(1)
        return torch.randn(48, 3, generator=generator), torch.randn(48, 2, generator=generator)

    class _Clip(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clamp(-1, 1)

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad):
            return grad

    def clipped():
        return lambda out, t: ((_Clip.apply(out) - t) ** 2).mean()

    def huge():
        return lambda out, t: ((out * 1e30) ** 2).mean()

    def missing_data():
        return open("no-such-file.csv")

    def failing_model():
        raise ValueError("width must be positive")
""")

BASE = ["hessian", "--model", "tinynet:make_model", "--data", "tinynet:make_data", "--loss", "mse"]


@pytest.fixture
def tinynet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "tinynet.py").write_text(MODULE)
    yield tmp_path
    import sys

    sys.modules.pop("tinynet", None)


def test_hessian_writes_the_figure_and_json_and_replays_them(tinynet, capsys):
    args = [*BASE, "--top", "3", "--trace", "--trace-samples", "20", "--density",
            "--density-steps", "20", "--out", "s.png", "--save", "s.json"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr()
    assert printed.out.splitlines() == ["s.json", "s.png"]
    assert "top 3:" in printed.err and "trace" in printed.err
    saved = json.loads((tinynet / "s.json").read_text())
    assert saved["record"]["kind"] == "hessian" == read_record(tinynet / "s.png")["kind"]
    values = saved["eigenvalues"]
    assert len(values) == 3 and values == sorted(values, reverse=True) and saved["converged"]
    assert saved["parameters"] == 3 * 6 + 6 + 6 * 2 + 2 and saved["trace_samples"] == 20
    assert np.array(saved["density"]["weights"]).shape == (1, 20)
    assert main(["replay", "s.png", "--out", "r.png"]) == 0
    assert (tinynet / "r.png").read_bytes() == (tinynet / "s.png").read_bytes()


def test_ctrl_c_keeps_what_finished_and_exits_130(tinynet, capsys, monkeypatch):
    from gdscope import interrupts
    from gdscope.nets import curvature

    real = curvature._hutchinson

    def interrupted(*args, **kwargs):
        interrupts._STATE.request.set()  # Ctrl-C as the trace starts
        return real(*args, **kwargs)

    monkeypatch.setattr(curvature, "_hutchinson", interrupted)
    code = main([*BASE, "--top", "2", "--trace", "--out", "s.png", "--save", "s.json"])
    printed = capsys.readouterr()
    assert code == 130
    assert printed.out.splitlines() == ["s.json", "s.png"]
    assert printed.err.splitlines()[-1] == "gdscope: interrupted: kept the top 2 eigenvalue(s)"
    assert printed.err.count("interrupted") == 1  # one line says so (the figure says it too)
    saved = json.loads((tinynet / "s.json").read_text())
    assert saved["interrupted"] and len(saved["eigenvalues"]) == 2 and saved["trace"] is None
    assert read_record(tinynet / "s.png")["interrupted"] == "the spectrum as far as it got"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--top", "100"], "more eigenvalues than the model's 38"),
        (["--model", "tinynet:make_frozen"], "no trainable parameters"),
        (["--loss", "tinynet:clipped"], "not twice differentiable: _ClipBackward"),
        (["--loss", "tinynet:huge"], "curvature is not finite"),
        (["--save", "s.txt"], "--save takes a .json file"),
        (["--tol", "2"], "tol must be in (0, 1)"),
        (["--data", "tinynet:missing_data"], "No such file or directory: 'no-such-file.csv'"),
        (["--model", "tinynet:failing_model"], "failed: width must be positive"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tinynet, capsys, extra, message):
    code = main([*BASE, *extra, "--out", "s.png"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("gdscope: error:") and message in err
    assert not list(tinynet.glob("s.*"))  # nothing written


@pytest.mark.parametrize("part", [["--data", "tinynet:missing_data"],
                                  ["--model", "tinynet:failing_model"]])  # fmt: skip
def test_landscape_of_failing_user_code_is_one_line_exit_2(tinynet, capsys, part):
    args = [
        "landscape",
        "--model",
        "tinynet:make_model",
        "--data",
        "tinynet:make_data",
        "--loss",
        "mse",
        "--x",
        "-1",
        "1",
        "3",
        "--y",
        "-1",
        "1",
        "3",
        "--out",
        "l.png",
    ]
    args[args.index(part[0]) + 1] = part[1]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gdscope: error:") and "failed" in err


def test_landscape_along_hessian_directions(tinynet, capsys):
    args = ["landscape", "--model", "tinynet:make_model", "--data", "tinynet:make_data",
            "--loss", "mse", "--directions", "hessian", "--norm", "none", "--x", "-1", "1", "5",
            "--y", "-1", "1", "5", "--strategy", "loop", "--out", "h.png"]  # fmt: skip
    assert main(args) == 0
    assert capsys.readouterr().out.splitlines() == ["h.png"]
    assert "hessian" in read_record(tinynet / "h.png")["argv"]
    code = main([*args[:-2], "--states", "--out", "s.png"])
    err = capsys.readouterr().err
    assert code == 2 and "Hessian directions move the parameters only" in err


def test_model_and_data_are_required(tinynet, capsys):
    try:
        code = main(["hessian", "--data", "tinynet:make_data", "--out", "s.png"])
    except SystemExit as done:  # argparse's own usage error
        code = done.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--model" in err
    assert not list(tinynet.glob("s.*"))


def test_example_eos_refuses_the_options_it_has_no_use_for(tmp_path, capsys):
    code = main(["example", "eos", "--out", str(tmp_path / "e"), "--epochs", "5", "--grid", "9"])
    assert code == 2
    err = capsys.readouterr().err
    assert err == "gdscope: error: --epochs, --grid do not apply to example eos\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        ([*BASE, "--checkpoint", "w.png", "--out", "w.png"], "--checkpoint w.png"),
        ([*BASE, "--checkpoint", "w.json", "--out", "s.png", "--save", "w.json"],
         "--checkpoint w.json"),
        ([*BASE[1:], "--checkpoint", "w.png", "--out", "./w.png"], "--checkpoint w.png"),
        ([*BASE[1:], "--checkpoint", "w.npz", "--save", "w.npz", "--out", "s.png"],
         "--checkpoint w.npz"),
        ([*BASE[1:], "--directions", "line", "--to", "w.png", "--out", "w.png"], "--to w.png"),
    ],
    ids=["hessian --out", "hessian --save", "landscape --out", "landscape --save",
         "landscape --to"],
)  # fmt: skip
def test_an_output_that_is_an_input_is_refused_before_any_work(tinynet, capsys, args, flag):
    import torch

    if args[0] != "hessian":
        args = ["landscape", *args, "--x", "-1", "1", "3", "--y", "-1", "1", "3"]
    weights = tinynet / flag.split()[1]
    torch.save(torch.nn.Linear(1, 1).state_dict(), weights)  # not even the model's: no work
    before = weights.read_bytes()
    assert main([*args, "--force"]) == 2
    err = capsys.readouterr().err
    assert err == f"gdscope: error: {flag} is also an output: name another file\n"
    assert weights.read_bytes() == before


@pytest.mark.parametrize("command", ["hessian", "landscape"])
def test_replay_refuses_a_checkpoint_that_changed(tinynet, capsys, command):
    import tinynet as module
    import torch

    weights = module.make_model().state_dict()
    weights["0.weight"] += 0.1
    torch.save(weights, "w.pt")
    args = [command, *BASE[1:], "--checkpoint", "w.pt", "--out", "c.png"]
    if command == "landscape":
        args += ["--x", "-1", "1", "3", "--y", "-1", "1", "3", "--strategy", "loop"]
    assert main(args) == 0
    assert main(["replay", "c.png", "--out", "r.png"]) == 0
    assert (tinynet / "r.png").read_bytes() == (tinynet / "c.png").read_bytes()
    weights["0.weight"] *= 2
    torch.save(weights, "w.pt")
    capsys.readouterr()
    assert main(["replay", "c.png", "--out", "r2.png"]) == 2
    err = capsys.readouterr().err
    assert err == "gdscope: error: w.pt has changed since the figure was made (sha256 differs)\n"
    assert not (tinynet / "r2.png").exists()
