"""Curvature jobs: ``gdscope hessian`` (a model's spectrum, figure and JSON, with records) and
``gdscope example eos`` (full-batch gradient descent at the edge of stability)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from gdscope import interrupts
from gdscope.devices import resolve_device, torch_threads
from gdscope.errors import GdscopeError, unknown
from gdscope.files import (
    check_target,
    check_unchanged,
    content_sha256,
    make_folder,
    record_json,
    save_figure,
    write_text,
)
from gdscope.jobs.landscape import DEFAULT_LOSS, fresh_model, load_parts, users_code
from gdscope.jobs.records import DEFAULT_DPI, record
from gdscope.nets.curvature import CurvatureOptions, Spectrum, curvature
from gdscope.nets.plane import materialize
from gdscope.nets.recorder import RecordedPath
from gdscope.nets.sharpness import SharpnessTrace

__all__ = [
    "EOS_DATA",
    "EOS_DEFAULT",
    "EOS_RATES",
    "EosData",
    "EosOutput",
    "HessianJob",
    "HessianOutput",
    "draw_sharpness",
    "draw_spectrum",
    "eos_median",
    "make_eos",
    "make_hessian",
    "run_hessian",
]


@dataclass(frozen=True)
class HessianJob:
    """What ``gdscope hessian`` computes: the model, data and loss to import
    (``module:function``), the checkpoint to load (and the SHA-256 of the one to load, if
    pinned: a replay reads the very same weights), the device, float64 or not, and the
    ``curvature`` options (what to compute, on how many samples, in which mode)."""

    model: str
    data: str
    loss: str = DEFAULT_LOSS
    checkpoint: Path | None = None
    checkpoint_sha256: str | None = None
    device: str = "cpu"
    double: bool = False
    curvature: CurvatureOptions = field(default_factory=CurvatureOptions)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["checkpoint"] = str(self.checkpoint) if self.checkpoint is not None else None
        out["curvature"] = self.curvature.to_dict()
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, where: str = "job") -> HessianJob:
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise GdscopeError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        try:
            options = CurvatureOptions(**raw.get("curvature", {}))
        except TypeError as error:
            raise GdscopeError(f"{where}: {error}") from None
        checkpoint = raw.get("checkpoint")
        rest = {k: v for k, v in raw.items() if k not in ("curvature", "checkpoint")}
        try:
            return cls(**rest, checkpoint=Path(checkpoint) if checkpoint else None,
                       curvature=options)  # fmt: skip
        except TypeError as error:  # a required field is missing
            raise GdscopeError(f"{where}: {error}") from None


def run_hessian(job: HessianJob, *, progress: Callable[[int, int], None] | None = None
                ) -> Spectrum:  # fmt: skip
    """Import the job's model, data and loss, load the checkpoint, compute the curvature."""
    make_model, make_data, loss_fn = load_parts(job.model, job.data, job.loss)
    device = resolve_device(job.device)
    dtype = torch.float64 if job.double else None
    if job.checkpoint is not None:
        check_unchanged(job.checkpoint, job.checkpoint_sha256)
    with users_code(f"the curvature of {job.model} on {job.data} with loss {job.loss}"):
        model = fresh_model(make_model, job.checkpoint).to(device=device, dtype=dtype)
        batches = materialize(make_data(), device)
        if job.double:
            batches = [(x.double() if x.is_floating_point() else x,
                        y.double() if y.is_floating_point() else y)
                       for x, y in batches]  # fmt: skip
        return curvature(model, batches, loss_fn, options=job.curvature, progress=progress)


def draw_spectrum(spectrum: Spectrum, *, title: str | None = None) -> Figure:
    """The spectrum figure (``render.spectrum``)."""
    from gdscope.render.spectrum import plot_spectrum

    fig = Figure(figsize=(7, 4.8))
    ax = fig.add_subplot()
    plot_spectrum(spectrum, ax=ax)
    ax.set_title(title or "Hessian spectrum of the loss")
    fig.tight_layout()
    return fig


@dataclass(frozen=True, eq=False)
class HessianOutput:
    """What ``make_hessian`` computed and wrote; ``spectrum.interrupted``: Ctrl-C stopped it
    and the files hold what finished."""

    spectrum: Spectrum
    written: tuple[Path, ...]


def make_hessian(
    job: HessianJob,
    out: Path,
    *,
    save: Path | None = None,
    dpi: float = DEFAULT_DPI,
    force: bool = False,
    title: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    wrote: Callable[[Path], None] | None = None,
) -> HessianOutput:
    """Compute the spectrum, save ``save`` (JSON, with the record inside) and the figure
    ``out`` (with its record). Ctrl-C keeps what finished (nothing finished: nothing written)."""
    check_target(out, force=force)
    if save is not None:
        if save.suffix.lower() != ".json":
            raise GdscopeError(f"save takes a .json file, got {save.name!r}", settings=["save"])
        check_target(save, force=force)
    if job.checkpoint is not None and job.checkpoint_sha256 is None:
        job = replace(job, checkpoint_sha256=content_sha256(job.checkpoint))  # the record pins it
    spectrum = run_hessian(job, progress=progress)
    if not len(spectrum.eigenvalues):
        raise KeyboardInterrupt  # Ctrl-C before a single eigenvalue: nothing to write
    cut = "the spectrum as far as it got" if spectrum.interrupted else None
    rec = record("hessian", job=job.to_dict(), dpi=dpi, title=title, interrupted=cut)
    written = []
    with interrupts.deferred():  # what finished is written even if Ctrl-C comes now
        if save is not None:
            text = record_json({**spectrum.to_dict(), "record": rec})
            written.append(write_text(save, text, force=force))
            if wrote is not None:
                wrote(written[-1])
        written.append(save_figure(draw_spectrum(spectrum, title=title), out, force=force,
                                   dpi=dpi, config=rec))  # fmt: skip
        if wrote is not None:
            wrote(written[-1])
    return HessianOutput(spectrum, tuple(written))


def draw_sharpness(
    runs: Sequence[tuple[str, SharpnessTrace | RecordedPath]],
    *,
    losses: Sequence[np.ndarray] | None = None,
    title: str | None = None,
) -> Figure:
    """Sharpness against step for each ``(label, trace or recorded path)`` with its stability
    threshold, and, given ``losses`` (one array per run), the training loss beside it."""
    from gdscope.render.edge import plot_sharpness, plot_training_loss

    traces = []
    for label, run in runs:
        trace = run.sharpness if isinstance(run, RecordedPath) else run
        if trace is None:
            raise GdscopeError(f"{label}: the path has no sharpness (Recorder(sharpness_every=N))")
        traces.append((label, trace))
    fig = Figure(figsize=(12 if losses is not None else 6.5, 4.8))
    columns = 2 if losses is not None else 1
    if losses is not None:
        ax = fig.add_subplot(1, 2, 1)
        named = [label for label, _ in traces]
        plot_training_loss(list(zip(named, losses, strict=True)), ax=ax)
    ax = fig.add_subplot(1, columns, columns)
    plot_sharpness(traces, ax=ax)
    ax.set_title(title or "sharpness against the stability threshold")
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class EosData:
    """One data set of ``gdscope example eos``: what it is (``about``, for the log and the
    caption), its learning ``rates`` (each starts below its edge 2/η and sharpens until it
    reaches it), and its data and model (``gdscope.examples.eos``'s functions, by name)."""

    about: str
    rates: tuple[float, ...]
    data: str
    model: str


EOS_DATA = {
    "synthetic": EosData("a 2-64-64-64-64-3 tanh MLP on the three-class spiral (600 points)",
                         (0.2, 0.3, 0.4), "make_data", "make_model"),
    "digits": EosData("a 64-64-64-64-10 tanh MLP on 1,000 training images of scikit-learn's "
                      "digits", (0.5, 1.0, 1.5), "make_digits_data", "make_digits_model"),
}  # fmt: skip
"""The data sets ``gdscope example eos --data`` offers, the first the default. The spiral's
network starts at a sharpness near 2.3, the digits' near 1.05 (below 2/1.5 = 1.33)."""
EOS_DEFAULT = next(iter(EOS_DATA))
EOS_RATES = EOS_DATA[EOS_DEFAULT].rates
"""The learning rates of ``gdscope example eos`` on its default data."""

EOS_STEPS, EOS_EVERY = 2000, 50
"""How long ``gdscope example eos`` trains and how often it measures the sharpness: every run
reaches its edge within about 600 steps, so the second half (what the docs' medians and the
slow test read) is at the edge."""


def eos_median(trace: SharpnessTrace) -> float:
    """The median sharpness over the second half of a run: at the edge, if it got there."""
    return float(np.median(trace.values[len(trace.values) // 2 :, 0]))


def _eos_caption(setup: EosData, runs: Sequence[tuple[float, SharpnessTrace, np.ndarray]],
                 steps: int) -> str:  # fmt: skip
    """What was trained and each rate's measured median against 2/η (not the time it took:
    a replay draws the same bytes; the log says it)."""
    medians = "; ".join(f"η = {lr:g}: {eos_median(trace):.3g} against 2/η = {2 / lr:.3g}"
                        for lr, trace, _ in runs)  # fmt: skip
    return (f"Full-batch GD on {setup.about}, MSE on one-hot targets, {steps} steps. Median "
            f"sharpness over the second half: {medians}.")  # fmt: skip


@dataclass(frozen=True, eq=False)
class EosOutput:
    runs: list[tuple[float, SharpnessTrace, np.ndarray]]
    written: tuple[Path, ...]


def _eos_runs(
    rates: Sequence[float], steps: int, every: int, log: Callable[[str], None], setup: EosData
) -> list[tuple[float, SharpnessTrace, np.ndarray]]:
    """Full-batch gradient descent from the same start at each rate, sharpness measured."""
    from gdscope.examples import eos
    from gdscope.nets.fit import fit

    data = getattr(eos, setup.data)()
    runs = []
    with torch_threads(1), interrupts.polled():
        for lr in rates:
            if interrupts.requested():
                break
            model = getattr(eos, setup.model)()
            result = fit(model, [data], nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=lr),
                         epochs=steps, every=steps, sharpness_every=every,
                         should_stop=interrupts.requested)  # fmt: skip
            if result.stopped or interrupts.requested():
                break  # an unfinished run is left out: its sharpness stops mid-way
            trace = result.path.sharpness
            assert trace is not None
            runs.append((lr, trace, result.losses))
            log(f"eos: lr {lr:g}: sharpness {trace.values[0, 0]:.3g} at the start, "
                f"{eos_median(trace):.3g} (median of the second half) against the threshold "
                f"{trace.threshold[-1]:.3g} ({trace.rule})")  # fmt: skip
    return runs


def make_eos(
    out: Path,
    *,
    data: str = EOS_DEFAULT,
    rates: Sequence[float] | None = None,
    steps: int = EOS_STEPS,
    every: int = EOS_EVERY,
    dpi: float = DEFAULT_DPI,
    force: bool = False,
    log: Callable[[str], None] = print,
    wrote: Callable[[Path], None] | None = None,
) -> EosOutput:
    """Train ``gdscope.examples.eos``'s network for ``data`` (a name of ``EOS_DATA``) with
    full-batch GD at each rate (default: the data's) and draw the training loss beside the
    sharpness with 2/η: the figure ``out/eos.png`` (``out/eos-digits.png`` for the digits;
    with its record) and the curves beside it as JSON. Its caption says what was trained,
    each rate's median sharpness over the second half against 2/η; the log, the run time. A
    Ctrl-C keeps the runs that finished."""
    setup = EOS_DATA.get(data)
    if setup is None:
        raise unknown("eos data", data, EOS_DATA)
    rates = setup.rates if rates is None else tuple(rates)
    stem = "eos" if data == EOS_DEFAULT else f"eos-{data}"
    if out.suffix:  # the figure itself (replay), else a directory
        figure, data_file = out, None
    else:
        make_folder(out)
        figure, data_file = out / f"{stem}.png", out / f"{stem}.json"
    for target in (figure, data_file):
        if target is not None:
            check_target(target, force=force)
    began = time.perf_counter()
    runs = _eos_runs(rates, steps, every, log, setup)
    if not runs:
        raise KeyboardInterrupt
    log(f"eos: full-batch GD on {setup.about}: {time.perf_counter() - began:.0f} s on this "
        "CPU (one thread)")  # fmt: skip
    # After Ctrl-C the record names the rates drawn, so replay re-makes this figure.
    rec = record("eos", data=data, rates=[lr for lr, _, _ in runs], steps=steps, every=every,
                 dpi=dpi)  # fmt: skip
    labels = [f"GD, η = {lr:g}" for lr, _, _ in runs]
    fig = draw_sharpness(list(zip(labels, (t for _, t, _ in runs), strict=True)),
                         losses=[loss for _, _, loss in runs],
                         title="sharpness rises to 2/η and hovers there")  # fmt: skip
    fig.subplots_adjust(bottom=0.25)
    fig.text(0.01, 0.01, _eos_caption(setup, runs, steps), fontsize=8, va="bottom",
             wrap=True)  # fmt: skip
    written = []
    with interrupts.deferred():
        if data_file is not None:
            curves = [{"lr": lr, "sharpness": trace.to_dict(), "loss": loss.tolist()}
                      for lr, trace, loss in runs]  # fmt: skip
            text = record_json({"record": rec, "runs": curves})
            written.append(write_text(data_file, text, force=force))
            if wrote is not None:
                wrote(written[-1])
        written.append(save_figure(fig, figure, force=force, dpi=dpi, config=rec))
        if wrote is not None:
            wrote(written[-1])
    return EosOutput(runs, tuple(written))
