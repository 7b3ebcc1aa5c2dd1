"""A small CNN with BatchNorm on synthetic 16×16 images of ten classes (no downloads).

Each class is a fixed random pattern (smoothed noise); an image is its class's pattern, shifted
by up to two pixels, plus noise, so the task is learnable but not trivial.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_dataset(n: int = 10_000, *, seed: int = 0, size: int = 16, noise: float = 0.8,
                 channels: int = 1, classes: int = 10) -> TensorDataset:  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    patterns = torch.randn(classes, channels, size, size, generator=generator)
    patterns = F.avg_pool2d(F.pad(patterns, (1, 1, 1, 1), mode="circular"), 3, stride=1)
    patterns = patterns / patterns.std(dim=(1, 2, 3), keepdim=True)
    labels = torch.randint(classes, (n,), generator=generator)
    shifts = torch.randint(-2, 3, (n, 2), generator=generator)
    images = torch.empty(n, channels, size, size)
    for i in range(n):
        images[i] = torch.roll(patterns[labels[i]], tuple(shifts[i].tolist()), dims=(1, 2))
    images += noise * torch.randn(images.shape, generator=generator)
    return TensorDataset(images, labels)


class SmallCNN(nn.Module):
    def __init__(self, channels: int = 1, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Linear(16 * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return SmallCNN()


def make_loader(batch_size: int = 500, *, n: int = 10_000, shuffle: bool = False,
                seed: int = 0) -> DataLoader:  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(make_dataset(n, seed=seed), batch_size=batch_size, shuffle=shuffle,
                      generator=generator)  # fmt: skip


def make_val_loader(batch_size: int = 500, *, n: int = 2_000) -> DataLoader:
    """Held-out images of the same classes (the patterns are seed 0's; the draws are new)."""
    images, labels = make_dataset(n + 10_000, seed=0).tensors
    return DataLoader(TensorDataset(images[10_000:], labels[10_000:]), batch_size=batch_size)
