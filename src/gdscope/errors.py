"""The one exception type for bad user input."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeVar

__all__ = ["GdscopeError", "check_finite", "first_line", "needs_extra", "one_of", "unknown"]

_T = TypeVar("_T")


class GdscopeError(ValueError):
    """Invalid input: the CLI prints the message on one line and exits with status 2.

    ``settings`` names the settings the message speaks of, as a config or function calls them
    (``strategy``, ``val_data``), so that a front end can say them its own way: the CLI says
    ``--strategy``, ``--val-data`` where its command has such a flag. The library never does.
    """

    def __init__(self, *args: object, settings: Iterable[str] = ()) -> None:
        super().__init__(*args)
        self.settings = tuple(settings)


def first_line(error: BaseException) -> str:
    """An error's message in one line (its first), or its type's name when it has none: what a
    one-line report of someone else's error (the user's model, torch, h5py) quotes."""
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def needs_extra(what: str, extra: str, *, settings: Iterable[str] = ()) -> GdscopeError:
    """The error for an optional dependency that is not installed: ``what`` needs it, and how
    to install the extra that brings it (from the index, or in a clone of gdscope, where the
    constraints file keeps torch's CPU build). ``settings``: those ``what`` names."""
    return GdscopeError(
        f"{what}: pip install 'gdscope[{extra}]' "
        f"(in a clone of gdscope: pip install -c constraints.txt '.[{extra}]')",
        settings=settings,
    )


def one_of(what: str, value: _T, choices: Iterable[object]) -> _T:
    """``value``, or the error ``what must be one of a, b, c, got 'x'`` (``what``: a setting's
    name, so the CLI can say its flag instead)."""
    allowed = tuple(choices)
    if value not in allowed:
        names = ", ".join(str(choice) for choice in allowed)
        raise GdscopeError(f"{what} must be one of {names}, got {value!r}", settings=(what,))
    return value


def unknown(what: str, given: object, choices: Iterable[object]) -> GdscopeError:
    """The error for a name that is none of ``choices``: ``unknown loss 'x'; choose one of a,
    b`` (``given`` as it was written, before any spelling was normalized)."""
    names = ", ".join(str(choice) for choice in choices)
    return GdscopeError(f"unknown {what} {given!r}; choose one of {names}")


def check_finite(name: str, value: float) -> float:
    """Return ``value`` as a float, or raise if it is NaN or infinite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise GdscopeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise GdscopeError(f"{name} must be finite, got {value!r}")
    return number
