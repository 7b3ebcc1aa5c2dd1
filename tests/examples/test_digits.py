"""The digits data: scikit-learn's own images, split the same way every time."""

from __future__ import annotations

import pytest
import torch

from gdscope.errors import GdscopeError
from tests.conftest import require


def test_the_split_covers_every_image_once_with_scikit_learns_pixels() -> None:
    datasets = require("sklearn.datasets")
    from gdscope.examples import digits

    bunch = datasets.load_digits()
    train, val = digits.make_dataset("train"), digits.make_dataset("val")
    assert len(train) == digits.TRAIN and len(train) + len(val) == len(bunch.target)
    everything = torch.cat([train.tensors[0], val.tensors[0]]).flatten(1)
    labels = torch.cat([train.tensors[1], val.tensors[1]])
    reference = torch.as_tensor(bunch.data, dtype=torch.float32) / 16
    # every image is one of scikit-learn's, with its label, and none is used twice
    matches = (everything[:, None, :] == reference[None, :, :]).all(-1)
    found = matches.float().argmax(1)
    assert matches.any(1).all()
    assert sorted(found.tolist()) == list(range(len(reference)))
    assert torch.equal(labels, torch.as_tensor(bunch.target)[found])
    assert torch.equal(digits.make_dataset("train", n=7, flat=True).tensors[0],
                       train.tensors[0][:7].flatten(1))  # fmt: skip


@pytest.mark.parametrize("n", [0, 1438, 2.5, True])
def test_a_bad_size_is_refused_with_the_split_s_range(n: object) -> None:
    require("sklearn.datasets")
    from gdscope.examples import digits

    with pytest.raises(GdscopeError, match="from 1 to 1437"):
        digits.make_dataset("train", n=n)  # type: ignore[arg-type]


def test_the_model_reads_a_batch_of_the_loader() -> None:
    require("sklearn.datasets")
    from gdscope.examples import digits

    x, y = next(iter(digits.make_loader(32)))
    assert digits.make_model()(x).shape == (32, 10) and y.dtype == torch.long
