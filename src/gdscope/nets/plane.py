"""Loss landscapes of any ``nn.Module`` on a plane (or a line) through its parameter space.

The value at ``(x, y)`` is the model's mean loss (and accuracy, for classification) over the
data with parameters ``centre + x·dx + y·dy``, in eval mode (BatchNorm uses its running
statistics, dropout is off). Grid points are evaluated in chunks: ``torch.func.functional_call``
under ``torch.vmap`` runs a whole chunk of parameter vectors through each batch at once. Finished
chunks can be saved as they complete and a later run resumes from them; chunks can also be
spread over Ray workers (``gdscope.nets.distributed``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import numpy as np
import torch
from torch import Tensor, nn

from gdscope import interrupts
from gdscope.devices import resolve_device
from gdscope.engines.runner import (
    LOOP_CHUNK,
    PLAN_STEPS,
    TRIAL_BUDGET,
    Decision,
    LoopFormat,
    Results,
    choose_strategy,
    evaluate_many,
    memory_chunk,
    run_chunks,
    section,
    spans,
)
from gdscope.engines.stacked import METHODS
from gdscope.engines.stacked import Method as StackedMethod
from gdscope.errors import GdscopeError, one_of
from gdscope.files import fingerprint
from gdscope.modules import MEMORY_FRACTION, ParamLayout, activation_bytes, is_classification

__all__ = [
    "Backend",
    "Batches",
    "Chunk",
    "ChunkWork",
    "EvaluationOptions",
    "LocalBackend",
    "MemoryFormat",
    "Method",
    "ModelSurface",
    "PlanMethod",
    "Strategy",
    "auto_chunk",
    "channels_last",
    "evaluate_plane",
    "evaluate_plane_loop",
    "evaluate_vectors",
    "materialize",
]

Batches = list[tuple[Tensor, Tensor]]
LossFn = Callable[[Tensor, Tensor], Tensor]
Strategy = StackedMethod
"""How to evaluate a grid: ``auto`` (timed, see ``choose_strategy``) or one of the ``Method``:
the stacked engine's three ways, one list for both (``engines.stacked.METHODS``)."""
Method = Literal["vmap", "loop"]
"""How chunks are evaluated: ``evaluate_vectors`` or ``evaluate_plane_loop``."""
MemoryFormat = Literal["auto", "contiguous", "channels_last"]
PlanMethod = str
"""A way of evaluating: a name of ``runner.PLAN_STEPS`` (the method and, after a slash, a
layout other than contiguous)."""
PlanStep = tuple[PlanMethod, int]
Chunk = int | Literal["auto"]
"""Grid points evaluated together, or ``auto`` (see ``auto_chunk``)."""
Store = Callable[[np.ndarray, Tensor, Tensor | None], None]
"""Keeps a chunk's results: ``store(flat grid indices, loss, accuracy or None)``."""

STRATEGIES: tuple[Strategy, ...] = METHODS
MEMORY_FORMATS: tuple[MemoryFormat, ...] = get_args(MemoryFormat)
PLAN_METHODS: tuple[PlanMethod, ...] = tuple(PLAN_STEPS)


def materialize(
    data: Any, device: torch.device | str | None = None, *, what: str = "the data"
) -> Batches:
    """The data as a list of ``(inputs, targets)`` batches on ``device``: from a ``DataLoader``
    (or any iterable of pairs), a map-style ``Dataset`` of samples (batched by 256), or one
    ``(inputs, targets)`` pair. Evaluating a grid passes over the data many times, so it is
    loaded once. A batch without samples is left out (it adds nothing to a mean over samples);
    data without any is refused, as ``what`` in the message."""
    from torch.utils.data import DataLoader, Dataset, IterableDataset

    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Tensor):
        pairs: Iterable[Any] = [data]
    elif isinstance(data, Dataset) and not isinstance(data, IterableDataset):
        pairs = DataLoader(data, batch_size=256)  # samples, not batches: batch them in order
    else:
        pairs = data
    batches: Batches = []
    if isinstance(data, nn.Module) or not isinstance(pairs, Iterable):
        raise GdscopeError(f"{what} must be a DataLoader or Dataset, got {type(data).__name__}")
    for item in pairs:
        if not (isinstance(item, (tuple, list)) and len(item) >= 2):
            raise GdscopeError(
                f"{what} must yield (inputs, targets) pairs, got {type(item).__name__}"
            )
        if len(item[1]):  # (and so auto's sliver, from the first batch, has samples)
            batches.append((item[0].to(device), item[1].to(device)))
    if not batches:
        raise GdscopeError(f"{what} has no batches")
    return batches


def evaluate_vectors(
    model: nn.Module,
    batches: Batches,
    loss_fn: LossFn,
    vectors: Tensor,
    *,
    layout: ParamLayout | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Mean loss ``(C,)`` and accuracy ``(C,)`` (None if not a classification) of the model
    with each row of ``vectors`` ``(C, N)`` as its parameters, in one vmapped pass per batch
    (``runner.evaluate_many``, which the network studies' copies go through too).

    Like the reference implementation's ``eval_loss``, the mean is over samples: each batch's
    mean loss is weighted by its size. Accuracy is the fraction of argmax hits.
    """
    layout = layout or ParamLayout.of(model)
    # Everything the vector does not cover (frozen parameters, buffers) stays the model's own.
    return evaluate_many(model, layout.unflatten(vectors), batches, loss_fn, method="vmap")


def evaluate_plane_loop(
    model: nn.Module,
    batches: Batches,
    loss_fn: LossFn,
    vectors: Tensor,
    *,
    layout: ParamLayout | None = None,
) -> tuple[Tensor, Tensor | None]:
    """The reference implementation's method: for each point, load the weights into the model
    and evaluate it batch by batch. The model's own parameters are restored afterwards."""
    layout = layout or ParamLayout.of(model)
    params = layout.targets(model)
    original = {n: params[n].detach().clone() for n in layout.names}
    losses, accuracies, classify = [], [], None
    try:
        with torch.no_grad():
            for vector in vectors:
                for name, value in layout.unflatten(vector).items():
                    params[name].copy_(value)
                total = correct = 0.0
                seen = 0
                for inputs, targets in batches:
                    outputs = model(inputs)
                    total += float(loss_fn(outputs, targets)) * len(targets)
                    if classify is None:
                        classify = is_classification(outputs, targets)
                    if classify:
                        correct += float((outputs.argmax(-1) == targets).sum())
                    seen += len(targets)
                losses.append(total / seen)
                accuracies.append(correct / seen)
    finally:
        with torch.no_grad():
            for name, value in original.items():
                params[name].copy_(value)
    loss = torch.tensor(losses, dtype=torch.float64)
    return loss, (torch.tensor(accuracies, dtype=torch.float64) if classify else None)


@dataclass(frozen=True, eq=False)
class ModelSurface:
    """``loss[j, i]`` (and ``accuracy``) at ``centre + xs[i]·dx + ys[j]·dy``: rows are ``y``.
    A line (1-D) has ``ys == [0]`` and ``dy`` None. Arrays are NumPy, on the CPU."""

    xs: np.ndarray
    ys: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray | None
    centre: Tensor
    dx: Tensor
    dy: Tensor | None
    layout: ParamLayout
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_line(self) -> bool:
        return self.dy is None

    def point(self, x: float, y: float = 0.0) -> Tensor:
        """The parameter vector at plane coordinates ``(x, y)``."""
        vector = self.centre + x * self.dx
        return vector if self.dy is None else vector + y * self.dy


SIZING_SAMPLES = 64
"""The samples ``auto_chunk`` measures activations on (a forward pass of a whole batch took
longer than auto's trials)."""


def auto_chunk(
    model: nn.Module, batches: Batches, layout: ParamLayout, *, fraction: float = MEMORY_FRACTION
) -> int:
    """Grid points per vmapped chunk so that one chunk uses about ``fraction`` of the free
    memory. Without autograd only a few activations are alive at a time, so a point costs its
    parameter vector plus 4× the largest single activation of the largest batch (a layer's input
    and output, a residual branch, vmap's temporaries), measured with forward hooks on one plain
    forward pass (of the largest batch's first ``SIZING_SAMPLES``, scaled to the whole batch:
    activations grow with the samples). Between 1 and 1024."""
    inputs = max(batches, key=lambda b: len(b[0]))[0]
    probe = inputs[:SIZING_SAMPLES]
    largest = max(activation_bytes(model, probe), default=0) * len(inputs) / len(probe)
    per_point = int(4 * largest) + 4 * layout.size
    return memory_chunk(per_point, inputs.device, limit=1024, fraction=fraction)


def _plan_method(method: Method, form: LoopFormat) -> PlanMethod:
    """The plan's name for evaluating by ``method`` in layout ``form`` (see ``PLAN_STEPS``)."""
    return next(name for name, step in PLAN_STEPS.items() if step == (method, form))


@contextmanager
def channels_last(model: nn.Module) -> Iterator[None]:
    """``model``'s 4-D parameters and buffers in channels-last layout for a while (same values;
    oneDNN's convolutions are faster that way), then as they were."""
    was = any(p.dim() == 4 and not p.is_contiguous()
              and p.is_contiguous(memory_format=torch.channels_last)
              for p in model.parameters())  # fmt: skip
    to: Callable[..., nn.Module] = model.to  # torch's stubs lack Module.to(memory_format=...)
    to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        to(memory_format=torch.channels_last if was else torch.contiguous_format)


class ModelData:
    """A model (in eval mode, on its device) and the batches it is evaluated on. The
    channels-last copy of the batches is made once, on first use: auto's trials and the chunks
    after them share it."""

    def __init__(self, model: nn.Module, batches: Batches) -> None:
        self.model = model
        self.batches = batches
        self._channels_last: Batches | None = None

    @contextmanager
    def laid_out(self, form: LoopFormat) -> Iterator[Batches]:
        """The model in memory layout ``form`` for a while, and the batches to feed it."""
        if form == "contiguous":
            yield self.batches
            return
        if self._channels_last is None:
            self._channels_last = [(x.contiguous(memory_format=torch.channels_last), y)
                                   for x, y in self.batches]  # fmt: skip
        with channels_last(self.model):
            yield self._channels_last


@dataclass(frozen=True, eq=False)
class PlaneGrid:
    """The points of a landscape: ``centre + x·dx + y·dy`` for ``(x, y)`` in ``ys × xs``, on
    the evaluation's device. Points are numbered row by row (rows are ``y``), as in
    ``ModelSurface.loss.ravel()``."""

    centre: Tensor
    dx: Tensor
    dy: Tensor | None
    xs: np.ndarray
    ys: np.ndarray

    @classmethod
    def of(
        cls,
        layout: ParamLayout,
        *,
        centre: Tensor,
        dx: Tensor,
        dy: Tensor | None,
        xs: Sequence[float] | np.ndarray,
        ys: Sequence[float] | np.ndarray,
        device: torch.device,
    ) -> PlaneGrid:
        """The grid, checked against the model's ``layout`` (a line has ``dy`` None and
        ``ys == [0]``); float32 vectors on ``device``."""
        centre = centre.to(device, torch.float32)
        dx = dx.to(device, torch.float32)
        dy = dy.to(device, torch.float32) if dy is not None else None
        for name, vector in (("centre", centre), ("dx", dx), ("dy", dy)):
            if vector is not None and vector.shape != (layout.size,):
                raise GdscopeError(f"{name} has {vector.numel()} entries, the model {layout.size}")
        xs_a = np.asarray(xs, dtype=np.float64)
        ys_a = np.asarray(ys if dy is not None else (0.0,), dtype=np.float64)
        if xs_a.ndim != 1 or ys_a.ndim != 1 or not len(xs_a) or not np.isfinite(xs_a).all():
            raise GdscopeError("grid coordinates must be finite 1-D sequences")
        return cls(centre, dx, dy, xs_a, ys_a)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.ys), len(self.xs)

    def fingerprint(self) -> str:
        """Identifies the computation in a resume file: the centre, directions and grid."""
        dy = self.dy if self.dy is not None else torch.zeros(1)
        return fingerprint(self.centre, self.dx, dy, self.xs, self.ys)

    def vectors(self, indices: np.ndarray) -> Tensor:
        """The parameter vectors ``(len(indices), N)`` of the points numbered ``indices``."""
        coords = np.stack([self.xs[indices % len(self.xs)], self.ys[indices // len(self.xs)]], -1)
        c = torch.tensor(coords, dtype=torch.float32, device=self.centre.device)
        out = self.centre[None] + c[:, :1] * self.dx[None]
        return out + c[:, 1:] * self.dy[None] if self.dy is not None else out


class ChunkResults:
    """The grid's loss and accuracy, filled in as chunks finish (``runner.Results``: one row
    per point, saved in the grid's shape). With ``resume``, what is done is read from that file
    first and saved to it after every chunk; ``progress(done, total)`` is called after every
    chunk."""

    def __init__(
        self,
        grid: PlaneGrid,
        *,
        resume: str | os.PathLike[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        total = math.prod(grid.shape)
        blank = {"loss": np.full(total, np.nan), "accuracy": np.full(total, np.nan)}
        self.results = Results(
            total, columns=blank, resume=Path(resume) if resume is not None else None,
            key=grid.fingerprint(), differs="model, directions or grid differ",
            shape=grid.shape, done="done", progress=progress,
        )  # fmt: skip
        self.shape = grid.shape

    @property
    def done(self) -> np.ndarray:
        return self.results.done.reshape(self.shape)

    def todo(self) -> np.ndarray:
        """The numbers of the points not done yet, in order."""
        return self.results.todo()

    def store(self, indices: np.ndarray, loss: Tensor, accuracy: Tensor | None) -> None:
        values = {"loss": loss.cpu().numpy()}
        if accuracy is not None:
            values["accuracy"] = accuracy.cpu().numpy()
        self.results.put(indices, values)
        self.results.finish(indices)

    def surface(self, grid: PlaneGrid, layout: ParamLayout, meta: dict[str, Any]) -> ModelSurface:
        loss = self.results.columns["loss"].reshape(self.shape)
        accuracy = self.results.columns["accuracy"].reshape(self.shape)
        kept = accuracy if np.isfinite(accuracy).any() else None
        dy = grid.dy.cpu() if grid.dy is not None else None
        return ModelSurface(grid.xs, grid.ys, loss, kept, grid.centre.cpu(), grid.dx.cpu(), dy,
                            layout, meta)  # fmt: skip


EVALUATORS: dict[Method, Callable[..., tuple[Tensor, Tensor | None]]] = {
    "vmap": evaluate_vectors,
    "loop": evaluate_plane_loop,
}


@dataclass(frozen=True, eq=False)
class ChunkWork:
    """What a backend needs to evaluate chunks of a grid: the model and its data, the loss, the
    parameter layout, the grid, and how (``method``, in layout ``memory_format``)."""

    data: ModelData
    loss_fn: LossFn
    layout: ParamLayout
    grid: PlaneGrid
    method: Method = "loop"
    memory_format: LoopFormat = "contiguous"

    def evaluate(self, batches: Batches, indices: np.ndarray) -> tuple[Tensor, Tensor | None]:
        """Loss and accuracy (or None) of the points numbered ``indices``."""
        evaluate = EVALUATORS[self.method]
        vectors = self.grid.vectors(indices)
        return evaluate(self.data.model, batches, self.loss_fn, vectors, layout=self.layout)


class Backend(Protocol):
    """Evaluates chunks of a grid and hands each chunk's results to ``store`` (in any order:
    results are placed by their indices). ``LocalBackend`` runs them here, one after the other;
    ``gdscope.nets.distributed.RayBackend`` on Ray workers."""

    def run(self, work: ChunkWork, chunks: Sequence[np.ndarray], store: Store) -> None: ...


class LocalBackend:
    """The chunks evaluated in this process, in order, in the work's memory layout (changed once
    for all of them: changing it per chunk cost ~20%)."""

    def run(self, work: ChunkWork, chunks: Sequence[np.ndarray], store: Store) -> None:
        with work.data.laid_out(work.memory_format) as batches, section(keep_on_interrupt=False):
            # Ctrl-C: the points done so far are kept (runner.run_chunks stops between chunks)
            run_chunks(chunks, lambda indices, result: store(indices, *result),
                       compute=lambda indices: work.evaluate(batches, indices))  # fmt: skip


TRIAL_POINTS = 64
"""What auto's trials cost, in the loop's points, at most about: the loop's 1 + 4 in each
layout (10), and vmap's 1 + 1 + 4 (+ 16 …) points, each up to ``runner.HOPELESS`` times a loop
point (12 to 44 and more). The sliver is sized so that this many points cost
``runner.TRIAL_BUDGET`` of the grid's time."""
TRIAL_SAMPLES = 32
"""The fewest samples auto times on (unless the first batch has fewer): on a handful, the fixed
costs of each call would decide."""


def first_samples(batches: Batches, samples: int | None) -> Batches:
    """The first ``samples`` samples of ``batches`` (a fixed subset, in its batches), or all."""
    if samples is None:
        return batches
    kept, left = [], samples
    for inputs, targets in batches:
        if left <= 0:
            break
        kept.append((inputs[:left], targets[:left]))
        left -= len(targets)
    return kept


def _samples(batches: Batches) -> int:
    return sum(len(targets) for _, targets in batches)


def sliver(batches: Batches, points: int) -> Batches:
    """The data auto times the ways on for a grid of ``points``: the first samples of the first
    batch, as many as lets ``TRIAL_POINTS`` points cost ``runner.TRIAL_BUDGET`` of evaluating
    the grid (at least ``TRIAL_SAMPLES``, at most the batch). Every way's cost grows with the
    samples alike, so the ways' ratio on the sliver is the grid's; the more samples, the less
    the fixed costs of each call (which favour vmap) weigh."""
    inputs, targets = batches[0]
    wanted = math.ceil(TRIAL_BUDGET * points * _samples(batches) / TRIAL_POINTS)
    count = min(len(targets), max(TRIAL_SAMPLES, wanted))
    return [(inputs[:count], targets[:count])]


class Timing:
    """auto's trials (``runner.choose_strategy``'s ``run``): the grid's first points evaluated
    by a given way on a sliver of the data (``sliver``), thrown away; the seconds per point. No
    point of the grid is computed by a trial, so every point is computed by the chosen way
    (a replay needs only that way, its chunk and layout)."""

    def __init__(self, work: ChunkWork, todo: np.ndarray) -> None:
        cut = sliver(work.data.batches, len(todo))
        self.work = replace(work, data=ModelData(work.data.model, cut))
        self.todo = todo
        self.samples = _samples(cut)
        self.scale = _samples(work.data.batches) / self.samples
        """How many times the sliver's samples the data has."""

    def __call__(self, method: PlanMethod, count: int) -> float | None:
        """Seconds per point of ``count`` points by ``method`` on the sliver; None once Ctrl-C
        came (or when no point is left to do: nothing to choose for)."""
        if not len(self.todo) or interrupts.requested():
            return None
        indices = np.resize(self.todo, count)  # the first points (again, on a smaller grid)
        name, form = PLAN_STEPS[method]
        work = replace(self.work, method=name, memory_format=form)
        with work.data.laid_out(form) as batches:
            began = time.perf_counter()
            loss, _ = work.evaluate(batches, indices)
            loss.cpu()  # (waits for a GPU's queue)
            return (time.perf_counter() - began) / count


class Replay:
    """The first points evaluated by the ways a plan names, a few at a time, and kept: how
    figures made before auto timed on a sliver (when its trials' points were results) are made
    again point for point. ``plan`` records which way did how many."""

    def __init__(self, work: ChunkWork, todo: np.ndarray, store: Store) -> None:
        self.work, self.todo, self.store = work, todo, store
        self.taken = 0
        self.plan: list[list[Any]] = []

    def __call__(self, method: PlanMethod, count: int) -> None:
        """Evaluate and keep the next ``count`` points by ``method`` (fewer if fewer are left;
        none once Ctrl-C came)."""
        indices = self.todo[self.taken : self.taken + count]
        if not len(indices) or interrupts.requested():
            return
        name, form = PLAN_STEPS[method]
        stored: list[np.ndarray] = []

        def keep(done: np.ndarray, loss: Tensor, accuracy: Tensor | None) -> None:
            self.store(done, loss, accuracy)
            stored.append(done)

        LocalBackend().run(replace(self.work, method=name, memory_format=form), [indices], keep)
        if stored:  # (Ctrl-C before they were evaluated: they are still to do)
            self.taken += len(indices)
            self.plan.append([method, len(indices)])

    def rest(self) -> np.ndarray:
        """The points the plan left to do."""
        return self.todo[self.taken :]


@dataclass(frozen=True)
class EvaluationOptions:
    """How a grid is evaluated (see ``evaluate_plane``), checked when made. ``plan`` is kept as
    a tuple of ``(method, count)`` steps."""

    strategy: Strategy = "auto"
    chunk: Chunk = "auto"
    device: torch.device | str | None = None
    memory_format: MemoryFormat = "auto"
    plan: Sequence[PlanStep] = ()
    backend: Backend | None = None
    resume: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        one_of("strategy", self.strategy, STRATEGIES)
        one_of("memory_format", self.memory_format, MEMORY_FORMATS)
        if self.memory_format == "channels_last" and (
            self.strategy == "vmap" or self.backend is not None
        ):
            raise GdscopeError("the channels-last layout is for the loop run here; vmap and "
                               "backends take 'contiguous'")  # fmt: skip
        plan = tuple((str(name), count) for name, count in self.plan)
        for name, count in plan:
            if name not in PLAN_METHODS or isinstance(count, bool) or not isinstance(count, int) \
                    or count < 1:  # fmt: skip
                raise GdscopeError(f"a plan step is (one of {', '.join(PLAN_METHODS)}, a "
                                   f"positive count), got ({name!r}, {count!r})")  # fmt: skip
        object.__setattr__(self, "plan", plan)
        if plan and (self.strategy == "auto" or self.backend is not None):
            raise GdscopeError("a plan repeats auto's trials: give the strategy they led to, "
                               "and no backend")  # fmt: skip
        chunk = self.chunk
        if chunk != "auto" and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
            raise GdscopeError(f"chunk must be a positive integer or 'auto', got {chunk!r}")


def _timed_formats(options: EvaluationOptions, batches: Batches) -> tuple[LoopFormat, ...]:
    """The loop's layouts auto times: both for images unless one is asked for."""
    if options.memory_format != "auto":
        return (options.memory_format,)
    images = all(inputs.dim() == 4 for inputs, _ in batches)
    return ("contiguous", "channels_last") if images else ("contiguous",)


def decide(
    options: EvaluationOptions, work: ChunkWork, todo: np.ndarray, device: torch.device
) -> Decision:
    """The method, chunk and layout for evaluating the points ``todo`` of ``work`` as
    ``options`` ask, as a ``runner.Decision``: ``auto`` run here times the ways on a sliver of
    the data (``runner.choose_strategy``, through ``Timing``); ``auto`` with a backend, whose
    workers may differ, takes vmap on CUDA and the loop on the CPU. Chunks are sized for the
    whole data (``auto_chunk``)."""
    model, batches, layout = work.data.model, work.data.batches, work.layout
    if options.strategy == "auto" and options.backend is None:
        chunk = options.chunk
        limit = auto_chunk(model, batches, layout) if chunk == "auto" else chunk
        loops = [_plan_method("loop", form) for form in _timed_formats(options, batches)]
        timing = Timing(work, todo)
        chosen = choose_strategy(timing, limit=max(1, min(limit, len(todo))), loops=loops,
                                 work=len(todo) * timing.scale)  # fmt: skip
        return replace(chosen, trial_samples=timing.samples)
    method: Method = "vmap" if device.type == "cuda" else "loop"
    if options.strategy != "auto":
        method = options.strategy
    chunk = options.chunk
    if chunk == "auto":
        chunk = auto_chunk(model, batches, layout) if method == "vmap" else LOOP_CHUNK
    # vmap (and a backend) always run contiguous: a chosen layout is only ever the loop's.
    form: LoopFormat = "contiguous"
    if options.memory_format != "auto":
        form = options.memory_format
    return Decision(method, chunk, form)


def _meta(device: torch.device, points: int, decision: Decision, plan: list[list[Any]]
          ) -> dict[str, Any]:  # fmt: skip
    """The surface's ``meta`` (its keys in this order, as saved files have them)."""
    meta: dict[str, Any] = {"device": str(device), "points": points}
    if decision.trials is not None:
        meta["trials"] = [list(t) for t in decision.trials]
        if decision.trial_samples is not None:  # (the seconds are on so many samples)
            meta["trial_samples"] = decision.trial_samples
        if decision.failure is not None:
            meta["vmap_failure"] = decision.failure
    meta["plan"] = plan
    meta.update(chunk=decision.chunk, strategy=decision.method,
                memory_format=decision.memory_format)  # fmt: skip
    return meta


def evaluate_plane(
    model: nn.Module,
    data: Any,
    loss_fn: LossFn,
    *,
    dx: Tensor,
    dy: Tensor | None = None,
    xs: Sequence[float] | np.ndarray,
    ys: Sequence[float] | np.ndarray = (0.0,),
    centre: Tensor | None = None,
    states: bool = False,
    progress: Callable[[int, int], None] | None = None,
    options: EvaluationOptions | None = None,
    **evaluation: Any,
) -> ModelSurface:
    """The landscape on the ``ys × xs`` grid (see ``ModelSurface``); ``centre`` defaults to the
    model's own parameters. ``states``: the vectors also cover the floating-point buffers
    (directions made with ``states=True``). ``progress(done, total)`` is called after every
    chunk. How it is evaluated: ``options``, or its fields as keywords (they override it):

    ``chunk`` grid points go through the model together (memory grows with it); ``"auto"``
    sizes them to a quarter of the free memory (``auto_chunk``). With ``resume``, finished
    chunks are saved to that file as they complete, and points already there are not computed
    again. ``backend`` (e.g. ``gdscope.nets.distributed.RayBackend``) evaluates chunks
    elsewhere. ``strategy``: ``"vmap"`` runs a chunk of points through each batch at once
    (``evaluate_vectors``); ``"loop"`` loads one point at a time into the model
    (``evaluate_plane_loop``, the reference implementation's way); ``"auto"`` times both on a
    sliver of the data (``sliver``, ``Timing``) and evaluates every point with the faster
    (``decide``). ``memory_format``: the loop's layout of image tensors, ``"contiguous"`` or
    ``"channels_last"``; ``"auto"`` lets ``"auto"`` time both (an explicit strategy stays
    contiguous). The chosen strategy, chunk and layout and the trials are in ``meta``; passing
    the first three back makes the same computation again, point for point (what ``gdscope
    replay`` does). ``plan`` (``(method, count)`` steps) repeats how an older version's auto
    evaluated the first points, whose trials were results; ``meta["plan"]`` says which steps
    ran (none, for a figure made now)."""
    options = replace(options or EvaluationOptions(), **evaluation)
    device = resolve_device(options.device)
    layout = ParamLayout.of(model, states=states)
    model = model.to(device).eval()
    centre = layout.vector(model) if centre is None else centre
    grid = PlaneGrid.of(layout, centre=centre, dx=dx, dy=dy, xs=xs, ys=ys, device=device)
    work = ChunkWork(ModelData(model, materialize(data, device)), loss_fn, layout, grid)
    results = ChunkResults(grid, resume=options.resume, progress=progress)
    replay = Replay(work, results.todo(), results.store)
    # Polled throughout, not only inside each chunk: a Ctrl-C during auto's trials must stop
    # the run with the points evaluated so far, not raise past them.
    with section(keep_on_interrupt=False):
        for method, count in options.plan:  # an old record's: its trials' points were results
            replay(method, count)
        decision = decide(options, work, replay.rest(), device)
        chunks = spans(replay.rest(), decision.chunk)
        chosen = replace(work, method=decision.method, memory_format=decision.memory_format)
        (options.backend or LocalBackend()).run(chosen, chunks, results.store)
    meta = _meta(device, results.done.size, decision, replay.plan)
    if not results.done.all():  # stopped by Ctrl-C: the rest of the grid is NaN
        meta["unfinished"] = int((~results.done).sum())
    return results.surface(grid, layout, meta)
