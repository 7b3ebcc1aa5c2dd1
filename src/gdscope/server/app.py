"""``gdscope serve``: the explorer's web app (FastAPI). Parses, calls the library, formats.

Every request is a pydantic model with bounds (``server/models.py``) and a work budget, so no
request can keep the server busy for long or use much memory. Invalid requests get 422 with the
reason. The page builds its controls from ``/api/schema`` and shows the command that
``/api/command`` builds, so it holds no copy of names, defaults or flags. Files are served only
from the package's own ``web`` folder and Plotly.js from the installed ``plotly`` package.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from gdscope.engines.batched import run_batched
from gdscope.errors import GdscopeError
from gdscope.jobs.plotconfig import VIEWS
from gdscope.jobs.records import DEFAULT_DPI, record
from gdscope.optim.table import OPTIMIZER_TABLE
from gdscope.problem.data import make_data
from gdscope.problem.losses import ARTICLE_LOSSES, LOSS_NAMES, LossSpec
from gdscope.problem.maps import find_minimum, loss_map
from gdscope.problem.testfunctions import FUNCTIONS, TestFunction
from gdscope.server.models import (
    DEFAULT_METRIC,
    CommandRequest,
    DataModel,
    GridModel,
    LandscapeRequest,
    LossModel,
    PhaseRequest,
    TrajectoryRequest,
)
from gdscope.studies.phase import METRICS, analytic_stable, phase_diagram
from gdscope.version import __version__

__all__ = ["create_app", "running_server"]

WEB = Path(str(resources.files("gdscope.server") / "web"))
MAX_WORK = 3e8
"""Point evaluations (configurations × steps × data points) one request may ask for."""
OUT = "explorer.png"
"""The file the page's command writes."""


def _clean(values: Any) -> Any:
    """Lists for JSON, NaN and ±inf as null."""
    array = np.asarray(values, dtype=np.float64)
    out = array.tolist()

    def fix(item: Any) -> Any:
        if isinstance(item, list):
            return [fix(x) for x in item]
        return item if math.isfinite(item) else None

    return fix(out)


def _budget(work: float) -> None:
    if work > MAX_WORK:
        raise GdscopeError(
            f"request too large: {work:.3g} point evaluations (limit {MAX_WORK:.0e})"
        )


def landscape(request: LandscapeRequest) -> dict[str, Any]:
    grid = request.grid.grid()
    objectives = request.objectives()
    _budget(len(objectives) * grid.w_size * grid.b_size * request.points())
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
    losses = request.objectives()
    _budget(len(losses) * request.epochs * request.points())
    data = make_data(request.data.spec()) if request.function is None else None
    result = run_batched(
        data, request.optimizer.name, request.optimizer.values(),
        loss=request.batched_loss(),
        start=request.start, epochs=request.epochs,
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
    function = request.function.spec() if request.function is not None else None
    points = 1 if function is not None else request.data.n
    _budget(request.x.count * request.y.count * request.epochs * points)
    data = make_data(request.data.spec()) if function is None else None
    x, y = request.x.axis(), request.y.axis()
    fixed = {k: v for k, v in request.optimizer.values().items() if k not in {x.name, y.name}}
    objective = function or request.loss.spec()
    run = phase_diagram(
        data, x=x, y=y, optimizer=request.optimizer.name, fixed=fixed, loss=objective,
        start=request.start, epochs=request.epochs,
    )  # fmt: skip
    stable = analytic_stable(run, data) if data is not None else None
    minimum = [*function.minima[0], 0.0] if function else list(find_minimum(data, objective))
    return {
        "x": list(x.values),
        "y": list(y.values),
        "metric": request.metric,
        "values": _clean(run.grid(request.metric)),
        "stable": None if stable is None else stable.astype(int).tolist(),
        "minimum": minimum,
    }


def _functions() -> dict[str, Any]:
    out = {}
    for name in FUNCTIONS:
        f = TestFunction(name)
        out[name] = {"title": f.title, "domain": f.domain, "start": f.start,
                     "lr": f.definition.lr, "options": f.definition.defaults,
                     "minima": f.minima}  # fmt: skip
    return out


def _bounds(model: type[BaseModel], name: str) -> dict[str, float]:
    """A field's numeric bounds (``ge``, ``gt``, ``le``, ``lt``), for the page's inputs."""
    out: dict[str, float] = {}
    for item in model.model_fields[name].metadata:
        out.update({k: getattr(item, k) for k in ("ge", "gt", "le", "lt") if hasattr(item, k)})
    return out


@functools.cache
def _schema() -> dict[str, Any]:
    request = TrajectoryRequest()
    optimizers = {
        name: {
            "title": entry.title,
            "defaults": entry.defaults(),
            "hyperparameters": [{**asdict(h), "kind": h.kind} for h in entry.hyperparameters],
        }
        for name, entry in OPTIMIZER_TABLE.items()
    }
    return {
        "optimizers": optimizers,
        "losses": [{"name": n, "title": LossSpec(n).class_name} for n in LOSS_NAMES],
        "article_losses": [loss.name for loss in ARTICLE_LOSSES],
        "metrics": list(METRICS),
        "views": list(VIEWS),
        "functions": _functions(),
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


def create_app() -> Any:
    """The FastAPI application (imported lazily: the web extra is optional)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles

    app = FastAPI(title="gdscope explorer", version=__version__)

    @app.exception_handler(GdscopeError)
    async def bad_input(request: Request, error: GdscopeError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(error)})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        # Reasons without the offending input: it may hold NaN, which JSON cannot carry.
        detail = [
            {
                "loc": list(item.get("loc", ())),
                "msg": item.get("msg", ""),
                "type": item.get("type", ""),
            }
            for item in error.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "optimizers": sorted(OPTIMIZER_TABLE)}

    @app.get("/api/optimizers")
    def optimizers() -> dict[str, Any]:
        """Each batched optimizer's hyperparameters at gdscope's defaults (see /api/schema)."""
        return {name: entry.defaults() for name, entry in OPTIMIZER_TABLE.items()}

    @app.get("/api/functions")
    def functions() -> dict[str, Any]:
        """Each test function's standard domain, start and learning rate, as (y, x) pairs."""
        return _functions()

    @app.get("/api/schema")
    def schema() -> dict[str, Any]:
        """What the page builds its controls from: names, defaults, bounds, limits."""
        return _schema()

    @app.post("/api/command")
    def command(request: CommandRequest) -> dict[str, Any]:
        """The ``gdscope plot`` command that draws this request (as records write it), and the
        record a file of it carries (the page embeds it in the PNG it saves)."""
        config = request.config()
        rec = record("plot", config=config.to_dict(), title=None, dpi=DEFAULT_DPI)
        return {"command": config.command(OUT), "args": config.cli_args(), "out": OUT,
                "record": rec}  # fmt: skip

    # At most one computation per core at a time; the others wait their turn. Without this,
    # dozens of worker threads (each with torch's and OpenMP's own threads) thrash the CPU.
    gate = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))

    def gated(fn: Any) -> Any:
        @functools.wraps(fn)
        def run(request: Any) -> Any:
            with gate:
                return fn(request)

        return run

    app.post("/api/landscape")(gated(landscape))
    app.post("/api/trajectories")(gated(trajectories))
    app.post("/api/phase")(gated(phase))

    plotly_js = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly() -> FileResponse:
        return FileResponse(plotly_js, media_type="text/javascript")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=WEB), name="static")
    return app


@contextlib.contextmanager
def running_server(timeout: float = 30.0) -> Iterator[str]:
    """Run ``gdscope serve`` in a subprocess on a free loopback port; yields its base URL.

    For notebooks, tests and benchmarks; the server is stopped when the block ends.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "gdscope", "serve", "--port", str(port)]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(url + "/api/health", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gdscope serve did not start on {url}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
