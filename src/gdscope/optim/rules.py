"""Batched optimizers as pure functions over explicit state, one row per configuration.

Each optimizer is a pair ``init(params, hyper) -> state`` and
``update(grad, state, params, hyper, step) -> (params, state)`` in the style of optax: no
mutation, hyperparameters are ``(K, 1)`` tensors (one per configuration, float64 for the
coefficients, bool for flags), and the state is a dict of tensors. The arithmetic follows the
single-tensor code paths of ``torch.optim`` step by step. Scalar coefficients (``1 - beta``,
bias corrections, ``lr / (1 + (t-1)·lr_decay)``) are formed in float64 and then cast to the
working dtype, which is what torch does with its Python-float hyperparameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gdscope.errors import GdscopeError

__all__ = [
    "GENERAL",
    "NESTEROV_RULE",
    "TORCH_PAIRS",
    "TRANSFORMS",
    "Hyper",
    "Known",
    "State",
    "Transform",
    "make_hyper",
    "nesterov_refused",
    "torch_kwargs",
    "torch_name",
]

Hyper = dict[str, Tensor]
State = dict[str, Tensor]


@dataclass(frozen=True)
class Param:
    default: float | bool
    low: float | None = None
    """Smallest allowed value (inclusive), ``None`` for flags."""
    below: float | None = None
    """Exclusive upper bound, if any."""


@dataclass(frozen=True)
class Known:
    """What holds in every row of a ``Hyper``, found once before a run: the keys whose flag is
    set (or coefficient non-zero) in every row, and those clear (zero) in every row.

    ``torch.where`` computes both of its branches over all ``(K, N)`` elements; an update that
    knows a branch is taken by every row computes only that one (``_pick``). ``GENERAL`` knows
    nothing and computes everything, which a compiled step needs (one graph for any values).
    """

    on: frozenset[str] = frozenset()
    off: frozenset[str] = frozenset()

    @classmethod
    def of(cls, hyper: Hyper, *, varying: frozenset[str] = frozenset()) -> Known:
        """The facts of ``hyper``, leaving out the ``varying`` keys (a scheduler changes them)."""
        on, off = set(), set()
        for key, value in hyper.items():
            if key in varying:
                continue
            set_ = value if value.dtype == torch.bool else value != 0
            if bool(set_.all()):
                on.add(key)
            elif not bool(set_.any()):
                off.add(key)
        return cls(frozenset(on), frozenset(off))


GENERAL = Known()

Update = Callable[[Tensor, State, Tensor, Hyper, Tensor, Known], tuple[Tensor, State]]


@dataclass(frozen=True)
class Transform:
    name: str
    params: dict[str, Param]
    init: Callable[[Tensor, Hyper], State]
    update_rule: Update
    check: Callable[[Hyper], None] | None = None

    def update(
        self,
        grad: Tensor,
        state: State,
        params: Tensor,
        hyper: Hyper,
        step: Tensor,
        known: Known = GENERAL,
    ) -> tuple[Tensor, State]:
        """One step of every row. ``step`` is the 1-based step count: 0-dim (every element at
        the same step), or per element (a parameter torch skipped has taken fewer steps)."""
        return self.update_rule(grad, state, params, hyper, step, known)


def _c(value: Tensor, like: Tensor) -> Tensor:
    """A float64 coefficient cast to the working dtype (as torch casts Python floats)."""
    return value.to(like.dtype)


def _pick(
    known: Known, key: str, hyper: Hyper, on: Callable[[], Tensor], off: Callable[[], Tensor]
) -> Tensor:
    """``on()`` where ``hyper[key]`` is set (a flag) or non-zero (a coefficient), else ``off()``;
    only the branch some row takes is computed."""
    if key in known.on:
        return on()
    if key in known.off:
        return off()
    value = hyper[key]
    return torch.where(value if value.dtype == torch.bool else value != 0, on(), off())


def _first(step: Tensor, on: Callable[[], Tensor], off: Callable[[], Tensor]) -> Tensor:
    """``on()`` at an element's first step, else ``off()`` (torch creates a momentum buffer
    from a parameter's first gradient)."""
    if step.dim() == 0 and step.device.type == "cpu" and not torch.compiler.is_compiling():
        return on() if int(step) == 1 else off()  # (a compiled step keeps one graph: where)
    return torch.where(step == 1, on(), off())


def _sign(grad: Tensor, hyper: Hyper, known: Known) -> Tensor:
    return _pick(known, "maximize", hyper, lambda: -grad, lambda: grad)


def _l2(grad: Tensor, params: Tensor, hyper: Hyper, known: Known) -> Tensor:
    # torch: grad.add(param, alpha=weight_decay), skipped when weight_decay == 0.
    wd = hyper["weight_decay"]
    return _pick(known, "weight_decay", hyper, lambda: grad + _c(wd, params) * params, lambda: grad)


# --- SGD -----------------------------------------------------------------------------------


def _zeros(*names: str) -> Callable[[Tensor, Hyper], State]:
    """An ``init`` whose state is the named buffers, all zero."""

    def init(params: Tensor, hyper: Hyper) -> State:
        return {name: torch.zeros_like(params) for name in names}

    return init


def _sgd_update(
    grad: Tensor, state: State, params: Tensor, hyper: Hyper, step: Tensor, known: Known
) -> tuple[Tensor, State]:
    g = _l2(_sign(grad, hyper, known), params, hyper, known)
    lr = _c(hyper["lr"], g)
    if "momentum" in known.off:  # plain SGD: torch keeps no buffer
        return torch.addcmul(params, g, lr, value=-1), state
    mu = _c(hyper["momentum"], g)
    # The buffer starts as a copy of the first gradient, then buf = μ·buf + (1 − dampening)·g
    # (addcmul rounds μ·buf before adding, as torch's mul_ then add_ do).
    buf = _first(
        step,
        lambda: g,
        lambda: _pick(
            known,
            "dampening",
            hyper,
            lambda: torch.addcmul(_c(1 - hyper["dampening"], g) * g, state["momentum_buffer"], mu),
            lambda: torch.addcmul(g, state["momentum_buffer"], mu),
        ),
    )
    direction = _pick(known, "nesterov", hyper, lambda: torch.addcmul(g, buf, mu), lambda: buf)
    direction = _pick(known, "momentum", hyper, lambda: direction, lambda: g)
    return torch.addcmul(params, direction, lr, value=-1), {"momentum_buffer": buf}


NESTEROV_RULE = "nesterov requires momentum > 0 and dampening = 0"
"""torch.optim.SGD's "Nesterov momentum requires a momentum and zero dampening", in words."""


def nesterov_refused(nesterov: Any, momentum: Any, dampening: Any) -> Any:
    """Where ``NESTEROV_RULE`` is broken: a bool for one setting, a bool tensor for rows."""
    return nesterov & ((momentum <= 0) | (dampening != 0))


def _sgd_check(hyper: Hyper) -> None:
    bad = nesterov_refused(hyper["nesterov"], hyper["momentum"], hyper["dampening"])
    _refuse(bad, NESTEROV_RULE)


# --- Adam / AdamW --------------------------------------------------------------------------


def _adam_update(
    grad: Tensor, state: State, params: Tensor, hyper: Hyper, step: Tensor, known: Known
) -> tuple[Tensor, State]:
    g = _sign(grad, hyper, known)
    lr, wd = hyper["lr"], hyper["weight_decay"]
    if "weight_decay" not in known.off:
        # AdamW (decoupled) shrinks the parameters; Adam adds wd·param to the gradient.
        decay = _pick(known, "decoupled_weight_decay", hyper,
                      lambda: params * _c(1 - lr * wd, params), lambda: params)  # fmt: skip
        g = _pick(known, "decoupled_weight_decay", hyper,
                  lambda: g, lambda: _l2(g, params, hyper, known))  # fmt: skip
        params = decay
    beta1, beta2 = hyper["beta1"], hyper["beta2"]
    exp_avg = torch.lerp(state["exp_avg"], g, _c(1 - beta1, g))
    exp_avg_sq = state["exp_avg_sq"] * _c(beta2, g) + _c(1 - beta2, g) * (g * g)
    t = step.to(torch.float64)
    step_size = lr / (1 - beta1**t)
    correction2_sqrt = (1 - beta2**t) ** 0.5
    max_sq = _pick(known, "amsgrad", hyper,
                   lambda: torch.maximum(state["max_exp_avg_sq"], exp_avg_sq),
                   lambda: state["max_exp_avg_sq"])  # fmt: skip
    second = _pick(known, "amsgrad", hyper, lambda: max_sq, lambda: exp_avg_sq)
    denom = second.sqrt() / _c(correction2_sqrt, g) + _c(hyper["eps"], g)
    new = params - _c(step_size, g) * (exp_avg / denom)
    return new, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq, "max_exp_avg_sq": max_sq}


# --- RMSprop -------------------------------------------------------------------------------


def _rmsprop_update(
    grad: Tensor, state: State, params: Tensor, hyper: Hyper, step: Tensor, known: Known
) -> tuple[Tensor, State]:
    g = _l2(_sign(grad, hyper, known), params, hyper, known)
    alpha = hyper["alpha"]
    # torch: square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha), rounded as there.
    square_avg = torch.addcmul(state["square_avg"] * _c(alpha, g), _c(1 - alpha, g) * g, g)
    grad_avg = _pick(known, "centered", hyper,
                     lambda: torch.lerp(state["grad_avg"], g, _c(1 - alpha, g)),
                     lambda: state["grad_avg"])  # fmt: skip

    def variance() -> Tensor:
        # torch: square_avg.addcmul(grad_avg, grad_avg, value=-1). Under a constant gradient
        # (a saturated Huber or L1 loss) the difference is rounding alone, and its sign (hence
        # a NaN root) then depends on the order the gradient was summed in; 0 is its value.
        return torch.addcmul(square_avg, grad_avg, grad_avg, value=-1).clamp(min=0).sqrt()

    avg = _pick(known, "centered", hyper, variance, square_avg.sqrt)
    avg = avg + _c(hyper["eps"], g)
    mu, lr = hyper["momentum"], _c(hyper["lr"], g)
    buf = _pick(known, "momentum", hyper,
                lambda: state["momentum_buffer"] * _c(mu, g) + g / avg,
                lambda: state["momentum_buffer"])  # fmt: skip
    new = _pick(
        known, "momentum", hyper, lambda: params - lr * buf, lambda: params - lr * (g / avg)
    )
    return new, {"square_avg": square_avg, "grad_avg": grad_avg, "momentum_buffer": buf}


# --- Adagrad -------------------------------------------------------------------------------


def _adagrad_init(params: Tensor, hyper: Hyper) -> State:
    start = _c(hyper["initial_accumulator_value"], params)
    return {"sum": torch.zeros_like(params) + start}


def _adagrad_update(
    grad: Tensor, state: State, params: Tensor, hyper: Hyper, step: Tensor, known: Known
) -> tuple[Tensor, State]:
    g = _l2(_sign(grad, hyper, known), params, hyper, known)
    clr = hyper["lr"] / (1 + (step.to(torch.float64) - 1) * hyper["lr_decay"])
    total = state["sum"] + g * g
    std = total.sqrt() + _c(hyper["eps"], g)
    return params - _c(clr, g) * (g / std), {"sum": total}


_ADAM_INIT = _zeros("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
_ADAM_PARAMS = {
    "lr": Param(1e-3, low=0.0),
    "beta1": Param(0.9, low=0.0, below=1.0),
    "beta2": Param(0.999, low=0.0, below=1.0),
    "eps": Param(1e-8, low=0.0),
    "weight_decay": Param(0.0, low=0.0),
    "amsgrad": Param(False),
    "maximize": Param(False),
    "decoupled_weight_decay": Param(False),
}

TRANSFORMS: dict[str, Transform] = {
    "sgd": Transform(
        "sgd",
        {
            "lr": Param(1e-3, low=0.0),
            "momentum": Param(0.0, low=0.0),
            "dampening": Param(0.0, low=0.0),
            "weight_decay": Param(0.0, low=0.0),
            "nesterov": Param(False),
            "maximize": Param(False),
        },
        _zeros("momentum_buffer"),
        _sgd_update,
        _sgd_check,
    ),
    "adam": Transform("adam", _ADAM_PARAMS, _ADAM_INIT, _adam_update),
    "adamw": Transform(
        "adamw",
        {
            **_ADAM_PARAMS,
            "weight_decay": Param(1e-2, low=0.0),
            "decoupled_weight_decay": Param(True),
        },
        _ADAM_INIT,
        _adam_update,
    ),
    "rmsprop": Transform(
        "rmsprop",
        {
            "lr": Param(1e-2, low=0.0),
            "alpha": Param(0.99, low=0.0),
            "eps": Param(1e-8, low=0.0),
            "weight_decay": Param(0.0, low=0.0),
            "momentum": Param(0.0, low=0.0),
            "centered": Param(False),
            "maximize": Param(False),
        },
        _zeros("square_avg", "grad_avg", "momentum_buffer"),
        _rmsprop_update,
    ),
    "adagrad": Transform(
        "adagrad",
        {
            "lr": Param(1e-2, low=0.0),
            "lr_decay": Param(0.0, low=0.0),
            "weight_decay": Param(0.0, low=0.0),
            "initial_accumulator_value": Param(0.0, low=0.0),
            "eps": Param(1e-10, low=0.0),
            "maximize": Param(False),
        },
        _adagrad_init,
        _adagrad_update,
    ),
}


TORCH_PAIRS = {"betas": ("beta1", "beta2")}
"""torch arguments that are pairs, which the rules take as two scalars."""


def torch_name(key: str) -> str:
    """The ``torch.optim`` argument a batched hyperparameter sets (``beta1`` → ``betas``)."""
    return next((pair for pair, parts in TORCH_PAIRS.items() if key in parts), key)


def torch_kwargs(name: str, row: dict[str, Any]) -> dict[str, Any]:
    """One configuration's batched hyperparameters as ``torch.optim`` keyword arguments."""
    out: dict[str, Any] = {
        k: (bool(v) if isinstance(v, (bool, np.bool_)) else float(v)) for k, v in row.items()
    }
    for pair, (first, second) in TORCH_PAIRS.items():
        if first in out:
            out[pair] = (out.pop(first), out.pop(second))
    if name == "adamw" or (name == "adam" and not out.get("decoupled_weight_decay")):
        out.pop("decoupled_weight_decay", None)
    return out


def _refuse(bad: Tensor, message: str) -> None:
    if bool(bad.any()):
        index = int(torch.nonzero(bad.reshape(-1))[0])
        raise GdscopeError(f"configuration {index}: {message}")


def make_hyper(
    name: str, values: dict[str, Any], size: int, *, device: torch.device | str | None = None
) -> Hyper:
    """``(size, 1)`` hyperparameter tensors for ``name``: given values (scalars or length-K
    sequences/tensors) broadcast, the rest torch's defaults; validated like torch."""
    if name not in TRANSFORMS:
        raise GdscopeError(
            f"the batched engine has no optimizer {name!r}; choose one of {', '.join(TRANSFORMS)}"
        )
    transform = TRANSFORMS[name]
    values = dict(values)
    if "betas" in values:  # torch's spelling
        betas = values.pop("betas")
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise GdscopeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        values["beta1"], values["beta2"] = betas[0], betas[1]
    unknown = set(values) - set(transform.params)
    if unknown:
        raise GdscopeError(
            f"{name} (batched) got unknown argument(s) {', '.join(sorted(unknown))}; "
            f"it accepts {', '.join(transform.params)}"
        )
    hyper: Hyper = {}
    for key, param in transform.params.items():
        flag = isinstance(param.default, bool)
        dtype = torch.bool if flag else torch.float64
        raw = values.get(key, param.default)
        if flag:  # a flag is true or false (1 or 0), never "any non-zero number"
            given = torch.as_tensor(raw, dtype=torch.float64).reshape(-1)
            _refuse((given != 0) & (given != 1), f"{key} takes true or false")
        tensor = torch.as_tensor(raw, dtype=dtype, device=device).reshape(-1, 1)
        if tensor.shape[0] not in (1, size):
            raise GdscopeError(f"{key} has {tensor.shape[0]} values for {size} configurations")
        tensor = tensor.expand(size, 1).contiguous()
        if not flag:
            _refuse(~torch.isfinite(tensor), f"{key} must be finite")
            if param.low is not None:
                _refuse(tensor < param.low, f"{key} must be >= {param.low:g}")
            if param.below is not None:
                _refuse(tensor >= param.below, f"{key} must be < {param.below:g}")
        hyper[key] = tensor
    if transform.check is not None:
        transform.check(hyper)
    return hyper
