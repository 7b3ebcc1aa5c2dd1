"""A narrow deep residual MLP on scikit-learn's digits, and the same network without its skip
connections, for Li et al. (2018)'s comparison of ResNets with their "no-short" twins.

Each block is a ResNet basic block with linear layers in place of convolutions: ``relu(x +
bn(W₂·relu(bn(W₁·x))))``, or without the ``x +``. A stem (64 → ``width``, BatchNorm, ReLU), the
``blocks`` blocks, and a linear head (``width`` → 10): with the defaults, 14 linear layers of 32
units. Both train with SGD+momentum to about 99% training accuracy in a few seconds on a CPU.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from gdscope.examples import digits

WIDTH, BLOCKS = 32, 6
"""The network's width and its number of two-layer blocks."""
LAYERS = 2 * BLOCKS + 2
"""Its linear layers: the stem, two per block, the head."""


class Block(nn.Module):
    """Two linear layers with BatchNorm, and the skip connection around them if ``skip``."""

    def __init__(self, width: int, *, skip: bool) -> None:
        super().__init__()
        self.first, self.first_bn = nn.Linear(width, width, bias=False), nn.BatchNorm1d(width)
        self.second, self.second_bn = nn.Linear(width, width, bias=False), nn.BatchNorm1d(width)
        self.skip = skip

    def forward(self, x: Tensor) -> Tensor:
        h = self.second_bn(self.second(torch.relu(self.first_bn(self.first(x)))))
        return torch.relu(x + h if self.skip else h)


def make_model(
    seed: int = 0, *, skip: bool = True, width: int = WIDTH, blocks: int = BLOCKS
) -> nn.Module:
    """The residual network (``skip=False``: the same layers without the skip connections),
    seeded: both start from the same weights."""
    torch.manual_seed(seed)
    stem = [nn.Flatten(), nn.Linear(64, width, bias=False), nn.BatchNorm1d(width), nn.ReLU()]
    body = [Block(width, skip=skip) for _ in range(blocks)]
    return nn.Sequential(*stem, *body, nn.Linear(width, 10))


def make_plain_model(seed: int = 0) -> nn.Module:
    """The network without its skip connections (for ``--model``)."""
    return make_model(seed, skip=False)


def make_loader(batch_size: int = 64, *, shuffle: bool = False, seed: int = 0) -> DataLoader:
    """The digits' training split (``gdscope.examples.digits.make_loader``)."""
    return digits.make_loader(batch_size, shuffle=shuffle, seed=seed)
