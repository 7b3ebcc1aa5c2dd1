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

from ..reference import reference_surface, small_cnn_data


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


def test_reading_a_non_square_reference_surface_keeps_x_and_y_apart(tmp_path):
    pytest.importorskip("h5py")
    from gdscope.nets.surface_io import read_surface

    xs, ys = np.linspace(-1, 1, 5), np.linspace(10, 20, 3)  # 5 × 3: values say where they are
    reference_surface(tmp_path / "s.h5", xs, ys, loss=lambda x, y: 100 * x + y,
                      acc=lambda x, y: x + 2)  # fmt: skip
    surface, projected = read_surface(tmp_path / "s.h5")
    assert projected is None and not surface.is_line
    assert surface.loss.shape == (3, 5)  # [y, x], as a ModelSurface holds it
    np.testing.assert_allclose(surface.loss, 100 * xs[None, :] + ys[:, None])
    np.testing.assert_allclose(surface.accuracy, (xs[None, :] + 2).repeat(3, 0) / 100)
    np.testing.assert_array_equal(surface.xs, xs)
    np.testing.assert_array_equal(surface.ys, ys)
    assert surface.meta["dir_file"] == "net.h5"


def test_points_the_reference_has_not_computed_are_blank_and_a_line_reads(tmp_path):
    pytest.importorskip("h5py")
    from gdscope.nets.surface_io import read_surface

    xs = np.linspace(0, 1, 4)
    reference_surface(tmp_path / "todo.h5", xs, np.linspace(0, 1, 2))  # set up, not computed
    surface, _ = read_surface(tmp_path / "todo.h5")
    assert np.isnan(surface.loss).all() and surface.accuracy is None
    reference_surface(tmp_path / "line.h5", xs, loss=lambda x: 2 * x)
    line, _ = read_surface(tmp_path / "line.h5")
    assert line.is_line and line.loss.shape == (1, 4)
    np.testing.assert_allclose(line.loss[0], 2 * xs)


def test_gdscopes_own_h5_reads_back(trained_cnn, tmp_path):
    pytest.importorskip("h5py")
    from gdscope.nets.projection import ProjectedPath
    from gdscope.nets.surface_io import read_surface, save_surface

    dx, dy = random_direction(trained_cnn, seed=1), random_direction(trained_cnn, seed=2)
    xs, ys = np.linspace(-1, 1, 4), np.linspace(-0.5, 0.5, 3)
    surface = evaluate_plane(trained_cnn, small_cnn_data(64), nn.CrossEntropyLoss(), dx=dx,
                             dy=dy, xs=xs, ys=ys)  # fmt: skip
    path = ProjectedPath(np.array([0.5, 0.0]), np.array([0.1, 0.0]), np.zeros(2), np.arange(2))
    save_surface(surface, tmp_path / "s.h5", projected=path)
    read, projected = read_surface(tmp_path / "s.h5", proj=tmp_path / "s_proj.h5")
    np.testing.assert_array_equal(read.xs, surface.xs)
    np.testing.assert_array_equal(read.ys, surface.ys)
    np.testing.assert_allclose(read.loss, surface.loss)
    np.testing.assert_allclose(read.accuracy, surface.accuracy)
    np.testing.assert_array_equal(projected.xs, path.xs)
    np.testing.assert_array_equal(projected.ys, path.ys)


def test_files_that_are_not_the_reference_layout_are_refused(tmp_path):
    h5py = pytest.importorskip("h5py")
    from gdscope.nets.surface_io import read_surface

    xs, ys = np.linspace(0, 1, 4), np.linspace(0, 1, 3)
    reference_surface(tmp_path / "s.h5", xs, ys, loss=lambda x, y: x + y)
    (tmp_path / "text.h5").write_text("not hdf5")
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f["something"] = [1.0]
    with h5py.File(tmp_path / "novalues.h5", "w") as f:
        f["xcoordinates"] = xs
    with h5py.File(tmp_path / "shape.h5", "w") as f:
        f["xcoordinates"], f["ycoordinates"], f["train_loss"] = xs, ys, np.zeros((4, 4))
    with h5py.File(tmp_path / "proj.h5", "w") as f:
        f["proj_xcoord"], f["proj_ycoord"] = [0.0, 1.0], [0.0]
    for path, proj, message in (
        ("missing.h5", None, "cannot read"),
        ("text.h5", None, "cannot read"),
        ("empty.h5", None, "not a loss-landscape surface file: no 'xcoordinates'"),
        ("novalues.h5", None, "holds no surface values (train_loss or test_loss)"),
        ("shape.h5", None, "'train_loss' has shape (4, 4), the coordinates make a 4×3 grid"),
        ("s.h5", "proj.h5", "must be two lists of the same length"),
        ("s.h5", "empty.h5", "is not a projected path"),
    ):
        with pytest.raises(GdscopeError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read_surface(tmp_path / path, proj=proj and tmp_path / proj)


def test_several_runs_are_saved_by_name_beside_the_first(tmp_path):
    from gdscope.nets.plane import ModelSurface
    from gdscope.nets.projection import ProjectedPath
    from gdscope.nets.surface_io import NAMES_KEY, save_surface

    one = torch.zeros(1)
    surface = ModelSurface(np.arange(2.0), np.arange(3.0), np.ones((3, 2)), None, one, one, one,
                           ParamLayout(("w",), ((1,),)))  # fmt: skip
    paths = [ProjectedPath(np.full(n, n + 0.5), -np.arange(n), np.zeros(n), np.arange(n))
             for n in (2, 3, 4)]  # fmt: skip
    runs = list(zip(("a", "b", "c"), paths, strict=True))
    (written,) = save_surface(surface, tmp_path / "s.npz", runs=runs)
    with np.load(written) as saved:
        assert list(saved[NAMES_KEY]) == ["a", "b", "c"]
        for key, i in (("path_x", 0), ("path_x_1", 1), ("path_x_2", 2)):
            np.testing.assert_array_equal(saved[key], paths[i].xs)
        np.testing.assert_array_equal(saved["path_y_2"], paths[2].ys)
    with pytest.raises(GdscopeError, match="not both"):
        save_surface(surface, tmp_path / "t.npz", projected=paths[0], runs=runs)
    assert not (tmp_path / "t.npz").exists()
