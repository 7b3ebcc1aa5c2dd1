"""K copies of any ``nn.Module`` trained at once, each with its own optimizer hyperparameters.

The copies' parameters (and buffers: BatchNorm's running statistics are per copy) are stacked
along a leading K axis; ``torch.func.functional_call`` under ``vmap`` runs the forward of all
copies on one mini-batch together, and one backward of their summed losses gives every copy its
own gradient. The update is the batched rule
of ``optim.rules`` unchanged: every torch.optim rule there is elementwise, so each copy's
parameters, flattened into one row of a ``(K, N)`` tensor, move exactly as torch.optim moves
them tensor by tensor (float64: to rounding). Every copy sees the same mini-batches in the same
order, the order a seeded ``DataLoader(shuffle=True)`` draws (``engines.minibatch``).

A copy whose loss, gradient step or parameters become non-finite is frozen at its last finite
state and flagged (``diverged_at``); the others go on. For a network the divergence rule is
``problem.divergence``'s with no escape bound (``Divergence.of`` gives ``inf`` for an objective
without a map): a network has no map whose extent would set one.

A model whose forward is random (dropout) draws its randomness per copy under vmap
(``randomness="different"``), so its copies equal separate trainings statistically, not bitwise.
``method="auto"`` times both ways of computing the copies' gradients on the first steps and
trains on with the faster (``Trial``); where vmap cannot run a module, it falls back to the
loop over the copies at the first step.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from gdscope.devices import resolve_device
from gdscope.engines.minibatch import batch_indices
from gdscope.errors import GdscopeError, first_line, one_of
from gdscope.optim.rules import (
    TORCH_PAIRS,
    TRANSFORMS,
    Hyper,
    Known,
    make_hyper,
    torch_kwargs,
    torch_name,
)
from gdscope.optim.specs import OPTIMIZERS, SchedulerSpec
from gdscope.problem.divergence import Divergence

__all__ = [
    "AUTO_STEPS",
    "INITS",
    "METHODS",
    "NETWORK_DIVERGENCE",
    "VMAP_NOTE",
    "Copies",
    "StackedResult",
    "Trial",
    "stack_copies",
    "train_stacked",
]

Init = Literal["same", "seeded"]
"""``same``: every copy starts from the model's own weights; ``seeded``: copy ``k`` re-draws
them with ``reset_parameters()`` under ``torch.manual_seed(seed + k)`` (or ``seed[k]``); a
parameter no such method covers starts alike (``train_stacked`` notes which), and a model with
none at all is refused."""
Seeds = int | Sequence[int]
INITS: tuple[Init, ...] = get_args(Init)
VMAP_NOTE = "vmap cannot run this model"
"""How the note of a model trained copy by copy because vmap cannot run it begins (for the
person reading it; which way ran is ``StackedResult.method``)."""
Method = Literal["auto", "vmap", "loop"]
METHODS: tuple[Method, ...] = get_args(Method)
LossFn = Callable[[Tensor, Tensor], Tensor]
AUTO_STEPS = 2
"""The step after which ``method="auto"`` has timed both ways (vmap on step 2, the first paying
for setting up) and trains on with the faster: a run this short or shorter is vmapped. (On a
CPU the clock is the process's CPU time, which a busy machine does not inflate: one step is a
fair timing, and a short run's trial is a third cheaper than with two.)"""

NETWORK_DIVERGENCE = Divergence(math.inf)
"""``problem.divergence``'s test without an escape bound: only non-finite values count."""


@dataclass(frozen=True, eq=False)
class Copies:
    """K copies' parameters and buffers, each tensor with a leading K axis."""

    params: dict[str, Tensor]
    buffers: dict[str, Tensor]

    @property
    def size(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def flat(self) -> Tensor:
        """``(K, N)``: each copy's parameters as one row (in ``named_parameters`` order)."""
        return torch.cat([p.reshape(self.size, -1) for p in self.params.values()], dim=1)

    def with_flat(self, rows: Tensor) -> dict[str, Tensor]:
        """``rows`` (``(K, N)``) split back into the parameters' shapes."""
        out, at = {}, 0
        for name, p in self.params.items():
            count = p[0].numel()
            out[name] = rows[:, at : at + count].reshape(p.shape)
            at += count
        return out

    def copy(self, k: int) -> dict[str, Tensor]:
        """Copy ``k``'s parameters and buffers as a ``state_dict``."""
        return {name: t[k] for name, t in {**self.params, **self.buffers}.items()}


def _float_copy(model: nn.Module, dtype: torch.dtype | None, device: torch.device) -> nn.Module:
    model = copy.deepcopy(model).to(device)
    return model.to(dtype) if dtype is not None else model


def stack_copies(
    model: nn.Module,
    size: int,
    *,
    init: Init = "same",
    seed: Seeds = 0,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
) -> Copies:
    """``size`` copies of ``model``'s parameters and buffers (``init``: see ``Init``)."""
    if not isinstance(model, nn.Module):
        raise GdscopeError(f"the model must be an nn.Module, got {type(model).__name__}")
    one_of("init", init, INITS)
    if not any(p.requires_grad for p in model.parameters()):
        raise GdscopeError("the model has no trainable parameters")
    base = _float_copy(model, dtype, resolve_device(device))
    seeds = [seed + k for k in range(size)] if isinstance(seed, int) else list(seed)
    if init == "seeded" and len(seeds) != size:
        raise GdscopeError(f"{len(seeds)} seeds for {size} copies")
    if init == "seeded" and not _reseedable(model):
        raise GdscopeError(
            "init seeded re-draws the weights with each module's reset_parameters(), but no "
            "module holding this model's parameters has one: every copy would start alike"
        )
    sources = [base] if init == "same" else [_reseeded(base, s) for s in seeds]

    def stacked(items: Callable[[nn.Module], Any]) -> dict[str, Tensor]:
        names = [name for name, _ in items(base)]
        rows = [dict(items(m)) for m in sources]
        return {
            name: torch.stack([row[name].detach() for row in rows])
            .expand(size, *rows[0][name].shape)
            .clone()
            for name in names
        }

    params = stacked(lambda m: [(n, p) for n, p in m.named_parameters() if p.requires_grad])
    return Copies(params, stacked(lambda m: list(m.named_buffers())))


def _reseedable(model: nn.Module) -> list[str]:
    """The trainable parameters ``_reseeded`` re-draws: those held by a module with a
    ``reset_parameters()`` (or by one inside such a module, which may reset its children)."""
    resets = {
        name for name, m in model.named_modules() if callable(getattr(m, "reset_parameters", None))
    }

    def covered(owner: str) -> bool:
        parts = owner.split(".") if owner else []
        return any(".".join(parts[:i]) in resets for i in range(len(parts) + 1))

    return [name for name, p in model.named_parameters()
            if p.requires_grad and covered(name.rpartition(".")[0])]  # fmt: skip


def _seeding_note(model: nn.Module) -> str | None:
    """What ``init="seeded"`` cannot re-draw (no ``reset_parameters()`` holds it: every copy
    starts it alike), in words for the run's notes; None if it re-draws everything."""
    drawn = set(_reseedable(model))
    alike = [n for n, p in model.named_parameters() if p.requires_grad and n not in drawn]
    if not alike:
        return None
    shown = ", ".join(alike[:5]) + (f" and {len(alike) - 5} more" if len(alike) > 5 else "")
    return (f"init seeded: no reset_parameters() re-draws {shown}; every copy starts "
            f"{'it' if len(alike) == 1 else 'them'} alike")  # fmt: skip


def _reseeded(model: nn.Module, seed: int) -> nn.Module:
    fresh = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in fresh.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    return fresh


@dataclass(frozen=True, eq=False)
class StackedResult:
    """What ``train_stacked`` returns. ``losses`` is ``(steps, K)``: the loss of each step's
    mini-batch before its update (NaN once a copy has diverged); ``diverged_at[k]`` is the
    1-based step at which copy ``k`` diverged, ``-1`` if it did not; ``final`` holds each
    copy's last finite parameters and buffers; ``completed`` is the number of steps run (fewer
    than asked when ``should_stop`` stopped it)."""

    optimizer: str
    hyper: Hyper
    losses: Tensor
    diverged_at: Tensor
    final: Copies
    completed: int
    method: Literal["vmap", "loop"]
    note: str | None = None
    trial: Trial | None = None


@dataclass(frozen=True)
class Trial:
    """How ``method="auto"`` chose between the ways of computing the copies' gradients: the
    seconds of one step's gradients with all copies vmapped (real training steps up to
    ``AUTO_STEPS`` after the first, the fastest of them) and one by one (one copy's forward and
    backward timed apart, times K: the loop costs the same for every copy). The faster way
    trains the remaining steps."""

    vmap_s: float
    loop_s: float


class _Captured(nn.Module):
    """The user's model, also returning its buffers as its forward left them: updated in place
    (BatchNorm's running statistics) or re-assigned (``self.ema = 0.8 * self.ema + …``).
    ``functional_call`` puts the original tensors back when it returns, so a re-assigned buffer
    must be read before that, inside the call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Any, dict[str, Tensor]]:
        out = self.model(x)
        return out, dict(self.model.named_buffers())


def _forward(model: nn.Module, loss_fn: LossFn) -> Callable[..., Any]:
    """One copy's ``(loss, new buffers)`` on a batch, in training mode."""
    from torch.func import functional_call

    captured = _Captured(model)

    def loss(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor) -> Any:
        given = {f"model.{k}": v for k, v in params.items()}
        # Cloned: BatchNorm updates them in place, and a frozen copy keeps its old ones.
        given.update({f"model.{k}": v.clone() for k, v in buffers.items()})
        out, news = functional_call(captured, given, (x,))
        value = loss_fn(out, y)
        if not isinstance(value, Tensor) or value.dim() != 0:  # (one copy's, under vmap too)
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise GdscopeError(f"the loss must return one number for the batch, got {shape}; "
                               "reduce it (reduction='mean')")  # fmt: skip
        lost = [name for name in buffers if name not in news]
        if lost:
            raise GdscopeError(f"the model's forward set its buffer {lost[0]} to None")
        return value, {k: news[k] for k in buffers}

    return loss


Grads = tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]
"""What one step's backward gives: every copy's gradient as a ``(K, N)`` row (zero where
unused), ``(K, P)``: which of the P parameters each copy's loss used, the ``(K,)`` losses, and
the buffers as the forward left them."""


def _flat(grads: Sequence[Tensor | None], shapes: Sequence[torch.Size], out: Tensor) -> Tensor:
    """Gradients (None: unused, so zero) of parameters of one copy's ``shapes``, written into
    the rows of ``out`` (``(rows, N)``, in the same order). Each is copied once, straight into
    its columns: a weight's gradient comes out of the backward transposed, and flattening it
    first copied it twice."""
    rows, at = out.shape[0], 0
    for grad, shape in zip(grads, shapes, strict=True):
        count = shape.numel()
        columns = out[:, at : at + count].view(rows, *shape)  # (each row's part is contiguous)
        if grad is None:
            columns.zero_()
        else:
            columns.copy_(grad.reshape(rows, *shape))  # (one copy's: a view with a leading 1)
        at += count
    return out


def _vmapped(forward: Callable[..., Any]) -> Callable[..., Grads]:
    """Every copy's forward at once under vmap, and one backward of the sum of their losses,
    which gives each copy exactly its own loss's gradient (the copies share nothing; the sum's
    derivative by each loss is 1, even where another copy's loss is not finite). Cheaper than
    vmapping ``torch.func.grad``: the backward runs on the batched tensors. A parameter the
    loss did not use gets no gradient, as ``.grad`` stays None in torch (which then leaves it
    alone: no weight decay, no state, no step counted)."""
    from torch.func import vmap

    mapped = vmap(forward, in_dims=(0, 0, None, None), randomness="different")

    def run(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor) -> Grads:
        with torch.enable_grad():
            leaves = {k: v.detach().requires_grad_() for k, v in params.items()}
            losses, news = mapped(leaves, buffers, x, y)
            found = torch.autograd.grad(losses.sum(), list(leaves.values()), allow_unused=True)
        size = len(losses)
        used = torch.tensor([g is not None for g in found], device=losses.device)
        first = next(iter(params.values()))
        shapes = [p.shape[1:] for p in params.values()]
        flat = _flat(found, shapes, first.new_empty(size, sum(s.numel() for s in shapes)))
        return (flat, used.expand(size, -1), losses.detach(),
                {k: v.detach() for k, v in news.items()})  # fmt: skip

    return run


def _looped(forward: Callable[..., Any]) -> Callable[..., Grads]:
    """The same copy by copy, each with its own backward: for modules vmap cannot run, and
    where a copy's convolutions run faster alone. One copy's activations live at a time, so
    memory does not grow with K; a copy's own control flow decides what it used."""

    def run(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor) -> Grads:
        first = next(iter(params.values()))
        size = first.shape[0]
        shapes = [p.shape[1:] for p in params.values()]
        flat = first.new_empty(size, sum(s.numel() for s in shapes))
        used: list[list[bool]] = []
        losses, news = [], []
        for k in range(size):
            with torch.enable_grad():
                leaves = {n: p[k].detach().requires_grad_() for n, p in params.items()}
                loss, new = forward(leaves, {n: b[k] for n, b in buffers.items()}, x, y)
                found = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
            _flat(found, shapes, flat[k : k + 1])
            used.append([g is not None for g in found])
            losses.append(loss.detach())
            news.append(new)
        stacked = {n: torch.stack([new[n].detach() for new in news]) for n in buffers}
        return (flat, torch.tensor(used, device=first.device), torch.stack(losses),
                stacked)  # fmt: skip

    return run


class _Schedules:
    """A real ``torch.optim.lr_scheduler`` per copy, each on a one-parameter optimizer of the
    copy's own class and hyperparameters, stepped after every step. Whatever it changed goes
    back into the rule's ``(K, 1)`` hyperparameters: the lr, and the momentum (or Adam's beta1)
    that ``OneCycleLR`` and ``CyclicLR`` cycle by default."""

    def __init__(self, spec: SchedulerSpec, optimizer: str, rules: Hyper) -> None:
        self.spec = spec
        self.keys = [k for k, v in rules.items() if v.is_floating_point()]
        rows = [{k: v[i, 0].item() for k, v in rules.items()} for i in range(len(rules["lr"]))]
        self.optimizers = [
            OPTIMIZERS[optimizer]([nn.Parameter(torch.zeros(1))], **torch_kwargs(optimizer, row))
            for row in rows
        ]
        self.schedulers = [spec.build(o) for o in self.optimizers]

    def _value(self, group: dict[str, Any], key: str) -> float:
        name = torch_name(key)
        value = group[name]
        return float(value[TORCH_PAIRS[name].index(key)] if name in TORCH_PAIRS else value)

    def step(self, losses: Tensor, rules: Hyper) -> Hyper:
        """``rules`` with the scheduled hyperparameters after this step."""
        with warnings.catch_warnings():  # its optimizer never steps: torch warns of the order
            warnings.simplefilter("ignore", UserWarning)
            for scheduler, loss in zip(self.schedulers, losses.tolist(), strict=True):
                if self.spec.needs_metric:
                    scheduler.step(loss)
                else:
                    scheduler.step()
        return self.read(rules)

    def read(self, rules: Hyper) -> Hyper:
        """``rules`` with the hyperparameters the schedulers set now (a scheduler may change them
        when it is made: ``OneCycleLR`` starts at ``max_lr / div_factor``)."""
        groups = [o.param_groups[0] for o in self.optimizers]
        return {**rules, **{
            key: torch.tensor([self._value(g, key) for g in groups], dtype=rules[key].dtype,
                              device=rules[key].device).reshape(-1, 1)
            for key in self.keys
        }}  # fmt: skip


def _check_data(x: Tensor, y: Tensor) -> None:
    if not isinstance(x, Tensor) or not isinstance(y, Tensor) or len(x) == 0:
        raise GdscopeError("the data has no samples")
    if len(x) != len(y):
        raise GdscopeError(f"the data has {len(x)} inputs but {len(y)} targets")


def train_stacked(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss_fn: LossFn,
    optimizer: str,
    hyper: Mapping[str, Any],
    *,
    size: int,
    steps: int,
    batch_size: int,
    shuffle_seed: int = 0,
    init: Init = "same",
    seed: Seeds = 0,
    scheduler: SchedulerSpec | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    method: Method = "auto",
    should_stop: Callable[[], bool] | None = None,
    time_ways: bool = True,
) -> StackedResult:
    """Train ``size`` copies of ``model`` for ``steps`` mini-batch steps on ``(x, y)``.

    ``hyper``: the optimizer's hyperparameters, scalars or length-``size`` sequences
    (``make_hyper``; bounds checked as torch checks them). The batches are those of a
    ``DataLoader(TensorDataset(x, y), batch_size, shuffle=True)`` with a generator seeded by
    ``shuffle_seed``, epoch after epoch. ``scheduler`` is stepped after every step, per copy.
    ``dtype``: the copies' float type (``None``: the model's). ``should_stop`` is asked before
    every step. ``method="auto"`` times vmap against the loop (``Trial``) unless ``time_ways``
    is False: then it vmaps, and loops only where vmap cannot run the model (chunks trained on
    several machines all train the same way).
    """
    one_of("method", method, METHODS)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise GdscopeError(f"steps must be a positive integer, got {steps!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise GdscopeError(f"the number of copies must be a positive integer, got {size!r}")
    _check_data(x, y)
    device = resolve_device(device)
    copies = stack_copies(model, size, init=init, seed=seed, dtype=dtype, device=device)
    net = _float_copy(model, dtype, device).train()
    rules = make_hyper(optimizer, dict(hyper), size, device=device)  # refuses bad input
    transform = TRANSFORMS[optimizer]
    per_epoch = math.ceil(len(x) / batch_size) if batch_size >= 1 else 0
    order = batch_indices(len(x), batch_size, shuffle_seed, math.ceil(steps / max(per_epoch, 1)))
    x, y = x.to(device), y.to(device)
    if dtype is not None and x.is_floating_point():
        x = x.to(dtype)
    schedules = _Schedules(scheduler, optimizer, rules) if scheduler is not None else None
    if schedules is not None:
        rules = schedules.read(rules)

    step_fn = _forward(net, loss_fn)
    chosen: Literal["vmap", "loop"] = "loop" if method == "loop" else "vmap"
    run = _looped(step_fn) if chosen == "loop" else _vmapped(step_fn)
    trial: Trial | None = None
    timed: list[float] = []
    note = _seeding_note(model) if init == "seeded" else None
    params, buffers = copies.flat(), copies.buffers
    state = transform.init(params, rules)
    known = Known.of(rules, varying=frozenset(schedules.keys if schedules is not None else ()))
    counts = _Steps(copies)
    alive = torch.ones(size, dtype=torch.bool, device=device)
    losses = torch.full((steps, size), math.nan, dtype=params.dtype, device=device)
    diverged_at = torch.full((size,), -1, dtype=torch.long, device=device)
    completed = 0
    for t in range(1, steps + 1):
        if should_stop is not None and should_stop():
            break
        idx = order[t - 1].to(device)
        args = (copies.with_flat(params), buffers, x[idx], y[idx])
        # auto times vmap on steps 2 to AUTO_STEPS (step 1 warmed it up); no clock otherwise
        # (on a GPU, reading it waits for the queue).
        timing = time_ways and method == "auto" and chosen == "vmap" and 2 <= t <= AUTO_STEPS
        began = _clock(device) if timing else 0.0
        try:
            flat_grad, used, loss, new_buffers = run(*args)
        except (RuntimeError, NotImplementedError, ValueError) as error:
            if method != "auto" or chosen == "loop" or t > 1:
                raise
            chosen, run = "loop", _looped(step_fn)
            first = first_line(error)
            fallback = f"{VMAP_NOTE} ({first[:120]}); trained copy by copy instead"
            note = fallback if note is None else f"{note}; {fallback}"
            flat_grad, used, loss, new_buffers = run(*args)
        if timing:
            timed.append(_clock(device) - began)
            if t == AUTO_STEPS:
                trial = Trial(min(timed), size * _one_copy_seconds(step_fn, *args))
                if trial.loop_s < trial.vmap_s:
                    chosen, run = "loop", _looped(step_fn)
        step, skip = counts.take(used, t)
        new_params, new_state = transform.update(flat_grad, state, params, rules, step, known)
        if skip is not None:  # torch.optim leaves a parameter without .grad alone
            new_params = torch.where(skip, params, new_params)
            new_state = {k: torch.where(skip, state[k], v) for k, v in new_state.items()}
        ok = alive & torch.isfinite(loss) & NETWORK_DIVERGENCE.params_ok(new_params)
        losses[t - 1] = torch.where(alive, loss.to(losses.dtype), math.nan)
        if bool(ok.all()):  # the usual case: no copy to freeze
            params, state, buffers = new_params, new_state, new_buffers
        else:
            diverged_at = torch.where(alive & ~ok, t, diverged_at)
            params = torch.where(ok[:, None], new_params, params)
            state = {k: torch.where(ok[:, None], v, state[k]) for k, v in new_state.items()}
            buffers = {k: _keep(ok, v, buffers[k]) for k, v in new_buffers.items()}
            alive = ok
        if schedules is not None:
            rules = schedules.step(loss.detach().cpu(), rules)
        completed = t
    final = Copies(copies.with_flat(params), buffers)
    return StackedResult(optimizer, rules, losses[:completed], diverged_at, final, completed,
                         chosen, note, trial)  # fmt: skip


def _clock(device: torch.device) -> float:
    """Seconds for timing a way of computing: on a GPU, wall time once its queue has run; on a
    CPU, this process's CPU time, which other work on a shared machine does not inflate (wall
    time there made auto pick the slower way when the load changed between two timings)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.process_time()


def _one_copy_seconds(
    forward: Callable[..., Any],
    params: dict[str, Tensor],
    buffers: dict[str, Tensor],
    x: Tensor,
    y: Tensor,
) -> float:
    """Seconds of one copy's gradient computed alone (the loop's cost per copy): the best of
    two timed runs after one to warm up, on copy 0, leaving the random state as it was (a
    dropout mask drawn here must not change training's) and nothing else changed."""
    device = x.device
    one = _looped(forward)
    first = ({n: p[:1] for n, p in params.items()}, {n: b[:1] for n, b in buffers.items()})
    times = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for _ in range(3):
            began = _clock(device)
            one(*first, x, y)
            times.append(_clock(device) - began)
    return min(times[1:])


class _Steps:
    """Each copy's step count per parameter, as ``torch.optim`` keeps a ``step`` per parameter
    and creates its state at the parameter's first gradient: a parameter without a gradient at
    a step (a gate, a branch taken on some steps) takes no step. While every parameter has had
    its gradient at every step, one number serves them all (the rules' cheap path)."""

    def __init__(self, copies: Copies) -> None:
        first = next(iter(copies.params.values()))
        self.sizes = torch.tensor([p[0].numel() for p in copies.params.values()],
                                  device=first.device)  # fmt: skip
        self.counts = torch.zeros(copies.size, len(self.sizes), dtype=torch.long,
                                  device=first.device)  # fmt: skip
        self.uniform = True

    def take(self, used: Tensor, t: int) -> tuple[Tensor, Tensor | None]:
        """This step's count for the rule (0-dim, or ``(K, N)`` per element), and the ``(K, N)``
        elements it must leave as they were (None: none)."""
        self.counts += used
        self.uniform = self.uniform and bool(used.all())
        if self.uniform:
            return torch.tensor(t), None
        skip = (~used).repeat_interleave(self.sizes, dim=1)
        return self.counts.repeat_interleave(self.sizes, dim=1), skip


def _keep(ok: Tensor, new: Tensor, old: Tensor) -> Tensor:
    return torch.where(ok.reshape(-1, *[1] * (new.dim() - 1)), new, old)
