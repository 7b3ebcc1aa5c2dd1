"""``gdscope.modules``: what gdscope needs to know about any ``nn.Module``, checked on real
torch modules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gdscope.modules import activation_bytes, copy_memory, free_memory, left_as_it_was


def test_left_as_it_was_puts_back_every_modules_mode_and_flag_even_after_an_error():
    model = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5), nn.BatchNorm1d(3)).train()
    model[1].eval()
    model[0].bias.requires_grad_(False)
    with pytest.raises(RuntimeError, match="boom"), left_as_it_was(model):
        model.eval()
        for param in model.parameters():
            param.requires_grad_(True)
        raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == [True, True, False, True]
    assert [p.requires_grad for p in model.parameters()] == [True, False, True, True]


def test_copy_memory_counts_weights_state_and_twice_every_activation():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(5, 4)
    weights = sum(p.numel() * 4 for p in model.parameters())
    sizes = activation_bytes(model, x)
    assert sorted(sizes) == sorted([5 * 8 * 4, 5 * 8 * 4, 5 * 2 * 4, 5 * 2 * 4])  # + the whole
    assert copy_memory(model, x, state_buffers=2) == 4 * weights + 2 * sum(sizes)
    assert free_memory(torch.device("cpu")) > 0
