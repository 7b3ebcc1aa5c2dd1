"""Replay: a figure's embedded record makes the same file again."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image, PngImagePlugin

import gdscope.jobs
from gdscope.cli.main import main
from gdscope.errors import GdscopeError
from gdscope.files import RECORD_KEYS, record_json, save_figure
from gdscope.jobs.article import article_figure, draw_article_figure
from gdscope.jobs.records import read_record
from gdscope.jobs.replay import replay
from gdscope.jobs.reproduce import reproduce
from gdscope.version import __version__

from ..reference import run


@pytest.mark.parametrize("suffix", ["png", "svg", "pdf"])
def test_replay_remakes_figures_bit_for_bit(tmp_path, capsys, suffix):
    out = tmp_path / f"f.{suffix}"
    args = ["plot", "--function", "rosenbrock", "--view", "contour", "--log-color", "--momentum",
            "0.9", "--epochs", "40", "--grid-size", "31", "--overlay", "gradient", "steps",
            "--out", out]  # fmt: skip
    assert run(capsys, *args)[0] == 0
    code, printed, _ = run(capsys, "replay", out)
    assert code == 0
    again = tmp_path / f"f-replay.{suffix}"
    assert printed.strip() == str(again)
    assert again.read_bytes() == out.read_bytes()


def test_replay_of_an_animation_and_a_sweep(tmp_path, capsys):
    gif = tmp_path / "m.gif"
    assert run(capsys, "animate", "--loss", "mse", "--epochs", "12", "--batch-size", "10",
               "--out", gif)[0] == 0  # fmt: skip
    assert run(capsys, "replay", gif, "--out", tmp_path / "n.gif")[0] == 0
    assert (tmp_path / "n.gif").read_bytes() == gif.read_bytes()
    sweep = tmp_path / "s.png"
    assert (
        run(capsys, "sweep", "--vary", "lr=0.01,0.1", "--grid-size", "21", "--out", sweep)[0] == 0
    )
    assert run(capsys, "replay", sweep)[0] == 0
    assert (tmp_path / "s-replay.png").read_bytes() == sweep.read_bytes()
    # One text for a record wherever it is kept: beside a GIF, inside a PNG.
    side = tmp_path / "m.gif.json"
    assert side.read_text(encoding="utf-8") == record_json(read_record(gif))
    with Image.open(sweep) as image:
        assert image.text[RECORD_KEYS["png"]] == record_json(read_record(sweep))


def test_replay_refuses_files_without_a_record(tmp_path, capsys):
    plain = tmp_path / "x.png"
    Image.new("RGB", (4, 4)).save(plain)
    code, _, err = run(capsys, "replay", plain)
    assert code == 2 and "carries no gdscope record" in err
    code, _, err = run(capsys, "replay", tmp_path / "nope.png")
    assert code == 2 and "does not exist" in err


PER_FORMAT = {"png": ("fig04", "fig01"), "svg": ("fig03", "fig07"), "pdf": ("fig02", "fig03")}


@pytest.mark.parametrize("fmt", list(PER_FORMAT))
def test_files_reproduce_writes_replay_bit_for_bit(tmp_path, fmt):
    figures = [article_figure(key) for key in PER_FORMAT[fmt]]
    written = reproduce(tmp_path / "out", fmt=fmt, dpi=80, figures=figures)
    for path in written[:-1]:  # the last one is the gallery page
        again = replay(path, tmp_path / path.name)
        assert again.read_bytes() == path.read_bytes(), path.name


def test_a_reproduce_file_of_the_previous_version_replays(tmp_path):
    spec = article_figure("fig01")
    old = {"gdscope": __version__, "figure": spec.key, "config": spec.config.to_dict()}
    path = save_figure(draw_article_figure(spec), tmp_path / "f.png", config=old)
    again = replay(path)
    assert read_record(again)["kind"] == "figure"
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(path)))


@pytest.mark.parametrize("kind", [{"kind": "argv"}, {"command": "sweep"}])  # the oldest: no kind
def test_an_argv_record_replays_through_the_command_it_is_given(tmp_path, capsys, kind):
    argv = ["sweep", "--vary", "lr=0.01,0.1", "--grid-size", "11", "--epochs", "5"]
    old = {**kind, "argv": argv, "fixed": {"momentum": 0.0}, "optimizer": "sgd"}
    path = save_figure(Figure(), tmp_path / "s.png", config=old)  # as an older gdscope wrote
    with pytest.raises(GdscopeError, match="is a command line"):
        replay(path)
    again = replay(path, run_argv=main)
    assert main([*argv, "--out", str(tmp_path / "fresh.png")]) == 0
    assert again.read_bytes() == (tmp_path / "fresh.png").read_bytes()
    assert read_record(again)["kind"] == "sweep"


def test_an_unknown_kind_is_refused(tmp_path):
    path = save_figure(Figure(), tmp_path / "x.png", config={"kind": "nope"})
    with pytest.raises(GdscopeError, match="unknown record kind 'nope'"):
        replay(path)


def test_the_jobs_layer_never_imports_the_cli():
    for source in Path(gdscope.jobs.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            assert not any(n == "gdscope.cli" or n.startswith("gdscope.cli.") for n in names), (
                source.name
            )


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_record_edited_to_a_non_finite_lr_is_refused(tmp_path, capsys, value):
    made = tmp_path / "f.png"
    assert run(capsys, "plot", "--function", "booth", "--epochs", "5", "--grid-size", "11",
               "--out", made)[0] == 0  # fmt: skip
    rec = read_record(made)
    rec["config"]["optimizer"]["lr"] = value  # as someone edited it (JSON: NaN, Infinity)
    edited = tmp_path / "edited.png"  # (gdscope itself writes strict JSON: NaN as null)
    info = PngImagePlugin.PngInfo()
    info.add_text(RECORD_KEYS["png"], json.dumps(rec))
    Image.new("RGB", (4, 4)).save(edited, pnginfo=info)
    code, _, err = run(capsys, "replay", edited)
    assert code == 2 and err.startswith("gdscope: error:") and "SGD: lr must be finite" in err
    assert not (tmp_path / "edited-replay.png").exists()
