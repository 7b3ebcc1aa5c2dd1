"""A model's loss landscape from a notebook: the directions (random, PCA of a recorded path, or
the line to another model), the grid, the evaluation, and the recorded path's projection and
honesty check, for a model in memory (``model_landscape``). Drawing it is
``gdscope.jobs.landscape.draw_landscape``; loading models and checkpoints is the job's.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, get_args

import numpy as np
from torch import Tensor, nn

from gdscope.devices import resolve_device
from gdscope.errors import GdscopeError, one_of
from gdscope.modules import left_as_it_was
from gdscope.nets.convexity import ConvexityMap, ConvexityOptions, convexity_map
from gdscope.nets.directions import (
    IGNORES,
    NORMS,
    Ignore,
    Norm,
    hessian_directions,
    line_direction,
    pca_plane,
    random_direction,
)
from gdscope.nets.plane import (
    Batches,
    EvaluationOptions,
    LossFn,
    ModelSurface,
    evaluate_plane,
    materialize,
)
from gdscope.nets.projection import Honesty, ProjectedPath, honesty, project
from gdscope.nets.recorder import RecordedPath, open_path

__all__ = [
    "Axis",
    "Directions",
    "LandscapeResult",
    "PlaneOptions",
    "check_convexity",
    "fit_axis",
    "model_landscape",
    "not_finite_note",
    "split_options",
]

Axis = tuple[float, float, int]
"""A grid axis: ``(lo, hi, count)``."""
Directions = Literal["random", "pca", "line", "hessian"]
DIRECTIONS: tuple[Directions, ...] = get_args(Directions)
MAX_POINTS = 501
"""Grid points per axis at most."""


@dataclass(frozen=True)
class PlaneOptions:
    """The plane (or line) of a landscape and its grid, checked when made.

    ``directions``: ``"random"`` (normalized with ``norm``/``ignore``, seeds ``seed`` and
    ``seed + 1``), ``"pca"`` of a recorded path, ``"line"`` towards another model, or
    ``"hessian"``: the top two Hessian eigenvectors at the model (unit vectors with
    ``norm="none"``, else normalized like random ones).
    ``states``: directions over parameters and BatchNorm's running statistics
    (``dir_type=states``). ``x``/``y`` are ``(lo, hi, count)``; None: the path's extent with
    margins on a PCA plane, -0.5…1.5 on a line, else -1…1 (the reference's habit), with
    ``points`` samples per axis (default 21; 41 on a line). ``line``: a 1-D landscape along
    ``x`` only (always so for ``directions="line"``).
    """

    directions: Directions = "random"
    norm: Norm = "filter"
    ignore: Ignore = "biasbn"
    seed: int = 0
    states: bool = False
    x: Axis | None = None
    y: Axis | None = None
    line: bool = False
    points: int | None = None

    def __post_init__(self) -> None:
        one_of("directions", self.directions, DIRECTIONS)
        if self.states and self.directions == "pca":
            raise GdscopeError(
                "a recorded path holds parameters only: PCA takes no states", settings=["states"]
            )
        if self.states and self.directions == "hessian":
            raise GdscopeError(
                "Hessian directions move the parameters only: drop states", settings=["states"]
            )
        one_of("norm", self.norm, NORMS)
        one_of("ignore", self.ignore, IGNORES)
        for axis in (self.x, self.y):
            if axis is not None and not _is_axis(axis):
                raise GdscopeError(f"a grid axis is (LO, HI, COUNT): finite LO < HI and "
                                   f"2..{MAX_POINTS} points (whole), got {axis!r}")  # fmt: skip
        if self.y is not None and self.is_line:
            raise GdscopeError("a line has one axis (x): drop y", settings=["y"])
        if self.points is not None and not (_is_count(self.points)
                                            and 2 <= self.points <= MAX_POINTS):  # fmt: skip
            raise GdscopeError(f"points per axis must be a whole number in [2, {MAX_POINTS}], "
                               f"got {self.points!r}")  # fmt: skip

    @property
    def is_line(self) -> bool:
        return self.line or self.directions == "line"


def _is_count(value: object) -> bool:
    """A whole number of points (an ``int``, NumPy's too; not a bool, not 3.5)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_axis(axis: object) -> bool:
    """``(lo, hi, count)``: finite real ``lo < hi`` and ``2..MAX_POINTS`` points."""
    if not isinstance(axis, (tuple, list)) or len(axis) != 3:
        return False
    lo, hi, count = axis
    reals = all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
                for v in (lo, hi))  # fmt: skip
    return reals and lo < hi and _is_count(count) and 2 <= count <= MAX_POINTS


def _check_sources(directions: str, *, path: bool, to: bool) -> None:
    """Refuse directions whose source is missing (PCA without a recorded path, a line without
    the model at its end): first, as it is the first thing to fix."""
    if directions == "pca" and not path:
        raise GdscopeError("PCA directions need a recorded run: give path", settings=["path"])
    if directions == "line" and not to:
        raise GdscopeError("a line needs the model at its end: give to=CHECKPOINT",
                           settings=["to"])  # fmt: skip


PLANE_FIELDS = frozenset(f.name for f in fields(PlaneOptions))


def split_options(
    options: Mapping[str, Any],
    plane: PlaneOptions | None,
    evaluation: EvaluationOptions | None,
    *,
    path: bool,
    to: bool,
) -> tuple[PlaneOptions, EvaluationOptions]:
    """``plane`` and ``evaluation`` (default: the defaults) with the fields named in
    ``options`` replaced: the flat keywords of ``model_landscape`` and ``LandscapeJob``;
    checked, with what the landscape has (a recorded ``path``, a model ``to`` at the line's
    end). A name that is a field of neither is a ``TypeError``, as for any unknown keyword."""
    ours = {name: value for name, value in options.items() if name in PLANE_FIELDS}
    rest = {name: value for name, value in options.items() if name not in PLANE_FIELDS}
    _check_sources(ours.get("directions", (plane or PlaneOptions()).directions), path=path, to=to)
    return replace(plane or PlaneOptions(), **ours), replace(evaluation or EvaluationOptions(),
                                                             **rest)  # fmt: skip


def fit_axis(values: np.ndarray, count: int) -> Axis:
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
    eigenvalues: np.ndarray | None = None
    """The Hessian eigenvalues of the directions (``directions="hessian"``)."""
    convexity: ConvexityMap | None = None
    """Li et al.'s ``|λ_min/λ_max|`` over the plane (``convexity=ConvexityOptions(...)``)."""


@dataclass(frozen=True, eq=False)
class _Plane:
    """The directions and grid a ``PlaneOptions`` comes to for one model."""

    dx: Tensor
    dy: Tensor | None
    xs: np.ndarray
    ys: np.ndarray
    centre: Tensor | None = None
    explained: np.ndarray | None = None
    on_plane: ProjectedPath | None = None
    """The recorded path projected on a PCA plane (known before any loss is computed)."""
    marks: dict[float, str] = field(default_factory=dict)
    eigenvalues: np.ndarray | None = None


def _plane(
    model: nn.Module,
    options: PlaneOptions,
    *,
    recorded: RecordedPath | None,
    to: nn.Module | None,
    names: tuple[str, str],
    batches: Batches,
    loss_fn: LossFn,
) -> _Plane:
    count = options.points or 21
    grid_x, grid_y = options.x or (-1.0, 1.0, count), options.y or (-1.0, 1.0, count)
    centre = explained = on_plane = None
    marks: dict[float, str] = {}
    eigenvalues = None
    dy: Tensor | None
    if options.directions == "hessian":
        (dx, dy), eigenvalues = hessian_directions(
            model, batches, loss_fn, norm=options.norm, ignore=options.ignore, seed=options.seed
        )
    elif options.directions == "pca":
        assert recorded is not None
        # Centred on the model (the map is of it), which may be past the last snapshot.
        pca = pca_plane(recorded, centre=recorded.layout.vector(model))
        dx, dy, centre, explained = pca.dx, pca.dy, pca.centre, pca.explained_variance_ratio
        # The plane is known before any loss is computed: frame the path and the model (at 0)
        # unless told otherwise.
        on_plane = project(recorded, pca)
        grid_x = options.x or fit_axis(np.append(on_plane.xs, 0.0), count)
        grid_y = options.y or fit_axis(np.append(on_plane.ys, 0.0), count)
    elif options.directions == "line":
        assert to is not None
        dx, dy = line_direction(model, to, states=options.states), None
        grid_x = options.x or (-0.5, 1.5, options.points or 41)
        marks = {0.0: names[0], 1.0: names[1]}
    else:
        dx, dy = (random_direction(model, norm=options.norm, ignore=options.ignore, seed=seed,
                                   states=options.states)
                  for seed in (options.seed, options.seed + 1))  # fmt: skip
    if options.line:
        dy = None
    xs = np.linspace(*grid_x[:2], grid_x[2])
    ys = np.linspace(*grid_y[:2], grid_y[2]) if dy is not None else np.zeros(1)
    return _Plane(dx, dy, xs, ys, centre, explained, on_plane, marks, eigenvalues)


def not_finite_note(surface: ModelSurface) -> str | None:
    """Says how much of the surface overflowed (drawn blank), if any did."""
    bad = int((~np.isfinite(surface.loss)).sum())
    if not bad:
        return None
    return f"the loss is not finite at {bad} of {surface.loss.size} grid points (drawn blank)"


def model_landscape(
    model: nn.Module,
    data: Any,
    loss_fn: LossFn,
    *,
    path: RecordedPath | str | os.PathLike[str] | None = None,
    to: nn.Module | None = None,
    names: tuple[str, str] = ("the model", "the other model"),
    progress: Callable[[int, int], None] | None = None,
    plane: PlaneOptions | None = None,
    evaluation: EvaluationOptions | None = None,
    convexity: ConvexityOptions | None = None,
    convexity_progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> LandscapeResult:
    """The landscape of ``model`` (at its current weights) on ``data``, from a notebook.

    ``plane`` (``PlaneOptions``) says which directions and grid: PCA needs the recorded
    ``path`` (a ``Recorder.result()`` or its folder), a line the model ``to`` (``names`` label
    its two ends). ``evaluation`` (``EvaluationOptions``) says how it is evaluated (see
    ``evaluate_plane``). Their fields may also be given as keywords (``directions="pca"``,
    ``points=41``, ``strategy="loop"``, …), which override them. A ``path`` is projected on
    the plane and checked for honesty. ``convexity`` (``ConvexityOptions``) adds the map of
    ``|λ_min/λ_max|`` over the plane (``nets.convexity``; ``convexity_progress(done, total)``
    counts its points), unless Ctrl-C cut the surface short. Draw the result with
    ``draw_landscape``.
    """
    plane, evaluation = split_options(options, plane, evaluation, path=path is not None,
                                      to=to is not None)  # fmt: skip
    check_convexity(convexity, plane)
    with left_as_it_was(model):
        model.eval()
        recorded = path if isinstance(path, RecordedPath) or path is None else open_path(path)
        if recorded is not None:
            recorded.layout.check(model)
        batches = materialize(data, resolve_device(evaluation.device))
        axes = _plane(model, plane, recorded=recorded, to=to, names=names, batches=batches,
                      loss_fn=loss_fn)  # fmt: skip
        surface = evaluate_plane(
            model, batches, loss_fn, dx=axes.dx, dy=axes.dy, xs=axes.xs, ys=axes.ys,
            centre=axes.centre, states=plane.states, progress=progress, options=evaluation,
        )  # fmt: skip
        result = _checked(model, batches, loss_fn, surface, recorded, axes)
        if convexity is None or surface.meta.get("unfinished", 0):
            return result
        found = convexity_map(model, batches, loss_fn, surface, options=convexity,
                              progress=convexity_progress)  # fmt: skip
        return replace(result, convexity=found)


def check_convexity(convexity: ConvexityOptions | None, plane: PlaneOptions) -> None:
    """Refuse a convexity map where there is none to make: on a line, or with directions that
    move BatchNorm's statistics (the Hessian is of the parameters)."""
    if convexity is None:
        return
    if not isinstance(convexity, ConvexityOptions):
        raise GdscopeError(f"convexity must be ConvexityOptions, got {type(convexity).__name__}")
    if plane.is_line:
        raise GdscopeError("the convexity map is of a plane, not a line")
    if plane.states:
        raise GdscopeError("the convexity map is of the parameters' Hessian: drop states",
                           settings=["states"])  # fmt: skip


def _checked(
    model: nn.Module,
    batches: Batches,
    loss_fn: LossFn,
    surface: ModelSurface,
    recorded: RecordedPath | None,
    axes: _Plane,
) -> LandscapeResult:
    """The result with the recorded path projected and checked for honesty, and notes on what
    the surface cannot show."""
    notes = []
    if "vmap_failure" in surface.meta:
        notes.append(f"evaluated point by point: {surface.meta['vmap_failure']}")
    if note := not_finite_note(surface):
        notes.append(note)
    projected = check = None
    if recorded is not None and not surface.is_line:
        projected = axes.on_plane if axes.on_plane is not None else project(recorded, surface)
        check = honesty(model, batches, loss_fn, recorded, projected, surface)
        if warning := check.warning():
            notes.append(warning)
    return LandscapeResult(surface, recorded, projected, check, axes.explained, notes,
                           axes.marks, axes.eigenvalues)  # fmt: skip
