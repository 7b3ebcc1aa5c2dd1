"""``gdscope board``: the runs under a folder, live in the browser (FastAPI).

The routes read only under the runs' folder (``jobs.board.Runs`` refuses any other name: 403,
or 404 for no such run); the model and data that landscapes are computed with come from the
command line or ``gdscope.board`` (``Sources``), never from a request. ``/api/events`` streams
what changes (server-sent events: new runs, new rows, a new sharpness) from one ``Watcher`` per
page, which reads only the rows appended since it last looked. Landscapes run in a process each
(the user's code, on one core), at most ``Limits.workers`` at once (503 beyond), cancellable,
stopped past their deadline of compute (``jobs.board.DEADLINE_S``, ``--deadline``), and written
beside the run (``jobs.board.CACHE``), so a second visit reads them back; ``/api/compare``
computes the plane several runs share the same way (``jobs.board.Subject``), kept in the runs'
folder's ``CACHE``. ``/api/figure``
(``figure``) says what each view's PNG carries: the record its command writes into its own
figure. Every request passes the explorer's ``Guard`` (Host and Origin checks, the body limit).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gdscope.errors import GdscopeError
from gdscope.files import RECORD_KEYS, record_json
from gdscope.jobs.board import (
    CHARTS,
    COARSE,
    DEADLINE_S,
    MAX_SHARED,
    NoSuchRun,
    OutsideRuns,
    Recording,
    Runs,
    Sources,
    Subject,
    Watcher,
    cache_folder,
    cached,
    curves_record,
    landscape_worker,
    read_file_run,
    read_recording,
    rows_of,
    spectrum_file,
)
from gdscope.jobs.boardrecords import landscape_record, spectrum_record
from gdscope.nets.survey import MAX_POINTS
from gdscope.server.base import guard, new_app, serve_page
from gdscope.server.pool import ComputePool, Limits, Refused, cpu_seconds
from gdscope.server.security import security_headers
from gdscope.version import __version__

try:  # the routes' annotations name them, so they are module globals; the web extra is optional
    from starlette.requests import Request
    from starlette.responses import Response
except ImportError:  # pragma: no cover
    Request = Response = Any  # type: ignore[misc,assignment]

__all__ = [
    "VIEWS",
    "CompareOrder",
    "LandscapeOrder",
    "Landscapes",
    "SpectrumOrder",
    "create_board",
    "figure",
]

POLL_S = 0.2
"""How often a page's event stream looks for changes: a new step shows within this, plus the
time to send it."""
HEARTBEAT_S = 15.0
"""A comment down an idle event stream this often, so proxies and the browser keep it open."""
STREAMS = 32
"""Event streams open at once, at most (503 beyond): each polls the folder."""
OVERLAID = 32
"""Runs overlaid on a chart whose PNG's record ``/api/figure`` builds, at most (each is read)."""


class LandscapeOrder(BaseModel):
    """Compute the landscape around run ``name``: its PCA plane at ``points`` per axis (an
    11×11 first), the line from the first snapshot to the last; ``cancel``: stop it."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=1024)
    points: int = Field(default=41, ge=COARSE, le=MAX_POINTS)
    cancel: bool = False


class CompareOrder(BaseModel):
    """Compute the landscape shared by the recordings ``names`` (2 to ``MAX_SHARED``): the PCA
    plane of their paths' union, centred on the first one's last snapshot, at ``points`` per
    axis (an 11×11 first); ``cancel``: stop it."""

    model_config = ConfigDict(extra="forbid")
    names: list[str] = Field(min_length=2, max_length=MAX_SHARED)
    points: int = Field(default=41, ge=COARSE, le=MAX_POINTS)
    cancel: bool = False


class SpectrumOrder(BaseModel):
    """Compute the Hessian spectrum at run ``name``'s last snapshot; ``cancel``: stop it."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=1024)
    cancel: bool = False


@dataclass
class _Job:
    """A landscape computing in a process of its own, and what it said so far."""

    names: tuple[str, ...]
    snapshots: tuple[int, ...]
    points: int
    process: Any
    what: str = "landscape"
    stage: str = "starting"
    done: int = 0
    total: int = 0
    error: str | None = None
    finished: bool = False
    cancelled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class Landscapes:
    """The landscapes and spectra being computed, one of each per run, or per runs sharing a
    plane, at most (a new order for them replaces the one running), ``workers`` at once at
    most, each in a process of its own (a spare one, started ahead, takes the next order). A
    run's landscape is the one-run case of the shared one (``Subject``)."""

    def __init__(self, runs: Runs, sources: Sources | None, workers: int, *,
                 deadline_s: float = DEADLINE_S) -> None:  # fmt: skip
        if not deadline_s > 0:
            raise GdscopeError(f"the deadline must be positive seconds, got {deadline_s}",
                               settings=["deadline"])  # fmt: skip
        self.runs, self.sources, self.workers = runs, sources, workers
        self.deadline_s = deadline_s
        self.jobs: dict[tuple[str, tuple[str, ...]], _Job] = {}
        """By what they compute (``landscape``, ``spectrum``) and the runs, in order."""
        self.spare: tuple[Any, Any] | None = None
        """A worker process started ahead, its imports done, waiting for an order."""
        self.lock = threading.Lock()

    def warm(self) -> None:
        """Start a spare worker process, if there is none (and landscapes are computed)."""
        if self.sources is None:
            return
        with self.lock:
            if self.spare is not None and self.spare[0].is_alive():
                return
            context = multiprocessing.get_context("spawn")
            parent, child = context.Pipe()
            process = context.Process(target=landscape_worker, args=(child, self.sources),
                                      daemon=True, name="gdscope-board")  # fmt: skip
            process.start()
            child.close()
            self.spare = process, parent

    def _worker(self) -> tuple[Any, Any]:
        """The spare worker (started now if there is none); another is started behind it."""
        self.warm()
        with self.lock:
            assert self.spare is not None
            taken, self.spare = self.spare, None
        threading.Thread(target=self.warm, daemon=True).start()
        return taken

    def count(self, name: str) -> int:
        """Snapshots of run ``name`` on its path now (those with a step: as ``open_path``)."""
        run = Recording(self.runs.path(name))
        run.refresh_index()
        run.tail.skip()
        return min(rows_of(run), run.snapshots()[0])

    def subject(self, names: tuple[str, ...]) -> Subject:
        """The recordings ``names`` (one, or several sharing a plane) as they are now."""
        for name in names:
            self._kind(name)
        return Subject(tuple(self.runs.path(n) for n in names), names,
                       tuple(self.count(n) for n in names), self.runs.root)  # fmt: skip

    def state(self, names: tuple[str, ...], points: int) -> dict[str, Any]:
        """What is known of the landscape of ``names`` (one run, or several sharing a plane) at
        ``points``: the stages computed (from the cache: the newest), the job computing, if
        any. ``snapshots`` and ``current``: the first run's counts (computed, now);
        ``counts`` and ``now``: every run's."""
        subject = self.subject(names)
        now = subject.snapshots
        job = self.jobs.get(("landscape", names))
        snapshots = job.snapshots if job is not None and job.points == points else \
            subject.newest() or now  # fmt: skip
        at = subject.at(snapshots)
        line = at.line_file()
        stages = {
            "coarse": cached(at.plane_file(COARSE)),
            "line": None if line is None else cached(line),
            "refined": cached(at.plane_file(points)) if points != COARSE else None,
        }  # fmt: skip
        answer: dict[str, Any] = {"name": names[0], "names": list(names), "points": points,
                                  "snapshots": snapshots[0], "current": now[0],
                                  "counts": list(snapshots), "now": list(now),
                                  "available": self.sources is not None,
                                  "stages": stages, "job": None}  # fmt: skip
        if job is not None and job.points == points:
            answer["job"] = _progress(job)
        return answer

    def spectrum(self, name: str) -> dict[str, Any]:
        """The Hessian spectrum of ``name``'s last snapshot: the newest computed, and the job
        computing one, if any."""
        self._kind(name)
        folder = self.runs.path(name)
        now = self.count(name)
        job = self.jobs.get(("spectrum", (name,)))
        counts = [_count(f) for f in cache_folder(folder).glob("spectrum-*.json")]
        snapshots = job.snapshots[0] if job is not None else max(
            (c for c in counts if c is not None), default=now)  # fmt: skip
        return {"name": name, "snapshots": snapshots, "current": now,
                "available": self.sources is not None,
                "spectrum": cached(spectrum_file(folder, snapshots)),
                "job": None if job is None else _progress(job)}  # fmt: skip

    def _kind(self, name: str) -> None:
        if self.runs.kind(name) != "recording":
            raise NoSuchRun(f"{name!r} is not a recording: a landscape is of a recorded path")

    def start(self, names: tuple[str, ...], points: int, what: str = "landscape"
              ) -> dict[str, Any]:  # fmt: skip
        """Start computing the landscape of ``names``'s paths (one run, or several sharing a
        plane) as they are now, or (``what``: ``"spectrum"``, one run) the Hessian spectrum at
        its last snapshot; what is cached is read back, not computed again."""
        if self.sources is None:
            raise Refused(409, "this board computes no landscapes or spectra: start it with "
                          "--model MODULE:FN --data MODULE:FN")  # fmt: skip
        subject = self.subject(names)
        snapshots = subject.snapshots

        def answer() -> dict[str, Any]:
            return self.spectrum(names[0]) if what == "spectrum" else self.state(names, points)

        stages = [spectrum_file(subject.folders[0], snapshots[0])] if what == "spectrum" else \
            subject.files(points)  # fmt: skip
        if all(cached(file) is not None for file in stages):
            self.jobs.pop((what, names), None)  # all there: read back, nothing to compute
            return answer()
        running = self.jobs.get((what, names))
        if running is not None and not running.finished:
            if (running.snapshots, running.points) == (snapshots, points):
                return answer()
            self.cancel(names, what)
        busy = [j for j in self.jobs.values() if not j.finished]
        if len(busy) >= self.workers:
            raise Refused(503, f"busy: {len(busy)} landscape or spectrum computing (at most "
                          f"{self.workers} at once); cancel it or wait",
                          {"Retry-After": "5"})  # fmt: skip
        process, conn = self._worker()
        conn.send({"what": what, "subject": subject.to_dict(), "points": points})
        job = _Job(names, snapshots, points, process, what)
        self.jobs[what, names] = job
        threading.Thread(target=_listen, args=(job, conn, self.deadline_s), daemon=True).start()
        return answer()

    def cancel(self, names: tuple[str, ...], what: str = "landscape") -> None:
        """Stop the landscape (or spectrum) of ``names`` (what finished stays cached; a refined
        grid's finished chunks stay in its resume file, so starting again goes on from them)."""
        job = self.jobs.get((what, names))
        if job is None or job.finished:
            return
        with job.lock:
            job.cancelled = job.finished = True
            job.error = "cancelled"
        job.process.kill()
        job.process.join(timeout=10)

    def close(self) -> None:
        for what, names in list(self.jobs):
            self.cancel(names, what)
        with self.lock:
            if self.spare is not None:
                self.spare[0].kill()
                self.spare[0].join(timeout=10)
                self.spare = None


def _progress(job: _Job) -> dict[str, Any]:
    with job.lock:
        return {"stage": job.stage, "done": job.done, "total": job.total, "error": job.error,
                "finished": job.finished, "cancelled": job.cancelled}  # fmt: skip


def _count(file: Path) -> int | None:
    """The snapshot count in a cached file's name (``spectrum-301.json``: 301)."""
    try:
        return int(file.stem.split("-")[1])
    except (IndexError, ValueError):
        return None


def _listen(job: _Job, conn: Any, deadline_s: float) -> None:
    """Keep ``job`` up to date with what its process says, until it ends; stop it once it has
    used ``deadline_s`` of compute (``DEADLINE_S``)."""
    pid, began, began_cpu = job.process.pid, None, None
    while True:
        try:
            ready = conn.poll(POLL_S)
            message = conn.recv() if ready else None
        except (EOFError, OSError):
            with job.lock:
                if not job.finished:
                    job.finished = True
                    job.error = job.error or "the landscape's process died (out of memory?)"
            break
        if began is None:  # the clock starts when the process has its order, imports done
            if message is None:
                continue
            began, began_cpu = time.monotonic(), None if pid is None else cpu_seconds(pid)
        if message is None:
            now = None if pid is None or began_cpu is None else cpu_seconds(pid)
            used = time.monotonic() - began if now is None or began_cpu is None else \
                now - began_cpu  # fmt: skip
            if used > deadline_s:
                job.process.kill()
                job.process.join(timeout=10)  # gone before the state says it stopped
                with job.lock:
                    if not job.finished:  # (not cancelled meanwhile)
                        job.finished = True
                        job.error = (f"stopped after {used:.0f} s of compute, the board's"
                                     f" deadline of {deadline_s:g} s (--deadline): what"
                                     " finished is kept; Compute goes on from it")  # fmt: skip
                break
            continue
        with job.lock:
            if "end" in message:
                job.finished = True
                job.error = message["end"] if not job.cancelled else job.error
                break
            job.stage, job.done, job.total = message["stage"], message["done"], message["total"]
    conn.close()
    job.process.join(timeout=10)


VIEWS = (*CHARTS, "plane", "line", "shared", "spectrum", "file")
"""The views whose PNG the page offers (``figure``): a recording's charts, its landscape's
plane and line, the plane it shares with the runs ticked (``shared``), its spectrum, and a
file's chart."""


def figure(runs: Runs, landscapes: Landscapes, name: str, view: str, *, points: int = 41,
           compare: tuple[str, ...] = (), log: bool = True) -> dict[str, Any]:  # fmt: skip
    """What the PNG of run ``name``'s ``view`` carries (``shared``: the plane it shares with
    the runs ``compare``, in order): the record the view's command writes
    into its own figure (``None``: the view has none, ``why`` says so), its JSON as the PNG's
    text chunk holds it, the file name to save it as, the command and how to replay it."""
    if view not in VIEWS:
        raise GdscopeError(f"no view {view!r}: one of {', '.join(VIEWS)}")
    kind = runs.kind(name)
    file = f"{kind if view == 'file' else view}.png"
    answer: dict[str, Any] = {"name": name, "view": view, "file": file, "record": None,
                              "text": None, "command": None, "why": None}  # fmt: skip
    rec: dict[str, Any] | None = None
    if view in CHARTS:
        if kind != "recording":
            raise NoSuchRun(f"{name!r} is not a recording: it has no {view} chart")
        names = [name, *(n for n in compare if n != name and runs.kind(n) == "recording")]
        rec = curves_record([(n, runs.path(n)) for n in names], view, log=log)
    elif view in ("plane", "line", "shared"):
        subject = (name, *compare) if view == "shared" else (name,)
        stages = landscapes.state(subject, points)["stages"]
        stage = stages["line"] if view == "line" else (stages["refined"] or stages["coarse"])
        if stage is None:
            raise NoSuchRun(f"{', '.join(subject)}: no {view} computed at {points} points per "
                            "axis")  # fmt: skip
        answer["command"] = stage["shell"]
        rec = landscape_record(stage["command"])
    elif view == "spectrum":
        spectrum = landscapes.spectrum(name)["spectrum"]
        if spectrum is None:
            raise NoSuchRun(f"{name!r} has no Hessian spectrum computed")
        answer["command"] = spectrum["shell"]
        rec = spectrum_record(spectrum["command"])
    else:
        if kind == "recording":
            raise NoSuchRun(f"{name!r} is a recording: its views are {', '.join(VIEWS[:-1])}")
        data = read_file_run(runs.path(name), kind)
        if "command" in data:  # an .h5 surface: gdscope landscape --from-h5 draws it
            answer["command"] = data["shell"]
            rec = landscape_record(data["command"])
        elif isinstance(data.get("record"), dict):  # a spectrum, study or shoot-out keeps it
            rec = data["record"]
        else:
            answer["why"] = {
                "surface": "no gdscope command draws a surface saved as .npz (an .h5 one: "
                           "gdscope landscape --from-h5)",
                "study": "this study file does not hold the command that made it (older "
                         "gdscope did not keep it)",
                "shootout": "this shoot-out file does not hold the command that made it",
            }.get(kind, "this file holds no record")  # fmt: skip
    if rec is not None:
        answer.update(record=rec, text=record_json(rec), key=RECORD_KEYS["png"])
    return answer


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, allow_nan=False)}\n\n".encode()


def create_board(
    root: str | Path,
    *,
    sources: Sources | None = None,
    hosts: tuple[str, ...] = (),
    limits: Limits | None = None,
    frame_ancestors: tuple[str, ...] = (),
    poll_s: float = POLL_S,
    deadline_s: float = DEADLINE_S,
) -> Any:
    """The board's FastAPI application for the runs under ``root``; ``sources``: the model,
    data and loss to compute landscapes with (None: none are computed). ``hosts``,
    ``frame_ancestors`` and ``limits`` as for the explorer (``server.app.create_app``);
    ``deadline_s``: a landscape's or spectrum's compute, at most (``DEADLINE_S``)."""
    headers = security_headers(frame_ancestors)
    from fastapi.responses import JSONResponse, StreamingResponse

    runs = Runs(root)
    limits = limits or Limits()
    landscapes = Landscapes(runs, sources, limits.workers, deadline_s=deadline_s)
    streams = 0
    # The spare worker starts once the server listens (its imports would slow the start).
    app = new_app(
        "gdscope board",
        stop=landscapes.close,
        start=lambda: threading.Thread(target=landscapes.warm, daemon=True).start(),
    )
    app.state.landscapes = landscapes

    @app.exception_handler(OutsideRuns)
    async def outside(request: Request, error: OutsideRuns) -> JSONResponse:
        return JSONResponse(status_code=403, content={"detail": str(error)})

    @app.exception_handler(NoSuchRun)
    async def no_run(request: Request, error: NoSuchRun) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(error)})

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "root": str(runs.root),
                "landscapes": sources is not None, "max_shared": MAX_SHARED,
                "sources": None if sources is None else sources.args()}  # fmt: skip

    @app.get("/api/runs")
    async def listing() -> dict[str, Any]:
        """Every run under the folder, with what can be said of it without reading it all."""
        events = await asyncio.to_thread(Watcher(runs).poll)
        return events[0][1]

    @app.get("/api/run")
    async def run(name: str) -> Response:
        """One run, all of it: a recording's rows and index, or a file's contents."""

        def read() -> dict[str, Any]:
            kind = runs.kind(name)
            path = runs.path(name)
            data = read_recording(path) if kind == "recording" else {
                "kind": kind, **read_file_run(path, kind)}  # fmt: skip
            return {"name": name, **data}

        body = json.dumps(await asyncio.to_thread(read), allow_nan=False)
        return Response(body, media_type="application/json")

    @app.get("/api/figure")
    async def figure_record(name: str, view: str, points: int = 41, log: bool = True,
                            compare: str = "") -> dict[str, Any]:  # fmt: skip
        """What the PNG of a view carries: the record its command writes, and its text."""
        order = LandscapeOrder(name=name, points=points)
        others = tuple(n for n in compare.split(",") if n)
        if len(others) > OVERLAID:
            raise GdscopeError(f"at most {OVERLAID} runs overlaid, got {len(others)}")
        return await asyncio.to_thread(figure, runs, landscapes, order.name, view,
                                       points=order.points, compare=others, log=log)  # fmt: skip

    @app.get("/api/events")
    async def events(request: Request) -> StreamingResponse:
        """Server-sent events: ``runs`` (the listing, when it changes), ``rows`` (a
        recording's new rows, numbered from ``start``), ``index`` (its new sharpness)."""
        nonlocal streams
        if streams >= STREAMS:
            raise Refused(503, f"{STREAMS} event streams are open already",
                          {"Retry-After": "5"})  # fmt: skip
        watcher = Watcher(runs, shared_s=poll_s / 2)  # one walk of the folder for all pages
        streams += 1

        async def stream() -> AsyncIterator[bytes]:
            nonlocal streams
            try:
                quiet = 0.0
                while not await request.is_disconnected():
                    changes = await asyncio.to_thread(watcher.poll)
                    for name, data in changes:
                        yield _event(name, data)
                    quiet = 0.0 if changes else quiet + poll_s
                    if quiet >= HEARTBEAT_S:
                        quiet = 0.0
                        yield b": still here\n\n"
                    await asyncio.sleep(poll_s)
            finally:
                streams -= 1

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})  # fmt: skip

    @app.get("/api/landscape")
    async def landscape_state(name: str, points: int = 41) -> dict[str, Any]:
        """The landscape of a run's path at ``points`` per axis: what is computed, and how far
        the computation got."""
        order = LandscapeOrder(name=name, points=points)
        return await asyncio.to_thread(landscapes.state, (order.name,), order.points)

    @app.post("/api/landscape")
    async def landscape_order(order: LandscapeOrder) -> dict[str, Any]:
        """Start (or ``cancel``) the landscape of a run's path as it is now."""
        names = (order.name,)
        if order.cancel:
            await asyncio.to_thread(landscapes.cancel, names)
            return await asyncio.to_thread(landscapes.state, names, order.points)
        return await asyncio.to_thread(landscapes.start, names, order.points)

    @app.get("/api/compare")
    async def compare_state(names: str, points: int = 41) -> dict[str, Any]:
        """The landscape shared by the runs ``names`` (comma-separated, in order): what is
        computed, and how far the computation got."""
        order = CompareOrder(names=[n for n in names.split(",") if n], points=points)
        return await asyncio.to_thread(landscapes.state, tuple(order.names), order.points)

    @app.post("/api/compare")
    async def compare_order(order: CompareOrder) -> dict[str, Any]:
        """Start (or ``cancel``) the landscape shared by the runs ``names`` as they are now."""
        names = tuple(order.names)
        if order.cancel:
            await asyncio.to_thread(landscapes.cancel, names)
            return await asyncio.to_thread(landscapes.state, names, order.points)
        return await asyncio.to_thread(landscapes.start, names, order.points)

    @app.get("/api/spectrum")
    async def spectrum_state(name: str) -> dict[str, Any]:
        """The Hessian spectrum at a run's last snapshot: the newest computed, and how far the
        computation got."""
        SpectrumOrder(name=name)
        return await asyncio.to_thread(landscapes.spectrum, name)

    @app.post("/api/spectrum")
    async def spectrum_order(order: SpectrumOrder) -> dict[str, Any]:
        """Start (or ``cancel``) the Hessian spectrum at a run's last snapshot now."""
        if order.cancel:
            await asyncio.to_thread(landscapes.cancel, (order.name,), "spectrum")
            return await asyncio.to_thread(landscapes.spectrum, order.name)
        return await asyncio.to_thread(landscapes.start, (order.name,), 0, "spectrum")

    serve_page(app, "board.html")
    # No computation goes through the explorer's pool (a landscape runs in a process of its
    # own, bounded above), so the guard's pool stays empty: it checks hosts, origins, bodies.
    guard(app, hosts=hosts, limits=limits, pool=ComputePool(limits), compute=frozenset(),
          headers=headers)  # fmt: skip
    return app
