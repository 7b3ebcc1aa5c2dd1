"""Directions in parameter space: filter and layer normalization, lines between models, PCA
of a path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gdscope.errors import GdscopeError
from gdscope.examples import cnn, mlp
from gdscope.nets.directions import (
    hessian_directions,
    line_direction,
    normalize,
    pca_plane,
    random_direction,
)
from gdscope.nets.plane import evaluate_plane
from gdscope.nets.recorder import ParamLayout, RecordedPath

from ..reference import direct_loss, small_cnn_data


@pytest.mark.parametrize("ignore", ["biasbn", "keep"])
def test_filter_normalized_directions_have_the_filters_norms(trained_cnn, ignore):
    direction = random_direction(trained_cnn, norm="filter", ignore=ignore, seed=5)
    layout = ParamLayout.of(trained_cnn)
    parts = layout.unflatten(direction)
    params = dict(trained_cnn.named_parameters())
    for name in layout.names:
        d, w = parts[name], params[name].detach()
        if w.dim() <= 1:  # biases and BatchNorm's scales and shifts
            expected = torch.zeros_like(w) if ignore == "biasbn" else w
            torch.testing.assert_close(d, expected)
            continue
        for i in range(w.shape[0]):  # filter by filter
            assert float(d[i].norm()) == pytest.approx(float(w[i].norm()), rel=1e-5)


def test_layer_normalization_and_seeds(trained_cnn):
    direction = random_direction(trained_cnn, norm="layer", seed=1)
    parts = ParamLayout.of(trained_cnn).unflatten(direction)
    conv = dict(trained_cnn.named_parameters())["features.0.weight"]
    assert float(parts["features.0.weight"].norm()) == pytest.approx(float(conv.norm()), rel=1e-5)
    assert torch.equal(random_direction(trained_cnn, seed=1), random_direction(trained_cnn, seed=1))
    assert not torch.equal(
        random_direction(trained_cnn, seed=1), random_direction(trained_cnn, seed=2)
    )
    with pytest.raises(GdscopeError, match="norm must be one of"):
        normalize(direction, trained_cnn, norm="weird")


def plane_path(count=12, size=300, seed=0):
    generator = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(size, 2, generator=generator, dtype=torch.float64))
    u, v = basis[:, 0], basis[:, 1]
    centre = torch.randn(size, generator=generator, dtype=torch.float64)
    t = torch.linspace(0, 1, count, dtype=torch.float64)
    points = centre + (3 * t)[:, None] * u + torch.sin(4 * t)[:, None] * v
    layout = ParamLayout(("w",), ((size,),))
    path = RecordedPath(layout, points.float().numpy(), np.arange(count),
                        np.full(count, np.nan))  # fmt: skip
    return path, u, v


def test_pca_of_a_path_in_a_known_plane_recovers_the_plane():
    path, u, v = plane_path()
    plane = pca_plane(path)
    basis = torch.stack([plane.dx, plane.dy]).double()
    for true in (u, v):
        inside = basis.T @ (basis @ true)
        assert float((true - inside).norm()) < 1e-5  # u and v lie in the recovered plane
    assert plane.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-6)
    assert plane.explained_variance_ratio[0] >= plane.explained_variance_ratio[1]
    assert abs(float(plane.dx @ plane.dy)) < 1e-5
    torch.testing.assert_close(plane.centre, torch.from_numpy(path.snapshots[-1]))


def test_pca_matches_a_dense_svd_in_blocks():
    path, _, _ = plane_path(count=9, size=50, seed=3)
    noisy = path.snapshots + 0.01 * np.random.RandomState(0).randn(*path.snapshots.shape)
    path = RecordedPath(path.layout, noisy.astype(np.float32), path.steps, path.losses)
    dense = pca_plane(path, block=10_000)
    blocked = pca_plane(path, block=7)
    for a, b in ((dense.dx, blocked.dx), (dense.dy, blocked.dy)):
        assert abs(float(a @ b)) == pytest.approx(1.0, abs=1e-5)
    matrix = noisy.astype(np.float64) - noisy[-1]
    matrix -= matrix.mean(0)
    singular = np.linalg.svd(matrix, compute_uv=False) ** 2
    np.testing.assert_allclose(dense.explained_variance_ratio, singular[:2] / singular.sum(),
                               rtol=1e-6)  # fmt: skip


def test_pca_of_a_diverged_path_names_its_first_non_finite_snapshot():
    path, _, _ = plane_path(count=6, size=20)
    snapshots = path.snapshots.copy()
    snapshots[4, 3], snapshots[5] = np.inf, np.nan  # the run diverged at snapshot 4
    steps = np.arange(6) * 5
    diverged = RecordedPath(path.layout, snapshots, steps, path.losses)
    for block in (7, 1 << 20):  # found in whichever block holds it
        with pytest.raises(GdscopeError, match=r"not finite from snapshot 4 \(step 20\)"
                           r".*stop the path before it"):  # fmt: skip
            pca_plane(diverged, block=block)


def _split(path, at):
    """``path`` as two recordings: its first ``at`` snapshots and the rest."""
    return [RecordedPath(path.layout, path.snapshots[part], path.steps[part], path.losses[part])
            for part in (slice(0, at), slice(at, None))]  # fmt: skip


@pytest.mark.parametrize("block", [5, 1 << 20])
def test_pca_of_several_paths_is_the_pca_of_their_union(block):
    path, _, _ = plane_path(count=10, size=40, seed=4)
    noisy = path.snapshots + 0.01 * np.random.RandomState(1).randn(*path.snapshots.shape)
    path = RecordedPath(path.layout, noisy.astype(np.float32), path.steps, path.losses)
    first, second = _split(path, 4)
    shared = pca_plane([first, second], block=block)
    # numpy's float64 PCA of the union (centred on its mean), each axis up to its sign
    union = noisy.astype(np.float32).astype(np.float64)
    _, singular, components = np.linalg.svd(union - union.mean(0), full_matrices=False)
    for direction, component in ((shared.dx, components[0]), (shared.dy, components[1])):
        found = direction.double().numpy()
        np.testing.assert_allclose(found, np.sign(found @ component) * component, atol=1e-6)
    np.testing.assert_allclose(shared.explained_variance_ratio,
                               singular[:2] ** 2 / (singular**2).sum(), rtol=1e-6)  # fmt: skip
    # through the first path's last snapshot unless told; the order of the union is the plane's
    assert torch.equal(shared.centre, torch.from_numpy(first.snapshots[-1]))
    swapped = pca_plane([second, first], block=block)
    assert abs(float(swapped.dx.double() @ shared.dx.double())) == pytest.approx(1.0, abs=1e-5)
    # one path in a list is that path
    alone = pca_plane([path], block=block)
    assert torch.equal(alone.dx, pca_plane(path, block=block).dx)


def test_pca_of_several_paths_names_the_one_that_diverged_and_refuses_two_layouts():
    path, _, _ = plane_path(count=8, size=20)
    snapshots = path.snapshots.copy()
    snapshots[6, 3] = np.inf  # snapshot 2 of the second path
    steps = np.arange(8) * 5
    diverged = RecordedPath(path.layout, snapshots, steps, path.losses)
    with pytest.raises(GdscopeError, match=r"recorded path 2 of 2 is not finite from snapshot 2 "
                       r"\(step 30\)"):  # fmt: skip
        pca_plane(_split(diverged, 4))
    other = RecordedPath(ParamLayout(("w",), ((19,),)), path.snapshots[:, :19], path.steps,
                         path.losses)  # fmt: skip
    with pytest.raises(GdscopeError, match="paths of one parameter layout"):
        pca_plane([path, other])


def test_pca_plane_goes_through_the_centre_it_is_given_with_the_same_directions():
    path, _, _ = plane_path(count=7, size=30, seed=2)
    last = pca_plane(path)
    centre = torch.randn(30)
    moved = pca_plane(path, centre=centre)
    assert torch.equal(moved.centre, centre)
    assert torch.equal(moved.dx, last.dx) and torch.equal(moved.dy, last.dy)
    assert np.array_equal(moved.explained_variance_ratio, last.explained_variance_ratio)
    # the model at the last snapshot (the usual case): the very same plane
    same = pca_plane(path, centre=torch.from_numpy(path.snapshots[-1]))
    assert torch.equal(same.centre, last.centre)


def test_line_between_two_models():
    # Directions move parameters only (the reference's dir_type=weights): a model without
    # buffers, so that the line's end is exactly the other model.
    start, end = mlp.make_model(seed=1).eval(), mlp.make_model(seed=2).eval()
    loader = mlp.make_loader()
    surface = evaluate_plane(start, loader, nn.CrossEntropyLoss(),
                             dx=line_direction(start, end), xs=[0.0, 0.5, 1.0])  # fmt: skip
    assert surface.is_line and surface.loss.shape == (1, 3)
    for x, model in ((0.0, start), (1.0, end)):
        own = direct_loss(model, loader, nn.CrossEntropyLoss())[0]
        assert surface.loss[0, int(2 * x)] == pytest.approx(own, rel=1e-5)


def test_states_directions_carry_batchnorm_statistics(trained_cnn):
    # Two BatchNorm networks with different running statistics: with weights-only directions
    # the line's end keeps the start's statistics; with states=True it is the other model.
    start = cnn.make_model(seed=3).eval()
    loader = small_cnn_data(128)
    end_loss = direct_loss(trained_cnn, loader, nn.CrossEntropyLoss())[0]
    weights = evaluate_plane(start, loader, nn.CrossEntropyLoss(),
                             dx=line_direction(start, trained_cnn), xs=[1.0])  # fmt: skip
    line = line_direction(start, trained_cnn, states=True)
    states = evaluate_plane(start, loader, nn.CrossEntropyLoss(), states=True, dx=line, xs=[1.0])
    assert states.loss[0, 0] == pytest.approx(end_loss, rel=1e-5)
    assert weights.loss[0, 0] != pytest.approx(end_loss, rel=1e-3)
    for strategy in ("vmap", "loop"):
        again = evaluate_plane(start, loader, nn.CrossEntropyLoss(), states=True,
                               strategy=strategy, xs=[1.0],
                               dx=line_direction(start, trained_cnn, states=True))  # fmt: skip
        assert again.loss[0, 0] == pytest.approx(end_loss, rel=1e-5)
    # the model's own buffers are restored after the loop
    fresh = dict(cnn.make_model(seed=3).named_buffers())["features.1.running_mean"]
    torch.testing.assert_close(dict(start.named_buffers())["features.1.running_mean"], fresh)
    layout = ParamLayout.of(trained_cnn, states=True)
    direction = random_direction(trained_cnn, states=True, seed=4)
    parts = layout.unflatten(direction)
    assert "features.1.running_var" in parts and not parts["features.1.running_var"].any()
    assert "features.1.num_batches_tracked" not in parts  # counters are not directions


def svd_flipped(matrix: np.ndarray) -> np.ndarray:
    """The first two rows of ``Vt`` of a dense SVD, signed by scikit-learn's ``svd_flip``
    definition with ``u_based_decision=True`` (the largest-magnitude entry of each column of
    ``U`` is positive): how its PCA signed ``components_`` before 1.5."""
    u, _, vt = np.linalg.svd(matrix, full_matrices=False)
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(u.shape[1])])
    return (vt * signs[:, None])[:2]


@pytest.mark.parametrize("seed", range(4))
def test_pca_components_are_signed_like_scikit_learn(seed):
    # eigh's signs are arbitrary: without the flip seeds 0, 1 (both components) and 3 (the
    # second) give a mirrored plane.
    snapshots = np.random.RandomState(seed).randn(8, 40).astype(np.float32)
    path = RecordedPath(ParamLayout(("w",), ((40,),)), snapshots, np.arange(8),
                        np.full(8, np.nan))  # fmt: skip
    matrix = snapshots.astype(np.float64) - snapshots[-1]
    matrix -= matrix.mean(0)
    expected = svd_flipped(matrix)
    plane = pca_plane(path, block=16)
    np.testing.assert_allclose(plane.dx.numpy(), expected[0], atol=1e-5)
    np.testing.assert_allclose(plane.dy.numpy(), expected[1], atol=1e-5)
    scores = matrix @ np.stack([plane.dx.numpy(), plane.dy.numpy()]).T  # U·S, column by column
    assert (scores[np.abs(scores).argmax(axis=0), [0, 1]] > 0).all()


def _top_eigenspace(model, x, y):
    """The exact Hessian's (``torch.autograd.functional.hessian``, float64) eigenvalues,
    descending, and eigenvectors (columns)."""
    from torch.func import functional_call

    layout = ParamLayout.of(model)

    def loss(p):
        return nn.MSELoss()(functional_call(model, layout.unflatten(p), (x,)), y)

    hessian = torch.autograd.functional.hessian(loss, layout.vector(model))
    values, vectors = torch.linalg.eigh(hessian)
    return values.flip(0).numpy(), vectors.flip(1)


@pytest.mark.parametrize("outputs", [2, 4], ids=["twofold", "fourfold"])
def test_hessian_directions_span_a_repeated_top_eigenspace(outputs):
    # nn.Linear(20, m) under MSE: H = I_m ⊗ (2/(m·n))·XᵀX, every eigenvalue m times. The two
    # directions are two orthonormal vectors of the top eigenspace (twofold: all of it), not
    # its first vector and the next eigenvalue's (single-vector Lanczos's second axis).
    torch.manual_seed(outputs)
    model = nn.Linear(20, outputs, bias=False).double()
    x, y = torch.randn(64, 20, dtype=torch.float64), torch.randn(64, outputs, dtype=torch.float64)
    exact, vectors = _top_eigenspace(model, x, y)
    assert exact[0] - exact[outputs - 1] < 1e-12 < exact[outputs - 1] - exact[outputs]
    top = vectors[:, :outputs]
    (dx, dy), eigenvalues = hessian_directions(model, [(x, y)], nn.MSELoss(), tol=1e-8)
    np.testing.assert_allclose(eigenvalues, exact[:2], rtol=1e-8)
    plane = torch.stack([dx, dy]).double()
    torch.testing.assert_close(plane @ plane.T, torch.eye(2, dtype=torch.float64), atol=1e-6,
                               rtol=0)  # fmt: skip
    outside = plane - (plane @ top) @ top.T
    assert float(outside.norm(dim=1).max()) < 1e-5  # float32 directions
    if outputs == 2:  # the plane is the eigenspace itself
        torch.testing.assert_close(plane.T @ plane, top @ top.T, atol=1e-5, rtol=0)
