"""``gdscope serve``: the interactive explorer (``gdscope.server``) in the browser."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from gdscope.cli.options import integer
from gdscope.errors import GdscopeError

if TYPE_CHECKING:
    from gdscope.cli.options import Subparsers

__all__ = ["COMMANDS", "add_parser", "run"]

COMMANDS = ("serve",)


def add_parser(commands: Subparsers) -> None:
    serve = commands.add_parser("serve", help="the interactive explorer in the browser")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    serve.add_argument("--port", type=integer, default=8000)
    serve.add_argument("--open", action="store_true", help="open the page in a browser")


def run(ns: argparse.Namespace) -> int:
    import ipaddress

    if not 0 < ns.port < 65536:
        raise GdscopeError(f"--port must be in 1..65535, got {ns.port}")
    try:
        import uvicorn

        from gdscope.server.app import create_app
    except ImportError as error:
        raise GdscopeError(
            f"the explorer needs the web extra: pip install 'gdscope[web]' ({error})"
        ) from None
    try:
        loopback = ns.host == "localhost" or ipaddress.ip_address(ns.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        print(
            f"gdscope: warning: serving on {ns.host}, reachable from other machines",
            file=sys.stderr,
        )
    url = f"http://{'127.0.0.1' if ns.host in ('0.0.0.0', '::') else ns.host}:{ns.port}/"
    print(f"gdscope explorer on {url}", file=sys.stderr)
    if ns.open:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(create_app(), host=ns.host, port=ns.port, log_level="warning")
    return 0
