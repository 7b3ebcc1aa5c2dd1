"""K copies trained at once equal K separate ordinary trainings with torch.optim."""

from __future__ import annotations

import copy
import functools
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gdscope.engines.runner import evaluate_many
from gdscope.engines.stacked import Copies, stack_copies, train_stacked
from gdscope.errors import GdscopeError
from gdscope.optim.specs import SchedulerSpec
from gdscope.optim.table import OPTIMIZER_TABLE

TORCH = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}
"""The torch classes, named here: the reference never goes through gdscope's table."""


def torch_kwargs(name: str, row: dict) -> dict:
    """One row as the torch class's keyword arguments (written out here, not gdscope's)."""
    kwargs = dict(row)
    if "beta1" in kwargs:
        kwargs["betas"] = (kwargs.pop("beta1"), kwargs.pop("beta2", 0.999))
    if name == "adamw" or not kwargs.get("decoupled_weight_decay", False):
        kwargs.pop("decoupled_weight_decay", None)
    return kwargs


def test_every_optimizer_of_the_table_has_its_torch_class_here():
    assert set(TORCH) == set(OPTIMIZER_TABLE)


STEPS = 20
BATCH = 8


def evaluate_copies(model: nn.Module, copies: Copies, batches, loss_fn):
    """Every copy's loss and accuracy as the network studies measure them: the runner's
    evaluator on a copy of the model in the copies' float type, in eval mode."""
    first = next(iter(copies.params.values()))
    net = copy.deepcopy(model).to(device=first.device, dtype=first.dtype).eval()
    return evaluate_many(net, {**copies.params, **copies.buffers}, batches, loss_fn)


def _mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 3))


def _cnn() -> nn.Module:
    """No bias before BatchNorm: its true gradient is exactly 0, so what autograd returns there
    is rounding noise in any summation order, which Adam/RMSprop/Adagrad divide by its own
    root-mean-square and so turn into lr-sized steps (measured: 1e-10..1e-9 apart in float64
    between two ways of summing). The usual conv-BN block has no such bias."""
    torch.manual_seed(2)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3 * 3 * 3, 4),
    )  # fmt: skip


def _data(shape: tuple[int, ...], classes: int, n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return torch.randn(n, *shape, generator=generator), torch.randint(
        classes, (n,), generator=generator
    )


def _torch_train(
    model, x, y, name, kwargs, *, steps=STEPS, dtype=torch.float64, scheduler=None, flip=False
):
    """The ordinary way: a fresh copy, torch.optim, a seeded shuffling DataLoader. ``flip``
    reverses the rows of each batch: the same mathematics, the gradient summed in another order,
    so it differs from the unflipped run by rounding alone."""
    net = copy.deepcopy(model).to(dtype).train()
    optimizer = TORCH[name](net.parameters(), **kwargs)
    schedule = scheduler.build(optimizer) if scheduler is not None else None
    loader = DataLoader(TensorDataset(x.to(dtype), y), batch_size=BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    done = 0
    while done < steps:
        for xb, yb in loader:
            if flip:
                xb, yb = xb.flip(0), yb.flip(0)
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(xb), yb).backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            done += 1
            if done == steps:
                break
    # Each tensor once, under its first name (a tied one is listed under every name in the
    # state_dict, once by named_parameters and named_buffers, as gdscope's copies list it).
    return {n: t.detach() for n, t in [*net.named_parameters(), *net.named_buffers()]}


def _stacked(model, x, y, name, rows, **options):
    hyper = {key: [row[key] for row in rows] for key in rows[0]}
    options.setdefault("dtype", torch.float64)
    steps = options.pop("steps", STEPS)
    loss = nn.CrossEntropyLoss()
    return train_stacked(model, x, y, loss, name, hyper, size=len(rows), steps=steps,
                         batch_size=BATCH, **options)  # fmt: skip


def _gap(result, k: int, expected: dict[str, torch.Tensor]) -> float:
    mine = result.final.copy(k)
    assert set(mine) == set(expected)
    return max(float((mine[n].double().cpu() - expected[n].double()).abs().max()) for n in expected)


def _torch_rounding(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[n].double() - b[n].double()).abs().max()) for n in a)


def _assert_each_copy_equals_torch(model, x, y, name, rows, *, tol=1e-10, **options):
    """Each copy within ``tol`` of torch, or, where a configuration amplifies rounding (Adam with
    beta2 = 0 divides by the current |gradient| + eps: lr/eps = 32 per step measured, 1e-17
    apart after one step grows to 1e-10 after twenty), within 100× of how far torch moves from
    itself when only the order of summing the gradient changes. A wrong update rule is 1e-4 or
    more away in 20 steps, so neither bound can hide it."""
    result = _stacked(model, x, y, name, rows, **options)
    assert result.completed == options.get("steps", STEPS) >= 10  # a horizon that shows drift
    assert (result.diverged_at == -1).all()
    train = functools.partial(
        _torch_train, model, x, y, name,
        dtype=options.get("dtype", torch.float64), scheduler=options.get("scheduler"),
    )  # fmt: skip
    for k, row in enumerate(rows):
        expected = train(torch_kwargs(name, row))
        gap = _gap(result, k, expected)
        if gap >= tol:
            own = _torch_rounding(expected, train(torch_kwargs(name, row), flip=True))
            assert own < 1e-6, f"torch alone moves {own:.1e}: narrow the strategy, {row}"
            assert gap < 100 * own, (k, row, gap, own)
    return result


def test_mlp_sgd_copies_equal_torch_float64():
    x, y = _data((2,), 3)
    rows = [
        {"lr": 0.05, "momentum": 0.0},
        {"lr": 0.1, "momentum": 0.9, "nesterov": True},
        {"lr": 0.02, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.01},
        {"lr": 0.01, "momentum": 0.9, "maximize": True},
    ]
    rows = [{"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False,
             "maximize": False, **row} for row in rows]  # fmt: skip
    _assert_each_copy_equals_torch(_mlp(), x, y, "sgd", rows)


def test_cnn_with_batchnorm_keeps_running_stats_per_copy():
    x, y = _data((1, 6, 6), 4)
    rows = [{"lr": 1e-3, "amsgrad": False}, {"lr": 3e-2, "amsgrad": True}]
    result = _assert_each_copy_equals_torch(_cnn(), x, y, "adam", rows)
    means = result.final.buffers["1.running_mean"]
    assert not torch.equal(means[0], means[1])  # each copy's own statistics
    assert int(result.final.buffers["1.num_batches_tracked"][0]) == STEPS


def test_float32_sgd_within_1e4():
    x, y = _data((2,), 3)
    rows = [{"lr": 0.1, "momentum": 0.9}, {"lr": 0.3, "momentum": 0.0}]
    _assert_each_copy_equals_torch(_mlp(), x, y, "sgd", rows, dtype=torch.float32, tol=1e-4)


def _rows(draw, name: str, count: int) -> list[dict]:
    entry = OPTIMIZER_TABLE[name]
    rows = []
    for _ in range(count):
        row = {}
        for h in entry.hyperparameters:
            if h.kind == "bool":
                row[h.name] = draw(st.booleans())
            elif h.name == "lr":
                row[h.name] = draw(st.floats(1e-4, 0.05))
            elif h.name == "eps":
                row[h.name] = draw(st.floats(1e-8, 1e-3))
            elif h.name == "alpha":  # alpha = 0 with centered: g² − g² = 0 under the root,
                row[h.name] = draw(st.floats(0.5, 0.99))  # 0 or NaN by rounding alone
            elif h.name == "beta2":  # beta2 near 0 divides by the current |g| + eps: torch
                row[h.name] = draw(st.floats(0.8, 0.999))  # alone then moves 3e-4 by rounding
            elif h.name in {"beta1", "momentum", "dampening"}:
                row[h.name] = draw(st.floats(0.0, 0.99))
            else:
                row[h.name] = draw(st.floats(0.0, 0.5))
        if row.get("nesterov"):
            row["dampening"], row["momentum"] = 0.0, max(row["momentum"], 0.1)
        rows.append(row)
    return rows


@pytest.mark.parametrize("name", list(TORCH))
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_optimizer_and_flags_equal_torch(name, data):
    x, y = _data((2,), 3, n=24)
    _assert_each_copy_equals_torch(_mlp(), x, y, name, _rows(data.draw, name, 2))


def test_adamw_where_beta2_zero_amplifies_rounding_equals_torch_within_its_own_rounding():
    # Found by CI: beta2 = 0 amplifies rounding 1e-17 → 6e-10 in 20 steps (torch alone: 4e-11).
    x, y = _data((2,), 3, n=24)
    rows = [
        {"lr": 0.03125, "beta1": 0.5, "beta2": 0.0, "eps": 0.0009768225367971029,
         "weight_decay": 0.0, "amsgrad": False, "maximize": True},
        {"lr": 0.03125, "beta1": 0.0, "beta2": 0.0, "eps": 0.0009768225367971029,
         "weight_decay": 0.0, "amsgrad": False, "maximize": False},
    ]  # fmt: skip
    _assert_each_copy_equals_torch(_mlp(), x, y, "adamw", rows)


class _Gated(nn.Module):
    """A branch used only on batches whose first inputs sum above zero: its parameters get a
    gradient at some steps only, so torch counts their steps apart and creates their state
    (SGD's momentum buffer, Adam's moments) at their own first gradient."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.trunk, self.branch = nn.Linear(2, 3), nn.Linear(2, 3)

    @staticmethod
    def opens(x: torch.Tensor) -> bool:
        return float(x[:, 0].sum()) > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.trunk(x)
        return out + self.branch(x) if self.opens(x) else out


class _Reassigned(nn.Module):
    """Inputs centred by a running mean that the forward re-assigns (``self.ema = …``), as
    opposed to updating it in place: ``functional_call`` alone would drop the new tensor."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.net = nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 3))
        self.register_buffer("ema", torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.ema = 0.5 * self.ema + 0.5 * x.mean(0)
        return self.net(x - 3 * self.ema)


class _InPlace(nn.Module):
    """BatchNorm's running statistics and two buffers of its own, all updated in place."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(6)
        self.net = nn.Sequential(nn.Linear(2, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3))
        self.register_buffer("seen", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.add_(1)
            self.scale.mul_(0.9)
        return self.net(x) * (1 + self.scale)


class _Shared(nn.Module):
    """One Linear and one BatchNorm used twice each: their parameters and buffers are tied,
    listed once (under their first name), and BatchNorm's statistics move twice a step."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.inp, self.mid, self.out = nn.Linear(2, 5), nn.Linear(5, 5), nn.Linear(5, 3)
        norm = nn.BatchNorm1d(5)
        self.first = nn.Sequential(self.inp, norm, nn.Tanh())
        self.second = nn.Sequential(self.mid, norm, nn.Tanh(), self.mid, nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.second(self.first(x)))


MODELS = {"gated": _Gated, "reassigned": _Reassigned, "in_place": _InPlace, "shared": _Shared}


BATCHNORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def test_the_gate_opens_at_some_steps_only():
    """Else the gated model would test nothing."""
    x, _ = _data((2,), 3)
    loader = DataLoader(TensorDataset(x.double()), batch_size=BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    opened = [_Gated.opens(xb) for _ in range(4) for (xb,) in loader][:STEPS]
    assert 3 <= sum(opened) <= STEPS - 3


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("name", list(TORCH))
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_optimizer_on_gated_models_and_buffers_equals_torch(name, kind, data):
    x, y = _data((2,), 3)
    method = data.draw(st.sampled_from(["vmap", "loop"]), label="method")
    rows = _rows(data.draw, name, 2)
    result = _assert_each_copy_equals_torch(MODELS[kind](), x, y, name, rows, method=method)
    assert result.method == method
    if kind == "reassigned":  # the buffer moved, per copy, as torch moved it
        assert not torch.equal(result.final.buffers["ema"][0], torch.zeros(2, dtype=torch.float64))
    if kind == "in_place":
        assert result.final.buffers["seen"].tolist() == [STEPS, STEPS]
    if kind == "shared":  # each tied tensor once, moved as torch moved it (compared above)
        assert list(result.final.buffers) == [f"first.1.{n}" for n in BATCHNORM_BUFFERS]
        assert result.final.buffers["first.1.num_batches_tracked"].tolist() == [2 * STEPS] * 2


def test_cnn_rmsprop_and_adagrad_equal_torch():
    x, y = _data((1, 6, 6), 4)
    _assert_each_copy_equals_torch(_cnn(), x, y, "rmsprop", [
        {"lr": 1e-3, "centered": True, "momentum": 0.5, "weight_decay": 0.0},
        {"lr": 1e-2, "centered": False, "momentum": 0.0, "weight_decay": 0.1}])  # fmt: skip
    _assert_each_copy_equals_torch(_cnn(), x, y, "adagrad", [{"lr": 0.05, "lr_decay": 0.01}])


def test_lr_scheduler_per_copy_equals_torch_scheduler():
    x, y = _data((2,), 3)
    schedule = SchedulerSpec.of("steplr", step_size=5, gamma=0.5)
    rows = [{"lr": 0.1, "momentum": 0.9}, {"lr": 0.02, "momentum": 0.0}]
    result = _assert_each_copy_equals_torch(_mlp(), x, y, "sgd", rows, scheduler=schedule)
    assert torch.allclose(
        result.hyper["lr"][:, 0], torch.tensor([0.1, 0.02], dtype=torch.float64) * 0.5**4
    )


@pytest.mark.parametrize(
    ("optimizer", "rows", "schedule"),
    [
        ("sgd", [{"lr": 0.1, "momentum": 0.9}, {"lr": 0.02, "momentum": 0.5}],
         SchedulerSpec.of("onecyclelr", max_lr=0.5, total_steps=40)),
        ("adam", [{"lr": 0.01, "beta1": 0.9, "beta2": 0.999},
                  {"lr": 0.001, "beta1": 0.8, "beta2": 0.99}],
         SchedulerSpec.of("onecyclelr", max_lr=0.05, total_steps=40)),
        ("sgd", [{"lr": 0.1, "momentum": 0.9}, {"lr": 0.02, "momentum": 0.5}],
         SchedulerSpec.of("cycliclr", base_lr=0.01, max_lr=0.2, step_size_up=5)),
    ],
)  # fmt: skip
def test_schedulers_that_cycle_momentum_or_set_the_first_lr_equal_torch(optimizer, rows, schedule):
    # OneCycleLR sets lr (max_lr / div_factor) and momentum or beta1 when it is made, and cycles
    # both; reading back only the lr after each step left the copies 0.13 away from torch.
    x, y = _data((2,), 3)
    _assert_each_copy_equals_torch(_mlp(), x, y, optimizer, rows, scheduler=schedule)


def test_a_diverging_copy_is_frozen_and_flagged_the_others_go_on():
    x, y = _data((2,), 3)
    x = x * 100
    rows = [{"lr": 1e-3}, {"lr": 1e308}]  # the first step overflows
    result = _stacked(_mlp(), x, y, "sgd", rows)
    assert int(result.diverged_at[0]) == -1
    at = int(result.diverged_at[1])
    assert 1 <= at <= STEPS
    assert all(torch.isfinite(p[1]).all() for p in result.final.params.values())
    assert torch.isnan(result.losses[at:, 1]).all()
    expected = _torch_train(_mlp(), x, y, "sgd", {"lr": 1e-3})
    assert _gap(result, 0, expected) < 1e-10


def test_seeded_copies_start_apart_same_copies_alike():
    model = _mlp()
    same = stack_copies(model, 3, init="same")
    seeded = stack_copies(model, 3, init="seeded", seed=7)
    first = next(iter(same.params))
    assert torch.equal(same.params[first][0], same.params[first][2])
    assert not torch.equal(seeded.params[first][0], seeded.params[first][1])
    again = stack_copies(model, 3, init="seeded", seed=7)
    assert torch.equal(seeded.params[first], again.params[first])


class _Raw(nn.Module):
    """A scale held as a raw parameter: no ``reset_parameters()`` re-draws it; with
    ``linear``, a Linear layer in front that has one."""

    def __init__(self, linear: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 3) if linear else nn.Identity()
        self.scale = nn.Parameter(torch.ones(3) if linear else torch.ones(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * self.scale


def test_seeded_copies_say_which_parameters_start_alike_and_refuse_when_none_is_redrawn():
    x, y = _data((2,), 3)
    torch.manual_seed(0)
    result = train_stacked(_Raw(linear=True), x, y, nn.functional.cross_entropy, "sgd",
                           {"lr": 0.1}, size=2, steps=1, batch_size=8, init="seeded")  # fmt: skip
    assert result.note is not None and "re-draws scale;" in result.note
    copies = stack_copies(_Raw(linear=True), 2, init="seeded")
    assert torch.equal(copies.params["scale"][0], copies.params["scale"][1])
    assert not torch.equal(copies.params["linear.weight"][0], copies.params["linear.weight"][1])
    same = train_stacked(_Raw(linear=True), x, y, nn.functional.cross_entropy, "sgd",
                         {"lr": 0.1}, size=2, steps=1, batch_size=8)  # fmt: skip
    assert same.note is None  # starting alike was asked for
    with pytest.raises(GdscopeError, match="every copy would start alike"):
        stack_copies(_Raw(linear=False), 2, init="seeded")
    assert stack_copies(_mlp(), 2, init="seeded").size == 2


class _Scalar(nn.Module):
    """A forward vmap cannot run (a data-dependent Python branch on ``.item()``)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = _mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        return out if out.sum().item() < math.inf else out * 0


def test_a_model_vmap_cannot_run_falls_back_to_a_loop_with_a_note():
    x, y = _data((2,), 3)
    rows = [{"lr": 0.05}, {"lr": 0.1}]
    result = _stacked(_Scalar(), x, y, "sgd", rows, steps=5)
    assert result.method == "loop" and result.note and "vmap" in result.note
    looped = _stacked(_mlp(), x, y, "sgd", rows, steps=5, method="loop")
    for k in range(2):
        mine = result.final.copy(k)
        assert all(torch.allclose(mine[f"inner.{n}"], t) for n, t in looped.final.copy(k).items())


@pytest.mark.parametrize(
    ("model", "data", "hyper", "message"),
    [
        ("not a model", None, {"lr": 0.1}, "nn.Module"),
        (None, (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)), {"lr": 0.1}, "no samples"),
        (None, None, {"lr": -1.0}, "lr must be >= 0"),
        (None, None, {"gamma": 0.9}, "unknown argument"),
    ],
)
def test_bad_input_is_one_clear_error(model, data, hyper, message):
    x, y = data if data is not None else _data((2,), 3)
    with pytest.raises(GdscopeError, match=message):
        train_stacked(_mlp() if model is None else model, x, y, nn.CrossEntropyLoss(), "sgd",
                      hyper, size=2, steps=3, batch_size=4)  # fmt: skip


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_copies_equal_cpu_copies():
    x, y = _data((1, 6, 6), 4)
    rows = [{"lr": 1e-2, "amsgrad": False}, {"lr": 3e-2, "amsgrad": True}]
    here = _stacked(_cnn(), x, y, "adam", rows)
    there = _stacked(_cnn(), x, y, "adam", rows, device="cuda")
    for k in range(2):
        assert _gap(there, k, {n: t.cpu() for n, t in here.final.copy(k).items()}) < 1e-9


def test_frozen_parameters_are_left_out_and_the_rest_equal_torch():
    model = _mlp()
    model[0].weight.requires_grad_(False)
    x, y = _data((2,), 3)
    result = _stacked(model, x, y, "adam", [{"lr": 0.01}, {"lr": 0.05}])
    assert "0.weight" not in result.final.params
    loss, _ = evaluate_copies(model, result.final, [(x.double(), y)], nn.CrossEntropyLoss())
    for k, lr in enumerate((0.01, 0.05)):
        expected = _torch_train(model, x, y, "adam", {"lr": lr})
        assert torch.equal(expected.pop("0.weight"), model[0].weight.double())
        mine = result.final.copy(k)
        assert max(float((mine[n] - t).abs().max()) for n, t in expected.items()) < 1e-10
        net = copy.deepcopy(model).double().eval()
        net.load_state_dict({**expected, "0.weight": model[0].weight.double()})
        direct = nn.functional.cross_entropy(net(x.double()), y)
        assert float(loss[k]) == pytest.approx(float(direct.detach()), rel=1e-10)


def test_accuracy_only_for_scores_of_several_classes():
    from gdscope.modules import is_classification

    labels = torch.tensor([0, 1, 1])
    assert is_classification(torch.zeros(3, 2), labels)
    assert not is_classification(torch.zeros(3, 1), labels)  # one output: a regression
    assert not is_classification(torch.zeros(3, 2), labels.double())
    # Outputs the user's loss unpacks (tuple, dict, ModelOutput): which part scores is unknown
    for wrapped in ((torch.zeros(3, 2),), {"logits": torch.zeros(3, 2)}):
        assert not is_classification(wrapped, labels)
    model = nn.Linear(2, 1)
    x = torch.randn(6, 2)
    copies = stack_copies(model, 2)
    loss, accuracy = evaluate_copies(model, copies, [(x, torch.zeros(6, dtype=torch.long))],
                                     lambda out, y: ((out[:, 0] - y) ** 2).mean())  # fmt: skip
    assert accuracy is None and loss.shape == (2,)
    _, accuracy = evaluate_copies(_mlp(), stack_copies(_mlp(), 2), [_data((2,), 3)],
                                  nn.CrossEntropyLoss())  # fmt: skip
    assert accuracy is not None and ((accuracy >= 0) & (accuracy <= 1)).all()


def test_a_loss_that_is_not_one_number_is_one_clear_error():
    x, y = _data((2,), 3)
    unreduced = nn.CrossEntropyLoss(reduction="none")
    with pytest.raises(GdscopeError, match=r"one number for the batch, got \(8,\)"):
        train_stacked(_mlp(), x, y, unreduced, "sgd", {"lr": 0.1}, size=2, steps=2, batch_size=8)


class _EvalHead(nn.Module):
    """A head used only in eval mode: in training its parameters get no gradient."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.a, self.b = nn.Linear(2, 3), nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) if self.training else self.a(x) + self.b(x)


@pytest.mark.parametrize(
    ("name", "row"),
    [("sgd", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.5}),
     ("adamw", {"lr": 0.05, "weight_decay": 0.3}),
     ("adagrad", {"lr": 0.1, "weight_decay": 0.2})],
)  # fmt: skip
def test_a_parameter_without_gradient_is_left_alone_as_torch_does(name, row):
    x, y = _data((2,), 3)
    result = _assert_each_copy_equals_torch(_EvalHead(), x, y, name, [row, row])
    start = _EvalHead().double().state_dict()
    assert torch.equal(result.final.copy(0)["b.weight"], start["b.weight"])  # no decay either


def test_measuring_activations_leaves_every_modules_mode_as_it_was():
    from gdscope.modules import activation_bytes

    model = _cnn().eval()
    model[1].train()  # mixed, as a user may leave them
    sizes = activation_bytes(model, torch.randn(4, 1, 6, 6))
    assert sizes and [m.training for m in model] == [False, True, False, False, False, False]


@pytest.mark.parametrize("loop_faster", [False, True])
def test_auto_times_both_ways_and_trains_on_with_the_faster(monkeypatch, loop_faster):
    from gdscope.engines import stacked

    monkeypatch.setattr(stacked, "_one_copy_seconds", lambda *args: 0.0 if loop_faster else 10.0)
    x, y = _data((2,), 3)
    rows = [{"lr": 0.05, "momentum": 0.9}, {"lr": 0.1, "momentum": 0.0}]
    result = _assert_each_copy_equals_torch(_mlp(), x, y, "sgd", rows, method="auto")
    assert result.method == ("loop" if loop_faster else "vmap")
    assert result.trial is not None and result.trial.vmap_s > 0
    assert result.trial.loop_s == (0.0 if loop_faster else 20.0)  # K × one copy's seconds
    short = _stacked(_mlp(), x, y, "sgd", rows, steps=stacked.AUTO_STEPS - 1, method="auto")
    assert short.method == "vmap" and short.trial is None  # too short to time


def test_timing_one_copy_leaves_the_random_state_and_the_copies_as_they_were():
    from gdscope.engines import stacked

    class Dropping(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Sequential(nn.Linear(2, 6), nn.Dropout(0.5), nn.Linear(6, 3))
            self.register_buffer("ema", torch.zeros(2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.ema = 0.5 * self.ema + 0.5 * x.mean(0)
            return self.inner(x - self.ema)

    model = Dropping().train()
    copies = stack_copies(model, 2)
    before = {n: t.clone() for n, t in {**copies.params, **copies.buffers}.items()}
    x, y = _data((2,), 3)
    state = torch.random.get_rng_state()
    seconds = stacked._one_copy_seconds(stacked._forward(model, nn.CrossEntropyLoss()),
                                        copies.params, copies.buffers, x, y)  # fmt: skip
    assert seconds >= 0
    assert torch.equal(torch.random.get_rng_state(), state)
    after = {**copies.params, **copies.buffers}
    assert all(torch.equal(before[n], after[n]) for n in before)
