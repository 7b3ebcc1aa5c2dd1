"""The records the board's landscape and spectrum PNGs carry: those their commands write."""

from __future__ import annotations

import torch

from gdscope.cli.main import main
from gdscope.jobs.boardrecords import landscape_record, spectrum_record
from gdscope.jobs.records import read_record

MLP = ["--model", "gdscope.examples.mlp:make_model", "--data", "gdscope.examples.mlp:make_loader",
       "--loss", "crossentropy"]  # fmt: skip


def _checkpoint(folder, name: str, shift: float):
    """The example MLP's weights, each moved by ``shift`` (its initial weights are seeded)."""
    from gdscope.examples.mlp import make_model

    file = folder / name
    torch.save({k: v + shift for k, v in make_model().state_dict().items()}, file)
    return file


def test_the_records_are_those_the_shown_commands_write_into_their_figures(tmp_path):
    start, end = _checkpoint(tmp_path, "a.pt", 0.0), _checkpoint(tmp_path, "b.pt", 0.1)
    line = ["gdscope", "landscape", *MLP, "--checkpoint", str(start), "--to", str(end),
            "--directions", "line", "--strategy", "loop", "--chunk", "16",
            "--memory-format", "contiguous", "--plan", "[]", "--out", "landscape.png"]  # fmt: skip
    assert main([*line[1:-2], "--out", str(tmp_path / "line.png")]) == 0
    assert landscape_record(line) == read_record(tmp_path / "line.png")
    hessian = ["gdscope", "hessian", *MLP, "--checkpoint", str(end), "--top", "3", "--density",
               "--out", "spectrum.png"]  # fmt: skip
    assert main([*hessian[1:-2], "--out", str(tmp_path / "spectrum.png")]) == 0
    assert spectrum_record(hessian) == read_record(tmp_path / "spectrum.png")
    # A checkpoint that changed since: the record pins the content there now, as a new run would.
    _checkpoint(tmp_path, "b.pt", 0.2)
    assert spectrum_record(hessian) != read_record(tmp_path / "spectrum.png")
