"""The study configs: what ``gdscope sweep``, ``phase`` and ``compare`` run, typed and checked
where they are built (the CLI, a TOML file, a record and a notebook all pass through them).

Each is frozen and round-trips through ``to_dict``/``from_dict`` (``Problem``, ``RunSettings``
and ``NetworkSpec`` nested as their own dictionaries); a figure's record holds ``to_dict()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from gdscope.devices import resolve_device
from gdscope.engines.stacked import INITS, METHODS
from gdscope.errors import GdscopeError, one_of
from gdscope.jobs.landscape import DEFAULT_LOSS, split_callable, users_code
from gdscope.jobs.plotconfig import PlotConfig
from gdscope.optim.sgdconfig import SGDConfig
from gdscope.optim.specs import OptimizerSpec, SchedulerSpec
from gdscope.problem.data import CsvData, Dataset, DataSpec, make_data
from gdscope.problem.grid import ARTICLE_EPOCHS
from gdscope.problem.losses import LossSpec
from gdscope.problem.maps import Grid, Landscape, loss_map
from gdscope.problem.objective import Objective, default_grid
from gdscope.studies.netstudy import DEFAULT_STEPS, Network
from gdscope.studies.phase import (
    DEFAULT_METRIC,
    METRICS,
    NETWORK_METRICS,
    NEURON_METRICS,
    STEPS_TOL,
)
from gdscope.studies.sweep import COMPARE_BUDGET, COMPARE_STARTS, GRID_CHUNK, Axis

__all__ = [
    "COMPARE_FORMATS",
    "DTYPES",
    "GRID_FORMATS",
    "MAX_PANELS",
    "CompareConfig",
    "NetworkSpec",
    "PhaseConfig",
    "Problem",
    "RunSettings",
    "SweepConfig",
    "sweep_axes",
]

MAX_PANELS = 64
GRID_FORMATS = (".npz", ".csv", ".json")
"""What ``--save`` of a sweep or phase diagram writes (``save_grid``)."""
COMPARE_FORMATS = (".json",)
DTYPES = ("float32", "float64")
"""The engine's float types by name (the first is the default)."""


_Config = TypeVar("_Config")


@dataclass(frozen=True)
class Problem:
    """What is minimized: an objective (on data, for a loss) and the grid its map is drawn on
    (``None``: the objective's own)."""

    objective: Objective = field(default_factory=LossSpec)
    data: DataSpec | CsvData = field(default_factory=DataSpec)
    grid: Grid | None = None

    def to_dict(self) -> dict[str, Any]:
        """The objective, data and grid as ``PlotConfig`` writes them (one format for both)."""
        plain = PlotConfig(data=self.data, losses=(self.objective,), grid=self.grid).to_dict()
        return {key: plain[key] for key in ("data", "losses", "grid") if key in plain}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, where: str = "problem") -> Problem:
        config = PlotConfig.from_dict(raw, where=where)
        if len(config.losses) != 1:
            raise GdscopeError(f"{where}: a study has one objective, got {len(config.losses)}")
        return cls(config.losses[0], config.data, config.grid)

    def dataset(self) -> Dataset | None:
        return make_data(self.data) if self.objective.needs_data else None

    def landscape(self, data: Dataset | None) -> Landscape:
        return loss_map(data, self.objective, self.grid or default_grid(self.objective))


@dataclass(frozen=True)
class NetworkSpec:
    """The user's network as a command names it: ``model`` and ``data`` (and ``val_data``) are
    ``module:function`` factories, ``loss`` a name or a factory; each copy trains ``steps``
    mini-batch steps, starting alike (``init="same"``) or re-drawn with ``init_seed + k``;
    ``target`` is the loss ``steps_to_target`` waits for; ``chunk`` copies train together
    (``None``: as many as fit in a quarter of the free memory), vmapped or one by one
    (``strategy``; ``auto`` times both); ``scheduler`` is stepped per copy after every step
    (``engines.stacked``). A figure's record holds the chunk and strategy that were used."""

    model: str
    data: str
    val_data: str | None = None
    loss: str = DEFAULT_LOSS
    steps: int = DEFAULT_STEPS
    init: str = INITS[0]
    init_seed: int = 0
    target: float | None = None
    chunk: int | None = None
    scheduler: SchedulerSpec | None = None
    strategy: str = METHODS[0]

    def __post_init__(self) -> None:
        one_of("strategy", self.strategy, METHODS)
        if not 1 <= self.steps <= 1_000_000:
            raise GdscopeError(f"steps must be in 1..1000000, got {self.steps}", settings=["steps"])
        one_of("init", self.init, INITS)
        if self.chunk is not None and self.chunk < 1:
            raise GdscopeError(f"chunk must be >= 1, got {self.chunk}", settings=["chunk"])
        for what in ("model", "data", "val_data"):
            spec = getattr(self, what)
            if spec is not None:
                split_callable(spec, what)

    def to_dict(self) -> dict[str, Any]:
        out = _plain_fields(self, skip=("scheduler",))
        if self.scheduler is not None:  # in PlotConfig's format, absent when there is none
            out["scheduler"] = PlotConfig(scheduler=self.scheduler).to_dict()["scheduler"]
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, where: str = "network") -> NetworkSpec:
        given = {}
        if raw.get("scheduler") is not None:
            parsed = PlotConfig.from_dict({"scheduler": raw["scheduler"]}, where=where)
            given["scheduler"] = parsed.scheduler
        return _from_fields(cls, raw, where, **given)

    def doing(self) -> str:
        """What training it is, for a message about the user's code failing."""
        return f"training {self.model} on {self.data} with loss {self.loss}"

    def load(self, settings: RunSettings) -> Network:
        """Import the model, data, validation data and loss (refused in one line if bad)."""
        from gdscope.jobs.landscape import load_callable, load_loss, load_model
        from gdscope.nets.plane import materialize
        from gdscope.studies.netstudy import Network

        model = load_model(self.model)
        batches = materialize(load_callable(self.data, "data")())
        val = None
        if self.val_data is not None:  # its failure names it, not the training
            with users_code(f"loading val_data {self.val_data}", settings=["val_data"]):
                val = materialize(load_callable(self.val_data, "val_data")(),
                                  what="the validation data")  # fmt: skip
        return Network.of(model, batches, load_loss(self.loss), val=val,
                          batch_size=settings.batch_size, name=self.model)  # fmt: skip

    def options(self, settings: RunSettings) -> dict[str, Any]:
        """``run_network_grid``'s keyword arguments (the engine's from ``settings``)."""
        engine = settings.engine()
        return {
            "steps": self.steps, "shuffle_seed": settings.shuffle_seed, "init": self.init,
            "seed": self.init_seed, "target": self.target,
            "chunk": "auto" if self.chunk is None else self.chunk, "dtype": engine["dtype"],
            "device": engine["device"], "scheduler": self.scheduler, "method": self.strategy,
        }  # fmt: skip

    def as_run(self, meta: Mapping[str, Any]) -> NetworkSpec:
        """This network with the chunk and strategy a run used (its ``meta``), so a replay
        trains the same way and draws the same numbers."""
        return replace(self, chunk=int(meta["chunk"]), strategy=str(meta["method"]))


@dataclass(frozen=True)
class RunSettings:
    """How every configuration of a study runs: the optimizer (its varied settings are replaced
    per cell), the start (``None``: the objective's own), the length, mini-batches, the engine."""

    optimizer: OptimizerSpec = field(default_factory=lambda: SGDConfig().spec())
    start: tuple[float, float] | None = None
    epochs: int = ARTICLE_EPOCHS
    batch_size: int | None = None
    shuffle_seed: int = 0
    dtype: str = DTYPES[0]
    device: str = "cpu"
    compile: bool = False

    def __post_init__(self) -> None:
        one_of("dtype", self.dtype, DTYPES)
        resolve_device(self.device)  # before any work

    def to_dict(self) -> dict[str, Any]:
        out = _plain_fields(self, skip=("optimizer",))
        out["optimizer"] = PlotConfig(optimizer=self.optimizer).to_dict()["optimizer"]
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, where: str = "run") -> RunSettings:
        optimizer = PlotConfig.from_dict({"optimizer": raw.get("optimizer", {})}, where=where)
        rest = {key: value for key, value in raw.items() if key != "optimizer"}
        return _from_fields(cls, rest, where, optimizer=optimizer.optimizer)

    def fixed(self, varied: set[str]) -> dict[str, Any]:
        """The optimizer's settings that are not varied, as the engine's keyword arguments."""
        kwargs = self.optimizer.kwargs()
        if varied & {"beta1", "beta2"} and "betas" in kwargs:
            beta1, beta2 = kwargs.pop("betas")
            kwargs.update({"beta1": beta1, "beta2": beta2})
        return {k: v for k, v in kwargs.items() if k not in varied}

    def engine(self) -> dict[str, Any]:
        """``dtype``, ``device`` and ``compile`` for the batched engine."""
        import torch

        dtype = torch.float64 if self.dtype == "float64" else torch.float32
        return {"dtype": dtype, "device": self.device, "compile": self.compile}

    def batches(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "shuffle_seed": self.shuffle_seed}


_Study_T = TypeVar("_Study_T", bound="_Study")


class _Study:
    """``to_dict``/``from_dict`` of the study configs: plain fields as JSON values, ``problem``
    and ``run`` nested as their own dictionaries."""

    def to_dict(self) -> dict[str, Any]:
        return _study_dict(self)

    @classmethod
    def from_dict(
        cls: type[_Study_T], raw: Mapping[str, Any], *, where: str = "config"
    ) -> _Study_T:
        return _from_fields(cls, raw, where, **_nested(raw, where))


def sweep_axes(vary: tuple[str, ...]) -> list[Axis]:
    """The sweep's axes, refused when there are too many to draw one panel each."""
    axes = [Axis.parse(text) for text in vary]
    if len(axes) > 2:
        raise GdscopeError("sweep varies one or two hyperparameters; use phase for dense grids")
    count = 1
    for axis in axes:
        count *= len(axis.values)
    if count > MAX_PANELS:
        raise GdscopeError(
            f"{count} panels; a sweep draws at most {MAX_PANELS} (try gdscope phase)"
        )
    return axes


@dataclass(frozen=True)
class SweepConfig(_Study):
    """Small multiples: one panel per combination of the ``vary`` values (``lr=0.01,0.1``)."""

    vary: tuple[str, ...]
    problem: Problem = field(default_factory=Problem)
    run: RunSettings = field(default_factory=RunSettings)
    log: bool = False
    network: NetworkSpec | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "vary", tuple(self.vary))
        sweep_axes(self.vary)


@dataclass(frozen=True)
class PhaseConfig(_Study):
    """A phase diagram: ``metric`` over the ``x`` × ``y`` grid of two hyperparameters."""

    x: str
    y: str
    problem: Problem = field(default_factory=Problem)
    run: RunSettings = field(default_factory=RunSettings)
    metric: str = DEFAULT_METRIC
    tol: float = STEPS_TOL
    mark: tuple[float, float] | None = None
    chunk: int = GRID_CHUNK
    network: NetworkSpec | None = None

    def __post_init__(self) -> None:
        self.axes()
        one_of("metric", self.metric, METRICS)
        usable = NEURON_METRICS if self.network is None else NETWORK_METRICS
        if self.metric not in usable:
            what = "a network" if self.network is not None else "a 2-D objective (not a model)"
            raise GdscopeError(
                f"metric {self.metric} is not measured for {what}; choose {', '.join(usable)}",
                settings=["metric"],
            )
        if self.network is not None:
            if self.metric.startswith("val_") and self.network.val_data is None:
                raise GdscopeError(
                    f"metric {self.metric} needs val_data", settings=["metric", "val_data"]
                )
            if self.metric == "steps_to_target" and self.network.target is None:
                raise GdscopeError(
                    "metric steps_to_target needs target LOSS", settings=["metric", "target"]
                )
        if self.chunk < 1:
            raise GdscopeError(f"chunk must be >= 1, got {self.chunk}", settings=["chunk"])

    def axes(self) -> tuple[Axis, Axis]:
        return Axis.parse(self.x, what="x"), Axis.parse(self.y, what="y")


@dataclass(frozen=True)
class CompareConfig(_Study):
    """A fair comparison: each optimizer tuned over ``tune`` (``lr=…``, ``momentum=…``) on the
    same ``starts`` start points with the same step ``budget``."""

    optimizers: tuple[str, ...]
    problem: Problem = field(default_factory=Problem)
    budget: int = COMPARE_BUDGET
    starts: int = COMPARE_STARTS
    start_seed: int = 0
    tune: tuple[str, ...] = ()
    network: NetworkSpec | None = None
    run: RunSettings | None = None
    """With ``network``: its batches, float type and device (the optimizer's are tuned)."""
    score: str = "final_loss"
    """With ``network``: what a setting is scored by (``studies.netstudy.SCORES``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "optimizers", tuple(self.optimizers))
        object.__setattr__(self, "tune", tuple(self.tune))
        if self.network is not None and self.score == "val_loss" and not self.network.val_data:
            raise GdscopeError("score val_loss needs val_data", settings=["score", "val_data"])
        unknown = set(self.tuned()) - {"lr", "momentum"}
        if unknown:
            raise GdscopeError(
                f"tune takes lr and momentum, got {', '.join(sorted(unknown))}", settings=["tune"]
            )

    def tuned(self) -> dict[str, Axis]:
        axes = [Axis.parse(text, what="tune") for text in self.tune]
        names = [axis.name for axis in axes]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise GdscopeError(f"tune names {', '.join(twice)} more than once", settings=["tune"])
        return {axis.name: axis for axis in axes}


_NESTED = {"problem": Problem, "run": RunSettings, "network": NetworkSpec}


def _plain_fields(config: object, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A flat dataclass's fields as JSON values (tuples as lists)."""
    out: dict[str, Any] = {}
    for item in fields(config):  # type: ignore[arg-type]
        if item.name in skip:
            continue
        value = getattr(config, item.name)
        out[item.name] = list(value) if isinstance(value, tuple) else value
    return out


def _from_fields(cls: type[_Config], raw: Mapping[str, Any], where: str, **given: Any) -> _Config:
    """``cls`` from a dictionary of its plain fields (lists back to tuples); errors say where."""
    known = {item.name for item in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - known)
    if unknown:
        raise GdscopeError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k not in given}
    try:
        return cls(**kwargs, **given)
    except (TypeError, ValueError) as error:
        raise GdscopeError(f"{where}: {error}") from None
    except GdscopeError as error:
        raise GdscopeError(f"{where}: {error}") from None


def _study_dict(config: _Study) -> dict[str, Any]:
    out = _plain_fields(config, skip=tuple(_NESTED))
    for name in _NESTED:
        if getattr(config, name, None) is not None:  # a study without a network has none
            out[name] = getattr(config, name).to_dict()
    return out


def _nested(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    return {
        name: kind.from_dict(raw[name], where=f"{where}: {name}")  # type: ignore[attr-defined]
        for name, kind in _NESTED.items()
        if raw.get(name) is not None
    }
