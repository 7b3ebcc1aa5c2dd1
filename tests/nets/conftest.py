from __future__ import annotations

import pytest
import torch
from torch import nn

from gdscope.examples import cnn
from gdscope.nets.fit import fit


@pytest.fixture(scope="session")
def trained_cnn():
    model = cnn.make_model(seed=3)
    generator = torch.Generator().manual_seed(0)
    data = cnn.make_dataset(512, seed=2)
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True, generator=generator)
    fit(model, loader, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.05,
        momentum=0.9), epochs=1)  # fmt: skip
    return model.eval()
