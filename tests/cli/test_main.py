from __future__ import annotations

import json

import pytest
from PIL import Image

from gdscope.cli.main import main


def test_diverged_run_is_reported_and_still_plots(tmp_path, capsys):
    assert main(["train", "--lr", "2"]) == 0
    assert "diverged at step 13: |bias| = 1.56e+07 is beyond" in capsys.readouterr().out
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


def _commands():
    import argparse

    from gdscope.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_option_of_every_command_says_what_it_does():
    import argparse

    silent = {
        name: [a.option_strings[0] if a.option_strings else a.dest for a in command._actions
               if not a.help and not isinstance(a, argparse._HelpAction)]
        for name, command in _commands().items()
    }  # fmt: skip
    assert {name: flags for name, flags in silent.items() if flags} == {}


def test_example_help_explains_each_example_and_option(capsys):
    from gdscope.jobs.hessian import EOS_RATES
    from gdscope.jobs.landscape import EXAMPLES

    with pytest.raises(SystemExit):
        main(["example", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for name in (*EXAMPLES, "eos"):
        assert f"{name}: " in shown  # a line of its own saying what it trains
    assert "spiral" in shown and "16×16 images" in shown
    assert ", ".join(f"{r:g}" for r in EOS_RATES) in shown
    for flag, says in {"--epochs": "epochs each optimizer trains (default: 3)",
                       "--device": "cpu (default), cuda", "--force": "replace files",
                       "--out": "the folder"}.items():  # fmt: skip
        assert f"{flag} " in shown and says in shown
