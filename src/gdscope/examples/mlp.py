"""A small MLP on a synthetic 2-D, three-class spiral (1,500 points)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_dataset(n: int = 1500, *, seed: int = 0, noise: float = 0.15) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    per = n // 3
    xs, ys = [], []
    for label in range(3):
        t = torch.linspace(0.15, 1.0, per)
        angle = 3.5 * t + 2 * math.pi * label / 3
        points = torch.stack([t * torch.cos(angle), t * torch.sin(angle)], dim=1)
        xs.append(points + noise * t[:, None] * torch.randn(per, 2, generator=generator))
        ys.append(torch.full((per,), label))
    return TensorDataset(torch.cat(xs), torch.cat(ys))


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3)
    )


def make_loader(batch_size: int = 100, *, shuffle: bool = False, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(make_dataset(seed=seed), batch_size=batch_size, shuffle=shuffle,
                      generator=generator)  # fmt: skip


def make_val_loader(batch_size: int = 500) -> DataLoader:
    """Held-out points: the same spiral drawn with another seed."""
    return DataLoader(make_dataset(seed=1), batch_size=batch_size)
