"""Projecting a recorded path onto a plane, and how honest the picture is."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gdscope.examples import mlp
from gdscope.nets.directions import random_direction
from gdscope.nets.plane import (
    evaluate_plane,
    evaluate_plane_loop,
    materialize,
)
from gdscope.nets.projection import honesty, project
from gdscope.nets.recorder import ParamLayout, RecordedPath

from ..reference import small_cnn_data


def test_projection_and_honesty(trained_cnn):
    loader = small_cnn_data(128)
    batches = materialize(loader, "cpu")
    layout = ParamLayout.of(trained_cnn)
    centre = layout.vector(trained_cnn)
    dx, dy = random_direction(trained_cnn, seed=1), random_direction(trained_cnn, seed=2)
    surface = evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), dx=dx, dy=dy,
                             xs=[-1, 1], ys=[-1, 1])  # fmt: skip
    on_plane = torch.stack([centre + a * dx + b * dy for a, b in ((0.5, -0.3), (0.1, 0.2))])
    off = centre + 0.2 * dx + 0.5 * random_direction(trained_cnn, seed=9)
    snapshots = torch.cat([on_plane, off[None]]).numpy()
    path = RecordedPath(layout, snapshots, np.arange(3), np.full(3, np.nan))
    projected = project(path, surface)
    np.testing.assert_allclose(projected.xs[:2], [0.5, 0.1], atol=1e-4)
    np.testing.assert_allclose(projected.ys[:2], [-0.3, 0.2], atol=1e-4)
    assert projected.off_plane[:2].max() < 1e-4 and projected.off_plane[2] > 0.3
    check = honesty(trained_cnn, batches, nn.CrossEntropyLoss(), path, projected, surface)
    assert abs(check.gap[:2]).max() < 1e-4  # on the plane, the picture is the truth
    assert abs(check.gap[2]) > 1e-3


def test_honesty_of_a_long_path_is_computed_in_pieces_exactly():
    model = mlp.make_model(seed=2).eval()
    batches = materialize(mlp.make_loader(), "cpu")
    layout = ParamLayout.of(model)
    centre = layout.vector(model)
    dx, dy = random_direction(model, seed=1), random_direction(model, seed=2)
    surface = evaluate_plane(model, batches, nn.CrossEntropyLoss(), dx=dx, dy=dy,
                             xs=[-1, 1], ys=[-1, 1], strategy="loop")  # fmt: skip
    g = torch.Generator().manual_seed(0)
    snapshots = centre + 0.3 * torch.randn(40, layout.size, generator=g) * centre.abs().mean()
    path = RecordedPath(layout, snapshots.numpy(), np.arange(40), np.full(40, np.nan))
    projected = project(path, surface)
    check = honesty(model, batches, nn.CrossEntropyLoss(), path, projected, surface)
    whole, _ = evaluate_plane_loop(model, batches, nn.CrossEntropyLoss(), snapshots)
    np.testing.assert_array_equal(check.true_loss, whole.numpy())
    pairs = zip(projected.xs, projected.ys, strict=True)
    points = torch.stack([surface.point(x, y) for x, y in pairs])
    plane, _ = evaluate_plane_loop(model, batches, nn.CrossEntropyLoss(), points)
    np.testing.assert_array_equal(check.plane_loss, plane.numpy())


def test_honesty_of_a_vmapped_surface_is_vmapped_in_its_chunks_and_equals_torch(monkeypatch):
    model = mlp.make_model(seed=2).eval()
    loader = mlp.make_loader()
    batches = materialize(loader, "cpu")
    layout = ParamLayout.of(model)
    centre = layout.vector(model)
    dx, dy = random_direction(model, seed=1), random_direction(model, seed=2)
    surface = evaluate_plane(model, batches, nn.CrossEntropyLoss(), dx=dx, dy=dy,
                             xs=[-1, 1], ys=[-1, 1], strategy="vmap", chunk=7)  # fmt: skip
    assert (surface.meta["strategy"], surface.meta["chunk"]) == ("vmap", 7)

    def no_loop(*args: object, **kwargs: object) -> None:
        raise AssertionError("the check of a vmapped surface went point by point")

    monkeypatch.setattr("gdscope.nets.projection.evaluate_plane_loop", no_loop)
    g = torch.Generator().manual_seed(1)
    snapshots = centre + 0.3 * torch.randn(20, layout.size, generator=g) * centre.abs().mean()
    path = RecordedPath(layout, snapshots.numpy(), np.arange(20), np.full(20, np.nan))
    check = honesty(model, batches, nn.CrossEntropyLoss(), path, project(path, surface), surface)
    # Each snapshot's loss as torch computes it: the weights loaded, the samples' mean.
    for i in (0, 7, 19):
        fresh = mlp.make_model()
        fresh.load_state_dict(path.state(i), strict=False)
        with torch.no_grad():
            x = torch.cat([x for x, _ in loader])
            y = torch.cat([y for _, y in loader])
            want = float(nn.functional.cross_entropy(fresh(x), y))
        assert abs(check.true_loss[i] - want) < 1e-5 * max(1.0, abs(want))
