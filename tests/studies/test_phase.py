from __future__ import annotations

import numpy as np
import pytest
import torch

from gdscope.studies.phase import analytic_stable, phase_diagram
from gdscope.studies.sweep import Axis


def border_index(row: np.ndarray) -> int:
    """Index of the first True (the row's length if none)."""
    return int(np.argmax(row)) if row.any() else len(row)


@pytest.mark.parametrize(
    ("fixed", "y"),
    [
        ({}, "momentum=0:0.99:24"),
        ({"nesterov": True}, "momentum=0.01:0.99:24"),
        ({"momentum": 0.9}, "dampening=0:0.95:24"),
        ({"momentum": 0.5}, "weight_decay=0:3:24"),
    ],
)
def test_measured_border_is_within_one_cell_of_the_analytic_one(article_data, fixed, y):
    run = phase_diagram(
        article_data, x=Axis.parse("lr=1e-2:5:64:log"), y=Axis.parse(y), fixed=fixed,
        epochs=100, dtype=torch.float64,
    )  # fmt: skip
    measured = run.grid("diverged") > 0.5
    stable = analytic_stable(run, article_data)
    assert measured.any() and (~measured).any()
    for row in range(measured.shape[0]):
        assert abs(border_index(measured[row]) - border_index(~stable[row])) <= 1, row


def test_phase_metrics(article_data):
    run = phase_diagram(
        article_data, x=Axis.parse("lr=0.05,0.5,3"), y=Axis.parse("momentum=0,0.9"), epochs=60
    )
    assert run.grid("final_loss").shape == (2, 3)
    diverged = run.grid("diverged")
    assert diverged[:, 2].tolist() == [1.0, 1.0] and diverged[:, 0].tolist() == [0.0, 0.0]
    steps = run.grid("steps")
    # lr 3 never gets there, lr 0.5 does, lr 0.05 too slowly for 60 epochs (NaN) or later.
    assert np.isnan(steps[0, 2]) and np.isfinite(steps[0, 1])
    assert np.isnan(steps[0, 0]) or steps[0, 1] < steps[0, 0]


def test_a_network_is_growing_when_its_loss_rose_by_half_its_size_whatever_the_sign():
    from gdscope.studies.phase import NETWORK_GROWTH, network_growing

    start = np.array([2.0, 2.0, -1.0, -1.0, 0.0])
    final = np.array([2.9, 3.1, -0.6, -0.4, 0.0])
    assert NETWORK_GROWTH == 1.5
    np.testing.assert_array_equal(network_growing(final, start), [False, True, False, True, False])
    # A loss that ends non-finite (weights finite, their loss overflowing) grew too.
    ends = np.array([np.nan, np.inf, -np.inf])
    np.testing.assert_array_equal(network_growing(ends, np.full(3, 2.0)), [True, True, True])
