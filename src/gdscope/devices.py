"""Where tensors live: the device a user names, checked once, the same way everywhere."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from gdscope.errors import GdscopeError

__all__ = ["resolve_device", "torch_threads"]


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``device`` as a ``torch.device`` (default CPU); one clear line for a name torch does not
    know (its own message lists twenty device types), and for CUDA without a GPU."""
    try:
        resolved = torch.device(device) if device is not None else torch.device("cpu")
    except (RuntimeError, TypeError):
        raise GdscopeError(f"not a device: {device!r} (cpu, cuda, cuda:1, mps, …)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise GdscopeError("no CUDA device is available")
    return resolved


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """torch on ``count`` threads for a while (None: as it is), then as it was. The examples
    run on one: their matrices are too small for a second thread to help, and on a busy
    machine two wait on each other (300 eos steps took 1.9 s of CPU on one thread and 40 s on
    two, 2-core VM at load 17)."""
    threads = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
