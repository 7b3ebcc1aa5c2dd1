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
from .sgd import SGDConfig
from .train import ARTICLE_START, check_epochs, check_start

__all__ = ["PlotConfig"]


@dataclass(frozen=True)
class PlotConfig:
    """One figure: the data, the losses (one panel each), SGD, the grid and display options."""

    data: DataSpec = field(default_factory=DataSpec)
    losses: tuple[LossSpec, ...] = ARTICLE_LOSSES
    sgd: SGDConfig = field(default_factory=SGDConfig)
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
        default_sgd = SGDConfig()
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            value = getattr(self.sgd, name)
            if value != getattr(default_sgd, name):
                args += [f"--{name.replace('_', '-')}", f"{value!r}"]
        args += [f"--{name}" for name in ("nesterov", "maximize") if getattr(self.sgd, name)]
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
