"""The explorer's computations, in worker processes of their own with a hard deadline each.

At most ``Limits.workers`` computations run at once, each in a worker process; at most
``Limits.queue`` wait, and at most ``Limits.backlog_s`` estimated seconds per worker (one more:
503 with Retry-After). A computation is killed with its process, which is replaced, when it
uses more compute than its deadline allows (``Limits.deadline_factor`` times its estimate, in
the worker's CPU time where the system tells it: 422 with the reason), when it has waited far
longer than that on a busy machine (``Limits.busy_factor``: 503), when its client goes away,
or when a newer request of the same stream (``X-Gdscope-Key``, numbered by
``X-Gdscope-Seq``) supersedes it (409): a process, unlike a thread, can be stopped wherever it
is (in a C kernel, in ``find_minimum``), so no request holds a worker past its deadline. The
pool's bookkeeping runs on the event loop's thread only, so it needs no lock.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import re
import signal
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from gdscope.errors import GdscopeError
from gdscope.server.costs import BUDGET_S

__all__ = ["KEY_HEADER", "SEQ_HEADER", "ComputePool", "Limits", "Refused", "request_stream"]

KEY_HEADER, SEQ_HEADER = "x-gdscope-key", "x-gdscope-seq"
"""A page's request stream (its view, say) and the request's number in it: a higher number
with the same key supersedes the lower ones still running."""
_KEY = re.compile(r"[!-~]{1,64}", re.ASCII)
_SEQ = re.compile(r"[0-9]{1,18}", re.ASCII)
_WORKERS = max(1, (os.cpu_count() or 2) // 2)


@dataclass(frozen=True)
class Limits:
    """How much the server takes on at once; the defaults suit the machine it runs on."""

    workers: int = _WORKERS
    """Computations running at once, one process each on one core: half the cores, leaving
    the others to the event loop, which serves the page, its files and /api/health."""
    queue: int = 32
    """Computations waiting for a worker, at most (a page sends a few at once)."""
    backlog_s: float = 3 * BUDGET_S
    """Estimated seconds of computation running or waiting per worker, at most: beyond it, or
    beyond ``queue``, 503 with Retry-After. Many small requests wait; a flood of heavy ones
    is refused instead of answered minutes late."""
    body_bytes: int = 16_384
    """The largest request body, counted as it arrives (the page's largest is under 2 KB);
    beyond: 413."""
    budget_s: float = BUDGET_S
    """The most estimated seconds of compute one request may ask for; beyond: 422."""
    deadline_factor: float = 2.0
    """A computation that has used more than this many times its estimate of compute is killed
    (422). Compute is the worker's CPU time where the system tells it (Linux), so a busy
    machine, which slows every request down, does not make the explorer refuse small ones;
    elsewhere it is the time waited."""
    busy_factor: float = 20.0
    """A computation that has waited this many times its deadline, however little CPU it got,
    is killed too (503: the machine is too busy to answer it)."""
    least_s: float = 0.5
    """The estimate the deadline is reckoned from, at least: starting and answering a
    computation takes a few milliseconds whatever it costs, more on a busy machine."""
    poll_s: float = 0.05
    """How often a running or waiting request checks its deadline, whether its client went
    away, and whether it was superseded."""

    def deadline_s(self, seconds: float) -> float:
        """How long a computation estimated at ``seconds`` may run before it is killed."""
        return self.deadline_factor * max(seconds, self.least_s)


class Refused(Exception):
    """A request the server will not serve (or stopped): HTTP status, reason, headers."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}


def request_stream(headers: Mapping[str, str]) -> tuple[str | None, int | None]:
    """The request's stream key and number (each None when not given); 400 when malformed."""
    key, seq = headers.get(KEY_HEADER), headers.get(SEQ_HEADER)
    if key is not None and not _KEY.fullmatch(key):
        raise Refused(400, f"{KEY_HEADER} must be 1 to 64 printable ASCII characters")
    if seq is not None and not _SEQ.fullmatch(seq):
        raise Refused(400, f"{SEQ_HEADER} must be a number of at most 18 digits, got {seq!r}")
    return key, None if seq is None else int(seq)


class Client(Protocol):
    """What the pool needs of a request (a ``starlette.requests.Request``)."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    async def is_disconnected(self) -> bool: ...


@dataclass
class _Job:
    key: str | None
    seq: int
    seconds: float
    superseded: bool = False


def _serve(conn: Connection) -> None:
    """A worker process: answer ``(name, request)`` with ``(status, body)`` until the pipe
    closes. Interrupts are the parent's to handle (Ctrl-C in its terminal reaches us too)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    from gdscope.server.compute import answer

    torch.set_num_threads(1)  # one core each: the others are the event loop's and the workers'
    while True:
        try:
            name, request = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[int, Any] = (200, answer(name, request))
        except GdscopeError as error:
            reply = (422, str(error))
        except Exception as error:
            reply = (500, f"{type(error).__name__}: {error}")
        conn.send(reply)


def _context() -> Any:
    """Processes forked from a server that has imported the computations once (``forkserver``):
    a killed worker is replaced in milliseconds, not the seconds an import of torch takes."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["gdscope.server.compute"])
    return context


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """The CPU time process ``pid`` has used (user and system), from ``/proc``; None where
    there is no ``/proc`` (not Linux) or the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()  # (the name may hold spaces)
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15


class _Worker:
    def __init__(self) -> None:
        parent, child = _context().Pipe()
        self.process = _context().Process(target=_serve, args=(child,), daemon=True,
                                          name="gdscope-compute")  # fmt: skip
        self.process.start()
        child.close()
        self.conn: Connection = parent

    def used(self) -> float | None:
        """The CPU seconds this worker has used so far (None: not known here)."""
        return None if self.process.pid is None else cpu_seconds(self.process.pid)

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()


class ComputePool:
    """Computations in worker processes, never in the event loop's process or the files'."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.jobs: list[_Job] = []
        """Admitted jobs, running or waiting, oldest first."""
        self.latest: OrderedDict[str, int] = OrderedDict()
        self.idle: list[_Worker] = []
        self.running: set[_Worker] = set()
        self.starting = 0
        """Workers being started, in threads of their own (``_spawn``)."""
        self.failure: str | None = None
        """Why the last worker could not be started (None: it could)."""
        self.waiting: list[_Job] = []
        self.killed = 0
        """Workers killed so far (past a deadline, abandoned or superseded)."""
        self.lock = threading.Lock()
        """For ``idle`` and ``starting``, which the starting threads change too."""

    def start(self) -> None:
        """Start the workers now, in the background (else: when first needed)."""
        self._replenish()

    def _replenish(self) -> None:
        """Start as many workers as are missing, each in a thread (the event loop goes on)."""
        with self.lock:
            missing = self.limits.workers - len(self.running) - len(self.idle) - self.starting
            self.starting += max(missing, 0)
        for _ in range(missing):
            threading.Thread(target=self._spawn, daemon=True, name="gdscope-spawn").start()

    def _spawn(self) -> None:
        try:
            worker: _Worker | None = _Worker()
        except Exception as error:
            worker, self.failure = None, f"{type(error).__name__}: {error}"
        with self.lock:
            self.starting -= 1
            if worker is not None:
                self.failure = None
                self.idle.append(worker)

    def admit(self, key: str | None, seq: int | None, seconds: float = 0.0) -> _Job:
        """A new job, superseding older ones of ``key``; Refused when late or the queue is full.

        A key without a number comes after the newest one of that key."""
        if key is not None:
            latest = self.latest.get(key, -1)
            seq = latest + 1 if seq is None else seq
            if seq <= latest:
                raise Refused(409, f"superseded: request {seq} of {key!r} is not the newest")
            self.latest[key] = seq
            self.latest.move_to_end(key)
            while len(self.latest) > 1024:
                self.latest.popitem(last=False)
            for job in self.jobs:
                if job.key == key:
                    job.superseded = True
        full = self.full(seconds)
        if full is not None:
            raise full
        job = _Job(key, seq or 0, seconds)
        self.jobs.append(job)
        return job

    def full(self, seconds: float = 0.0) -> Refused | None:
        """503 with Retry-After when a job of ``seconds`` finds no room (0: when none would)."""
        workers = self.limits.workers
        pending = sum(job.seconds for job in self.jobs if not job.superseded)
        capacity = workers * self.limits.backlog_s
        if len(self.jobs) < workers + self.limits.queue and (
            pending + seconds <= capacity and pending < capacity
        ):
            return None
        retry = max(1, math.ceil(pending / workers))
        return Refused(503, f"busy: {len(self.jobs)} computations running or waiting, an"
                       f" estimated {pending:.3g} s", {"Retry-After": str(retry)})  # fmt: skip

    async def run(self, name: str, request: Any, client: Client, seconds: float = 0.0) -> bytes:
        """``compute.answer(name, request)`` in a worker process: its JSON body.

        Refused 409 when superseded or abandoned, 422 past the deadline (the worker is killed
        and replaced in each case)."""
        job = self.admit(*request_stream(client.headers), seconds)
        try:
            worker = await self._worker(job, client)
            try:
                status, body = await self._answer(worker, job, client, (name, request))
            except BaseException:
                self.running.discard(worker)
                await asyncio.to_thread(worker.kill)
                self.killed += 1
                self._replenish()
                raise
            with self.lock:
                self.running.discard(worker)
                self.idle.append(worker)
        finally:
            self.jobs.remove(job)
        if status == 422:
            raise GdscopeError(body)
        if status != 200:
            raise RuntimeError(f"the computation failed: {body}")
        assert isinstance(body, bytes)
        return body

    async def _stopped(self, job: _Job, client: Client) -> None:
        """409 when the job was superseded or its client went away."""
        if job.superseded:
            raise Refused(409, "superseded by a newer request")
        if await client.is_disconnected():
            raise Refused(409, "the client went away")

    async def _worker(self, job: _Job, client: Client) -> _Worker:
        """An idle worker for ``job`` once the jobs before it have theirs (first come, first
        served); 503 when none can be started."""
        self.waiting.append(job)
        try:
            while True:
                await self._stopped(job, client)
                if self.waiting[0] is job:
                    with self.lock:
                        if self.idle:
                            worker = self.idle.pop()
                            self.running.add(worker)
                            return worker
                        if self.failure is not None and not self.starting:
                            raise Refused(503, f"no worker process starts: {self.failure}",
                                          {"Retry-After": "10"})  # fmt: skip
                    self._replenish()
                await asyncio.sleep(self.limits.poll_s)
        finally:
            self.waiting.remove(job)

    async def _answer(
        self, worker: _Worker, job: _Job, client: Client, message: tuple[str, Any]
    ) -> tuple[int, Any]:
        """Send ``message`` and wait for the answer, until the deadline at most."""
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        deadline = self.limits.deadline_s(job.seconds)
        fd = worker.conn.fileno()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, readable)
        try:
            worker.conn.send(message)
            began, began_cpu = loop.time(), worker.used()
            while not ready.done():
                await asyncio.wait({ready}, timeout=self.limits.poll_s)
                if ready.done():
                    break
                await self._stopped(job, client)
                waited = loop.time() - began
                now_cpu = worker.used() if began_cpu is not None else None
                used = waited if now_cpu is None or began_cpu is None else now_cpu - began_cpu
                if used > deadline:
                    raise Refused(422, (
                        f"stopped after {deadline:.3g} s of compute,"
                        f" {self.limits.deadline_factor:g}× its estimated {job.seconds:.3g} s"
                        " (a problem that is slow to solve): ask for less"
                    ))  # fmt: skip
                if waited > self.limits.busy_factor * deadline:
                    raise Refused(503, (
                        f"stopped after waiting {waited:.3g} s for {used:.3g} s of compute:"
                        " the machine is too busy"
                    ), {"Retry-After": str(math.ceil(deadline))})  # fmt: skip
        finally:
            loop.remove_reader(fd)
        try:
            reply: tuple[int, Any] = await asyncio.to_thread(worker.conn.recv)
        except (EOFError, OSError):
            raise Refused(503, "the computation's worker process died (out of memory?)",
                          {"Retry-After": "1"}) from None  # fmt: skip
        return reply

    def close(self) -> None:
        """Kill every worker (the server is stopping)."""
        with self.lock:
            workers = [*self.idle, *self.running]
            self.idle.clear()
            self.running.clear()
        for worker in workers:
            worker.kill()
