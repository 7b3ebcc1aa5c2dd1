"""The batched engine: K configurations of ``nn.Linear(1, 1)`` advanced by one tensor program.

Every configuration has its own hyperparameters, loss function and start point. Gradients are
the ones autograd computes for a real ``nn.Linear`` under a mean-reduced ``torch.nn`` loss,
written out in closed form so K runs vectorize. A configuration that diverges
(``problem.divergence``: a non-finite loss or parameter, or a parameter beyond the objective's
escape bound) is frozen at its last point before and flagged at that step; the others are
untouched (all operations are per row).

With ``record="path"`` the whole path and loss curve are kept (memory grows with epochs);
with ``record="metrics"`` only running metrics are kept, so memory does not grow with epochs.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from gdscope.devices import resolve_device
from gdscope.engines.native import load as native_library
from gdscope.engines.reference import check_batch, check_epochs
from gdscope.engines.trajectory import Trajectory
from gdscope.errors import GdscopeError, one_of
from gdscope.optim.rules import TRANSFORMS, Hyper, make_hyper, torch_kwargs
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.data import Dataset, require
from gdscope.problem.divergence import Divergence, within
from gdscope.problem.grid import ARTICLE_EPOCHS
from gdscope.problem.losses import LOSS_NAMES, LossSpec
from gdscope.problem.objective import Objective

__all__ = ["ENGINES", "BatchResult", "LossBatch", "run_batched"]

_KIND = {name: code for code, name in enumerate(LOSS_NAMES)}
Record = Literal["path", "metrics"]
Engine = Literal["auto", "torch", "native"]
ENGINES: tuple[Engine, ...] = get_args(Engine)


@dataclass(frozen=True)
class LossBatch:
    """Per-configuration loss: ``kind`` codes into ``LOSS_NAMES``, Huber delta, SmoothL1 beta."""

    kind: Tensor
    delta: Tensor
    beta: Tensor

    @classmethod
    def of(cls, losses: LossSpec | Sequence[LossSpec], size: int, device: Any = None) -> LossBatch:
        specs = list(losses) if isinstance(losses, Sequence) else [losses]
        if len(specs) not in (1, size):
            raise GdscopeError(f"{len(specs)} losses for {size} configurations")
        kind = torch.tensor([_KIND[s.name] for s in specs], device=device)
        delta = torch.tensor([s.delta for s in specs], dtype=torch.float64, device=device)
        beta = torch.tensor([s.beta for s in specs], dtype=torch.float64, device=device)
        return cls(*(t.reshape(-1, 1).expand(size, 1).contiguous() for t in (kind, delta, beta)))

    def spec(self, k: int) -> LossSpec:
        return LossSpec(LOSS_NAMES[int(self.kind[k])], float(self.delta[k]), float(self.beta[k]))

    @property
    def present(self) -> tuple[int, ...]:
        return tuple(int(c) for c in torch.unique(self.kind).tolist())


def _elementwise(code: int, r: Tensor, delta: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """Per-point loss and its derivative w.r.t. the prediction, as torch's kernels define them."""
    name = LOSS_NAMES[code]
    if name == "mse":
        return r * r, 2 * r
    if name == "l1":
        return r.abs(), torch.sign(r)
    a = r.abs()
    if name == "huber":
        value = torch.where(a < delta, 0.5 * r * r, delta * (a - 0.5 * delta))
        return value, torch.clamp(r, -delta, delta)
    # SmoothL1; beta == 0 is L1 (torch special-cases it the same way).
    safe = torch.where(beta > 0, beta, 1.0)
    value = torch.where(a < beta, 0.5 * r * r / safe, a - 0.5 * beta)
    slope = torch.where(a < beta, r / safe, torch.sign(r))
    return value, slope


def loss_and_grad(
    params: Tensor, x: Tensor, y: Tensor, kinds: tuple[int, ...], losses: LossBatch
) -> tuple[Tensor, Tensor]:
    """Mean loss ``(K,)`` and gradient ``(K, 2)`` of ``w·x + b`` for every configuration."""
    w, b = params[:, :1], params[:, 1:]
    r = (x * w + b) - y
    delta = losses.delta.to(r.dtype)
    beta = losses.beta.to(r.dtype)
    value, slope = _elementwise(kinds[0], r, delta, beta)
    for code in kinds[1:]:
        v, s = _elementwise(code, r, delta, beta)
        mine = losses.kind == code
        value, slope = torch.where(mine, v, value), torch.where(mine, s, slope)
    n = x.shape[-1]
    dpred = slope * (1.0 / n)
    grad = torch.cat([(dpred * x).sum(1, keepdim=True), dpred.sum(1, keepdim=True)], dim=1)
    return value.mean(1), grad


def function_and_grad(params: Tensor, function: Objective) -> tuple[Tensor, Tensor]:
    """A data-free objective's value ``(K,)`` and gradient ``(K, 2)`` at every row, by autograd
    (the same formula on the same values as the reference engine's 2-element ``nn.Parameter``)."""
    with torch.enable_grad():
        point = params.detach().requires_grad_()
        value = function.at(None, point)
        (grad,) = torch.autograd.grad(value.sum(), point)
    return value.detach(), grad


Evaluator = Callable[[Tensor, Tensor | None, Tensor | None], tuple[Tensor, Tensor]]


def _evaluator(loss: LossBatch | Objective, kinds: tuple[int, ...]) -> Evaluator:
    """Regression losses in closed form on the data, a data-free objective by autograd."""
    if isinstance(loss, LossBatch):
        batch = loss

        def regression(params: Tensor, x: Tensor | None, y: Tensor | None) -> tuple[Tensor, Tensor]:
            assert x is not None and y is not None
            return loss_and_grad(params, x, y, kinds, batch)

        return regression
    return lambda params, x, y: function_and_grad(params, loss)


@dataclass(frozen=True, eq=False)
class BatchResult:
    """What a batched run produced. Tensors stay on the run's device.

    ``diverged_at[k]`` is the first step at which the run diverged (``problem.divergence``),
    ``-1`` if none. ``path`` ``(epochs+1, K, 2)`` and ``losses`` ``(epochs+1, K)`` exist with
    ``record="path"`` (NaN from the divergence step on). Metrics exist in both modes:
    ``final`` (last finite parameters), ``final_loss``, ``best_loss``, ``path_length`` (sum of
    step lengths), ``steps_to_target`` (first step whose loss ≤ ``target``, ``-1`` if never),
    and ``early_spread``/``late_spread``: the largest distance to ``centre`` over the first and
    the last tenth of the points (infinite once non-finite), which tell a shrinking
    oscillation from a growing one within the run.
    """

    optimizer: str
    hyper: Hyper
    losses_spec: LossBatch | Objective
    starts: Tensor
    epochs: int
    diverged_at: Tensor
    final: Tensor
    final_loss: Tensor
    best_loss: Tensor
    path_length: Tensor
    steps_to_target: Tensor
    path: Tensor | None = None
    losses: Tensor | None = None
    early_spread: Tensor | None = None
    late_spread: Tensor | None = None
    completed: int = 0
    """Steps completed (``epochs`` unless interrupted)."""
    timings: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    shuffle_seed: int | None = None
    steps_per_epoch: int = 1
    batch_losses: Tensor | None = None
    """``(steps+1, K)`` with ``record="path"``: the loss each step saw (its mini-batch's)."""

    @property
    def size(self) -> int:
        return int(self.starts.shape[0])

    @property
    def diverged(self) -> Tensor:
        return self.diverged_at >= 0

    def options(self, k: int) -> dict[str, Any]:
        """Configuration ``k``'s hyperparameters as torch keyword arguments."""
        return torch_kwargs(self.optimizer, {key: v[k, 0].item() for key, v in self.hyper.items()})

    def optimizer_spec(self, k: int) -> OptimizerSpec:
        return OptimizerSpec.of(self.optimizer, **self.options(k))

    def trajectory(self, k: int) -> Trajectory:
        """Configuration ``k`` as a ``Trajectory`` (needs ``record="path"``)."""
        if self.path is None or self.losses is None:
            raise ValueError('trajectory() needs a run with record="path"')
        spec = self.losses_spec
        return Trajectory.from_path(
            self.path[:, k].double().cpu().numpy(),
            self.losses[:, k].double().cpu().numpy(),
            int(self.diverged_at[k]),
            spec.spec(k) if isinstance(spec, LossBatch) else spec,
            self.optimizer_spec(k),
            (float(self.starts[k, 0]), float(self.starts[k, 1])),
            steps_per_epoch=self.steps_per_epoch,
            batch_size=self.batch_size,
            shuffle_seed=self.shuffle_seed,
            batch_losses=None
            if self.batch_losses is None
            else self.batch_losses[:, k].double().cpu().numpy(),
        )


def _starts(start: Any, size: int, dtype: torch.dtype, device: Any) -> Tensor:
    tensor = torch.as_tensor(start, dtype=torch.float64, device=device).reshape(-1, 2)
    if tensor.shape[0] not in (1, size):
        raise GdscopeError(f"{tensor.shape[0]} start points for {size} configurations")
    if not bool(torch.isfinite(tensor).all()):
        raise GdscopeError("start points must be finite")
    return tensor.expand(size, 2).to(dtype).contiguous()


def _size(hyper: Mapping[str, Any], losses: Any, start: Any) -> int:
    sizes = {1}
    for value in hyper.values():
        if isinstance(value, (Tensor, np.ndarray, list)) and not isinstance(value, tuple):
            sizes.add(int(np.prod(np.shape(value))) or 1)
    if isinstance(losses, Sequence):
        sizes.add(len(losses))
    sizes.add(int(np.prod(np.shape(start))) // 2 or 1)
    sizes.discard(1)
    if len(sizes) > 1:
        raise GdscopeError(f"configuration counts disagree: {sorted(sizes)}")
    return sizes.pop() if sizes else 1


Carry = dict[str, Any]


def _make_step(update: Callable[..., Any], kinds: tuple[int, ...]) -> Callable[..., Any]:
    """One pure step over the carry: evaluate point i, record metrics, move to point i+1.

    Invariant: ``params`` are finite. A configuration is *ok* at point i when it was alive and
    its loss (on all the data) there is finite; a step whose result is not finite is not taken,
    and the configuration is marked dead from point i+1 on (where the reference engine sees the
    non-finite parameters). With a mini-batch ``xb, yb`` the step follows that batch's gradient.
    """

    def step(
        carry: Carry,
        i: Tensor,
        x: Tensor | None,
        y: Tensor | None,
        hyper: Hyper,
        losses: LossBatch | Objective,
        xb: Tensor | None = None,
        yb: Tensor | None = None,
    ) -> tuple[Carry, Tensor, Tensor, Tensor]:
        params, alive = carry["params"], carry["alive"]
        evaluate = _evaluator(losses, kinds)
        loss, grad = evaluate(params, x, y)
        seen = loss
        if xb is not None:
            seen, grad = evaluate(params, xb, yb)
        ok = alive & torch.isfinite(loss)
        safe = torch.where(ok, loss, torch.inf)
        new_params, new_state = update(grad, carry["state"], params, hyper, i + 1)
        good = ok & within(new_params, carry["bound"])
        keep = good[:, None]
        moved = (new_params - params).norm(dim=1)
        distance = torch.where(ok, (params - carry["centre"]).norm(dim=1), torch.inf)
        out = {
            "params": torch.where(keep, new_params, params),
            "state": {k: torch.where(keep, v, carry["state"][k]) for k, v in new_state.items()},
            "alive": good,
            "last_ok": torch.where(ok[:, None], params, carry["last_ok"]),
            "diverged_at": torch.where((carry["diverged_at"] < 0) & ~ok, i, carry["diverged_at"]),
            "best": torch.minimum(carry["best"], safe),
            "reached": torch.where(
                (carry["reached"] < 0) & (safe <= carry["goal"]), i, carry["reached"]
            ),
            "final_loss": torch.where(ok, loss, carry["final_loss"]),
            # The step taken after the last point is not part of the run.
            "length": carry["length"] + torch.where(good & (i < carry["epochs"]), moved, 0.0),
            "goal": carry["goal"],
            "epochs": carry["epochs"],
            "centre": carry["centre"],
            "window": carry["window"],
            "bound": carry["bound"],
            "early_spread": torch.where(
                i < carry["window"],
                torch.maximum(carry["early_spread"], distance),
                carry["early_spread"],
            ),
            "late_spread": torch.where(
                i > carry["epochs"] - carry["window"],
                torch.maximum(carry["late_spread"], distance),
                carry["late_spread"],
            ),
        }
        row = torch.where(ok[:, None], params, torch.nan)
        return out, row, torch.where(ok, loss, torch.nan), torch.where(ok, seen, torch.nan)

    return step


_COMPILED: dict[tuple[str, tuple[int, ...]], Callable[..., Any]] = {}


def _compiled_step(name: str, kinds: tuple[int, ...]) -> Callable[..., Any]:
    key = (name, kinds)
    if key not in _COMPILED:
        # dynamic=True: one kernel serves every K. Static shapes would recompile per K, and
        # past dynamo's recompile limit it silently falls back to eager.
        _COMPILED[key] = torch.compile(_make_step(TRANSFORMS[name].update, kinds), dynamic=True)
    return _COMPILED[key]


@dataclass(frozen=True)
class _Setup:
    """A run's configurations as tensors: what is evaluated (``losses``, on ``x``/``y`` for a
    regression), the mini-batch order, and the targets of the metrics."""

    size: int
    hyper: Hyper
    losses: LossBatch | Objective
    kinds: tuple[int, ...]
    starts: Tensor
    x: Tensor | None
    y: Tensor | None
    order: list[Tensor] | None
    per_epoch: int
    goal: Tensor
    centre: Tensor
    bound: float
    """The escape bound of ``problem.divergence``."""

    @property
    def regression(self) -> bool:
        return isinstance(self.losses, LossBatch)


def _check_options(record: str, dtype: torch.dtype, engine: str) -> None:
    one_of("record", record, get_args(Record))
    if dtype not in (torch.float32, torch.float64):
        raise GdscopeError("dtype must be torch.float32 or torch.float64")
    one_of("engine", engine, ENGINES)


def _objective(
    loss: Objective | Sequence[LossSpec], size: int, device: torch.device
) -> LossBatch | Objective:
    """Regression losses as one ``LossBatch``; a data-free objective as itself."""
    if isinstance(loss, Sequence):
        return LossBatch.of(loss, size, device)
    spec = loss.regression
    return loss if spec is None else LossBatch.of(spec, size, device)


def _data_tensors(
    data: Dataset | None, losses: LossBatch | Objective, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor | None, Tensor | None]:
    if not isinstance(losses, LossBatch):
        return None, None
    found = require(data, losses.spec(0).title)
    return (torch.tensor(found.x, dtype=dtype, device=device),
            torch.tensor(found.y, dtype=dtype, device=device))  # fmt: skip


def _batch_order(
    x: Tensor | None, batch_size: int | None, shuffle_seed: int, epochs: int, device: torch.device
) -> tuple[list[Tensor] | None, int]:
    """Each step's mini-batch indices (None: full batch) and the steps per epoch."""
    check_batch(batch_size, shuffle_seed, None if x is None else len(x))
    if batch_size is None or x is None:
        return None, 1
    from gdscope.engines.minibatch import batch_indices

    order = [b.to(device) for b in batch_indices(len(x), batch_size, shuffle_seed, epochs)]
    return order, len(order) // epochs


def _setup(
    data: Dataset | None,
    optimizer: str,
    hyper: Mapping[str, Any],
    loss: Objective | Sequence[LossSpec],
    start: Any,
    *,
    epochs: int,
    dtype: torch.dtype,
    device: torch.device,
    target: Tensor | float | None,
    centre: Any,
    batch_size: int | None,
    shuffle_seed: int,
) -> _Setup:
    if start is None:
        start = (loss[0] if isinstance(loss, Sequence) else loss).start
    size = _size(hyper, loss, start)
    losses = _objective(loss, size, device)
    x, y = _data_tensors(data, losses, dtype, device)
    order, per_epoch = _batch_order(x, batch_size, shuffle_seed, epochs, device)
    goal = torch.full((size,), -torch.inf, dtype=dtype, device=device)
    if target is not None:
        goal = torch.as_tensor(target, dtype=dtype, device=device).expand(size).clone()
    return _Setup(
        size=size,
        hyper=make_hyper(optimizer, dict(hyper), size, device=device),
        losses=losses,
        kinds=losses.present if isinstance(losses, LossBatch) else (),
        starts=_starts(start, size, dtype, device),
        x=x,
        y=y,
        order=order,
        per_epoch=per_epoch,
        goal=goal,
        centre=torch.zeros(size, 2, dtype=dtype, device=device)
        if centre is None
        else _starts(centre, size, dtype, device),
        bound=Divergence.of(loss).bound,
    )


def _initial_carry(setup: _Setup, state: Carry, steps: int) -> Carry:
    params = setup.starts.clone()
    device, dtype = params.device, params.dtype

    def full(value: float, kind: torch.dtype = dtype) -> Tensor:
        return torch.full((setup.size,), value, dtype=kind, device=device)

    bound = torch.tensor(setup.bound, dtype=dtype, device=device)
    return {
        "params": params,
        "state": state,
        "alive": within(params, bound),  # a start beyond the bound has diverged at step 0
        "last_ok": params.clone(),  # no aliasing between carry entries (it forces recompiles)
        "diverged_at": full(-1, torch.int64),
        "best": full(torch.inf),
        "reached": full(-1, torch.int64),
        "final_loss": full(torch.nan),
        "length": full(0.0),
        "goal": setup.goal,
        "epochs": torch.tensor(steps, device=device),
        "centre": setup.centre,
        "window": torch.tensor(max(1, (steps + 1) // 10), device=device),
        "bound": bound,
        "early_spread": full(0.0),
        "late_spread": full(0.0),
    }


def _run_torch(
    setup: _Setup,
    optimizer: str,
    *,
    epochs: int,
    record: Record,
    compile: bool,
    should_stop: Callable[[], bool] | None,
    batch_size: int | None,
    shuffle_seed: int,
) -> BatchResult:
    """The tensor engine: one step program over all configurations, point by point."""
    transform = TRANSFORMS[optimizer]
    kinds = setup.kinds
    step_fn = _compiled_step(optimizer, kinds) if compile else _make_step(transform.update, kinds)
    steps = epochs * setup.per_epoch
    carry = _initial_carry(setup, transform.init(setup.starts.clone(), setup.hyper), steps)
    shape, dtype, device = (steps + 1, setup.size), setup.starts.dtype, setup.starts.device
    path = losses = seen = None
    if record == "path":
        path = torch.empty((*shape, 2), dtype=dtype, device=device)
        losses = torch.empty(shape, dtype=dtype, device=device)
        seen = torch.empty(shape, dtype=dtype, device=device)
    began = time.perf_counter()
    timings: dict[str, Any] = {"engine": "torch.compile" if compile else "torch"}
    counter = torch.arange(steps + 1, device=device)
    completed = 0
    for i in range(steps + 1):
        batch: tuple[Tensor | None, Tensor | None] = (None, None)
        if setup.order is not None and setup.x is not None and setup.y is not None and i < steps:
            batch = (setup.x[setup.order[i]], setup.y[setup.order[i]])
        carry, row, loss_row, seen_row = step_fn(
            carry, counter[i], setup.x, setup.y, setup.hyper, setup.losses, *batch
        )
        if path is not None and losses is not None and seen is not None:
            path[i], losses[i] = row, loss_row
            seen[i] = seen_row if i < steps else torch.nan
        if i == 0:
            timings["first_step_s"] = time.perf_counter() - began
        completed = i
        if i < steps and should_stop is not None and should_stop():
            path, losses, seen = (
                t[: i + 1] if t is not None else None for t in (path, losses, seen)
            )
            break
    timings["total_s"] = time.perf_counter() - began
    return BatchResult(
        optimizer=optimizer, hyper=setup.hyper, losses_spec=setup.losses, starts=setup.starts,
        epochs=epochs, diverged_at=carry["diverged_at"], final=carry["last_ok"],
        final_loss=carry["final_loss"], best_loss=carry["best"], path_length=carry["length"],
        steps_to_target=carry["reached"], path=path, losses=losses,
        early_spread=carry["early_spread"], late_spread=carry["late_spread"],
        completed=completed, timings=timings, batch_size=batch_size,
        shuffle_seed=shuffle_seed if batch_size is not None else None,
        steps_per_epoch=setup.per_epoch, batch_losses=seen,
    )  # fmt: skip


def _native_library(engine: Engine, applies: bool) -> Any:
    """The C kernel when the native engine runs this; None for the tensor engine."""
    library = native_library() if engine != "torch" and applies else None
    if engine == "native" and library is None:
        raise GdscopeError(
            "the native engine runs full-batch SGD regression on the CPU and needs a C compiler"
        )
    return library


def run_batched(
    data: Dataset | None,
    optimizer: str = "sgd",
    hyper: Mapping[str, Any] | None = None,
    *,
    loss: Objective | Sequence[LossSpec] | None = None,
    start: Any = None,
    epochs: int = ARTICLE_EPOCHS,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    record: Record = "path",
    target: Tensor | float | None = None,
    compile: bool = False,
    centre: Any = None,
    engine: Engine = "auto",
    should_stop: Callable[[], bool] | None = None,
    batch_size: int | None = None,
    shuffle_seed: int = 0,
) -> BatchResult:
    """Run K configurations of ``optimizer`` for ``epochs`` full-batch steps.

    ``hyper`` maps hyperparameter names (torch's, ``betas`` allowed) to a scalar or K values;
    ``loss`` is one ``LossSpec`` or K of them; ``start`` one ``(w, b)`` or a ``(K, 2)`` array.
    ``centre`` (one point or K) is what ``early_spread``/``late_spread`` measure distances to.
    ``engine``: ``"torch"`` runs tensor operations (eager, or ``torch.compile``d with
    ``compile=True``); ``"native"`` runs SGD on the CPU in the fused C kernel
    (``gdscope.engines.native``), which keeps every configuration's state in registers for the whole
    run; ``"auto"`` picks native where it applies (SGD, CPU, no ``should_stop``, kernel built)
    and torch otherwise. ``compile=True`` runs the torch step through ``torch.compile``.
    ``should_stop`` is polled between steps; when it returns True the run ends early and the
    result says how many steps were ``completed``.

    ``loss`` may be a data-free objective such as a ``TestFunction`` (then ``data`` is not used;
    the default ``start`` is the objective's customary one). ``batch_size``/``shuffle_seed`` make
    every configuration take one step per mini-batch, visiting the data in the order
    ``DataLoader(shuffle=True)`` with that seed does (the same for all configurations), as
    ``train`` does; the recorded ``losses`` are on all the data, ``batch_losses`` the
    mini-batch's.
    """
    check_epochs(epochs)
    _check_options(record, dtype, engine)
    where = resolve_device(device)
    setup = _setup(
        data, optimizer, dict(hyper or {}), loss if loss is not None else LossSpec(), start,
        epochs=epochs, dtype=dtype, device=where, target=target, centre=centre,
        batch_size=batch_size, shuffle_seed=shuffle_seed,
    )  # fmt: skip
    applies = (optimizer == "sgd" and where.type == "cpu" and should_stop is None
               and not compile and setup.regression and setup.order is None)  # fmt: skip
    library = _native_library(engine, applies)
    if library is not None:
        return _run_native(library, setup, optimizer, epochs, record)
    return _run_torch(
        setup, optimizer, epochs=epochs, record=record, compile=compile,
        should_stop=should_stop, batch_size=batch_size, shuffle_seed=shuffle_seed,
    )  # fmt: skip


def _run_native(
    library: Any, setup: _Setup, optimizer: str, epochs: int, record: Record
) -> BatchResult:
    """Run SGD through the fused C kernel; same results and metrics as the tensor engine."""
    assert setup.x is not None and setup.y is not None and isinstance(setup.losses, LossBatch)
    x, y, hp, losses, goal = setup.x, setup.y, setup.hyper, setup.losses, setup.goal
    params, centre = setup.starts.clone(), setup.centre
    size, dtype = params.shape[0], params.dtype
    began = time.perf_counter()

    def arr(t: Tensor, kind: torch.dtype) -> Tensor:
        return t.reshape(-1).to(kind).contiguous()

    f64 = {k: arr(hp[k], torch.float64) for k in ("lr", "momentum", "dampening", "weight_decay")}
    flags = {k: arr(hp[k], torch.uint8) for k in ("nesterov", "maximize")}
    kind = arr(losses.kind, torch.int8)
    delta, beta = arr(losses.delta, torch.float64), arr(losses.beta, torch.float64)
    inputs = [x.contiguous(), y.contiguous(), params.contiguous(), centre.contiguous(), goal]
    path = losses_out = None
    if record == "path":
        path = torch.empty((epochs + 1, size, 2), dtype=dtype)
        losses_out = torch.empty((epochs + 1, size), dtype=dtype)
    diverged_at = torch.empty(size, dtype=torch.int64)
    reached = torch.empty(size, dtype=torch.int64)
    final = torch.empty(size, 2, dtype=dtype)
    final_loss, best, length, early, late = (torch.empty(size, dtype=dtype) for _ in range(5))
    window = max(1, (epochs + 1) // 10)
    run = library.gdscope_sgd_f32 if dtype == torch.float32 else library.gdscope_sgd_f64

    def ptr(t: Tensor | None) -> ctypes.c_void_p:
        return ctypes.c_void_p(0 if t is None else t.data_ptr())

    ints = [ctypes.c_int64(v) for v in (size, x.shape[0], epochs, window)]
    run(
        *ints, ctypes.c_double(setup.bound), ptr(inputs[0]), ptr(inputs[1]),
        *(ptr(f64[k]) for k in ("lr", "momentum", "dampening", "weight_decay")),
        ptr(flags["nesterov"]), ptr(flags["maximize"]), ptr(kind), ptr(delta), ptr(beta),
        ptr(inputs[2]), ptr(inputs[3]), ptr(inputs[4]), ptr(path), ptr(losses_out),
        ptr(diverged_at), ptr(final), ptr(final_loss), ptr(best), ptr(length), ptr(reached),
        ptr(early), ptr(late),
    )  # fmt: skip
    timings = {"total_s": time.perf_counter() - began, "engine": "native"}
    return BatchResult(
        optimizer=optimizer, hyper=hp, losses_spec=losses, starts=setup.starts, epochs=epochs,
        diverged_at=diverged_at, final=final, final_loss=final_loss, best_loss=best,
        path_length=length, steps_to_target=reached, path=path, losses=losses_out,
        early_spread=early, late_spread=late, completed=epochs, timings=timings,
    )  # fmt: skip
