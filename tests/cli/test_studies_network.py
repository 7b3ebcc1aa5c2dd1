"""``gdscope phase|sweep|compare --model``: end to end, and bad input as one line, exit 2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import gdscope.studies.netstudy as netstudy
from gdscope import modules
from gdscope.cli.main import main
from gdscope.jobs.records import read_record

HERE = "tests.jobs.test_studies_network"
NET = ("--model", f"{HERE}:tiny_model", "--data", f"{HERE}:tiny_data")


def wrong_shape_model() -> nn.Module:
    return nn.Linear(5, 3)


def missing_data():
    return open("no-such-file.csv")


def test_phase_sweep_compare_with_a_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    grid = ["--x", "lr=0.01:1:3:log", "--y", "momentum=0,0.9", "--metric", "final_loss"]
    assert main(["phase", *NET, *grid, "--steps", "5", "--out", "p.png", "--save", "p.csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["p.png", "p.csv"]
    assert read_record(tmp_path / "p.png")["config"]["network"]["steps"] == 5
    assert main(["sweep", *NET, "--vary", "lr=0.1,1", "--steps", "4", "--out", "s.png"]) == 0
    assert main(["compare", *NET, "--optimizers", "sgd,rmsprop", "--tune", "lr=0.01:1:3:log",
                 "--steps", "4", "--out", "c.png"]) == 0  # fmt: skip
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "s.png" and printed[-1] == "c.png"
    assert {line.split("  ")[0] for line in printed[1:3]} == {"optimizer=sgd", "optimizer=rmsprop"}


def smoothed_loss() -> nn.Module:
    return nn.CrossEntropyLoss(label_smoothing=0.1)


def test_loss_names_the_networks_loss_with_model_and_the_neurons_without(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    grid = ["--x", "lr=0.1,1", "--y", "momentum=0,0.9", "--metric", "final_loss", "--steps", "3"]
    for loss, name in ((f"{__name__}:smoothed_loss", "a.png"), (None, "b.png")):
        given = ["--loss", loss] if loss else []
        assert main(["phase", *NET, *grid, *given, "--out", name, "--save", f"{name}.json"]) == 0
    losses = [read_record(tmp_path / n)["config"]["network"]["loss"] for n in ("a.png", "b.png")]
    assert losses == [f"{__name__}:smoothed_loss", "crossentropy"]
    assert main(["phase", "--loss", "l1", *grid[:4], "--epochs", "3", "--out", "c.png"]) == 0
    assert read_record(tmp_path / "c.png")["config"]["problem"]["losses"][0]["name"] == "l1"


def test_resume_continues_from_the_saved_chunks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["phase", *NET, "--x", "lr=0.01:1:4:log", "--y", "momentum=0,0.9", "--steps", "4",
            "--chunk", "3", "--resume", "r.npz", "--metric", "final_loss"]  # fmt: skip
    assert main([*args, "--out", "a.png"]) == 0
    sizes = []
    real = netstudy.train_stacked
    monkeypatch.setattr(netstudy, "train_stacked",
                        lambda *a, **k: sizes.append(k["size"]) or real(*a, **k))  # fmt: skip
    assert main([*args, "--out", "b.png"]) == 0
    assert sizes == []  # every cell came from the resume file
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", f"{HERE}:not_a_model", "--data", f"{HERE}:tiny_data"], "not nn.Module"),
        (["--model", f"{HERE}:tiny_model", "--data", f"{HERE}:empty_data"], "no batches"),
        ([*NET, "--x", "lr=-1:1:3"], "lr must be >= 0"),
        ([*NET, "--x", "beta1=0.5,0.9"], "unknown argument(s) beta1"),
        ([*NET, "--metric", "path_length"], "not measured for a network"),
        ([*NET, "--metric", "val_loss"], "needs --val-data"),
        (["--val-data", f"{HERE}:tiny_data"], "--val-data, --steps need --model"),
        (["--model", f"{HERE}:tiny_model"], "--model needs --data"),
        ([*NET, "--scheduler", "steplr"], "missing 1 required positional argument"),
        (["--scheduler", "steplr", "--sched", "step_size=2"], "--scheduler need --model"),
        (
            ["--model", f"{__name__}:wrong_shape_model", "--data", f"{HERE}:tiny_data"],
            "failed: mat1 and mat2",
        ),
        (
            ["--model", f"{HERE}:tiny_model", "--data", f"{__name__}:missing_data"],
            "failed: [Errno 2] No such file or directory: 'no-such-file.csv'",
        ),
        (
            [*NET, "--val-data", f"{__name__}:missing_data", "--metric", "val_loss"],
            "loading --val-data tests.cli.test_studies_network:missing_data failed: [Errno 2]",
        ),
        ([*NET, "--resume", "p.png"], "--resume p.png is also an output"),
        ([*NET, "--chunk", "0"], "--chunk takes a positive integer or 'auto', got '0'"),
        (
            ["--loss", "crossentropy"],
            "unknown loss 'crossentropy'; choose one of mse, l1, huber, "
            "smoothl1 (a network's loss needs --model)",
        ),
        ([*NET, "--function", "booth"], "--function and --model are two different problems"),
        ([*NET, "--loss", "hinge"], "--loss must be one of crossentropy, mse"),
        ([*NET, "--epochs", "9", "--noise", "1"], "--epochs, --noise set the one-neuron problem"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, monkeypatch, capsys, argv,
                                                          message):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    base = {"--x": "lr=0.1,1", "--y": "momentum=0,0.5"}
    given = dict(zip(argv[::2], argv[1::2], strict=True))
    args = [item for pair in {**base, **given}.items() for item in pair]
    assert main(["phase", *args, "--steps", "3", "--out", "p.png"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "--device", "cuda", "--budget", "3"], "--device need --model"),
        (["sweep", "--vary", "lr=0.1,1", "--chunk", "2"], "--chunk need --model"),
        (["compare", *NET, "--budget", "3", "--steps", "3"], "--budget set the one-neuron"),
    ],
)
def test_options_of_the_other_problem_are_refused_not_ignored(tmp_path, monkeypatch, capsys,
                                                              argv, message):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--out", "c.png"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_copy_too_large_for_memory_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(modules, "free_memory", lambda device: 1000)
    code = main(["phase", *NET, "--x", "lr=0.1,1", "--y", "momentum=0,0.5", "--out", "p.png"])
    assert code == 2 and "one copy of the model needs" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert torch.get_default_dtype() == torch.float32


@pytest.mark.slow
def test_ctrl_c_keeps_the_finished_chunks_of_a_network_study(tmp_path):
    from tests.cli.test_interrupts import interrupt, kept_configurations, some_finished

    args = ["phase", "--model", "gdscope.examples.mlp:make_model", "--data",
            "gdscope.examples.mlp:make_loader", "--x", "lr=1e-3:1:8:log", "--y",
            "momentum=0,0.9", "--steps", "300", "--chunk", "2", "--metric", "final_loss",
            "--resume", "r.npz", "--out", "p.png", "--save", "p.npz"]  # fmt: skip
    outcome = interrupt(args, tmp_path, some_finished)
    kept = kept_configurations(outcome.line)
    assert kept is not None and 0 < kept[0] < kept[1] == 16, outcome.line
    assert outcome.line.endswith("the same command with --force continues from r.npz")
    with np.load(tmp_path / "r.npz") as saved:
        assert saved["completed"].sum() == kept[0]  # what --resume continues from
    assert (tmp_path / "p.png").exists()


class _Scalar(nn.Module):
    """A forward vmap cannot run (``.item()``)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inner = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        return out if out.sum().item() < float("inf") else out * 0


def unvmappable_model() -> nn.Module:
    return _Scalar()


def test_a_model_vmap_cannot_run_is_trained_copy_by_copy_with_a_note(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    model = f"{__name__}:unvmappable_model"
    args = ["phase", "--model", model, "--data", f"{HERE}:tiny_data", "--x", "lr=0.1,1",
            "--y", "momentum=0,0.5", "--steps", "3", "--out", "p.png"]  # fmt: skip
    assert main(args) == 0
    assert "gdscope: note: vmap cannot run this model" in capsys.readouterr().err
    compare = ["compare", "--model", model, "--data", f"{HERE}:tiny_data", "--optimizers",
               "sgd,adam", "--tune", "lr=0.1,1", "--steps", "3", "--out", "c.png"]  # fmt: skip
    assert main(compare) == 0
    assert capsys.readouterr().err.count("gdscope: note: vmap cannot run this model") == 1


def test_chunk_auto_is_accepted_for_a_network(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["phase", *NET, "--x", "lr=0.1,1", "--y", "momentum=0,0.5", "--steps", "3",
            "--chunk", "auto", "--out", "p.png"]  # fmt: skip
    assert main(args) == 0


def test_compare_warns_when_a_networks_winner_is_on_the_edge_of_its_grid(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    # Steps this small: the larger of two tiny rates goes further downhill, so it wins.
    args = ["compare", *NET, "--optimizers", "sgd", "--tune", "lr=1e-6:1e-5:2:log",
            "--steps", "3", "--out", "c.png"]  # fmt: skip
    with pytest.warns(UserWarning) as caught:
        assert main(args) == 0
    edges = [str(w.message) for w in caught if "tuning grid" in str(w.message)]
    assert edges == ["sgd: the best lr, 1e-05, is the highest tried (1e-06 to 1e-05): a better "
                     "one may lie beyond the tuning grid"]  # fmt: skip
    assert (tmp_path / "c.png").is_file()  # drawn all the same


def test_a_fixed_pair_beside_a_varied_half_trains_each_cell_with_the_axis_value(
    tmp_path, monkeypatch
):
    # the API once let betas override the axis; the CLI and the API now merge alike
    monkeypatch.chdir(tmp_path)
    args = ["phase", *NET, "--optimizer", "adam", "--opt", "betas=0.9,0.99", "--x", "lr=0.1,1",
            "--y", "beta1=0.5,0.8", "--steps", "2", "--out", "p.png",
            "--save", "p.json"]  # fmt: skip
    assert main(args) == 0
    import json

    cells = json.loads((tmp_path / "p.json").read_text())["cells"]
    assert [cell["beta1"] for cell in cells] == [0.5, 0.5, 0.8, 0.8]
    assert {cell["beta2"] for cell in cells} == {0.99}


def test_nesterov_fixed_with_a_varied_momentum_runs_with_the_axis_values(tmp_path, monkeypatch):
    # refused once: the fixed optimizer was validated with torch's default momentum, 0
    monkeypatch.chdir(tmp_path)
    args = ["phase", *NET, "--opt", "nesterov=true", "--x", "lr=0.1,0.3", "--y",
            "momentum=0.73,0.84", "--steps", "3", "--out", "p.png", "--save", "p.json"]  # fmt: skip
    assert main(args) == 0
    import json

    cells = json.loads((tmp_path / "p.json").read_text())["cells"]
    assert [cell["momentum"] for cell in cells] == [0.73, 0.73, 0.84, 0.84]
    assert all(cell["nesterov"] for cell in cells) and all(cell["completed"] for cell in cells)


def test_a_network_compare_scored_by_val_loss_needs_val_data_said_as_flags(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    args = ["compare", *NET, "--optimizers", "sgd", "--score", "val_loss", "--out", "c.png"]
    assert main(args) == 2
    assert capsys.readouterr().err == "gdscope: error: --score val_loss needs --val-data\n"
    assert list(tmp_path.iterdir()) == []
