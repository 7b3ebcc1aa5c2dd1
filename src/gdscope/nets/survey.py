"""A model's loss landscape from a notebook: the directions (random, PCA of a recorded path, or
the line to another model), the grid, the evaluation, and the recorded path's projection and
honesty check, for a model in memory (``model_landscape``). Drawing it is
``gdscope.jobs.landscape.draw_landscape``; loading models and checkpoints is the job's.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
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
from gdscope.nets.recorder import ParamLayout, RecordedPath, open_path

__all__ = [
    "Axis",
    "Directions",
    "LandscapeResult",
    "PathSource",
    "PlaneOptions",
    "RunOnPlane",
    "check_convexity",
    "check_layouts",
    "fit_axis",
    "is_several",
    "model_landscape",
    "not_finite_note",
    "open_runs",
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
    several: bool = False,
) -> tuple[PlaneOptions, EvaluationOptions]:
    """``plane`` and ``evaluation`` (default: the defaults) with the fields named in
    ``options`` replaced: the flat keywords of ``model_landscape`` and ``LandscapeJob``;
    checked, with what the landscape has (a recorded ``path``, ``several`` of them, a model
    ``to`` at the line's end). A name that is a field of neither is a ``TypeError``, as for
    any unknown keyword."""
    ours = {name: value for name, value in options.items() if name in PLANE_FIELDS}
    rest = {name: value for name, value in options.items() if name not in PLANE_FIELDS}
    _check_sources(ours.get("directions", (plane or PlaneOptions()).directions), path=path, to=to)
    plane = replace(plane or PlaneOptions(), **ours)
    if several and plane.is_line:
        raise GdscopeError("several recorded paths are drawn on a plane, not along a line",
                           settings=["path"])  # fmt: skip
    return plane, replace(evaluation or EvaluationOptions(), **rest)


PathSource = RecordedPath | str | os.PathLike[str]
"""A recorded path: a ``Recorder.result()``, or the folder a ``Recorder(path=...)`` wrote."""


def is_several(path: PathSource | Sequence[PathSource] | None) -> bool:
    """Whether ``path`` is a sequence of more than one recorded path."""
    return not isinstance(path, (RecordedPath, str, os.PathLike)) and path is not None and (
        len(path) > 1)  # fmt: skip


def open_runs(
    path: PathSource | Sequence[PathSource], names: Sequence[str] | None = None
) -> tuple[list[RecordedPath], list[str]]:
    """The recorded paths ``path`` names (one, or a sequence) and their names: ``names`` if
    given, else each folder's name (the folder as given where two names would be the same;
    ``run 1``, ``run 2``, … for a path in memory); refused unless they share one parameter
    layout (``check_layouts``)."""
    sources = [path] if isinstance(path, (RecordedPath, str, os.PathLike)) else list(path)
    if not sources:
        raise GdscopeError("path is an empty list: give one recorded path or more",
                           settings=["path"])  # fmt: skip
    if names is not None and len(names) != len(sources):
        raise GdscopeError(f"{len(names)} names for {len(sources)} recorded paths")
    named = list(names) if names is not None else [
        f"run {i + 1}" if isinstance(source, RecordedPath) else _folder_name(source)
        for i, source in enumerate(sources)]  # fmt: skip
    if names is None and len(set(named)) < len(named):  # runs/a/seed0, runs/b/seed0: as given
        named = [n if isinstance(s, RecordedPath) else os.fspath(s)
                 for n, s in zip(named, sources, strict=True)]  # fmt: skip
    recorded = [s if isinstance(s, RecordedPath) else open_path(s) for s in sources]
    check_layouts([r.layout for r in recorded], named)
    return recorded, named


def _folder_name(folder: str | os.PathLike[str]) -> str:
    """A recording's name: its folder's (``runs/adam/`` is ``adam``)."""
    return os.path.basename(os.path.normpath(os.fspath(folder)))


def check_layouts(layouts: Sequence[ParamLayout], names: Sequence[str]) -> None:
    """Refuse recordings whose parameters differ (names and shapes, in order), naming the first
    run that differs from the first, and its first differing parameter."""
    first = layouts[0]
    for layout, name in zip(layouts[1:], names[1:], strict=True):
        if (layout.names, layout.shapes) != (first.names, first.shapes):
            raise GdscopeError(f"runs {names[0]} and {name} do not share one parameter layout: "
                               f"{_difference(first, layout, names[0], name)}",
                               settings=["path"])  # fmt: skip


def _difference(a: ParamLayout, b: ParamLayout, name_a: str, name_b: str) -> str:
    """The first parameter in which two layouts differ, said in words."""
    for i, (name, shape) in enumerate(zip(a.names, a.shapes, strict=False)):
        if i >= len(b.names):
            return f"{name!r} is in {name_a} only"
        if b.names[i] != name:
            return f"parameter {i + 1} is {name!r} in {name_a}, {b.names[i]!r} in {name_b}"
        if b.shapes[i] != shape:
            return f"{name!r} is {shape} in {name_a}, {b.shapes[i]} in {name_b}"
    return f"{b.names[len(a.names)]!r} is in {name_b} only"


def fit_axis(values: np.ndarray, count: int) -> Axis:
    """An axis over ``values`` with a quarter of their spread as margin on either side."""
    pad = 0.25 * (float(np.ptp(values)) or 1.0)
    return float(values.min()) - pad, float(values.max()) + pad, count


@dataclass(frozen=True, eq=False)
class RunOnPlane:
    """One of several recorded paths drawn on one plane: its ``name`` (a recording's folder
    name), the ``path``, its projection and its honesty check."""

    name: str
    path: RecordedPath
    projected: ProjectedPath
    honesty: Honesty


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
    runs: tuple[RunOnPlane, ...] = ()
    """With several recorded paths, each one on the plane, in order (the first is also
    ``path``, ``projected`` and ``honesty``); empty with one path or none."""


@dataclass(frozen=True, eq=False)
class _Plane:
    """The directions and grid a ``PlaneOptions`` comes to for one model."""

    dx: Tensor
    dy: Tensor | None
    xs: np.ndarray
    ys: np.ndarray
    centre: Tensor | None = None
    explained: np.ndarray | None = None
    on_plane: tuple[ProjectedPath, ...] = ()
    """The recorded paths projected on a PCA plane (known before any loss is computed)."""
    marks: dict[float, str] = field(default_factory=dict)
    eigenvalues: np.ndarray | None = None


def _plane(
    model: nn.Module,
    options: PlaneOptions,
    *,
    recorded: Sequence[RecordedPath],
    to: nn.Module | None,
    names: tuple[str, str],
    batches: Batches,
    loss_fn: LossFn,
) -> _Plane:
    count = options.points or 21
    grid_x, grid_y = options.x or (-1.0, 1.0, count), options.y or (-1.0, 1.0, count)
    centre = explained = None
    on_plane: tuple[ProjectedPath, ...] = ()
    marks: dict[float, str] = {}
    eigenvalues = None
    dy: Tensor | None
    if options.directions == "hessian":
        (dx, dy), eigenvalues = hessian_directions(
            model, batches, loss_fn, norm=options.norm, ignore=options.ignore, seed=options.seed
        )
    elif options.directions == "pca":
        assert recorded
        # Centred on the model (the map is of it), which may be past the last snapshot; of
        # several paths, the PCA of the union of their snapshots.
        source = recorded[0] if len(recorded) == 1 else recorded
        pca = pca_plane(source, centre=recorded[0].layout.vector(model))
        dx, dy, centre, explained = pca.dx, pca.dy, pca.centre, pca.explained_variance_ratio
        # The plane is known before any loss is computed: frame the paths and the model (at 0)
        # unless told otherwise.
        on_plane = tuple(project(path, pca) for path in recorded)
        grid_x = options.x or fit_axis(np.concatenate([*(p.xs for p in on_plane), [0.0]]), count)
        grid_y = options.y or fit_axis(np.concatenate([*(p.ys for p in on_plane), [0.0]]), count)
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
    path: PathSource | Sequence[PathSource] | None = None,
    run_names: Sequence[str] | None = None,
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
    the plane and checked for honesty. Several paths (a sequence; one parameter layout) are
    drawn on one plane: with PCA directions the PCA of the union of their snapshots (see
    ``pca_plane``), still centred on ``model``; each is projected and checked, in
    ``result.runs`` under its name (``run_names``, else its folder's: ``open_runs``).
    ``convexity`` (``ConvexityOptions``) adds the map of
    ``|λ_min/λ_max|`` over the plane (``nets.convexity``; ``convexity_progress(done, total)``
    counts its points), unless Ctrl-C cut the surface short. Draw the result with
    ``draw_landscape``.
    """
    plane, evaluation = split_options(options, plane, evaluation, path=path is not None,
                                      to=to is not None, several=is_several(path))  # fmt: skip
    check_convexity(convexity, plane)
    with left_as_it_was(model):
        model.eval()
        recorded, named = open_runs(path, run_names) if path is not None else ([], [])
        if recorded:
            recorded[0].layout.check(model)
        batches = materialize(data, resolve_device(evaluation.device))
        axes = _plane(model, plane, recorded=recorded, to=to, names=names, batches=batches,
                      loss_fn=loss_fn)  # fmt: skip
        surface = evaluate_plane(
            model, batches, loss_fn, dx=axes.dx, dy=axes.dy, xs=axes.xs, ys=axes.ys,
            centre=axes.centre, states=plane.states, progress=progress, options=evaluation,
        )  # fmt: skip
        result = _checked(model, batches, loss_fn, surface, recorded, named, axes)
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
    recorded: Sequence[RecordedPath],
    named: Sequence[str],
    axes: _Plane,
) -> LandscapeResult:
    """The result with the recorded paths projected and checked for honesty, and notes on what
    the surface cannot show."""
    notes = []
    if "vmap_failure" in surface.meta:
        notes.append(f"evaluated point by point: {surface.meta['vmap_failure']}")
    if note := not_finite_note(surface):
        notes.append(note)
    runs = []
    if not surface.is_line:
        for i, (path, name) in enumerate(zip(recorded, named, strict=True)):
            projected = axes.on_plane[i] if axes.on_plane else project(path, surface)
            check = honesty(model, batches, loss_fn, path, projected, surface)
            if warning := check.warning():
                notes.append(warning if len(recorded) == 1 else f"{name}: {warning}")
            runs.append(RunOnPlane(name, path, projected, check))
    return LandscapeResult(
        surface, recorded[0] if recorded else None, runs[0].projected if runs else None,
        runs[0].honesty if runs else None, axes.explained, notes, axes.marks, axes.eigenvalues,
        runs=tuple(runs) if len(runs) > 1 else (),
    )  # fmt: skip
