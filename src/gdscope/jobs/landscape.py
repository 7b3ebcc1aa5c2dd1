"""Whole model-landscape jobs behind ``gdscope landscape`` and ``gdscope example``."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from gdscope.devices import resolve_device
from gdscope.errors import GdscopeError, first_line, one_of, unknown
from gdscope.jobs.plotconfig import VIEWS
from gdscope.nets.convexity import ConvexityOptions
from gdscope.nets.plane import EvaluationOptions, ModelSurface, materialize
from gdscope.nets.survey import (
    LandscapeResult,
    PlaneOptions,
    check_convexity,
    model_landscape,
    not_finite_note,
    open_runs,
    split_options,
)

__all__ = [
    "DEFAULT_LOSS",
    "LOSS_HELP",
    "USERS_ERRORS",
    "LandscapeJob",
    "LandscapeResult",
    "animate",
    "draw_landscape",
    "fresh_model",
    "from_h5",
    "landscape_command",
    "load_callable",
    "load_loss",
    "load_model",
    "load_parts",
    "model_landscape",
    "plane_labels",
    "run_example",
    "run_job",
    "run_trajectories",
    "split_callable",
    "state_dict_in",
    "users_code",
]

LOSSES: dict[str, Callable[[], nn.Module]] = {
    "crossentropy": nn.CrossEntropyLoss, "mse": nn.MSELoss, "l1": nn.L1Loss,
    "nll": nn.NLLLoss, "bce": nn.BCEWithLogitsLoss,
}  # fmt: skip
DEFAULT_LOSS = "crossentropy"
"""The loss of a network job (landscape, hessian, studies) unless ``--loss`` names another."""
LOSS_HELP = f"{', '.join(LOSSES)}, or MODULE:FUNCTION returning one (default {DEFAULT_LOSS})"


def split_callable(spec: str, what: str) -> tuple[str, str]:
    """``module:function`` as its two parts; refused (naming the setting ``what``) otherwise."""
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise GdscopeError(f"{what} must look like module:function, got {spec!r}", settings=[what])
    return module_name, name


def load_callable(spec: str, what: str) -> Callable[..., Any]:
    """``package.module:function`` (the current directory is importable, as with ``python -m``)."""
    module_name, name = split_callable(spec, what)
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise GdscopeError(
            f"{what}: cannot import {module_name!r} ({error})", settings=[what]
        ) from None
    function = getattr(module, name, None)
    if not callable(function):
        raise GdscopeError(f"{what}: {module_name} has no callable {name!r}", settings=[what])
    return function


def load_loss(spec: str, what: str = "loss") -> Any:
    """A loss by name (``LOSSES``) or from a ``module:function`` factory."""
    if spec not in LOSSES and ":" not in spec:
        names = ", ".join(LOSSES)
        raise GdscopeError(
            f"{what} must be one of {names}, or module:function, got {spec!r}", settings=[what]
        )
    return LOSSES[spec]() if spec in LOSSES else load_callable(spec, what)()


def load_model(spec: str, what: str = "model") -> nn.Module:
    """The model ``module:function`` returns, refused unless it is an ``nn.Module``."""
    return _module(load_callable(spec, what)(), spec, what)


def _module(made: Any, spec: str, what: str) -> nn.Module:
    if not isinstance(made, nn.Module):
        raise GdscopeError(
            f"{what} {spec} returned {type(made).__name__}, not nn.Module", settings=[what]
        )
    return made


@dataclass(frozen=True, init=False)
class LandscapeJob:
    """Everything ``gdscope landscape`` needs, parsed, typed and checked: the model, data and
    loss to import (``module:function``), the checkpoints to load (``checkpoint`` into the
    model, ``to`` into the line's end), the recorded ``path`` (a folder, or a sequence of
    several; kept as ``paths``, which may be given instead, as ``dataclasses.replace`` does),
    the ``plane`` and the ``evaluation``, and the ``convexity`` map to add (None: none). Like
    ``model_landscape``, the fields of ``plane`` and ``evaluation`` may also be given as
    keywords (``directions="pca"``, ``strategy="loop"``, …).

    Several paths share one plane (``model_landscape``); without a ``checkpoint`` it is centred
    on the first path's last snapshot (one path: on the model as ``model`` makes it)."""

    model: str
    data: str
    loss: str
    checkpoint: Path | None
    paths: tuple[Path, ...]
    to: Path | None
    plane: PlaneOptions
    evaluation: EvaluationOptions
    convexity: ConvexityOptions | None

    def __init__(
        self,
        model: str,
        data: str,
        *,
        loss: str = DEFAULT_LOSS,
        checkpoint: Path | None = None,
        path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        paths: Sequence[str | os.PathLike[str]] = (),
        to: Path | None = None,
        plane: PlaneOptions | None = None,
        evaluation: EvaluationOptions | None = None,
        convexity: ConvexityOptions | None = None,
        **options: Any,
    ) -> None:
        if path is not None and paths:
            raise GdscopeError("give path or paths, not both", settings=["path"])
        given = [path] if isinstance(path, (str, os.PathLike)) else (path or paths)
        if path is not None and not given:
            raise GdscopeError("path is an empty list: give one recorded path or more",
                               settings=["path"])  # fmt: skip
        paths = tuple(Path(p) for p in given)
        plane, evaluation = split_options(options, plane, evaluation, path=bool(paths),
                                          to=to is not None, several=len(paths) > 1)  # fmt: skip
        check_convexity(convexity, plane)
        for name, value in (("model", model), ("data", data), ("loss", loss),
                            ("checkpoint", checkpoint), ("paths", paths), ("to", to),
                            ("plane", plane), ("evaluation", evaluation),
                            ("convexity", convexity)):  # fmt: skip
            object.__setattr__(self, name, value)

    @property
    def path(self) -> Path | None:
        """The (first) recorded path, or None."""
        return self.paths[0] if self.paths else None


CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")


def state_dict_in(saved: Any) -> Any:
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
        # (torch's first line is a paragraph about weights_only, or a bare number)
        raise GdscopeError(f"cannot load the checkpoint {file}: not a torch.save file of "
                           f"tensors ({type(error).__name__})") from None  # fmt: skip
    state = state_dict_in(state)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as error:
        # torch lists each mismatch on its own line after a heading: all of them, in one
        details = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
        said = "; ".join(details) or first_line(error)
        raise GdscopeError(f"{file} does not fit the model: {said}") from None


def load_parts(
    model: str, data: str, loss: str
) -> tuple[Callable[[], nn.Module], Callable[[], Any], Callable[[Tensor, Tensor], Tensor]]:
    """Import ``--model`` and ``--data`` (``module:function``) and make ``--loss`` (a name in
    ``LOSSES`` or a factory): the model's factory (checked to make an ``nn.Module``), the data's
    factory, and the loss."""
    make_model = load_callable(model, "model")
    make_data = load_callable(data, "data")
    loss_fn = load_loss(loss)

    def checked() -> nn.Module:
        return _module(make_model(), model, "--model")

    return checked, make_data, loss_fn


def fresh_model(make_model: Callable[[], nn.Module], checkpoint: Path | None) -> nn.Module:
    """A new model, with the ``checkpoint``'s weights if one is given."""
    model = make_model()
    if checkpoint is not None:
        _load_state(model, checkpoint)
    return model


USERS_ERRORS = (RuntimeError, ValueError, TypeError, IndexError, KeyError, OSError)
"""What the user's model, data or loss code may raise (a wrong shape, a missing file, …)."""


@contextmanager
def users_code(doing: str, *, settings: Sequence[str] = ()) -> Iterator[None]:
    """Run the user's model, data and loss: an error there ends in one line saying what was
    being done with which of them (``doing``, which names ``settings``) and what failed, not a
    traceback."""
    try:
        yield
    except GdscopeError:
        raise  # already says what to fix
    except USERS_ERRORS as error:
        first = first_line(error)
        raise GdscopeError(f"{doing} failed: {first}", settings=settings) from None


def run_job(
    job: LandscapeJob,
    *,
    progress: Callable[[int, int], None] | None = None,
    convexity_progress: Callable[[int, int], None] | None = None,
) -> LandscapeResult:
    """Import the job's model, data and loss, load its checkpoints, run ``model_landscape``
    (``progress`` counts grid points, ``convexity_progress`` the convexity map's)."""
    make_model, make_data, loss_fn = load_parts(job.model, job.data, job.loss)
    first = job.checkpoint.name if job.checkpoint is not None else "the model"
    path: Any = job.path
    names = None
    with users_code(f"evaluating {job.model} on {job.data} with loss {job.loss}"):
        model = fresh_model(make_model, job.checkpoint)
        if len(job.paths) > 1:
            path, names = open_runs(job.paths)
            if job.checkpoint is None:  # the shared plane through the first run's end
                path[0].layout.check(model)
                model.load_state_dict(path[0].state(len(path[0]) - 1), strict=False)
        end = fresh_model(make_model, job.to) if job.to is not None else None
        return model_landscape(
            model, make_data(), loss_fn, path=path, run_names=names, to=end, progress=progress,
            names=(first, job.to.name if job.to is not None else ""), plane=job.plane,
            evaluation=job.evaluation, convexity=job.convexity,
            convexity_progress=convexity_progress,
        )  # fmt: skip


def draw_landscape(result: LandscapeResult, *, view: str = "contour", metric: str = "loss",
         log: bool = False, title: str | None = None, fig: Figure | None = None
         ) -> Figure:  # fmt: skip
    """The map (or line) with the projected path, and the honesty chart when there is a path;
    several paths (``result.runs``) each in its colour, named in the legend.

    ``metric="accuracy"`` maps the accuracy instead of the loss (heatmap or contours; a line
    always shows both)."""
    from gdscope.render.networks import (
        ACCURACY_CMAP,
        plot_honesty,
        plot_honesty_runs,
        plot_line,
        plot_runs,
        plot_runs3d,
        surface_landscape,
    )
    from gdscope.render.panels import plot_descent, plot_landscape, plot_path

    check_view(view)
    extra = (result.honesty is not None) + (result.convexity is not None)
    fig = fig if fig is not None else Figure(figsize=(6.5 + 5.5 * extra, 5.4))
    surface = result.surface
    if surface.is_line:
        ax = fig.add_subplot()
        plot_line(surface, ax=ax, log=log, marks=result.marks)
        ax.set_title(title or "loss along the direction")
        fig.tight_layout()
        return fig
    columns = 1 + extra
    landscape = surface_landscape(surface, metric, labels=plane_labels(result))
    trajectory = recorded_trajectory(result)
    runs = run_trajectories(result)
    if metric == "accuracy":
        if view == "surface":
            raise GdscopeError("the accuracy is mapped as a heatmap or contours, not a surface")
        ax = fig.add_subplot(1, columns, 1)
        if runs:
            plot_runs(landscape, runs, ax=ax, log=log, kind=view, cmap=ACCURACY_CMAP,
                      mark_minimum=False)  # fmt: skip
        else:
            plot_landscape(landscape, ax=ax, log=log, kind=view, mark_minimum=False,
                           cmap=ACCURACY_CMAP)  # fmt: skip
        if trajectory is not None and not runs:
            plot_path(trajectory, ax=ax, grid=landscape.grid)
            ax.legend(loc="lower right", fontsize=7, framealpha=0.8)
    elif view == "surface":
        from gdscope.render.surface3d import plot_surface3d

        ax = fig.add_subplot(1, columns, 1, projection="3d")
        if runs:
            plot_runs3d(landscape, runs, ax=ax, log=log)
        else:
            plot_surface3d(landscape, trajectory, ax=ax, log=log)
    else:
        ax = fig.add_subplot(1, columns, 1)
        if runs:
            plot_runs(landscape, runs, ax=ax, log=log, kind=view)
        elif trajectory is not None:
            plot_descent(landscape, trajectory, ax=ax, log=log, kind=view, legend=True)
        else:
            plot_landscape(landscape, ax=ax, log=log, kind=view)
    if view != "surface":
        ax.set_aspect("auto")  # the two directions' scales are unrelated
    ax.set_title(title or f"{metric} landscape")
    if (not_finite := not_finite_note(surface)) and view != "surface":
        ax.text(0.02, 0.98, not_finite, transform=ax.transAxes, va="top", fontsize=7,
                color="#d7191c", wrap=True)  # fmt: skip
    if result.runs:
        plot_honesty_runs([(run.name, run.honesty, np.asarray(run.path.steps))
                           for run in result.runs], ax=fig.add_subplot(1, columns, 2))  # fmt: skip
    elif result.honesty is not None and result.path is not None:
        plot_honesty(
            result.honesty, np.asarray(result.path.steps), ax=fig.add_subplot(1, columns, 2)
        )
    if result.convexity is not None:
        from gdscope.render.networks import plot_convexity

        plot_convexity(result.convexity, ax=fig.add_subplot(1, columns, columns),
                       labels=plane_labels(result))  # fmt: skip
    fig.tight_layout()
    return fig


def check_view(view: str) -> None:
    """Refuse a view that is not one of ``VIEWS`` (the one list the CLI and page offer)."""
    one_of("view", view, VIEWS)


def recorded_trajectory(result: LandscapeResult) -> Any:
    """The recorded path on the plane as a ``Trajectory`` at its models' true losses (what the
    renderers draw), or None without a projected path. A path read from a file with its
    surface (``from_h5``) has no models to evaluate: it is drawn at the surface's values."""
    from gdscope.render.networks import path_trajectory

    if result.projected is None or result.surface.is_line:
        return None
    projected = result.projected
    losses = (result.honesty.true_loss if result.honesty is not None
              else on_surface(result.surface, projected.xs, projected.ys))  # fmt: skip
    optimizer = result.path.optimizer if result.path is not None else None
    return path_trajectory(projected, losses, optimizer=optimizer)


def run_trajectories(result: LandscapeResult) -> list[tuple[str, Any]]:
    """Each of several recorded paths (``result.runs``) as ``(name, Trajectory)`` at its
    models' true losses; empty with one path or none."""
    from gdscope.render.networks import path_trajectory

    return [(run.name, path_trajectory(run.projected, run.honesty.true_loss,
                                       optimizer=run.path.optimizer))
            for run in result.runs]  # fmt: skip


def on_surface(surface: ModelSurface, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The surface's loss at plane points, bilinear between grid points; NaN off the grid."""
    gx, gy, z = surface.xs, surface.ys, surface.loss
    i = np.clip(np.searchsorted(gx, xs) - 1, 0, len(gx) - 2)
    j = np.clip(np.searchsorted(gy, ys) - 1, 0, len(gy) - 2)
    tx = (xs - gx[i]) / (gx[i + 1] - gx[i])
    ty = (ys - gy[j]) / (gy[j + 1] - gy[j])
    value = ((1 - ty) * ((1 - tx) * z[j, i] + tx * z[j, i + 1])
             + ty * ((1 - tx) * z[j + 1, i] + tx * z[j + 1, i + 1]))  # fmt: skip
    inside = (xs >= gx[0]) & (xs <= gx[-1]) & (ys >= gy[0]) & (ys <= gy[-1])
    return np.where(inside, value, np.nan)


def from_h5(surface: Path, *, proj: Path | None = None) -> LandscapeResult:
    """A surface computed by the reference implementation (tomgoldstein/loss-landscape), or
    saved by ``save_surface`` as .h5, with the path its projection file holds: what
    ``draw_landscape`` and ``animate`` draw (see ``nets.surface_io.read_surface``)."""
    from gdscope.nets.surface_io import read_surface

    read, projected = read_surface(surface, proj=proj)
    notes = [note] if (note := not_finite_note(read)) else []
    return LandscapeResult(read, projected=projected, notes=notes)


def plane_labels(result: LandscapeResult) -> tuple[str, str]:
    """Names of the plane's (vertical, horizontal) axes: the principal components with their
    share of the path's variance (as the reference labels them), or the two directions."""
    if result.eigenvalues is not None:
        top = result.eigenvalues
        return (
            f"Hessian eigenvector 2 (λ = {top[1]:.3g})",
            f"Hessian eigenvector 1 (λ = {top[0]:.3g})",
        )
    if result.explained is None:
        return "y direction", "x direction"
    ratio = result.explained
    return f"PC2 ({100 * ratio[1]:.1f}%)", f"PC1 ({100 * ratio[0]:.1f}%)"


def animate(result: LandscapeResult, *, view: str = "contour", log: bool = False,
            title: str | None = None, options: Any = None) -> Any:  # fmt: skip
    """An ``Animator`` of the recorded path moving over its plane (a map, or the 3D surface),
    counting snapshots and optimizer steps, with the models' true loss drawn alongside."""
    from gdscope.render.animation import Animator
    from gdscope.render.networks import surface_landscape

    check_view(view)
    if result.runs:
        raise GdscopeError("an animation moves one recorded path: give one path (several are "
                           "drawn together in the figure)", settings=["path"])  # fmt: skip
    trajectory = recorded_trajectory(result)
    if trajectory is None or result.projected is None:
        raise GdscopeError("an animation shows a recorded path on a plane: give path",
                           settings=["path"])  # fmt: skip
    name = result.path.optimizer if result.path is not None else None
    steps = np.asarray(result.projected.steps)
    curve = (
        f"{name or 'model'}: true loss" if result.honesty is not None else "surface under the path"
    )
    return Animator(
        [surface_landscape(result.surface, labels=plane_labels(result))], [[trajectory]],
        options=options, log=log, kind=view, title=title or "the recorded path on its plane",
        equal_aspect=False, counter=lambda i: f"snapshot {i:>4}  step {int(steps[i]):>6}",
        step_label="snapshot", curve_labels=[curve],
    )  # fmt: skip


def landscape_command(
    *,
    model: str,
    data: str,
    loss: str = DEFAULT_LOSS,
    checkpoint: str | os.PathLike[str] | None,
    paths: Sequence[str | os.PathLike[str]],
    surface: ModelSurface,
    out: str | os.PathLike[str] = "landscape.png",
) -> list[str]:
    """The ``gdscope landscape`` command line that computes ``surface`` again: the PCA plane
    of ``paths`` (one, or several sharing it) through ``checkpoint``, on ``surface``'s grid,
    evaluated as it was (``surface.meta``: auto's choice depends on timing), drawn into
    ``out``. The same numbers as long as the recordings hold no more snapshots than then."""
    from gdscope.jobs.records import evaluation_argv

    def axis(flag: str, values: np.ndarray) -> list[str]:
        return [flag, repr(float(values[0])), repr(float(values[-1])), str(len(values))]

    weights = [] if checkpoint is None else ["--checkpoint", os.fspath(checkpoint)]
    return ["gdscope", "landscape", "--model", model, "--data", data, "--loss", loss, *weights,
            *(arg for path in paths for arg in ("--path", os.fspath(path))),
            "--directions", "pca", *axis("--x", surface.xs), *axis("--y", surface.ys),
            *evaluation_argv(surface.meta), "--out", os.fspath(out)]  # fmt: skip


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
    wrote: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Train the example with SGD+momentum and with Adam (recording every few steps), draw each
    path on its PCA plane with the honesty chart, and save figures and surfaces into ``out``.
    ``wrote(path)`` is called as each file is written (so an interruption can say which)."""
    from gdscope.files import check_target, make_folder, save_figure
    from gdscope.nets.fit import fit
    from gdscope.nets.surface_io import save_surface

    if name not in EXAMPLES:
        raise unknown("example", name, EXAMPLES)
    make_folder(out)
    module = importlib.import_module(EXAMPLES[name])
    written: list[Path] = []

    def keep(path: Path) -> None:
        written.append(path)
        if wrote is not None:
            wrote(path)

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
        keep(save_figure(fig, figure, force=force))
        for path in save_surface(result.surface, arrays, projected=result.projected,
                                 explained=result.explained, force=force):  # fmt: skip
            keep(path)
        ratio, check = result.explained, result.honesty
        log(f"{name} {label}: PCA explains {100 * ratio[0]:.1f}% + {100 * ratio[1]:.1f}%; "
            f"largest gap between the surface and the true loss {np.abs(check.gap).max():.3g}"
            + (f" — {check.warning()}" if check.warning() else ""))  # fmt: skip
    return written
