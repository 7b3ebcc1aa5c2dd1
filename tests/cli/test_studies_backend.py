"""``gdscope phase|sweep|compare --model`` with ``--backend ray`` and ``--scheduler``: the same
figure as the local run, a replay that runs locally, and the options refused without --model."""

from __future__ import annotations

import pytest

from gdscope.cli.main import main
from gdscope.jobs.records import read_record
from gdscope.jobs.replay import replay

HERE = "tests.jobs.test_studies_network"
NET = ["--model", f"{HERE}:tiny_model", "--data", f"{HERE}:tiny_data"]
GRID = ["--x", "lr=0.05:0.5:3:log", "--y", "momentum=0,0.9", "--steps", "4", "--chunk", "2",
        "--metric", "final_loss", "--scheduler", "steplr", "--sched", "step_size=2"]  # fmt: skip


@pytest.mark.ray
def test_a_ray_phase_draws_the_local_figure_and_replays_locally(local_ray, tmp_path, capsys):
    remote, local = tmp_path / "ray.png", tmp_path / "local.png"
    # no chdir: Ray's workers start in this directory, where a relative PYTHONPATH still holds
    # the same way here and on Ray (auto is not timed on Ray: there it vmaps)
    way = ["--strategy", "vmap"]
    assert main(["phase", *NET, *GRID, *way, "--backend", "ray", "--out", str(remote)]) == 0
    assert main(["phase", *NET, *GRID, *way, "--out", str(local)]) == 0
    assert remote.read_bytes() == local.read_bytes()
    network = read_record(remote)["config"]["network"]
    assert network["scheduler"] == {"name": "steplr", "step_size": 2}
    assert replay(remote).read_bytes() == remote.read_bytes()
    assert capsys.readouterr().out.splitlines() == [str(remote), str(local)]
    auto = tmp_path / "auto.png"  # not timed on Ray: the record says how the workers trained
    assert main(["phase", *NET, *GRID, "--backend", "ray", "--out", str(auto)]) == 0
    assert read_record(auto)["config"]["network"]["strategy"] == "vmap"
    assert auto.read_bytes() == remote.read_bytes()


def test_compare_takes_a_scheduler(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["compare", *NET, "--optimizers", "sgd,adam", "--tune", "lr=0.01,0.1",
                 "--steps", "3", "--scheduler", "exponentiallr", "--sched", "gamma=0.9",
                 "--out", "c.png"]) == 0  # fmt: skip
    network = read_record(tmp_path / "c.png")["config"]["network"]
    assert network["scheduler"] == {"name": "exponentiallr", "gamma": 0.9}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["phase", "--x", "lr=0.1,1", "--y", "momentum=0,0.5", "--backend", "ray"],
         "--backend need --model"),
        (["sweep", "--vary", "lr=0.1,1", "--scheduler", "steplr", "--sched", "step_size=2"],
         "--scheduler need --model"),
        (["phase", *NET, "--x", "lr=0.1,1", "--y", "momentum=0,0.5", "--address", "auto"],
         "--address needs --backend ray"),
    ],
)  # fmt: skip
def test_backend_and_scheduler_refused_where_they_mean_nothing(tmp_path, monkeypatch, capsys,
                                                               argv, message):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--out", "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []
