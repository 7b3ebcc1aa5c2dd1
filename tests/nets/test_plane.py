"""Landscapes of real networks: directions, evaluation, PCA, projections, resume, files."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gdscope.errors import GdscopeError
from gdscope.examples import cnn, mlp
from gdscope.jobs.landscape import LandscapeResult
from gdscope.nets.directions import line_direction, normalize, pca_plane, random_direction
from gdscope.nets.fit import fit
from gdscope.nets.plane import (
    ModelSurface,
    evaluate_plane,
    evaluate_plane_loop,
    evaluate_vectors,
    materialize,
)
from gdscope.nets.projection import honesty, project
from gdscope.nets.recorder import ParamLayout, RecordedPath, Recorder, open_path


def small_cnn_data(n=256, batch=64):
    data = cnn.make_dataset(n, seed=1)
    return torch.utils.data.DataLoader(data, batch_size=batch)


def direct_loss(model, loader, loss_fn):
    """The plain way: model in eval mode, batch by batch, mean over samples."""
    model.eval()
    total = seen = correct = 0
    with torch.no_grad():
        for x, y in loader:
            out = model(x)
            total += float(loss_fn(out, y)) * len(y)
            correct += int((out.argmax(1) == y).sum())
            seen += len(y)
    return total / seen, correct / seen


@pytest.fixture(scope="module")
def trained_cnn():
    model = cnn.make_model(seed=3)
    generator = torch.Generator().manual_seed(0)
    data = cnn.make_dataset(512, seed=2)
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True, generator=generator)
    fit(model, loader, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.05,
        momentum=0.9), epochs=1)  # fmt: skip
    return model.eval()


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


def test_origin_is_the_models_own_loss_and_a_grid_value_is_a_direct_evaluation(trained_cnn):
    loader = small_cnn_data()
    loss_fn = nn.CrossEntropyLoss()
    dx = random_direction(trained_cnn, seed=1)
    dy = random_direction(trained_cnn, seed=2)
    xs, ys = [-0.5, 0.0, 0.25], [-0.2, 0.0, 0.4]
    surface = evaluate_plane(trained_cnn, loader, loss_fn, dx=dx, dy=dy, xs=xs, ys=ys,
                             strategy="vmap", chunk=4)  # fmt: skip
    own, own_acc = direct_loss(trained_cnn, loader, loss_fn)
    assert surface.loss[1, 1] == pytest.approx(own, rel=1e-5)
    assert surface.accuracy[1, 1] == pytest.approx(own_acc)
    shifted = copy.deepcopy(trained_cnn)
    layout = ParamLayout.of(shifted)
    moved = layout.vector(trained_cnn) + 0.25 * dx + 0.4 * dy
    with torch.no_grad():
        for name, value in layout.unflatten(moved).items():
            dict(shifted.named_parameters())[name].copy_(value)
    value, accuracy = direct_loss(shifted, loader, loss_fn)
    assert surface.loss[2, 2] == pytest.approx(value, rel=1e-5)  # rows are y, columns x
    assert surface.accuracy[2, 2] == pytest.approx(accuracy)
    # the model itself is untouched, and still in eval mode
    assert torch.equal(layout.vector(trained_cnn), surface.centre)


def test_vmap_and_loop_strategies_agree_with_batchnorm(trained_cnn):
    batches = materialize(small_cnn_data(), "cpu")
    centre = ParamLayout.of(trained_cnn).vector(trained_cnn)
    vectors = centre + 0.3 * torch.randn(
        5, centre.numel(), generator=torch.Generator().manual_seed(0)
    )
    a = evaluate_vectors(trained_cnn, batches, nn.CrossEntropyLoss(), vectors)
    b = evaluate_plane_loop(trained_cnn, batches, nn.CrossEntropyLoss(), vectors)
    torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a[1], b[1])


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


def test_recorder_memory_and_disk_agree(tmp_path):
    runs = []
    for path in (None, tmp_path / "rec"):
        model = mlp.make_model(seed=1)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        rec = Recorder(model, every=3, path=path, optimizer=optimizer)
        for x, y in mlp.make_loader(batch_size=150):
            optimizer.zero_grad()
            loss = nn.CrossEntropyLoss()(model(x), y)
            loss.backward()
            optimizer.step()
            rec.step(loss)
        runs.append(rec.result())
    memory, disk = runs
    assert len(memory) == 1 + 10 // 3 and list(memory.steps) == [0, 3, 6, 9]
    np.testing.assert_array_equal(memory.snapshots, disk.snapshots)
    assert isinstance(disk.snapshots, np.memmap) and disk.optimizer == "Adam"
    np.testing.assert_array_equal(open_path(tmp_path / "rec").losses, memory.losses)
    with pytest.raises(GdscopeError, match="already holds a recording"):
        Recorder(mlp.make_model(), path=tmp_path / "rec")


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


def test_resume_computes_only_what_is_missing(trained_cnn, tmp_path):
    loader = small_cnn_data(128)
    dx, dy = random_direction(trained_cnn, seed=1), random_direction(trained_cnn, seed=2)
    grid = {"dx": dx, "dy": dy, "xs": np.linspace(-1, 1, 4), "ys": np.linspace(-1, 1, 3),
            "strategy": "loop"}  # fmt: skip
    full = evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), chunk=2, **grid)
    calls = []

    def crash_after_two(done, total):
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    resume = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), chunk=2, resume=resume,
                       progress=crash_after_two, **grid)  # fmt: skip
    assert calls == [2, 4]
    later = []
    again = evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), chunk=2, resume=resume,
                           progress=lambda d, t: later.append(d), **grid)  # fmt: skip
    assert later == [6, 8, 10, 12]  # the first four points were not computed again
    np.testing.assert_array_equal(again.loss, full.loss)
    other = {**grid, "xs": np.linspace(-2, 2, 4)}
    with pytest.raises(GdscopeError, match="belongs to another computation"):
        evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), resume=resume, **other)


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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_surface_equals_cpu(trained_cnn):
    loader = small_cnn_data(128)
    dx, dy = random_direction(trained_cnn, seed=1), random_direction(trained_cnn, seed=2)
    grid = {"dx": dx, "dy": dy, "xs": [-1, 0, 1], "ys": [-1, 0, 1]}
    cpu = evaluate_plane(copy.deepcopy(trained_cnn), loader, nn.CrossEntropyLoss(), **grid)
    gpu = evaluate_plane(copy.deepcopy(trained_cnn), loader, nn.CrossEntropyLoss(),
                         device="cuda", strategy="vmap", **grid)  # fmt: skip
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=1e-4)


def test_landscape_cli_pca_with_a_checkpoint_and_errors(tmp_path, capsys):
    from gdscope.cli.main import main

    model = mlp.make_model(seed=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    fit(model, mlp.make_loader(shuffle=True), nn.CrossEntropyLoss(), optimizer, epochs=2,
        path=tmp_path / "rec")  # fmt: skip
    torch.save(model.state_dict(), tmp_path / "final.pt")
    out = tmp_path / "pca.png"
    args = [
        *("landscape", "--model", "gdscope.examples.mlp:make_model"),
        *("--data", "gdscope.examples.mlp:make_loader"),
        *("--checkpoint", str(tmp_path / "final.pt"), "--path", str(tmp_path / "rec")),
        *("--directions", "pca", "--x", "-2", "2", "5", "--y", "-1", "1", "4"),
        *("--out", str(out), "--save", str(tmp_path / "pca.npz")),
    ]
    assert main(args) == 0
    saved = np.load(tmp_path / "pca.npz")
    assert saved["loss"].shape == (4, 5) and len(saved["path_x"]) == 31
    assert saved["explained_variance_ratio"].sum() <= 1.0 + 1e-9
    capsys.readouterr()
    for extra, message in (
        (["--model", "nope:make"], "cannot import 'nope'"),
        (["--model", "gdscope.examples.mlp:nothing"], "has no callable 'nothing'"),
        (["--model", "gdscope.examples.cnn:make_model"], "does not fit the model"),
        (["--x", "1", "-1", "5"], "LO < HI"),
        (["--directions", "line"], "needs the model at its end"),
        (["--address", "x"], "--address needs --backend ray"),
        (["--data", "gdscope.examples.cnn:make_loader"], "mat1 and mat2 shapes cannot be"),
        (["--checkpoint", str(tmp_path / "pca.npz")], "cannot load the checkpoint"),
        (["--data", "gdscope.examples.mlp:make_model"], "must be a DataLoader or Dataset, got"),
        (["--chunk", "0"], "--chunk takes a positive integer"),
        (["--loss", "hinge"], "--loss must be one of crossentropy, mse"),
        (
            ["--directions", "line", "--to", str(tmp_path / "final.pt"), "--y", "0", "1", "3"],
            "a line has no y axis",
        ),
    ):
        code = main([*args[:-4], *extra, "--out", str(tmp_path / "x.png")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (extra, err)


def test_landscape_cli_animates_the_projected_path(tmp_path):
    from PIL import Image

    from gdscope.cli.main import main

    model = mlp.make_model(seed=1)
    fit(model, mlp.make_loader(), nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters()),
        epochs=1, path=tmp_path / "rec")  # fmt: skip
    out, movie = tmp_path / "p.png", tmp_path / "p.gif"
    args = [
        *("landscape", "--model", "gdscope.examples.mlp:make_model"),
        *("--data", "gdscope.examples.mlp:make_loader", "--path", str(tmp_path / "rec")),
        *("--directions", "pca", "--x", "-1", "1", "3", "--y", "-1", "1", "3"),
        *("--out", str(out), "--animate", str(movie)),
    ]
    assert main(args) == 0
    with Image.open(movie) as image:
        assert image.n_frames == len(open_path(tmp_path / "rec"))
    # on the 3D surface too; refused before any work along a line
    surface_args = [*args[:-4], "--view", "surface", "--out", str(tmp_path / "q.png"),
                    "--animate", str(tmp_path / "q.gif")]  # fmt: skip
    assert main(surface_args) == 0
    assert main([*surface_args[:-6], "--line", "--out", str(tmp_path / "r.png"),
                 "--animate", str(tmp_path / "r.gif")]) == 2  # fmt: skip
    assert not (tmp_path / "r.png").exists()


@pytest.mark.parametrize("view", ["contour", "surface"])
def test_path_animation_counts_snapshots_and_steps(tmp_path, view):
    from gdscope.jobs.landscape import LandscapeJob, animate, run_job

    model = mlp.make_model(seed=1)
    fit(model, mlp.make_loader(), nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters()),
        epochs=1, every=3, path=tmp_path / "rec")  # fmt: skip
    job = LandscapeJob(model="gdscope.examples.mlp:make_model", path=tmp_path / "rec",
                       data="gdscope.examples.mlp:make_loader", directions="pca",
                       x=(-1, 1, 3), y=(-1, 1, 3))  # fmt: skip
    result = run_job(job)
    animator = animate(result, view=view)
    frames = list(animator.frames())
    steps = open_path(tmp_path / "rec").steps
    assert len(frames) == len(steps)
    assert animator.counter.get_text() == f"snapshot {len(steps) - 1:>4}  step {steps[-1]:>6}"
    assert animator.loss_ax.get_xlabel() == "snapshot"
    assert animator.loss_ax.get_legend().get_texts()[0].get_text() == "Adam: true loss"
    ax = animator.map_axes[0]
    assert ax.get_xlabel().startswith("PC1 (") and ax.get_ylabel().startswith("PC2 (")
    line = animator.heads[0][0]
    heights = line.get_data_3d()[2] if view == "surface" else None
    if heights is not None:  # each snapshot at its true loss
        np.testing.assert_allclose(heights, result.honesty.true_loss)


def test_auto_chunk_follows_free_memory(trained_cnn, monkeypatch):
    from gdscope import modelscape

    batches = materialize(small_cnn_data(), "cpu")
    layout = ParamLayout.of(trained_cnn)
    monkeypatch.setattr(modelscape, "_free_memory", lambda device: 1 << 30)
    big = modelscape.auto_chunk(trained_cnn, batches, layout)
    monkeypatch.setattr(modelscape, "_free_memory", lambda device: 1 << 24)
    small = modelscape.auto_chunk(trained_cnn, batches, layout)
    # largest activation: the first conv's output for a batch of 64 (64×8×16×16 floats)
    per_point = 4 * (64 * 8 * 16 * 16 * 4) + 4 * layout.size
    assert big == min(1024, (1 << 28) // per_point) and small == max(1, (1 << 22) // per_point)
    dx = random_direction(trained_cnn, seed=1)
    auto = evaluate_plane(trained_cnn, small_cnn_data(), nn.CrossEntropyLoss(), dx=dx,
                          xs=np.linspace(-1, 1, 5), strategy="vmap")  # fmt: skip
    fixed = evaluate_plane(trained_cnn, small_cnn_data(), nn.CrossEntropyLoss(), dx=dx,
                           xs=np.linspace(-1, 1, 5), strategy="vmap", chunk=2)  # fmt: skip
    np.testing.assert_allclose(auto.loss, fixed.loss, rtol=1e-6)


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


def test_landscape_job_default_grids_frame_the_path_and_the_line(tmp_path):
    from gdscope.jobs.landscape import LandscapeJob, draw_landscape, run_job

    model = mlp.make_model(seed=1)
    torch.save(model.state_dict(), tmp_path / "a.pt")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    fit(model, mlp.make_loader(shuffle=True), nn.CrossEntropyLoss(), optimizer, epochs=1,
        every=4, path=tmp_path / "rec")  # fmt: skip
    torch.save(model.state_dict(), tmp_path / "b.pt")
    common = {
        "model": "gdscope.examples.mlp:make_model",
        "data": "gdscope.examples.mlp:make_loader",
    }
    # PCA without --x/--y: the grid spans the whole projected path, with margins.
    pca = run_job(LandscapeJob(**common, checkpoint=tmp_path / "b.pt", path=tmp_path / "rec",
                               directions="pca"))  # fmt: skip
    xs, ys, projected = pca.surface.xs, pca.surface.ys, pca.projected
    assert len(xs) == len(ys) == 21
    assert xs[0] < projected.xs.min() < projected.xs.max() < xs[-1]
    assert ys[0] < projected.ys.min() < projected.ys.max() < ys[-1]
    # A line without --x: both models and half the line beyond each, marked on the figure.
    line = run_job(LandscapeJob(**common, checkpoint=tmp_path / "a.pt", directions="line",
                                to=tmp_path / "b.pt"))  # fmt: skip
    assert line.surface.is_line and (line.surface.xs[[0, -1]] == [-0.5, 1.5]).all()
    loader = mlp.make_loader()
    for x, name in ((0.0, "a.pt"), (1.0, "b.pt")):
        own = mlp.make_model()
        own.load_state_dict(torch.load(tmp_path / name))
        i = int(np.argmin(np.abs(line.surface.xs - x)))
        assert line.surface.loss[0, i] == pytest.approx(
            direct_loss(own, loader, nn.CrossEntropyLoss())[0], rel=1e-5)  # fmt: skip
    ax = draw_landscape(line).axes[0]
    assert [t.get_text() for t in ax.texts] == ["a.pt", "b.pt"]
    assert sorted(float(v.get_xdata()[0]) for v in ax.lines[1:]) == [0.0, 1.0]
    with pytest.raises(GdscopeError, match="a line has no y axis"):
        LandscapeJob(**common, directions="line", to=tmp_path / "b.pt", y=(-1, 1, 3))


def test_data_may_be_a_loader_a_dataset_or_one_pair():
    from torch.utils.data import DataLoader, TensorDataset

    x, y = torch.randn(300, 2, generator=torch.Generator().manual_seed(0)), torch.arange(300) % 2
    dataset = TensorDataset(x, y)
    from_dataset = materialize(dataset)
    from_loader = materialize(DataLoader(dataset, batch_size=256))
    assert [len(b[0]) for b in from_dataset] == [256, 44]
    for (a, b), (c, d) in zip(from_dataset, from_loader, strict=True):
        assert torch.equal(a, c) and torch.equal(b, d)
    assert torch.equal(materialize((x, y))[0][0], x)
    with pytest.raises(GdscopeError, match=r"yield \(inputs, targets\) pairs, got dict"):
        materialize([{"x": x, "y": y}])
    with pytest.raises(GdscopeError, match="DataLoader or Dataset, got int"):
        materialize(3)


def fake_run(costs: dict[str, float | dict[int, float]], points: int):
    """A ``run`` for ``choose_strategy`` whose timings are given: the decision rule, not the
    clock, is under test. Records what was evaluated."""
    calls: list[tuple[str, int]] = []
    left = [points]

    def run(name: str, count: int) -> float | None:
        count = min(count, left[0])
        if not count:
            return None
        left[0] -= count
        calls.append((name, count))
        cost = costs[name]
        return cost if isinstance(cost, float) else cost[count]

    return run, calls


@pytest.mark.parametrize(
    ("vmap", "limit", "expected", "sizes"),
    [
        # an MLP on a CPU: vmap loses on small chunks, wins on large ones
        ({4: 2.0, 16: 0.5, 64: 0.3, 256: 0.29}, 1024, ("vmap", 256), [4, 16, 64, 256]),
        # a CNN on a CPU: grouped convolutions get slower with the chunk; the loop wins
        ({4: 2.0, 16: 3.0}, 1024, ("loop", 16), [4, 16]),
        # the chunk limit (memory, or the user's --chunk) caps the trials
        ({4: 0.5, 10: 0.2}, 10, ("vmap", 10), [4, 10]),
        ({1: 0.9}, 1, ("vmap", 1), [1]),
    ],
)
def test_choose_strategy_times_both_and_keeps_the_faster(vmap, limit, expected, sizes):
    from gdscope.nets.plane import choose_strategy

    run, calls = fake_run({"loop": 1.0, "vmap": vmap}, 10_000)
    strategy, chunk, trials, failure, memory_format = choose_strategy(run, limit=limit,
                                                                      total=10_000)  # fmt: skip
    assert failure is None and memory_format == "contiguous"
    assert (strategy, chunk) == expected
    assert calls == [("loop", 1), ("loop", 2), *(("vmap", n) for n in sizes)]
    assert trials == [("loop", 1, 1.0), *(("vmap", n, vmap[n]) for n in sizes)]


def test_choose_strategy_on_a_grid_smaller_than_its_trials():
    from gdscope.nets.plane import choose_strategy

    run, calls = fake_run({"loop": 1.0, "vmap": {4: 0.5, 2: 0.5}}, 9)
    assert choose_strategy(run, limit=64, total=9, budget=10.0)[:2] == ("vmap", 4)
    assert calls == [("loop", 1), ("loop", 2), ("vmap", 4), ("vmap", 2)]
    run, calls = fake_run({"loop": 1.0, "vmap": 1.0}, 2)
    assert choose_strategy(run, limit=64, total=2)[:3] == ("loop", 16, [("loop", 1, 1.0)])
    assert calls == [("loop", 1), ("loop", 1)]


@pytest.mark.parametrize(("other", "expected"), [(0.4, "channels_last"), (1.5, "contiguous")])
def test_choose_strategy_times_the_loop_in_both_memory_layouts(other, expected):
    from gdscope.nets.plane import choose_strategy

    run, calls = fake_run({"loop": 1.0, "loop/channels_last": other, "vmap": {4: 3.0, 16: 3.5}},
                          10_000)  # fmt: skip
    choice = choose_strategy(run, limit=1024, total=10_000,
                             formats=("contiguous", "channels_last"))  # fmt: skip
    assert (choice.strategy, choice.memory_format) == ("loop", expected)
    assert calls[:4] == [("loop", 1), ("loop", 2), ("loop/channels_last", 1),
                         ("loop/channels_last", 2)]  # fmt: skip
    # vmap is compared with the faster loop
    run, _ = fake_run({"loop": 1.0, "loop/channels_last": 0.4, "vmap": {4: 0.6, 16: 0.7}}, 10_000)
    assert choose_strategy(run, limit=1024, total=10_000,
                           formats=("contiguous", "channels_last"))[:2] == ("loop", 16)  # fmt: skip


def test_channels_last_loop_agrees_and_leaves_the_model_as_it_was(trained_cnn):
    from gdscope.nets.plane import channels_last

    loader = small_cnn_data(64)
    batches = materialize(loader, "cpu")
    nhwc = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in batches]
    dx = random_direction(trained_cnn, seed=1)
    centre = ParamLayout.of(trained_cnn).vector(trained_cnn)
    vectors = torch.stack([centre + t * dx for t in (-0.5, 0.0, 0.5)])
    before = {k: v.clone() for k, v in trained_cnn.state_dict().items()}
    plain, _ = evaluate_plane_loop(trained_cnn, batches, nn.CrossEntropyLoss(), vectors)
    with channels_last(trained_cnn):
        weight = trained_cnn.features[0].weight
        assert weight.is_contiguous(memory_format=torch.channels_last)
        fast, _ = evaluate_plane_loop(trained_cnn, nhwc, nn.CrossEntropyLoss(), vectors)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=0)
    assert trained_cnn.features[0].weight.is_contiguous()
    for key, value in trained_cnn.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_choose_strategy_keeps_tuning_within_its_budget():
    from gdscope.nets.plane import choose_strategy

    # 100 points at the loop's 1 s: trials may take 10 s. vmap over 4 (4 s expected) is tried and
    # is slow (2 s a point); 16 more at that speed (32 s) would blow the budget: the loop stays.
    run, calls = fake_run({"loop": 1.0, "vmap": {4: 2.0, 16: 0.5}}, 100)
    assert choose_strategy(run, limit=1024, total=100)[:2] == ("loop", 16)
    assert calls == [("loop", 1), ("loop", 2), ("vmap", 4)]
    # a grid too small to pay for any trial is simply looped
    run, calls = fake_run({"loop": 1.0, "vmap": 0.1}, 30)
    assert choose_strategy(run, limit=1024, total=30)[:3] == ("loop", 16, [("loop", 1, 1.0)])
    assert calls == [("loop", 1), ("loop", 2)]


def test_auto_strategy_computes_every_point_once_and_records_its_choice(trained_cnn):
    loader = small_cnn_data(64)
    dx, dy = random_direction(trained_cnn, seed=1), random_direction(trained_cnn, seed=2)
    grid = {"dx": dx, "dy": dy, "xs": np.linspace(-1, 1, 10), "ys": np.linspace(-1, 1, 8)}
    seen = []
    auto = evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), chunk=8,
                          progress=lambda done, total: seen.append(done), **grid)  # fmt: skip
    loop = evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), strategy="loop", **grid)
    assert seen == sorted(set(seen)) and seen[-1] == 80
    assert auto.meta["strategy"] in ("vmap", "loop") and auto.meta["trials"][0][0] == "loop"
    # images: the loop is timed in both memory layouts; then vmap, as the clock says
    assert auto.meta["trials"][1][0] == "loop/channels_last"
    assert [t[1] for t in auto.meta["trials"][2:]] in ([], [4], [4, 8])
    assert auto.meta["memory_format"] in ("contiguous", "channels_last")
    np.testing.assert_allclose(auto.loss, loop.loss, rtol=1e-5)
    np.testing.assert_allclose(auto.accuracy, loop.accuracy, atol=1e-6)


def test_accuracy_map_and_its_refusals(tmp_path, capsys):
    from gdscope.cli.main import main
    from gdscope.jobs.landscape import LandscapeJob, draw_landscape, run_job

    model = mlp.make_model(seed=1)
    fit(model, mlp.make_loader(), nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters()),
        epochs=1, every=2, path=tmp_path / "rec")  # fmt: skip
    common = {
        "model": "gdscope.examples.mlp:make_model",
        "data": "gdscope.examples.mlp:make_loader",
    }
    result = run_job(LandscapeJob(**common, path=tmp_path / "rec", directions="pca",
                                  x=(-1, 1, 4), y=(-1, 1, 3)))  # fmt: skip
    ax = draw_landscape(result, metric="accuracy", view="heatmap").axes[0]
    # the map is the accuracy in percent, row y, column x; no "minimum" marked on it
    np.testing.assert_allclose(ax.images[0].get_array(), 100 * result.surface.accuracy)
    assert ax.get_title() == "accuracy landscape"
    assert "loss minimum" not in ax.get_legend_handles_labels()[1]
    assert "start" in ax.get_legend_handles_labels()[1]  # the path is drawn on it
    with pytest.raises(GdscopeError, match="not a surface"):
        draw_landscape(result, metric="accuracy", view="surface")
    one = torch.zeros(1)
    layout = ParamLayout(("w",), ((1,),))
    regression = ModelSurface(
        np.zeros(2), np.zeros(2), np.ones((2, 2)), None, one, one, one, layout
    )
    with pytest.raises(GdscopeError, match="has no accuracy"):
        draw_landscape(LandscapeResult(regression), metric="accuracy")
    # refused before any work: a surface view of the accuracy; HDF5 side files that exist
    args = ["landscape", *("--model", common["model"], "--data", common["data"]),
            "--out", str(tmp_path / "a.png")]  # fmt: skip
    (tmp_path / "s_directions.h5").write_bytes(b"")
    for extra, message in (
        (["--metric", "accuracy", "--view", "surface"], "drop --view surface"),
        (["--save", str(tmp_path / "s.h5")], "s_directions.h5 already exists"),
        (["--save", str(tmp_path / "s.txt")], "saved as .npz or .h5"),
    ):
        assert main([*args, *extra]) == 2
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec", "s_directions.h5"]


def test_model_landscape_from_a_notebook_equals_the_cli_job(tmp_path):
    import gdscope
    from gdscope.jobs.landscape import LandscapeJob, run_job

    model = mlp.make_model(seed=1)
    recorder = gdscope.Recorder(model, every=4, path=tmp_path / "rec")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for inputs, targets in mlp.make_loader(shuffle=True):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        recorder.step(loss)
    torch.save(model.state_dict(), tmp_path / "final.pt")
    pca = {"directions": "pca", "strategy": "loop"}
    result = gdscope.model_landscape(
        model, mlp.make_loader(), nn.CrossEntropyLoss(), path=recorder.result(), **pca
    )
    spec = {"model": "gdscope.examples.mlp:make_model", "data": "gdscope.examples.mlp:make_loader"}
    job = run_job(
        LandscapeJob(**spec, checkpoint=tmp_path / "final.pt", path=tmp_path / "rec", **pca)
    )
    np.testing.assert_array_equal(result.surface.loss, job.surface.loss)
    np.testing.assert_array_equal(result.projected.xs, job.projected.xs)
    assert result.surface.loss.shape == (21, 21)
    fig = gdscope.draw_landscape(result, view="heatmap")
    assert len(fig.axes) == 3  # map, its colorbar, the honesty chart
    small = gdscope.model_landscape(model, mlp.make_loader(), nn.CrossEntropyLoss(), points=5)
    assert small.surface.loss.shape == (5, 5) and small.surface.xs[0] == -1.0
    with pytest.raises(GdscopeError, match="a line needs the model at its end"):
        gdscope.model_landscape(model, mlp.make_loader(), nn.CrossEntropyLoss(), directions="line")
    with pytest.raises(GdscopeError, match="points per axis"):
        gdscope.model_landscape(model, mlp.make_loader(), nn.CrossEntropyLoss(), points=1)


def test_honesty_chart_draws_both_curves_and_warns_above_them():
    from matplotlib.figure import Figure

    from gdscope.nets.projection import Honesty
    from gdscope.render.models import plot_honesty

    steps = np.arange(4)
    true = np.array([1.0, 0.5, 0.3, 0.2])
    fine = Honesty(true, true + 0.01)
    ax = Figure().add_subplot()
    line, plane = plot_honesty(fine, steps, ax=ax)
    np.testing.assert_array_equal(line.get_ydata(), true)
    np.testing.assert_array_equal(plane.get_ydata(), true + 0.01)
    assert fine.warning() is None and ax.get_title(loc="left") == ""
    misleading = Honesty(true, np.array([0.6, 0.5, 0.3, 0.2]))  # 0.4 of a 0.8 range
    ax = Figure().add_subplot()
    plot_honesty(misleading, steps, ax=ax)
    title = ax.get_title(loc="left")
    assert title.startswith("⚠ the projected path misleads") and "50%" in title
    assert max(len(line) for line in title.splitlines()) <= 80


class ItemInForward(nn.Module):
    """A module vmap cannot run (``.item()`` in ``forward``) but the loop can."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 1.0 if self.linear.weight.sum().item() > -1e9 else 2.0
        return scale * self.linear(x)


def test_auto_falls_back_to_the_loop_when_vmap_cannot_run_the_module():
    torch.manual_seed(0)
    model = ItemInForward()
    data = (torch.randn(64, 2), torch.randint(0, 3, (64,)))
    dx, dy = random_direction(model, seed=1), random_direction(model, seed=2)
    grid = {"dx": dx, "dy": dy, "xs": np.linspace(-1, 1, 30), "ys": np.linspace(-1, 1, 30)}
    with pytest.raises(RuntimeError):  # what vmap says about .item()
        evaluate_plane(model, data, nn.CrossEntropyLoss(), strategy="vmap", **grid)
    seen = []
    auto = evaluate_plane(model, data, nn.CrossEntropyLoss(), chunk=16,
                          progress=lambda done, total: seen.append(done), **grid)  # fmt: skip
    loop = evaluate_plane(model, data, nn.CrossEntropyLoss(), strategy="loop", **grid)
    assert auto.meta["strategy"] == "loop" and ".item()" in auto.meta["vmap_failure"]
    assert auto.meta["trials"][-1][0] == "vmap" and np.isnan(auto.meta["trials"][-1][2])
    np.testing.assert_array_equal(auto.loss, loop.loss)  # every point, by the loop
    assert seen == sorted(set(seen)) and seen[-1] == 900


@pytest.mark.parametrize(
    "wrap",
    [
        lambda state: state,
        lambda state: {"epoch": 3, "model_state_dict": state, "optimizer_state_dict": {}},
        lambda state: {"state_dict": state, "hyper_parameters": {"lr": 0.1}},
        lambda state: {"model": state},
        lambda state: {f"module.{k}": v for k, v in state.items()},  # DataParallel / DDP
    ],
    ids=["bare", "tutorial", "lightning", "model", "dataparallel"],
)
def test_checkpoints_as_people_save_them(tmp_path, wrap):
    from gdscope.jobs.landscape import _load_state

    trained = mlp.make_model(seed=5)
    torch.save(wrap(trained.state_dict()), tmp_path / "c.pt")
    fresh = mlp.make_model(seed=1)
    _load_state(fresh, tmp_path / "c.pt")
    for a, b in zip(fresh.parameters(), trained.parameters(), strict=True):
        assert torch.equal(a, b)


@settings(max_examples=200, deadline=None)
@given(
    loop=st.floats(1e-4, 10),
    speeds=st.lists(st.floats(1e-5, 20), min_size=6, max_size=6),
    limit=st.integers(1, 2048),
    total=st.integers(1, 5000),
)
def test_choose_strategy_properties(loop, speeds, limit, total):
    from gdscope.nets.plane import choose_strategy

    sizes = [min(4**k, limit) for k in range(1, 7)]
    table = {size: speed for size, speed in zip(sizes, speeds, strict=True)}
    run, calls = fake_run({"loop": loop, "vmap": table}, total)
    choice = choose_strategy(run, limit=limit, total=total)
    assert sum(count for _, count in calls) <= total  # no point twice
    vmaps = [t for t in choice.trials if t[0] == "vmap"]
    chunks = [t[1] for t in vmaps]
    assert chunks == sorted(set(chunks)) and all(c <= limit for c in chunks)
    fastest = min([loop, *(t[2] for t in vmaps)])
    if choice.strategy == "vmap":  # the fastest measured, with its chunk
        assert (choice.chunk, fastest) in {(t[1], t[2]) for t in vmaps} and fastest < loop
    else:
        assert choice.chunk == 16 and all(t[2] >= loop for t in vmaps)
    best, last = math.inf, loop  # every trial was started within the budget
    for _, size, speed in vmaps:
        assert size * last <= 0.1 * total * min(loop, best) * (1 + 1e-12)
        best, last = min(best, speed), speed


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


def test_an_overflowing_landscape_is_drawn_blank_and_said_so():
    import gdscope

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
    data = (torch.randn(100, 3), torch.randn(100, 1))
    far = (-1e19, 1e19, 5)  # the loss overflows float32 everywhere but the centre
    result = gdscope.model_landscape(model, data, nn.MSELoss(), x=far, y=far)
    assert not np.isfinite(result.surface.loss).all() and np.isfinite(result.surface.loss[2, 2])
    note = "the loss is not finite at 24 of 25 grid points (drawn blank)"
    assert result.notes == [note]
    for view in ("contour", "heatmap", "surface"):
        for log in (False, True):
            ax = gdscope.draw_landscape(result, view=view, log=log).axes[0]
            assert (note in [t.get_text() for t in ax.texts]) == (view != "surface")


def test_a_landscape_figure_replays_bit_for_bit_with_autos_choice(tmp_path, capsys):
    from gdscope.cli.main import main
    from gdscope.jobs.replay import read_record

    model = cnn.make_model(seed=1)
    fit(model, small_cnn_data(128), nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), lr=0.05), epochs=1, path=tmp_path / "rec")  # fmt: skip
    torch.save(model.state_dict(), tmp_path / "m.pt")
    out = tmp_path / "l.png"
    args = ["landscape", "--model", "gdscope.examples.cnn:make_model", "--data",
            "tests.test_modelscape:small_cnn_data", "--checkpoint", str(tmp_path / "m.pt"),
            "--path", str(tmp_path / "rec"), "--directions", "pca", "--x", "-1", "1", "7",
            "--y", "-1", "1", "6", "--out", str(out),
            "--animate", str(tmp_path / "l.gif")]  # fmt: skip
    assert main(args) == 0
    chosen = read_record(out)["evaluation"]
    assert chosen["strategy"] in ("loop", "vmap") and chosen["memory_format"] in (
        "contiguous", "channels_last")  # fmt: skip
    # the trials computed the first points: the replay repeats them as they were done
    assert chosen["plan"][:3] == [["loop", 1], ["loop", 2], ["loop/channels_last", 1]]
    capsys.readouterr()
    assert main(["replay", str(out)]) == 0
    assert (tmp_path / "l-replay.png").read_bytes() == out.read_bytes()
    # the layout can be asked for; vmap has no channels-last variant
    bad = [*args[:-4], "--strategy", "vmap", "--memory-format", "channels_last",
           "--out", str(tmp_path / "x.png")]  # fmt: skip
    assert main(bad) == 2
    assert "channels-last layout is for the loop" in capsys.readouterr().err


def test_a_plan_repeats_autos_computation_point_for_point(trained_cnn):
    loader = small_cnn_data(64)
    dx, dy = random_direction(trained_cnn, seed=1), random_direction(trained_cnn, seed=2)
    grid = {"dx": dx, "dy": dy, "xs": np.linspace(-1, 1, 9), "ys": np.linspace(-1, 1, 8)}
    auto = evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), **grid)
    meta = auto.meta
    again = evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), strategy=meta["strategy"],
                           chunk=meta["chunk"], memory_format=meta["memory_format"],
                           plan=[tuple(step) for step in meta["plan"]], **grid)  # fmt: skip
    np.testing.assert_array_equal(again.loss, auto.loss)
    assert again.meta["plan"] == meta["plan"]
    with pytest.raises(GdscopeError, match="a plan step is"):
        evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), strategy="loop",
                       plan=[("warp", 1)], **grid)  # fmt: skip
    with pytest.raises(GdscopeError, match="give the strategy they led to"):
        evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), plan=[("loop", 1)], **grid)
