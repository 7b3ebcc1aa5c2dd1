"""Surfaces saved in the reference (loss-landscape) HDF5 layout."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from gdscope.errors import GdscopeError
from gdscope.nets.directions import random_direction
from gdscope.nets.plane import evaluate_plane
from gdscope.nets.recorder import ParamLayout

from ..reference import small_cnn_data


def test_hdf5_in_the_reference_layout(trained_cnn, tmp_path):
    h5py = pytest.importorskip("h5py")
    from gdscope.nets.surface_io import save_surface

    loader = small_cnn_data(64)
    dx, dy = random_direction(trained_cnn, seed=1), random_direction(trained_cnn, seed=2)
    surface = evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), dx=dx, dy=dy,
                             xs=np.linspace(-1, 1, 3), ys=np.linspace(-1, 1, 3))  # fmt: skip
    files = save_surface(surface, tmp_path / "s.h5")
    assert [f.name for f in files] == ["s_directions.h5", "s.h5"]
    with h5py.File(tmp_path / "s.h5") as f:
        np.testing.assert_array_equal(f["xcoordinates"][:], surface.xs)
        np.testing.assert_array_equal(f["train_loss"][:], surface.loss)
        np.testing.assert_allclose(f["train_acc"][:], 100 * surface.accuracy)
    with h5py.File(tmp_path / "s_directions.h5") as f:
        params = list(trained_cnn.parameters())
        assert len(f["xdirection"]) == len(params)
        for i, p in enumerate(params):
            assert f["xdirection"][str(i)].shape == tuple(p.shape)
        np.testing.assert_array_equal(f["ydirection"]["0"][:], ParamLayout.of(
            trained_cnn).unflatten(dy)["features.0.weight"].numpy())  # fmt: skip
    with pytest.raises(GdscopeError, match="already exists"):
        save_surface(surface, tmp_path / "s.h5")


@pytest.mark.parametrize("states", [False, True])
def test_hdf5_directions_are_listed_like_the_reference(trained_cnn, tmp_path, states):
    # The reference reads a direction as a list zipped with parameters() (weights) or with
    # state_dict() (states: module by module, counters included); a frozen parameter or a
    # counter that the direction does not move is listed as zeros.
    h5py = pytest.importorskip("h5py")
    from gdscope.nets.surface_io import save_surface

    model = copy.deepcopy(trained_cnn)
    frozen = model.features[0].bias
    frozen.requires_grad_(False)
    loader = small_cnn_data(64)
    dx = random_direction(model, seed=1, states=states, ignore="keep")
    surface = evaluate_plane(model, loader, nn.CrossEntropyLoss(), dx=dx, xs=[0.0, 1.0],
                             states=states)  # fmt: skip
    save_surface(surface, tmp_path / "s.h5")
    listed = model.state_dict() if states else dict(model.named_parameters())
    moved = ParamLayout.of(model, states=states).unflatten(dx)
    with h5py.File(tmp_path / "s_directions.h5") as f:
        group = f["xdirection"]
        assert len(group) == len(listed)
        for i, (name, tensor) in enumerate(listed.items()):
            array = group[str(i)][()]
            assert array.shape == tuple(tensor.shape), name
            expected = moved[name].numpy() if name in moved else np.zeros(tensor.shape)
            np.testing.assert_array_equal(array, expected, err_msg=name)
    assert "features.0.bias" not in moved
    if states:  # the ``keep`` choice copies BatchNorm's statistics into the direction
        index = list(listed).index("features.1.running_mean")
        with h5py.File(tmp_path / "s_directions.h5") as f:
            np.testing.assert_array_equal(f["xdirection"][str(index)][:],
                                          model.features[1].running_mean.numpy())  # fmt: skip


class Scaled(nn.Module):
    """A linear layer whose output is multiplied by a non-persistent float buffer (not in
    ``state_dict()``), next to a persistent one."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.register_buffer("scale", torch.full((2,), 1.5), persistent=False)
        self.register_buffer("shift", torch.full((2,), 0.25))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * self.scale + self.shift


def test_states_directions_move_exactly_the_state_dict(tmp_path):
    # The saved directions list state_dict(); moving the model along them the reference's way
    # (each state_dict tensor plus x times its direction) must give the surface's value. A
    # moved non-persistent buffer would be missing from the file.
    h5py = pytest.importorskip("h5py")
    from gdscope.nets.surface_io import save_surface

    torch.manual_seed(0)
    model = Scaled().eval()
    data = (torch.randn(16, 3), torch.randn(16, 2))
    assert set(ParamLayout.of(model, states=True).names) == set(model.state_dict())
    dx = torch.randn(ParamLayout.of(model, states=True).size)
    surface = evaluate_plane(model, [data], nn.MSELoss(), dx=dx, xs=[0.0, 0.5], states=True)
    save_surface(surface, tmp_path / "s.h5")
    moved = Scaled().eval()
    moved.load_state_dict(model.state_dict())
    moved.scale.copy_(model.scale)
    with h5py.File(tmp_path / "s_directions.h5") as f, torch.no_grad():
        for i, tensor in enumerate(moved.state_dict().values()):
            tensor.add_(0.5 * torch.from_numpy(f["xdirection"][str(i)][()]))
    with torch.no_grad():
        expected = float(nn.MSELoss()(moved(data[0]), data[1]))
    assert surface.loss[0, 1] == pytest.approx(expected, rel=1e-5)
