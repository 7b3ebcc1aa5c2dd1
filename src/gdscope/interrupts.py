"""Ctrl-C as a request to stop, honoured where stopping keeps the work done so far.

Long computations (a grid of configurations, a landscape's points, an animation's frames) run
inside ``polled()`` and check ``requested()`` often (at least once a second); there Ctrl-C only
sets the request, so they stop at their next check and hand back what finished. Everywhere
else Ctrl-C raises ``KeyboardInterrupt`` at once, as Python does by default; inside
``deferred()`` (drawing and writing what finished) it only sets the request, which the
caller checks when the block ends. Only a program that calls
``handle_sigint()`` or ``starting()`` (the ``gdscope`` command) changes Ctrl-C; importing
gdscope does not, and in a notebook ``requested()`` stays False and Ctrl-C raises
``KeyboardInterrupt`` as usual.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import FrameType
from typing import Any

__all__ = ["deferred", "handle_sigint", "honour", "polled", "requested", "starting"]


class _State:
    """The one request flag and the kind of section the main thread is in."""

    def __init__(self) -> None:
        self.request = threading.Event()
        self.polled = 0
        self.deferred = 0


_STATE = _State()


def requested() -> bool:
    """True once Ctrl-C was pressed under ``handle_sigint()``: stop at the next safe point."""
    return _STATE.request.is_set()


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    _STATE.request.set()
    if _STATE.polled == 0 and _STATE.deferred == 0:
        raise KeyboardInterrupt


@contextmanager
def handle_sigint() -> Iterator[None]:
    """Within: Ctrl-C sets ``requested()`` (and raises outside ``polled``/``deferred``); the
    request is cleared on the way in and out."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    hook = sys.unraisablehook
    sys.unraisablehook = _redeliver(hook)
    _STATE.request.clear()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = hook
        _STATE.request.clear()  # the next command (or notebook code) starts afresh


def _redeliver(hook: Callable[[Any], object]) -> Callable[[Any], object]:
    """A ``KeyboardInterrupt`` raised inside a callback whose errors Python ignores (a
    ``__del__``, a weakref's) would be printed and lost: raise it again where it counts."""

    def unraisable(info: Any) -> object:
        if info.exc_type is KeyboardInterrupt:
            # From another thread, a moment later: raised here, it would be ignored again.
            threading.Timer(0.05, _thread.interrupt_main, args=(signal.SIGINT,)).start()
            return None
        return hook(info)

    return unraisable


@contextmanager
def _section(kind: str) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only: a worker's section (the server's) is not it
        return
    setattr(_STATE, kind, getattr(_STATE, kind) + 1)
    try:
        yield
    finally:
        setattr(_STATE, kind, getattr(_STATE, kind) - 1)


def polled() -> AbstractContextManager[None]:
    """A section that checks ``requested()`` at least once a second: Ctrl-C does not raise."""
    return _section("polled")


def deferred() -> AbstractContextManager[None]:
    """A short section that must not be cut (writing files): Ctrl-C only sets the request."""
    return _section("deferred")


def honour() -> None:
    """Raise the ``KeyboardInterrupt`` a short ``deferred()`` section held back, where no
    section is open any more: a caller that has no loop to check ``requested()`` (a check
    made before a command's work begins) ends as Ctrl-C would have ended it."""
    main = threading.current_thread() is threading.main_thread()
    if main and requested() and _STATE.polled == 0 and _STATE.deferred == 0:
        raise KeyboardInterrupt


def _starting(signum: int, frame: FrameType | None) -> None:
    os.write(2, b"gdscope: interrupted while starting: nothing written\n")
    os._exit(130)


@contextmanager
def starting() -> Iterator[None]:
    """Within (the ``gdscope`` command loading torch and matplotlib, seconds, and reading its
    arguments): Ctrl-C ends the program with one line, exit 130, not a traceback; the handler
    Ctrl-C had is put back on the way out. Only the command's entry point (``cli.main``) enters
    it; importing gdscope changes no handler. A handler other than Python's own (Ctrl-C
    ignored, as for a program started in the background) is left alone."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    previous = signal.signal(signal.SIGINT, _starting)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
