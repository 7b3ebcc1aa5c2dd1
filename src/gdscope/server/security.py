"""What the explorer refuses before any route runs: foreign hosts, cross-origin POSTs, big bodies.

``Guard`` is the ASGI middleware in front of every route. Only the loopback names, the bound
address and ``--allow-host`` names are served (DNS rebinding); a browser's cross-origin POST is
refused; a body is read here, counting the bytes that actually arrive (whatever
``Content-Length`` or ``Transfer-Encoding`` say), and refused past the limit; a computation
the pool has no room for is refused before its body is read. Every answer, the 500 of a failed
route and uvicorn's own 400s included, carries the security headers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from gdscope.errors import GdscopeError
from gdscope.server.pool import ComputePool, Refused, request_stream

__all__ = [
    "CSP",
    "LOOPBACK_HOSTS",
    "SECURITY_HEADERS",
    "Guard",
    "allowed_name",
    "host_name",
    "security_headers",
    "uvicorn_protocol",
]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Host names always served: this machine's own."""
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
_AUTHORITY = re.compile(r"(?:\[([0-9a-f:.]+)\]|([a-z0-9._\-]+))(?::[0-9]{1,5})?", re.ASCII)
"""A ``Host`` header: a name or IPv4 address, or an IPv6 address in brackets, then a port."""
_SINGLE = ("host", "origin", "content-length", "transfer-encoding", "sec-fetch-site",
           "x-gdscope-key", "x-gdscope-seq")  # fmt: skip
"""Headers a request may carry once: with two, which one counts is anyone's guess."""


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


def host_name(host: str) -> str | None:
    """The name in a ``Host`` header or URL authority, without port or IPv6 brackets; None
    when it is not one (``[::1]evil.example``, a user name, a path)."""
    match = _AUTHORITY.fullmatch(host.strip().lower())
    if match is None:
        return None
    return match.group(1) or match.group(2)


def allowed_name(name: str) -> str:
    """A name to serve (``--host``, ``--allow-host``) as ``host_name`` reads it from a
    ``Host`` header: an IPv6 address without brackets, anything else lower case."""
    name = name.strip().lower()
    return name.strip("[]") if ":" in name else name


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


class Guard:
    """ASGI middleware: the Host allow-list, same-origin POSTs, the body limit, the headers.

    A browser that was tricked into sending this server a request (a page on another site,
    DNS rebinding) names another host or origin: such requests get 403 with the reason.
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
        started = False

        async def secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        try:
            refusal = self.refusal(scope)
            if refusal is None and scope["path"] in self.compute:
                refusal = self.pool.full()
            if refusal is not None:
                raise refusal
            body = await self.body(receive)
        except Refused as refused:
            await _send_json(secured, refused)
            return
        if body is None:
            return  # the client went away while sending
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only ever a disconnect

        try:
            await self.app(scope, replay, secured)
        except Exception:
            # Starlette answers 500 outside this middleware, without the headers: answer it
            # here, then let the error go on up to be logged.
            if not started:
                await _send_json(secured, Refused(500, "Internal Server Error"))
            raise

    async def body(self, receive: Receive) -> bytes | None:
        """The whole body, read here: 413 once more than the limit has arrived; None when the
        client went away."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.body_bytes:
                raise Refused(413, f"request body over {self.body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def refusal(self, scope: Scope) -> Refused | None:
        """Why this server will not serve a request, from its headers; None for the others."""
        listed: dict[str, list[str]] = {}
        for key, value in scope["headers"]:
            listed.setdefault(key.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        twice = [name for name in _SINGLE if len(listed.get(name, ())) > 1]
        if twice:
            return Refused(400, f"the {twice[0]} header appears more than once")
        headers = {k: v[0] for k, v in listed.items()}
        host = headers.get("host", "")
        if host_name(host) not in self.hosts:
            return Refused(403, (
                f"host {host!r} is not served here (allowed: {', '.join(sorted(self.hosts))};"
                " gdscope serve --allow-host NAME adds one)"
            ))  # fmt: skip
        if scope["path"] in self.compute:
            request_stream(headers)  # a malformed key or number: 400 before the body is read
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return None
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            return Refused(403, f"cross-origin request from {origin!r} refused")
        if headers.get("sec-fetch-site") == "cross-site":
            return Refused(403, "cross-site request refused")
        length = headers.get("content-length")
        if length is not None and headers.get("transfer-encoding"):
            return Refused(400, "both Content-Length and Transfer-Encoding")
        if length is not None and not re.fullmatch(r"[0-9]{1,18}", length, re.ASCII):
            return Refused(400, "bad Content-Length")
        if length is not None and int(length) > self.body_bytes:
            return Refused(413, f"request body of {int(length)} bytes (limit {self.body_bytes})")
        return None


async def _send_json(send: Send, refused: Refused) -> None:
    """The refusal as JSON; ``send`` adds the security headers."""
    body = json.dumps({"detail": refused.reason}).encode()
    headers = [(k.lower().encode(), v.encode()) for k, v in refused.headers.items()]
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": refused.status,
                "headers": [*start, *headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def uvicorn_protocol(headers: tuple[tuple[bytes, bytes], ...]) -> type:
    """uvicorn's HTTP/1.1 protocol (h11) whose own 400s, for requests it cannot parse (they
    never reach ``Guard``), carry ``headers`` too; pass it as ``uvicorn.Config(http=...)``."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Secured(H11Protocol):
        def send_400_response(self, msg: str) -> None:
            event = h11.Response(status_code=400, reason=b"Bad Request", headers=[
                (b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close"),
                *headers,
            ])  # fmt: skip
            for item in (event, h11.Data(data=msg.encode("ascii")), h11.EndOfMessage()):
                self.transport.write(self.conn.send(item))
            self.transport.close()

    return Secured
