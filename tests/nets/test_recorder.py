"""Recording a training path: in memory and on disk alike."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from gdscope.errors import GdscopeError
from gdscope.examples import mlp
from gdscope.nets.recorder import Recorder, open_path


def test_recorder_memory_and_disk_agree(tmp_path):
    runs = []
    for path in (None, tmp_path / "rec"):
        model = mlp.make_model(seed=1)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        rec = Recorder(model, every=3, path=path, optimizer=optimizer)
        for x, y in mlp.make_loader(batch_size=150):
            optimizer.zero_grad()
            loss = nn.CrossEntropyLoss()(model(x), y)
            loss.backward()
            optimizer.step()
            rec.step(loss)
        runs.append(rec.result())
    memory, disk = runs
    assert len(memory) == 1 + 10 // 3 and list(memory.steps) == [0, 3, 6, 9]
    np.testing.assert_array_equal(memory.snapshots, disk.snapshots)
    assert isinstance(disk.snapshots, np.memmap) and disk.optimizer == "Adam"
    np.testing.assert_array_equal(open_path(tmp_path / "rec").losses, memory.losses)
    with pytest.raises(GdscopeError, match="already holds a recording"):
        Recorder(mlp.make_model(), path=tmp_path / "rec")


def _train(model: nn.Module, rec: Recorder, steps: int) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 3, generator=torch.Generator().manual_seed(0)), torch.zeros(16, 1)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.MSELoss()(model(x), y)
        loss.backward()
        optimizer.step()
        rec.step(loss)


def test_a_streamed_snapshot_does_not_rewrite_the_index_and_a_dead_writer_leaves_it_readable(
    tmp_path, monkeypatch
):
    import gdscope.nets.recorder as recorder

    writes, real = [], recorder.write_text
    monkeypatch.setattr(
        recorder, "write_text", lambda *a, **k: writes.append(a[0]) or real(*a, **k)
    )
    torch.manual_seed(0)
    memory = Recorder(model := nn.Linear(3, 1), every=2)
    torch.manual_seed(0)
    disk = Recorder(twin := nn.Linear(3, 1), every=2, path=tmp_path / "rec")
    _train(model, memory, 9)
    _train(twin, disk, 9)
    assert writes == [tmp_path / "rec" / "index.json"]  # once, at the start: O(1) per snapshot
    del disk  # the writer dies: result() is never called
    with (tmp_path / "rec" / "snapshots.f32").open("ab") as handle:
        handle.write(b"\0" * 6)  # a snapshot torn half-way, its step never written
    read, want = open_path(tmp_path / "rec"), memory.result()
    assert list(read.steps) == list(want.steps) == [0, 2, 4, 6, 8]
    np.testing.assert_array_equal(read.snapshots, want.snapshots)
    np.testing.assert_array_equal(read.losses, want.losses)


def test_open_path_reads_a_recording_written_before_steps_bin(tmp_path):
    """Older recordings keep steps and losses in index.json (no steps.bin)."""
    (tmp_path / "old").mkdir()
    rows = np.arange(8, dtype="<f4").reshape(2, 4)
    (tmp_path / "old" / "snapshots.f32").write_bytes(rows.tobytes())
    index = {"names": ["weight", "bias"], "shapes": [[1, 3], [1]], "states": False,
             "steps": [0, 5], "optimizer": "SGD", "losses": [None, 0.25]}  # fmt: skip
    (tmp_path / "old" / "index.json").write_text(json.dumps(index))
    read = open_path(tmp_path / "old")
    assert list(read.steps) == [0, 5] and read.optimizer == "SGD"
    np.testing.assert_array_equal(read.snapshots, rows)
    np.testing.assert_array_equal(read.losses, [np.nan, 0.25])
    Recorder(nn.Linear(3, 1), path=tmp_path / "old", force=True)  # replaced whole by a new one
    assert len(open_path(tmp_path / "old")) == 1


def test_recorder_refuses_in_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(GdscopeError, match="is a file; path names a folder"):
        Recorder(nn.Linear(3, 1), path=tmp_path / "file")
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    rec = Recorder(model)
    for loss in (torch.ones(3), "abc", [1.0]):
        with pytest.raises(GdscopeError, match="the loss must be one number"):
            rec.step(loss)
    assert rec.step(torch.tensor([0.5])) and rec.step(2) and rec.step(np.float32(1))
    model[0].weight.requires_grad_(False)
    with pytest.raises(GdscopeError, match=r"parameter 0\.weight is no longer trainable"):
        rec.step(0.5)


def test_validation_losses_are_recorded_in_memory_and_on_disk_at_their_steps(tmp_path):
    # validation.bin holds STEP_ROW rows, appended as they come; a torn last row is ignored
    # (its writer died) and a recording made before validation.bin has none.
    from gdscope.nets.recorder import STEP_ROW, VALIDATION_FILE

    runs = []
    for path in (None, tmp_path / "rec"):
        torch.manual_seed(0)
        rec = Recorder(model := nn.Linear(3, 1), every=2, path=path)
        rec.validation(0.75)  # before any step: step 0
        _train(model, rec, 3)
        rec.validation(torch.tensor(0.5))  # now: step 3
        rec.validation(0.25, step=2)  # measured earlier, given late: kept in the order given
        runs.append(rec.result())
    memory, disk = runs
    assert memory.validation_steps.tolist() == disk.validation_steps.tolist() == [0, 3, 2]
    values = [0.75, 0.5, 0.25]
    assert memory.validation_losses.tolist() == disk.validation_losses.tolist() == values
    assert (
        memory.validation_steps.dtype == np.int64 and memory.validation_losses.dtype == np.float64
    )
    raw = np.frombuffer((tmp_path / "rec" / "validation.bin").read_bytes(), STEP_ROW)
    assert VALIDATION_FILE == "validation.bin" and raw.tolist() == [(0, 0.75), (3, 0.5), (2, 0.25)]
    with (tmp_path / "rec" / "validation.bin").open("ab") as handle:
        handle.write(b"\1" * 9)  # a row torn half-way
    assert open_path(tmp_path / "rec").validation_steps.tolist() == [0, 3, 2]
    (tmp_path / "rec" / "validation.bin").unlink()  # as written before validation.bin existed
    read = open_path(tmp_path / "rec")
    assert read.validation_steps.shape == read.validation_losses.shape == (0,)
    empty = Recorder(nn.Linear(3, 1)).result()
    assert empty.validation_steps.tolist() == [] and empty.validation_losses.dtype == np.float64
    rec = Recorder(nn.Linear(3, 1), path=tmp_path / "rec", force=True)  # a new one starts empty
    assert (tmp_path / "rec" / "validation.bin").read_bytes() == b""
    for bad, match in [((None,), "one number, got None"), ((torch.ones(2),), "one number"),
                       (("0.5",), "one number"), ((0.5,), "whole number >= 0")]:  # fmt: skip
        with pytest.raises(GdscopeError, match=match):
            rec.validation(*bad, step=-1 if match.startswith("whole") else None)
