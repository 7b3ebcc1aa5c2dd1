from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from gdscope.cli.main import main

from ..reference import ARTICLE_LOG

GDSCOPE = shutil.which("gdscope") or str(Path(sys.executable).with_name("gdscope"))


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GDSCOPE, *args], capture_output=True, text=True, timeout=300, cwd=cwd, check=False
    )


def test_train_log_prints_the_articles_lines():
    result = run("train", "--log")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 100
    for epoch, line in ARTICLE_LOG.items():
        assert lines[epoch] == line


BAD = [
    ("train", "--lr", "-0.1"),
    ("train", "--momentum", "-1"),
    ("train", "--dampening", "-0.5"),
    ("train", "--weight-decay", "-2"),
    ("train", "--nesterov"),
    ("train", "--nesterov", "--momentum", "0.9", "--dampening", "0.1"),
    ("train", "--loss", "hinge"),
    ("train", "--lr", "nan"),
    ("train", "--lr", "inf"),
    ("train", "--start", "1", "inf"),
    ("train", "--epochs", "0"),
    ("train", "--epochs", "100001"),
    ("train", "--epochs", "ten"),
    ("train", "--n", "0"),
    ("train", "--huber-delta", "0"),
    ("train", "--lr", "1e39"),  # torch refuses at its first step: beyond float32
    ("plot", "--optimizer", "adam", "--opt", "lr=1e39", "--out", "x.png"),
    ("plot", "--grid-size", "1", "--out", "x.png"),
    ("plot", "--grid-size", "5", "5", "5", "--out", "x.png"),
    ("plot", "--w-range", "3", "1", "--out", "x.png"),
    ("plot", "--out", "x.gif"),
    ("plot", "--dpi", "0", "--out", "x.png"),
    ("plot",),
    ("figure", "fig11", "--out", "x.png"),
    ("reproduce",),
    ("frobnicate",),
]


@pytest.mark.parametrize("args", BAD, ids=[" ".join(a) for a in BAD])
def test_bad_input_is_one_line_and_status_2(args, tmp_path):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gdscope: error:"), result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_diverged_run_is_reported_and_still_plots(tmp_path, capsys):
    assert main(["train", "--lr", "2"]) == 0
    assert "diverged at step 36" in capsys.readouterr().out
    out = tmp_path / "div.png"
    assert main(["plot", "--lr", "2", "--loss", "mse", "--out", str(out)]) == 0
    assert Image.open(out).size[0] > 100


def test_plot_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "p.png"
    args = [
        "plot",
        "--loss",
        "mse",
        "l1",
        "--grid-size",
        "21",
        "--momentum",
        "0.9",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    first = out.read_bytes()
    config = json.loads(Image.open(out).text["Description"])["config"]
    assert config["optimizer"]["momentum"] == 0.9 and [x["name"] for x in config["losses"]] == [
        "mse",
        "l1",
    ]
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == first
    assert main([*args, "--force"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]  # no temporary files left


@pytest.mark.parametrize("fmt", ["svg", "pdf"])
def test_plot_vector_formats(tmp_path, fmt):
    out = tmp_path / f"p.{fmt}"
    assert (
        main(["plot", "--loss", "huber", "--grid-size", "11", "--epochs", "3", "--out", str(out)])
        == 0
    )
    head = out.read_bytes()[:200]
    assert (b"<svg" in out.read_bytes()[:2000]) if fmt == "svg" else head.startswith(b"%PDF")


def test_plot_config_round_trips_through_cli_args():
    from gdscope.cli.main import build_parser, plot_config

    args = [
        "plot",
        "--loss",
        "huber",
        "smoothl1",
        "--huber-delta",
        "2.5",
        "--lr",
        "0.05",
        "--momentum",
        "0.8",
        "--nesterov",
        "--weight-decay",
        "0.3",
        "--epochs",
        "50",
        "--start",
        "1",
        "2",
        "--seed",
        "3",
        "--n",
        "30",
        "--coefficients",
        "1",
        "0",
        "-1",
        "--noise",
        "0.1",
        "--grid-size",
        "31",
        "41",
        "--w-range",
        "-2",
        "3",
        "--log-color",
        "--effective",
        "--out",
        "x.png",
    ]
    config = plot_config(build_parser().parse_args(args))
    again = plot_config(build_parser().parse_args(["plot", *config.cli_args(), "--out", "x.png"]))
    assert again == config
    assert config.grid.w_size == 31 and config.grid.b_size == 41


def test_figure_command(tmp_path):
    out = tmp_path / "f7.png"
    assert main(["figure", "7", "--out", str(out)]) == 0
    assert json.loads(Image.open(out).text["Description"])["figure"] == "fig07"


@pytest.mark.slow
def test_phase_sweep_and_compare_end_to_end(tmp_path):
    phase = run("phase", "--x", "lr=0.05:3:12:log", "--y", "momentum=0:0.9:6", "--out", "p.png",
                "--save", "p.csv", cwd=tmp_path)  # fmt: skip
    assert phase.returncode == 0, phase.stderr
    assert "Traceback" not in phase.stderr and "%|" not in phase.stderr  # no bar when piped
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert len(rows) == 2 + 72 and rows[1].startswith("cell,")
    sweep = run("sweep", "--vary", "momentum=0,0.9", "--vary", "lr=0.05,0.2", "--out", "s.png",
                "--grid-size", "31", "--save", "s.npz", cwd=tmp_path)  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr
    cmp = run("compare", "--optimizers", "sgd,adam", "--tune", "lr=0.01:1:4:log", "--budget", "20",
              "--starts", "2", "--out", "c.png", "--save", "c.json", cwd=tmp_path)  # fmt: skip
    assert cmp.returncode == 0, cmp.stderr
    assert cmp.stdout.splitlines()[0].startswith("optimizer=")
    record = json.loads((tmp_path / "c.json").read_text())
    assert record["budget"] == 20 and record["seed"] == 0 and len(record["tried"]["adam"]) == 4
    for name in ("p.png", "s.png", "c.png"):
        assert Image.open(tmp_path / name).size[0] > 300


BAD_MANY = [
    ("phase", "--x", "lr=0:1:5:log", "--y", "momentum=0,0.5", "--out", "x.png"),
    ("phase", "--x", "lr=0.1,1", "--y", "lr=0.1,1", "--out", "x.png"),
    ("phase", "--x", "lr=0.1,1", "--y", "momentum=-1,0.5", "--out", "x.png"),
    ("phase", "--x", "lr=0.1,1", "--y", "momentum=0,0.5", "--metric", "speed", "--out", "x.png"),
    ("phase", "--x", "lr=0.1,1", "--y", "momentum=0,0.5", "--out", "x.png", "--save", "x.txt"),
    ("phase", "--x", "lr=0.1,1", "--y", "momentum=0,0.5", "--device", "cuda:7", "--out", "x.png"),
    ("sweep", "--vary", "lr=0.01:1:100", "--out", "x.png"),
    ("sweep", "--vary", "lr=1", "--vary", "momentum=0", "--vary", "dampening=0", "--out", "x.png"),
    ("sweep", "--vary", "warp=1,2", "--out", "x.png"),
    ("compare", "--optimizers", "sgd,nope", "--out", "x.png"),
    ("compare", "--tune", "eps=1,2", "--out", "x.png"),
]


@pytest.mark.parametrize("args", BAD_MANY, ids=[" ".join(a[:4]) for a in BAD_MANY])
def test_many_run_commands_reject_bad_input(args, tmp_path):
    if "cuda:7" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA device is present")
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gdscope: error:"), result.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--optimizer", "adam", "--opt", "betas=0.9,0.99", "--lr", "0.05"],
        ["--optimizer", "lbfgs", "--opt", "lr=0.5"],
        ["--scheduler", "steplr", "--sched", "step_size=20"],
    ],
)
def test_cli_any_optimizer(args, capsys):
    assert main(["train", "--epochs", "30", *args]) == 0
    assert "final loss" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--optimizer", "adam", "--opt", "betas=2,0.9"], "Invalid beta"),
        (["--optimizer", "adam", "--momentum", "0.9"], "apply to SGD only"),
        (["--optimizer", "nope"], "unknown optimizer"),
        (["--opt", "foo=1"], "unknown argument"),
        (["--sched", "gamma=0.5"], "needs --scheduler"),
        (["--scheduler", "steplr", "--sched", "gamma=0.5"], "StepLR"),
    ],
)
def test_cli_optimizer_errors(args, message, capsys):
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
