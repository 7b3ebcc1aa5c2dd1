"""The study jobs behind ``gdscope sweep``, ``phase`` and ``compare``: run the study, draw it,
save the figure (with its record, so ``replay`` can make it again) and the results file.

Each job takes a typed, frozen config (``jobs.studyconfig``) and its ``Outputs``
(``jobs.studyfiles``); a network's study runs its twin in ``jobs.networkjobs``. The record a
figure carries is ``record(kind, config=config.to_dict(), dpi=dpi)`` (a comparison's also holds
the versions and seed it ran with, ``result``).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from gdscope import interrupts
from gdscope.files import record_json, write_text
from gdscope.jobs.networkjobs import check_backend, network_compare, network_phase, network_sweep
from gdscope.jobs.records import record
from gdscope.jobs.studyconfig import (
    CompareConfig,
    PhaseConfig,
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

__all__ = ["make_compare", "make_phase", "make_sweep"]


def make_sweep(
    config: SweepConfig,
    outputs: Outputs,
    *,
    progress: Progress | None = None,
    backend: RayPool | None = None,
) -> StudyOutput:
    """Run every combination along the reference grid and draw one panel each (a network's:
    every configuration's loss curve). ``backend``: see ``networkjobs.check_backend``."""
    from gdscope.render.studycharts import plot_small_multiples
    from gdscope.studies.sweep import run_grid

    if config.network is not None:
        return network_sweep(config, config.network, outputs, progress, backend)
    check_backend(config, backend)
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
        return StudyOutput(run, save_grid_study(fig, "sweep", config, outputs, run))


def make_phase(
    config: PhaseConfig,
    outputs: Outputs,
    *,
    progress: Progress | None = None,
    backend: RayPool | None = None,
) -> StudyOutput:
    """Run the phase grid in chunks (Ctrl-C keeps the finished ones) and draw ``metric``.
    ``backend``: see ``networkjobs.check_backend``."""
    from gdscope.render.studycharts import hatch_unfinished, plot_phase
    from gdscope.studies.phase import analytic_stable, phase_diagram

    if config.network is not None:
        return network_phase(config, config.network, outputs, progress, backend)
    check_backend(config, backend)
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
            hatch_unfinished(ax, drawn.mesh, run, kept=kept(run))
        fig.tight_layout()
        return StudyOutput(run, save_grid_study(fig, "phase", config, outputs, run))


def make_compare(
    config: CompareConfig, outputs: Outputs, *, backend: RayPool | None = None
) -> CompareOutput:
    """Tune and score each optimizer, draw the winners' paths, and with ``save`` write every
    tried setting's score as JSON. ``backend``: see ``networkjobs.check_backend``."""
    from gdscope.render.studycharts import plot_shootout
    from gdscope.studies.shootout import DEFAULT_LR, compare

    if config.network is not None:
        return network_compare(config, config.network, outputs, backend)
    check_backend(config, backend)
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
                "record": rec,  # what made it (the board's PNG of it carries it)
            }
            written.append(write_text(outputs.save, record_json(payload), force=outputs.force))
    return CompareOutput(result, tuple(written))


def _show(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    return f"{float(value):.4g}"  # type: ignore[arg-type]
