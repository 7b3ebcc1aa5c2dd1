"""``gdscope landscape --convexity`` and the real-data examples (``skip``, ``batch-size``, ``eos
--data digits``) from the command line: their options, refusals, and small runs end to end."""

from __future__ import annotations

import functools
import json

import pytest

from gdscope.cli.main import main
from gdscope.jobs import papers
from gdscope.jobs.records import read_record
from gdscope.nets.convexity import ConvexityOptions
from tests.conftest import require

MLP = ("landscape", "--model", "gdscope.examples.mlp:make_model",
       "--data", "gdscope.examples.mlp:make_loader")  # fmt: skip


def test_convexity_is_drawn_recorded_and_replayed(tmp_path, capsys):
    out = tmp_path / "c.png"
    args = [*MLP, "--x", "-1", "1", "3", "--y", "-1", "1", "3", "--convexity", "2",
            "--convexity-samples", "50", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    argv = read_record(out)["argv"]
    assert argv[argv.index("--convexity") + 1] == "2" and "--convexity-samples" in argv
    again = tmp_path / "again.png"
    assert main(["replay", str(out), "--out", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()  # the same map, computed again


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--convexity-samples", "5"], "--convexity-samples sets the convexity map's data"),
        (["--convexity", "--line"], "the convexity map is of a plane, not a line"),
        (["--convexity", "1"], "convexity points must be an integer ≥ 2"),
        (["--convexity", "--states"], "drop --states"),
    ],
)
def test_convexity_refuses_what_it_cannot_map_in_one_line(tmp_path, capsys, extra, says):
    assert main([*MLP, *extra, "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err
    assert not list(tmp_path.iterdir())


def test_a_surface_file_is_drawn_without_a_convexity_map(tmp_path, capsys):
    h5 = tmp_path / "s.h5"
    h5.write_bytes(b"")
    assert main(["landscape", "--from-h5", str(h5), "--convexity", "--out",
                 str(tmp_path / "x.png")]) == 2  # fmt: skip
    assert "drop --convexity" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["skip", "--epochs", "5"], "--epochs does not apply to example skip"),
        (
            ["batch-size", "--grid", "9", "--device", "cuda"],
            "--grid, --device do not apply to example batch-size",
        ),
        (["mlp", "--data", "digits"], "--data does not apply to example mlp"),
        (["eos", "--data", "cifar"], "invalid choice: 'cifar'"),
        (["skip", "--grid", "1"], "points per axis must be a whole number"),
    ],
)
def test_examples_refuse_bad_options_before_any_work(tmp_path, capsys, args, says):
    out = tmp_path / "e"
    try:
        code = main(["example", args[0], "--out", str(out), *args[1:]])
    except SystemExit as done:  # argparse's own refusals (a choice not offered)
        code = done.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and says in err
    assert not out.exists() or not list(out.iterdir())


def test_example_skip_runs_end_to_end_and_refuses_its_files_then(tmp_path, capsys, monkeypatch):
    require("sklearn.datasets")
    small = functools.partial(papers.make_skip, epochs=1, blocks=1,
                              convexity=ConvexityOptions(points=2, samples=32))  # fmt: skip
    monkeypatch.setattr(papers, "make_skip", small)
    out = tmp_path / "skip"
    assert main(["example", "skip", "--out", str(out), "--grid", "3"]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == [str(out / "skip.json"), str(out / "skip.png")]
    assert "skip: residual network (4 linear layers) trained 1 epochs" in captured.err
    assert "% of the plane has |λ_min/λ_max| > 0.1" in captured.err
    numbers = json.loads((out / "skip.json").read_text())
    assert set(numbers["networks"]) == {"residual", "plain"}
    assert main(["example", "skip", "--out", str(out), "--grid", "3"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["example", "skip", "--out", str(out), "--grid", "3", "--force"]) == 0


def test_example_batch_size_runs_end_to_end(tmp_path, capsys, monkeypatch):
    require("sklearn.datasets")
    small = functools.partial(papers.make_batch_size, sizes={"small": (128, 0.05),
                              "large": (512, 0.1)}, target=1.0, points=3)  # fmt: skip
    monkeypatch.setattr(papers, "make_batch_size", small)
    out = tmp_path / "bs"
    assert main(["example", "batch-size", "--out", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str(out / "batch-size.json"),
                                               str(out / "batch-size.png")]  # fmt: skip


def test_several_paths_share_one_plane_saved_recorded_and_replayed(tmp_path, capsys):
    import numpy as np

    from gdscope.jobs.landscape import LandscapeJob, landscape_command, run_job
    from gdscope.nets.surface_io import NAMES_KEY

    from ..jobs.test_landscape import ADAM, SGD, record_mlp

    record_mlp(tmp_path / "sgd", seed=1, optimizer=SGD)
    record_mlp(tmp_path / "adam", seed=2, optimizer=ADAM)
    sgd, adam = str(tmp_path / "sgd"), str(tmp_path / "adam")
    grid = ("--directions", "pca", "--x", "-3", "3", "5", "--y", "-2", "2", "4")
    out, saved = tmp_path / "both.png", tmp_path / "both.npz"
    args = [*MLP, "--path", sgd, "--path", adam, *grid, "--strategy", "loop"]
    assert main([*args, "--out", str(out), "--save", str(saved)]) == 0
    job = run_job(LandscapeJob(model=MLP[2], data=MLP[4], path=[sgd, adam], directions="pca",
                               x=(-3.0, 3.0, 5), y=(-2.0, 2.0, 4), strategy="loop"))  # fmt: skip
    with np.load(saved) as arrays:
        assert list(arrays[NAMES_KEY]) == ["sgd", "adam"]
        np.testing.assert_array_equal(arrays["loss"], job.surface.loss)
        for i, run in enumerate(job.runs):  # the first where one path's is, the others by index
            suffix = f"_{i}" if i else ""
            np.testing.assert_array_equal(arrays["path_x" + suffix], run.projected.xs)
            np.testing.assert_array_equal(arrays["path_y" + suffix], run.projected.ys)
            np.testing.assert_array_equal(arrays["off_plane" + suffix], run.projected.off_plane)
    rec = read_record(out)
    assert rec["argv"][1:] == args[1:-2]  # (the evaluation apart, as for one path)
    assert set(rec["sha256"]) == {sgd, adam}  # both recordings pinned
    assert main(["replay", str(out)]) == 0
    assert (tmp_path / "both-replay.png").read_bytes() == out.read_bytes()
    # The command the board shows for such a plane computes the same surface again.
    command = landscape_command(model=MLP[2], data=MLP[4], checkpoint=None, paths=[sgd, adam],
                                surface=job.surface, out=tmp_path / "again.png")  # fmt: skip
    assert command[:2] == ["gdscope", "landscape"] and command.count("--path") == 2
    assert main([*command[1:], "--save", str(tmp_path / "again.npz")]) == 0
    with np.load(tmp_path / "again.npz") as arrays:
        np.testing.assert_array_equal(arrays["loss"], job.surface.loss)
    # HDF5: the reference's projection file holds the first path; the others beside it.
    h5py = require("h5py")
    assert main([*args, "--out", str(tmp_path / "h.png"), "--save", str(tmp_path / "h.h5")]) == 0
    with h5py.File(tmp_path / "h_proj.h5", "r") as f:
        np.testing.assert_array_equal(f["proj_xcoord"][()], job.runs[0].projected.xs)
        np.testing.assert_array_equal(f["proj_ycoord_1"][()], job.runs[1].projected.ys)
        assert [name.decode() for name in f[NAMES_KEY][()]] == ["sgd", "adam"]
    # One path: the file and the record as they always were.
    one = [*MLP, "--path", sgd, *grid]
    assert (
        main([*one, "--out", str(tmp_path / "one.png"), "--save", str(tmp_path / "one.npz")]) == 0
    )
    with np.load(tmp_path / "one.npz") as arrays:
        assert NAMES_KEY not in arrays and "path_x_1" not in arrays and "path_x" in arrays
    assert list(read_record(tmp_path / "one.png")["sha256"]) == [sgd]
    capsys.readouterr()
    both = [*MLP, "--path", sgd, "--path", adam, "--out", str(tmp_path / "x.png")]
    for extra, message in (
        ([*grid, "--animate", str(tmp_path / "m.gif")], "--animate moves one recorded path"),
        (["--line"], "several recorded paths are drawn on a plane, not along a line"),
        (["--path", str(tmp_path / "nope")], "nope: No such file or directory"),
    ):
        code = main([*both, *extra])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (extra, err)
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "m.gif").exists()
