"""Network landscape jobs: CLI, notebook API, default grids, drawing, animation, replay."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gdscope.errors import GdscopeError
from gdscope.examples import cnn, mlp
from gdscope.jobs.landscape import LandscapeJob, LandscapeResult
from gdscope.nets.fit import fit
from gdscope.nets.plane import EvaluationOptions, ModelSurface
from gdscope.nets.recorder import ParamLayout, open_path
from gdscope.nets.survey import PlaneOptions, open_runs

from ..reference import direct_loss, reference_surface, small_cnn_data


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
        (
            ["--model", "gdscope.examples.cnn:make_model"],
            "does not fit the model: Missing key(s) in state_dict: ",
        ),
        (["--x", "1", "-1", "5"], "LO < HI"),
        (["--directions", "line"], "needs the model at its end"),
        (["--address", "x"], "--address needs --backend ray"),
        (["--data", "gdscope.examples.cnn:make_loader"], "mat1 and mat2 shapes cannot be"),
        (
            ["--checkpoint", str(tmp_path / "pca.npz")],
            "pca.npz: not a torch.save file of tensors (",
        ),
        (["--data", "gdscope.examples.mlp:make_model"], "must be a DataLoader or Dataset, got"),
        (["--chunk", "0"], "--chunk takes a positive integer"),
        (["--loss", "hinge"], "--loss must be one of crossentropy, mse"),
        (
            ["--directions", "line", "--to", str(tmp_path / "final.pt"), "--y", "0", "1", "3"],
            "a line has one axis (x): drop --y",
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
    with pytest.raises(GdscopeError, match="a line has one axis \\(x\\): drop y"):
        LandscapeJob(**common, directions="line", to=tmp_path / "b.pt", y=(-1, 1, 3))


def test_accuracy_map_and_its_refusals(tmp_path, capsys):
    from gdscope.cli.main import main
    from gdscope.jobs.landscape import LandscapeJob, animate, draw_landscape, run_job

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
    # Red is poor, green good, and the colour bar says it is the accuracy.
    assert ax.images[0].get_cmap().name == "RdYlGn"
    assert "accuracy (%)" in [other.get_ylabel() for other in ax.figure.axes]
    assert "loss minimum" not in ax.get_legend_handles_labels()[1]
    assert "start" in ax.get_legend_handles_labels()[1]  # the path is drawn on it
    with pytest.raises(GdscopeError, match="not a surface"):
        draw_landscape(result, metric="accuracy", view="surface")
    for draw in (draw_landscape, animate):  # every view named, from the one list
        with pytest.raises(GdscopeError, match="one of heatmap, contour, surface, got '3d'"):
            draw(result, view="3d")
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


def test_the_minimum_marker_skips_nan_points_and_an_all_nan_map_has_none():
    import gdscope

    torch.manual_seed(0)
    x = torch.randn(32, 3)
    y = x @ torch.tensor([[1.0], [2.0], [-1.0]])

    def nan_above_6(out, target):
        loss = ((out - target) ** 2).mean()
        return torch.where(loss > 6, loss * float("nan"), loss)

    result = gdscope.model_landscape(nn.Linear(3, 1), (x, y), nan_above_6, norm="none",
                                     ignore="keep", x=(-2, 2, 9), y=(-2, 2, 9))  # fmt: skip
    loss = result.surface.loss
    assert np.isnan(loss[0, 0])  # where torch.argmin put the marker
    j, i = np.unravel_index(np.nanargmin(loss), loss.shape)
    for view in ("contour", "heatmap"):
        ax = gdscope.draw_landscape(result, view=view).axes[0]
        (marker,) = [line for line in ax.lines if line.get_label() == "loss minimum"]
        assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (
            result.surface.xs[i],
            result.surface.ys[j],
        )
    always_nan = lambda o, t: nan_above_6(o, t) * torch.nan  # noqa: E731
    blank = gdscope.model_landscape(nn.Linear(3, 1), (x, y), always_nan, points=3)
    fig = gdscope.draw_landscape(blank)
    assert len(fig.axes) == 1 and not fig.axes[0].lines  # no colour bar, no marker
    assert "no finite value" in [t.get_text() for t in fig.axes[0].texts]


def test_a_landscape_figure_replays_bit_for_bit_with_autos_choice(tmp_path, capsys):
    from gdscope.cli.main import main
    from gdscope.jobs.replay import read_record

    model = cnn.make_model(seed=1)
    fit(model, small_cnn_data(128), nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), lr=0.05), epochs=1, path=tmp_path / "rec")  # fmt: skip
    torch.save(model.state_dict(), tmp_path / "m.pt")
    out = tmp_path / "l.png"
    args = ["landscape", "--model", "gdscope.examples.cnn:make_model", "--data",
            "tests.reference:small_cnn_data", "--checkpoint", str(tmp_path / "m.pt"),
            "--path", str(tmp_path / "rec"), "--directions", "pca", "--x", "-1", "1", "7",
            "--y", "-1", "1", "6", "--out", str(out),
            "--animate", str(tmp_path / "l.gif")]  # fmt: skip
    assert main(args) == 0
    chosen = read_record(out)["evaluation"]
    assert chosen["strategy"] in ("loop", "vmap") and chosen["memory_format"] in (
        "contiguous", "channels_last")  # fmt: skip
    # auto timed its trials on a sliver: every point by the way it chose, which the replay uses
    assert chosen["plan"] == []
    capsys.readouterr()
    assert main(["replay", str(out)]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'l-replay.png'}\n"  # said once
    assert (tmp_path / "l-replay.png").read_bytes() == out.read_bytes()
    # the layout can be asked for; vmap has no channels-last variant
    bad = [*args[:-4], "--strategy", "vmap", "--memory-format", "channels_last",
           "--out", str(tmp_path / "x.png")]  # fmt: skip
    assert main(bad) == 2
    assert "channels-last layout is for the loop" in capsys.readouterr().err


SPEC = {"model": "gdscope.examples.mlp:make_model", "data": "gdscope.examples.mlp:make_loader"}


def test_flat_keywords_and_grouped_options_make_the_same_job():
    flat = LandscapeJob(**SPEC, path=Path("rec"), directions="pca", x=(-1.0, 1.0, 5),
                        strategy="loop", chunk=4, device="cpu")  # fmt: skip
    grouped = LandscapeJob(
        **SPEC, path=Path("rec"), plane=PlaneOptions(directions="pca", x=(-1.0, 1.0, 5)),
        evaluation=EvaluationOptions(strategy="loop", chunk=4, device="cpu"),
    )  # fmt: skip
    assert flat == grouped
    assert flat.loss == "crossentropy" and flat.plane.directions == "pca"
    assert replace(flat, loss="mse") == LandscapeJob(
        **SPEC, loss="mse", path=Path("rec"), plane=flat.plane, evaluation=flat.evaluation
    )
    with pytest.raises(AttributeError):
        flat.loss = "mse"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"directions": "pca"}, "PCA directions need a recorded run: give path"),
        ({"directions": "line"}, "a line needs the model at its end"),
        ({"strategy": "fast"}, "strategy must be one of"),
        ({"x": (1.0, 0.0, 3)}, "LO < HI"),
    ],
)
def test_a_job_is_checked_when_made(options, message):
    with pytest.raises(GdscopeError, match=message):
        LandscapeJob(**SPEC, **options)


def test_the_notebook_names_still_import():
    import gdscope
    from gdscope.jobs import landscape
    from gdscope.nets import survey

    assert gdscope.model_landscape is survey.model_landscape
    assert landscape.LandscapeResult is survey.LandscapeResult
    assert gdscope.draw_landscape is landscape.draw_landscape


def test_a_reference_h5_surface_is_drawn_animated_and_replayed(tmp_path, capsys):
    # A 5 × 3 surface in the reference's layout whose values say where they are: the heatmap
    # shows x across and y up, and the projected path is drawn at the surface under it.
    h5py = pytest.importorskip("h5py")
    from matplotlib.image import AxesImage
    from PIL import Image

    from gdscope.cli.main import main
    from gdscope.jobs.landscape import draw_landscape, from_h5, recorded_trajectory

    xs, ys = np.linspace(-1, 1, 5), np.linspace(10, 20, 3)
    surface, proj = tmp_path / "s.h5", tmp_path / "proj.h5"
    reference_surface(surface, xs, ys, loss=lambda x, y: 100 * x + y)
    with h5py.File(proj, "w") as f:
        f["proj_xcoord"], f["proj_ycoord"] = [-0.5, 0.0, 0.5, 0.75], [12.0, 15.0, 17.5, 20.0]
    result = from_h5(surface, proj=proj)
    image = next(a for a in draw_landscape(result, view="heatmap").axes[0].get_children()
                 if isinstance(a, AxesImage))  # fmt: skip
    np.testing.assert_allclose(image.get_array(), 100 * xs[None, :] + ys[:, None])
    assert image.get_extent() == pytest.approx([-1.25, 1.25, 7.5, 22.5])  # pixel edges
    trajectory = recorded_trajectory(result)
    np.testing.assert_allclose(trajectory.losses, [-38, 15, 67.5, 95])  # 100·x + y, bilinear

    out, movie = tmp_path / "ref.png", tmp_path / "ref.gif"
    args = ["landscape", "--from-h5", str(surface), "--proj", str(proj), "--view", "surface"]
    assert main([*args, "--out", str(out), "--animate", str(movie)]) == 0
    with Image.open(movie) as gif:
        assert gif.n_frames == 4
    capsys.readouterr()
    assert main(["replay", str(out)]) == 0
    assert (tmp_path / "ref-replay.png").read_bytes() == out.read_bytes()
    capsys.readouterr()
    model = ["--model", "gdscope.examples.mlp:make_model"]
    for argv, message in (
        ([*args, *model], "--from-h5 draws a surface already computed: drop --model"),
        ([*args, "--seed=3"], "drop --seed"),
        ([*args, "--save", str(tmp_path / "again.npz")], "drop --save"),
        (
            [*args[:3], "--animate", str(tmp_path / "x.gif")],
            "--animate draws the recorded path: give --proj",
        ),
        (["landscape", *model], "landscape needs --model and --data (or --from-h5"),
        (
            [
                "landscape",
                *model,
                "--data",
                "gdscope.examples.mlp:make_loader",
                "--proj",
                str(proj),
            ],
            "--proj is the path projected on a --from-h5 surface",
        ),
        (["landscape", "--from-h5", str(proj)], "not a loss-landscape surface file"),
        (["landscape", "--from-h5", str(tmp_path / "nope.h5")], "cannot read"),
    ):
        code = main([*argv, "--out", str(tmp_path / "x.png")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "x.png").exists()


def test_run_example_refuses_a_file_where_its_folder_goes(tmp_path):
    from gdscope.errors import GdscopeError
    from gdscope.jobs.landscape import run_example

    taken = tmp_path / "taken"
    taken.write_text("x")
    with pytest.raises(GdscopeError, match=r"taken is a file, not a directory$"):
        run_example("mlp", taken, log=lambda _: None)
    with pytest.raises(GdscopeError, match=r"taken is a file, not a directory: .* cannot be"):
        run_example("mlp", taken / "sub", log=lambda _: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def record_mlp(folder, *, seed, optimizer, every=2, epochs=1):
    """The example MLP trained by a plain torch loop with ``optimizer`` (a ``torch.optim``
    class and its keywords), recorded by ``gdscope.Recorder`` into ``folder``."""
    import gdscope

    make, settings = optimizer
    model = mlp.make_model(seed=seed)
    step = make(model.parameters(), **settings)
    recorder = gdscope.Recorder(model, every=every, path=folder)
    for _ in range(epochs):
        for inputs, targets in mlp.make_loader(shuffle=True, seed=seed):
            step.zero_grad()
            loss = nn.functional.cross_entropy(model(inputs), targets)
            loss.backward()
            step.step()
            recorder.step(loss)
    return model


SGD = (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9})
ADAM = (torch.optim.Adam, {"lr": 0.01})


def with_weights(vector):
    """A fresh example MLP holding the flat float32 ``vector`` (``named_parameters()`` order)."""
    model = mlp.make_model()
    state, start = {}, 0
    for name, parameter in model.named_parameters():
        state[name] = vector[start : start + parameter.numel()].reshape(parameter.shape)
        start += parameter.numel()
    model.load_state_dict(state)
    return model


def test_several_runs_share_the_pca_plane_of_their_union(tmp_path):
    import gdscope
    from gdscope.jobs.landscape import animate, draw_landscape, run_job

    record_mlp(tmp_path / "sgd", seed=1, optimizer=SGD)
    record_mlp(tmp_path / "adam", seed=2, optimizer=ADAM, every=3)
    folders = [tmp_path / "sgd", tmp_path / "adam"]
    result = run_job(LandscapeJob(**SPEC, path=folders, directions="pca", points=5,
                                  strategy="loop"))  # fmt: skip
    runs = [open_path(folder) for folder in folders]
    # The PCA of the union of both runs' snapshots, in float64 by numpy (sklearn's PCA: centred
    # on their mean), each axis up to its sign.
    union = np.concatenate([np.asarray(run.snapshots, dtype=np.float64) for run in runs])
    _, singular, components = np.linalg.svd(union - union.mean(0), full_matrices=False)
    surface = result.surface
    for direction, component in ((surface.dx, components[0]), (surface.dy, components[1])):
        found = direction.double().numpy()
        np.testing.assert_allclose(found, np.sign(found @ component) * component, atol=1e-6)
    np.testing.assert_allclose(result.explained, singular[:2] ** 2 / (singular**2).sum(),
                               rtol=1e-6)  # fmt: skip
    # No checkpoint: the plane goes through the first run's last snapshot.
    np.testing.assert_array_equal(surface.centre.numpy(), runs[0].snapshots[-1])
    assert [run.name for run in result.runs] == ["sgd", "adam"]
    assert result.projected is result.runs[0].projected and result.path is result.runs[0].path
    # Each run's plane coordinates: least squares of its snapshots minus the centre.
    basis = np.stack([surface.dx.double().numpy(), surface.dy.double().numpy()], axis=1)
    for run, recorded in zip(result.runs, runs, strict=True):
        deltas = np.asarray(recorded.snapshots, dtype=np.float64) - surface.centre.double().numpy()
        coefficients = np.linalg.lstsq(basis, deltas.T, rcond=None)[0]
        np.testing.assert_allclose(run.projected.xs, coefficients[0], atol=1e-5)
        np.testing.assert_allclose(run.projected.ys, coefficients[1], atol=1e-5)
        # the default grid frames every run
        assert surface.xs[0] < run.projected.xs.min() < run.projected.xs.max() < surface.xs[-1]
        assert surface.ys[0] < run.projected.ys.min() < run.projected.ys.max() < surface.ys[-1]
        # each recorded model's true loss, as torch computes it
        last = with_weights(torch.from_numpy(np.array(recorded.snapshots[-1])))
        assert run.honesty.true_loss[-1] == pytest.approx(
            direct_loss(last, mlp.make_loader(), nn.CrossEntropyLoss())[0], rel=1e-5)  # fmt: skip
    # The surface at a grid point: the loss of the model with those weights.
    j, i = 1, 3
    point = surface.centre + surface.xs[i] * surface.dx + surface.ys[j] * surface.dy
    assert surface.loss[j, i] == pytest.approx(
        direct_loss(with_weights(point), mlp.make_loader(), nn.CrossEntropyLoss())[0], rel=1e-5
    )
    # The notebook's call on the recordings in memory (the board's): the same plane and values.
    model = with_weights(torch.from_numpy(np.array(runs[0].snapshots[-1])))
    notebook = gdscope.model_landscape(
        model,
        mlp.make_loader(),
        nn.CrossEntropyLoss(),
        path=runs,
        directions="pca",
        points=5,
        strategy="loop",
    )
    np.testing.assert_array_equal(notebook.surface.loss, surface.loss)
    assert [run.name for run in notebook.runs] == ["run 1", "run 2"]
    named = gdscope.model_landscape(
        model,
        mlp.make_loader(),
        nn.CrossEntropyLoss(),
        path=runs,
        run_names=["a", "b"],
        directions="pca",
        points=3,
    )
    assert [run.name for run in named.runs] == ["a", "b"]
    twice = (tmp_path / "sgd", tmp_path / ".." / tmp_path.name / "sgd")  # one name: as given
    assert open_runs(twice)[1] == [str(folder) for folder in twice]
    # Drawn: each run in its colour, named in the legend; its true loss beside the map.
    for view in ("contour", "heatmap", "surface"):
        fig = draw_landscape(result, view=view)
        ax = fig.axes[0]
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert {"sgd", "adam"} <= set(lines)
        assert lines["sgd"].get_color() != lines["adam"].get_color()
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "sgd" in legend and "adam" in legend and legend.count("start") <= 1
        if view != "surface":
            np.testing.assert_allclose(lines["adam"].get_xdata(), result.runs[1].projected.xs)
            np.testing.assert_allclose(lines["adam"].get_ydata(), result.runs[1].projected.ys)
        honesty = next(a for a in fig.axes if a.get_title().startswith("along the path"))
        labels = [line.get_label() for line in honesty.get_lines()]
        assert labels == ["sgd: true", "sgd: surface", "adam: true", "adam: surface"]
    accuracy = draw_landscape(result, metric="accuracy").axes[0]
    assert {"sgd", "adam"} <= {line.get_label() for line in accuracy.get_lines()}
    with pytest.raises(GdscopeError, match="an animation moves one recorded path"):
        animate(result)


def test_runs_of_another_layout_and_a_line_are_refused_one_path_is_as_before(tmp_path):
    import gdscope
    from gdscope.jobs.landscape import run_job

    record_mlp(tmp_path / "sgd", seed=1, optimizer=SGD)
    wide = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(),
                         nn.Linear(16, 3))  # fmt: skip
    recorder = gdscope.Recorder(wide, path=tmp_path / "wide")
    recorder.step(torch.tensor(1.0))
    folders = [tmp_path / "sgd", tmp_path / "wide"]
    message = (r"^runs sgd and wide do not share one parameter layout: '2\.weight' is "
               r"\(32, 32\) in sgd, \(16, 32\) in wide$")  # fmt: skip
    with pytest.raises(GdscopeError, match=message):
        run_job(LandscapeJob(**SPEC, path=folders, directions="pca", points=3))
    with pytest.raises(GdscopeError, match=message):
        gdscope.model_landscape(mlp.make_model(), mlp.make_loader(), nn.CrossEntropyLoss(),
                                path=folders, points=3)  # fmt: skip
    with pytest.raises(GdscopeError, match="several recorded paths are drawn on a plane"):
        LandscapeJob(**SPEC, path=[folders[0], folders[0]], directions="random", line=True)
    with pytest.raises(GdscopeError, match="path is an empty list"):
        LandscapeJob(**SPEC, path=[])
    # One path, alone or in a list: the job it always was (no runs), the same numbers.
    one = LandscapeJob(**SPEC, path=folders[0], directions="pca", points=4, strategy="loop")
    assert one == LandscapeJob(**SPEC, path=[folders[0]], directions="pca", points=4,
                               strategy="loop")  # fmt: skip
    assert one.path == folders[0] and replace(one, loss="mse").paths == (folders[0],)
    alone = run_job(one)
    assert alone.runs == ()
    model = mlp.make_model()  # (no checkpoint: one path's plane is through the model as made)
    direct = gdscope.model_landscape(model, mlp.make_loader(), nn.CrossEntropyLoss(),
                                     path=open_path(folders[0]), directions="pca", points=4,
                                     strategy="loop")  # fmt: skip
    np.testing.assert_array_equal(alone.surface.loss, direct.surface.loss)
    np.testing.assert_array_equal(alone.projected.xs, direct.projected.xs)
    np.testing.assert_array_equal(alone.surface.centre, ParamLayout.of(model).vector(model))
