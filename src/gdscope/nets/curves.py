"""Mode connectivity: a low-loss curve between two trained networks (Garipov et al. 2018, *Loss
Surfaces, Mode Connectivity, and Fast Ensembling of DNNs*; Draxler et al. 2018).

The curve is the quadratic Bézier ``φ(t) = (1−t)²·A + 2t(1−t)·θ + t²·B`` through the two
networks' parameters ``A`` (t = 0) and ``B`` (t = 1); only its bend ``θ`` is trained, from the
straight line's midpoint, so that the loss averaged over the curve is low: each mini-batch step
draws one ``t`` uniformly and takes a step on ``L(φ(t))`` (the paper's training). The loss is
then measured along the straight line ``(1−t)·A + t·B`` and along the curve at the same ``t``,
and on the plane through ``A``, ``B`` and ``θ`` (an orthonormal basis of it: ``u`` along
``B − A``, ``v`` the part of ``θ − A`` across it; the curve lies in that plane). A model with
BatchNorm has its running statistics recomputed at every point measured (one pass over the
data in train mode, a cumulative average: ``torch.optim.swa_utils.update_bn``), as the paper
does; training uses each batch's own statistics.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gdscope import interrupts
from gdscope.devices import resolve_device
from gdscope.engines.runner import LOOP_CHUNK, run_chunks, section, spans
from gdscope.errors import GdscopeError, one_of
from gdscope.files import fingerprint, load_progress, save_progress
from gdscope.modules import ParamLayout
from gdscope.nets.plane import Batches, LossFn, ModelSurface, evaluate_plane_loop, materialize

__all__ = [
    "ConnectOptions",
    "ConnectResult",
    "bezier",
    "connect",
    "has_batchnorm",
    "learning_rate",
    "line",
    "recompute_batchnorm",
]


@dataclass(frozen=True)
class ConnectOptions:
    """How the bend is trained and where the loss is measured, checked when made.

    ``epochs`` passes over the data, each sample once per pass in batches of ``batch_size``
    (default: the data's first batch), reshuffled every epoch (seeded by ``seed``, which also
    draws the points ``t``); SGD with ``lr``, ``momentum`` and ``weight_decay``, the rate
    scheduled as the paper's (``learning_rate``). ``points``: the values of ``t`` measured on
    the line and on the curve (evenly from 0 to 1); ``grid``: points per axis of the plane,
    which reaches ``margin`` times the three networks' extent (its larger side) beyond them on
    every side."""

    epochs: int = 30
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int | None = None
    seed: int = 0
    points: int = 41
    grid: int = 21
    margin: float = 0.2

    def __post_init__(self) -> None:
        for name, low in (("epochs", 1), ("points", 2), ("grid", 2), ("batch_size", 1)):
            value = getattr(self, name)
            if name == "batch_size" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise GdscopeError(f"{name} must be an integer ≥ {low}, got {value!r}",
                                   settings=[name])  # fmt: skip
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise GdscopeError(f"seed must be an integer, got {self.seed!r}", settings=["seed"])
        if self.grid > 201:
            raise GdscopeError(f"grid must be at most 201, got {self.grid}", settings=["grid"])
        checks = (("lr", self.lr, lambda v: v > 0, "> 0"),
                  ("momentum", self.momentum, lambda v: 0 <= v < 1, "in [0, 1)"),
                  ("weight_decay", self.weight_decay, lambda v: v >= 0, "≥ 0"),
                  ("margin", self.margin, lambda v: v >= 0, "≥ 0"))  # fmt: skip
        for name, value, fits, said in checks:
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or not fits(value):  # fmt: skip
                raise GdscopeError(f"{name} must be a finite number {said}, got {value!r}",
                                   settings=[name])  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ts(self) -> np.ndarray:
        """The ``t`` measured on the line and on the curve."""
        return np.linspace(0.0, 1.0, self.points)


def learning_rate(options: ConnectOptions, epoch: int) -> float:
    """The rate of epoch ``epoch`` (from 0): the paper's schedule (its ``train.py``): ``lr``
    for the first half of the epochs, then falling linearly to ``lr/100`` at 90%, then
    ``lr/100``."""
    done = epoch / options.epochs
    if done <= 0.5:
        factor = 1.0
    elif done <= 0.9:
        factor = 1.0 - (done - 0.5) / 0.4 * 0.99
    else:
        factor = 0.01
    return options.lr * factor


def bezier(t: float | Tensor, a: Tensor, bend: Tensor, b: Tensor) -> Tensor:
    """``φ(t) = (1−t)²·a + 2t(1−t)·bend + t²·b``; exactly ``a`` at t = 0 and ``b`` at t = 1
    (returned as they are: ``0·bend`` added to ``a`` would turn a −0.0 into +0.0)."""
    if not isinstance(t, Tensor):
        if t == 0:
            return a
        if t == 1:
            return b
    return (1 - t) ** 2 * a + 2 * t * (1 - t) * bend + t**2 * b


def line(t: float, a: Tensor, b: Tensor) -> Tensor:
    """The straight line ``(1−t)·a + t·b``; exactly ``a`` and ``b`` at its ends."""
    if t == 0:
        return a
    if t == 1:
        return b
    return (1 - t) * a + t * b


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` keeps BatchNorm running statistics (what ``update_bn`` recomputes)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
               for m in model.modules())  # fmt: skip


def recompute_batchnorm(model: nn.Module, batches: Batches) -> None:
    """BatchNorm's running statistics of ``model``'s current weights: reset, then one pass
    over ``batches`` in train mode with a cumulative average (``momentum=None``, as
    ``torch.optim.swa_utils.update_bn``, which this calls); the mode is left as it was."""
    with torch.no_grad():
        torch.optim.swa_utils.update_bn(batches, model)


def _fixed_tensors(model: nn.Module, layout: ParamLayout) -> dict[str, Tensor]:
    """What the curve does not move: frozen parameters and buffers, BatchNorm's running
    statistics aside (they are recomputed at every point)."""
    recomputed = {f"{name}.{key}" if name else key
                  for name, m in model.named_modules()
                  if isinstance(m, nn.modules.batchnorm._BatchNorm)
                  for key in ("running_mean", "running_var", "num_batches_tracked")}  # fmt: skip
    state = model.state_dict()
    return {k: v for k, v in state.items() if k not in layout.names and k not in recomputed}


def _check_pair(a: nn.Module, b: nn.Module) -> ParamLayout:
    """The layout both networks share; refused in one line where they differ: a parameter's
    name or shape, or a tensor the curve would leave at A's value while B's is another."""
    layout = ParamLayout.of(a)
    other = ParamLayout.of(b)
    if other != layout:
        shapes = dict(zip(other.names, other.shapes, strict=True))
        for name, shape in zip(layout.names, layout.shapes, strict=True):
            if shapes.get(name) != shape:
                found = shapes.get(name)
                said = "lacks it" if found is None else f"has {tuple(found)}"
                raise GdscopeError(f"the two networks differ: {name} is {tuple(shape)} in the "
                                   f"first, the second {said}")  # fmt: skip
        extra = next((n for n in other.names if n not in shapes or n not in layout.names), None)
        said = f"the second has {extra}, the first not" if extra else "their parameters' order"
        raise GdscopeError(f"the two networks differ: {said}")
    mine, theirs = _fixed_tensors(a, layout), _fixed_tensors(b, layout)
    for name, value in mine.items():
        if name in theirs and not torch.equal(value, theirs[name]):
            raise GdscopeError(f"the two networks differ in {name}, which the curve does not "
                               "move (a frozen parameter or a buffer)")  # fmt: skip
    return layout


@dataclass(frozen=True, eq=False)
class ConnectResult:
    """A trained curve and the loss along it, along the line, and on their plane.

        ``ts`` (the ``t`` measured), ``line_loss``/``curve_loss`` (mean over the data's samples;
        NaN where Ctrl-C left a point unmeasured) and the accuracies (None unless the outputs are
        class scores); ``plane``: the loss on the plane, centred on ``A`` with ``dx = u`` along
        ``B − A`` and ``dy = v`` (unit vectors, so plane distances are distances between weights);
        ``corners``: the plane coordinates ``(x, y)`` of ``A``, ``B`` and the bend; ``bend``: the
        trained ``θ`` (on the CPU, laid out as ``layout``); ``epoch_loss``: the mean training loss
        of each epoch (over its random points of the curve); ``batchnorm``: the statistics were
        recomputed at each point. ``epochs_done``: the epochs the bend was trained for (fewer than
    ``options.epochs`` when Ctrl-C stopped it); ``unfinished``: points Ctrl-C left unmeasured."""

    ts: np.ndarray
    line_loss: np.ndarray
    curve_loss: np.ndarray
    line_accuracy: np.ndarray | None
    curve_accuracy: np.ndarray | None
    plane: ModelSurface
    corners: np.ndarray
    bend: Tensor
    layout: ParamLayout
    epoch_loss: np.ndarray
    options: ConnectOptions
    epochs_done: int
    batchnorm: bool = False
    unfinished: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        """The bend finished its epochs (else Ctrl-C stopped the training: nothing measured)."""
        return self.epochs_done == self.options.epochs

    @property
    def interrupted(self) -> bool:
        return self.unfinished > 0

    @property
    def total(self) -> int:
        """The points to measure: the line's, the curve's and the plane's."""
        return 2 * len(self.ts) + self.plane.loss.size

    @property
    def measured(self) -> int:
        return self.total - self.unfinished

    def curve_xy(self, ts: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
        """The curve's plane coordinates ``(len(ts), 2)`` (at ``self.ts`` unless given): the
        same Bézier formula on the corners' coordinates, since the curve lies in the plane."""
        t = np.asarray(self.ts if ts is None else ts, dtype=np.float64)[:, None]
        a, b, bend = self.corners
        return (1 - t) ** 2 * a + 2 * t * (1 - t) * bend + t**2 * b

    @property
    def line_max(self) -> float:
        """The highest loss measured along the straight line (NaN: none measured)."""
        return _highest(self.line_loss)

    @property
    def curve_max(self) -> float:
        """The highest loss measured along the curve (NaN: none measured)."""
        return _highest(self.curve_loss)

    def barrier(self, path: str = "line") -> float:
        """The highest loss along ``path`` (``line`` or ``curve``) above the higher of the two
        ends' losses (0 when nothing between the ends is higher; NaN until both ends and a
        point are measured)."""
        one_of("path", path, ("line", "curve"))
        loss = self.line_loss if path == "line" else self.curve_loss
        return max(0.0, _highest(loss) - max(float(loss[0]), float(loss[-1])))

    def to_dict(self) -> dict[str, Any]:
        """The numbers as plain JSON-ready values (the bend itself is not included)."""

        def listed(values: np.ndarray | None) -> list[float] | None:
            return None if values is None else [float(v) for v in np.ravel(values)]

        plane = self.plane
        return {
            "t": listed(self.ts), "line_loss": listed(self.line_loss),
            "curve_loss": listed(self.curve_loss), "line_accuracy": listed(self.line_accuracy),
            "curve_accuracy": listed(self.curve_accuracy),
            "plane": {"x": listed(plane.xs), "y": listed(plane.ys),
                      "loss": plane.loss.tolist(),
                      "accuracy": None if plane.accuracy is None else plane.accuracy.tolist()},
            "corners": {"a": listed(self.corners[0]), "b": listed(self.corners[1]),
                        "bend": listed(self.corners[2])},
            "epoch_loss": listed(self.epoch_loss), "options": self.options.to_dict(),
            "epochs_done": self.epochs_done, "batchnorm": self.batchnorm,
            "unfinished": self.unfinished,
            "parameters": self.layout.size, "line_max": self.line_max,
            "curve_max": self.curve_max, "line_barrier": self.barrier("line"),
            "curve_barrier": self.barrier("curve"), **self.meta,
        }  # fmt: skip


def _highest(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.max()) if finite.size else math.nan


class _Progress:
    """The work done so far, and (with ``resume``) its file, written after every epoch and
    every chunk of points: the bend and SGD's momentum after the epochs finished, each epoch's
    mean loss, the points measured. ``key`` ties the file to the two networks and options."""

    def __init__(self, key: str, bend: Tensor, points: int, epochs: int,
                 resume: Path | None) -> None:  # fmt: skip
        self.key, self.resume = key, resume
        self.bend = bend
        self.momentum: Tensor | None = None
        self.epoch_loss = np.full(epochs, np.nan)
        self.epochs_done = 0
        self.done = np.zeros(points, dtype=bool)
        self.loss = np.full(points, np.nan)
        self.accuracy = np.full(points, np.nan)
        if resume is None:
            return
        saved = load_progress(resume, key, differs="the networks or the options differ")
        if saved is None:
            return
        self.epochs_done = int(saved["epochs_done"])
        self.bend = torch.from_numpy(saved["bend"]).to(bend)
        if saved["momentum"].size:
            self.momentum = torch.from_numpy(saved["momentum"]).to(bend)
        self.epoch_loss = saved["epoch_loss"]
        self.done, self.loss, self.accuracy = saved["done"], saved["loss"], saved["accuracy"]

    def save(self) -> None:
        if self.resume is None:
            return
        momentum = self.momentum if self.momentum is not None else torch.zeros(0)
        arrays = {"epochs_done": np.array(self.epochs_done),
                  "bend": self.bend.detach().cpu().numpy(),
                  "momentum": momentum.detach().cpu().numpy(), "epoch_loss": self.epoch_loss,
                  "done": self.done, "loss": self.loss, "accuracy": self.accuracy}  # fmt: skip
        with interrupts.deferred():
            save_progress(self.resume, self.key, arrays)


def _epoch_batches(batches: Batches, size: int, seed: int, epoch: int
                   ) -> tuple[list[tuple[Tensor, Tensor]], torch.Generator]:  # fmt: skip
    """The samples of ``batches`` reshuffled into batches of ``size`` for ``epoch``, and the
    generator (seeded by ``seed`` and ``epoch``: a resumed run draws what it would have) that
    then draws each step's ``t``."""
    inputs = torch.cat([x for x, _ in batches])
    targets = torch.cat([y for _, y in batches])
    (mixed,) = np.random.SeedSequence([seed, epoch]).generate_state(1)
    generator = torch.Generator().manual_seed(int(mixed))
    order = torch.randperm(len(targets), generator=generator).to(targets.device)
    return [(inputs[i], targets[i]) for i in order.split(size)], generator


def _train(model: nn.Module, layout: ParamLayout, a: Tensor, b: Tensor, batches: Batches,
           loss_fn: LossFn, options: ConnectOptions, progress: _Progress,
           log: Callable[[str], None] | None) -> None:  # fmt: skip
    """Train the bend from ``progress``'s epochs on; stops between steps on Ctrl-C (the epoch
    under way is dropped: the bend stays as the last finished epoch left it)."""
    from torch.func import functional_call

    size = options.batch_size or len(batches[0][1])
    for epoch in range(progress.epochs_done, options.epochs):
        bend = nn.Parameter(progress.bend.detach().clone())
        sgd = torch.optim.SGD([bend], lr=learning_rate(options, epoch),
                              momentum=options.momentum,
                              weight_decay=options.weight_decay)  # fmt: skip
        if progress.momentum is not None:
            sgd.state[bend]["momentum_buffer"] = progress.momentum.clone()
        model.train()
        epoch_batches, generator = _epoch_batches(batches, size, options.seed, epoch)
        total = seen = 0.0
        for inputs, targets in epoch_batches:
            if interrupts.requested():
                return
            t = float(torch.rand((), generator=generator, dtype=torch.float64))
            weights = bezier(torch.tensor(t, dtype=a.dtype, device=a.device), a, bend, b)
            loss = loss_fn(functional_call(model, layout.unflatten(weights), (inputs,)), targets)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise GdscopeError(f"training the curve diverged in epoch {epoch + 1} (loss "
                                   f"{value}): try a smaller lr", settings=["lr"])  # fmt: skip
            sgd.zero_grad()
            loss.backward()
            sgd.step()
            total += value * len(targets)
            seen += len(targets)
        progress.bend = bend.detach()
        momentum = sgd.state[bend].get("momentum_buffer")
        progress.momentum = momentum.detach().clone() if momentum is not None else None
        progress.epoch_loss[epoch] = total / seen
        progress.epochs_done = epoch + 1
        progress.save()
        if log is not None and (
            (epoch + 1) % max(1, options.epochs // 10) == 0 or epoch + 1 == options.epochs
        ):  # (ten lines at most)
            log(f"connect: epoch {epoch + 1}/{options.epochs}: mean loss along the curve "
                f"{total / seen:.4g}")  # fmt: skip


def _basis(a: Tensor, b: Tensor, bend: Tensor) -> tuple[Tensor, Tensor, np.ndarray]:
    """The plane's orthonormal directions ``u`` (along ``B − A``) and ``v`` (the part of
    ``bend − A`` across ``u``), in float64, and the corners' coordinates ``(3, 2)``."""
    a64, b64, bend64 = a.double(), b.double(), bend.double()
    along = b64 - a64
    distance = float(along.norm())
    if distance == 0:
        raise GdscopeError("the two networks have the same weights: there is nothing to connect")
    u = along / distance
    off = bend64 - a64
    across = off - (off @ u) * u
    height = float(across.norm())
    if height <= 1e-12 * distance:
        raise GdscopeError("the trained bend lies on the straight line: the curve is the line "
                           "(train longer, or with another lr)")  # fmt: skip
    v = across / height
    corners = np.array([[0.0, 0.0], [distance, 0.0], [float(off @ u), height]])
    return u, v, corners


def _axes(corners: np.ndarray, margin: float, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The plane's ``xs`` and ``ys``: the corners' extent and ``margin`` times the larger of
    its two sides beyond it on every side (so a flat triangle still shows the plane around)."""
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    pad = margin * float((hi - lo).max())
    xs, ys = (np.linspace(lo[i] - pad, hi[i] + pad, count) for i in (0, 1))
    return xs, ys


class _Points:
    """Every point measured, in order: the line's ``points``, the curve's, then the plane's
    rows (y) of ``grid`` points (x); each one's weights made when asked for."""

    def __init__(self, a: Tensor, b: Tensor, bend: Tensor, ts: np.ndarray, u: Tensor,
                 v: Tensor, xs: np.ndarray, ys: np.ndarray) -> None:  # fmt: skip
        self.a, self.b, self.bend, self.ts = a, b, bend, ts
        self.u, self.v, self.xs, self.ys = u, v, xs, ys

    def weights(self, index: int) -> Tensor:
        n = len(self.ts)
        if index < n:
            return line(float(self.ts[index]), self.a, self.b)
        if index < 2 * n:
            return bezier(float(self.ts[index - n]), self.a, self.bend, self.b)
        row, column = divmod(index - 2 * n, len(self.xs))
        x, y = float(self.xs[column]), float(self.ys[row])
        point = self.a.double() + x * self.u + y * self.v  # in float64, then the model's dtype
        return point.to(self.a.dtype)


def _measure(model: nn.Module, layout: ParamLayout, batches: Batches, loss_fn: LossFn,
             vectors: list[Tensor], batchnorm: bool) -> tuple[Tensor, Tensor | None]:  # fmt: skip
    """Mean loss and accuracy of each weight vector (``plane.evaluate_plane_loop``), the
    BatchNorm statistics recomputed for each first."""
    if not batchnorm:
        model.eval()
        return evaluate_plane_loop(model, batches, loss_fn, torch.stack(vectors), layout=layout)
    params = layout.targets(model)
    losses, accuracies = [], []
    for vector in vectors:
        with torch.no_grad():
            for name, value in layout.unflatten(vector).items():
                params[name].copy_(value)
        recompute_batchnorm(model, batches)
        model.eval()
        loss, accuracy = evaluate_plane_loop(model, batches, loss_fn, vector[None], layout=layout)
        losses.append(loss)
        accuracies.append(accuracy)
    accuracy = None if accuracies[0] is None else torch.cat(accuracies)  # type: ignore[arg-type]
    return torch.cat(losses), accuracy


def _key(a: Tensor, b: Tensor, layout: ParamLayout, options: ConnectOptions,
         batches: Batches) -> str:  # fmt: skip
    """What a resume file belongs to: the two networks, the options, the data."""
    data = [t for pair in batches for t in pair]
    return fingerprint(a, b, repr(layout.to_dict()), repr(sorted(options.to_dict().items())),
                       *data)  # fmt: skip


def connect(
    model_a: nn.Module,
    model_b: nn.Module,
    data: Any,
    loss_fn: LossFn,
    *,
    options: ConnectOptions | None = None,
    device: torch.device | str | None = None,
    resume: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
    **option_fields: Any,
) -> ConnectResult:
    """Train the Bézier curve between ``model_a`` and ``model_b`` (two networks of one
    architecture) on ``data`` (a ``DataLoader``, a ``Dataset`` or one ``(inputs, targets)``
    pair) with ``loss_fn``, then measure the loss along the line, along the curve and on
    their plane (see the module's docstring). ``options`` (or its fields as keywords, which
    override it) say how (``ConnectOptions``). Neither model is changed.

    ``resume``: a file the progress is saved to after every epoch and every chunk of points,
    and read from first, so a run cut short by Ctrl-C goes on where it stopped.
    ``progress(done, total)`` is called as points are measured; ``log`` gets a line after every
    tenth of the epochs. Ctrl-C (under ``gdscope``'s handler) stops between steps and chunks:
    the result then has ``epochs_done`` below ``options.epochs`` (nothing measured:
    ``trained`` is False) or ``unfinished`` points (NaN)."""
    options = replace(options or ConnectOptions(), **option_fields)
    where = resolve_device(device)
    layout = _check_pair(model_a, model_b)
    model = copy.deepcopy(model_a).to(where)
    dtype = next(iter(layout.targets(model).values())).dtype
    a = layout.vector(model_a).to(where, dtype)
    b = layout.vector(model_b).to(where, dtype)
    batches = materialize(data, where)
    batchnorm = has_batchnorm(model)
    ts = options.ts
    start = line(0.5, a, b)  # the paper's start: the straight line's midpoint
    grid = options.grid
    total = 2 * len(ts) + grid * grid
    file = Path(resume) if resume is not None else None
    done = _Progress(_key(a, b, layout, options, batches), start, total, options.epochs, file)
    with section(keep_on_interrupt=False):
        _train(model, layout, a, b, batches, loss_fn, options, done, log)
    meta: dict[str, Any] = {"device": str(where)}
    bend = done.bend.to(where, dtype)
    trained = done.epochs_done == options.epochs
    if not trained:  # Ctrl-C while training: no point is measured (the bend is not the trained one)
        u = v = torch.zeros_like(a, dtype=torch.float64)
        corners = np.full((3, 2), np.nan)
        xs = ys = np.full(grid, np.nan)
    else:
        u, v, corners = _basis(a, b, bend)
        xs, ys = _axes(corners, options.margin, grid)
        points = _Points(a, b, bend, ts, u.to(where), v.to(where), xs, ys)
        todo = np.flatnonzero(~done.done)

        def compute(indices: np.ndarray) -> tuple[Tensor, Tensor | None]:
            vectors = [points.weights(int(i)) for i in indices]
            return _measure(model, layout, batches, loss_fn, vectors, batchnorm)

        def keep(indices: np.ndarray, result: tuple[Tensor, Tensor | None]) -> None:
            loss, accuracy = result
            done.loss[indices] = loss.cpu().numpy()
            if accuracy is not None:
                done.accuracy[indices] = accuracy.cpu().numpy()
            done.done[indices] = True
            done.save()
            if progress is not None:
                progress(int(done.done.sum()), total)

        if progress is not None:
            progress(int(done.done.sum()), total)
        if log is not None and len(todo):
            log(f"connect: measuring {len(todo)} points: the line's and the curve's "
                f"{len(ts)} each and the plane's {grid}×{grid}, as far as not done")  # fmt: skip
        with section(keep_on_interrupt=False):
            run_chunks(spans(todo, LOOP_CHUNK), keep, compute=compute)
    n = len(ts)
    classify = bool(np.isfinite(done.accuracy).any())
    accuracy = done.accuracy if classify else None
    shape = (grid, grid)
    plane = ModelSurface(
        xs, ys, done.loss[2 * n :].reshape(shape),
        None if accuracy is None else accuracy[2 * n :].reshape(shape),
        a.cpu(), u.to(dtype).cpu(), v.to(dtype).cpu(), layout, {"points": grid * grid},
    )  # fmt: skip
    unfinished = int((~done.done).sum())
    return ConnectResult(
        ts=ts, line_loss=done.loss[:n].copy(), curve_loss=done.loss[n : 2 * n].copy(),
        line_accuracy=None if accuracy is None else accuracy[:n].copy(),
        curve_accuracy=None if accuracy is None else accuracy[n : 2 * n].copy(),
        plane=plane, corners=corners, bend=bend.cpu(), layout=layout,
        epoch_loss=done.epoch_loss.copy(), options=options, epochs_done=done.epochs_done,
        batchnorm=batchnorm, unfinished=unfinished, meta=meta,
    )  # fmt: skip


def options_from(raw: Mapping[str, Any], *, where: str = "options") -> ConnectOptions:
    """``ConnectOptions`` from a record's dictionary, refused in one line if it does not fit."""
    try:
        return ConnectOptions(**raw)
    except TypeError as error:
        raise GdscopeError(f"{where}: {error}") from None
