"""Sharpness along training: thresholds that agree with torch.optim's real behaviour, the
recorded sharpness against the full Hessian (Adam's preconditioned one too), streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from gdscope.errors import GdscopeError
from gdscope.modules import ParamLayout
from gdscope.nets.fit import fit
from gdscope.nets.recorder import Recorder, open_path
from gdscope.nets.sharpness import threshold_of
from gdscope.problem.stability import critical_sharpness

SETTINGS = [
    {},
    {"momentum": 0.9},
    {"momentum": 0.5, "dampening": 0.3},
    {"momentum": 0.9, "nesterov": True},
    {"weight_decay": 0.5},
]


def _final_distance(lam: float, lr: float, settings: dict, steps: int = 3000) -> float:
    """|w| after ``steps`` of torch.optim.SGD on 0.5·λ·w² (float64)."""
    w = torch.ones(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=lr, **settings)
    for _ in range(steps):
        optimizer.zero_grad()
        (0.5 * lam * w**2).sum().backward()
        optimizer.step()
    return float(w.detach().abs())


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: str(s) or "plain")
def test_sgd_threshold_is_where_torch_sgd_stops_converging(settings):
    lr = 0.1
    threshold = threshold_of(torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=lr, **settings))
    assert threshold.measure == "hessian"
    assert threshold.value == pytest.approx(critical_sharpness(lr, **settings))
    assert _final_distance(0.97 * threshold.value, lr, settings) < 1e-3
    beyond = _final_distance(1.03 * threshold.value, lr, settings)
    assert not np.isfinite(beyond) or beyond > 1.0


def test_adam_threshold_is_38_over_lr_and_others_have_none():
    param = [nn.Parameter(torch.ones(1))]
    adam = threshold_of(torch.optim.Adam(param, lr=0.01))
    assert adam.measure == "preconditioned" and adam.value == pytest.approx(3800)
    assert "38/η" in adam.rule
    assert threshold_of(torch.optim.Adam(param, lr=0.01, betas=(0.5, 0.99))).value == (
        pytest.approx(600)
    )  # 2(1 + 0.5)/(0.5·0.01)
    none = threshold_of(torch.optim.RMSprop(param, lr=0.01))
    assert none.value is None and "RMSprop" in none.rule


@pytest.mark.parametrize("optimizer", [torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW])
def test_a_learning_rate_of_zero_has_no_threshold_and_is_measured(optimizer):
    # Where a schedule ends (the Trainer's linear one decays to 0 at its last step): the
    # sharpness is still measured, with no threshold (NaN) and the optimizer's rule kept.
    model, x, y = _problem()
    opt = optimizer(model.parameters(), lr=0.1)
    if optimizer is not torch.optim.SGD:  # Adam's preconditioner exists after a first step
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    rule = threshold_of(opt).rule
    for group in opt.param_groups:
        group["lr"] = 0.0
    zero = threshold_of(opt)
    assert zero.value is None and zero.rule == rule
    rec = Recorder(model, optimizer=opt, sharpness_every=1, sharpness_data=[(x, y)],
                   sharpness_loss=nn.MSELoss())  # fmt: skip
    last = rec.last_sharpness()
    assert last is not None and last[0] == 0 and last[2] == 0.0 and np.isnan(last[3])
    assert last[1] > 0


def _problem(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 1)).double()
    x = torch.randn(30, 2, dtype=torch.float64)
    return model, x, torch.sin(3 * x[:, :1])


def _hessian(model, x, y):
    layout = ParamLayout.of(model)

    def loss(p):
        return nn.functional.mse_loss(functional_call(model, layout.unflatten(p), (x,)), y)

    return torch.autograd.functional.hessian(loss, layout.vector(model))


def test_recorded_sharpness_is_the_top_eigenvalue_with_the_lr_then(tmp_path):
    model, x, y = _problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.5)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    recorder = Recorder(model, optimizer=optimizer, sharpness_every=5, sharpness_data=(x, y),
                        sharpness_loss=nn.MSELoss(), sharpness_top=2,
                        path=tmp_path / "run")  # fmt: skip
    exact = [torch.linalg.eigvalsh(_hessian(model, x, y)).flip(0)[:2].numpy()]
    for step in range(1, 21):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        schedule.step()
        recorder.step()
        if step % 5 == 0:
            exact.append(torch.linalg.eigvalsh(_hessian(model, x, y)).flip(0)[:2].numpy())
    trace = recorder.result().sharpness
    assert trace is not None
    np.testing.assert_array_equal(trace.steps, [0, 5, 10, 15, 20])
    np.testing.assert_allclose(trace.values, np.array(exact), rtol=1e-3)
    np.testing.assert_allclose(trace.lr, [0.2, 0.2, 0.1, 0.1, 0.05])
    np.testing.assert_allclose(trace.threshold, 2 * 1.5 / trace.lr)
    again = open_path(tmp_path / "run").sharpness  # streamed: read back from the index
    assert again is not None
    np.testing.assert_array_equal(again.values, trace.values)
    assert again.rule == trace.rule == "2(1+μ)/((1−d)η): heavy ball, μ=0.5"


def test_adam_records_the_preconditioned_sharpness():
    model, x, y = _problem(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    result = fit(model, [(x, y)], nn.MSELoss(), optimizer, epochs=6, sharpness_every=3)
    trace = result.path.sharpness
    assert trace is not None and trace.measure == "preconditioned"
    assert np.isnan(trace.values[0, 0])  # before Adam's first step there is no preconditioner
    # By hand: P = (1 − β1^t)(√(v/(1 − β2^t)) + ε), the top eigenvalue of P^-½ H P^-½.
    state = [optimizer.state[p] for p in model.parameters()]
    t = float(state[0]["step"])
    v = torch.cat([s["exp_avg_sq"].reshape(-1) for s in state])
    p = (1 - 0.9**t) * ((v / (1 - 0.999**t)).sqrt() + 1e-8)
    d = p.rsqrt()
    exact = torch.linalg.eigvalsh(d[:, None] * _hessian(model, x, y) * d[None])[-1].item()
    assert trace.values[-1, 0] == pytest.approx(exact, rel=1e-3)
    np.testing.assert_allclose(trace.threshold, 38 / 0.01)


def test_amsgrad_is_preconditioned_by_the_running_maximum():
    model, x, y = _problem(2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05, amsgrad=True)
    result = fit(model, [(x, y)], nn.MSELoss(), optimizer, epochs=8, sharpness_every=4)
    trace = result.path.sharpness
    assert trace is not None
    state = [optimizer.state[p] for p in model.parameters()]
    t = float(state[0]["step"])
    v_max = torch.cat([s["max_exp_avg_sq"].reshape(-1) for s in state])
    v = torch.cat([s["exp_avg_sq"].reshape(-1) for s in state])
    assert not torch.equal(v, v_max)  # the two preconditioners differ here
    d = ((1 - 0.9**t) * ((v_max / (1 - 0.999**t)).sqrt() + 1e-8)).rsqrt()
    exact = torch.linalg.eigvalsh(d[:, None] * _hessian(model, x, y) * d[None])[-1].item()
    assert trace.values[-1, 0] == pytest.approx(exact, rel=1e-3)


def test_sharpness_in_train_mode_uses_the_batch_statistics():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(2, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 1)).double()
    x = torch.randn(24, 2, dtype=torch.float64)
    y = torch.sin(3 * x[:, :1])
    layout = ParamLayout.of(model)
    buffers = {k: v.clone() for k, v in model.named_buffers()}

    def loss(p):  # train mode: BatchNorm normalizes with this batch's mean and variance
        return nn.functional.mse_loss(functional_call(model, ({**layout.unflatten(p),
                                                               **buffers},), (x,)), y)  # fmt: skip

    model.train()
    exact = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, layout.vector(model)))
    running = model[1].running_mean.clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    traces = [
        Recorder(model, optimizer=optimizer, sharpness_every=1, sharpness_data=(x, y),
                 sharpness_loss=nn.MSELoss(), sharpness_train=train).result().sharpness
        for train in (True, False)
    ]  # fmt: skip
    assert traces[0] is not None and traces[1] is not None
    assert traces[0].train and not traces[1].train
    assert traces[0].values[0, 0] == pytest.approx(float(exact[-1]), rel=1e-3)
    assert traces[1].values[0, 0] != pytest.approx(float(exact[-1]), rel=1e-2)
    assert torch.equal(model[1].running_mean, running) and model.training


def test_sharpness_options_are_checked():
    model, x, y = _problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(GdscopeError, match="sharpness_data and sharpness_loss"):
        Recorder(model, optimizer=optimizer, sharpness_every=2)
    with pytest.raises(GdscopeError, match="needs the optimizer"):
        Recorder(model, sharpness_every=2, sharpness_data=(x, y), sharpness_loss=nn.MSELoss())
    with pytest.raises(GdscopeError, match="positive integer"):
        Recorder(model, optimizer=optimizer, sharpness_every=0, sharpness_data=(x, y),
                 sharpness_loss=nn.MSELoss())  # fmt: skip


def test_measuring_sharpness_does_not_change_the_batches_training_sees():
    from torch.utils.data import DataLoader, TensorDataset

    def run(every):
        torch.manual_seed(4)
        model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1)).double()
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(20, 2, dtype=torch.float64, generator=generator)
        loader = DataLoader(TensorDataset(x, x[:, :1] ** 2), batch_size=5, shuffle=True,
                            generator=torch.Generator().manual_seed(1))  # fmt: skip
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        return fit(model, loader, nn.MSELoss(), optimizer, epochs=2, sharpness_every=every)

    measured, plain = run(3), run(None)
    np.testing.assert_array_equal(measured.losses, plain.losses)
    assert measured.path.sharpness is not None and plain.path.sharpness is None


def test_adam_sharpness_leaves_out_a_parameter_that_never_had_a_gradient():
    class EvalHead(nn.Module):  # b is used only in eval mode: Adam never steps it
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(6)
            self.a, self.b = nn.Linear(2, 1).double(), nn.Linear(2, 1).double()

        def forward(self, x):
            return self.a(x) if self.training else self.a(x) + self.b(x)

    model, (x, y) = EvalHead(), _problem(3)[1:]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    result = fit(model, [(x, y)], nn.MSELoss(), optimizer, epochs=3, sharpness_every=3)
    trace = result.path.sharpness
    assert trace is not None and np.isfinite(trace.values[-1, 0])
    # By hand over a's parameters only (P⁻½ is 0 on b's): eval mode, as the probe measures.
    model.eval()
    layout = ParamLayout.of(model)
    point = layout.vector(model)

    def loss(p):
        return nn.functional.mse_loss(functional_call(model, layout.unflatten(p), (x,)), y)

    hessian = torch.autograd.functional.hessian(loss, point)
    state = [optimizer.state[p] for p in model.a.parameters()]
    t = float(state[0]["step"])
    v = torch.cat([s["exp_avg_sq"].reshape(-1) for s in state])
    d = ((1 - 0.9**t) * ((v / (1 - 0.999**t)).sqrt() + 1e-8)).rsqrt()
    d = torch.cat([d, torch.zeros(3, dtype=torch.float64)])  # a's weight, bias; then b's
    exact = torch.linalg.eigvalsh(d[:, None] * hessian * d[None])[-1].item()
    assert trace.values[-1, 0] == pytest.approx(exact, rel=1e-3)
