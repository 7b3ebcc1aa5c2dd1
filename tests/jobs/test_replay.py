"""Replay: a figure's embedded record makes the same file again."""

from __future__ import annotations

import pytest
from PIL import Image

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


def test_replay_refuses_files_without_a_record(tmp_path, capsys):
    plain = tmp_path / "x.png"
    Image.new("RGB", (4, 4)).save(plain)
    code, _, err = run(capsys, "replay", plain)
    assert code == 2 and "carries no gdscope record" in err
    code, _, err = run(capsys, "replay", tmp_path / "nope.png")
    assert code == 2 and "does not exist" in err
