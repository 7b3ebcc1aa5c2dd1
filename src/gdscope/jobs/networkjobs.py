"""The study jobs' twins for a network (``--model``): train its copies over the grid or tune
each optimizer on it (``studies.netstudy``), draw, and save as the 2-D jobs do.
"""

from __future__ import annotations

from dataclasses import replace

from matplotlib.figure import Figure

from gdscope import interrupts
from gdscope.errors import GdscopeError
from gdscope.files import record_json, write_text
from gdscope.jobs.landscape import users_code
from gdscope.jobs.records import record
from gdscope.jobs.studyconfig import (
    CompareConfig,
    NetworkSpec,
    PhaseConfig,
    RunSettings,
    SweepConfig,
    sweep_axes,
)
from gdscope.jobs.studyfiles import (
    CompareOutput,
    Outputs,
    Progress,
    StudyOutput,
    kept,
    kept_optimizers,
    save_grid_study,
)
from gdscope.raypool import RayPool
from gdscope.studies.netstudy import NetRun
from gdscope.studies.sweep import Axis

__all__ = ["check_backend", "network_compare", "network_phase", "network_run", "network_sweep"]


def check_backend(config: SweepConfig | PhaseConfig | CompareConfig,
                     backend: RayPool | None) -> None:  # fmt: skip
    """A Ray ``backend`` trains a ``--model`` study's chunks on a cluster; it is not part of
    the config (nor the record: a replay runs locally, with equal results). The 2-D studies
    run where they are called, so one is refused for them."""
    if backend is not None and config.network is None:
        raise GdscopeError(
            "a Ray backend runs a network's study (model); drop backend", settings=["backend"]
        )


def network_run(
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


def network_phase(
    config: PhaseConfig,
    network: NetworkSpec,
    outputs: Outputs,
    progress: Progress | None,
    backend: RayPool | None,
) -> StudyOutput:
    """A network's phase diagram: the metric, the measured border (where copies diverged),
    and a note that the analytic border (SGD on a quadratic) does not apply."""
    from gdscope.render.studycharts import hatch_unfinished, plot_phase

    x, y = config.axes()
    run = network_run(config, network, (y, x), outputs, progress, backend)
    if not run.completed.any():
        return StudyOutput(run, ())
    with interrupts.deferred():
        fig = Figure(figsize=(8, 6.5))
        ax = fig.subplots()
        drawn = plot_phase(run, config.metric, ax=ax, mark=config.mark)
        if run.interrupted:
            hatch_unfinished(ax, drawn.mesh, run, kept=kept(run))
        fig.tight_layout()
        return StudyOutput(run, save_grid_study(fig, "phase", config, outputs, run))


def network_sweep(
    config: SweepConfig,
    network: NetworkSpec,
    outputs: Outputs,
    progress: Progress | None,
    backend: RayPool | None,
) -> StudyOutput:
    """A network's sweep: every configuration's training-loss curve, one panel each."""
    from gdscope.render.studycharts import plot_loss_curves

    axes = tuple(sweep_axes(config.vary))
    run = network_run(config, network, axes, outputs, progress, backend)
    if not run.completed.any():
        return StudyOutput(run, ())
    with interrupts.deferred():
        fig = plot_loss_curves(run, fig=Figure(), log=config.log)
        if run.interrupted:
            fig.suptitle(f"{kept(run)}; the others are not shown", y=0.02, fontsize=8)
        return StudyOutput(run, save_grid_study(fig, "sweep", config, outputs, run))


def network_compare(
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
                # each winner's mini-batch loss per step (the board draws it), and the record
                "curves": {name: run.losses[result.winner(name)].tolist()
                           for name, run in result.runs.items()},
                "record": rec,
            }  # fmt: skip
            written.append(write_text(outputs.save, record_json(payload), force=outputs.force))
    return CompareOutput(result, tuple(written))
