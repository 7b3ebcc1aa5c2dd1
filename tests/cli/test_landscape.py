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
