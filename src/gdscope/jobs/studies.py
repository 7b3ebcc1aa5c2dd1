"""The study jobs behind ``gdscope sweep``, ``phase`` and ``compare``: run the study, draw it,
save the figure (with its record, so ``replay`` can make it again) and the results file.

Each job takes a typed, frozen config that round-trips through ``to_dict``/``from_dict``; the
record a figure carries is ``record(kind, config=config.to_dict(), dpi=dpi)`` (a comparison's
also holds the versions and seed it ran with, ``result``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure

from gdscope import interrupts
from gdscope.devices import resolve_device
from gdscope.engines.stacked import INITS, METHODS
from gdscope.errors import GdscopeError, one_of
from gdscope.files import record_json, save_figure, write_text
from gdscope.jobs.landscape import DEFAULT_LOSS, split_callable, users_code
from gdscope.jobs.plotconfig import PlotConfig
from gdscope.jobs.records import DEFAULT_DPI, record
from gdscope.optim.sgdconfig import SGDConfig
from gdscope.optim.specs import OptimizerSpec, SchedulerSpec
from gdscope.problem.data import CsvData, Dataset, DataSpec, make_data
from gdscope.problem.grid import ARTICLE_EPOCHS
from gdscope.problem.losses import LossSpec
from gdscope.problem.maps import Grid, Landscape, loss_map
from gdscope.problem.objective import Objective, default_grid
from gdscope.raypool import RayPool
from gdscope.studies.netstudy import DEFAULT_STEPS, NetRun, NetShootout, Network
from gdscope.studies.phase import (
    DEFAULT_METRIC,
    METRICS,
    NETWORK_METRICS,
    NEURON_METRICS,
    STEPS_TOL,
)
from gdscope.studies.shootout import Shootout
from gdscope.studies.sweep import COMPARE_BUDGET, COMPARE_STARTS, GRID_CHUNK, Axis, GridRun

__all__ = [
    "COMPARE_FORMATS",
    "DTYPES",
    "EXAMPLE_STUDIES",
    "GRID_FORMATS",
    "INITS",
    "MAX_PANELS",
    "CompareConfig",
    "CompareOutput",
    "ExampleStudies",
    "NetworkSpec",
    "Outputs",
    "PhaseConfig",
    "Problem",
    "RunSettings",
    "StudyOutput",
    "SweepConfig",
    "example_studies",
    "example_study_files",
    "kept",
    "make_compare",
    "make_phase",
    "make_sweep",
    "sweep_axes",
]

MAX_PANELS = 64
GRID_FORMATS = (".npz", ".csv", ".json")
"""What ``--save`` of a sweep or phase diagram writes (``save_grid``)."""
COMPARE_FORMATS = (".json",)
DTYPES = ("float32", "float64")
"""The engine's float types by name (the first is the default)."""

Progress = Callable[[int, int], None]
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
            with users_code(f"loading --val-data {self.val_data}"):
                val = materialize(load_callable(self.val_data, "val_data")())
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


@dataclass(frozen=True)
class Outputs:
    """Where a study job writes: the figure ``out`` (.png/.svg/.pdf) at ``dpi`` with its
    record, and with ``save`` the results too; ``force`` overwrites existing files."""

    out: Path
    dpi: float = DEFAULT_DPI
    force: bool = False
    save: Path | None = None
    resume: Path | None = None
    """A network study's progress file: finished chunks are kept there and reused."""

    def figure(self, fig: Figure, rec: dict[str, Any]) -> Path:
        return save_figure(fig, self.out, force=self.force, dpi=self.dpi, config=rec)


@dataclass(frozen=True, eq=False)
class StudyOutput:
    """What a sweep or phase job wrote (the figure, then the ``save`` file) and its run;
    ``run.interrupted`` means Ctrl-C stopped it and the files hold the finished part."""

    run: GridRun | NetRun
    written: tuple[Path, ...]


@dataclass(frozen=True, eq=False)
class CompareOutput:
    result: Shootout | NetShootout
    written: tuple[Path, ...]


def make_sweep(
    config: SweepConfig,
    outputs: Outputs,
    *,
    progress: Progress | None = None,
    backend: RayPool | None = None,
) -> StudyOutput:
    """Run every combination along the reference grid and draw one panel each (a network's:
    every configuration's loss curve). ``backend``: see ``_network_backend``."""
    from gdscope.render.studycharts import plot_small_multiples
    from gdscope.studies.sweep import run_grid

    if config.network is not None:
        return _network_sweep(config, config.network, outputs, progress, backend)
    _network_backend(config, backend)
    axes = sweep_axes(config.vary)
    settings, problem = config.run, config.problem
    fixed = settings.fixed({axis.name for axis in axes})
    name = settings.optimizer.name
    data = problem.dataset()
    run = run_grid(
        data, name, axes, fixed=fixed, loss=problem.objective, start=settings.start,
        epochs=settings.epochs, record="path", progress=progress, **settings.batches(),
        **settings.engine(),
    )  # fmt: skip
    if not run.completed.any():
        return StudyOutput(run, ())  # Ctrl-C before any configuration finished
    with interrupts.deferred():  # what finished is drawn and written even if Ctrl-C comes now
        finished = np.flatnonzero(run.completed)
        titles = [
            ", ".join(f"{a.name}={_show(run.options[a.name][k])}" for a in axes) for k in finished
        ]
        trajectories = [run.trajectory(int(k)) for k in finished]
        fig, _ = plot_small_multiples(
            problem.landscape(data), trajectories, titles, fig=Figure(), log=config.log
        )
        held = ", ".join(f"{k}={v}" for k, v in sorted(fixed.items()))
        fig.suptitle(
            f"{name} on {problem.objective.title}, {settings.epochs} epochs"
            + (f"; {held}" if held else "")
            + (f"\n{kept(run)}; the others are not shown" if run.interrupted else "")
        )
        return StudyOutput(run, _save_grid_study(fig, "sweep", config, outputs, run))


def make_phase(
    config: PhaseConfig,
    outputs: Outputs,
    *,
    progress: Progress | None = None,
    backend: RayPool | None = None,
) -> StudyOutput:
    """Run the phase grid in chunks (Ctrl-C keeps the finished ones) and draw ``metric``.
    ``backend``: see ``_network_backend``."""
    from gdscope.render.studycharts import plot_phase
    from gdscope.studies.phase import analytic_stable, phase_diagram

    if config.network is not None:
        return _network_phase(config, config.network, outputs, progress, backend)
    _network_backend(config, backend)
    x, y = config.axes()
    settings = config.run
    data = config.problem.dataset()
    run = phase_diagram(
        data, x=x, y=y, optimizer=settings.optimizer.name, fixed=settings.fixed({x.name, y.name}),
        loss=config.problem.objective, start=settings.start, epochs=settings.epochs,
        tol=config.tol, chunk=config.chunk, progress=progress, **settings.batches(),
        **settings.engine(),
    )  # fmt: skip
    if not run.completed.any():
        return StudyOutput(run, ())  # Ctrl-C before any configuration finished
    with interrupts.deferred():  # what finished is drawn and written even if Ctrl-C comes now
        fig = Figure(figsize=(8, 6.5))
        ax = fig.subplots()
        stable = analytic_stable(run, data) if data is not None else None
        drawn = plot_phase(run, config.metric, ax=ax, stable=stable, mark=config.mark)
        if run.interrupted:
            _hatch_unfinished(ax, drawn.mesh, run)
        fig.tight_layout()
        return StudyOutput(run, _save_grid_study(fig, "phase", config, outputs, run))


def _network_backend(config: SweepConfig | PhaseConfig | CompareConfig,
                     backend: RayPool | None) -> None:  # fmt: skip
    """A Ray ``backend`` trains a ``--model`` study's chunks on a cluster; it is not part of
    the config (nor the record: a replay runs locally, with equal results). The 2-D studies
    run where they are called, so one is refused for them."""
    if backend is not None and config.network is None:
        raise GdscopeError("--backend ray runs --model studies; drop it")


def _network_run(
    config: SweepConfig | PhaseConfig,
    network: NetworkSpec,
    axes: tuple[Axis, ...],
    outputs: Outputs,
    progress: Progress | None,
    backend: RayPool | None,
) -> NetRun:
    from gdscope.studies.netstudy import run_network_grid

    settings = config.run
    with users_code(network.doing()):
        loaded = network.load(settings)
        if isinstance(config, PhaseConfig) and config.metric == "val_accuracy":
            loaded.require_accuracy()  # before training, not an all-grey figure after it
        return run_network_grid(
            loaded, settings.optimizer.name, axes,
            fixed=settings.fixed({axis.name for axis in axes}), progress=progress,
            resume=outputs.resume, backend=backend, **network.options(settings),
        )  # fmt: skip


def _network_phase(
    config: PhaseConfig,
    network: NetworkSpec,
    outputs: Outputs,
    progress: Progress | None,
    backend: RayPool | None,
) -> StudyOutput:
    """A network's phase diagram: the metric, the measured border (where copies diverged),
    and a note that the analytic border (SGD on a quadratic) does not apply."""
    from gdscope.render.studycharts import plot_phase

    x, y = config.axes()
    run = _network_run(config, network, (y, x), outputs, progress, backend)
    if not run.completed.any():
        return StudyOutput(run, ())
    with interrupts.deferred():
        fig = Figure(figsize=(8, 6.5))
        ax = fig.subplots()
        drawn = plot_phase(run, config.metric, ax=ax, mark=config.mark)
        if run.interrupted:
            _hatch_unfinished(ax, drawn.mesh, run)
        fig.tight_layout()
        return StudyOutput(run, _save_grid_study(fig, "phase", config, outputs, run))


def _network_sweep(
    config: SweepConfig,
    network: NetworkSpec,
    outputs: Outputs,
    progress: Progress | None,
    backend: RayPool | None,
) -> StudyOutput:
    """A network's sweep: every configuration's training-loss curve, one panel each."""
    from gdscope.render.studycharts import plot_loss_curves

    axes = tuple(sweep_axes(config.vary))
    run = _network_run(config, network, axes, outputs, progress, backend)
    if not run.completed.any():
        return StudyOutput(run, ())
    with interrupts.deferred():
        fig = plot_loss_curves(run, fig=Figure(), log=config.log)
        if run.interrupted:
            fig.suptitle(f"{kept(run)}; the others are not shown", y=0.02, fontsize=8)
        return StudyOutput(run, _save_grid_study(fig, "sweep", config, outputs, run))


def _network_compare(
    config: CompareConfig, network: NetworkSpec, outputs: Outputs, backend: RayPool | None
) -> CompareOutput:
    """Tune each optimizer on the network (same steps, starts and batches), draw and save."""
    from gdscope.render.studycharts import plot_network_shootout
    from gdscope.studies.netstudy import compare_network
    from gdscope.studies.shootout import DEFAULT_LR

    settings = config.run or RunSettings()
    tuned = config.tuned()
    with users_code(network.doing()):
        loaded = network.load(settings)
        result = compare_network(
            loaded, config.optimizers, lr=tuned.get("lr", DEFAULT_LR),
            momentum=tuned.get("momentum"), metric=config.score, resume=outputs.resume,
            backend=backend, **network.options(settings),
        )  # fmt: skip
    if not result.runs:
        return CompareOutput(result, ())
    with interrupts.deferred():
        fig = plot_network_shootout(result, fig=Figure())
        meta = next(iter(result.runs.values())).meta
        cut = kept_optimizers(result) if result.interrupted else None
        # as it ran (each optimizer sized its own chunks: those stay auto); the notes are
        # printed, not recorded: a replay given the strategy has no vmap note to make
        done = replace(config, network=replace(network, strategy=str(meta["method"])))
        recorded = {k: v for k, v in meta.items() if k != "notes"}
        rec = record("compare", config=done.to_dict(), dpi=outputs.dpi, result=recorded,
                     interrupted=cut)  # fmt: skip
        written = [outputs.figure(fig, rec)]
        if outputs.save is not None:
            payload = {
                **meta, "network": result.network, "steps": result.steps,
                "score": result.metric, "table": result.table(),
                "tried": {name: [{**run.options_of(k), "score": float(v)}
                                 for k, v in enumerate(result.scores(name))]
                          for name, run in result.runs.items()},
            }  # fmt: skip
            written.append(write_text(outputs.save, record_json(payload), force=outputs.force))
    return CompareOutput(result, tuple(written))


def kept_optimizers(result: Shootout | NetShootout) -> str:
    """What an interrupted shoot-out kept, in words."""
    done = len(result.contenders) if isinstance(result, Shootout) else len(result.runs)
    if not done:
        return "nothing finished; nothing written"
    return f"kept {done} of {len(result.asked)} optimizers"


def kept(run: GridRun | NetRun) -> str:
    """What an interrupted grid run kept, in words."""
    done = int(run.completed.sum())
    if not done:
        return "nothing finished; nothing written"
    return f"kept {done} of {len(run.completed)} configurations"


def _hatch_unfinished(ax: Axes, mesh: QuadMesh, run: GridRun | NetRun) -> None:
    """Hatch the cells Ctrl-C left unrun: one patch per block of rows with the same run of
    unrun columns (a stopped grid leaves the rest of one row and the rows after it)."""
    from matplotlib.patches import Polygon

    edges = np.asarray(mesh.get_coordinates())  # (rows + 1, columns + 1, 2)
    unrun = ~run.completed.reshape(run.shape)
    blocks: list[list[int]] = []  # [first row, last row, first column, last column]
    for i, row in enumerate(unrun):
        changes = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(int), [0]])))
        for j0, j1 in zip(changes[::2], changes[1::2] - 1, strict=True):
            last = blocks[-1] if blocks else None
            if last is not None and last[1] == i - 1 and last[2:] == [j0, j1]:
                last[1] = i
            else:
                blocks.append([i, i, int(j0), int(j1)])
    for i0, i1, j0, j1 in blocks:
        corners = [edges[i0, j0], edges[i0, j1 + 1], edges[i1 + 1, j1 + 1], edges[i1 + 1, j0]]
        ax.add_patch(Polygon(corners, closed=True, fill=False, hatch="//", lw=0,
                             edgecolor="#555555"))  # fmt: skip
    ax.text(0.01, 0.01, f"interrupted: {kept(run)}; hatched cells were not run",
            transform=ax.transAxes, fontsize=8, va="bottom",
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})  # fmt: skip


def make_compare(
    config: CompareConfig, outputs: Outputs, *, backend: RayPool | None = None
) -> CompareOutput:
    """Tune and score each optimizer, draw the winners' paths, and with ``save`` write every
    tried setting's score as JSON. ``backend``: see ``_network_backend``."""
    from gdscope.render.studycharts import plot_shootout
    from gdscope.studies.shootout import DEFAULT_LR, compare

    if config.network is not None:
        return _network_compare(config, config.network, outputs, backend)
    _network_backend(config, backend)
    problem, tuned = config.problem, config.tuned()
    data = problem.dataset()
    result = compare(
        data, config.optimizers, loss=problem.objective, budget=config.budget,
        starts=config.starts, seed=config.start_seed, lr=tuned.get("lr", DEFAULT_LR),
        momentum=tuned.get("momentum"),
    )  # fmt: skip
    if not result.contenders:  # Ctrl-C before any optimizer was scored
        return CompareOutput(result, ())
    with interrupts.deferred():  # what finished is drawn and written even if Ctrl-C comes now
        fig = plot_shootout(problem.landscape(data), result, fig=Figure())
        cut = kept_optimizers(result) if result.interrupted else None
        rec = record("compare", config=config.to_dict(), dpi=outputs.dpi, result=result.meta,
                     interrupted=cut)  # fmt: skip
        written = [outputs.figure(fig, rec)]
        if outputs.save is not None:
            payload = {
                **result.meta,
                "loss": problem.objective.title,
                "starts": result.starts.tolist(),
                "table": result.table(),
                "tried": {
                    c.name: [
                        {**s, "score": float(v)} for s, v in zip(c.settings, c.scores, strict=True)
                    ]
                    for c in result.contenders
                },
            }
            written.append(write_text(outputs.save, record_json(payload), force=outputs.force))
    return CompareOutput(result, tuple(written))


def _save_grid_study(
    fig: Figure,
    kind: str,
    config: SweepConfig | PhaseConfig,
    outputs: Outputs,
    run: GridRun | NetRun,
) -> tuple[Path, ...]:
    """The figure with its record, then the grid (kept even when Ctrl-C cut the run short)."""
    from gdscope.studies.sweep import save_grid

    cut = kept(run) if run.interrupted else None
    if config.network is not None:  # as it ran
        config = replace(config, network=config.network.as_run(run.meta))
    written = [outputs.figure(fig, record(kind, config=config.to_dict(), dpi=outputs.dpi,
                                          interrupted=cut))]  # fmt: skip
    if outputs.save is not None:
        written.append(save_grid(run, outputs.save, force=outputs.force))
    return tuple(written)


def _show(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    return f"{float(value):.4g}"  # type: ignore[arg-type]


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


@dataclass(frozen=True)
class ExampleStudies:
    """The phase diagram and shoot-out ``gdscope example NAME`` draws for its network."""

    phase_x: str
    phase_y: str
    tune: str
    steps: int


EXAMPLE_STUDIES = {
    "mlp": ExampleStudies("lr=1e-3:30:12:log", "momentum=0:0.99:6", "lr=1e-4:3:8:log", 100),
    "cnn": ExampleStudies("lr=1e-3:30:8:log", "momentum=0:0.99:4", "lr=1e-4:3:6:log", 30),
}
"""Sized so that the MLP's two studies take seconds on a 2-core CPU, the CNN's about a minute."""


def example_study_files(name: str, out: Path) -> list[Path]:
    """The files ``example_studies`` writes (checked before the example starts)."""
    return [out / f"{name}-phase.png", out / f"{name}-compare.png"]


def example_studies(
    name: str,
    out: Path,
    *,
    device: str = "cpu",
    force: bool = False,
    progress: Progress | None = None,
) -> list[Path]:
    """The example's phase diagram (validation accuracy over lr × momentum, with the measured
    border) and its shoot-out of SGD, Adam and RMSprop scored on the validation loss, both
    replayable from their records; the files written."""
    module = f"gdscope.examples.{name}"
    chosen = EXAMPLE_STUDIES[name]
    network = NetworkSpec(f"{module}:make_model", f"{module}:make_loader",
                          val_data=f"{module}:make_val_loader", steps=chosen.steps)  # fmt: skip
    run = RunSettings(device=device)
    phase = PhaseConfig(chosen.phase_x, chosen.phase_y, run=run, network=network,
                        metric="val_accuracy")  # fmt: skip
    compare = CompareConfig(("sgd", "adam", "rmsprop"), tune=(chosen.tune,), network=network,
                            run=run, score="val_loss")  # fmt: skip
    phase_file, compare_file = example_study_files(name, out)
    written = [*make_phase(phase, Outputs(phase_file, force=force), progress=progress).written]
    if interrupts.requested():
        return written
    return written + list(make_compare(compare, Outputs(compare_file, force=force)).written)
