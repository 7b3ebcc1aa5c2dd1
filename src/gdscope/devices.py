"""Where tensors live: the device a user names, checked once, the same way everywhere."""

from __future__ import annotations

import torch

from gdscope.errors import GdscopeError

__all__ = ["resolve_device"]


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
