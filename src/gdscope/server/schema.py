"""What the page builds its controls from (``GET /api/schema``): names, defaults, bounds, limits.

Every entry is read from the library's tables and the request models, so the page holds no
copy of them. Each hyperparameter has one default, gdscope's (``OptimizerEntry.defaults``:
torch's, or the article's where ``preset`` says so, as SGD's lr).
"""

from __future__ import annotations

import functools
from dataclasses import asdict
from typing import Any

from pydantic import BaseModel

from gdscope.files import RECORD_KEYS
from gdscope.jobs.plotconfig import VIEWS
from gdscope.optim.table import OPTIMIZER_TABLE, OptimizerEntry
from gdscope.problem.losses import ARTICLE_LOSSES, LOSS_NAMES, LossSpec
from gdscope.problem.testfunctions import FUNCTIONS, TestFunction
from gdscope.render.panels import colour_stops
from gdscope.server.models import (
    DEFAULT_METRIC,
    CommandRequest,
    DataModel,
    GridModel,
    LossModel,
    PhaseRequest,
    TrajectoryRequest,
)
from gdscope.studies.phase import NEURON_METRICS, YES_NO_METRICS

__all__ = ["functions", "optimizer", "schema"]


def functions() -> dict[str, Any]:
    """Each test function's standard domain, start, learning rate, options and minima."""
    out = {}
    for name in FUNCTIONS:
        f = TestFunction(name)
        out[name] = {"title": f.title, "domain": f.domain, "start": f.start,
                     "lr": f.definition.lr, "options": f.definition.defaults,
                     "minima": f.minima}  # fmt: skip
    return out


def optimizer(entry: OptimizerEntry) -> dict[str, Any]:
    """An optimizer's title, defaults and hyperparameters, each with the same one default."""
    defaults = entry.defaults()
    hyperparameters = [
        {**asdict(h), "default": defaults[h.name], "kind": h.kind} for h in entry.hyperparameters
    ]
    return {"title": entry.title, "defaults": defaults, "hyperparameters": hyperparameters}


def _bounds(model: type[BaseModel], name: str) -> dict[str, float]:
    """A field's numeric bounds (``ge``, ``gt``, ``le``, ``lt``), for the page's inputs."""
    out: dict[str, float] = {}
    for item in model.model_fields[name].metadata:
        out.update({k: getattr(item, k) for k in ("ge", "gt", "le", "lt") if hasattr(item, k)})
    return out


@functools.cache
def schema() -> dict[str, Any]:
    """The whole schema (computed once: it depends on the installed library only)."""
    request = TrajectoryRequest()
    return {
        "optimizers": {name: optimizer(entry) for name, entry in OPTIMIZER_TABLE.items()},
        "losses": [{"name": n, "title": LossSpec(n).class_name} for n in LOSS_NAMES],
        "article_losses": [loss.name for loss in ARTICLE_LOSSES],
        "metrics": list(NEURON_METRICS),
        "yes_no_metrics": list(YES_NO_METRICS),
        "record_key": RECORD_KEYS["png"],
        "views": list(VIEWS),
        "colorscale": [list(stop) for stop in colour_stops()],
        "functions": functions(),
        "defaults": {
            "optimizer": {"name": request.optimizer.name,
                          "hyper": dict(request.optimizer.entry.preset)},
            "epochs": request.epochs,
            "start": list(request.start),
            "data": DataModel().model_dump(),
            "loss": LossModel().model_dump(),
            "grid": GridModel().model_dump(),
            "metric": DEFAULT_METRIC,
            "view": CommandRequest().view,
        },
        "limits": {
            "epochs": _bounds(TrajectoryRequest, "epochs"),
            "phase_epochs": _bounds(PhaseRequest, "epochs"),
            "n": _bounds(DataModel, "n"),
            "seed": _bounds(DataModel, "seed"),
            "noise": _bounds(DataModel, "noise"),
            "size": _bounds(GridModel, "size"),
            "delta": _bounds(LossModel, "delta"),
            "beta": _bounds(LossModel, "beta"),
        },
    }  # fmt: skip
