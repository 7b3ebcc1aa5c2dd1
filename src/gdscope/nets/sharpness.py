"""Sharpness along training: the top Hessian eigenvalue every few steps, with the learning rate
then in force and the stability threshold of the optimizer in use.

The threshold is the one-neuron border of ``problem.stability`` read as a bound on the sharpness
(``critical_sharpness``): ``2/η`` for gradient descent, ``2(1 + μ)/((1 − d)·η)`` for heavy-ball
momentum with dampening, ``2(1 + μ)/((1 + 2μ)·η)`` for Nesterov (minus SGD's weight decay, which
adds to every eigenvalue). For Adam the quantity compared is the *preconditioned* sharpness, the
top eigenvalue of ``P⁻¹·H`` with ``P = (1 − β₁ᵗ)·(√v̂ + ε)`` (Cohen et al. 2022), against the
heavy ball's border with ``μ = d = β₁``: ``38/η`` for ``β₁ = 0.9``. Other optimizers get no
threshold (none is known), and the figure says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from gdscope.errors import GdscopeError
from gdscope.modules import ParamLayout
from gdscope.nets.curvature import LANCZOS_STEPS, TOL, HessianOperator, LossFn, top_eigenpairs
from gdscope.nets.plane import materialize
from gdscope.problem.stability import critical_sharpness

__all__ = ["SharpnessProbe", "SharpnessTrace", "Threshold", "threshold_of"]

Measure = Literal["hessian", "preconditioned"]


@dataclass(frozen=True)
class Threshold:
    """What is compared with what: the ``measure`` (the Hessian's top eigenvalue, or Adam's
    preconditioned one), the threshold ``value`` (None: none known), and ``rule``, in words."""

    measure: Measure
    value: float | None
    rule: str


def _number(value: Any) -> float:
    return float(value.item() if isinstance(value, Tensor) else value)


def threshold_of(optimizer: torch.optim.Optimizer) -> Threshold:
    """The stability threshold for ``optimizer``'s current settings (its first parameter
    group's; groups with different settings get none). At a learning rate of 0 (where a
    schedule such as the Trainer's linear one ends) nothing is unstable: no value, same rule."""
    groups = optimizer.param_groups
    name = type(optimizer).__name__
    keys = ("lr", "momentum", "dampening", "nesterov", "weight_decay", "betas", "amsgrad")
    settings = [{k: g.get(k) for k in keys} for g in groups]
    if any(s != settings[0] for s in settings[1:]):
        return Threshold("hessian", None, f"{name}'s parameter groups differ: no single threshold")
    group = groups[0]
    lr = _number(group["lr"])
    if isinstance(optimizer, torch.optim.SGD):
        mu, damp = _number(group["momentum"]), _number(group["dampening"])
        nesterov, decay = bool(group["nesterov"]), _number(group["weight_decay"])
        value = (critical_sharpness(lr, mu, nesterov=nesterov, dampening=damp, weight_decay=decay)
                 if lr > 0 else None)  # fmt: skip
        if mu == 0:
            rule = "2/η: gradient descent"
        elif nesterov:
            rule = f"2(1+μ)/((1+2μ)η): Nesterov, μ={mu:g}"
        else:
            rule = f"2(1+μ)/((1−d)η): heavy ball, μ={mu:g}" + (f", d={damp:g}" if damp else "")
        if decay:
            rule += f", minus weight decay {decay:g}"
        return Threshold("hessian", value, rule)
    if isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
        beta1 = _number(group["betas"][0])
        unit = critical_sharpness(1.0, beta1, dampening=beta1)
        value = unit / lr if lr > 0 else None
        rule = (f"2(1+β₁)/((1−β₁)η) = {unit:.4g}/η: {name}'s preconditioned sharpness, "
                f"β₁={beta1:g}")  # fmt: skip
        if _number(group["weight_decay"]):  # Cohen et al. (2022) derive it without decay
            rule += f" (weight decay {_number(group['weight_decay']):g} not counted)"
        return Threshold("preconditioned", value, rule)
    return Threshold("hessian", None, f"no stability threshold is known for {name}")


def adam_scale(optimizer: torch.optim.Optimizer, params: list[nn.Parameter]) -> Tensor | None:
    """``P^{-1/2}`` flattened in ``params``' order, or None before Adam's first step. With
    AMSGrad, torch divides by the running maximum of the second moment: so does ``P``. A
    parameter Adam has never stepped (it never had a gradient) does not move: its scale is 0,
    which leaves it out of ``P^{-1/2} H P^{-1/2}``."""
    group = optimizer.param_groups[0]
    second = "max_exp_avg_sq" if group.get("amsgrad") else "exp_avg_sq"
    beta1, beta2 = (_number(b) for b in group["betas"])
    eps = _number(group["eps"])
    if not any(second in optimizer.state.get(param, {}) for param in params):
        return None
    parts = []
    for param in params:
        state = optimizer.state.get(param, {})
        if second not in state:
            parts.append(torch.zeros(param.numel(), dtype=param.dtype, device=param.device))
            continue
        step = _number(state["step"])
        v_hat = state[second] / (1 - beta2**step)
        p = (1 - beta1**step) * (v_hat.sqrt() + eps)
        parts.append(p.reshape(-1).rsqrt())
    return torch.cat(parts).detach()


@dataclass(frozen=True, eq=False)
class SharpnessTrace:
    """The sharpness measured along a run: at optimizer ``steps``, the top ``values`` ``(T, k)``
    (descending; NaN where it could not be measured, e.g. Adam before its first step), the
    learning rate then in force, and the ``threshold`` then (NaN: none known)."""

    steps: np.ndarray
    values: np.ndarray
    lr: np.ndarray
    threshold: np.ndarray
    measure: Measure = "hessian"
    rule: str = ""
    optimizer: str | None = None
    train: bool = False
    """Measured in train mode (BatchNorm on the batch's statistics), else in eval mode."""

    def to_dict(self) -> dict[str, Any]:
        """As plain lists (NaN stays NaN: ``json.dumps`` callers turn it into null)."""
        return {"steps": self.steps.tolist(), "values": self.values.tolist(),
                "lr": self.lr.tolist(), "threshold": self.threshold.tolist(),
                "measure": self.measure, "rule": self.rule,
                "optimizer": self.optimizer, "train": self.train}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SharpnessTrace:
        def array(key: str) -> np.ndarray:
            values = data[key]
            return np.array([math.nan if v is None else v for v in values], dtype=np.float64)

        values = [[math.nan if v is None else v for v in row] for row in data["values"]]
        return cls(np.array(data["steps"], dtype=np.int64), np.array(values, dtype=np.float64),
                   array("lr"), array("threshold"), data.get("measure", "hessian"),
                   data.get("rule", ""), data.get("optimizer"),
                   bool(data.get("train", False)))  # fmt: skip


@dataclass(eq=False)
class SharpnessProbe:
    """Measures the top ``top`` eigenvalues of ``loss_fn`` over ``data`` (anything
    ``materialize`` takes: a fixed sample is usual) at the model's weights, to relative
    tolerance ``tol``, in eval mode or with ``train`` in train mode (``HessianOperator``);
    each measurement starts Lanczos from the last top eigenvector."""

    data: Any
    loss_fn: LossFn
    top: int = 1
    tol: float = TOL
    steps: int = LANCZOS_STEPS
    train: bool = False
    _batches: list[tuple[Tensor, Tensor]] | None = field(default=None, repr=False)
    _start: Tensor | None = field(default=None, repr=False)
    _rows: list[tuple[int, list[float], float, float]] = field(default_factory=list, repr=False)
    _threshold: Threshold | None = field(default=None, repr=False)
    _name: str | None = field(default=None, repr=False)

    def measure(self, model: nn.Module, optimizer: torch.optim.Optimizer | None, step: int) -> None:
        """Measure now (optimizer step ``step``) and keep the row."""
        if optimizer is None:
            raise GdscopeError("measuring sharpness needs the optimizer (for its learning rate)")
        layout = ParamLayout.of(model)
        if self._batches is None:
            device = next(iter(model.parameters())).device
            self._batches = materialize(self.data, device)
        threshold = threshold_of(optimizer)
        self._threshold, self._name = threshold, type(optimizer).__name__
        scale = None
        if threshold.measure == "preconditioned":
            named = dict(model.named_parameters())
            scale = adam_scale(optimizer, [named[n] for n in layout.names])
        lr = _number(optimizer.param_groups[0]["lr"])
        limit = math.nan if threshold.value is None else threshold.value
        if threshold.measure == "preconditioned" and scale is None:
            self._rows.append((step, [math.nan] * self.top, lr, limit))
            return
        operator = HessianOperator(model, self._batches, self.loss_fn, layout=layout, scale=scale,
                                   train=self.train)  # fmt: skip
        values, vectors, *_ = top_eigenpairs(operator, self.top, tol=self.tol, steps=self.steps,
                                             start=self._start)  # fmt: skip
        if len(vectors):
            self._start = vectors[0].detach()
        self._rows.append((step, [float(v) for v in values], lr, limit))

    def last(self) -> tuple[int, float, float, float] | None:
        """The last measurement: its step, the top value, the learning rate and the threshold
        then (NaN: none known, or not measurable); None before the first."""
        if not self._rows:
            return None
        step, values, lr, limit = self._rows[-1]
        return step, values[0] if values else math.nan, lr, limit

    def trace(self) -> SharpnessTrace:
        """What was measured so far."""
        rows = self._rows
        threshold = self._threshold or Threshold("hessian", None, "")
        width = self.top
        values = np.full((len(rows), width), np.nan)
        for i, (_, row, _, _) in enumerate(rows):
            values[i, : len(row)] = row
        return SharpnessTrace(np.array([r[0] for r in rows], dtype=np.int64), values,
                              np.array([r[2] for r in rows]), np.array([r[3] for r in rows]),
                              threshold.measure, threshold.rule, self._name,
                              self.train)  # fmt: skip
