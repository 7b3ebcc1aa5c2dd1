"""Loss landscapes of any ``nn.Module`` on a plane (or a line) through its parameter space.

The value at ``(x, y)`` is the model's mean loss (and accuracy, for classification) over the
data with parameters ``centre + x·dx + y·dy``, in eval mode (BatchNorm uses its running
statistics, dropout is off). Grid points are evaluated in chunks: ``torch.func.functional_call``
under ``torch.vmap`` runs a whole chunk of parameter vectors through each batch at once. Finished
chunks can be saved as they complete and a later run resumes from them; chunks can also be
spread over Ray workers (``gdscope.nets.distributed``).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from gdscope.errors import GdscopeError
from gdscope.files import write_atomic
from gdscope.nets.recorder import ParamLayout

__all__ = [
    "Batches",
    "ModelSurface",
    "StrategyChoice",
    "auto_chunk",
    "channels_last",
    "choose_strategy",
    "evaluate_plane",
    "evaluate_plane_loop",
    "evaluate_vectors",
    "materialize",
    "resolve_device",
]

Batches = list[tuple[Tensor, Tensor]]
STRATEGIES = ("auto", "vmap", "loop")
MEMORY_FORMATS = ("auto", "contiguous", "channels_last")
PLAN_METHODS = ("loop", "loop/channels_last", "vmap")
LossFn = Callable[[Tensor, Tensor], Tensor]


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``device`` as a ``torch.device`` (default CPU); a clear error for CUDA without a GPU."""
    try:
        resolved = torch.device(device) if device is not None else torch.device("cpu")
    except RuntimeError as error:
        raise GdscopeError(f"not a device: {device!r} ({error})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise GdscopeError("no CUDA device is available")
    return resolved


def materialize(data: Any, device: torch.device | str | None = None) -> Batches:
    """The data as a list of ``(inputs, targets)`` batches on ``device``: from a ``DataLoader``
    (or any iterable of pairs), a map-style ``Dataset`` of samples (batched by 256), or one
    ``(inputs, targets)`` pair. Evaluating a grid passes over the data many times, so it is
    loaded once."""
    from torch.utils.data import DataLoader, Dataset, IterableDataset

    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Tensor):
        pairs: Iterable[Any] = [data]
    elif isinstance(data, Dataset) and not isinstance(data, IterableDataset):
        pairs = DataLoader(data, batch_size=256)  # samples, not batches: batch them in order
    else:
        pairs = data
    batches = []
    if isinstance(data, nn.Module) or not isinstance(pairs, Iterable):
        raise GdscopeError(f"the data must be a DataLoader or Dataset, got {type(data).__name__}")
    for item in pairs:
        if not (isinstance(item, (tuple, list)) and len(item) >= 2):
            raise GdscopeError(
                f"the data must yield (inputs, targets) pairs, got {type(item).__name__}"
            )
        batches.append((item[0].to(device), item[1].to(device)))
    if not batches:
        raise GdscopeError("the data has no batches")
    return batches


def _is_classification(outputs: Tensor, targets: Tensor) -> bool:
    return outputs.dim() == 2 and targets.dim() == 1 and not targets.is_floating_point()


def evaluate_vectors(
    model: nn.Module,
    batches: Batches,
    loss_fn: LossFn,
    vectors: Tensor,
    *,
    layout: ParamLayout | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Mean loss ``(C,)`` and accuracy ``(C,)`` (None if not a classification) of the model
    with each row of ``vectors`` ``(C, N)`` as its parameters, in one vmapped pass per batch.

    Like the reference implementation's ``eval_loss``, the mean is over samples: each batch's
    mean loss is weighted by its size. Accuracy is the fraction of argmax hits.
    """
    from torch.func import functional_call

    layout = layout or ParamLayout.of(model)
    # Everything the vector does not cover (frozen parameters, buffers) stays the model's own.
    fixed = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    fixed = {n: t for n, t in fixed.items() if n not in layout.names}

    def forward(vector: Tensor, inputs: Tensor) -> Tensor:
        return functional_call(model, {**fixed, **layout.unflatten(vector)}, (inputs,))

    run = torch.vmap(forward, in_dims=(0, None))
    total = torch.zeros(len(vectors), dtype=torch.float64, device=vectors.device)
    correct = torch.zeros_like(total)
    seen, classify = 0, None
    with torch.no_grad():
        for inputs, targets in batches:
            outputs = run(vectors, inputs)
            losses = torch.vmap(lambda out, t=targets: loss_fn(out, t))(outputs)
            total += losses.double() * len(targets)
            if classify is None:
                classify = _is_classification(outputs[0], targets)
            if classify:
                correct += (outputs.argmax(-1) == targets).double().sum(-1)
            seen += len(targets)
    return total / seen, (correct / seen if classify else None)


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
                        classify = _is_classification(outputs, targets)
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


def _free_memory(device: torch.device) -> int:
    """Bytes free on ``device`` (CUDA: the driver's count; CPU: MemAvailable, else 4 GiB)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def auto_chunk(
    model: nn.Module, batches: Batches, layout: ParamLayout, *, fraction: float = 0.25
) -> int:
    """Grid points per vmapped chunk so that one chunk uses about ``fraction`` of the free
    memory. Without autograd only a few activations are alive at a time, so a point costs its
    parameter vector plus 4× the largest single activation of the largest batch (a layer's input
    and output, a residual branch, vmap's temporaries), measured with forward hooks on one plain
    forward pass. Between 1 and 1024."""
    inputs = max(batches, key=lambda b: len(b[0]))[0]
    sizes: list[int] = []

    def hook(module: nn.Module, args: object, output: object) -> None:
        if isinstance(output, Tensor):
            sizes.append(output.numel() * output.element_size())

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    per_point = 4 * max(sizes, default=0) + 4 * layout.size
    device = inputs.device
    return int(max(1, min(1024, fraction * _free_memory(device) // max(per_point, 1))))


class StrategyChoice(NamedTuple):
    """What ``choose_strategy`` found: the strategy, its chunk, the trials ``(strategy, chunk,
    seconds per point)`` (NaN: it failed), and why vmap could not run, if it could not."""

    strategy: str
    chunk: int
    trials: list[tuple[str, int, float]]
    failure: str | None = None
    memory_format: str = "contiguous"
    """The loop's layout of image tensors: ``contiguous`` or ``channels_last``."""


def choose_strategy(
    run: Callable[[str, int], float | None],
    *,
    limit: int,
    total: int,
    budget: float = 0.1,
    formats: Sequence[str] = ("contiguous",),
) -> StrategyChoice:
    """Pick the faster way to evaluate a grid on this machine by timing both on its first points.

    ``run(strategy, count)`` evaluates (and keeps) the next ``count`` of the grid's ``total``
    points and returns the seconds per point, or None when no points are left. The loop is
    timed on two points after a warm-up point, in each memory layout of ``formats``
    (``"loop"``, ``"loop/channels_last"``: 1.8× faster for the small CNN on this CPU), and the
    faster layout is kept. vmap is timed on chunks of 4, 16, 64, … up to ``limit`` for as long
    as a larger chunk is at least 10% faster per point and a trial is expected (at the last
    speed measured) to take at most ``budget`` of the grid's time at the best speed so far,
    which bounds what tuning can cost. Which wins depends on the model and the hardware (on
    this project's 2-core CPU the loop for a small CNN, vmap over 64–256 points for an MLP), so
    it is measured, not guessed. No point is computed twice. A vmap trial that raises (a module
    vmap cannot run) ends the trials: the loop goes on.
    """
    trials: list[tuple[str, int, float]] = []
    failure = None
    loop, layout = math.inf, formats[0]
    for form in formats:
        name = "loop" if form == "contiguous" else f"loop/{form}"
        if run(name, 1) is None:  # the first point in a layout pays one-off costs: not timed
            break
        seconds = run(name, 2)
        if seconds is None:
            break
        trials.append((name, 1, seconds))
        if seconds < loop:
            loop, layout = seconds, form
    if not trials:
        return StrategyChoice("loop", 16, trials, None, layout)
    best, best_size, previous, last = math.inf, 0, math.inf, loop
    size = min(4, limit)
    while size * last <= budget * total * min(loop, best):
        try:
            per_point = run("vmap", size)
        except (RuntimeError, NotImplementedError, TypeError, ValueError) as error:
            # vmap cannot run every module (data-dependent control flow, .item(), memory);
            # the loop can, so go on with it, and say why. Errors of the model itself would
            # have shown in the loop's points first.
            trials.append(("vmap", size, math.nan))
            message = str(error).splitlines()[0] if str(error) else ""
            failure = f"vmap failed ({type(error).__name__}: {message[:200]})"
            break
        if per_point is None:
            break
        trials.append(("vmap", size, per_point))
        if per_point < best:
            best, best_size = per_point, size
        if per_point > 0.9 * previous or size >= limit:
            break
        previous = last = per_point
        size = min(4 * size, limit)
    if best < loop:
        return StrategyChoice("vmap", best_size, trials, failure)
    return StrategyChoice("loop", 16, trials, failure, layout)


@contextmanager
def channels_last(model: nn.Module) -> Iterator[None]:
    """``model``'s 4-D parameters and buffers in channels-last layout for a while (same values;
    oneDNN's convolutions are faster that way), then as they were."""
    was = any(p.dim() == 4 and not p.is_contiguous()
              and p.is_contiguous(memory_format=torch.channels_last)
              for p in model.parameters())  # fmt: skip
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.to(memory_format=torch.channels_last if was else torch.contiguous_format)


def _fingerprint(*arrays: Tensor | np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        data = array.detach().cpu().numpy() if isinstance(array, Tensor) else np.asarray(array)
        digest.update(np.ascontiguousarray(data, dtype=np.float64).tobytes())
    return digest.hexdigest()[:32]


def _load_resume(path: Path, key: str, shape: tuple[int, int]) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    try:
        with np.load(path) as saved:
            state = {k: saved[k] for k in saved.files}
    except (OSError, ValueError) as error:
        raise GdscopeError(f"{path} is not a gdscope resume file ({error})") from None
    if str(state.get("key")) != key or state["loss"].shape != shape:
        raise GdscopeError(
            f"{path} belongs to another computation (model, directions or grid differ); "
            "remove it or choose another --resume file"
        )
    return state


def _save_resume(path: Path, key: str, loss: np.ndarray, acc: np.ndarray, done: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.savez(handle, key=np.array(key), loss=loss, accuracy=acc, done=done)

    write_atomic(path, write, force=True)


def evaluate_plane(
    model: nn.Module,
    data: Any,
    loss_fn: LossFn,
    *,
    dx: Tensor,
    dy: Tensor | None = None,
    xs: Sequence[float],
    ys: Sequence[float] = (0.0,),
    centre: Tensor | None = None,
    chunk: int | str = "auto",
    device: torch.device | str | None = None,
    progress: Callable[[int, int], None] | None = None,
    resume: str | os.PathLike[str] | None = None,
    backend: Any = None,
    strategy: str = "auto",
    states: bool = False,
    memory_format: str = "auto",
    plan: Sequence[tuple[str, int]] = (),
) -> ModelSurface:
    """The landscape on the ``ys × xs`` grid (see ``ModelSurface``); ``centre`` defaults to the
    model's own parameters. ``chunk`` grid points go through the model together (memory grows
    with it); ``"auto"`` sizes them to a quarter of the free memory (``auto_chunk``).
    ``progress(done, total)`` is called after every chunk. With ``resume``, finished chunks are
    saved to that file as they complete, and points already there are not computed again.
    ``backend`` (e.g. ``gdscope.nets.distributed.RayBackend``) evaluates chunks elsewhere.

    ``strategy``: ``"vmap"`` runs a chunk of points through each batch at once
    (``evaluate_vectors``); ``"loop"`` loads one point at a time into the model
    (``evaluate_plane_loop``, the reference implementation's way); ``"auto"`` times both on the
    first grid points and goes on with the faster (``choose_strategy``; with a ``backend``,
    whose workers may differ, it takes vmap on CUDA and the loop on the CPU).
    ``memory_format``: the loop's layout of image tensors, ``"contiguous"`` or
    ``"channels_last"``; ``"auto"`` lets ``"auto"`` time both (an explicit strategy stays
    contiguous). The chosen strategy, chunk, layout and the trials are in ``meta``;
    ``meta["plan"]`` lists how auto's trials evaluated the first points (``(method, count)``):
    passing it back as ``plan``, with the strategy, chunk and layout, makes the same computation
    again, point for point (what ``gdscope replay`` does). ``states``: the vectors also cover
    the floating-point buffers (directions made with ``states=True``).
    """
    if strategy not in STRATEGIES:
        raise GdscopeError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if memory_format not in MEMORY_FORMATS:
        raise GdscopeError(
            f"memory_format must be one of {', '.join(MEMORY_FORMATS)}, got {memory_format!r}"
        )
    if memory_format == "channels_last" and (strategy == "vmap" or backend is not None):
        raise GdscopeError("the channels-last layout is for the loop run here; vmap and "
                           "backends take 'contiguous'")  # fmt: skip
    plan = [(str(name), count) for name, count in plan]
    for name, count in plan:
        if name not in PLAN_METHODS or isinstance(count, bool) or not isinstance(count, int) \
                or count < 1:  # fmt: skip
            raise GdscopeError(f"a plan step is (one of {', '.join(PLAN_METHODS)}, a positive "
                               f"count), got ({name!r}, {count!r})")  # fmt: skip
    if plan and (strategy == "auto" or backend is not None):
        raise GdscopeError("a plan repeats auto's trials: give the strategy they led to, and "
                           "no backend")  # fmt: skip
    if chunk != "auto" and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise GdscopeError(f"chunk must be a positive integer or 'auto', got {chunk!r}")
    device = resolve_device(device)
    layout = ParamLayout.of(model, states=states)
    model = model.to(device).eval()
    base = layout.vector(model) if centre is None else centre
    base = base.to(device, torch.float32)
    dx = dx.to(device, torch.float32)
    dy = dy.to(device, torch.float32) if dy is not None else None
    for name, vector in (("centre", base), ("dx", dx), ("dy", dy)):
        if vector is not None and vector.shape != (layout.size,):
            raise GdscopeError(f"{name} has {vector.numel()} entries, the model {layout.size}")
    xs_a = np.asarray(xs, dtype=np.float64)
    ys_a = np.asarray(ys if dy is not None else (0.0,), dtype=np.float64)
    if xs_a.ndim != 1 or ys_a.ndim != 1 or not len(xs_a) or not np.isfinite(xs_a).all():
        raise GdscopeError("grid coordinates must be finite 1-D sequences")
    shape = (len(ys_a), len(xs_a))
    batches = materialize(data, device)
    key = _fingerprint(base, dx, dy if dy is not None else torch.zeros(1), xs_a, ys_a)
    loss = np.full(shape, np.nan)
    acc = np.full(shape, np.nan)
    done = np.zeros(shape, dtype=bool)
    resume_path = Path(resume) if resume is not None else None
    if resume_path is not None:
        saved = _load_resume(resume_path, key, shape)
        if saved is not None:
            loss, acc, done = saved["loss"], saved["accuracy"], saved["done"].astype(bool)
    todo = np.flatnonzero(~done.ravel())
    converted: list[Batches] = []

    @contextmanager
    def laid_out(form: str) -> Iterator[Batches]:
        """The model in memory layout ``form`` for a while, and the batches to feed it (in
        channels-last layout: made once, on first use)."""
        if form != "channels_last":
            yield batches
            return
        if not converted:
            converted.append([(x.contiguous(memory_format=torch.channels_last), y)
                              for x, y in batches])  # fmt: skip
        with channels_last(model):
            yield converted[0]

    coords = np.stack(np.meshgrid(xs_a, ys_a, indexing="xy"), axis=-1).reshape(-1, 2)

    def vectors_of(indices: np.ndarray) -> Tensor:
        c = torch.tensor(coords[indices], dtype=torch.float32, device=device)
        out = base[None] + c[:, :1] * dx[None]
        return out + c[:, 1:] * dy[None] if dy is not None else out

    def store(indices: np.ndarray, values: Tensor, accuracy: Tensor | None) -> None:
        loss.ravel()[indices] = values.cpu().numpy()
        if accuracy is not None:
            acc.ravel()[indices] = accuracy.cpu().numpy()
        done.ravel()[indices] = True
        if resume_path is not None:
            _save_resume(resume_path, key, loss, acc, done)
        if progress is not None:
            progress(int(done.sum()), done.size)

    evaluators = {"vmap": evaluate_vectors, "loop": evaluate_plane_loop}
    meta: dict[str, Any] = {"device": str(device), "points": int(done.size)}
    chosen_format = "contiguous" if memory_format == "auto" else memory_format
    taken = 0
    done_plan: list[list[Any]] = []

    def evaluate(name: str, data: Batches, indices: np.ndarray) -> None:
        store(indices, *evaluators[name](model, data, loss_fn, vectors_of(indices),
                                         layout=layout))  # fmt: skip

    def trial(method: str, count: int) -> float | None:
        """Evaluate the next ``count`` points by ``method`` (one of ``PLAN_METHODS``); the
        seconds per point."""
        nonlocal taken
        indices = todo[taken : taken + count]
        if not len(indices):
            return None
        began = time.perf_counter()
        name, _, form = method.partition("/")
        with laid_out(form) as data:
            evaluate(name, data, indices)
        taken += len(indices)  # only once stored: a failed trial leaves its points to do
        done_plan.append([method, len(indices)])
        return (time.perf_counter() - began) / len(indices)  # store() synchronized

    for name, count in plan:  # a replay: the trials of the run it repeats, in their order
        trial(name, count)
    if strategy == "auto" and backend is None:
        limit = auto_chunk(model, batches, layout) if chunk == "auto" else chunk
        images = all(inputs.dim() == 4 for inputs, _ in batches)
        if memory_format != "auto":
            formats: tuple[str, ...] = (memory_format,)
        else:
            formats = ("contiguous", "channels_last") if images else ("contiguous",)
        choice = choose_strategy(trial, limit=limit, total=len(todo), formats=formats)
        strategy, chunk = choice.strategy, choice.chunk
        chosen_format = choice.memory_format if strategy == "loop" else "contiguous"
        meta["trials"] = [list(t) for t in choice.trials]
        if choice.failure is not None:
            meta["vmap_failure"] = choice.failure
    elif strategy == "auto":
        strategy = "vmap" if device.type == "cuda" else "loop"
    meta["plan"] = done_plan
    todo = todo[taken:]
    if chunk == "auto":
        chunk = auto_chunk(model, batches, layout) if strategy == "vmap" else 16
    chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
    if backend is not None:
        backend.run(model, batches, loss_fn, strategy, layout, chunks, vectors_of, store)
    else:
        # vmap (and a backend) always run contiguous: chosen_format is only ever the loop's.
        # One layout change for all the chunks (changing it per chunk cost ~20%).
        with laid_out(chosen_format) as data:
            for indices in chunks:
                evaluate(strategy, data, indices)
    has_acc = bool(np.isfinite(acc).any())
    meta.update(chunk=chunk, strategy=strategy, memory_format=chosen_format)
    return ModelSurface(xs_a, ys_a, loss, acc if has_acc else None, base.cpu(), dx.cpu(),
                        dy.cpu() if dy is not None else None, layout, meta)  # fmt: skip
