"""The edge-of-stability example: a small tanh MLP fitting the three-class spiral (1,500 noisy
points) with the MSE loss on one-hot targets, trained full batch, like Cohen et al. (2021)'s
fully connected tanh network on a CIFAR-10 subset with the square loss."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gdscope.examples.mlp import make_dataset


def make_data(n: int = 1500, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """All the points and their one-hot targets, one batch."""
    inputs, labels = make_dataset(n, seed=seed, noise=0.3).tensors
    return inputs, nn.functional.one_hot(labels, 3).float()


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 3)
    )
