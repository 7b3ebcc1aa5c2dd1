"""``PlotConfig``: everything that determines a landscape-and-path figure, as one typed value.

The CLI parses into it, figures are built from it, and it can say which command re-makes it.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from .data import DataSpec
from .landscape import ARTICLE_GRID, Grid
from .losses import ARTICLE_LOSSES, LossSpec
from .optimizers import OptimizerSpec, SchedulerSpec
from .sgd import SGDConfig
from .train import ARTICLE_START, check_epochs, check_start

__all__ = ["PlotConfig"]


@dataclass(frozen=True)
class PlotConfig:
    """One figure: the data, the losses (one panel each), SGD, the grid and display options."""

    data: DataSpec = field(default_factory=DataSpec)
    losses: tuple[LossSpec, ...] = ARTICLE_LOSSES
    optimizer: OptimizerSpec = field(default_factory=lambda: SGDConfig().spec())
    scheduler: SchedulerSpec | None = None
    epochs: int = 100
    start: tuple[float, float] = ARTICLE_START
    grid: Grid = ARTICLE_GRID
    log: bool = False
    effective: bool = False
    path: bool = True

    def __post_init__(self) -> None:
        check_epochs(self.epochs)
        object.__setattr__(self, "start", check_start(self.start))
        object.__setattr__(self, "losses", tuple(self.losses))
        if not self.losses:
            raise ValueError("at least one loss is needed")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary of every setting."""
        out = asdict(self)
        out["optimizer"] = {"name": self.optimizer.name, **self.optimizer.kwargs()}
        if self.scheduler is not None:
            out["scheduler"] = {"name": self.scheduler.name, **self.scheduler.kwargs()}
        out["losses"] = [asdict(loss) for loss in self.losses]
        out["start"] = list(self.start)
        out["grid"] = {
            "w_range": list(self.grid.w_range),
            "b_range": list(self.grid.b_range),
            "w_size": self.grid.w_size,
            "b_size": self.grid.b_size,
        }
        return out

    def cli_args(self) -> list[str]:
        """Arguments of ``gdscope plot`` that re-make this figure (defaults left out)."""
        args: list[str] = []
        names = [loss.name for loss in self.losses]
        args += (
            ["--loss", "all"] if names == [x.name for x in ARTICLE_LOSSES] else ["--loss", *names]
        )
        huber = next((x.delta for x in self.losses if x.name == "huber"), 1.0)
        beta = next((x.beta for x in self.losses if x.name == "smoothl1"), 1.0)
        if huber != 1.0:
            args += ["--huber-delta", f"{huber!r}"]
        if beta != 1.0:
            args += ["--smoothl1-beta", f"{beta!r}"]
        args += _optimizer_args(self.optimizer, self.scheduler)
        if self.epochs != 100:
            args += ["--epochs", str(self.epochs)]
        if self.start != ARTICLE_START:
            args += ["--start", f"{self.start[0]!r}", f"{self.start[1]!r}"]
        data = DataSpec()
        if self.data.seed != data.seed:
            args += ["--seed", str(self.data.seed)]
        if self.data.n != data.n:
            args += ["--n", str(self.data.n)]
        coefs = (self.data.quadratic, self.data.linear, self.data.constant)
        if coefs != (data.quadratic, data.linear, data.constant):
            args += ["--coefficients", *(f"{c!r}" for c in coefs)]
        if self.data.noise != data.noise:
            args += ["--noise", f"{self.data.noise!r}"]
        grid = self.grid
        if grid.w_size != ARTICLE_GRID.w_size or grid.b_size != ARTICLE_GRID.b_size:
            args += ["--grid-size", str(grid.w_size)]
            if grid.b_size != grid.w_size:
                args += [str(grid.b_size)]
        if grid.w_range != ARTICLE_GRID.w_range:
            args += ["--w-range", *(f"{v!r}" for v in grid.w_range)]
        if grid.b_range != ARTICLE_GRID.b_range:
            args += ["--b-range", *(f"{v!r}" for v in grid.b_range)]
        args += [
            flag for flag, on in (("--log-color", self.log), ("--effective", self.effective)) if on
        ]
        if not self.path:
            args += ["--no-path"]
        return args

    def command(self, out: str) -> str:
        """The shell command that re-makes this figure into ``out``."""
        return shlex.join(["gdscope", "plot", *self.cli_args(), "--out", out])


def _optimizer_args(optimizer: OptimizerSpec, scheduler: SchedulerSpec | None) -> list[str]:
    """SGD as its own flags (``--lr 0.1 --momentum 0.9``), others as ``--optimizer/--opt``."""
    args: list[str] = []
    kwargs = optimizer.kwargs()
    if optimizer.name == "sgd":
        default = SGDConfig()
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            if name in kwargs and kwargs[name] != getattr(default, name):
                args += [f"--{name.replace('_', '-')}", f"{kwargs[name]!r}"]
        args += [f"--{name}" for name in ("nesterov", "maximize") if kwargs.get(name)]
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
