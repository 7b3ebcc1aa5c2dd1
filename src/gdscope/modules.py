"""What gdscope needs to know about any ``nn.Module``, below every layer that handles one
(the training engine, the studies, the landscapes, the curvature): a model's parameters as one
flat vector (``ParamLayout``), putting the user's model back as it was (``left_as_it_was``),
whether its outputs are class scores (``is_classification``), and the memory probes chunks are
sized from (``free_memory``, ``activation_bytes``, ``copy_memory``, ``MEMORY_FRACTION``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from gdscope.errors import GdscopeError

__all__ = [
    "MEMORY_FRACTION",
    "ParamLayout",
    "activation_bytes",
    "copy_memory",
    "free_memory",
    "is_classification",
    "left_as_it_was",
]


@contextlib.contextmanager
def left_as_it_was(model: nn.Module) -> Iterator[None]:
    """Every module's train/eval mode and every parameter's ``requires_grad`` back as they were
    afterwards, whatever happens: gdscope evaluates and trains the user's model (maybe
    mid-training in a notebook), and must not leave it changed."""
    modes = [(module, module.training) for module in model.modules()]
    flags = [(param, param.requires_grad) for param in model.parameters()]
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        for param, requires_grad in flags:
            param.requires_grad_(requires_grad)


def is_classification(outputs: object, targets: Tensor) -> bool:
    """Scores of ``C > 1`` classes ``(N, C)`` against class numbers ``(N,)``: an accuracy
    means something (one output column against integer targets is a regression). Any other
    output (a tuple, a dict, a Hugging Face ``ModelOutput``) is only the user's loss's to
    unpack: which part holds the scores is not known here, so no accuracy is measured."""
    return (isinstance(outputs, Tensor) and outputs.dim() == 2 and outputs.shape[1] > 1
            and targets.dim() == 1 and len(targets) == len(outputs)
            and not targets.is_floating_point())  # fmt: skip


MEMORY_FRACTION = 0.25
"""The share of the free memory one chunk may use (of copies here, of grid points in a
landscape): room for the rest of the process and for what the estimate misses."""


def free_memory(device: torch.device) -> int:
    """Bytes free on ``device`` (CUDA: the driver's count; CPU: MemAvailable, else 4 GiB)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def activation_bytes(model: nn.Module, x: Tensor) -> list[int]:
    """The bytes of every module's output in one forward pass of ``x`` (eval mode, no
    autograd), measured with forward hooks: what memory estimates are built from."""
    sizes: list[int] = []

    def hook(module: nn.Module, args: object, output: object) -> None:
        if isinstance(output, Tensor):
            sizes.append(output.numel() * output.element_size())

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with left_as_it_was(model), torch.no_grad():
            model.eval()(x)
    finally:
        for handle in handles:
            handle.remove()
    return sizes


def copy_memory(model: nn.Module, x: Tensor, *, state_buffers: int = 3) -> int:
    """Bytes one copy needs while training on the batch ``x``: its parameters, gradient and
    optimizer state (``state_buffers`` of them), plus every activation of one forward pass
    (autograd keeps them for the backward) counted twice."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return (2 + state_buffers) * weights + 2 * sum(activation_bytes(model, x))


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
