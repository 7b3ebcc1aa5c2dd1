from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gdscope.errors import GdscopeError
from gdscope.problem.stability import critical_lr, hessian_eigenvalues
from gdscope.studies.phase import analytic_stable, phase_diagram
from gdscope.studies.sweep import Axis, expand, run_grid, save_grid


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


def test_analytic_border_formula_against_simulation_of_the_recurrence():
    # Heavy ball on a 1-D quadratic with curvature lam: e' = (1+mu-a) e - mu e_prev.
    lam = 2.0
    for mu in (0.0, 0.3, 0.9):
        border = float(critical_lr(lam, mu))
        for lr, grows in ((border * 0.97, False), (border * 1.03, True)):
            e, prev = 1.0, 1.0
            for _ in range(3000):
                e, prev = (1 + mu - lr * lam) * e - mu * prev, e
            assert (not abs(e) <= 1.0) == grows  # NaN after overflow counts as growth
    assert float(critical_lr(lam, 0.9, nesterov=True)) < float(critical_lr(lam, 0.9))


def test_hessian_eigenvalues_match_autograd(article_data):
    from torch.autograd.functional import hessian

    x, y = (
        torch.tensor(article_data.x, dtype=torch.float64),
        torch.tensor(article_data.y, dtype=torch.float64),
    )
    h = hessian(
        lambda p: torch.nn.functional.mse_loss(x * p[0] + p[1], y),
        torch.zeros(2, dtype=torch.float64),
    )
    expected = torch.linalg.eigvalsh(h).tolist()
    assert hessian_eigenvalues(article_data) == pytest.approx(expected, rel=1e-12)


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


def test_axis_parsing():
    assert Axis.parse("lr=0.01:0.5:3").values == (0.01, 0.255, 0.5)
    log = Axis.parse("lr=1e-3:1:4:log")
    assert log.log and log.values == pytest.approx((1e-3, 1e-2, 1e-1, 1.0))
    assert Axis.parse("nesterov=false,true").values == (False, True)
    for bad in ["lr", "lr=", "lr=1:2", "lr=0:1:3:log", "lr=a,b", "lr=1:2:0", "lr=nan,1"]:
        with pytest.raises(GdscopeError):
            Axis.parse(bad)
    grid = expand([Axis("a", (1.0, 2.0)), Axis("b", (10.0, 20.0, 30.0))])
    assert grid["a"].tolist() == [1, 1, 1, 2, 2, 2] and grid["b"].tolist() == [10, 20, 30] * 2


def test_chunks_progress_and_save(article_data, tmp_path):
    seen = []
    axes = [Axis.parse("lr=0.01:0.3:5"), Axis.parse("momentum=0,0.9")]
    run = run_grid(article_data, "sgd", axes, fixed={"dampening": 0.1}, epochs=20, chunk=3,
                   progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    assert seen == [(0, 10), (3, 10), (6, 10), (9, 10), (10, 10)]  # the total first
    whole = run_grid(article_data, "sgd", axes, fixed={"dampening": 0.1}, epochs=20)
    np.testing.assert_array_equal(run.metrics["final_loss"], whole.metrics["final_loss"])
    for suffix in (".csv", ".json", ".npz"):
        path = save_grid(run, tmp_path / f"r{suffix}")
        with pytest.raises(GdscopeError, match="already exists"):
            save_grid(run, path)
    cells = json.loads((tmp_path / "r.json").read_text())["cells"]
    assert len(cells) == 10 and cells[9]["lr"] == 0.3 and cells[9]["momentum"] == 0.9
    assert cells[0]["dampening"] == pytest.approx(0.1)
    npz = np.load(tmp_path / "r.npz")
    np.testing.assert_array_equal(npz["metric_final_loss"], run.metrics["final_loss"])
    assert (tmp_path / "r.csv").read_text().splitlines()[1].startswith("cell,")


def test_interrupted_grid_keeps_finished_chunks(article_data, monkeypatch):
    import gdscope.studies.sweep as sweep

    real, calls = sweep.run_batched, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep, "run_batched", flaky)
    run = run_grid(article_data, "sgd", [Axis.parse("lr=0.01:0.3:6")], epochs=10, chunk=4)
    assert run.interrupted and run.completed.tolist() == [True] * 4 + [False] * 2
    assert np.isnan(run.grid("final_loss")[4:]).all()
