"""A model's trainable parameters as one flat vector: the layout every path, direction and
curvature computation in ``nets`` shares (``named_parameters()`` order, optionally followed by
the floating-point buffers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from gdscope.errors import GdscopeError

__all__ = ["ParamLayout"]


def _tensors(model: nn.Module, states: bool) -> dict[str, Tensor]:
    """Trainable parameters (``named_parameters()`` order), then with ``states`` the
    floating-point buffers of ``state_dict()`` (BatchNorm's running statistics; not counters,
    and not non-persistent buffers: a saved direction lists ``state_dict()``, so a tensor it
    moved outside it could not be moved again from the file)."""
    out: dict[str, Tensor] = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if states:
        saved = model.state_dict(keep_vars=True)
        out.update({n: b for n, b in model.named_buffers()
                    if b.is_floating_point() and n in saved})  # fmt: skip
    return out


@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of a model's trainable parameters, in ``named_parameters()`` order;
    with ``states``, followed by its floating-point buffers in ``state_dict()`` (the reference's
    ``dir_type=states``).

    ``listing`` is how the reference implementation lists the same model (``parameters()``, or
    with ``states`` the ``state_dict()``: module by module, counters and frozen tensors
    included), for files that its scripts read; it is not part of the layout's identity.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    states: bool = False
    listing: tuple[tuple[str, tuple[int, ...]], ...] = field(default=(), compare=False)

    @classmethod
    def of(cls, model: nn.Module, *, states: bool = False) -> ParamLayout:
        pairs = [(n, tuple(t.shape)) for n, t in _tensors(model, states).items()]
        if not pairs:
            raise GdscopeError("the model has no trainable parameters")
        listed = model.state_dict().items() if states else model.named_parameters()
        listing = tuple((n, tuple(t.shape)) for n, t in listed)
        return cls(tuple(n for n, _ in pairs), tuple(s for _, s in pairs), states, listing)

    @property
    def sizes(self) -> list[int]:
        return [math.prod(s) for s in self.shapes]

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def flatten(self, tensors: dict[str, Tensor] | Sequence[Tensor]) -> Tensor:
        items = [tensors[n] for n in self.names] if isinstance(tensors, dict) else list(tensors)
        return torch.cat([t.detach().reshape(-1) for t in items])

    def unflatten(self, vector: Tensor) -> dict[str, Tensor]:
        """Views into ``vector`` (works under ``torch.vmap`` on the last dimension too)."""
        out, start = {}, 0
        for name, shape, size in zip(self.names, self.shapes, self.sizes, strict=True):
            out[name] = vector[..., start : start + size].reshape(*vector.shape[:-1], *shape)
            start += size
        return out

    def vector(self, model: nn.Module) -> Tensor:
        tensors = _tensors(model, self.states)
        return self.flatten({n: tensors[n] for n in self.names})

    def targets(self, model: nn.Module) -> dict[str, Tensor]:
        """The model's own tensors (parameters and, with ``states``, buffers) by name."""
        return _tensors(model, self.states)

    def check(self, model: nn.Module, *, against: str = "the recorded path's") -> None:
        """Refuse ``model`` unless its parameters are laid out like this (``against``: whose
        layout this is, for the message)."""
        other = ParamLayout.of(model, states=self.states)
        if other != self:
            raise GdscopeError(f"the model's parameters do not match {against}")

    def to_dict(self) -> dict[str, object]:
        return {"names": list(self.names), "shapes": [list(s) for s in self.shapes],
                "states": self.states}  # fmt: skip
