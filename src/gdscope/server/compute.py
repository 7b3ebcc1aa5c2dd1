"""The explorer's computations: a request model in, a JSON-ready answer out, and their price.

Each route's computation is here, with ``estimate``, its price in seconds from the cost table
(``server/costs.py``): everything it runs is priced (the runs, the maps, the minimum the phase
diagram measures against), by the engine that will run it. They run in the pool's worker
processes (``server/pool.py``), which call ``answer``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel

from gdscope.engines.batched import run_batched
from gdscope.problem.data import make_data
from gdscope.problem.maps import find_minimum, loss_map
from gdscope.server.costs import FUNCTION, map_seconds, minimum_seconds, run_seconds
from gdscope.server.models import LandscapeRequest, PhaseRequest, TrajectoryRequest
from gdscope.studies.phase import analytic_stable, phase_diagram

__all__ = ["ROUTINES", "answer", "estimate", "landscape", "phase", "trajectories"]


def _clean(values: Any) -> Any:
    """Lists for JSON, NaN and ±inf as null."""
    array = np.asarray(values, dtype=np.float64)
    out = array.tolist()

    def fix(item: Any) -> Any:
        if isinstance(item, list):
            return [fix(x) for x in item]
        return item if math.isfinite(item) else None

    return fix(out)


def _column(objective: Any) -> str:
    """The cost table's column for an objective: its loss name, or any test function."""
    return objective.regression.name if objective.regression is not None else FUNCTION


def landscape(request: LandscapeRequest) -> dict[str, Any]:
    """Loss maps on a grid, with each map's minimum."""
    grid = request.grid.grid()
    objectives = request.objectives()
    data = make_data(request.data.spec()) if request.function is None else None
    maps = []
    for loss in objectives:
        plain = loss_map(data, loss, grid)
        if loss.known_minima:
            minimum = [*loss.known_minima[0], 0.0]
            minima = [list(m) for m in loss.known_minima]
        else:
            minimum = list(plain.argmin())
            minima = [minimum[:2]]
        item: dict[str, Any] = {
            "loss": loss.title,
            "labels": list(loss.labels),
            "values": _clean(plain.values.numpy()),
            "minimum": minimum,
            "minima": minima,
        }
        if request.weight_decay > 0:
            effective = plain.with_weight_decay(request.weight_decay)
            item["effective_values"] = _clean(effective.values.numpy())
            item["effective_minimum"] = list(effective.argmin())
        maps.append(item)
    return {
        "weights": grid.weights.tolist(),
        "biases": grid.biases.tolist(),
        "maps": maps,
        "points": None if data is None else {"x": data.x.tolist(), "y": data.y.tolist()},
    }


def trajectories(request: TrajectoryRequest) -> dict[str, Any]:
    """One optimizer path per loss, in one batched run."""
    losses = request.objectives()
    data = make_data(request.data.spec()) if request.function is None else None
    result = run_batched(
        data, request.optimizer.name, request.optimizer.values(),
        loss=request.batched_loss(), start=request.start, epochs=request.epochs,
    )  # fmt: skip
    assert result.path is not None and result.losses is not None
    runs = []
    for k, loss in enumerate(losses):
        path = result.path[:, k].double().numpy()
        at = int(result.diverged_at[k])
        runs.append(
            {
                "loss": loss.title,
                "weights": _clean(path[:, 0]),
                "biases": _clean(path[:, 1]),
                "losses": _clean(result.losses[:, k].double().numpy()),
                "diverged_at": None if at < 0 else at,
                "final": _clean(result.final[k].double().numpy()),
                "optimizer": result.optimizer_spec(k).describe(),
            }
        )
    return {"epochs": request.epochs, "start": list(request.start), "runs": runs}


def phase(request: PhaseRequest) -> dict[str, Any]:
    """A phase diagram over two hyperparameters, with the analytic border where there is one."""
    objective = request.objective()
    data = make_data(request.data.spec()) if objective.needs_data else None
    x, y = request.x.axis(), request.y.axis()
    fixed = {k: v for k, v in request.optimizer.values().items() if k not in {x.name, y.name}}
    run = phase_diagram(
        data, x=x, y=y, optimizer=request.optimizer.name, fixed=fixed, loss=objective,
        start=request.start, epochs=request.epochs,
    )  # fmt: skip
    stable = analytic_stable(run, data) if data is not None else None
    known = objective.known_minima
    minimum = [*known[0], 0.0] if known else list(find_minimum(data, objective))
    return {
        "x": list(x.values),
        "y": list(y.values),
        "metric": request.metric,
        "values": _clean(run.grid(request.metric)),
        "stable": None if stable is None else stable.astype(int).tolist(),
        "minimum": minimum,
    }


def _minimum_calls(request: PhaseRequest) -> int:
    """How often a phase request solves for the loss's minimum: ``phase_diagram`` once for the
    target and once per weight decay on its grid (the spreads' centres), ``phase`` once more;
    a test function's minima are known. Decoupled decay is counted too (an upper bound)."""
    if request.objective().known_minima:
        return 0
    values = request.optimizer.values()
    if "weight_decay" not in values:
        return 2
    axes = {axis.name: axis.axis().values for axis in (request.x, request.y)}
    return 2 + len(set(axes.get("weight_decay", (values["weight_decay"],))))


def estimate(request: BaseModel) -> float:
    """Estimated seconds of compute for a landscape, trajectory or phase request."""
    if isinstance(request, LandscapeRequest):
        cells = request.grid.size**2 * (2 if request.weight_decay > 0 else 1)
        return sum(
            map_seconds(_column(o), cells=cells, points=request.points())
            for o in request.objectives()
        )
    if isinstance(request, TrajectoryRequest):
        losses = request.objectives()
        return max(
            run_seconds(request.optimizer.name, _column(o), configurations=len(losses),
                        points=request.points(), epochs=request.epochs)
            for o in losses
        )  # fmt: skip
    assert isinstance(request, PhaseRequest)
    objective = request.objective()
    points = request.data.n if objective.needs_data else 1
    column = _column(objective)
    runs = run_seconds(
        request.optimizer.name, column, configurations=request.x.count * request.y.count,
        points=points, epochs=request.epochs,
    )  # fmt: skip
    calls = _minimum_calls(request)
    return runs + (calls * minimum_seconds(column, points=points) if calls else 0.0)


ROUTINES: Mapping[str, tuple[type[BaseModel], Callable[[Any], dict[str, Any]]]] = {
    "landscape": (LandscapeRequest, landscape),
    "trajectories": (TrajectoryRequest, trajectories),
    "phase": (PhaseRequest, phase),
}
"""name → (request model, computation), as the pool's workers receive them."""


def answer(name: str, request: Mapping[str, Any]) -> bytes:
    """The JSON answer to ``request`` (a model's ``model_dump()``) of routine ``name``."""
    model, routine = ROUTINES[name]
    return json.dumps(routine(model.model_validate(request))).encode()
