"""One table of the optimizers with batched rules: each hyperparameter's default, bounds, kind
and command-line flag, so the API, the explorer page and the CLI build their options from it.

Nothing here is a new copy: defaults and bounds are the batched rules' (``rules.TRANSFORMS``,
which follow torch.optim), the arguments are those the torch class takes, the flags are
``SGDConfig``'s fields (SGD's own options; ``--lr`` serves every optimizer), names and classes
are ``specs.OPTIMIZERS``'. Only the explorer's slider spans (``span``) are written here, because
nothing else knows them.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from gdscope.optim.rules import TRANSFORMS, Param, torch_kwargs, torch_name
from gdscope.optim.sgdconfig import SGDConfig
from gdscope.optim.specs import OPTIMIZERS, OptimizerSpec

__all__ = [
    "OPTIMIZER_TABLE",
    "Hyperparameter",
    "OptimizerEntry",
    "add_optimizer_options",
    "flag_of",
    "given_flags",
]

Value = float | bool

# Slider spans (and phase-diagram axes) worth exploring; any value in bounds is still accepted.
_SPANS: dict[str, tuple[float, float]] = {
    "lr": (1e-3, 2.0), "momentum": (0.0, 0.999), "dampening": (0.0, 1.0),
    "weight_decay": (0.0, 5.0), "beta1": (0.0, 0.999), "beta2": (0.0, 0.9999),
    "eps": (0.0, 0.01), "alpha": (0.0, 0.999), "lr_decay": (0.0, 1.0),
    "initial_accumulator_value": (0.0, 5.0),
}  # fmt: skip
_LOG_SCALE = {"lr"}
"""Hyperparameters that span decades: a phase diagram puts them on a log axis."""
_SGD_FLAGS = tuple(f.name for f in fields(SGDConfig))
"""SGD's arguments that have command-line flags of their own (``--momentum``, ``--nesterov``)."""
_SHARED_FLAGS = ("lr",)
"""Flags that serve every optimizer."""


@dataclass(frozen=True)
class Hyperparameter:
    """One argument of a batched optimizer, as the API and the page present it.

    ``default`` is torch.optim's; ``low`` is an inclusive lower bound and ``below`` an exclusive
    upper one (``None``: unbounded, and always for flags); ``flag`` is the command-line option
    that sets it directly (``None``: only through ``--opt NAME=VALUE``).
    """

    name: str
    default: Value
    low: float | None = None
    below: float | None = None
    flag: str | None = None
    span: tuple[float, float] = (0.0, 1.0)
    log: bool = False

    @property
    def kind(self) -> Literal["float", "bool"]:
        return "bool" if isinstance(self.default, bool) else "float"


@dataclass(frozen=True)
class OptimizerEntry:
    """A batched optimizer: its torch class name, its hyperparameters, gdscope's own defaults.

    ``preset`` holds the values gdscope starts from where they differ from torch's (SGD's
    ``lr`` is the article's 0.1, torch's is 1e-3).
    """

    name: str
    title: str
    hyperparameters: tuple[Hyperparameter, ...]
    preset: tuple[tuple[str, Value], ...] = ()

    def defaults(self) -> dict[str, Value]:
        """Each hyperparameter's starting value: ``preset`` where given, else torch's default."""
        return {**{h.name: h.default for h in self.hyperparameters}, **dict(self.preset)}

    def spec(self, values: Mapping[str, Value]) -> OptimizerSpec:
        """The ``torch.optim`` spec for batched ``values``: ``lr`` always, other arguments where
        not torch's default (``beta1``/``beta2`` become ``betas``)."""
        torch_default = {h.name: h.default for h in self.hyperparameters}
        kwargs = torch_kwargs(self.name, {**torch_default, **values})
        plain = torch_kwargs(self.name, torch_default)
        given = {k: v for k, v in kwargs.items() if k == "lr" or v != plain.get(k)}
        return OptimizerSpec.of(self.name, **given)


def _flag(optimizer: str, name: str) -> str | None:
    own = _SGD_FLAGS if optimizer == "sgd" else _SHARED_FLAGS
    return "--" + name.replace("_", "-") if name in own else None


def _hyperparameter(optimizer: str, name: str, param: Param) -> Hyperparameter:
    flagged = isinstance(param.default, bool)
    fallback = (param.low or 0.0, max(1.0, 2.0 * float(param.default)))
    return Hyperparameter(
        name=name,
        default=param.default,
        low=None if flagged else param.low,
        below=None if flagged else param.below,
        flag=_flag(optimizer, name),
        span=_SPANS.get(name, fallback),
        log=name in _LOG_SCALE,
    )


def _entry(name: str) -> OptimizerEntry:
    """The rule's hyperparameters that the torch class takes (AdamW's decay is always decoupled:
    its rule has the switch, ``torch.optim.AdamW`` does not)."""
    accepted = inspect.signature(OPTIMIZERS[name]).parameters
    params = {k: p for k, p in TRANSFORMS[name].params.items() if torch_name(k) in accepted}
    preset: tuple[tuple[str, Value], ...] = ()
    if name == "sgd":
        ours = SGDConfig()
        preset = tuple(
            (key, getattr(ours, key))
            for key in _SGD_FLAGS
            if getattr(ours, key) != params[key].default
        )
    return OptimizerEntry(
        name=name,
        title=OPTIMIZERS[name].__name__,
        hyperparameters=tuple(_hyperparameter(name, key, p) for key, p in params.items()),
        preset=preset,
    )


OPTIMIZER_TABLE: dict[str, OptimizerEntry] = {name: _entry(name) for name in TRANSFORMS}
"""Every optimizer with a batched rule, in ``TRANSFORMS``' order (SGD first)."""


def _flagged() -> dict[str, Hyperparameter]:
    """Each flag once (``--lr`` is in every entry), SGD's first."""
    out: dict[str, Hyperparameter] = {}
    for entry in OPTIMIZER_TABLE.values():
        for hyper in entry.hyperparameters:
            if hyper.flag is not None:
                out.setdefault(hyper.flag, hyper)
    return out


def add_optimizer_options(
    group: argparse._ActionsContainer, *, number: Callable[[str], float] = float
) -> None:
    """One option per flagged hyperparameter (``--lr``, SGD's ``--momentum`` … ``--maximize``).

    Every flag defaults to ``None`` (a switch to ``False``): "not given", so the caller can tell
    what was typed; read them with ``given_flags``. ``number`` parses the numeric options.
    ``--optimizer NAME`` and ``--opt KEY=VALUE`` reach every other argument.
    """
    for flag, hyper in _flagged().items():
        users = [e for e in OPTIMIZER_TABLE.values() if _flag(e.name, hyper.name)]
        defaults = ", ".join(f"{e.title} {e.defaults()[hyper.name]:g}" for e in users)
        if hyper.kind == "bool":
            group.add_argument(flag, action="store_true", help=", ".join(e.title for e in users))
        else:
            group.add_argument(flag, type=number, default=None, help=f"default: {defaults}")


def flag_of(name: str) -> str:
    """The command-line flag of a flagged hyperparameter (``weight_decay`` → ``--weight-decay``)."""
    for flag, hyper in _flagged().items():
        if hyper.name == name:
            return flag
    raise KeyError(name)


def given_flags(namespace: argparse.Namespace) -> dict[str, Value]:
    """The flagged hyperparameters typed on the command line, by name (``{"momentum": 0.9}``)."""
    out: dict[str, Value] = {}
    for hyper in _flagged().values():
        value: Any = getattr(namespace, hyper.name)
        if value is not None and value is not False:
            out[hyper.name] = value
    return out
