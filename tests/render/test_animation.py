"""Animations, replay, TOML configs, CSV data, exports, views and overlays, through the CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.quiver import Quiver
from PIL import Image

from gdscope import LossSpec, make_data, train
from gdscope.cli.main import main
from gdscope.jobs.plot import build_plot
from gdscope.jobs.plotconfig import PlotConfig, load_toml
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.data import load_csv
from gdscope.problem.maps import loss_map
from gdscope.problem.testfunctions import TestFunction
from gdscope.render.surface3d import plot_surface3d


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- CSV data -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x,z\n1,2\n3,4\n", "missing column(s) y (found: x, z)"),
        ("a,b\n1,2\n", "missing column(s) x, y"),
        ("", "missing column(s) x, y (found: no header)"),
        ("x,y\n1,2\n3,abc\n", "line 3: column y is not a number: 'abc'"),
        ("x,y\n1,2\nnan,4\n", "line 3: column x is not finite: 'nan'"),
        ("x,y\n1,2\n", "need at least 2 rows of points, found 1"),
    ],
)
def test_csv_errors_are_one_line_exit_2(tmp_path, capsys, text, message):
    data = tmp_path / "points.csv"
    data.write_text(text)
    code, _, err = run(capsys, "plot", "--data", data, "--out", tmp_path / "p.png")
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "p.png").exists()


def test_csv_data_trains_like_the_same_points(tmp_path, article_data):
    path = tmp_path / "points.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["y", "x", "note"])
        for x, y in zip(article_data.x, article_data.y, strict=True):
            writer.writerow([repr(float(y)), repr(float(x)), "ok"])
    loaded = load_csv(path)
    np.testing.assert_array_equal(loaded.x, article_data.x)
    a = train(loaded, epochs=20)
    b = train(article_data, epochs=20)
    np.testing.assert_array_equal(a.path, b.path)


def test_csv_data_cannot_mix_with_generator_options(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text("x,y\n1,2\n2,3\n")
    code, _, err = run(capsys, "train", "--data", path, "--seed", "3")
    assert code == 2 and "--data reads the points" in err


# --- animations ---------------------------------------------------------------------------


def test_gif_has_one_frame_per_step_and_the_asked_size(tmp_path, capsys):
    out = tmp_path / "a.gif"
    code, _, _ = run(capsys, "animate", "--epochs", "30", "--momentum", "0.9", "--size", "640",
                     "480", "--fps", "10", "--out", out)  # fmt: skip
    assert code == 0
    with Image.open(out) as image:
        assert image.n_frames == 31 and image.size == (640, 480)
        assert image.info["duration"] == 100
        image.seek(0)
        first = np.asarray(image.convert("RGB"))
        image.seek(30)
        last = np.asarray(image.convert("RGB"))
    assert (first != last).any()  # the path moved
    # Frames store only changed pixels; decoding must still give the whole picture.
    from gdscope.jobs.plot import run_config
    from gdscope.render.animation import AnimationOptions, Animator

    config = PlotConfig(optimizer=OptimizerSpec.of("sgd", lr=0.1, momentum=0.9), epochs=30)
    _, landscapes, trajectories = run_config(config)
    raw = list(Animator(landscapes, [[t] for t in trajectories],
                        options=AnimationOptions(fps=10, size=(640, 480))).frames())  # fmt: skip
    for index, decoded in ((0, first), (30, last)):
        error = np.abs(decoded.astype(int) - raw[index].astype(int))
        # 255 colours cost a few levels; a wrong composition would cost ~100 where paths are.
        assert error.mean() < 6 and np.percentile(error, 99.9) < 60
    assert out.stat().st_size < 1_500_000
    record = json.loads((tmp_path / "a.gif.json").read_text())
    assert record["kind"] == "animate" and record["animation"]["fps"] == 10


def test_surface_animation_moves_the_path_on_the_3d_surface(tmp_path, capsys):
    from gdscope.jobs.plot import run_config
    from gdscope.render.animation import AnimationOptions, Animator

    config = PlotConfig(optimizer=OptimizerSpec.of("sgd", lr=0.1, momentum=0.9), epochs=20,
                        losses=(LossSpec("mse"), LossSpec("l1")))  # fmt: skip
    _, landscapes, trajectories = run_config(config)
    animator = Animator(landscapes, [[t] for t in trajectories], kind="surface",
                        options=AnimationOptions(size=(640, 480)))  # fmt: skip
    assert all(ax.name == "3d" for ax in animator.map_axes)
    frames = list(animator.frames())
    assert len(frames) == 21 and (frames[0] != frames[-1]).any()
    for (line, head, *_), run_ in zip(animator.heads, trajectories, strict=True):
        b, w, z = line.get_data_3d()
        # the whole path, each point at the loss torch computed for it: on the surface
        np.testing.assert_array_equal(w, run_.weights)
        np.testing.assert_array_equal(b, run_.biases)
        np.testing.assert_array_equal(z, run_.losses)
        assert head.get_data_3d()[2][0] == run_.losses[-1]
    code, _, _ = run(capsys, "animate", "--view", "surface", "--epochs", "5", "--out",
                     tmp_path / "s.gif")  # fmt: skip
    assert code == 0
    with Image.open(tmp_path / "s.gif") as image:
        assert image.n_frames == 6


def test_mp4_frames_decode_with_the_asked_count_and_size(tmp_path, capsys):
    import imageio_ffmpeg

    out = tmp_path / "a.mp4"
    code, _, _ = run(capsys, "animate", "--function", "himmelblau", "--seconds", "2", "--fps",
                     "12", "--size", "320", "240", "--out", out)  # fmt: skip
    assert code == 0
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert tuple(meta["size"]) == (320, 240)
    assert sum(1 for _ in reader) == 24


def test_animation_refuses_bad_output_before_work(tmp_path, capsys):
    code, _, err = run(capsys, "animate", "--out", tmp_path / "a.avi")
    assert code == 2 and ".gif or .mp4" in err
    (tmp_path / "b.gif.json").write_text("{}")
    code, _, err = run(capsys, "animate", "--out", tmp_path / "b.gif")
    assert code == 2 and "already exists" in err and not (tmp_path / "b.gif").exists()
    code, _, err = run(capsys, "animate", "--fps", "0", "--out", tmp_path / "c.gif")
    assert code == 2 and "fps" in err


# --- replay and TOML ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["png", "svg", "pdf"])
def test_replay_remakes_figures_bit_for_bit(tmp_path, capsys, suffix):
    out = tmp_path / f"f.{suffix}"
    args = ["plot", "--function", "rosenbrock", "--view", "contour", "--log-color", "--momentum",
            "0.9", "--epochs", "40", "--grid-size", "31", "--overlay", "gradient", "steps",
            "--out", out]  # fmt: skip
    assert run(capsys, *args)[0] == 0
    code, printed, _ = run(capsys, "replay", out)
    assert code == 0
    again = tmp_path / f"f-replay.{suffix}"
    assert printed.strip() == str(again)
    assert again.read_bytes() == out.read_bytes()


def test_replay_of_an_animation_and_a_sweep(tmp_path, capsys):
    gif = tmp_path / "m.gif"
    assert run(capsys, "animate", "--loss", "mse", "--epochs", "12", "--batch-size", "10",
               "--out", gif)[0] == 0  # fmt: skip
    assert run(capsys, "replay", gif, "--out", tmp_path / "n.gif")[0] == 0
    assert (tmp_path / "n.gif").read_bytes() == gif.read_bytes()
    sweep = tmp_path / "s.png"
    assert (
        run(capsys, "sweep", "--vary", "lr=0.01,0.1", "--grid-size", "21", "--out", sweep)[0] == 0
    )
    assert run(capsys, "replay", sweep)[0] == 0
    assert (tmp_path / "s-replay.png").read_bytes() == sweep.read_bytes()


def test_replay_refuses_files_without_a_record(tmp_path, capsys):
    plain = tmp_path / "x.png"
    Image.new("RGB", (4, 4)).save(plain)
    code, _, err = run(capsys, "replay", plain)
    assert code == 2 and "carries no gdscope record" in err
    code, _, err = run(capsys, "replay", tmp_path / "nope.png")
    assert code == 2 and "does not exist" in err


def test_toml_config_round_trip_and_errors(tmp_path, capsys):
    config = PlotConfig(
        losses=(LossSpec("huber", delta=0.5), TestFunction.of("quadratic", condition=20.0)),
        optimizer=OptimizerSpec.of("adam", lr=0.05, betas=(0.8, 0.99)),
        epochs=30, log=True, view="contour", overlays=("steps",),
    )  # fmt: skip
    assert PlotConfig.from_dict(config.to_dict()) == config
    text = """
epochs = 30
view = "contour"
log = true
overlays = ["steps", "momentum"]
[[losses]]
name = "mse"
[[losses]]
function = "quadratic"
condition = 20
[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.9
"""
    path = tmp_path / "run.toml"
    path.write_text(text)
    loaded = load_toml(path)
    assert loaded.losses == (LossSpec("mse"), TestFunction.of("quadratic", condition=20.0))
    assert loaded.optimizer.kwargs()["momentum"] == 0.9 and loaded.view == "contour"
    out = tmp_path / "t.png"
    assert run(capsys, "plot", "--config", path, "--out", out)[0] == 0
    assert json.loads(Image.open(out).text["Description"])["config"] == loaded.to_dict()
    for bad, message in (
        ("epochz = 3", "unknown key(s) epochz"),
        ("epochs = 'ten'", "epochs must be an integer"),
        ("log = 1", "log must be true or false"),
        ("[optimizer]\nname = 'sgd'\nlr = 0.1\nmomentumm = 0.9", "optimizer"),
        ("[[losses]]\nname = 'mse'\nbeta = 'x'", "losses[0]: beta must be a number"),
        ("[grid]\nw_size = 1", "grid size must be in"),
        ("epochs = [", "is not valid TOML"),
    ):
        path.write_text(bad)
        code, _, err = run(capsys, "plot", "--config", path, "--out", tmp_path / "bad.png")
        assert code == 2 and message in err and err.count("\n") == 1, (bad, err)
    path.write_text("epochs = 3")
    code, _, err = run(capsys, "plot", "--config", path, "--lr", "0.3", "--out", out, "--force")
    assert code == 2 and "drop --lr" in err


# --- exports, views, overlays -------------------------------------------------------------


def test_plot_save_csv_rows_match_the_trajectories(tmp_path, capsys):
    out, save = tmp_path / "p.png", tmp_path / "p.csv"
    assert run(capsys, "plot", "--loss", "mse", "l1", "--epochs", "7", "--momentum", "0.9",
               "--grid-size", "11", "--out", out, "--save", save)[0] == 0  # fmt: skip
    rows = list(csv.DictReader(save.open()))
    assert len(rows) == 2 * 8
    data = make_data()
    for k, loss in enumerate(("mse", "l1")):
        ref = train(data, loss=LossSpec(loss),
                    optimizer=OptimizerSpec.of("sgd", lr=0.1, momentum=0.9), epochs=7)  # fmt: skip
        mine = [r for r in rows if r["run"] == str(k)]
        np.testing.assert_array_equal([float(r["weight"]) for r in mine], ref.weights)
        np.testing.assert_array_equal([float(r["loss"]) for r in mine], ref.losses)
        buffers = [float(r["buffer_bias"]) for r in mine[1:]]
        np.testing.assert_array_equal(buffers, ref.buffers[1:, 1])


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_train_save_json_and_npz(tmp_path, capsys, suffix):
    save = tmp_path / f"t{suffix}"
    assert run(capsys, "train", "--function", "booth", "--epochs", "5", "--save", save)[0] == 0
    ref = train(None, loss=TestFunction("booth"), optimizer=OptimizerSpec.of("sgd", lr=0.05),
                epochs=5)  # fmt: skip
    if suffix == ".json":
        payload = json.loads(save.read_text())
        assert payload["runs"][0]["objective"] == "Booth"
        assert [p["loss"] for p in payload["points"]] == pytest.approx(ref.losses.tolist())
    else:
        arrays = np.load(save)
        np.testing.assert_array_equal(arrays["run0_path"], ref.path)
    assert run(capsys, "train", "--epochs", "5", "--save", save)[0] == 2


def test_momentum_buffer_is_torchs_own(article_data):
    run_ = train(article_data, optimizer=OptimizerSpec.of("sgd", lr=0.1, momentum=0.9), epochs=3,
                 dtype=torch.float64)  # fmt: skip
    model = torch.nn.Linear(1, 1, dtype=torch.float64)
    with torch.no_grad():
        model.weight.fill_(6.0)
        model.bias.fill_(-3.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.tensor(article_data.x, dtype=torch.float64).reshape(-1, 1)
    y = torch.tensor(article_data.y, dtype=torch.float64).reshape(-1, 1)
    for step in range(3):
        opt.zero_grad()
        torch.nn.MSELoss()(model(x), y).backward()
        opt.step()
        buf = [float(opt.state[p]["momentum_buffer"].reshape(-1)[0]) for p in model.parameters()]
        np.testing.assert_array_equal(run_.buffers[step + 1], buf)
    assert np.isnan(run_.buffers[0]).all()


def test_overlays_draw_their_arrows(article_data):
    config = PlotConfig(losses=(LossSpec("mse"),), epochs=20, batch_size=10,
                        optimizer=OptimizerSpec.of("sgd", lr=0.05, momentum=0.9),
                        overlays=("gradient", "steps", "momentum", "batches", "lr"))  # fmt: skip
    drawn = build_plot(config, fig=Figure())
    ax = drawn.axes[0]
    quivers = {q.get_label(): q for q in ax.findobj(Quiver)}
    assert quivers["−gradient"].N == 15 * 15
    steps = 20 * 5
    drawn_steps = quivers["actual step"].N
    assert drawn_steps == steps // 2  # thinned to at most 60 arrows
    assert quivers["−lr × momentum buffer"].N == quivers["actual step"].N
    assert quivers["−lr × per-batch gradient"].N % 5 == 0
    inset = [child for child in ax.child_axes if child.get_title() == "lr per step"]
    assert len(inset) == 1 and len(inset[0].lines[0].get_xdata()) == steps


def test_contour_view_labels_levels_and_surface_path_lies_on_it(article_data):
    config = PlotConfig(losses=(LossSpec("mse"),), view="contour", log=True, epochs=10)
    drawn = build_plot(config, fig=Figure())
    assert drawn.panels[0].landscape.lines is not None
    assert drawn.panels[0].landscape.lines.labelTexts
    landscape = loss_map(article_data)
    trajectory = train(article_data, epochs=10)
    fig = Figure()
    artists = plot_surface3d(landscape, trajectory, ax=fig.add_subplot(projection="3d"))
    xs, ys, zs = artists.path.get_data_3d()
    np.testing.assert_array_equal(zs, trajectory.losses)
    np.testing.assert_array_equal(xs, trajectory.biases)
    np.testing.assert_array_equal(ys, trajectory.weights)


def test_plot_function_cli_and_bad_options(tmp_path, capsys):
    out = tmp_path / "f.png"
    code, _, _ = run(capsys, "plot", "--function", "quadratic:condition=30", "--view",
                     "surface", "--out", out)  # fmt: skip
    assert code == 0 and out.exists()
    record = json.loads(Image.open(out).text["Description"])
    assert record["config"]["losses"] == [{"function": "quadratic", "condition": 30.0}]
    assert record["config"]["optimizer"]["lr"] == 0.4  # the function's customary lr
    for args, message in (
        (["--function", "nope"], "unknown function"),
        (["--function", "quadratic:cond=3"], "no option 'cond'"),
        (["--function", "booth", "--batch-size", "4"], "mini-batches need data"),
        (["--overlay", "batches"], "needs a mini-batch run"),
    ):
        code, _, err = run(capsys, "plot", *args, "--out", tmp_path / "g.png")
        assert code == 2 and message in err, (args, err)
