"""``gdscope serve``: the explorer's web app (FastAPI). Parses, calls the library, formats.

Every request is a pydantic model with bounds (epochs, grid size, configurations, ranges,
finite numbers) and a work budget, so no request can keep the server busy for long or use
much memory. Invalid requests get 422 with the reason. Files are served only from the
package's own ``web`` folder and Plotly.js from the installed ``plotly`` package.
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
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gdscope.engines.batched import run_batched
from gdscope.errors import GdscopeError
from gdscope.optim.rules import TRANSFORMS
from gdscope.problem.data import DataSpec, make_data
from gdscope.problem.losses import LossSpec
from gdscope.problem.maps import Grid, find_minimum, loss_map
from gdscope.problem.testfunctions import FUNCTIONS, TestFunction
from gdscope.studies.phase import analytic_stable, phase_diagram
from gdscope.studies.sweep import Axis
from gdscope.version import __version__

__all__ = ["create_app", "running_server"]

WEB = Path(str(resources.files("gdscope.server") / "web"))
MAX_WORK = 3e8
"""Point evaluations (configurations × steps × data points) one request may ask for."""

Bounded = Annotated[float, Field(ge=-1e4, le=1e4)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class DataModel(Strict):
    seed: int = Field(20240215, ge=0, lt=2**32)
    n: int = Field(50, ge=2, le=1000)
    quadratic: Bounded = 0.75
    linear: Bounded = 1.0
    constant: Bounded = 2.0
    noise: float = Field(0.3, ge=0, le=1e3)

    def spec(self) -> DataSpec:
        return DataSpec(**self.model_dump())


class LossModel(Strict):
    name: Literal["mse", "l1", "huber", "smoothl1"] = "mse"
    delta: float = Field(1.0, gt=0, le=1e3)
    beta: float = Field(1.0, ge=0, le=1e3)

    def spec(self) -> LossSpec:
        return LossSpec(self.name, self.delta, self.beta)


class OptimizerModel(Strict):
    name: Literal["sgd", "adam", "adamw", "rmsprop", "adagrad"] = "sgd"
    hyper: dict[str, Annotated[float, Field(ge=-1e4, le=1e4)] | bool] = Field(
        default_factory=lambda: {"lr": 0.1}, max_length=12
    )


class GridModel(Strict):
    w_range: tuple[Bounded, Bounded] = (-5.0, 8.0)
    b_range: tuple[Bounded, Bounded] = (-5.0, 8.0)
    size: int = Field(101, ge=2, le=201)

    def grid(self) -> Grid:
        return Grid(self.w_range, self.b_range, self.size, self.size)


class FunctionModel(Strict):
    name: Literal[tuple(FUNCTIONS)]  # type: ignore[valid-type]
    options: dict[str, Annotated[float, Field(ge=-1e4, le=1e4)]] = Field(
        default_factory=dict, max_length=4
    )

    def spec(self) -> TestFunction:
        return TestFunction.of(self.name, **self.options)


class ProblemRequest(Strict):
    """The regression (``data`` + ``losses``), or a test ``function`` (then those are unused)."""

    data: DataModel = Field(default_factory=DataModel)
    losses: list[LossModel] = Field(
        default_factory=lambda: [LossModel()], min_length=1, max_length=4
    )
    function: FunctionModel | None = None

    def objectives(self) -> list[LossSpec | TestFunction]:
        if self.function is not None:
            return [self.function.spec()]
        return [model.spec() for model in self.losses]

    def points(self) -> int:
        """Data points one evaluation touches (a test function: one)."""
        return 1 if self.function is not None else self.data.n


class LandscapeRequest(ProblemRequest):
    grid: GridModel = Field(default_factory=GridModel)
    weight_decay: float = Field(0.0, ge=0, le=100)


class TrajectoryRequest(ProblemRequest):
    optimizer: OptimizerModel = Field(default_factory=OptimizerModel)
    epochs: int = Field(100, ge=1, le=2000)
    start: tuple[Bounded, Bounded] = (6.0, -3.0)


class AxisModel(Strict):
    name: str = Field(pattern=r"^[a-z_0-9]{1,32}$")
    lo: float = Field(ge=-1e4, le=1e4)
    hi: float = Field(ge=-1e4, le=1e4)
    count: int = Field(ge=1, le=64)
    log: bool = False

    def axis(self) -> Axis:
        if self.log and (self.lo <= 0 or self.hi <= 0):
            raise GdscopeError(f"{self.name}: a log axis needs positive ends")
        space = np.geomspace if self.log else np.linspace
        return Axis(
            self.name, tuple(float(v) for v in space(self.lo, self.hi, self.count)), self.log
        )


class PhaseRequest(Strict):
    data: DataModel = Field(default_factory=DataModel)
    loss: LossModel = Field(default_factory=LossModel)
    function: FunctionModel | None = None
    optimizer: OptimizerModel = Field(default_factory=OptimizerModel)
    x: AxisModel
    y: AxisModel
    metric: Literal["final_loss", "best_loss", "steps", "diverged", "path_length"] = "diverged"
    epochs: int = Field(100, ge=1, le=500)
    start: tuple[Bounded, Bounded] = (6.0, -3.0)


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
        if isinstance(loss, TestFunction):
            minimum, minima = [*loss.minima[0], 0.0], [list(m) for m in loss.minima]
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
        data, request.optimizer.name, request.optimizer.hyper,
        loss=losses[0] if request.function is not None else losses,
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
    fixed = {k: v for k, v in request.optimizer.hyper.items() if k not in {x.name, y.name}}
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
        return {"status": "ok", "version": __version__, "optimizers": sorted(TRANSFORMS)}

    @app.get("/api/optimizers")
    def optimizers() -> dict[str, Any]:
        """Every batched optimizer's hyperparameters with torch's defaults."""
        return {
            name: {key: param.default for key, param in t.params.items()}
            for name, t in TRANSFORMS.items()
        }

    @app.get("/api/functions")
    def functions() -> dict[str, Any]:
        """Each test function's standard domain, start and learning rate, as (y, x) pairs."""
        out = {}
        for name in FUNCTIONS:
            f = TestFunction(name)
            out[name] = {"title": f.title, "domain": f.domain, "start": f.start,
                         "lr": f.definition.lr, "options": f.definition.defaults,
                         "minima": f.minima}  # fmt: skip
        return out

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
