"""The edge-of-stability example: a small tanh MLP (2-64-64-64-64-3) fitting the three-class spiral
(600 noisy points) with the MSE loss on one-hot targets, trained full batch, like Cohen et al.
(2021)'s fully connected tanh network on a CIFAR-10 subset with the square loss. Four hidden
layers sharpen fast enough that even η = 0.2 reaches 2/η within a few hundred steps.

On real data (``make_digits_data``, ``make_digits_model``): the first 1,000 training images of
scikit-learn's digits, flattened, one-hot, and a 64-64-64-64-10 tanh MLP (three hidden layers),
closer still to Cohen et al.'s setting."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gdscope.examples import digits
from gdscope.examples.mlp import make_dataset

DIGITS = 1000
"""How many training images of the digits the real-data example fits (full batch)."""


def make_data(n: int = 600, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """All the points and their one-hot targets, one batch."""
    inputs, labels = make_dataset(n, seed=seed, noise=0.3).tensors
    return inputs, nn.functional.one_hot(labels, 3).float()


def make_model(
    seed: int = 0, *, width: int = 64, depth: int = 4, inputs: int = 2, classes: int = 3
) -> nn.Module:
    """``depth`` hidden tanh layers of ``width`` units, seeded."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(inputs, width), nn.Tanh()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(width, classes))


def make_digits_data(n: int = DIGITS) -> tuple[Tensor, Tensor]:
    """The first ``n`` training images of the digits, flattened (64 pixels in 0–1), and their
    one-hot targets, one batch."""
    inputs, labels = digits.make_dataset("train", n=n, flat=True).tensors
    return inputs, nn.functional.one_hot(labels, 10).float()


def make_digits_model(seed: int = 0) -> nn.Module:
    """The tanh MLP for the digits: 64 → 64 → 64 → 64 → 10, seeded."""
    return make_model(seed, depth=3, inputs=64, classes=10)
