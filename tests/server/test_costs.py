"""The cost table covers every optimizer, loss and computation a route runs."""

from __future__ import annotations

from gdscope.optim.table import OPTIMIZER_TABLE
from gdscope.problem.losses import LOSS_NAMES
from gdscope.server.costs import (
    COSTS,
    FUNCTION,
    MAP_COSTS,
    MINIMUM_COSTS,
    NATIVE_COSTS,
    map_seconds,
    minimum_seconds,
)


def test_every_optimizer_and_loss_has_a_measured_price():
    columns = {*LOSS_NAMES, FUNCTION}
    assert set(COSTS) == set(OPTIMIZER_TABLE)
    for table in COSTS.values():
        assert set(table) == columns and all(min(c) >= 0 and c[0] > 0 for c in table.values())
    assert set(MAP_COSTS) == columns and min(MAP_COSTS.values()) > 0
    for optimizer, table in NATIVE_COSTS.items():
        assert set(table) == set(LOSS_NAMES) and optimizer in COSTS


def test_find_minimum_is_priced_for_every_loss():
    assert set(MINIMUM_COSTS) == set(LOSS_NAMES)
    for loss in LOSS_NAMES:
        assert 0 < minimum_seconds(loss, points=2) <= minimum_seconds(loss, points=1000)


def test_prices_grow_with_the_work():
    assert map_seconds("mse", cells=100, points=10) < map_seconds("mse", cells=100, points=20)
