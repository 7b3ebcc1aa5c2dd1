"""The order in which mini-batches visit the data: exactly as torch's ``DataLoader`` draws it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from gdscope.engines.reference import check_batch
from gdscope.engines.trajectory import Trajectory
from gdscope.errors import GdscopeError
from gdscope.problem.data import Dataset
from gdscope.problem.losses import LossSpec

__all__ = ["batch_gradients", "batch_indices"]


def batch_indices(n: int, batch_size: int, shuffle_seed: int, epochs: int) -> list[Tensor]:
    """Index tensors of every mini-batch of ``epochs`` passes over ``n`` points, in order.

    A real ``DataLoader(shuffle=True)`` over the indices ``0..n-1`` with a generator seeded by
    ``shuffle_seed`` draws them, so the order is the one ``train`` (which loads the data itself
    through a ``DataLoader`` seeded the same way) sees: the loader also consumes a draw from the
    generator for its workers' base seed at every pass, which re-implementing ``randperm`` alone
    would miss.
    """
    from torch.utils.data import DataLoader

    check_batch(batch_size, shuffle_seed, n)
    generator = torch.Generator().manual_seed(shuffle_seed)
    loader = DataLoader(_Indices(n), batch_size=batch_size, shuffle=True, generator=generator,
                        collate_fn=_as_tensor)  # fmt: skip
    return [batch for _ in range(epochs) for batch in loader]


class _Indices(torch.utils.data.Dataset[int]):
    """The indices ``0..n-1``, a batch at a time (``__getitems__``): the loader's sampler
    draws the order, and no sample is fetched and collated one by one."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        return index

    def __getitems__(self, indices: list[int]) -> list[int]:
        return indices


def _as_tensor(indices: list[int]) -> Tensor:
    return torch.tensor(indices, dtype=torch.long)


def batch_gradients(
    data: Dataset,
    loss: LossSpec,
    trajectory: Trajectory,
    points: Sequence[int],
) -> np.ndarray:
    """``(len(points), batches, 2)``: the gradient of every mini-batch of the epoch that point
    ``i`` belongs to, at that point (autograd through the ``torch.nn`` loss, float64).

    Their spread is the noise that mini-batch SGD adds to the full gradient (their mean).
    """
    if trajectory.batch_size is None or trajectory.shuffle_seed is None:
        raise GdscopeError("per-batch gradients need a mini-batch run")
    per_epoch = trajectory.steps_per_epoch
    order = batch_indices(len(data), trajectory.batch_size, trajectory.shuffle_seed,
                          max(1, trajectory.epochs))  # fmt: skip
    x = torch.tensor(data.x, dtype=torch.float64)
    y = torch.tensor(data.y, dtype=torch.float64)
    module = loss.module()
    out = np.full((len(points), per_epoch, 2), np.nan)
    for row, i in enumerate(points):
        if not 0 <= i < trajectory.n_finite:
            continue
        epoch = min(i // per_epoch, len(order) // per_epoch - 1)
        params = torch.tensor(
            [trajectory.weights[i], trajectory.biases[i]], dtype=torch.float64, requires_grad=True
        )
        for col, idx in enumerate(order[epoch * per_epoch : (epoch + 1) * per_epoch]):
            value = module(x[idx] * params[0] + params[1], y[idx])
            (grad,) = torch.autograd.grad(value, params)
            out[row, col] = grad.numpy()
    return out
