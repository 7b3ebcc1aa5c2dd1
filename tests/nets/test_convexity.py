"""The convexity map (Li et al.'s |λ_min/λ_max|) against the exact Hessian of a tiny float64
model at the same plane points (torch.autograd.functional.hessian, torch.linalg.eigvalsh)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from gdscope import interrupts
from gdscope.errors import GdscopeError
from gdscope.nets.convexity import ConvexityOptions, convexity_map
from gdscope.nets.curvature import HessianOperator, extreme_eigenvalues
from gdscope.nets.survey import model_landscape


def _tiny(seed: int = 0, *, hidden: bool = True):
    torch.manual_seed(seed)
    layers = [nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)] if hidden else [nn.Linear(3, 2)]
    model = nn.Sequential(*layers).double()
    x = torch.randn(40, 3, dtype=torch.float64)
    y = torch.randn(40, 2, dtype=torch.float64)
    return model, x, y


def _exact(model, layout, point, x, y):
    """The eigenvalues (ascending) of the exact Hessian of the MSE at ``point``."""

    def loss(p):
        return nn.functional.mse_loss(functional_call(model, layout.unflatten(p), (x,)), y)

    hessian = torch.autograd.functional.hessian(loss, point.double())
    return torch.linalg.eigvalsh(hessian).numpy()


def test_the_extreme_eigenvalues_are_the_exact_hessians_ends():
    model, x, y = _tiny()
    operator = HessianOperator(model, [(x, y)], nn.MSELoss())
    exact = _exact(model, operator.layout, operator.point, x, y)
    start = torch.randn(operator.size, generator=torch.Generator().manual_seed(1),
                        dtype=torch.float64)  # fmt: skip
    found = extreme_eigenvalues(operator, start, tol=1e-10)
    assert found.converged
    assert exact[0] < 0 < exact[-1]  # the test means something: both ends
    np.testing.assert_allclose([found.lowest, found.highest], exact[[0, -1]], rtol=1e-8)
    assert abs(found.lowest - exact[0]) <= found.residuals[0] + 1e-12


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_map_is_the_exact_ratio_at_every_plane_point(seed):
    model, x, y = _tiny(seed)
    result = model_landscape(model, (x, y), nn.MSELoss(), points=5, seed=seed,
                             convexity=ConvexityOptions(points=3, tol=1e-9))  # fmt: skip
    found = result.convexity
    assert found is not None and found.converged.all() and found.done == 9
    np.testing.assert_allclose(found.xs, [-1, 0, 1])
    for j, yy in enumerate(found.ys):
        for i, xx in enumerate(found.xs):
            exact = _exact(model, result.surface.layout, result.surface.point(xx, yy), x, y)
            np.testing.assert_allclose([found.lowest[j, i], found.highest[j, i]],
                                       exact[[0, -1]], rtol=1e-6, atol=1e-9)  # fmt: skip
            ratio = abs(exact[0] / exact[-1]) if exact[0] < 0 else 0.0
            assert found.ratio[j, i] == pytest.approx(ratio, rel=1e-5, abs=1e-9)
    expected = float((found.ratio > 0.1).mean())
    assert found.non_convex() == expected and found.non_convex(threshold=1e9) == 0.0


def test_a_convex_loss_counts_as_convex_everywhere():
    """A linear model under the MSE: its Hessian is positive semi-definite at every point, so
    the ratio is 0 there (not λ_min/λ_max of the bowl)."""
    model, x, y = _tiny(hidden=False)
    found = model_landscape(model, (x, y), nn.MSELoss(), points=3, norm="layer", ignore="keep",
                            convexity=ConvexityOptions(points=2, tol=1e-9)).convexity  # fmt: skip
    assert found is not None
    assert (found.lowest > -1e-9).all() and (found.ratio == 0).all() and found.non_convex() == 0


def test_bad_options_and_a_line_are_refused():
    for bad in ({"points": 1}, {"samples": 0}, {"steps": True}, {"tol": 1.5}):
        with pytest.raises(GdscopeError, match="convexity"):
            ConvexityOptions(**bad)
    model, x, y = _tiny()
    with pytest.raises(GdscopeError, match="a plane, not a line"):
        model_landscape(model, (x, y), nn.MSELoss(), line=True, convexity=ConvexityOptions())
    with pytest.raises(GdscopeError, match="ConvexityOptions"):
        model_landscape(model, (x, y), nn.MSELoss(), convexity=True)


def test_ctrl_c_keeps_the_points_that_finished(monkeypatch):
    model, x, y = _tiny()
    surface = model_landscape(model, (x, y), nn.MSELoss(), points=3).surface
    stop = []
    monkeypatch.setattr(interrupts, "requested", lambda: bool(stop))
    found = convexity_map(model, [(x, y)], nn.MSELoss(), surface,
                          options=ConvexityOptions(points=3),
                          progress=lambda done, total: stop.append(done))  # fmt: skip
    assert found.done == 1 and np.isfinite(found.lowest[0, 0])
    assert np.isnan(found.ratio.ravel()[1:]).all()
    assert found.non_convex() in (0.0, 1.0)  # over the one point computed


def test_samples_take_the_first_ones():
    model, x, y = _tiny()
    surface = model_landscape(model, (x, y), nn.MSELoss(), points=3).surface
    options = ConvexityOptions(points=2, samples=10, tol=1e-9)
    found = convexity_map(model, [(x, y)], nn.MSELoss(), surface, options=options)
    assert found.samples == 10
    exact = _exact(model, surface.layout, surface.point(-1.0, -1.0), x[:10], y[:10])
    np.testing.assert_allclose(found.lowest[0, 0], exact[0], rtol=1e-6)
