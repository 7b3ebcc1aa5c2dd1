"""``gdscope serve``: the explorer's web app (FastAPI): its routes, which parse and answer.

Every request is a pydantic model with bounds (``server/models.py``) and a work budget in
estimated seconds (``server/compute.py``, from ``server/costs.py``): over it, 422 with the
reason. Computations run in worker processes with a deadline (``server/pool.py``); requests
pass ``server/security.py``'s guard first; the page's files come from ``server/static.py``;
the page builds its controls from ``/api/schema`` (``server/schema.py``) and shows the command
that ``/api/command`` builds, so it holds no copy of names, defaults or flags.
"""

from __future__ import annotations

from typing import Any

from gdscope.errors import GdscopeError
from gdscope.jobs.records import DEFAULT_DPI, record
from gdscope.optim.table import OPTIMIZER_TABLE
from gdscope.server import schema as schemas
from gdscope.server.base import guard, new_app, serve_page
from gdscope.server.compute import estimate
from gdscope.server.costs import native
from gdscope.server.launch import running_server
from gdscope.server.models import CommandRequest, LandscapeRequest, PhaseRequest, TrajectoryRequest
from gdscope.server.pool import ComputePool, Limits
from gdscope.server.security import security_headers
from gdscope.server.static import WEB
from gdscope.version import __version__

try:  # the routes' annotations name them, so they are module globals; the web extra is optional
    from starlette.requests import Request
    from starlette.responses import Response
except ImportError:  # pragma: no cover
    Request = Response = Any  # type: ignore[misc,assignment]

__all__ = ["OUT", "WEB", "create_app", "running_server"]
# WEB and running_server live in static.py and launch.py; named here too for the page's tests.

OUT = "explorer.png"
"""The file the page's command writes."""


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
    limits = limits or Limits()
    pool = ComputePool(limits)
    native("sgd", "mse")  # builds the native kernel now, if it can, not in a request
    app = new_app("gdscope explorer", start=pool.start, stop=pool.close)
    app.state.pool = pool

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
        return schemas.functions()

    @app.get("/api/schema")
    async def schema() -> dict[str, Any]:
        """What the page builds its controls from: names, defaults, bounds, limits."""
        return schemas.schema()

    @app.post("/api/command")
    async def command(request: CommandRequest) -> dict[str, Any]:
        """The ``gdscope plot`` command that draws this request (as records write it), and the
        record a file of it carries (the page embeds it in the PNG it saves)."""
        config = request.config()
        rec = record("plot", config=config.to_dict(), title=None, dpi=DEFAULT_DPI)
        return {"command": config.command(OUT), "args": config.cli_args(), "out": OUT,
                "record": rec}  # fmt: skip

    async def compute(name: str, model: Any, request: Request) -> Response:
        seconds = estimate(model)
        if seconds > limits.budget_s:
            raise GdscopeError(
                f"request too large: estimated {seconds:.3g} s of compute (limit"
                f" {limits.budget_s:g} s); fewer epochs, points or cells"
            )
        body = await pool.run(name, model.model_dump(), request, seconds)
        return Response(body, media_type="application/json")

    @app.post("/api/landscape")
    async def landscape_route(body: LandscapeRequest, request: Request) -> Response:
        """Loss maps on a grid."""
        return await compute("landscape", body, request)

    @app.post("/api/trajectories")
    async def trajectories_route(body: TrajectoryRequest, request: Request) -> Response:
        """Optimizer paths, one per loss."""
        return await compute("trajectories", body, request)

    @app.post("/api/phase")
    async def phase_route(body: PhaseRequest, request: Request) -> Response:
        """A phase diagram over two hyperparameters."""
        return await compute("phase", body, request)

    serve_page(app, "index.html")
    routes = {landscape_route, trajectories_route, phase_route}
    computing = frozenset(
        getattr(r, "path", "") for r in app.routes if getattr(r, "endpoint", None) in routes
    )
    guard(app, hosts=hosts, limits=limits, pool=pool, compute=computing, headers=headers)
    return app
