"""``gdscope serve`` in a subprocess on a free loopback port: for notebooks, tests, benchmarks."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

from gdscope.errors import GdscopeError

__all__ = ["running_server", "serving", "start_server"]


def start_server(
    timeout: float = 120.0, options: tuple[str, ...] = (), command: tuple[str, ...] = ("serve",)
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start ``gdscope serve [options]`` (or another ``command``: ``("board", RUNS)``) in a
    subprocess on a free loopback port and wait until it answers; its URL and process (the
    caller stops it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "gdscope", *command, "--port", str(port), *options]
    process = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
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
                raise GdscopeError(f"gdscope {command[0]} did not start on {url}") from None
            time.sleep(0.1)


@contextlib.contextmanager
def serving(timeout: float = 120.0) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
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
def running_server(timeout: float = 120.0) -> Iterator[str]:
    """Run ``gdscope serve`` in a subprocess on a free loopback port; yields its base URL.

    For notebooks, tests and benchmarks; the server is stopped when the block ends.
    """
    with serving(timeout) as (url, _):
        yield url
