"""The studies ``gdscope example NAME`` draws for its network: a phase diagram and a shoot-out,
sized per example (``EXAMPLE_STUDIES``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gdscope import interrupts
from gdscope.jobs.studies import make_compare, make_phase
from gdscope.jobs.studyconfig import (
    CompareConfig,
    NetworkSpec,
    PhaseConfig,
    RunSettings,
)
from gdscope.jobs.studyfiles import (
    Outputs,
    Progress,
)

__all__ = ["EXAMPLE_STUDIES", "ExampleStudies", "example_studies", "example_study_files"]


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
