"""``gdscope serve``: the interactive explorer (``gdscope.server``) in the browser."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gdscope.cli import options
from gdscope.cli.options import integer
from gdscope.errors import GdscopeError, needs_extra

if TYPE_CHECKING:
    from gdscope.cli.options import Subparsers

__all__ = ["COMMANDS", "add_parser", "no_display", "page_url", "run", "serve"]

COMMANDS = ("serve",)
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}
"""An address that listens everywhere, and the one to open the page on."""


def add_parser(commands: Subparsers) -> None:
    serve = commands.add_parser("serve", help="the interactive explorer in the browser")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    serve.add_argument("--port", type=integer, default=8000, help="port (default: %(default)s)")
    serve.add_argument("--open", action="store_true", help="open the page in a browser")
    serve.add_argument(
        "--allow-host", action="append", default=[], metavar="NAME",
        help="also answer requests for this host name (repeatable); the loopback names and "
        "the address bound are always answered, any other name is refused (DNS rebinding)",
    )  # fmt: skip
    serve.add_argument(
        "--frame-ancestor", action="append", default=[], metavar="ORIGIN",
        help="let pages of this origin show the explorer in a frame (repeatable; e.g. a "
        "notebook's http://localhost:8888); by default no page may",
    )  # fmt: skip


def page_url(host: str, port: int) -> str:
    """The page's URL: a wildcard address as loopback, an IPv6 address in brackets."""
    host = WILDCARDS.get(host, host)
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def no_display(environ: Mapping[str, str] = os.environ, platform: str = sys.platform) -> bool:
    """Whether there is no graphical display to open a browser on: a Linux/BSD session
    without ``DISPLAY`` or ``WAYLAND_DISPLAY`` (over ssh, in a container). There Python's
    ``webbrowser`` would open nothing, or start a text browser in the server's terminal."""
    if platform.startswith(("win", "darwin", "cygwin")):
        return False
    return not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def _open_later(url: str) -> None:
    """Open ``url`` in a browser once the server listens; say so if none opened."""
    import threading
    import webbrowser

    def attempt() -> None:
        if not webbrowser.open(url):
            print(f"gdscope: no browser could be opened; open {url} yourself", file=sys.stderr)

    threading.Timer(1.0, attempt).start()


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``; GdscopeError (one line) if it cannot."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as error:
        raise GdscopeError(f"cannot listen on {host}: {error.strerror or error}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        reason = "the port is in use" if error.errno == 98 else error.strerror or str(error)
        raise GdscopeError(
            f"cannot listen on {page_url(host, port)}: {reason} (choose another with --port)"
        ) from None
    return sock


def serve(
    make_app: Callable[[], Any],
    ns: argparse.Namespace,
    *,
    title: str,
    open_page: bool,
    notes: Sequence[str] = (),
) -> int:
    """Serve the app ``make_app()`` builds on ``ns.host:ns.port`` (``--port``, ``--allow-host``,
    ``--frame-ancestor``) until stopped: the port is taken first (a busy one: one line), then
    the address is said (``title``, a warning off loopback, ``notes``), the page opened
    (``open_page``, where there is a display) and the app built. Shared by ``gdscope serve`` and
    ``gdscope board``."""
    if not 0 < ns.port < 65536:
        raise GdscopeError(f"--port must be in 1..65535, got {ns.port}")
    try:
        import uvicorn

        from gdscope.server.security import security_headers, uvicorn_protocol
    except ImportError as error:
        raise needs_extra(f"the {title} needs the web extra ({error})", "web") from None
    try:
        loopback = ns.host == "localhost" or ipaddress.ip_address(ns.host).is_loopback
    except ValueError:
        loopback = False
    headers = security_headers(tuple(ns.frame_ancestor))  # a bad origin: one line, first
    sock = _listen(ns.host, ns.port)
    url = page_url(ns.host, ns.port)
    if not loopback:
        print(
            f"gdscope: warning: serving on {ns.host}, reachable from other machines"
            " (other machines reach it by a name: add it with --allow-host)",
            file=sys.stderr,
        )
    print(f"gdscope {title} on {url}", file=sys.stderr)
    for note in notes:
        print(f"gdscope: {note}", file=sys.stderr)
    options.warn_now()  # a server runs until stopped: its warnings as they come
    if open_page and no_display():
        print(f"gdscope: no display to open a browser on; open {url} yourself", file=sys.stderr)
    elif open_page:
        _open_later(url)
    app = make_app()
    protocol = uvicorn_protocol(headers)  # uvicorn's own 400s carry the headers too
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", http=protocol))
    server.run(sockets=[sock])
    return 0


def run(ns: argparse.Namespace) -> int:
    def make_app() -> Any:
        from gdscope.server.app import create_app

        # The computations' threads hand the GIL back sooner, so the event loop (the page,
        # its files, /api/health) waits less for it under load; this process serves nothing
        # else.
        sys.setswitchinterval(0.001)
        import torch  # each computation on one core: the others are the event loop's

        torch.set_num_threads(1)
        return create_app(hosts=(ns.host, *ns.allow_host),
                          frame_ancestors=tuple(ns.frame_ancestor))  # fmt: skip

    return serve(make_app, ns, title="explorer", open_page=ns.open)
