"""Real data offline: scikit-learn's handwritten digits (1,797 images of 8×8 pixels, ten
classes; Alpaydin & Kaynak's UCI set, shipped inside scikit-learn, so nothing is downloaded).

Pixels are scaled from 0–16 to 0–1. The split is fixed: a seeded permutation of all 1,797
images, the first 1,437 (80%) for training and the other 360 held out, the same on every
machine. ``make_model``/``make_loader`` follow the other example modules, so ``gdscope
landscape --model gdscope.examples.digits:make_model --data
gdscope.examples.digits:make_loader`` works.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from gdscope.errors import GdscopeError, needs_extra, one_of

SAMPLES = 1797
"""How many images the set has."""
TRAIN = 1437
"""How many of them the training split takes (80%); the rest are held out."""
SPLIT_SEED = 0
"""The seed of the permutation that splits them (fixed: the split is part of the data)."""
Split = Literal["train", "val", "all"]


def _all() -> tuple[Tensor, Tensor]:
    """Every image as ``(1797, 1, 8, 8)`` float32 in 0–1 and its label, in scikit-learn's order."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise needs_extra("the digits data comes with scikit-learn", "digits") from None
    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).div_(16.0).unsqueeze(1)
    return images, torch.as_tensor(bunch.target, dtype=torch.long)


def make_dataset(
    split: Split = "train", *, n: int | None = None, flat: bool = False
) -> TensorDataset:
    """The ``split``'s images (``(n, 1, 8, 8)``, or ``(n, 64)`` with ``flat``) and labels; ``n``:
    only its first ``n`` (the same ones every time)."""
    images, labels = _all()
    order = torch.randperm(SAMPLES, generator=torch.Generator().manual_seed(SPLIT_SEED))
    splits = {"train": order[:TRAIN], "val": order[TRAIN:], "all": order}
    chosen = splits[one_of("split", split, splits)]
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(chosen):
            raise GdscopeError(f"n must be an integer from 1 to {len(chosen)} for the "
                               f"{split} split, got {n!r}")  # fmt: skip
        chosen = chosen[:n]
    x = images[chosen]
    return TensorDataset(x.flatten(1) if flat else x, labels[chosen])


def make_model(seed: int = 0, *, width: int = 64) -> nn.Module:
    """An MLP for the flattened images: 64 → ``width`` → ``width`` → 10, ReLU, seeded."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width),
                         nn.ReLU(), nn.Linear(width, 10))  # fmt: skip


def make_loader(batch_size: int = 128, *, shuffle: bool = False, seed: int = 0) -> DataLoader:
    """The training split in batches (``shuffle`` with a generator seeded by ``seed``)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(make_dataset("train"), batch_size=batch_size, shuffle=shuffle,
                      generator=generator)  # fmt: skip


def make_val_loader(batch_size: int = 360) -> DataLoader:
    """The 360 held-out images."""
    return DataLoader(make_dataset("val"), batch_size=batch_size)
