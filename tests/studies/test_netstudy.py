"""Grids and shoot-outs over a network's copies: chunks, resume, memory, scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import gdscope.studies.netstudy as netstudy
from gdscope import modules
from gdscope.engines.stacked import train_stacked
from gdscope.errors import GdscopeError
from gdscope.studies.netstudy import Network, compare_network, run_network_grid
from gdscope.studies.phase import NETWORK_GROWTH
from gdscope.studies.sweep import Axis

from ..nets.test_plane import WRAPS, Wrapped

LR = Axis("lr", (0.01, 0.3, 3.0), log=True)
MOMENTUM = Axis("momentum", (0.0, 0.9))


def _network(*, val: bool = False) -> Network:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(48, 2, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 48, 16)]
    return Network.of(model, batches, nn.CrossEntropyLoss(), val=batches if val else None)


def test_each_cell_is_the_copy_the_engine_trains_whatever_the_chunks():
    network = _network(val=True)
    whole = run_network_grid(network, "sgd", (MOMENTUM, LR), steps=6, chunk=6, init="seeded")
    chunked = run_network_grid(network, "sgd", (MOMENTUM, LR), steps=6, chunk=4, init="seeded")
    assert whole.completed.all() and not whole.interrupted
    for key in ("final_loss", "val_loss", "val_accuracy", "diverged", "best_loss"):
        np.testing.assert_allclose(whole.metrics[key], chunked.metrics[key], rtol=1e-6)
    np.testing.assert_allclose(whole.losses, chunked.losses, rtol=1e-6)
    k = 4  # momentum 0.9, lr 0.3
    assert whole.options_of(k)["momentum"] == pytest.approx(0.9)
    assert whole.options_of(k)["lr"] == pytest.approx(0.3)
    direct = train_stacked(network.model, network.x, network.y, network.loss_fn, "sgd",
                           {"lr": 0.3, "momentum": 0.9}, size=1, steps=6, batch_size=16,
                           init="seeded", seed=[k])  # fmt: skip
    np.testing.assert_allclose(whole.losses[k], direct.losses[:, 0].numpy(), rtol=1e-6)


def test_diverged_marks_non_finite_copies_and_copies_that_got_worse():
    lr = Axis("lr", (0.01, 1.0, 100.0, 1e300))
    run = run_network_grid(_network(), "sgd", (lr,), steps=10, chunk="auto")
    diverged = run.grid("diverged")
    assert diverged[0] == 0 and diverged[2] == 1  # lr 0.01 trains, lr 100 does not
    assert run.metrics["diverged_at"][0] == -1 and run.metrics["diverged_at"][3] >= 1
    grew = run.metrics["final_loss"] > NETWORK_GROWTH * run.metrics["start_loss"]
    non_finite = run.metrics["diverged_at"] >= 0
    np.testing.assert_array_equal(diverged.astype(bool), grew | non_finite)


def test_steps_to_target_is_the_first_step_at_or_below_it():
    run = run_network_grid(_network(), "adam", (LR,), steps=8, target=0.9)
    for k in range(3):
        losses = run.losses[k]
        hits = np.flatnonzero(losses <= 0.9)
        expected = hits[0] + 1 if hits.size else np.nan
        np.testing.assert_equal(run.metrics["steps_to_target"][k], expected)


def test_a_stopped_run_keeps_finished_chunks_and_resume_continues(tmp_path):
    network, file = _network(), tmp_path / "r.npz"
    asked = iter([False] * 7 + [True] * 100)  # stop within the second chunk
    partial = run_network_grid(network, "sgd", (MOMENTUM, LR), steps=5, chunk=2, resume=file,
                               should_stop=lambda: next(asked), method="vmap")  # fmt: skip
    assert partial.interrupted and partial.completed.sum() == 2 and file.exists()
    calls = []
    real = netstudy.train_stacked

    def counted(*args, **kwargs):
        calls.append(kwargs["size"])
        return real(*args, **kwargs)

    netstudy.train_stacked = counted
    try:
        resumed = run_network_grid(network, "sgd", (MOMENTUM, LR), steps=5, chunk=2, resume=file)
    finally:
        netstudy.train_stacked = real
    assert sum(calls) == 4 and resumed.completed.all()
    fresh = run_network_grid(network, "sgd", (MOMENTUM, LR), steps=5, chunk=6)
    np.testing.assert_allclose(resumed.metrics["final_loss"], fresh.metrics["final_loss"],
                               rtol=1e-6)  # fmt: skip
    with pytest.raises(GdscopeError, match="different study"):
        run_network_grid(network, "sgd", (MOMENTUM, LR), steps=6, chunk=2, resume=file)
    with pytest.raises(GdscopeError, match="trained with vmap; strategy loop would mix"):
        run_network_grid(network, "sgd", (MOMENTUM, LR), steps=5, chunk=2, resume=file,
                         method="loop")  # fmt: skip


def test_a_resume_file_of_another_loss_or_validation_data_is_refused(tmp_path):
    file = tmp_path / "r.npz"
    network = _network(val=True)
    run_network_grid(network, "sgd", (LR,), steps=3, resume=str(file))  # any path-like
    assert file.exists()
    compare_network(network, ("sgd",), lr=LR, steps=3, resume=str(tmp_path / "c.npz"))
    assert (tmp_path / "c-sgd.npz").exists()
    x, y = network.x, network.y
    smoothed = Network.of(network.model, [(x, y)], nn.CrossEntropyLoss(label_smoothing=0.1),
                          val=network.val, batch_size=16)  # fmt: skip
    other_val = Network.of(network.model, [(x, y)], network.loss_fn,
                           val=[(x[:8], y[:8])], batch_size=16)  # fmt: skip
    for changed in (smoothed, other_val):
        with pytest.raises(GdscopeError, match="different study"):
            run_network_grid(changed, "sgd", (LR,), steps=3, resume=file)
    same = Network.of(network.model, [(x, y)], nn.CrossEntropyLoss(), val=network.val,
                      batch_size=16)  # fmt: skip
    assert run_network_grid(same, "sgd", (LR,), steps=3, resume=file).completed.all()


def test_each_cell_keeps_the_settings_tried_not_where_a_scheduler_left_them():
    from gdscope.optim.specs import SchedulerSpec

    schedule = SchedulerSpec.of("onecyclelr", max_lr=0.5, total_steps=6)
    run = run_network_grid(_network(), "sgd", (MOMENTUM, LR), steps=6, scheduler=schedule)
    np.testing.assert_allclose(run.options["lr"], np.tile(LR.values, 2))
    np.testing.assert_allclose(run.options["momentum"], np.repeat(MOMENTUM.values, 3))
    assert (run.options["nesterov"] == 0).all() and "dampening" in run.options


def test_auto_chunk_follows_free_memory_and_refuses_a_copy_that_does_not_fit(monkeypatch):
    network = _network()
    monkeypatch.setattr(modules, "free_memory", lambda device: 1 << 30)
    big = netstudy.auto_chunk(network, device=torch.device("cpu"), optimizer="adam")
    monkeypatch.setattr(modules, "free_memory", lambda device: 1 << 20)
    small = netstudy.auto_chunk(network, device=torch.device("cpu"), optimizer="adam")
    assert 1 <= small < big <= netstudy.MAX_CHUNK
    wide = netstudy.auto_chunk(network, device=torch.device("cpu"), optimizer="adam",
                               dtype=torch.float64)  # fmt: skip
    assert wide == pytest.approx(small / 2, abs=1)  # float64 copies of a float32 model
    monkeypatch.setattr(modules, "free_memory", lambda device: 1000)
    with pytest.raises(GdscopeError, match="one copy of the model needs"):
        run_network_grid(network, "sgd", (LR,), steps=2)


def test_compare_picks_each_optimizers_lowest_score_on_the_same_batches():
    result = compare_network(_network(), ("sgd", "adam", "adagrad"), lr=LR, momentum=MOMENTUM,
                             steps=6)  # fmt: skip
    assert [run.axes[-1].name for run in result.runs.values()] == ["lr"] * 3
    assert [a.name for a in result.runs["adam"].axes] == ["beta1", "lr"]
    assert [a.name for a in result.runs["adagrad"].axes] == ["lr"]
    table = result.table()
    assert [row["final_loss"] for row in table] == sorted(row["final_loss"] for row in table)
    network = _network()
    for name, run in result.runs.items():
        k = 1  # one cell of each optimizer, against its own training on the same batches
        direct = train_stacked(network.model, network.x, network.y, network.loss_fn, name,
                               run.options_of(k), size=1, steps=6, batch_size=16)  # fmt: skip
        np.testing.assert_allclose(run.losses[k], direct.losses[:, 0].numpy(), rtol=1e-6)


def _loader(network: Network) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(network.x, network.y))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda n: run_network_grid(n, "sgd", (Axis("beta1", (0.9,)),), steps=2), "unknown"),
        (lambda n: run_network_grid(n, "sgd", (Axis("lr", (-1.0,)),), steps=2), "lr must be"),
        (lambda n: compare_network(n, ("lbfgs",), lr=LR, steps=2), "not lbfgs"),
        (lambda n: compare_network(n, ("sgd", "adam", "sgd"), lr=LR, steps=2), "sgd named more"),
        (lambda n: compare_network(n, ("sgd",), lr=LR, metric="val_loss"), "the network's val"),
        (lambda n: Network.of("model", [(n.x, n.y)], n.loss_fn), "nn.Module"),
        (lambda n: Network.of(n.model, [], n.loss_fn), "no batches"),
        (lambda n: Network.of(n.model, [(n.x[:0], n.y[:0])], n.loss_fn), "no samples"),
        (lambda n: Network.of(n.model, (n.x, n.y), n.loss_fn), r"got one \(X, Y\) pair: make"),
        (lambda n: Network.of(n.model, _loader(n), n.loss_fn), "got DataLoader: make them with"),
        (
            lambda n: Network.of(n.model, n.batches(), n.loss_fn, val=_loader(n)),
            "the validation data must be",
        ),
    ],
)
def test_bad_input_is_refused_before_any_training(call, message):
    with pytest.raises(GdscopeError, match=message):
        call(_network())


@pytest.mark.parametrize("slow", ["vmap", "loop"])
def test_auto_times_vmap_against_the_loop_and_trains_every_chunk_the_faster_way(monkeypatch, slow):
    from gdscope.engines import stacked

    # One copy alone timed at 10 s a step (the loop far slower than any vmapped step), or at 0.
    copy_seconds = 10.0 if slow == "loop" else 0.0
    monkeypatch.setattr(stacked, "_one_copy_seconds", lambda *args: copy_seconds)
    real, methods = netstudy.train_stacked, []
    monkeypatch.setattr(netstudy, "train_stacked",
                        lambda *a, **k: methods.append(k["method"]) or real(*a, **k))  # fmt: skip
    run = run_network_grid(_network(), "sgd", (MOMENTUM, LR), steps=5, chunk=2)
    fast = "loop" if slow == "vmap" else "vmap"
    assert run.meta["method"] == fast
    assert methods[:1] == ["auto"]  # the engine's trial, on the first chunk
    assert methods[1:] == [fast] * 3  # then every chunk
    direct = run_network_grid(_network(), "sgd", (MOMENTUM, LR), steps=5, chunk=2, method=fast)
    np.testing.assert_array_equal(run.losses, direct.losses)  # the trial changes nothing


def test_a_shootout_trains_every_optimizer_the_way_auto_chose_for_the_first(monkeypatch):
    real, methods = netstudy.train_stacked, []
    monkeypatch.setattr(netstudy, "train_stacked",
                        lambda *a, **k: methods.append(k["method"]) or real(*a, **k))  # fmt: skip
    result = compare_network(_network(), ("sgd", "adam"), lr=LR, steps=4)
    chosen = result.runs["sgd"].meta["method"]
    assert result.runs["adam"].meta["method"] == chosen
    assert methods.count("auto") == 1 and set(methods[2:]) == {chosen}


def smoothed(out, y, *, smoothing):  # a loss made with functools.partial
    return nn.functional.cross_entropy(out, y, label_smoothing=smoothing)


def test_the_loss_is_identified_by_name_and_settings_never_by_address():
    import functools

    from gdscope.studies.netstudy import _identity

    partial = functools.partial(smoothed, smoothing=0.1)
    assert _identity(partial) == _identity(functools.partial(smoothed, smoothing=0.1))
    assert "0x" not in _identity(partial) and "smoothing" in _identity(partial)
    assert _identity(partial) != _identity(functools.partial(smoothed, smoothing=0.2))

    class Loss:
        def __init__(self, weight: float) -> None:
            self.weight = weight

        def __call__(self, out, y):
            return nn.functional.cross_entropy(out, y) * self.weight

    assert _identity(Loss(2.0)) == _identity(Loss(2.0)) != _identity(Loss(3.0))
    assert "0x" not in _identity(Loss(2.0))
    assert _identity(nn.CrossEntropyLoss(label_smoothing=0.1)) != _identity(nn.CrossEntropyLoss())


def test_the_timing_trials_leave_the_dropout_masks_as_they_were():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 3))
    network = Network.of(model, [(_network().x, _network().y)], nn.CrossEntropyLoss(),
                         batch_size=16)  # fmt: skip
    runs = []
    for method in ("auto", "vmap", "loop"):
        torch.manual_seed(5)
        runs.append(run_network_grid(network, "sgd", (LR,), steps=4, method=method))
    chosen = 1 if runs[0].meta["method"] == "vmap" else 2
    np.testing.assert_array_equal(runs[0].losses, runs[chosen].losses)


@pytest.mark.parametrize("kind", WRAPS)
def test_a_study_of_a_model_whose_output_the_loss_unpacks(kind):
    wrap, unpack = WRAPS[kind]
    x = torch.randn(16, 3)
    batches = [(x, (x[:, 0] > 0).long())]
    ce = nn.CrossEntropyLoss()
    axes = [Axis("lr", (0.1, 0.5))]
    plain = run_network_grid(Network.of(Wrapped(lambda t: t), batches, ce), "sgd", axes, steps=3,
                             method="loop")  # fmt: skip
    for method in ("vmap", "loop"):
        network = Network.of(Wrapped(wrap), batches, lambda out, y: ce(unpack(out), y))
        run = run_network_grid(network, "sgd", axes, steps=3, method=method)
        np.testing.assert_allclose(run.metrics["final_loss"], plain.metrics["final_loss"],
                                   rtol=1e-5)  # fmt: skip


def test_checking_validation_labels_leaves_every_modules_mode_as_it_was():
    network = _network(val=True)
    network.model.train()
    network.model[1].eval()  # mixed, as a user may have them
    network.require_accuracy()
    assert [m.training for m in network.model] == [True, False, True]


def test_a_fixed_pair_beside_a_varied_half_is_merged_explicitly():
    # betas=(0.9, 0.99) once trained every cell with beta1 = 0.9, whatever the axis said
    network = _network()
    beta1 = Axis("beta1", (0.5, 0.8))
    run = run_network_grid(network, "adam", [beta1], fixed={"betas": (0.9, 0.99)}, steps=2)
    np.testing.assert_array_equal(run.options["beta1"], [0.5, 0.8])
    np.testing.assert_array_equal(run.options["beta2"], [0.99, 0.99])
    assert run.fixed == {"beta2": 0.99} and run.options_of(1)["betas"] == (0.8, 0.99)
    alone = run_network_grid(network, "adam", [beta1], fixed={"beta2": 0.99}, steps=2)
    np.testing.assert_array_equal(alone.metrics["final_loss"], run.metrics["final_loss"])
    with pytest.raises(GdscopeError, match="beta1 is both varied and fixed"):
        run_network_grid(network, "adam", [beta1], fixed={"beta1": 0.9}, steps=2)
    with pytest.raises(GdscopeError, match=r"betas must be a pair \(beta1, beta2\)"):
        run_network_grid(network, "adam", [beta1], fixed={"betas": 0.9}, steps=2)


def test_a_fixed_flag_is_checked_with_the_axis_values_applied():
    run = run_network_grid(_network(), "sgd", [Axis("momentum", (0.73, 0.84))],
                           fixed={"nesterov": True}, steps=2)  # fmt: skip
    assert run.completed.all() and run.options["nesterov"].all()
    np.testing.assert_array_equal(run.options["momentum"], [0.73, 0.84])
    with pytest.raises(GdscopeError, match="configuration 0: nesterov requires momentum > 0"):
        run_network_grid(_network(), "sgd", [Axis("momentum", (0.0, 0.84))],
                         fixed={"nesterov": True}, steps=2)  # fmt: skip


def test_compare_network_warns_itself_of_a_winner_on_the_edge_of_its_grid():
    """As the one-neuron ``shootout.compare`` does, so a notebook or the API hears it too."""
    # Steps this small: the larger of two tiny rates goes further downhill, so it wins.
    tiny = Axis("lr", (1e-6, 1e-5), log=True)
    with pytest.warns(UserWarning) as caught:
        result = compare_network(_network(), ("sgd",), lr=tiny, steps=3)
    edges = [str(w.message) for w in caught if "tuning grid" in str(w.message)]
    assert (
        edges
        == result.edges("sgd")
        == [
            "sgd: the best lr, 1e-05, is the highest tried (1e-06 to 1e-05): a better one may lie "
            "beyond the tuning grid"
        ]
    )
