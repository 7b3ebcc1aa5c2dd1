"""ResNet-56 for 32×32 images (He et al. 2016, CIFAR variant: 3 stages of 9 basic blocks,
16/32/64 channels, BatchNorm), and 50,000 synthetic CIFAR-sized images of ten classes.

This is the reference implementation's headline case; here the data are synthetic so that it
runs offline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from gdscope.examples.cnn import make_dataset


class BasicBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False),
                                          nn.BatchNorm2d(outputs))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, blocks: int = 9, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        layers: list[nn.Module] = []
        inputs = 16
        for outputs, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(blocks):
                layers.append(BasicBlock(inputs, outputs, stride if i == 0 else 1))
                inputs = outputs
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn(self.conv(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


def make_model(seed: int = 0) -> nn.Module:
    """ResNet-56: 6·9 + 2 layers, about 0.86 M parameters."""
    torch.manual_seed(seed)
    return ResNet(9)


def make_loader(batch_size: int = 1000, *, n: int = 50_000, seed: int = 0) -> DataLoader:
    return DataLoader(make_dataset(n, seed=seed, size=32, channels=3), batch_size=batch_size)
