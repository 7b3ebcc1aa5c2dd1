from __future__ import annotations

import json

import numpy as np
import pytest

from gdscope.errors import GdscopeError
from gdscope.problem.losses import LossSpec
from gdscope.studies.shootout import _final_losses, compare, start_points
from gdscope.studies.sweep import Axis


def test_start_points_are_seeded_and_start_with_the_articles():
    a, b = start_points(4, seed=3), start_points(4, seed=3)
    np.testing.assert_array_equal(a, b)
    assert tuple(a[0]) == (6.0, -3.0) and a.shape == (4, 2)
    assert not np.array_equal(a, start_points(4, seed=4))


@pytest.mark.parametrize(("name", "dtype"), [("adam", "float64"), ("sgd", "float64"),
                                             ("sgd", "float32")])  # fmt: skip
def test_batched_and_reference_engines_score_alike(article_data, name, dtype):
    # sgd on the CPU runs the native kernel (studies.sweep.run_cells), adam the tensor engine;
    # the reference trains real torch.optim optimizers one run at a time
    import torch

    settings = [{"lr": 0.05}, {"lr": 0.3}, {"lr": 3.0}]
    points = start_points(3, seed=1)
    loss = LossSpec("huber")
    kind = getattr(torch, dtype)
    batched = _final_losses(article_data, name, settings, points, loss, 40, kind)
    # force the reference path through a table the batched engine lacks the name in
    import gdscope.studies.shootout as module

    saved = module.TRANSFORMS
    module.TRANSFORMS = {}
    try:
        reference = _final_losses(article_data, name, settings, points, loss, 40, kind)
    finally:
        module.TRANSFORMS = saved
    assert np.isnan(batched).sum() == np.isnan(reference).sum()  # the same runs diverged
    np.testing.assert_allclose(batched, reference, rtol=1e-9 if dtype == "float64" else 1e-5)


def test_compare_picks_the_best_lr_by_final_loss(article_data):
    lr = Axis("lr", (0.001, 0.1, 0.5, 5.0), log=True)
    result = compare(article_data, ["sgd", "adamax"], budget=30, starts=3, lr=lr)
    by_name = {c.name: c for c in result.contenders}
    sgd = by_name["sgd"]
    assert sgd.scores[3] == np.inf  # lr 5 diverges: scored +inf, not dropped
    assert (
        sgd.score == min(sgd.scores) and sgd.options["lr"] == lr.values[int(np.argmin(sgd.scores))]
    )
    assert by_name["adamax"].path.optimizer.name == "adamax"  # not batched: reference engine
    table = result.table()
    assert [row["mean_final_loss"] for row in table] == sorted(
        row["mean_final_loss"] for row in table
    )
    assert result.meta["seed"] == 0 and result.meta["budget"] == 30 and "torch" in result.meta


def test_momentum_tuning_maps_to_beta1_for_adam(article_data):
    result = compare(
        article_data, ["adam", "sgd"], budget=10, starts=1,
        lr=Axis("lr", (0.01, 0.1)), momentum=Axis("momentum", (0.0, 0.9)),
    )  # fmt: skip
    adam, sgd = result.contenders
    assert {tuple(s) for s in (sorted(x) for x in adam.settings)} == {("betas", "lr")}
    assert {s["momentum"] for s in sgd.settings} == {0.0, 0.9}


def test_unknown_optimizer(article_data):
    with pytest.raises(GdscopeError, match="unknown optimizer"):
        compare(article_data, ["sgd", "adamz"])


def test_an_optimizer_named_twice_is_refused_before_any_run(article_data, monkeypatch):
    import gdscope.studies.shootout as shootout

    monkeypatch.setattr(shootout, "_final_losses", None)  # a run would fail otherwise
    with pytest.raises(GdscopeError, match="sgd named more than once"):
        compare(article_data, ["sgd", "adam", "SGD"])


def test_compare_on_a_test_function_starts_in_its_domain():
    from gdscope.engines.reference import train
    from gdscope.optim.specs import OptimizerSpec
    from gdscope.problem.testfunctions import TestFunction

    booth = TestFunction("booth")
    result = compare(None, ["sgd", "adam"], loss=booth, budget=50, starts=4, seed=3)
    assert tuple(result.starts[0]) == booth.start
    (ylo, yhi), (xlo, xhi) = booth.domain
    assert ((result.starts[1:, 0] >= ylo) & (result.starts[1:, 0] <= yhi)).all()
    assert ((result.starts[1:, 1] >= xlo) & (result.starts[1:, 1] <= xhi)).all()
    best = result.contenders[0]
    reference = train(None, loss=booth, optimizer=OptimizerSpec.of(best.name, **best.options),
                      epochs=50, start=booth.start)  # fmt: skip
    np.testing.assert_array_equal(best.path.path, reference.path)


def test_ctrl_c_keeps_the_optimizers_already_scored(tmp_path, monkeypatch, capsys):
    """Ctrl-C after the first optimizer was scored: the CLI draws and saves that one, says what
    it kept, and exits 130."""
    import gdscope.studies.shootout as shootout
    from gdscope import interrupts
    from gdscope.cli.main import main

    scored: list[str] = []
    real = shootout._winner

    def winner(*args, **kwargs):
        contender = real(*args, **kwargs)
        scored.append(contender.name)
        return contender

    monkeypatch.setattr(shootout, "_winner", winner)
    monkeypatch.setattr(interrupts, "requested", lambda: bool(scored))  # pressed after the first
    out, save = str(tmp_path / "c.png"), str(tmp_path / "c.json")
    code = main(["compare", "--optimizers", "sgd,adam", "--tune", "lr=0.01,0.1", "--budget", "10",
                 "--starts", "2", "--out", out, "--save", save])  # fmt: skip
    assert code == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["gdscope: interrupted: kept 1 of 2 optimizers"]
    saved = json.loads((tmp_path / "c.json").read_text())
    assert list(saved["tried"]) == ["sgd"]
    assert (tmp_path / "c.png").stat().st_size > 0


def test_tuning_edges_names_a_winner_at_either_end_of_several_tried_values():
    from gdscope.studies.shootout import tuning_edges

    tried = {"lr": [0.01, 0.1, 1.0], "momentum": [0.0, 0.5, 0.9]}
    assert tuning_edges({"lr": 0.1, "momentum": 0.5}, tried) == []
    assert tuning_edges({"lr": 1.0, "momentum": 0.5}, tried) == [
        "the best lr, 1, is the highest tried (0.01 to 1): a better one may lie beyond the "
        "tuning grid"]  # fmt: skip
    low = tuning_edges({"lr": 0.01, "momentum": 0.9}, tried)
    assert [line.split(",")[0] for line in low] == ["the best lr", "the best momentum"]
    assert "lowest" in low[0] and "highest" in low[1]
    assert tuning_edges({"lr": 0.1, "momentum": 0.0}, tried) == []  # nothing below momentum 0
    assert tuning_edges({"lr": 0.1}, {"lr": [0.1, 0.1]}) == []  # one value: no grid to leave


def test_an_adam_winner_on_the_edge_of_beta1_is_named_by_its_momentum(article_data):
    import warnings

    from gdscope.studies.shootout import compare
    from gdscope.studies.sweep import Axis

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        grid = {"lr": Axis.parse("lr=0.01,0.05"), "momentum": Axis.parse("momentum=0.5,0.9")}
        done = compare(article_data, ["adam"], budget=20, starts=2, **grid)
    lines = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert lines == done.contenders[0].edges() and lines  # warned as computed
    assert all(line.startswith("adam: the best ") for line in lines)
