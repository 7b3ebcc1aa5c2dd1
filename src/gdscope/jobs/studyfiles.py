"""Where a study job writes and what it hands back: ``Outputs`` (the figure with its record, the
``--save`` file, the resume file), ``StudyOutput``/``CompareOutput``, and what an interrupted
study kept, in words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from gdscope.files import save_figure
from gdscope.jobs.records import DEFAULT_DPI, record
from gdscope.jobs.studyconfig import PhaseConfig, SweepConfig
from gdscope.studies.netstudy import NetRun, NetShootout
from gdscope.studies.shootout import Shootout
from gdscope.studies.sweep import GridRun

__all__ = [
    "CompareOutput",
    "Outputs",
    "Progress",
    "StudyOutput",
    "kept",
    "kept_optimizers",
    "save_grid_study",
]

Progress = Callable[[int, int], None]
"""``progress(done, total)``: a study's progress callback."""


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


def save_grid_study(
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
    rec = record(kind, config=config.to_dict(), dpi=outputs.dpi, interrupted=cut)
    written = [outputs.figure(fig, rec)]
    if outputs.save is not None:
        written.append(save_grid(run, outputs.save, force=outputs.force, record=rec))
    return tuple(written)
