"""``gdscope.explore()``: the explorer inline in a Jupyter notebook.

The page is served by ``gdscope serve`` in a subprocess on a free loopback port (one for the
kernel, started on first use, stopped when the kernel's Python exits) and shown in an IFrame.
The configuration to start from goes into the page's URL as ``#state=…``, which is where the
page keeps its whole state anyway, so a preset is a link like any the page makes itself.
"""

from __future__ import annotations

import atexit
import html
import json
import os
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gdscope.errors import GdscopeError, needs_extra, one_of

__all__ = ["NOTEBOOK_ORIGINS", "Explorer", "board", "explore", "preset", "stop"]

NOTEBOOK_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*")
"""Pages that may frame the explorer by default: a Jupyter served on this machine (CSP has no
way to name an IPv6 address)."""

_SERVERS: dict[tuple[str, ...], tuple[str, subprocess.Popen[bytes]]] = {}
"""The kernel's running servers, by the origins they may be framed by."""


@dataclass(frozen=True)
class Explorer:
    """The explorer at ``url``, shown by Jupyter as an IFrame (``_repr_html_``)."""

    url: str
    width: str = "100%"
    height: int = 780
    title: str = "gdscope explorer"

    def _repr_html_(self) -> str:
        return (
            f'<iframe src="{html.escape(self.url)}" width="{html.escape(self.width)}"'
            f' height="{self.height}" style="border: 0" title="{html.escape(self.title)}">'
            "</iframe>"
        )


def preset(
    optimizer: str | None = None,
    *,
    epochs: int | None = None,
    loss: str | None = None,
    function: str | None = None,
    start: tuple[float, float] | None = None,
    view: str | None = None,
    log: bool | None = None,
    **hyper: float | bool,
) -> dict[str, Any]:
    """The page's state for these choices (only what is given), checked by the same models
    that check the page's requests: a bad name or value is a ``GdscopeError`` now, not a page
    that cannot load."""
    from pydantic import ValidationError

    from gdscope.jobs.plotconfig import VIEWS
    from gdscope.optim.specs import OptimizerSpec
    from gdscope.server.models import TrajectoryRequest

    request: dict[str, Any] = {}
    state: dict[str, Any] = {}
    if optimizer is not None or hyper:
        name = optimizer or OptimizerSpec().name  # the page's default optimizer
        request["optimizer"] = {"name": name, "hyper": hyper}
        state.update(optimizer=name, hyper=hyper)
    if epochs is not None:
        request["epochs"] = state["epochs"] = epochs
    if loss is not None and loss != "all":
        request["losses"] = [{"name": loss}]
    if loss is not None:
        state["loss"] = loss
    if function is not None:
        request["function"] = {"name": function}
        state["problem"] = function
    if start is not None:
        request["start"] = state["start"] = [float(start[0]), float(start[1])]
    try:
        TrajectoryRequest.model_validate(request)
    except ValidationError as error:
        reasons = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise GdscopeError(f"explore: {reasons}") from None
    if view is not None:
        state["view"] = one_of("explore: view", view, VIEWS)
    if log is not None:
        state["color"] = "log" if log else "linear"
    return state


def _server(origins: tuple[str, ...], command: tuple[str, ...] = ("serve",)) -> str:
    """The URL of the kernel's server (``gdscope serve``, or another ``command``) framed by
    ``origins``, started if it is not running."""
    key = origins if command == ("serve",) else (*command, *origins)
    running = _SERVERS.get(key)
    if running is not None and running[1].poll() is None:
        return running[0]
    try:
        from gdscope.server.launch import start_server
        from gdscope.server.security import security_headers
    except ImportError as error:
        raise needs_extra(f"the explorer needs the web extra ({error})", "web") from None
    security_headers(origins)  # a bad origin: one error here, not a server that exits
    options = tuple(f"--frame-ancestor={origin}" for origin in origins)
    if not _SERVERS:
        atexit.register(stop)
    _SERVERS[key] = start_server(timeout=60.0, options=options, command=command)
    return _SERVERS[key][0]


def explore(
    optimizer: str | None = None,
    *,
    width: str = "100%",
    height: int = 780,
    origins: tuple[str, ...] = NOTEBOOK_ORIGINS,
    **choices: Any,
) -> Explorer:
    """The explorer, to show in a notebook cell, opened on ``optimizer`` and ``choices`` (the
    keywords of ``preset``: ``epochs``, ``loss``, ``function``, ``start``, ``view``, ``log``
    and the optimizer's hyperparameters, e.g. ``explore("sgd", lr=0.05, momentum=0.9)``).

    ``origins``: the pages allowed to frame it (default: a Jupyter on this machine; add e.g.
    your JupyterHub's origin). The server is shared by every call and stopped with the kernel.
    """
    state = preset(optimizer, **choices)
    base = _server(tuple(origins))
    fragment = "#state=" + urllib.parse.quote(json.dumps(state, separators=(",", ":")))
    return Explorer(url=f"{base}/{fragment if state else ''}", width=width, height=height)


def board(
    runs: str | os.PathLike[str],
    *,
    model: str | None = None,
    data: str | None = None,
    loss: str | None = None,
    deadline: float | None = None,
    width: str = "100%",
    height: int = 900,
    origins: tuple[str, ...] = NOTEBOOK_ORIGINS,
) -> Explorer:
    """``gdscope board RUNS`` in a notebook cell: the runs under ``runs``, followed live.
    ``model``, ``data`` (``module:function``) and ``loss`` compute landscapes, as the command's
    ``--model``, ``--data`` and ``--loss``, ``deadline`` (seconds) as ``--deadline``;
    ``origins`` as for ``explore``. One server per folder and settings, shared by the calls
    that name them, stopped with the kernel."""
    folder = Path(runs).resolve()
    if folder.exists() and not folder.is_dir():  # (not there yet: followed until it is)
        raise GdscopeError(f"{runs} is not a folder of runs")
    if (model is None) != (data is None):
        raise GdscopeError("board: model and data go together (the landscape needs both)")
    command: tuple[str, ...] = ("board", str(folder), "--no-browser")
    named = (("--model", model), ("--data", data), ("--loss", loss), ("--deadline", deadline))
    for flag, value in named:
        if value is not None:
            command += (f"{flag}={value}",)
    base = _server(tuple(origins), command)
    return Explorer(url=f"{base}/", width=width, height=height, title="gdscope board")


def stop() -> None:
    """Stop the kernel's explorer servers (done at exit; call it to stop them sooner)."""
    while _SERVERS:
        _, (_, process) = _SERVERS.popitem()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
