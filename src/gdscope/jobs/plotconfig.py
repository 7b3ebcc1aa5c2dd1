"""``PlotConfig``: everything that determines a landscape-and-path figure, as one typed value.

The CLI and TOML files parse into it, figures are built from it, it round-trips through
``to_dict``/``from_dict`` (the record embedded in every output) and it can say which command
re-makes it.
"""

from __future__ import annotations

import inspect
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from gdscope.engines.reference import check_batch, check_epochs, check_start
from gdscope.errors import GdscopeError, one_of
from gdscope.optim.sgdconfig import SGDConfig
from gdscope.optim.specs import OPTIMIZERS, SCHEDULERS, OptimizerSpec, SchedulerSpec
from gdscope.optim.table import OPTIMIZER_TABLE
from gdscope.problem.data import CsvData, DataSpec
from gdscope.problem.grid import ARTICLE_EPOCHS, Grid
from gdscope.problem.losses import ARTICLE_LOSSES, HUBER_DELTA, SMOOTHL1_BETA
from gdscope.problem.objective import Objective, objective_from_dict, typed
from gdscope.problem.testfunctions import TestFunction
from gdscope.render.overlays import OVERLAYS

__all__ = ["VIEWS", "PlotConfig", "load_toml", "parse_function"]

VIEWS = ("heatmap", "contour", "surface")


@dataclass(frozen=True)
class PlotConfig:
    """One figure: the data, the objectives (one panel each), the optimizer, the grid, display.

    ``losses`` holds regression losses and/or test functions. ``grid`` and ``start`` left as
    ``None`` mean each objective's own (the article's for a loss, the function's standard domain
    and start otherwise). ``batch_size`` turns on mini-batch SGD, shuffled with ``shuffle_seed``.
    """

    data: DataSpec | CsvData = field(default_factory=DataSpec)
    losses: tuple[Objective, ...] = ARTICLE_LOSSES
    optimizer: OptimizerSpec = field(default_factory=lambda: SGDConfig().spec())
    scheduler: SchedulerSpec | None = None
    epochs: int = ARTICLE_EPOCHS
    start: tuple[float, float] | None = None
    grid: Grid | None = None
    log: bool = False
    effective: bool = False
    path: bool = True
    batch_size: int | None = None
    shuffle_seed: int = 0
    view: str = "heatmap"
    overlays: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_epochs(self.epochs)
        if self.start is not None:
            object.__setattr__(self, "start", check_start(self.start))
        object.__setattr__(self, "losses", tuple(self.losses))
        if not self.losses:
            raise GdscopeError("at least one loss or function is needed")
        one_of("view", self.view, VIEWS)
        overlays = tuple(dict.fromkeys(self.overlays))
        unknown = [o for o in overlays if o not in OVERLAYS]
        if unknown:
            raise GdscopeError(
                f"unknown overlay(s) {', '.join(unknown)}; choose from {', '.join(OVERLAYS)}"
            )
        object.__setattr__(self, "overlays", overlays)
        if self.batch_size is not None:
            if not all(x.needs_data for x in self.losses):
                raise GdscopeError("mini-batches need data; test functions have none")
            check_batch(self.batch_size, self.shuffle_seed, None if isinstance(self.data, CsvData)
                        else self.data.n)  # fmt: skip
        if "batches" in overlays and self.batch_size is None:
            raise GdscopeError(
                "the batches overlay needs a mini-batch run (batch_size)", settings=["batch_size"]
            )

    def grid_for(self, objective: Objective) -> Grid:
        return self.grid if self.grid is not None else objective.default_grid()

    def start_for(self, objective: Objective) -> tuple[float, float]:
        return self.start if self.start is not None else objective.start

    @property
    def needs_data(self) -> bool:
        return any(x.needs_data for x in self.losses)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON- and TOML-ready dictionary of every setting (unset options left out)."""
        out: dict[str, Any] = {}
        if isinstance(self.data, CsvData):
            out["data"] = {"csv": self.data.path, "sha256": self.data.sha256}
        else:
            out["data"] = asdict(self.data)
        out["losses"] = [x.to_dict() for x in self.losses]
        out["optimizer"] = {"name": self.optimizer.name, **_plain(self.optimizer.kwargs())}
        if self.scheduler is not None:
            out["scheduler"] = {"name": self.scheduler.name, **_plain(self.scheduler.kwargs())}
        out["epochs"] = self.epochs
        if self.start is not None:
            out["start"] = list(self.start)
        if self.grid is not None:
            out["grid"] = {
                "w_range": list(self.grid.w_range),
                "b_range": list(self.grid.b_range),
                "w_size": self.grid.w_size,
                "b_size": self.grid.b_size,
            }
        out.update(log=self.log, effective=self.effective, path=self.path, view=self.view)
        out["overlays"] = list(self.overlays)
        if self.batch_size is not None:
            out["batch_size"] = self.batch_size
            out["shuffle_seed"] = self.shuffle_seed
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, where: str = "config") -> PlotConfig:
        """The inverse of ``to_dict``, checking every key and type; errors say where."""
        known = {f.name for f in fields(cls)}
        _no_unknown(raw, known, where)
        kwargs: dict[str, Any] = {}
        if "data" in raw:
            kwargs["data"] = _data(_table(raw["data"], f"{where}: data"), f"{where}: data")
        if "losses" in raw:
            items = raw["losses"]
            if not isinstance(items, list):
                raise GdscopeError(f"{where}: losses must be a list of tables")
            kwargs["losses"] = tuple(
                objective_from_dict(item, f"{where}: losses[{i}]") for i, item in enumerate(items)
            )
        for key, kind in (("optimizer", OptimizerSpec), ("scheduler", SchedulerSpec)):
            if key in raw:
                name, options = _named(_table(raw[key], f"{where}: {key}"), f"{where}: {key}")
                table = OPTIMIZERS if key == "optimizer" else SCHEDULERS
                _check_options(table.get(name.lower()), options, f"{where}: {key}")
                try:
                    kwargs[key] = kind.of(name, **options)
                except GdscopeError as error:
                    raise GdscopeError(f"{where}: {key}: {error}") from None
        for key in ("epochs", "batch_size", "shuffle_seed"):
            if key in raw:
                kwargs[key] = typed(raw[key], int, f"{where}: {key}")
        for key in ("log", "effective", "path"):
            if key in raw:
                kwargs[key] = typed(raw[key], bool, f"{where}: {key}")
        if "view" in raw:
            kwargs["view"] = typed(raw["view"], str, f"{where}: view")
        if "overlays" in raw:
            items = typed(raw["overlays"], list, f"{where}: overlays")
            kwargs["overlays"] = tuple(typed(o, str, f"{where}: overlays") for o in items)
        if "start" in raw:
            kwargs["start"] = _pair(raw["start"], f"{where}: start")
        if "grid" in raw:
            kwargs["grid"] = _grid(_table(raw["grid"], f"{where}: grid"), f"{where}: grid")
        try:
            return cls(**kwargs)
        except GdscopeError as error:
            raise GdscopeError(f"{where}: {error}") from None

    def cli_args(self) -> list[str]:
        """Arguments of ``gdscope plot`` that re-make this figure (defaults left out)."""
        args: list[str] = []
        losses = [r for r in (x.regression for x in self.losses) if r is not None]
        functions = [x.to_dict() for x in self.losses if not x.needs_data]
        names = [loss.name for loss in losses]
        if names == [x.name for x in ARTICLE_LOSSES]:
            args += ["--loss", "all"]
        elif names:
            args += ["--loss", *names]
        if functions:
            args += ["--function", *(_function_arg(f) for f in functions)]
        huber = next((x.delta for x in losses if x.name == "huber"), HUBER_DELTA)
        beta = next((x.beta for x in losses if x.name == "smoothl1"), SMOOTHL1_BETA)
        if huber != HUBER_DELTA:
            args += ["--huber-delta", f"{huber!r}"]
        if beta != SMOOTHL1_BETA:
            args += ["--smoothl1-beta", f"{beta!r}"]
        lr = min(x.customary_lr for x in self.losses)  # what the CLI assumes without --lr
        args += _optimizer_args(self.optimizer, self.scheduler, assumed_lr=lr)
        if self.epochs != ARTICLE_EPOCHS:
            args += ["--epochs", str(self.epochs)]
        if self.start is not None:
            args += ["--start", f"{self.start[0]!r}", f"{self.start[1]!r}"]
        if self.batch_size is not None:
            args += ["--batch-size", str(self.batch_size), "--shuffle-seed", str(self.shuffle_seed)]
        if isinstance(self.data, CsvData):
            args += ["--data", self.data.path]
        else:
            args += _data_args(self.data)
        grid = self.grid
        if grid is not None:
            args += ["--grid-size", str(grid.w_size)]
            if grid.b_size != grid.w_size:
                args += [str(grid.b_size)]
            args += ["--w-range", *(f"{v!r}" for v in grid.w_range)]
            args += ["--b-range", *(f"{v!r}" for v in grid.b_range)]
        args += [
            flag for flag, on in (("--log-color", self.log), ("--effective", self.effective)) if on
        ]
        if not self.path:
            args += ["--no-path"]
        if self.view != "heatmap":
            args += ["--view", self.view]
        if self.overlays:
            args += ["--overlay", *self.overlays]
        return args

    def command(self, out: str) -> str:
        """The shell command that re-makes this figure into ``out``."""
        return shlex.join(["gdscope", "plot", *self.cli_args(), "--out", out])


def _data_args(spec: DataSpec) -> list[str]:
    args: list[str] = []
    data = DataSpec()
    if spec.seed != data.seed:
        args += ["--seed", str(spec.seed)]
    if spec.n != data.n:
        args += ["--n", str(spec.n)]
    coefs = (spec.quadratic, spec.linear, spec.constant)
    if coefs != (data.quadratic, data.linear, data.constant):
        args += ["--coefficients", *(f"{c!r}" for c in coefs)]
    if spec.noise != data.noise:
        args += ["--noise", f"{spec.noise!r}"]
    return args


def _function_arg(record: Mapping[str, Any]) -> str:
    """``quadratic:condition=100.0,angle=45.0`` (just the name without options), from the test
    function's record."""
    options = [f"{k}={v!r}" for k, v in record.items() if k != "function"]
    return record["function"] + (":" + ",".join(options) if options else "")


def parse_function(text: str) -> TestFunction:
    """``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE`` → ``TestFunction``."""
    name, _, rest = text.partition(":")
    options: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise GdscopeError(f"--function {text!r}: options are KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = float(value)
        except ValueError:
            raise GdscopeError(f"--function {text!r}: {key.strip()} is not a number") from None
    return TestFunction.of(name.strip(), **options)


def _optimizer_args(
    optimizer: OptimizerSpec, scheduler: SchedulerSpec | None, *, assumed_lr: float
) -> list[str]:
    """SGD as its own flags (``--lr 0.1 --momentum 0.9``, from the optimizer table), written
    where they differ from what the CLI assumes without them (SGD's settings, and the
    objectives' own ``assumed_lr``); others as ``--optimizer/--opt``."""
    args: list[str] = []
    kwargs = optimizer.kwargs()
    if optimizer.name == "sgd":
        assumed = {**SGDConfig().kwargs(), "lr": assumed_lr}
        for hyper in OPTIMIZER_TABLE["sgd"].hyperparameters:
            value = kwargs.get(hyper.name, assumed[hyper.name])
            if hyper.flag is None or value == assumed[hyper.name]:
                continue
            args += [hyper.flag] if hyper.kind == "bool" else [hyper.flag, f"{value!r}"]
    else:
        args += ["--optimizer", optimizer.name]
        args += [f"--opt={key}={_literal(value)}" for key, value in optimizer.options]
    if scheduler is not None:
        args += ["--scheduler", scheduler.name]
        args += [f"--sched={key}={_literal(value)}" for key, value in scheduler.options]
    return args


def _literal(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(_literal(v) for v in value)
    return repr(value)


def _plain(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Tuples as lists (JSON and TOML have arrays only)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}


def _no_unknown(raw: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise GdscopeError(
            f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise GdscopeError(f"{where} must be a table, got {type(value).__name__}")
    return value


def _pair(value: Any, where: str) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise GdscopeError(f"{where} must be a list of two numbers, got {value!r}")
    return (typed(value[0], float, where), typed(value[1], float, where))


def _data(raw: Mapping[str, Any], where: str) -> DataSpec | CsvData:
    if "csv" in raw:
        _no_unknown(raw, {"csv", "sha256"}, where)
        sha = raw.get("sha256")
        return CsvData(
            typed(raw["csv"], str, f"{where}.csv"),
            None if sha is None else typed(sha, str, f"{where}.sha256"),
        )
    _no_unknown(raw, {f.name for f in fields(DataSpec)}, where)
    kwargs = {}
    for key, value in raw.items():
        kind = int if key in ("seed", "n") else float
        kwargs[key] = typed(value, kind, f"{where}.{key}")
    return DataSpec(**kwargs)


def _named(raw: Mapping[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    if "name" not in raw:
        raise GdscopeError(f"{where} needs a name")
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k != "name"}
    return typed(raw["name"], str, f"{where}.name"), options


def _check_options(cls: type[Any] | None, options: Mapping[str, Any], where: str) -> None:
    """Each option of the type its torch default (or, for a required one, its plain annotation)
    has: a number, true/false, a list of numbers, a string. A wrong type then names its key
    instead of failing inside torch, or not at all until the first step."""
    if cls is None:
        return  # an unknown name: the spec says which names there are
    parameters = inspect.signature(cls).parameters
    for key, value in options.items():
        if key not in parameters:
            continue
        parameter = parameters[key]
        default = parameter.default
        if default is inspect.Parameter.empty:
            default = _EXAMPLES.get(str(parameter.annotation))
        at = f"{where}.{key}"
        if isinstance(default, tuple):
            items = typed(list(value) if isinstance(value, tuple) else value, list, at)
            for item in items:
                typed(item, float, at)
        elif isinstance(default, bool | str):
            typed(value, type(default), at)
        elif isinstance(default, int | float):
            typed(value, float, at)


# A value of each plain annotation a required torch argument has (step_size: int, gamma: float).
_EXAMPLES: dict[str, Any] = {"float": 0.0, "int": 0, "bool": False, "str": "",
                             "<class 'float'>": 0.0, "<class 'int'>": 0}  # fmt: skip


def _grid(raw: Mapping[str, Any], where: str) -> Grid:
    _no_unknown(raw, {"w_range", "b_range", "w_size", "b_size"}, where)
    kwargs: dict[str, Any] = {}
    for key in ("w_range", "b_range"):
        if key in raw:
            kwargs[key] = _pair(raw[key], f"{where}.{key}")
    for key in ("w_size", "b_size"):
        if key in raw:
            kwargs[key] = typed(raw[key], int, f"{where}.{key}")
    return Grid(**kwargs)


def load_toml(path: str | Path) -> PlotConfig:
    """A ``PlotConfig`` from a TOML file holding ``to_dict``'s keys (all optional)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise GdscopeError(f"cannot read {file}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise GdscopeError(f"{file} is not valid TOML: {error}") from None
    return PlotConfig.from_dict(raw, where=str(file))
