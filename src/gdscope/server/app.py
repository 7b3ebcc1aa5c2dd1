"""``gdscope serve``: the explorer's web app (FastAPI). Parses, calls the library, formats.

Every request is a pydantic model with bounds (``server/models.py``) and a work budget in
estimated seconds (``server/costs.py``), so no request can keep the server busy for long or use
much memory. Invalid requests get 422 with the reason. The page builds its controls from
``/api/schema`` and shows the command that ``/api/command`` builds, so it holds no copy of names,
defaults or flags. Files are served only from the package's own ``web`` folder and Plotly.js
from the installed ``plotly`` package.

Under attack and under load (``Guard``, ``ComputePool``): only the loopback names, the bound
address and ``--allow-host`` names are served (DNS rebinding), a browser's cross-origin POST is
refused, bodies are small, and computations run in a bounded pool of their own with a bounded
queue (full: 503 with Retry-After), so the page, its files and ``/api/health`` stay quick while
clients flood the compute API. A computation whose client went away, or that a newer request
with the same ``X-Gdscope-Key`` superseded, is stopped between steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import mimetypes
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from gdscope.engines.batched import run_batched
from gdscope.errors import GdscopeError
from gdscope.files import RECORD_KEYS
from gdscope.jobs.plotconfig import VIEWS
from gdscope.jobs.records import DEFAULT_DPI, record
from gdscope.optim.table import OPTIMIZER_TABLE
from gdscope.problem.data import make_data
from gdscope.problem.losses import ARTICLE_LOSSES, LOSS_NAMES, LossSpec
from gdscope.problem.maps import find_minimum, loss_map
from gdscope.problem.testfunctions import FUNCTIONS, TestFunction
from gdscope.server.costs import BUDGET_S, FUNCTION, map_seconds, native, run_seconds
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
from gdscope.studies.phase import NEURON_METRICS, YES_NO_METRICS, analytic_stable, phase_diagram
from gdscope.version import __version__

try:  # the routes' annotations name it, so it is a module global; the web extra is optional
    from starlette.requests import Request
    from starlette.responses import Response
except ImportError:  # pragma: no cover
    Request = Response = Any  # type: ignore[misc,assignment]

__all__ = [
    "LOOPBACK_HOSTS",
    "Limits",
    "create_app",
    "estimate",
    "running_server",
    "security_headers",
    "serving",
    "start_server",
]

WEB = Path(str(resources.files("gdscope.server") / "web"))
OUT = "explorer.png"
"""The file the page's command writes."""
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Host names always served: this machine's own."""
KEY_HEADER, SEQ_HEADER = "x-gdscope-key", "x-gdscope-seq"
"""A page's request stream (its view, say) and the request's number in it: a higher number
with the same key supersedes the lower ones still running."""
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""No source outside the server. Plotly needs no 'unsafe-eval' but injects <style> elements
(checked in headless Chromium: tests/server/test_security.py)."""
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_ORIGIN = re.compile(r"^https?://[\w.\-*]+(:(\d+|\*))?$")
"""An origin a page may be framed by (``http://localhost:8888``, ``https://*.example.org``,
``http://127.0.0.1:*``; CSP has no syntax for an IPv6 address)."""


def security_headers(frame_ancestors: tuple[str, ...] = ()) -> tuple[tuple[bytes, bytes], ...]:
    """The headers every answer carries. ``frame_ancestors``: origins whose pages may show the
    page in a frame (a notebook's, for ``gdscope.explore``); by default none may."""
    if not frame_ancestors:
        return SECURITY_HEADERS
    for origin in frame_ancestors:
        if not _ORIGIN.match(origin):
            raise GdscopeError(f"not an origin a page may be framed by: {origin!r}")
    csp = CSP.replace("frame-ancestors 'none'", f"frame-ancestors {' '.join(frame_ancestors)}")
    framed = {b"content-security-policy": csp.encode()}
    return tuple((k, framed.get(k, v)) for k, v in SECURITY_HEADERS if k != b"x-frame-options")


_WORKERS = max(1, (os.cpu_count() or 2) // 2)


@dataclass(frozen=True)
class Limits:
    """How much the server takes on at once; the defaults suit the machine it runs on."""

    workers: int = _WORKERS
    """Computations running at once (each uses torch's threads too): half the cores, leaving
    the others to the event loop, which serves the page, its files and /api/health."""
    queue: int = 32
    """Computations waiting for a worker, at most (a page sends a few at once)."""
    backlog_s: float = 3 * BUDGET_S
    """Estimated seconds of computation running or waiting per worker, at most: beyond it, or
    beyond ``queue``, 503 with Retry-After. Many small requests wait; a flood of heavy ones
    is refused instead of answered minutes late."""
    body_bytes: int = 16_384
    """The largest request body (the page's largest is under 2 KB); beyond: 413."""
    budget_s: float = BUDGET_S
    """The most estimated seconds of compute one request may ask for; beyond: 422."""
    stoppable_s: float = 0.25
    """Computations estimated shorter are not polled for a stop: they end before it would
    matter (and a run the native engine can take, which it does only unpolled, never is)."""
    poll_s: float = 0.05
    """How often a waiting request checks whether its client went away."""


def _clean(values: Any) -> Any:
    """Lists for JSON, NaN and ±inf as null."""
    array = np.asarray(values, dtype=np.float64)
    out = array.tolist()

    def fix(item: Any) -> Any:
        if isinstance(item, list):
            return [fix(x) for x in item]
        return item if math.isfinite(item) else None

    return fix(out)


Stop = Callable[[], bool]


def _column(objective: Any) -> str:
    """The cost table's column for an objective: its loss name, or any test function."""
    return objective.regression.name if objective.regression is not None else FUNCTION


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
    return run_seconds(
        request.optimizer.name, _column(objective),
        configurations=request.x.count * request.y.count,
        points=request.data.n if objective.needs_data else 1, epochs=request.epochs,
    )  # fmt: skip


def unpolled(request: BaseModel) -> bool:
    """Whether a request runs natively (it cannot be stopped midway; priced as such)."""
    if isinstance(request, TrajectoryRequest):
        return all(native(request.optimizer.name, _column(o)) for o in request.objectives())
    if isinstance(request, PhaseRequest):
        return native(request.optimizer.name, _column(request.objective()))
    return True  # a map: it has no steps to poll between


def landscape(request: LandscapeRequest, should_stop: Stop | None = None) -> dict[str, Any]:
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


def trajectories(request: TrajectoryRequest, should_stop: Stop | None = None) -> dict[str, Any]:
    losses = request.objectives()
    data = make_data(request.data.spec()) if request.function is None else None
    result = run_batched(
        data, request.optimizer.name, request.optimizer.values(),
        loss=request.batched_loss(),
        start=request.start, epochs=request.epochs, should_stop=should_stop,
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


def phase(request: PhaseRequest, should_stop: Stop | None = None) -> dict[str, Any]:
    objective = request.objective()
    data = make_data(request.data.spec()) if objective.needs_data else None
    x, y = request.x.axis(), request.y.axis()
    fixed = {k: v for k, v in request.optimizer.values().items() if k not in {x.name, y.name}}
    run = phase_diagram(
        data, x=x, y=y, optimizer=request.optimizer.name, fixed=fixed, loss=objective,
        start=request.start, epochs=request.epochs, should_stop=should_stop,
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
        "metrics": list(NEURON_METRICS),
        "yes_no_metrics": list(YES_NO_METRICS),
        "record_key": RECORD_KEYS["png"],
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


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


def host_name(host: str) -> str:
    """The name in a ``Host`` header or URL authority, without port or IPv6 brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """ASGI middleware: the Host allow-list, same-origin POSTs, the body limit, the headers.

    A browser that was tricked into sending this server a request (a page on another site,
    DNS rebinding) names another host or origin: such requests get 403 with the reason. A
    computation that the pool has no room for is refused here, before its body is read.
    """

    def __init__(
        self, app: ASGI, *, hosts: frozenset[str], body_bytes: int, pool: ComputePool,
        compute: frozenset[str], headers: tuple[tuple[bytes, bytes], ...] = SECURITY_HEADERS,
    ) -> None:  # fmt: skip
        self.app, self.hosts, self.body_bytes = app, hosts, body_bytes
        self.pool, self.compute, self.headers = pool, compute, headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope["method"], headers)
        if refusal is None and scope["path"] in self.compute:
            refusal = self.pool.full()
        if refusal is not None:
            await _send_json(send, refusal)
            return

        async def secured(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, secured)

    def refusal(self, method: str, headers: dict[str, str]) -> Refused | None:
        """Why this server will not serve a request; None for the others."""
        host = headers.get("host", "")
        if host_name(host) not in self.hosts:
            return Refused(403, (
                f"host {host!r} is not served here (allowed: {', '.join(sorted(self.hosts))};"
                " gdscope serve --allow-host NAME adds one)"
            ))  # fmt: skip
        if method not in ("GET", "HEAD", "OPTIONS"):
            origin = headers.get("origin")
            if origin is not None and origin != f"http://{host}":
                return Refused(403, f"cross-origin request from {origin!r} refused")
            if headers.get("sec-fetch-site") == "cross-site":
                return Refused(403, "cross-site request refused")
            length = headers.get("content-length")
            if length is None and headers.get("transfer-encoding"):
                return Refused(411, "a request body needs a Content-Length")
            if length is not None and not length.isdigit():
                return Refused(400, "bad Content-Length")
            if length is not None and int(length) > self.body_bytes:
                return Refused(
                    413, f"request body of {int(length)} bytes (limit {self.body_bytes})"
                )
        return None


async def _send_json(send: Send, refused: Refused) -> None:
    body = json.dumps({"detail": refused.reason}).encode()
    headers = [(k.lower().encode(), v.encode()) for k, v in refused.headers.items()]
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": refused.status,
                "headers": [*start, *headers, *SECURITY_HEADERS]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class Refused(Exception):
    """A computation the pool will not run (or stopped): HTTP status, reason, headers."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}


@dataclass
class _Job:
    key: str | None
    seq: int
    seconds: float
    stop: threading.Event = field(default_factory=threading.Event)


class ComputePool:
    """Computations in a few threads of their own, never in the event loop's or the files'.

    At most ``workers`` run and ``queue`` wait, and at most ``backlog_s`` estimated seconds per
    worker; one more is refused (503, Retry-After). Its
    bookkeeping runs on the event loop's thread only, so it needs no lock; the workers see
    only their job's ``stop`` event, which they poll between steps.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.executor = ThreadPoolExecutor(limits.workers, thread_name_prefix="gdscope-compute")
        self.jobs: list[_Job] = []
        self.latest: OrderedDict[str, int] = OrderedDict()

    def admit(self, key: str | None, seq: int, seconds: float = 0.0) -> _Job:
        """A new job, superseding older ones of ``key``; Refused when late or the queue is full."""
        if key is not None:
            if seq <= self.latest.get(key, -1):
                raise Refused(409, f"superseded: request {seq} of {key!r} is not the newest")
            self.latest[key] = seq
            self.latest.move_to_end(key)
            while len(self.latest) > 1024:
                self.latest.popitem(last=False)
            for job in self.jobs:
                if job.key == key:
                    job.stop.set()
        full = self.full(seconds)
        if full is not None:
            raise full
        job = _Job(key, seq, seconds)
        self.jobs.append(job)
        return job

    def full(self, seconds: float = 0.0) -> Refused | None:
        """503 with Retry-After when a job of ``seconds`` finds no room (0: when none would)."""
        workers = self.limits.workers
        pending = sum(job.seconds for job in self.jobs if not job.stop.is_set())
        capacity = workers * self.limits.backlog_s
        if len(self.jobs) < workers + self.limits.queue and (
            pending + seconds <= capacity and pending < capacity
        ):
            return None
        retry = max(1, math.ceil(pending / workers))
        return Refused(503, f"busy: {len(self.jobs)} computations running or waiting, an"
                       f" estimated {pending:.3g} s", {"Retry-After": str(retry)})  # fmt: skip

    async def run(
        self, fn: Callable[[Any, Stop], Any], model: Any, request: Any, seconds: float = 0.0
    ) -> bytes:
        """``fn(model, should_stop)`` in a worker, as JSON; stopped when superseded or abandoned."""
        key = request.headers.get(KEY_HEADER)
        seq_text = request.headers.get(SEQ_HEADER, "0")
        if key is not None and (len(key) > 64 or not seq_text.isdigit() or len(seq_text) > 18):
            raise Refused(400, f"{KEY_HEADER} (≤ 64 characters) needs a numeric {SEQ_HEADER}")
        job = self.admit(key, int(seq_text), seconds)

        def work() -> bytes | None:
            if job.stop.is_set():
                return None
            result = fn(model, job.stop.is_set)
            return None if job.stop.is_set() else json.dumps(result).encode()

        future = asyncio.get_running_loop().run_in_executor(self.executor, work)
        future.add_done_callback(lambda _: self.jobs.remove(job))
        try:
            while not future.done():
                await asyncio.wait({future}, timeout=self.limits.poll_s)
                if not future.done() and await request.is_disconnected():
                    job.stop.set()
            body = future.result()
        finally:
            job.stop.set()  # the endpoint was cancelled or failed: its work is of no use
        if body is None:
            raise Refused(409, "superseded by a newer request, or the client went away")
        return body


@functools.cache
def _files() -> dict[str, tuple[bytes, str]]:
    """The page's files and Plotly.js, read once: name → (bytes, media type).

    Served from memory in one piece on the event loop: read from disk in chunks, each a turn of
    a worker thread and of the loop, Plotly.js (4.8 MB) took seconds while clients flooded the
    compute API. Only these names are served, so no path can lead elsewhere.
    """
    paths = [*sorted(WEB.iterdir()), Path(str(resources.files("plotly") / "package_data" /
                                               "plotly.min.js"))]  # fmt: skip
    return {
        path.name: (path.read_bytes(), mimetypes.guess_type(path.name)[0] or "text/plain")
        for path in paths
        if path.is_file()
    }


def _file(name: str) -> Response:
    from fastapi import HTTPException

    if name not in _files():
        raise HTTPException(404, "Not Found")
    content, media = _files()[name]
    return Response(content, media_type=media, headers={"cache-control": "no-cache"})


def _unpolled(fn: Callable[[Any, Stop | None], Any], model: Any, should_stop: Stop) -> Any:
    return fn(model, None)


def create_app(
    *,
    hosts: tuple[str, ...] = (),
    limits: Limits | None = None,
    frame_ancestors: tuple[str, ...] = (),
) -> Any:
    """The FastAPI application (imported lazily: the web extra is optional).

    ``hosts``: names served besides ``LOOPBACK_HOSTS`` (the address bound, ``--allow-host``).
    ``frame_ancestors``: origins whose pages may frame the page (``--frame-ancestor``).
    """
    headers = security_headers(frame_ancestors)
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    limits = limits or Limits()
    # No /docs or /redoc: they load their scripts from a CDN, which the page's policy forbids
    # and an offline machine cannot reach. /openapi.json is the schema.
    app = FastAPI(title="gdscope explorer", version=__version__, docs_url=None, redoc_url=None)
    pool = ComputePool(limits)
    app.state.pool = pool

    @app.exception_handler(GdscopeError)
    async def bad_input(request: Request, error: GdscopeError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(error)})

    @app.exception_handler(Refused)
    async def refused(request: Request, error: Refused) -> JSONResponse:
        return JSONResponse({"detail": error.reason}, error.status, headers=error.headers)

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
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "optimizers": sorted(OPTIMIZER_TABLE)}

    @app.get("/api/optimizers")
    async def optimizers() -> dict[str, Any]:
        """Each batched optimizer's hyperparameters at gdscope's defaults (see /api/schema)."""
        return {name: entry.defaults() for name, entry in OPTIMIZER_TABLE.items()}

    @app.get("/api/functions")
    async def functions() -> dict[str, Any]:
        """Each test function's standard domain, start and learning rate, as (y, x) pairs."""
        return _functions()

    @app.get("/api/schema")
    async def schema() -> dict[str, Any]:
        """What the page builds its controls from: names, defaults, bounds, limits."""
        return _schema()

    @app.post("/api/command")
    async def command(request: CommandRequest) -> dict[str, Any]:
        """The ``gdscope plot`` command that draws this request (as records write it), and the
        record a file of it carries (the page embeds it in the PNG it saves)."""
        config = request.config()
        rec = record("plot", config=config.to_dict(), title=None, dpi=DEFAULT_DPI)
        return {"command": config.command(OUT), "args": config.cli_args(), "out": OUT,
                "record": rec}  # fmt: skip

    async def compute(
        fn: Callable[[Any, Stop | None], Any], model: BaseModel, request: Request
    ) -> Response:
        seconds = estimate(model)
        if seconds > limits.budget_s:
            raise GdscopeError(
                f"request too large: estimated {seconds:.3g} s of compute (limit"
                f" {limits.budget_s:g} s); fewer epochs, points or cells"
            )
        if seconds < limits.stoppable_s or unpolled(model):
            fn = functools.partial(_unpolled, fn)
        body = await pool.run(fn, model, request, seconds)
        return Response(body, media_type="application/json")

    @app.post("/api/landscape")
    async def landscape_route(body: LandscapeRequest, request: Request) -> Response:
        """Loss maps on a grid."""
        return await compute(landscape, body, request)

    @app.post("/api/trajectories")
    async def trajectories_route(body: TrajectoryRequest, request: Request) -> Response:
        """Optimizer paths, one per loss."""
        return await compute(trajectories, body, request)

    @app.post("/api/phase")
    async def phase_route(body: PhaseRequest, request: Request) -> Response:
        """A phase diagram over two hyperparameters."""
        return await compute(phase, body, request)

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    async def plotly() -> Response:
        return _file("plotly.min.js")

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return _file("index.html")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        return _file(name)

    allowed = frozenset(host_name(h) for h in (*LOOPBACK_HOSTS, *hosts))
    routes = {landscape_route, trajectories_route, phase_route}
    computing = frozenset(
        getattr(r, "path", "") for r in app.routes if getattr(r, "endpoint", None) in routes
    )
    app.add_middleware(Guard, hosts=allowed, body_bytes=limits.body_bytes, pool=pool,
                       compute=computing, headers=headers)  # fmt: skip
    return app


def start_server(
    timeout: float = 30.0, options: tuple[str, ...] = ()
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start ``gdscope serve [options]`` in a subprocess on a free loopback port and wait until
    it answers; its URL and process (the caller stops it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "gdscope", "serve", "--port", str(port), *options]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url + "/api/health", timeout=1).close()
            return url, process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait(timeout=10)
                raise GdscopeError(f"gdscope serve did not start on {url}") from None
            time.sleep(0.1)


@contextlib.contextmanager
def serving(timeout: float = 30.0) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``gdscope serve`` in a subprocess on a free loopback port; yields URL and process.

    The process is for benchmarks that watch its memory; the server stops when the block ends.
    """
    url, process = start_server(timeout)
    try:
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def running_server(timeout: float = 30.0) -> Iterator[str]:
    """Run ``gdscope serve`` in a subprocess on a free loopback port; yields its base URL.

    For notebooks, tests and benchmarks; the server is stopped when the block ends.
    """
    with serving(timeout) as (url, _):
        yield url
