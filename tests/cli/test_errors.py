"""Bad input to any command: exit status 2, one line on stderr, no traceback, nothing written.

In-process through ``main`` (a subprocess per case cost 2.5-3 s); one subprocess checks the
installed console script itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from gdscope.cli.main import main

BAD = [
    ("train", "--lr", "-0.1"),
    ("train", "--momentum", "-1"),
    ("train", "--dampening", "-0.5"),
    ("train", "--weight-decay", "-2"),
    ("train", "--nesterov"),
    ("train", "--nesterov", "--momentum", "0.9", "--dampening", "0.1"),
    ("train", "--loss", "hinge"),
    ("train", "--lr", "nan"),
    ("train", "--lr", "inf"),
    ("train", "--start", "1", "inf"),
    ("train", "--epochs", "0"),
    ("train", "--epochs", "100001"),
    ("train", "--epochs", "ten"),
    ("train", "--n", "0"),
    ("train", "--huber-delta", "0"),
    ("train", "--lr", "1e39"),  # torch refuses at its first step: beyond float32
    ("plot", "--optimizer", "adam", "--opt", "lr=1e39", "--out", "x.png"),
    ("plot", "--grid-size", "1", "--out", "x.png"),
    ("plot", "--grid-size", "5", "5", "5", "--out", "x.png"),
    ("plot", "--w-range", "3", "1", "--out", "x.png"),
    ("plot", "--out", "x.gif"),
    ("plot", "--dpi", "0", "--out", "x.png"),
    ("plot",),
    ("figure", "fig11", "--out", "x.png"),
    ("reproduce",),
    ("reproduce", "--dpi", "5", "--out", "gallery"),
    ("frobnicate",),
    ("phase", "--x", "lr=0:1:5:log", "--y", "momentum=0,0.5", "--out", "x.png"),
    ("phase", "--x", "lr=0.1,1", "--y", "lr=0.1,1", "--out", "x.png"),
    ("phase", "--x", "lr=0.1,1", "--y", "momentum=-1,0.5", "--out", "x.png"),
    ("phase", "--x", "lr=0.1,1", "--y", "momentum=0,0.5", "--metric", "speed", "--out", "x.png"),
    ("phase", "--x", "lr=0.1,1", "--y", "momentum=0,0.5", "--out", "x.png", "--save", "x.txt"),
    ("phase", "--x", "lr=0.1,1", "--y", "momentum=0,0.5", "--chunk", "0", "--out", "x.png"),
    ("phase", "--x", "lr=0.1,1", "--y", "momentum=0,0.5", "--device", "cuda:7", "--out", "x.png"),
    ("sweep", "--vary", "lr=0.01:1:100", "--out", "x.png"),
    ("sweep", "--vary", "lr=1", "--vary", "momentum=0", "--vary", "dampening=0", "--out", "x.png"),
    ("sweep", "--vary", "warp=1,2", "--out", "x.png"),
    ("sweep", "--vary", "lr=0.1,1", "--function", "booth", "--batch-size", "4", "--out", "x.png"),
    ("compare", "--optimizers", "sgd,nope", "--out", "x.png"),
    ("compare", "--tune", "eps=1,2", "--out", "x.png"),
    ("compare", "--out", "x.png", "--save", "x.csv"),
    ("replay", "nothing.png"),
    ("plot", "--opt", "lr=nan", "--out", "x.png"),
    ("plot", "--optimizer", "adam", "--opt", "betas=nan,0.9", "--out", "x.png"),
    ("sweep", "--vary", "momentum=0,0.9", "--opt", "lr=inf", "--out", "x.png"),
    ("phase", "--x", "momentum=0,.5", "--y", "dampening=0,.5", "--opt", "lr=nan", "--out", "x.png"),
    ("compare", "--tune", "lr=1e-3:nan:5", "--out", "x.png"),
]


def run(args: tuple[str, ...]) -> int:
    """``main``'s status, or the one argparse exits with on a usage error."""
    try:
        return main(list(args))
    except SystemExit as done:
        return int(done.code or 0)


@pytest.mark.parametrize("args", BAD, ids=[" ".join(a[:5]) for a in BAD])
def test_bad_input_is_one_line_and_status_2(args, tmp_path, monkeypatch, capsys):
    if "cuda:7" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA device is present")
    monkeypatch.chdir(tmp_path)
    code = run(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gdscope: error:"), err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_console_script_says_one_line_and_exits_2(tmp_path):
    script = shutil.which("gdscope") or str(Path(sys.executable).with_name("gdscope"))
    result = subprocess.run(
        [script, "train", "--lr", "-0.1"], capture_output=True, text=True, timeout=300,
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("gdscope: error:")


class _Warns(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = torch.nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        warnings.warn("a library's warning\nwith a second line", UserWarning, stacklevel=1)
        return self.inner(x)


def warning_model() -> torch.nn.Module:
    return _Warns()


def test_warnings_are_one_line_each_at_the_end_and_none_beside_an_error(tmp_path):
    root = Path(__file__).resolve().parents[2]
    model = ["--model", f"{__name__}:warning_model", "--data",
             "tests.jobs.test_studies_network:tiny_data"]  # fmt: skip
    args = ["phase", *model, "--x", "lr=0.1,1", "--y", "momentum=0,0.5", "--steps", "2"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "src")])}

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gdscope", *args, *extra],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path,
                              env=env, check=False)  # fmt: skip

    done = run("--out", "p.png")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "gdscope: warning: a library's warning\n"
    failed = run("--out", "q.png", "--loss", "mse")  # fails after the forward warned
    assert failed.returncode == 2
    assert failed.stderr.count("\n") == 1 and failed.stderr.startswith("gdscope: error:")


def test_a_server_prints_each_warning_at_once_in_one_line(capsys):
    from gdscope.cli.options import warn_now

    with warnings.catch_warnings():  # as main holds them; the server prints them as they come
        warnings.simplefilter("always")
        warn_now()
        warnings.warn("first line\nsecond line", UserWarning, stacklevel=1)
        assert capsys.readouterr().err == "gdscope: warning: first line\n"


NO_PLACE = [
    (("plot", "--out", "existing.png/x.png"), "existing.png is a file, not a directory"),
    (("plot", "--out", "ro/x.png"), "cannot write in ro: permission denied"),
    (("plot", "--out", "/proc/x.png"), "cannot write in /proc: it does not take new files"),
    (("reproduce", "--out", "ro/figs"), "cannot make a directory in ro: permission denied"),
    (("reproduce", "--out", "existing.png/figs"), "existing.png is a file, not a directory"),
    (("reproduce", "--out", "existing.png"), "existing.png is a file, not a directory"),
    (("reproduce", "--out", "/proc/figs"), "cannot make a directory in /proc"),
    (("example", "eos", "--out", "ro/eos"), "cannot make a directory in ro: permission denied"),
    (("example", "eos", "--out", "/proc/eos"), "cannot make a directory in /proc"),
    (("example", "mlp", "--out", "existing.png/sub"), "existing.png is a file, not a directory"),
    (("example", "cnn", "--out", "ro/a/b"), "cannot make a directory in ro: permission denied"),
]
"""Outputs that cannot be written, and what the one line says (true for each: a file in the
way, a folder that refuses new entries, ``/proc`` which answers "No such file or directory")."""


@pytest.mark.parametrize("args, says", NO_PLACE, ids=[" ".join(a) for a, _ in NO_PLACE])
def test_an_output_that_cannot_be_written_is_one_true_line_before_any_work(
    args, says, tmp_path, monkeypatch, capsys
):
    if "ro/" in " ".join(args) and os.geteuid() == 0:
        pytest.skip("root writes in a read-only folder (the /proc cases stand in for it)")
    if "/proc/" in " ".join(args) and not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing.png").write_bytes(b"not a folder")
    (tmp_path / "ro").mkdir(mode=0o555)
    code = run(args)
    err = capsys.readouterr().err
    assert (code, err.count("\n"), "Traceback" in err) == (2, 1, False), err
    assert err.startswith(f"gdscope: error: {says}"), err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["existing.png", "ro"]


def test_the_library_says_settings_and_the_cli_says_its_flags():
    """A config speaks to a notebook in its own field names; the CLI says its flags instead,
    and only for the settings the error names (a quoted value or a module keeps its name)."""
    from gdscope.cli.main import build_parser
    from gdscope.cli.options import spoken
    from gdscope.errors import GdscopeError
    from gdscope.jobs.studyconfig import NetworkSpec

    with pytest.raises(GdscopeError) as caught:
        NetworkSpec("m:f", "d:f", strategy="fast")
    assert str(caught.value).startswith("strategy must be one of ")
    parser = build_parser()
    assert spoken(caught.value, parser, "phase").startswith("--strategy must be one of ")
    needs = GdscopeError("metric val_loss needs val_data", settings=["metric", "val_data"])
    assert spoken(needs, parser, "phase") == "--metric val_loss needs --val-data"
    quoted = GdscopeError("model: cannot import 'model' (model.py)", settings=["model"])
    assert spoken(quoted, parser, "phase") == "--model: cannot import 'model' (model.py)"
    assert spoken(needs, parser, "plot") == "metric val_loss needs val_data"  # no such flags
    states = GdscopeError("PCA takes no states", settings=["states"])
    assert spoken(states, parser, "landscape") == "PCA takes no --states"
    top = GdscopeError("top 9 asks for more eigenvalues", settings=["top"])
    assert spoken(top, parser, "hessian") == "--top 9 asks for more eigenvalues"


def test_values_and_switches_in_a_message_are_said_as_the_cli_takes_them():
    """``force=True`` is the switch ``--force``, ``path=False`` the switch ``--no-path``,
    ``to=X`` the option ``--to X``; in a notebook the message keeps the keywords."""
    from gdscope.cli.main import build_parser
    from gdscope.cli.options import spoken
    from gdscope.errors import GdscopeError
    from gdscope.files import check_target

    parser = build_parser()
    with pytest.raises(GdscopeError) as caught:
        check_target(__file__)
    assert str(caught.value).endswith("already exists; pass force=True to overwrite it")
    assert spoken(caught.value, parser, "plot").endswith("; pass --force to overwrite it")
    hidden = GdscopeError("an animation shows the paths; drop path=False", settings=["path"])
    assert spoken(hidden, parser, "animate") == "an animation shows the paths; drop --no-path"
    line = GdscopeError("a line needs the model at its end: give to=CHECKPOINT", settings=["to"])
    assert spoken(line, parser, "landscape").endswith(": give --to CHECKPOINT")
    ray = GdscopeError("backend=ray needs Ray: pip install", settings=["backend"])
    assert spoken(ray, parser, "phase") == "--backend ray needs Ray: pip install"
    assert spoken(ray, parser, "plot") == str(ray)  # plot has no --backend


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["landscape", "--model", "gdscope.examples.mlp:make_model", "--data",
          "gdscope.examples.mlp:make_loader", "--directions", "pca", "--out", "x.png"],
         "PCA directions need a recorded run: give --path"),
        (["landscape", "--model", "gdscope.examples.mlp:make_model", "--data",
          "gdscope.examples.mlp:make_loader", "--directions", "line", "--out", "x.png"],
         "a line needs the model at its end: give --to CHECKPOINT"),
        (["animate", "--no-path", "--out", "x.gif"],
         "an animation shows the paths; drop --no-path"),
    ],
)  # fmt: skip
def test_the_cli_says_its_own_flags_in_the_library_s_refusals(tmp_path, monkeypatch, capsys, args,
                                                             says):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    code = run(args)
    err = capsys.readouterr().err
    assert (code, err) == (2, f"gdscope: error: {says}\n")
