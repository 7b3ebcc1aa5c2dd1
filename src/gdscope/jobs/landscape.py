"""Whole model-landscape jobs behind ``gdscope landscape`` and ``gdscope example``."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from gdscope.errors import GdscopeError
from gdscope.nets.directions import line_direction, pca_plane, random_direction
from gdscope.nets.plane import ModelSurface, evaluate_plane, materialize, resolve_device
from gdscope.nets.projection import Honesty, ProjectedPath, honesty, project
from gdscope.nets.recorder import RecordedPath, open_path

__all__ = [
    "LandscapeJob",
    "LandscapeResult",
    "animate",
    "draw_landscape",
    "load_callable",
    "model_landscape",
    "plane_labels",
    "run_example",
    "run_job",
]

LOSSES: dict[str, Callable[[], nn.Module]] = {
    "crossentropy": nn.CrossEntropyLoss, "mse": nn.MSELoss, "l1": nn.L1Loss,
    "nll": nn.NLLLoss, "bce": nn.BCEWithLogitsLoss,
}  # fmt: skip


def load_callable(spec: str, what: str) -> Callable[..., Any]:
    """``package.module:function`` (the current directory is importable, as with ``python -m``)."""
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise GdscopeError(f"{what} must look like module:function, got {spec!r}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise GdscopeError(f"{what}: cannot import {module_name!r} ({error})") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise GdscopeError(f"{what}: {module_name} has no callable {name!r}")
    return function


Axis = tuple[float, float, int]


@dataclass(frozen=True)
class LandscapeJob:
    """Everything ``gdscope landscape`` needs, parsed and typed."""

    model: str
    data: str
    loss: str = "crossentropy"
    checkpoint: Path | None = None
    path: Path | None = None
    directions: str = "random"
    to: Path | None = None
    norm: str = "filter"
    ignore: str = "biasbn"
    states: bool = False
    """Directions over parameters and BatchNorm's running statistics (``dir_type=states``)."""
    seed: int = 0
    x: Axis | None = None
    """``(lo, hi, count)``; None: the path's extent with margins on a PCA plane, 0 and 1 with
    half a line's length either side on a line, else ``(-1, 1, 21)`` (the reference's habit)."""
    y: Axis | None = None
    line: bool = False
    """A 1-D landscape along ``x`` only (always so for ``directions="line"``)."""
    device: str = "cpu"
    chunk: int | str = "auto"
    strategy: str = "auto"
    memory_format: str = "auto"
    plan: tuple[tuple[str, int], ...] = ()
    """Auto's trials to repeat (a replay; see ``evaluate_plane``)."""
    backend: Any = None
    resume: Path | None = None

    def __post_init__(self) -> None:
        _check_plane(self.directions, path=self.path is not None, to=self.to is not None,
                     states=self.states, x=self.x, y=self.y, line=self.line)  # fmt: skip


def _check_plane(directions: str, *, path: bool, to: bool, states: bool, x: Axis | None,
                 y: Axis | None, line: bool) -> None:  # fmt: skip
    """The options of a plane (or line) that cannot work together, refused before any work."""
    if directions not in ("random", "pca", "line"):
        raise GdscopeError(f"directions must be random, pca or line, got {directions!r}")
    if directions == "pca" and not path:
        raise GdscopeError("PCA directions need a recorded path (--path)")
    if states and directions == "pca":
        raise GdscopeError("a recorded path holds parameters only: PCA takes no --states")
    if directions == "line" and not to:
        raise GdscopeError("a line needs the model at its end (--to CHECKPOINT)")
    for axis in (x, y):
        if axis is not None and not (len(axis) == 3 and axis[0] < axis[1] and 2 <= axis[2] <= 501):
            raise GdscopeError(f"a grid axis needs LO < HI and 2..501 points, got {axis}")
    if y is not None and (line or directions == "line"):
        raise GdscopeError("a line has no y axis: drop --y")


def fit_axis(values: np.ndarray, count: int) -> tuple[float, float, int]:
    """An axis over ``values`` with a quarter of their spread as margin on either side."""
    pad = 0.25 * (float(np.ptp(values)) or 1.0)
    return float(values.min()) - pad, float(values.max()) + pad, count


@dataclass(frozen=True, eq=False)
class LandscapeResult:
    surface: ModelSurface
    path: RecordedPath | None = None
    projected: ProjectedPath | None = None
    honesty: Honesty | None = None
    explained: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    marks: dict[float, str] = field(default_factory=dict)
    """Labelled positions along a line (the two models of a line between them)."""


CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")


def _state_dict_in(saved: Any) -> Any:
    """The model's weights in a checkpoint as people save them: a bare ``state_dict``, or one
    under a usual key (``{"model_state_dict": ..., "optimizer_state_dict": ...}`` as in torch's
    tutorial, Lightning's ``"state_dict"``, ``"model"``, …), with the ``module.`` prefix that
    ``DataParallel``/DDP add taken off."""
    if isinstance(saved, dict) and not any(isinstance(v, Tensor) for v in saved.values()):
        for key in CHECKPOINT_KEYS:
            if isinstance(saved.get(key), dict):
                saved = saved[key]
                break
    if isinstance(saved, dict) and saved and all(str(k).startswith("module.") for k in saved):
        saved = {k[len("module.") :]: v for k, v in saved.items()}
    return saved


def _load_state(model: nn.Module, file: Path) -> None:
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # the file is the user's: any failure means "not a checkpoint"
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise GdscopeError(f"cannot load the checkpoint {file}: {first}") from None
    state = _state_dict_in(state)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as error:
        first = str(error).splitlines()[0]
        raise GdscopeError(f"{file} does not fit the model: {first}") from None


def model_landscape(
    model: nn.Module,
    data: Any,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    *,
    path: RecordedPath | str | os.PathLike[str] | None = None,
    directions: str = "random",
    to: nn.Module | None = None,
    norm: str = "filter",
    ignore: str = "biasbn",
    seed: int = 0,
    states: bool = False,
    x: Axis | None = None,
    y: Axis | None = None,
    line: bool = False,
    device: str | torch.device = "cpu",
    chunk: int | str = "auto",
    strategy: str = "auto",
    memory_format: str = "auto",
    plan: Sequence[tuple[str, int]] = (),
    backend: Any = None,
    resume: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    names: tuple[str, str] = ("the model", "the other model"),
    points: int | None = None,
) -> LandscapeResult:
    """The landscape of ``model`` (at its current weights) on ``data``, from a notebook.

    ``directions``: ``"random"`` (normalized with ``norm``/``ignore``, seeds ``seed`` and
    ``seed + 1``), ``"pca"`` of the recorded ``path`` (a ``Recorder.result()`` or its folder),
    or ``"line"`` towards the model ``to`` (``names`` label its two ends). ``x``/``y`` are
    ``(lo, hi, count)``; by default the grid frames a PCA path, spans -0.5…1.5 on a line, else
    -1…1, with ``points`` samples per axis (default 21; 41 on a line). A ``path`` is projected
    on the plane and checked for honesty. The rest is passed to ``evaluate_plane``. Draw the
    result with ``draw_landscape``.
    """
    _check_plane(directions, path=path is not None, to=to is not None, states=states, x=x, y=y,
                 line=line)  # fmt: skip
    model.eval()
    recorded = path if isinstance(path, RecordedPath) or path is None else open_path(path)
    if recorded is not None:
        recorded.layout.check(model)
    if points is not None and not 2 <= points <= 501:
        raise GdscopeError(f"points per axis must be in [2, 501], got {points}")
    explained = centre = on_plane = None
    marks: dict[float, str] = {}
    count = points or 21
    grid_x, grid_y = x or (-1.0, 1.0, count), y or (-1.0, 1.0, count)
    if directions == "pca":
        assert recorded is not None
        plane = pca_plane(recorded)
        dx, dy, centre, explained = plane.dx, plane.dy, plane.centre, plane.explained_variance_ratio
        # The plane is known before any loss is computed: frame the path unless told otherwise.
        on_plane = project(recorded, plane)
        grid_x, grid_y = x or fit_axis(on_plane.xs, count), y or fit_axis(on_plane.ys, count)
    elif directions == "line":
        assert to is not None
        dx, dy = line_direction(model, to, states=states), None
        grid_x, marks = x or (-0.5, 1.5, points or 41), {0.0: names[0], 1.0: names[1]}
    else:
        options = {"norm": norm, "ignore": ignore, "states": states}
        dx = random_direction(model, seed=seed, **options)
        dy = random_direction(model, seed=seed + 1, **options)
    if line:
        dy = None
    xs = np.linspace(*grid_x[:2], grid_x[2])
    ys = np.linspace(*grid_y[:2], grid_y[2]) if dy is not None else [0.0]
    device = resolve_device(device)
    batches = materialize(data, device)
    surface = evaluate_plane(
        model, batches, loss_fn, dx=dx, dy=dy, xs=xs, ys=ys, centre=centre, chunk=chunk,
        device=device, progress=progress, resume=resume, backend=backend, strategy=strategy,
        states=states, memory_format=memory_format, plan=plan,
    )  # fmt: skip
    projected = check = None
    notes = []
    if "vmap_failure" in surface.meta:
        notes.append(f"evaluated point by point: {surface.meta['vmap_failure']}")
    if not_finite := _not_finite(surface):
        notes.append(not_finite)
    if recorded is not None and not surface.is_line:
        projected = on_plane if on_plane is not None else project(recorded, surface)
        check = honesty(model, batches, loss_fn, recorded, projected, surface)
        if check.warning():
            notes.append(check.warning())
    return LandscapeResult(surface, recorded, projected, check, explained, notes, marks)


def _not_finite(surface: ModelSurface) -> str | None:
    """Says how much of the surface overflowed (drawn blank), if any did."""
    bad = int((~np.isfinite(surface.loss)).sum())
    if not bad:
        return None
    return f"the loss is not finite at {bad} of {surface.loss.size} grid points (drawn blank)"


def run_job(job: LandscapeJob, *, progress: Callable[[int, int], None] | None = None
            ) -> LandscapeResult:  # fmt: skip
    """Import the job's model, data and loss, load its checkpoints, run ``model_landscape``."""
    make_model = load_callable(job.model, "--model")
    make_data = load_callable(job.data, "--data")
    if job.loss not in LOSSES and ":" not in job.loss:
        names = ", ".join(LOSSES)
        raise GdscopeError(f"--loss must be one of {names}, or module:function, got {job.loss!r}")
    loss_fn = LOSSES[job.loss]() if job.loss in LOSSES else load_callable(job.loss, "--loss")()
    model = make_model()
    if not isinstance(model, nn.Module):
        raise GdscopeError(f"--model {job.model} returned {type(model).__name__}, not nn.Module")
    if job.checkpoint is not None:
        _load_state(model, job.checkpoint)
    end = None
    if job.to is not None:
        end = make_model()
        _load_state(end, job.to)
    first = job.checkpoint.name if job.checkpoint is not None else "the model"
    try:
        return model_landscape(
            model, make_data(), loss_fn, path=job.path, directions=job.directions, to=end,
            norm=job.norm, ignore=job.ignore, seed=job.seed, states=job.states, x=job.x,
            y=job.y, line=job.line, device=job.device, chunk=job.chunk, strategy=job.strategy,
            memory_format=job.memory_format, plan=job.plan, backend=job.backend,
            resume=job.resume, progress=progress,
            names=(first, job.to.name if job.to is not None else ""),
        )  # fmt: skip
    except GdscopeError:
        raise  # already says what to fix
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        # The model, data and loss are the user's: say which ones failed together, and how.
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise GdscopeError(
            f"evaluating {job.model} on {job.data} with loss {job.loss} failed: {first}"
        ) from None


def draw_landscape(result: LandscapeResult, *, view: str = "contour", metric: str = "loss",
         log: bool = False, title: str | None = None, fig: Figure | None = None
         ) -> Figure:  # fmt: skip
    """The map (or line) with the projected path, and the honesty chart when there is a path.

    ``metric="accuracy"`` maps the accuracy instead of the loss (heatmap or contours; a line
    always shows both)."""
    from gdscope.render.models import plot_honesty, plot_line, surface_landscape
    from gdscope.render.panels import plot_descent, plot_landscape, plot_path

    fig = fig if fig is not None else Figure(figsize=(12 if result.honesty else 6.5, 5.4))
    surface = result.surface
    if surface.is_line:
        ax = fig.add_subplot()
        plot_line(surface, ax=ax, log=log, marks=result.marks)
        ax.set_title(title or "loss along the direction")
        fig.tight_layout()
        return fig
    columns = 2 if result.honesty is not None else 1
    landscape = surface_landscape(surface, metric, labels=plane_labels(result))
    trajectory = recorded_trajectory(result)
    if metric == "accuracy":
        if view == "surface":
            raise GdscopeError("the accuracy is mapped as a heatmap or contours, not a surface")
        ax = fig.add_subplot(1, columns, 1)
        plot_landscape(landscape, ax=ax, log=log, kind=view, mark_minimum=False)
        if trajectory is not None:
            plot_path(trajectory, ax=ax, grid=landscape.grid)
            ax.legend(loc="lower right", fontsize=7, framealpha=0.8)
    elif view == "surface":
        from gdscope.render.surface3d import plot_surface3d

        ax = fig.add_subplot(1, columns, 1, projection="3d")
        plot_surface3d(landscape, trajectory, ax=ax, log=log)
    else:
        ax = fig.add_subplot(1, columns, 1)
        if trajectory is not None:
            plot_descent(landscape, trajectory, ax=ax, log=log, kind=view, legend=True)
        else:
            plot_landscape(landscape, ax=ax, log=log, kind=view)
    if view != "surface":
        ax.set_aspect("auto")  # the two directions' scales are unrelated
    ax.set_title(title or f"{metric} landscape")
    if (not_finite := _not_finite(surface)) and view != "surface":
        ax.text(0.02, 0.98, not_finite, transform=ax.transAxes, va="top", fontsize=7,
                color="#d7191c", wrap=True)  # fmt: skip
    if result.honesty is not None and result.path is not None:
        plot_honesty(result.honesty, np.asarray(result.path.steps), ax=fig.add_subplot(1, 2, 2))
    fig.tight_layout()
    return fig


def recorded_trajectory(result: LandscapeResult) -> Any:
    """The recorded path on the plane as a ``Trajectory`` at its models' true losses (what the
    renderers draw), or None without a projected path."""
    from gdscope.render.models import path_trajectory

    if result.path is None or result.projected is None or result.honesty is None:
        return None
    return path_trajectory(result.projected, result.honesty.true_loss,
                           optimizer=result.path.optimizer)  # fmt: skip


def plane_labels(result: LandscapeResult) -> tuple[str, str]:
    """Names of the plane's (vertical, horizontal) axes: the principal components with their
    share of the path's variance (as the reference labels them), or the two directions."""
    if result.explained is None:
        return "y direction", "x direction"
    ratio = result.explained
    return f"PC2 ({100 * ratio[1]:.1f}%)", f"PC1 ({100 * ratio[0]:.1f}%)"


def animate(result: LandscapeResult, *, view: str = "contour", log: bool = False,
            title: str | None = None, options: Any = None) -> Any:  # fmt: skip
    """An ``Animator`` of the recorded path moving over its plane (a map, or the 3D surface),
    counting snapshots and optimizer steps, with the models' true loss drawn alongside."""
    from gdscope.render.animation import Animator
    from gdscope.render.models import surface_landscape

    trajectory = recorded_trajectory(result)
    if trajectory is None or result.path is None:
        raise GdscopeError("an animation shows a recorded path on a plane: give --path")
    name = result.path.optimizer
    steps = np.asarray(result.path.steps)
    return Animator(
        [surface_landscape(result.surface, labels=plane_labels(result))], [[trajectory]],
        options=options, log=log, kind=view, title=title or "the recorded path on its plane",
        equal_aspect=False, counter=lambda i: f"snapshot {i:>4}  step {int(steps[i]):>6}",
        step_label="snapshot", curve_labels=[f"{name or 'model'}: true loss"],
    )  # fmt: skip


EXAMPLES = {"mlp": "gdscope.examples.mlp", "cnn": "gdscope.examples.cnn"}


def run_example(
    name: str,
    out: Path,
    *,
    epochs: int = 3,
    grid: int = 21,
    device: str = "cpu",
    force: bool = False,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Train the example with SGD+momentum and with Adam (recording every few steps), draw each
    path on its PCA plane with the honesty chart, and save figures and surfaces into ``out``."""
    from gdscope.files import check_target, save_figure
    from gdscope.nets.fit import fit
    from gdscope.nets.surface_io import save_surface

    if name not in EXAMPLES:
        raise GdscopeError(f"unknown example {name!r}; choose one of {', '.join(EXAMPLES)}")
    if out.exists() and not out.is_dir():
        raise GdscopeError(f"{out} is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(EXAMPLES[name])
    written: list[Path] = []
    optimizers = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
        "adam": lambda p: torch.optim.Adam(p, lr=0.01),
    }
    targets = {label: (out / f"{name}-{label}.png", out / f"{name}-{label}.npz")
               for label in optimizers}  # fmt: skip
    for pair in targets.values():
        for target in pair:
            check_target(target, force=force)
    batches = materialize(module.make_loader(), resolve_device(device))
    for label, make_optimizer in optimizers.items():
        model = module.make_model()
        # A fresh seeded loader per optimizer: both see the same shuffles.
        train_loader = module.make_loader(shuffle=True)
        every = max(1, epochs * len(train_loader) // 60)
        trained = fit(model, train_loader, nn.CrossEntropyLoss(),
                      make_optimizer(model.parameters()), epochs=epochs, every=every)  # fmt: skip
        result = model_landscape(model, batches, nn.CrossEntropyLoss(), path=trained.path,
                                 directions="pca", points=grid, device=device)  # fmt: skip
        assert result.honesty is not None and result.explained is not None
        title = f"{name}, {trained.path.optimizer}, {epochs} epochs"
        fig = draw_landscape(result, view="contour", log=True, title=title)
        figure, arrays = targets[label]
        written.append(save_figure(fig, figure, force=force))
        written += save_surface(result.surface, arrays, projected=result.projected,
                                explained=result.explained, force=force)  # fmt: skip
        ratio, check = result.explained, result.honesty
        log(f"{name} {label}: PCA explains {100 * ratio[0]:.1f}% + {100 * ratio[1]:.1f}%; "
            f"largest gap between the surface and the true loss {np.abs(check.gap).max():.3g}"
            + (f" — {check.warning()}" if check.warning() else ""))  # fmt: skip
    return written
