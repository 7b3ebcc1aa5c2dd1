"""The explorer API's request models: every field bounded, every default taken from the library.

Defaults are those of the figure ``gdscope plot`` makes without options (``PlotConfig()``), the
names those of the library's own tables (losses, metrics, views, functions), and each optimizer's
model is generated from ``optim.table.OPTIMIZER_TABLE``: a hyperparameter added there appears
here with its default and bounds. The bounds of ±1e4 and the size limits are the server's own:
they keep every request small.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model

from gdscope.errors import GdscopeError
from gdscope.jobs.plotconfig import VIEWS, PlotConfig
from gdscope.optim.specs import OptimizerSpec
from gdscope.optim.table import OPTIMIZER_TABLE, Hyperparameter, OptimizerEntry
from gdscope.problem.data import DataSpec
from gdscope.problem.losses import LOSS_NAMES, LossSpec
from gdscope.problem.maps import Grid
from gdscope.problem.testfunctions import FUNCTIONS, TestFunction
from gdscope.studies.phase import DEFAULT_METRIC, NEURON_METRICS
from gdscope.studies.sweep import Axis

__all__ = [
    "DEFAULT_METRIC",
    "FIGURE",
    "OPTIMIZER_MODELS",
    "AxisModel",
    "CommandRequest",
    "DataModel",
    "FunctionModel",
    "GridModel",
    "LandscapeRequest",
    "LossModel",
    "OptimizerBase",
    "PhaseRequest",
    "ProblemRequest",
    "TrajectoryRequest",
]

LIMIT = 1e4
"""Largest magnitude of any coordinate, coefficient or hyperparameter in a request."""
Bounded = Annotated[float, Field(ge=-LIMIT, le=LIMIT)]

FIGURE = PlotConfig()
"""The figure ``gdscope plot`` makes without options: the source of the requests' defaults."""
_OBJECTIVE = FIGURE.losses[0]
_GRID = FIGURE.grid_for(_OBJECTIVE)
_DATA = FIGURE.data if isinstance(FIGURE.data, DataSpec) else DataSpec()
_LOSS = LossSpec()
"""The phase diagram's default: where the optimizer diverges."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class DataModel(Strict):
    seed: int = Field(default=_DATA.seed, ge=0, lt=2**32)
    n: int = Field(default=_DATA.n, ge=2, le=1000)
    quadratic: Bounded = _DATA.quadratic
    linear: Bounded = _DATA.linear
    constant: Bounded = _DATA.constant
    noise: float = Field(default=_DATA.noise, ge=0, le=1e3)

    def spec(self) -> DataSpec:
        return DataSpec(**self.model_dump())


class LossModel(Strict):
    name: Literal[LOSS_NAMES] = _LOSS.name  # type: ignore[valid-type]
    delta: float = Field(default=_LOSS.delta, gt=0, le=1e3)
    beta: float = Field(default=_LOSS.beta, ge=0, le=1e3)

    def spec(self) -> LossSpec:
        return LossSpec(self.name, self.delta, self.beta)


# --- optimizers: one model per entry of the table ------------------------------------------


class OptimizerBase(Strict):
    """``{"name": ..., "hyper": {...}}``; each optimizer's model narrows both fields."""

    name: str
    hyper: Strict

    def values(self) -> dict[str, float | bool]:
        """Every hyperparameter: the given ones, the others at the table's defaults."""
        return self.hyper.model_dump()

    @property
    def entry(self) -> OptimizerEntry:
        return OPTIMIZER_TABLE[self.name]

    def spec(self) -> OptimizerSpec:
        return self.entry.spec(self.values())


def _hyper_field(hyper: Hyperparameter, default: float | bool) -> tuple[Any, Any]:
    if hyper.kind == "bool":
        return bool, Field(default=default)
    low = -LIMIT if hyper.low is None else hyper.low
    if hyper.below is None:
        return float, Field(default=default, ge=low, le=LIMIT)
    return float, Field(default=default, ge=low, lt=hyper.below)


def _optimizer_model(entry: OptimizerEntry) -> type[OptimizerBase]:
    defaults = entry.defaults()
    fields = {h.name: _hyper_field(h, defaults[h.name]) for h in entry.hyperparameters}
    hyper: type[Strict] = create_model(  # type: ignore[call-overload]
        f"{entry.title}Hyper", __base__=Strict, __doc__=f"torch.optim.{entry.title}", **fields
    )
    tag: Any = Literal[entry.name]
    return create_model(
        f"{entry.title}Optimizer",
        __base__=OptimizerBase,
        name=(tag, entry.name),
        hyper=(hyper, Field(default_factory=hyper)),
    )


OPTIMIZER_MODELS: dict[str, type[OptimizerBase]] = {
    name: _optimizer_model(entry) for name, entry in OPTIMIZER_TABLE.items()
}
_DEFAULT_OPTIMIZER = FIGURE.optimizer.name


def _optimizer_tag(value: Any) -> str:
    """Which optimizer a request names (none: the default one)."""
    if isinstance(value, dict):
        name = value.get("name", _DEFAULT_OPTIMIZER)
    else:
        name = getattr(value, "name", _DEFAULT_OPTIMIZER)
    return name if isinstance(name, str) else repr(name)


if TYPE_CHECKING:
    OptimizerModel = OptimizerBase
else:
    OptimizerModel = Annotated[
        Union[tuple(Annotated[m, Tag(n)] for n, m in OPTIMIZER_MODELS.items())],  # noqa: UP007
        Discriminator(
            _optimizer_tag,
            custom_error_type="optimizer_name",
            custom_error_message=f"Input should be one of {', '.join(OPTIMIZER_MODELS)}",
        ),
    ]


def _default_optimizer() -> OptimizerBase:
    return OPTIMIZER_MODELS[_DEFAULT_OPTIMIZER].model_validate({})


# --- problems and requests -----------------------------------------------------------------


class GridModel(Strict):
    w_range: tuple[Bounded, Bounded] = _GRID.w_range
    b_range: tuple[Bounded, Bounded] = _GRID.b_range
    size: int = Field(default=_GRID.w_size, ge=2, le=201)

    def grid(self) -> Grid:
        return Grid(self.w_range, self.b_range, self.size, self.size)


class FunctionModel(Strict):
    name: Literal[tuple(FUNCTIONS)]  # type: ignore[valid-type]
    options: dict[str, Bounded] = Field(default_factory=dict, max_length=4)

    def spec(self) -> TestFunction:
        return TestFunction.of(self.name, **self.options)


class ProblemRequest(Strict):
    """The regression (``data`` + ``losses``), or a test ``function`` (then those are unused)."""

    data: DataModel = Field(default_factory=DataModel)
    losses: list[LossModel] = Field(
        default_factory=lambda: [LossModel()], min_length=1, max_length=4
    )
    function: FunctionModel | None = None

    def objectives(self) -> list[LossSpec | TestFunction]:
        if self.function is not None:
            return [self.function.spec()]
        return [model.spec() for model in self.losses]

    def batched_loss(self) -> LossSpec | list[LossSpec] | TestFunction:
        """The objectives as ``run_batched`` takes them: the function, or every loss at once."""
        if self.function is not None:
            return self.function.spec()
        return [model.spec() for model in self.losses]

    def points(self) -> int:
        """Data points one evaluation touches (a test function: one)."""
        return 1 if self.function is not None else self.data.n


class LandscapeRequest(ProblemRequest):
    grid: GridModel = Field(default_factory=GridModel)
    weight_decay: float = Field(default=0.0, ge=0, le=100)


class TrajectoryRequest(ProblemRequest):
    optimizer: OptimizerModel = Field(default_factory=_default_optimizer)
    epochs: int = Field(default=FIGURE.epochs, ge=1, le=2000)
    start: tuple[Bounded, Bounded] = FIGURE.start_for(_OBJECTIVE)


class CommandRequest(TrajectoryRequest):
    """A trajectory on a map as the page shows it: what ``gdscope plot`` needs to draw it."""

    grid: GridModel = Field(default_factory=GridModel)
    log: bool = FIGURE.log
    view: Literal[VIEWS] = FIGURE.view  # type: ignore[valid-type]

    def config(self) -> PlotConfig:
        data = self.data.spec()
        return PlotConfig(
            data=data, losses=tuple(self.objectives()), optimizer=self.optimizer.spec(),
            epochs=self.epochs, start=self.start, grid=self.grid.grid(), log=self.log,
            view=self.view,
        )  # fmt: skip


class AxisModel(Strict):
    name: str = Field(pattern=r"^[a-z_0-9]{1,32}$")
    lo: float = Field(ge=-LIMIT, le=LIMIT)
    hi: float = Field(ge=-LIMIT, le=LIMIT)
    count: int = Field(ge=1, le=64)
    log: bool = False

    def axis(self) -> Axis:
        if self.log and (self.lo <= 0 or self.hi <= 0):
            raise GdscopeError(f"{self.name}: a log axis needs positive ends")
        space = np.geomspace if self.log else np.linspace
        return Axis(
            self.name, tuple(float(v) for v in space(self.lo, self.hi, self.count)), self.log
        )


class PhaseRequest(Strict):
    data: DataModel = Field(default_factory=DataModel)
    loss: LossModel = Field(default_factory=LossModel)
    function: FunctionModel | None = None
    optimizer: OptimizerModel = Field(default_factory=_default_optimizer)
    x: AxisModel
    y: AxisModel
    metric: Literal[NEURON_METRICS] = DEFAULT_METRIC  # type: ignore[valid-type]
    epochs: int = Field(default=FIGURE.epochs, ge=1, le=500)
    start: tuple[Bounded, Bounded] = FIGURE.start_for(_OBJECTIVE)

    def objective(self) -> LossSpec | TestFunction:
        """The function, when one is given, else the loss on the data."""
        return self.function.spec() if self.function is not None else self.loss.spec()
