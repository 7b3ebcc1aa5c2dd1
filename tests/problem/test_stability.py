"""Stability of the article's problem: Hessian eigenvalues and the critical learning rate."""

from __future__ import annotations

import pytest
import torch

from gdscope.problem.stability import critical_lr, hessian_eigenvalues


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
