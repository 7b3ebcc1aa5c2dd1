"""What the explorer's app (``server/app.py``) and the board's (``server/board.py``) share: the
FastAPI application with its start and stop, the errors every route may raise answered with
their reason, the page's files and the guard in front of it all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

from gdscope.errors import GdscopeError
from gdscope.server.pool import ComputePool, Limits, Refused
from gdscope.server.security import LOOPBACK_HOSTS, Guard, allowed_name
from gdscope.server.static import files
from gdscope.version import __version__

__all__ = ["guard", "new_app", "serve_page"]

START_AFTER_S = 0.5
"""How long after the server listens its workers start: their imports would slow its own start
on a busy machine, and the first request need not wait for them."""


def new_app(title: str, *, start: Callable[[], None], stop: Callable[[], None]) -> Any:
    """A FastAPI app called ``title``: ``start()`` runs ``START_AFTER_S`` after the server
    listens, ``stop()`` when it stops; a ``GdscopeError`` is answered 422 with its message, a
    ``Refused`` with its status, reason and headers, an invalid request (or a pydantic model a
    route builds from a query) 422 with each reason, without the offending input (it may hold
    NaN, which JSON cannot carry)."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import ValidationError
    from starlette.requests import Request

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        asyncio.get_running_loop().call_later(START_AFTER_S, start)
        yield
        stop()

    # No /docs or /redoc: they load their scripts from a CDN, which the page's policy forbids
    # and an offline machine cannot reach. /openapi.json is the schema.
    app = FastAPI(title=title, version=__version__, docs_url=None, redoc_url=None,
                  lifespan=lifespan)  # fmt: skip

    @app.exception_handler(GdscopeError)
    async def bad_input(request: Request, error: GdscopeError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(error)})

    @app.exception_handler(Refused)
    async def refused(request: Request, error: Refused) -> JSONResponse:
        return JSONResponse({"detail": error.reason}, error.status, headers=error.headers)

    @app.exception_handler(ValidationError)
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError | ValidationError
                      ) -> JSONResponse:  # fmt: skip
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""),
                   "type": e.get("type", "")} for e in error.errors()]  # fmt: skip
        return JSONResponse(status_code=422, content={"detail": detail})

    return app


def serve_page(app: Any, index: str) -> None:
    """The page (``index``, a file of ``server/web``) at ``/``, its files at ``/static/NAME``
    and Plotly.js at ``/vendor/plotly.min.js``, from memory (``static.files``): only those
    names, 404 for any other."""
    from starlette.responses import Response

    def file(name: str) -> Response:
        if name not in files():
            raise Refused(404, "Not Found")
        content, media = files()[name]
        return Response(content, media_type=media, headers={"cache-control": "no-cache"})

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return file(index)

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    async def plotly() -> Response:
        return file("plotly.min.js")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        return file(name)


def guard(
    app: Any,
    *,
    hosts: Collection[str],
    limits: Limits,
    pool: ComputePool,
    compute: frozenset[str],
    headers: tuple[tuple[bytes, bytes], ...],
) -> None:
    """Put ``security.Guard`` in front of ``app``: requests for ``LOOPBACK_HOSTS`` and
    ``hosts`` only, bodies up to ``limits.body_bytes``, the ``compute`` routes through
    ``pool``, every answer with ``headers``."""
    allowed = frozenset(allowed_name(h) for h in (*LOOPBACK_HOSTS, *hosts))
    app.add_middleware(Guard, hosts=allowed, body_bytes=limits.body_bytes, pool=pool,
                       compute=compute, headers=headers)  # fmt: skip
