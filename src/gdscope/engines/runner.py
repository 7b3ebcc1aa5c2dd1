"""One runner for "many at once": the grid of a sweep or phase diagram, the copies of a network
study, the points of a landscape plane all run through it.

It owns what those share: chunks sized from measured memory (``memory_chunk``) or grown from
small (``GrowingChunks``), the loop over chunks here or as Ray tasks (``run_chunks``), Ctrl-C
(``stopping``, ``section``: ``gdscope.interrupts``), progress and resume files (``Results``),
the choice between vmap and a loop returned as data (``Decision``, ``choose_strategy``), and
the one vmapped evaluator of many parameter sets of one module (``evaluate_many``). What a
chunk computes is the caller's: the batched engine, ``engines.stacked``, a plane's points.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from gdscope import interrupts, modules
from gdscope.errors import GdscopeError
from gdscope.files import load_progress, save_progress
from gdscope.modules import MEMORY_FRACTION, is_classification
from gdscope.raypool import RayPool

__all__ = [
    "FIRST_CHUNK",
    "HOPELESS",
    "LOOP_CHUNK",
    "PLAN_STEPS",
    "TIMED_POINTS",
    "TRIAL_BUDGET",
    "UNPOLLED_SECONDS",
    "Decision",
    "GrowingChunks",
    "LoopFormat",
    "Remote",
    "Results",
    "Trial",
    "Way",
    "choose_strategy",
    "evaluate_many",
    "memory_chunk",
    "run_chunks",
    "section",
    "stopping",
    "vmap_per_item",
]

R = TypeVar("R")

FIRST_CHUNK = 16
"""Configurations in a grid's first chunk: one finishes quickly, so progress has a rate."""
UNPOLLED_SECONDS = 0.25
"""How long a chunk may run in an engine that cannot check for Ctrl-C (the native kernel)."""
LOOP_CHUNK = 16
"""Points per chunk for a loop (one at a time anyway: only how often results are saved)."""
TIMED_POINTS = 4
"""Items the loop is timed on when ``auto`` chooses (after one untimed item)."""
HOPELESS = 2.0
"""How many times the loop's time per item vmap's predicted time may be and still be timed on
a larger chunk: beyond it (a CNN's grouped convolutions on a CPU) the loop is kept. A sliver
of the data flatters vmap (the loop's fixed cost per call weighs more on it): the small CNN of
``benchmarks/bench_model_landscape.py`` vmapped 1.5 to 3.5 times the loop's time per point on
57 samples, 7.7 times on all 1,000; at 4 its trials went on to a chunk of 16 (53 ms, 4% of
that plane)."""
TRIAL_BUDGET = 0.03
"""The share of the loop's time for the whole work that auto's vmap trials may spend: a larger
chunk is timed only while it fits."""

Way = Literal["vmap", "loop"]
"""How many are evaluated: all through each batch at once (vmap), or one after the other."""
LoopFormat = Literal["contiguous", "channels_last"]
"""The layout of image tensors an evaluation runs in (``channels_last``: a landscape's loop)."""
Trial = tuple[str, int, float]
"""One timed trial: the way (a ``PLAN_STEPS`` name), how many points, seconds per point (NaN:
it failed)."""

PLAN_STEPS: dict[str, tuple[Way, LoopFormat]] = {
    "loop": ("loop", "contiguous"),
    "loop/channels_last": ("loop", "channels_last"),
    "vmap": ("vmap", "contiguous"),
}
"""The ways a chunk can be evaluated: the method and, after a slash, a memory layout of image
tensors other than contiguous (the loop's only)."""


@dataclass(frozen=True)
class Decision:
    """How the work goes on: ``method`` (``vmap`` or ``loop``), ``chunk`` (items evaluated
    together), the loop's ``memory_format``, the timed ``trials`` that decided it (None: not
    timed: the method was given, or workers elsewhere run it), why vmap could not run, if it
    could not (``failure``), and how many samples of the data the trials ran on, where they ran
    on a sliver of it (``trial_samples``: a plane's, see ``nets.plane.sliver``)."""

    method: Way
    chunk: int
    memory_format: LoopFormat = "contiguous"
    trials: tuple[Trial, ...] | None = None
    failure: str | None = None
    trial_samples: int | None = None


# Chunk sizes ---------------------------------------------------------------------------------


def memory_chunk(
    one: int,
    device: torch.device,
    *,
    limit: int,
    fraction: float = MEMORY_FRACTION,
    refuse: str | None = None,
) -> int:
    """Items per chunk so that a chunk of items of ``one`` bytes each uses about ``fraction``
    of ``device``'s free memory (``modules.free_memory``), between 1 and ``limit``. With
    ``refuse`` (a message with ``{need}`` and ``{free}`` in MiB), one item that does not fit
    the free memory is refused in one line."""
    free = modules.free_memory(device)
    if refuse is not None and one > free:
        raise GdscopeError(refuse.format(need=f"{one / 2**20:.0f}", free=f"{free / 2**20:.0f}"))
    return int(max(1, min(limit, fraction * free // max(one, 1))))


class GrowingChunks:
    """Chunk sizes that grow from ``FIRST_CHUNK`` (at most 4× a chunk) towards ``limit``. An
    engine that checks for Ctrl-C every step just grows them (a step over many configurations
    costs little more than over few); one that cannot (the native kernel) is kept to
    ``UNPOLLED_SECONDS`` by the time the last chunk took."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise GdscopeError(f"chunk must be >= 1, got {limit}")
        self.limit = limit
        self.next = min(FIRST_CHUNK, limit)

    def took(self, size: int, seconds: float, *, polled: bool) -> None:
        fits = 4 * size if polled else int(size * UNPOLLED_SECONDS / max(seconds, 1e-6))
        self.next = max(1, min(self.limit, 4 * size, fits))

    def over(self, todo: np.ndarray) -> Iterator[np.ndarray]:
        """The items ``todo`` in chunks of the size current when each is taken."""
        begin = 0
        while begin < len(todo):
            chunk = todo[begin : begin + self.next]
            begin += len(chunk)  # before yielding: the size may change while it runs
            yield chunk


def spans(todo: np.ndarray, size: int) -> list[np.ndarray]:
    """``todo`` in chunks of ``size``, in order."""
    return [todo[i : i + size] for i in range(0, len(todo), size)]


# Ctrl-C, and where chunks run ------------------------------------------------------------------


def stopping(should_stop: Callable[[], bool] | None = None) -> Callable[[], bool]:
    """The question asked between chunks (and steps): Ctrl-C, or the caller's own reason (the
    server: a superseded or abandoned request)."""

    def stop() -> bool:
        return interrupts.requested() or (should_stop is not None and should_stop())

    return stop


@contextmanager
def section(*, keep_on_interrupt: bool = True) -> Iterator[None]:
    """A run's polled section (Ctrl-C sets a request the loops check); with
    ``keep_on_interrupt`` a ``KeyboardInterrupt`` (Ctrl-C where nobody installed
    ``interrupts.handle_sigint``) ends it quietly, keeping what finished."""
    with interrupts.polled():
        try:
            yield
        except KeyboardInterrupt:
            if not keep_on_interrupt:
                raise


@dataclass(frozen=True)
class Remote:
    """Chunks as Ray tasks: ``function(*arguments(chunk))`` on ``pool``'s workers."""

    pool: RayPool
    function: Callable[..., Any]
    arguments: Callable[[np.ndarray], tuple[Any, ...]]


def run_chunks(
    chunks: Iterable[np.ndarray],
    keep: Callable[[np.ndarray, R], None],
    *,
    compute: Callable[[np.ndarray], R | None] | None = None,
    remote: Remote | None = None,
    stop: Callable[[], bool] = interrupts.requested,
) -> None:
    """Each chunk computed here, in order (``compute``; None: it was stopped part-way, and the
    run ends), or as a Ray task (``remote``: results arrive in any order, lost workers' chunks
    are re-run, see ``gdscope.raypool``); every result goes to ``keep(chunk, result)``. Stops
    before the next chunk once ``stop()`` says so; what was kept stays kept."""
    if remote is not None:
        remote.pool.run_tasks(remote.function, list(chunks), remote.arguments, keep, stop=stop)
        return
    if compute is None:
        raise ValueError("run_chunks needs compute or remote")
    for chunk in chunks:
        if stop():
            break
        result = compute(chunk)
        if result is None:
            break
        keep(chunk, result)


# Results, progress and resume files -------------------------------------------------------------


class Results:
    """Named arrays with one row per item (first axis), filled chunk by chunk, and which items
    are done. A column appears when first put (``fill``: its value where not done yet). With
    ``resume`` the file is read first (refused if it belongs to another computation: another
    ``key``) and written again after every chunk; ``tags`` are strings saved beside the
    arrays. ``shape``: how the per-item arrays are laid out in the file (a plane's rows),
    ``done``: the name of the mask there. ``progress(done, total)`` after every chunk."""

    def __init__(
        self,
        total: int,
        *,
        columns: Mapping[str, np.ndarray] | None = None,
        resume: Path | None = None,
        key: str = "",
        differs: str = "",
        shape: tuple[int, ...] | None = None,
        done: str = "completed",
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.total, self.resume, self.key = total, resume, key
        self.shape = shape or (total,)
        self.done_name = done
        self.progress = progress
        self.done = np.zeros(total, dtype=bool)
        self.columns: dict[str, np.ndarray] = dict(columns or {})
        self.tags: dict[str, str] = {}
        if resume is not None:
            shapes = {name: self.shape + c.shape[1:] for name, c in self.columns.items()}
            saved = load_progress(resume, key, differs=differs, shapes=shapes or None)
            if saved is not None:
                self.done = saved.pop(done).reshape(total).astype(bool)
                saved.pop("key", None)
                for name, array in saved.items():
                    if array.dtype.kind in "US" and array.ndim == 0:
                        self.tags[name] = str(array)
                    else:
                        self.columns[name] = array.reshape(total, *array.shape[len(self.shape) :])

    def todo(self) -> np.ndarray:
        """The numbers of the items not done yet, in order."""
        return np.flatnonzero(~self.done)

    def put(self, index: np.ndarray, values: Mapping[str, np.ndarray], *, fill: Any = np.nan
            ) -> None:  # fmt: skip
        """Rows ``index`` of each column; a new column is made of ``fill`` (float64 where the
        fill is NaN, else the values' dtype)."""
        for name, value in values.items():
            value = np.asarray(value)
            column = self.columns.get(name)
            if column is None:
                dtype = np.float64 if isinstance(fill, float) and math.isnan(fill) else value.dtype
                column = np.full((self.total, *value.shape[1:]), fill, dtype=dtype)
                self.columns[name] = column
            column[index] = value

    def finish(self, index: np.ndarray) -> None:
        """Rows ``index`` are complete: mark them, save the resume file (not cut by Ctrl-C),
        report progress."""
        self.done[index] = True
        if self.resume is not None:
            with interrupts.deferred():
                self.save()
        if self.progress is not None:
            self.progress(int(self.done.sum()), self.total)

    def start(self) -> None:
        """Report the progress before the first chunk (what a resume file already held)."""
        if self.progress is not None:
            self.progress(int(self.done.sum()), self.total)

    def save(self) -> None:
        assert self.resume is not None
        shaped = {n: c.reshape(*self.shape, *c.shape[1:]) for n, c in self.columns.items()}
        tags = {name: np.array(text) for name, text in self.tags.items()}
        done = {self.done_name: self.done.reshape(self.shape)}
        save_progress(self.resume, self.key, {**done, **tags, **shaped})


# Which way is faster ------------------------------------------------------------------------------


def choose_strategy(
    run: Callable[[str, int], float | None],
    *,
    limit: int,
    loops: Sequence[str] = ("loop",),
    timed: int = TIMED_POINTS,
    work: float = math.inf,
) -> Decision:
    """The faster way to evaluate the work in chunks of at most ``limit`` items, timed here.

    ``run(way, count)`` evaluates ``count`` items by ``way`` (a ``PLAN_STEPS`` name) on a
    small sample of the work, throws the results away, and returns the seconds per item, or
    None when Ctrl-C came (a plane times its points on a sliver of its data, ``plane.sliver``:
    every way is timed on the same sample, so their ratio is the whole run's, at a small part
    of its cost). Each loop of ``loops`` (layouts of image tensors; the fastest is kept)
    evaluates one item untimed (one-off costs: allocation, oneDNN's kernels for a shape), then
    is timed on ``timed`` items. vmap, after one untimed item, is timed on chunks of 1, 4, 16,
    … (up to ``limit``): its cost is a fixed part per chunk (one pass over the data, whatever
    the chunk) and a part per item, so its time per item over a chunk of ``limit`` is
    predicted from the last two (on a CPU an MLP's vmap pays for itself only over a large
    chunk, a CNN's never, and a small chunk alone tells neither). The chunks grow until the
    prediction beats the loop (vmap takes the work in chunks of ``limit``), or is more than
    ``HOPELESS`` times the loop's time (the loop goes on), or reaches ``limit``, or the next
    chunk (its time per item taken as the last chunk's, or the prediction if higher) would
    take vmap's trials past ``TRIAL_BUDGET`` of the loop's time for the whole ``work`` (its
    size in the sample's items: the loop takes ``work`` times its time per item). A vmap trial
    that raises (a module vmap cannot run) ends the trials: the loop goes on, and
    ``failure`` says why.
    """
    trials: list[Trial] = []
    loop, loop_way = math.inf, loops[0]
    for way in loops:
        if run(way, 1) is None:  # warm-up, untimed
            break
        lap = run(way, timed)
        if lap is None:
            break
        trials.append((way, timed, lap))
        if lap < loop:
            loop, loop_way = lap, way

    def loop_decision(failure: str | None = None) -> Decision:
        return Decision("loop", LOOP_CHUNK, PLAN_STEPS[loop_way][1], tuple(trials), failure)

    if not trials:
        return loop_decision()
    laps: list[tuple[int, float]] = []
    size = 1
    try:
        warm = run("vmap", 1)  # warm-up, untimed (vmap setting itself up)
        if warm is None:
            return loop_decision()
        spent, budget = warm, TRIAL_BUDGET * work * loop
        while True:
            seconds = run("vmap", size)
            if seconds is None:
                break
            laps.append((size, seconds))
            trials.append(("vmap", size, seconds))
            spent += size * seconds
            expected = vmap_per_item(laps[-2:], limit)
            bigger = min(4 * size, limit)
            judged = len(laps) > 1  # one chunk alone cannot tell its fixed cost from the rest
            if (judged and (expected < loop or expected > HOPELESS * loop)) or bigger == size:
                break
            # A larger chunk's cost, taken as no cheaper per item than the last: a CNN's grouped
            # convolutions may cost more per item in a larger chunk, not less.
            if judged and spent + bigger * max(seconds, expected) > budget:
                break  # it would take the trials past their budget
            size = bigger
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as error:
        # vmap cannot run every module (data-dependent control flow, .item(), memory); the
        # loop can, so go on with it, and say why. Errors of the model itself would have
        # shown in the loop's trials first.
        trials.append(("vmap", size, math.nan))
        message = str(error).splitlines()[0] if str(error) else ""
        return loop_decision(f"vmap failed ({type(error).__name__}: {message[:200]})")
    if laps and vmap_per_item(laps[-2:], limit) < loop:
        return Decision("vmap", limit, "contiguous", tuple(trials))
    return loop_decision()


def vmap_per_item(laps: Sequence[tuple[int, float]], chunk: int) -> float:
    """Seconds per item of a vmap over ``chunk`` items, from timed ``(chunk, seconds per
    item)`` laps: a fixed cost per chunk plus a cost per item, fitted through the first and
    last lap (neither negative); one lap alone is taken as it is."""
    (c1, s1), (c2, s2) = laps[0], laps[-1]
    if c1 == c2:
        return s1
    per_item = max(0.0, (c2 * s2 - c1 * s1) / (c2 - c1))
    fixed = max(0.0, c1 * s1 - c1 * per_item)
    return fixed / chunk + per_item


# One evaluator of many parameter sets -------------------------------------------------------------


def evaluate_many(
    model: nn.Module,
    tensors: Mapping[str, Tensor],
    batches: Iterable[tuple[Tensor, Tensor]],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    *,
    method: Way = "vmap",
) -> tuple[Tensor, Tensor | None]:
    """``(C,)`` mean loss of ``model`` with ``C`` sets of its tensors (``tensors``: parameters
    and buffers by name, each with a leading ``C`` axis; what they leave out stays the
    model's own), over ``batches``, in whatever mode ``model`` is in; and the accuracy where
    the outputs are class scores (``modules.is_classification``), else None. ``vmap`` runs
    all ``C`` through each batch at once; ``loop`` one after the other. The mean is over
    samples (each batch's mean weighted by its size, as the reference implementation's
    ``eval_loss``). Inputs go to the tensors' device, floats in their dtype."""
    from torch.func import functional_call

    first = next(iter(tensors.values()))
    size, dtype, device = first.shape[0], first.dtype, first.device
    classify = False

    def one(own: dict[str, Tensor], x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        # The outputs never leave: whatever the model returns (a tuple, a dict, a
        # ModelOutput) only the user's loss unpacks it.
        nonlocal classify
        out = functional_call(model, own, (x,))  # one set's outputs, under vmap too
        classify = is_classification(out, y)
        hits = (out.argmax(-1) == y).sum() if classify else torch.zeros(())
        return loss_fn(out, y), hits

    vmapped = torch.vmap(one, in_dims=(0, None, None)) if method == "vmap" else None
    total = torch.zeros(size, dtype=torch.float64, device=device)
    correct = torch.zeros_like(total)
    seen = 0
    with torch.no_grad():
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            if x.is_floating_point():
                x = x.to(dtype)
            if vmapped is not None:
                losses, hits = vmapped(dict(tensors), x, y)
            else:
                pairs = [one({n: t[k] for n, t in tensors.items()}, x, y) for k in range(size)]
                losses = torch.stack([p[0] for p in pairs])
                hits = torch.stack([p[1] for p in pairs])
            total += losses.double() * len(y)
            correct += hits.double()
            seen += len(y)
    return total / seen, (correct / seen if classify else None)
