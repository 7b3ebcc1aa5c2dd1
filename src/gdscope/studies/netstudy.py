"""Studies of the user's own network: a grid of optimizer settings (a phase diagram, a sweep) or
a fair shoot-out, every cell one copy trained by ``engines.stacked``.

The grid runs in chunks of copies sized to the device's free memory (``auto_chunk``); progress
sees each chunk finish; Ctrl-C keeps the finished chunks; with ``resume`` every finished chunk
is saved as it completes, and a later run with the same settings continues from it.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gdscope import interrupts
from gdscope.devices import resolve_device
from gdscope.engines.runner import (
    Decision,
    Remote,
    Results,
    Way,
    evaluate_many,
    memory_chunk,
    run_chunks,
    section,
    spans,
    stopping,
)
from gdscope.engines.stacked import (
    AUTO_STEPS,
    Copies,
    Init,
    LossFn,
    Method,
    StackedResult,
    stack_copies,
    train_stacked,
)
from gdscope.errors import GdscopeError
from gdscope.files import fingerprint
from gdscope.modules import copy_memory, is_classification, left_as_it_was
from gdscope.optim.rules import TRANSFORMS, make_hyper, torch_kwargs
from gdscope.optim.specs import SchedulerSpec
from gdscope.raypool import RayPool, on_worker
from gdscope.studies.phase import network_growing
from gdscope.studies.shootout import refuse_repeats, tuning_edges
from gdscope.studies.sweep import (
    Axis,
    expand,
    merge_fixed,
    pack_columns,
    unpack_columns,
)
from gdscope.version import __version__

__all__ = [
    "DEFAULT_STEPS",
    "MAX_CHUNK",
    "NetRun",
    "NetShootout",
    "Network",
    "auto_chunk",
    "compare_network",
    "run_network_grid",
]

TIMED_STEPS = AUTO_STEPS
"""Steps of ``auto``'s trial: the engine's, which times vmap against the loop in as many."""
TIMED_COPIES = 256
"""Copies at most in those trials (a loop over 4096 copies would take long to time)."""
DEFAULT_STEPS = 300
"""Mini-batch steps each copy trains unless told otherwise."""
MAX_CHUNK = 4096
"""The most copies trained together."""
Batches = Sequence[tuple[Tensor, Tensor]]


def _check_batches(batches: object, what: str) -> None:
    """Refuse, in one line, data that is not materialized batches (a list of ``(inputs,
    targets)`` tensors): a ``DataLoader`` or one bare ``(X, Y)`` pair would fail deep in
    ``torch.cat``. (``studies`` may not import ``nets``, so it names the function.)"""
    if isinstance(batches, (list, tuple)) and all(
        isinstance(b, (list, tuple)) and len(b) >= 2 and isinstance(b[0], Tensor)
        and isinstance(b[1], Tensor) for b in batches
    ):  # fmt: skip
        return
    pair = isinstance(batches, tuple) and all(isinstance(t, Tensor) for t in batches)
    got = "one (X, Y) pair" if pair else type(batches).__name__
    raise GdscopeError(
        f"{what} must be materialized batches, a list of (inputs, targets) tensors, got {got}: "
        "make them with gdscope.nets.plane.materialize(data), which takes a DataLoader, a "
        "Dataset or one (X, Y) pair"
    )


@dataclass(frozen=True, eq=False)
class Network:
    """The user's model, its training data (all batches joined: the engine draws its own
    seeded mini-batches of ``batch_size``), its loss, its validation batches (or None) and a
    name for titles."""

    model: nn.Module
    x: Tensor
    y: Tensor
    loss_fn: LossFn
    batch_size: int
    val: Batches | None = None
    name: str = "model"

    @classmethod
    def of(
        cls,
        model: Any,
        batches: Batches,
        loss_fn: LossFn,
        *,
        val: Batches | None = None,
        batch_size: int | None = None,
        name: str = "model",
    ) -> Network:
        """From materialized batches (``nets.plane.materialize``); ``batch_size`` defaults to
        the first batch's length (the user's loader's)."""
        if not isinstance(model, nn.Module):
            raise GdscopeError(f"the model must be an nn.Module, got {type(model).__name__}")
        _check_batches(batches, "the data")
        if val is not None:
            _check_batches(val, "the validation data")
        if not batches:
            raise GdscopeError("the data has no batches")
        try:
            x = torch.cat([b[0] for b in batches])
            y = torch.cat([b[1] for b in batches])
        except (RuntimeError, TypeError) as error:
            raise GdscopeError(f"the data's batches do not join: {error}") from None
        if not len(x):
            raise GdscopeError("the data has no samples")
        if val is not None and not sum(len(batch[0]) for batch in val):
            raise GdscopeError("the validation data has no batches")  # its metrics would be NaN
        size = len(batches[0][0]) if batch_size is None else batch_size
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= len(x):
            raise GdscopeError(f"batch size must be 1..{len(x)}, got {size!r}")
        return cls(model, x, y, loss_fn, size, val, name)

    def require_accuracy(self) -> None:
        """Refuse ``val_accuracy`` unless the validation data has class labels for the model's
        class scores (``modules.is_classification``, on one forward of its first
        batch in eval mode): otherwise every cell's accuracy would be missing."""
        if not self.val:
            raise GdscopeError("val_accuracy needs validation data (the network's val)")
        x, y = self.val[0]
        with left_as_it_was(self.model), torch.no_grad():
            out = self.model.eval()(x)
        if not isinstance(out, Tensor) or not is_classification(out, y):
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise GdscopeError(
                f"val_accuracy needs class labels: scores (N, C>1) against integer labels (N,), "
                f"but the model gives {shape} for {y.dtype} targets {tuple(y.shape)}"
            )

    def batches(self) -> list[tuple[Tensor, Tensor]]:
        """The training data in order, ``batch_size`` at a time (for evaluating copies)."""
        step = self.batch_size
        return [(self.x[i : i + step], self.y[i : i + step]) for i in range(0, len(self.x), step)]

    def arrays(self) -> list[Tensor]:
        """The weights, the data, the validation data and the loss's own tensors (a class
        weight): with ``loss_identity`` and the settings, what identifies a resume file."""
        val = [t for batch in self.val or [] for t in batch]
        own = self.loss_fn.state_dict().values() if isinstance(self.loss_fn, nn.Module) else []
        return [*self.model.state_dict().values(), self.x, self.y, *val, *own]

    def loss_identity(self) -> str:
        """The loss's function or class and its plain settings (reduction, label smoothing,
        a partial's arguments, …), so a resume file made with another loss is refused. Never
        a ``repr``: it may hold a memory address, new in every process."""
        return _identity(self.loss_fn)


def _identity(thing: Any) -> str:
    """A callable as its module, qualified name and plain settings (see ``loss_identity``)."""
    plain = (bool, int, float, str, type(None))

    def shown(value: Any) -> str:
        return repr(value) if isinstance(value, plain) else type(value).__qualname__

    if isinstance(thing, functools.partial):
        args = [shown(a) for a in thing.args]
        keywords = {k: shown(v) for k, v in sorted(thing.keywords.items())}
        return f"partial({_identity(thing.func)}, {args}, {keywords})"
    kind = thing if inspect.isfunction(thing) or inspect.isbuiltin(thing) else type(thing)
    name = f"{getattr(kind, '__module__', '')}.{getattr(kind, '__qualname__', type(kind).__name__)}"
    own = getattr(thing, "__dict__", {}) if kind is type(thing) else {}
    settings = {k: shown(v) for k, v in sorted(own.items())
                if not k.startswith("_") and isinstance(v, plain)}  # fmt: skip
    return f"{name}{settings}"


def auto_chunk(
    network: Network, *, device: torch.device, optimizer: str, dtype: torch.dtype | None = None
) -> int:
    """Copies per chunk so that a chunk uses about ``modules.MEMORY_FRACTION`` of the free memory
    (``modules.copy_memory`` measured on one batch, scaled to ``dtype`` when the
    copies train in a wider float than the model's); refused when one copy does not fit."""
    states = len(TRANSFORMS[optimizer].init(torch.zeros(1, 1), _defaults(optimizer)))
    one = copy_memory(network.model, network.x[: network.batch_size], state_buffers=states)
    own = next((p.dtype for p in network.model.parameters()), None)
    if dtype is not None and own is not None and dtype.is_floating_point and own.is_floating_point:
        one = int(one * max(1.0, dtype.itemsize / own.itemsize))
    refuse = (
        f"one copy of the model needs about {{need}} MiB to train, but {device} has "
        "{free} MiB free"
    )
    return memory_chunk(one, device, limit=MAX_CHUNK, refuse=refuse)


def _defaults(optimizer: str) -> dict[str, Tensor]:
    return make_hyper(optimizer, {}, 1)


@dataclass(frozen=True, eq=False)
class NetRun:
    """A grid over a network: one entry per cell (first axis slowest), NumPy arrays.

    Metrics: ``final_loss`` (mean loss on the training data after the last step, eval mode),
    ``val_loss``/``val_accuracy`` (on the validation data, if given), ``best_loss`` (lowest
    mini-batch loss seen), ``steps_to_target`` (first step whose mini-batch loss is at most
    ``target``, NaN if never), ``diverged_at`` (the step at which the copy became non-finite,
    ``-1`` if never: ``engines.stacked``), and ``diverged``: 1 if it did, or if it is *growing*
    (``studies.phase.network_growing``: its final loss well above ``start_loss``). ``losses``
    holds every cell's mini-batch losses per step.
    """

    optimizer: str
    axes: tuple[Axis, ...]
    fixed: dict[str, Any]
    network: str
    steps: int
    options: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    completed: np.ndarray
    losses: np.ndarray
    interrupted: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(axis.values) for axis in self.axes)

    @property
    def caption(self) -> str:
        return f"{self.network}, {self.steps} steps"

    def options_of(self, k: int) -> dict[str, Any]:
        """Cell ``k``'s hyperparameters as torch keyword arguments."""
        return torch_kwargs(self.optimizer, {key: v[k] for key, v in self.options.items()})

    def grid(self, metric: str) -> np.ndarray:
        """A metric reshaped to the axes' shape (NaN where not completed)."""
        if metric not in self.metrics:
            return np.full(self.shape, np.nan)
        values = np.where(self.completed, self.metrics[metric].astype(np.float64), np.nan)
        return values.reshape(self.shape)

    def curves(self) -> dict[str, np.ndarray]:
        """Every cell's mini-batch loss per step, for ``save_grid``'s ``.npz``."""
        return {"losses": self.losses}

    def describe(self) -> dict[str, Any]:
        """The run's settings, as ``save_grid`` writes them beside the cells."""
        return {
            "optimizer": self.optimizer,
            "axes": [{"name": a.name, "values": list(a.values), "log": a.log} for a in self.axes],
            "fixed": self.fixed,
            "network": self.network,
            "steps": self.steps,
            "interrupted": self.interrupted,
            **self.meta,
        }


def _store(total: int, steps: int, resume: Path | None, key: str,
           progress: Callable[[int, int], None] | None) -> Results:  # fmt: skip
    """Every cell's options (``option_…``), metrics (``metric_…``, as ``pack_columns`` names
    them) and loss curve, filled chunk by chunk (and saved for ``resume``); its tag
    ``method`` says how the saved chunks were trained (vmap or loop): the rest train so too."""
    return Results(total, columns={"losses": np.full((total, steps), np.nan)}, resume=resume,
                   key=key, differs="a different study: its model, data or settings differ",
                   progress=progress)  # fmt: skip


def _evaluate(network: Network, copies: Copies, batches: Batches, method: Method
              ) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """Every copy's mean loss over ``batches`` in eval mode (BatchNorm: each copy's running
    statistics), and its accuracy for class scores: a copy of the model in the copies' float
    type (its frozen parameters stay the model's) through ``runner.evaluate_many``."""
    first = next(iter(copies.params.values()))
    net = copy.deepcopy(network.model).to(device=first.device, dtype=first.dtype).eval()
    way: Way = "loop" if method == "loop" else "vmap"
    loss, accuracy = evaluate_many(net, {**copies.params, **copies.buffers}, batches,
                                   network.loss_fn, method=way)  # fmt: skip
    return loss.cpu().numpy(), (None if accuracy is None else accuracy.cpu().numpy())


def _metrics(
    network: Network, result: StackedResult, start: Copies, target: float | None
) -> dict[str, np.ndarray]:
    """A chunk's metrics (see ``NetRun``); ``start`` holds the copies' first weights (one copy
    when they all start alike)."""
    losses = result.losses.double().cpu().numpy().T  # (K, steps)
    batches = network.batches()
    final, _ = _evaluate(network, result.final, batches, result.method)
    first, _ = _evaluate(network, start, batches, result.method)
    diverged_at = result.diverged_at.cpu().numpy()
    grew = network_growing(final, first)
    out = {
        "final_loss": final,
        "start_loss": np.broadcast_to(first, final.shape).copy(),
        "best_loss": np.nanmin(np.where(np.isfinite(losses), losses, np.inf), axis=1),
        "diverged": ((diverged_at >= 0) | grew).astype(np.float64),
        "diverged_at": diverged_at.astype(np.float64),
    }
    if target is not None:
        hit = np.isfinite(losses) & (losses <= target)
        reached = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, -1)
        out["steps_to_target"] = np.where(reached > 0, reached, np.nan).astype(np.float64)
    if network.val is not None:
        val, accuracy = _evaluate(network, result.final, network.val, result.method)
        out["val_loss"] = val
        if accuracy is not None:
            out["val_accuracy"] = accuracy
    return out


def _key(network: Network, description: Mapping[str, Any]) -> str:
    return fingerprint(json.dumps(description, sort_keys=True, default=str), *network.arrays())


@dataclass(frozen=True)
class _Done:
    """What one finished chunk hands back: its metrics, hyperparameters and loss curves by
    cell, the engine's note (or "") and how the engine trained it (``vmap`` or ``loop``)."""

    metrics: dict[str, np.ndarray]
    options: dict[str, np.ndarray]
    losses: np.ndarray
    note: str
    method: str


@dataclass(frozen=True)
class _Plan:
    """How every chunk of a grid trains (one object, so a Ray task gets all of it): the
    optimizer, its fixed and per-cell hyperparameters, and ``run_network_grid``'s options."""

    optimizer: str
    fixed: dict[str, Any]
    cells: dict[str, np.ndarray]
    steps: int
    shuffle_seed: int
    init: Init
    seed: int
    scheduler: SchedulerSpec | None
    target: float | None
    dtype: torch.dtype | None
    device: torch.device
    method: Method

    def _hyper(self, index: np.ndarray) -> dict[str, Any]:
        return {**self.fixed, **{name: values[index] for name, values in self.cells.items()}}

    def _seeds(self, index: np.ndarray) -> list[int]:
        return [self.seed + int(cell) for cell in index]  # a cell's own, whatever its chunk

    def _train(self, network: Network, index: np.ndarray, steps: int, method: Method,
               stop: Callable[[], bool] | None, *,
               timed: bool = False) -> StackedResult:  # fmt: skip
        return train_stacked(
            network.model, network.x, network.y, network.loss_fn, self.optimizer,
            self._hyper(index), size=len(index), steps=steps, batch_size=network.batch_size,
            shuffle_seed=self.shuffle_seed, init=self.init,
            seed=self._seeds(index), scheduler=self.scheduler,
            dtype=self.dtype, device=self.device, method=method, should_stop=stop,
            time_ways=timed,  # only auto's trial times: a chunk asked for auto (Ray) vmaps
        )  # fmt: skip

    def fastest(
        self, network: Network, index: np.ndarray, stop: Callable[[], bool]
    ) -> Decision | None:
        """``auto``'s choice for the chunk ``index`` (its first ``TIMED_COPIES``), as the
        engine makes it (``train_stacked(method="auto")``, its ``Trial``): vmap over the copies
        or a loop over them, whichever computes a step's gradients faster here, as a
        ``runner.Decision`` whose trials are ``(method, copies, seconds per step)`` and whose
        ``failure`` is the note of a vmap that cannot run the model; None if ``stop`` cut the
        trial short. The trial leaves torch's random state as it was (a dropout mask is the
        same with or without it)."""
        steps, index = min(TIMED_STEPS, self.steps), index[:TIMED_COPIES]
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            result = self._train(network, index, steps, "auto", stop, timed=True)
        if result.completed < steps:
            return None
        if result.trial is None:  # vmap cannot run this model, or too few steps to time
            failure = result.note if result.method == "loop" else None
            return Decision(result.method, len(index), trials=(), failure=failure)
        trials = (("vmap", len(index), result.trial.vmap_s),
                  ("loop", len(index), result.trial.loop_s))  # fmt: skip
        return Decision(result.method, len(index), trials=trials)

    def train(
        self, network: Network, index: np.ndarray, stop: Callable[[], bool] | None = None
    ) -> _Done | None:
        """Train the cells ``index`` together and measure them; None if ``stop`` cut it short."""
        result = self._train(network, index, self.steps, self.method, stop)
        if result.completed < self.steps:
            return None  # stopped mid-chunk: its cells stay unfinished
        begun = stack_copies(network.model, len(index) if self.init == "seeded" else 1,
                             init=self.init, seed=self._seeds(index), dtype=self.dtype,
                             device=self.device)  # fmt: skip
        # Each cell's hyperparameters as asked (with defaults), not ``result.hyper``: a
        # scheduler leaves its last values there, not the setting that was tried.
        asked = make_hyper(self.optimizer, self._hyper(index), len(index))
        return _Done(
            _metrics(network, result, begun, self.target),
            {k: t[:, 0].numpy() for k, t in asked.items()},
            result.losses.double().cpu().numpy().T,
            result.note or "",
            result.method,
        )


def _ray_chunk(
    network: Network, plan: _Plan, index: np.ndarray, threads: int, use_gpu: bool
) -> _Done | None:
    """One Ray task: a chunk trained on the worker's own device."""
    return replace(plan, device=on_worker(threads, use_gpu)).train(network, index)


def run_network_grid(
    network: Network,
    optimizer: str,
    axes: Sequence[Axis],
    *,
    fixed: Mapping[str, Any] | None = None,
    steps: int = DEFAULT_STEPS,
    shuffle_seed: int = 0,
    init: Init = "same",
    seed: int = 0,
    scheduler: SchedulerSpec | None = None,
    target: float | None = None,
    chunk: int | str = "auto",
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    method: Method = "auto",
    progress: Callable[[int, int], None] | None = None,
    resume: str | os.PathLike[str] | None = None,
    should_stop: Callable[[], bool] | None = None,
    backend: RayPool | None = None,
) -> NetRun:
    """Train one copy of ``network`` per cell of ``axes`` (with ``fixed`` hyperparameters),
    ``chunk`` copies at a time (``"auto"``: ``auto_chunk``), and measure ``NetRun``'s metrics.

    Every copy sees the same batches; ``init`` says whether they start alike (see
    ``engines.stacked.Init``). ``resume``: a ``.npz`` the finished chunks are saved to as they
    complete; if it exists (from an interrupted run of the same study) its cells are kept.
    ``backend``: a ``gdscope.raypool.RayPool`` trains each chunk as a Ray task (on the
    workers' CPUs, or GPUs with ``gpus_per_task``; ``chunk="auto"`` is sized here); the
    results are those of the local run.
    """
    fixed = dict(fixed or {})
    fixed = merge_fixed(fixed, [axis.name for axis in axes])
    cells = expand(axes)
    total = len(next(iter(cells.values()))) if cells else 1
    make_hyper(optimizer, {**fixed, **cells}, total)  # every cell refused now, not mid-run
    device = resolve_device(device)
    resume = Path(resume) if resume is not None else None  # any path-like, a str too
    if resume is not None and resume.suffix.lower() != ".npz":
        raise GdscopeError(f"resume takes a .npz file, got {resume.name!r}", settings=["resume"])
    size = (auto_chunk(network, device=device, optimizer=optimizer, dtype=dtype)
            if chunk == "auto" else chunk)  # fmt: skip
    if isinstance(size, (str, bool)) or size < 1:
        raise GdscopeError(f"chunk must be a positive integer or auto, got {chunk!r}")
    description: dict[str, Any] = {
        "optimizer": optimizer, "axes": [[a.name, list(a.values)] for a in axes],
        "fixed": fixed, "steps": steps, "shuffle_seed": shuffle_seed, "init": init,
        "seed": seed, "batch_size": network.batch_size, "target": target,
        "scheduler": None if scheduler is None else [scheduler.name, list(scheduler.options)],
        "dtype": str(dtype), "val": network.val is not None, "loss": network.loss_identity(),
    }  # fmt: skip
    store = _store(total, steps, resume, _key(network, description), progress)
    plan = _Plan(optimizer, fixed, cells, steps, shuffle_seed, init, seed, scheduler, target,
                 dtype, device, method)  # fmt: skip
    notes: list[str] = []
    used: set[str] = set()  # how the engine trained each chunk (data, not its notes)
    stop = stopping(should_stop)

    def finished(index: np.ndarray, done: _Done | None) -> None:
        if done is None:
            return
        if done.note and done.note not in notes:
            notes.append(done.note)
        used.add(done.method)
        store.put(index, pack_columns({}, done.metrics))
        store.put(index, pack_columns(done.options, {}), fill=0)
        store.put(index, {"losses": done.losses})
        store.finish(index)

    store.start()
    chunks = [index for index in spans(np.arange(total), size) if len(index)]
    chunks = [index[~store.done[index]] for index in chunks]
    chunks = [index for index in chunks if len(index)]
    saved = store.tags.get("method")
    if method != "auto" and saved not in (None, method):
        raise GdscopeError(f"{resume} holds chunks trained with {saved}; strategy {method} "
                           f"would mix two ways of rounding: give auto or {saved}",
                           settings=["strategy"])  # fmt: skip
    if method == "auto" and saved in ("vmap", "loop"):  # as the saved chunks were
        plan = replace(plan, method=saved)  # type: ignore[arg-type]
    decision: Decision | None = None
    with section():
        # auto: timed once, here, for every chunk (on Ray the workers train: each chunk
        # vmapped, or looped where vmap cannot run it)
        if plan.method == "auto" and chunks and backend is None and not stop():
            decision = plan.fastest(network, chunks[0], stop)
            if decision is not None:
                plan = replace(plan, method=decision.method)
                notes += [decision.failure] if decision.failure else []
        if plan.method != "auto":
            store.tags["method"] = plan.method
        remote = None
        if backend is not None:
            net_ref = backend.ray().put(network)
            worker = backend.worker_args()
            remote = Remote(backend, _ray_chunk, lambda index: (net_ref, plan, index, *worker))
        run_chunks(chunks, finished, compute=lambda index: plan.train(network, index, stop),
                   remote=remote, stop=stop)  # fmt: skip
    ran = plan.method if plan.method != "auto" else ("loop" if "loop" in used else "vmap")
    meta: dict[str, Any] = {
        "gdscope": __version__, "torch": torch.__version__, "device": str(device),
        "dtype": str(dtype or next(network.model.parameters()).dtype).replace("torch.", ""),
        "chunk": size, "batch_size": network.batch_size, "shuffle_seed": shuffle_seed,
        "init": init, "seed": seed, "notes": notes, "method": ran,
    }  # fmt: skip
    options, metrics = unpack_columns(store.columns)
    return NetRun(optimizer=optimizer, axes=tuple(axes), fixed=fixed, network=network.name,
                  steps=steps, options=options, metrics=metrics,
                  completed=store.done, losses=store.columns["losses"],
                  interrupted=not store.done.all(), meta=meta)  # fmt: skip


SCORES = ("final_loss", "val_loss")
"""What a shoot-out on a network may score by (lower is better; a diverged copy scores inf)."""


@dataclass(frozen=True, eq=False)
class NetShootout:
    """Each optimizer's grid over the tuned settings and its winner, on one network."""

    network: str
    steps: int
    metric: str
    runs: dict[str, NetRun]
    asked: tuple[str, ...]

    @property
    def interrupted(self) -> bool:
        return len(self.runs) < len(self.asked) or any(r.interrupted for r in self.runs.values())

    def scores(self, name: str) -> np.ndarray:
        """Every tried setting's score (``inf``: diverged or not run)."""
        return _scores(self.runs[name], self.metric)

    def winner(self, name: str) -> int:
        """The cell of ``name``'s best setting (lowest score)."""
        return int(np.argmin(self.scores(name)))

    def edges(self, name: str) -> list[str]:
        """Where ``name``'s winner sits on the edge of its tuning grid (``tuning_edges``)."""
        run, k = self.runs[name], self.winner(name)
        best = {a.name: float(run.options[a.name][k]) for a in run.axes}
        tried = {a.name: [float(v) for v in run.options[a.name]] for a in run.axes}
        return [f"{name}: {line}" for line in tuning_edges(best, tried)]

    def table(self) -> list[dict[str, Any]]:
        """One row per optimizer, best first: its winning settings and score."""
        rows = []
        for name, run in self.runs.items():
            k = self.winner(name)
            tuned = {a.name: float(run.options[a.name][k]) for a in run.axes}
            score = float(_scores(run, self.metric)[k])
            diverged = int(np.nansum(run.metrics.get("diverged", np.zeros(1))))
            rows.append({"optimizer": name, **tuned, self.metric: score,
                         "diverged_settings": diverged})  # fmt: skip
        return sorted(rows, key=lambda row: row[self.metric])


def _scores(run: NetRun, metric: str) -> np.ndarray:
    values = run.metrics.get(metric, np.full(len(run.completed), np.nan))
    bad = ~run.completed | (run.metrics.get("diverged", 0) > 0.5) | ~np.isfinite(values)
    return np.where(bad, np.inf, values)


def tuned_axes(optimizer: str, lr: Axis, momentum: Axis | None) -> list[Axis]:
    """The axes a shoot-out tunes for ``optimizer``: ``lr``, and ``momentum`` where it has one
    (Adam's ``beta1``; Adagrad has none)."""
    axes = [lr]
    if momentum is not None:
        params = TRANSFORMS[optimizer].params  # the batched rule's names: beta1 is Adam's
        name = next((n for n in ("beta1", "momentum") if n in params), None)
        if name is not None:
            axes.insert(0, Axis(name, momentum.values, momentum.log))
    return axes


def compare_network(
    network: Network,
    optimizers: Sequence[str],
    *,
    lr: Axis,
    momentum: Axis | None = None,
    metric: str = "final_loss",
    **options: Any,
) -> NetShootout:
    """Tune each optimizer over ``lr`` (and ``momentum``) with the same steps, batches and
    starts (``options`` go to ``run_network_grid``), no clipping; score each setting by
    ``metric``. Ctrl-C keeps the optimizers finished; ``resume=FILE.npz`` keeps each
    optimizer's progress in ``FILE-NAME.npz``. A winner on the edge of its tuning grid is
    warned of (``NetShootout.edges``), as ``shootout.compare`` does, and kept all the same."""
    if metric not in SCORES:
        raise GdscopeError(f"a shoot-out scores by {' or '.join(SCORES)}, got {metric!r}")
    if metric == "val_loss" and network.val is None:
        raise GdscopeError("scoring by val_loss needs validation data (the network's val)")
    unknown = [name for name in optimizers if name not in TRANSFORMS]
    if unknown:
        raise GdscopeError(
            f"a network shoot-out runs {', '.join(TRANSFORMS)}; not {', '.join(unknown)}"
        )
    if not optimizers:
        raise GdscopeError("name at least one optimizer")
    refuse_repeats(optimizers)
    runs: dict[str, NetRun] = {}
    given = options.pop("resume", None)
    resume = Path(given) if given is not None else None  # any path-like, a str too
    for name in optimizers:
        if interrupts.requested():
            break
        own = None if resume is None else resume.with_name(f"{resume.stem}-{name}.npz")
        axes = tuned_axes(name, lr, momentum)
        run = run_network_grid(network, name, axes, resume=own, **options)
        if run.interrupted:
            break
        runs[name] = run
        # the others train as the first did (a fair race, one way to replay it); each sizes
        # its own chunks, for its own optimizer state
        options.update(method=run.meta["method"])
    result = NetShootout(network.name, int(options.get("steps", DEFAULT_STEPS)), metric, runs,
                         tuple(optimizers))  # fmt: skip
    for name in result.runs:
        for line in result.edges(name):  # said, and the winner drawn all the same
            warnings.warn(line, UserWarning, stacklevel=2)
    return result
