"""Recording a training path: in memory and on disk alike."""

from __future__ import annotations

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
