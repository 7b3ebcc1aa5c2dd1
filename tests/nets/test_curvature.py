"""The curvature of a model against its full Hessian (float64): top-k eigenvalues and
eigenvectors, Hutchinson's trace, SLQ's density; the operator in train mode; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.autograd.function import once_differentiable
from torch.func import functional_call

from gdscope import interrupts
from gdscope.errors import GdscopeError
from gdscope.modules import ParamLayout
from gdscope.nets.curvature import HessianOperator, curvature, top_eigenpairs, wasserstein


def _tiny(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = torch.randn(40, 3, dtype=torch.float64)
    y = torch.randn(40, 2, dtype=torch.float64)
    return model, x, y


def _full_hessian(model, batches, loss_fn):
    """The exact Hessian of the size-weighted mean loss, by ``autograd.functional.hessian``."""
    layout = ParamLayout.of(model)
    seen = sum(len(t) for _, t in batches)

    def mean_loss(p):
        params = layout.unflatten(p)
        return sum(loss_fn(functional_call(model, params, (x,)), t) * len(t)
                   for x, t in batches) / seen  # fmt: skip

    return torch.autograd.functional.hessian(mean_loss, layout.vector(model))


@pytest.mark.parametrize("split", [1, 3], ids=["one batch (graph kept)", "three batches"])
def test_top_eigenpairs_match_the_full_hessian(split):
    model, x, y = _tiny()
    batches = list(zip(x.chunk(split), y.chunk(split), strict=True))
    hessian = _full_hessian(model, batches, nn.MSELoss())
    exact, vectors = torch.linalg.eigh(hessian)
    spectrum = curvature(model, batches, nn.MSELoss(), top=3, tol=1e-10)
    assert spectrum.converged
    top = exact.flip(0)[:3].numpy()
    np.testing.assert_allclose(spectrum.eigenvalues, top, rtol=1e-6)
    for i in range(3):
        v = vectors[:, -1 - i]
        gap = min(
            (spectrum.eigenvectors[i] - v).abs().max(), (spectrum.eigenvectors[i] + v).abs().max()
        )
        assert gap < 1e-4
    # The residual bound holds: an exact eigenvalue lies within each residual.
    assert np.all(np.abs(spectrum.eigenvalues - top) <= spectrum.residuals + 1e-12)


def test_the_default_tolerance_is_met():
    model, x, y = _tiny(1)
    exact = torch.linalg.eigvalsh(_full_hessian(model, [(x, y)], nn.MSELoss()))[-1].item()
    spectrum = curvature(model, [(x, y)], nn.MSELoss())  # tol 1e-3
    assert spectrum.converged
    assert abs(spectrum.eigenvalues[0] / exact - 1) <= 1e-3


def test_trace_is_within_three_standard_errors():
    model, x, y = _tiny(2)
    exact = _full_hessian(model, [(x, y)], nn.MSELoss()).trace().item()
    spectrum = curvature(model, [(x, y)], nn.MSELoss(), trace=True, trace_samples=200)
    assert spectrum.trace_samples == 200 and spectrum.trace_se > 0
    assert abs(spectrum.trace - exact) <= 3 * spectrum.trace_se


def test_density_is_close_to_the_exact_spectrum_in_wasserstein_distance():
    model, x, y = _tiny(3)
    exact = torch.linalg.eigvalsh(_full_hessian(model, [(x, y)], nn.MSELoss())).numpy()
    spectrum = curvature(model, [(x, y)], nn.MSELoss(), density=True, density_runs=8,
                         density_steps=len(exact))  # fmt: skip
    density = spectrum.density
    assert density is not None
    np.testing.assert_allclose(density.weights.sum(1), 1.0, rtol=1e-9)
    distance = wasserstein(density.nodes.ravel(), density.weights.ravel(), exact,
                           np.ones_like(exact))  # fmt: skip
    spread = exact.max() - exact.min()
    print(f"SLQ (8 runs) vs exact spectrum: W1 = {distance:.4f}, spread {spread:.3f}")
    assert distance < 0.1 * spread
    # Its smoothed density integrates to one.
    grid = np.linspace(exact.min() - 1, exact.max() + 1, 4001)
    assert np.trapezoid(density.smoothed(grid, 0.05), grid) == pytest.approx(1.0, rel=1e-3)


def test_wasserstein_of_two_point_masses_is_their_distance():
    one = np.array([1.0])
    assert wasserstein(np.array([0.0]), one, np.array([2.5]), one) == pytest.approx(2.5)


def test_preconditioned_operator_is_d_h_d():
    model, x, y = _tiny(4)
    hessian = _full_hessian(model, [(x, y)], nn.MSELoss())
    scale = torch.linspace(0.5, 2.0, len(hessian), dtype=torch.float64)
    operator = HessianOperator(model, [(x, y)], nn.MSELoss(), scale=scale)
    values, *_ = top_eigenpairs(operator, 2, tol=1e-10)
    exact = torch.linalg.eigvalsh(scale[:, None] * hessian * scale[None]).flip(0)[:2]
    np.testing.assert_allclose(values, exact.numpy(), rtol=1e-6)


def test_train_mode_uses_batch_statistics_and_a_fixed_dropout_mask():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Dropout(0.3),
                          nn.Linear(6, 1)).double().eval()  # fmt: skip
    x, y = torch.randn(32, 3, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
    running = model[1].running_mean.clone()
    operator = HessianOperator(model, [(x, y)], nn.MSELoss(), train=True, keep=False)
    u, v = torch.randn(2, operator.size, dtype=torch.float64)
    # One symmetric matrix: the same mask every product, so u·Hv = v·Hu.
    assert float(u @ operator(v)) == pytest.approx(float(v @ operator(u)), rel=1e-10)
    assert torch.equal(model[1].running_mean, running) and not model.training
    evaluated = HessianOperator(model, [(x, y)], nn.MSELoss())
    assert not torch.allclose(evaluated(v), operator(v))


class _Clip(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(-1, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() < 1)


def test_bad_input_says_what_is_wrong():
    model, x, y = _tiny()
    with pytest.raises(GdscopeError, match="no trainable parameters"):
        curvature(model.requires_grad_(False), [(x, y)], nn.MSELoss())
    model.requires_grad_(True)
    with pytest.raises(GdscopeError, match="more eigenvalues than the model's 26"):
        curvature(model, [(x, y)], nn.MSELoss(), top=27)
    with pytest.raises(GdscopeError, match="not twice differentiable: _ClipBackward"):
        curvature(model, [(x, y)], lambda out, t: ((_Clip.apply(out) - t) ** 2).mean())
    with pytest.raises(GdscopeError, match="not finite"):
        curvature(model, [(x, y)], lambda out, t: ((out * 1e200) ** 2).mean())
    with pytest.raises(GdscopeError, match="scalar"):
        curvature(model, [(x, y)], lambda out, t: out - t)


def test_a_dataloader_or_one_pair_is_read_as_its_batches():
    """Any data ``nets.plane.materialize`` takes, as ``model_landscape`` does."""
    from torch.utils.data import DataLoader, TensorDataset

    model, x, y = _tiny()
    want = curvature(model, [(x[:20], y[:20]), (x[20:], y[20:])], nn.MSELoss(), top=2, seed=0)
    loader = DataLoader(TensorDataset(x, y), batch_size=20)
    for data in (loader, (x, y)):
        got = curvature(model, data, nn.MSELoss(), top=2, seed=0)
        np.testing.assert_allclose(got.eigenvalues, want.eigenvalues, rtol=1e-9)
        assert got.samples == 40
    with pytest.raises(GdscopeError, match="must yield"):
        curvature(model, [x], nn.MSELoss())


class _Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**2

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad


class _DetachedSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**2

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return (2 * x * grad).detach()


class _Squared(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function.apply(x)


@pytest.mark.parametrize("function", [_Square, _DetachedSquare])
def test_a_backward_that_cannot_be_differentiated_again_is_refused_wherever_it_sits(function):
    # Applied last in the loss its incoming gradient is a constant: unless the gradient is
    # seeded with one that requires grad, nothing shows and H silently misses its x².
    model, x, y = _tiny()
    name = f"not twice differentiable: {function.__name__}Backward"
    with pytest.raises(GdscopeError, match=name):
        operator = HessianOperator(model, [(x, y)], lambda out, t: function.apply(out).mean())
        operator(torch.ones(operator.size, dtype=torch.float64))
    with pytest.raises(GdscopeError, match=name):
        curvature(model, [(x, y)], lambda out, t: function.apply(out).mean(), top=2)
    inside = nn.Sequential(model[0], _Squared(function), model[2])
    with pytest.raises(GdscopeError, match=name):
        curvature(inside, [(x, y)], nn.MSELoss(), top=2)


def test_a_backward_that_returns_zeros_is_not_refused():
    class Flat(torch.autograd.Function):  # a step: its derivative is zero, its Hessian too
        @staticmethod
        def forward(ctx, x):
            return x.round()

        @staticmethod
        def backward(ctx, grad):
            return torch.zeros_like(grad).detach()

    model, x, y = _tiny()
    spectrum = curvature(model, [(x, y)], lambda out, t: (Flat.apply(out) + out**2).mean(), top=2)
    exact = _full_hessian(model, [(x, y)], lambda out, t: (out**2).mean())
    np.testing.assert_allclose(spectrum.eigenvalues, torch.linalg.eigvalsh(exact).flip(0)[:2],
                               rtol=1e-3)  # fmt: skip


def test_a_linear_loss_has_zero_curvature():
    model = nn.Linear(3, 1).double()
    x = torch.randn(8, 3, dtype=torch.float64)
    spectrum = curvature(model, [(x, x[:, :1])], lambda out, t: out.mean(), top=2, trace=True)
    assert np.all(spectrum.eigenvalues == 0) and spectrum.trace == 0


def test_ctrl_c_keeps_what_finished():
    model, x, y = _tiny()

    def progress(done, total):
        if done >= 110:  # during the trace (the eigenvalues count as 100)
            interrupts._STATE.request.set()

    try:
        spectrum = curvature(model, [(x, y)], nn.MSELoss(), top=2, tol=1e-10, trace=True,
                             density=True, progress=progress)  # fmt: skip
    finally:
        interrupts._STATE.request.clear()
    assert spectrum.interrupted and spectrum.converged and len(spectrum.eigenvalues) == 2
    assert spectrum.trace is not None and 2 <= spectrum.trace_samples < 100
    assert spectrum.density is None


def test_the_line_along_the_top_eigenvector_curves_with_lambda():
    from gdscope.nets.survey import model_landscape

    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    x, y = torch.randn(64, 3), torch.randn(64, 2)
    result = model_landscape(model, (x, y), nn.MSELoss(), directions="hessian", norm="none",
                             line=True, x=(-0.2, 0.2, 41), strategy="loop")  # fmt: skip
    assert result.eigenvalues is not None and result.eigenvalues[0] >= result.eigenvalues[1]
    surface = result.surface
    fitted = np.polynomial.polynomial.polyfit(surface.xs, surface.loss[0], 4)
    assert 2 * fitted[2] == pytest.approx(result.eigenvalues[0], rel=1e-2)
    exact = curvature(model, [(x, y)], nn.MSELoss(), tol=1e-6).eigenvalues[0]
    assert result.eigenvalues[0] == pytest.approx(exact, rel=1e-3)


def test_a_hessian_plane_is_labelled_with_its_eigenvalues():
    from gdscope.jobs.landscape import draw_landscape, plane_labels
    from gdscope.nets.survey import model_landscape

    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    x, y = torch.randn(64, 3), torch.randn(64, 2)
    result = model_landscape(model, (x, y), nn.MSELoss(), directions="hessian", points=5,
                             strategy="loop")  # fmt: skip
    assert result.surface.loss.shape == (5, 5)
    vertical, horizontal = plane_labels(result)
    assert horizontal == f"Hessian eigenvector 1 (λ = {result.eigenvalues[0]:.3g})"
    assert vertical.startswith("Hessian eigenvector 2")
    fig = draw_landscape(result)
    assert fig.axes[0].get_xlabel() == horizontal


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_curvature_on_cuda_matches_the_cpu():
    model, x, y = _tiny(7)
    cpu = curvature(model, [(x, y)], nn.MSELoss(), top=2, tol=1e-10, trace=True)
    gpu = curvature(model.cuda(), [(x.cuda(), y.cuda())], nn.MSELoss(), top=2, tol=1e-10,
                    trace=True)  # fmt: skip
    np.testing.assert_allclose(gpu.eigenvalues, cpu.eigenvalues, rtol=1e-9)
    assert gpu.eigenvectors.device.type == "cuda"
    assert gpu.trace == pytest.approx(cpu.trace, rel=1e-9)  # the same seeded vectors


def test_the_operator_leaves_every_modules_mode_as_it_was():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 1)).double()
    model.eval()
    model[1].train()  # mixed, as a user may leave them
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    for train in (False, True):
        operator = HessianOperator(model, [(x, y)], nn.MSELoss(), train=train)
        operator(torch.ones(operator.size, dtype=torch.float64))
        assert [m.training for m in model] == [False, True, False, False]


# Repeated eigenvalues. Single-vector Lanczos finds one copy of an eigenvalue however often it
# is repeated (its Krylov space holds the start's part in each eigenspace, one vector), and
# still reports every Ritz pair converged: top-k must count copies.


def _fourfold(seed: int = 0):
    """``nn.Linear(60, 4)`` under MSE: ``H = I₄ ⊗ (2/(4n))·XᵀX``, every eigenvalue four times."""
    torch.manual_seed(seed)
    model = nn.Linear(60, 4, bias=False).double()
    x, y = torch.randn(200, 60, dtype=torch.float64), torch.randn(200, 4, dtype=torch.float64)
    return model, x, y


def _quadratic(eigenvalues, seed: int = 0):
    """A linear model whose MSE Hessian has exactly ``eigenvalues`` (non-negative) in random
    directions: ``H = (2/n)·XᵀX`` with ``X = √(n/2)·diag(√λ)·Qᵀ``."""
    generator = torch.Generator().manual_seed(seed)
    size = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
    root = torch.tensor(eigenvalues, dtype=torch.float64).sqrt()
    x = (size / 2) ** 0.5 * root[:, None] * q.T
    model = nn.Linear(size, 1, bias=False).double()
    return model, x, torch.randn(size, 1, generator=generator, dtype=torch.float64)


def _exact(model, x, y):
    """The full Hessian's eigenvalues (descending) and eigenvectors (columns), float64."""
    values, vectors = torch.linalg.eigh(_full_hessian(model, [(x, y)], nn.MSELoss()))
    return values.flip(0).numpy(), vectors.flip(1)


def _inside(vectors, basis):
    """How far each row of ``vectors`` is from the span of ``basis``'s columns."""
    return (vectors - (vectors @ basis) @ basis.T).norm(dim=1)


@pytest.mark.parametrize("tol", [1e-3, 1e-8])
def test_top_k_counts_an_eigenvalue_repeated_four_times(tol):
    model, x, y = _fourfold()
    exact, vectors = _exact(model, x, y)
    assert exact[0] - exact[3] < 1e-12 < exact[3] - exact[4]  # four copies, then the next
    spectrum = curvature(model, [(x, y)], nn.MSELoss(), top=5, tol=tol, steps=400)
    assert spectrum.converged
    np.testing.assert_allclose(spectrum.eigenvalues, exact[:5], rtol=max(tol, 1e-10))
    # [λ₁ ×4, λ₂], not [λ₁, λ₂, λ₃, …]: the first four vectors lie in the top eigenspace
    # (within Davis–Kahan's residual/gap).
    inside = _inside(spectrum.eigenvectors[:4], vectors[:, :4]).numpy()
    assert np.all(inside <= spectrum.residuals[:4] / (exact[3] - exact[4]) + 1e-9)
    gram = spectrum.eigenvectors @ spectrum.eigenvectors.T
    torch.testing.assert_close(gram, torch.eye(5, dtype=torch.float64), atol=1e-8, rtol=0)
    assert np.all(np.abs(spectrum.eigenvalues - exact[:5]) <= spectrum.residuals + 1e-12)


@pytest.mark.parametrize("top", [2, 3, 6, 9])
def test_every_top_k_of_a_fourfold_spectrum(top):
    model, x, y = _fourfold(1)
    exact, _ = _exact(model, x, y)
    spectrum = curvature(model, [(x, y)], nn.MSELoss(), top=top, tol=1e-6, steps=600)
    assert spectrum.converged and len(spectrum.eigenvalues) == top
    np.testing.assert_allclose(spectrum.eigenvalues, exact[:top], rtol=1e-6)


@pytest.mark.parametrize("tol", [1e-3, 1e-8])
@pytest.mark.parametrize("top", [2, 3, 4])
def test_a_cluster_within_1e7_has_every_member_found(top, tol):
    bulk = np.linspace(4.5, 0.1, 197)
    eigenvalues = [5.0, 5.0 - 5e-8, 5.0 - 1e-7, *bulk]
    model, x, y = _quadratic(eigenvalues)
    exact, vectors = _exact(model, x, y)
    np.testing.assert_allclose(exact[:4], [5.0, 5.0 - 5e-8, 5.0 - 1e-7, 4.5], rtol=1e-12)
    spectrum = curvature(model, [(x, y)], nn.MSELoss(), top=top, tol=tol, steps=600)
    assert spectrum.converged
    assert np.all(np.abs(spectrum.eigenvalues - exact[:top]) <= tol * exact[:top])
    # The members' vectors lie in the cluster's eigenspace (within Davis–Kahan's
    # residual/gap), and a fourth is the next eigenvalue's, not another member.
    members = min(top, 3)
    inside = _inside(spectrum.eigenvectors[:members], vectors[:, :3]).numpy()
    assert np.all(inside <= spectrum.residuals[:members] / (exact[2] - exact[3]) + 1e-9)
    if top == 4:
        inside = _inside(spectrum.eigenvectors[3:], vectors[:, :3]).numpy()
        assert np.all(inside > 0.9)


@settings(max_examples=12, deadline=None)
@given(counts=st.lists(st.integers(1, 5), min_size=1, max_size=4), top=st.integers(1, 9),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_top_k_of_drawn_multiplicities_matches_the_full_hessian(counts, top, seed):
    """Distinct eigenvalues, each repeated 1–5 times, above a spread-out bulk."""
    levels = np.linspace(3.0, 2.0, len(counts))
    repeated = [value for value, count in zip(levels, counts, strict=True) for _ in range(count)]
    model, x, y = _quadratic([*repeated, *np.linspace(1.5, 0.1, 120 - len(repeated))], seed)
    exact, _ = _exact(model, x, y)
    spectrum = curvature(model, [(x, y)], nn.MSELoss(), top=top, tol=1e-6, steps=800, seed=seed)
    assert spectrum.converged
    np.testing.assert_allclose(spectrum.eigenvalues, exact[:top], rtol=1e-5)


@pytest.mark.parametrize("steps", [8, 40, 80, 120, 160, 400])
def test_converged_only_when_the_answer_is_right(steps):
    """However the budget cuts it (before the first run converged, or after it but before the
    restart that finds the missing copies), ``converged`` is never claimed for a wrong top-5."""
    model, x, y = _fourfold()
    exact, _ = _exact(model, x, y)
    spectrum = curvature(model, [(x, y)], nn.MSELoss(), top=5, tol=1e-6, steps=steps)
    assert spectrum.hvps <= steps
    right = len(spectrum.eigenvalues) == 5 and np.allclose(spectrum.eigenvalues, exact[:5],
                                                           rtol=1e-5)  # fmt: skip
    assert right or not spectrum.converged
    assert spectrum.converged == (steps >= 160)  # too few products: not converged
