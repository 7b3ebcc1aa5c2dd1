"""Animations (GIF, MP4, the 3D surface view): frames, sizes, what they show, bad outputs."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from gdscope.jobs.plotconfig import PlotConfig
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.losses import LossSpec

from ..reference import run


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
