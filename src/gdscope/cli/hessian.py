"""``gdscope hessian``: the curvature of your own model (computed by ``gdscope.jobs.hessian``):
its top Hessian eigenvalues, trace and spectral density, as a figure and JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gdscope.cli import options
from gdscope.cli.landscape import add_model_options
from gdscope.cli.options import EXIT_INTERRUPTED, IMAGE_FILE, integer, number
from gdscope.errors import GdscopeError
from gdscope.nets.curvature import CurvatureOptions

if TYPE_CHECKING:
    from gdscope.cli.options import Subparsers

__all__ = ["COMMANDS", "add_parser", "run"]


def add_parser(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "hessian", help="your model's Hessian: top eigenvalues, trace, spectral density"
    )
    add_model_options(parser, path=False)
    given = CurvatureOptions()  # every default is CurvatureOptions'
    parser.add_argument("--top", type=integer, default=given.top,
                        help=f"top eigenvalues (default {given.top})")  # fmt: skip
    parser.add_argument(
        "--tol",
        type=number,
        default=given.tol,
        help=f"each eigenvalue's relative tolerance (default {given.tol:g})",
    )
    parser.add_argument("--steps", type=integer, default=given.steps,
                        help=f"Lanczos steps at most (default {given.steps})")  # fmt: skip
    parser.add_argument("--trace", action="store_true", help="Hutchinson's trace estimate")
    parser.add_argument("--trace-samples", type=integer, default=given.trace_samples,
                        help=f"its vectors (default {given.trace_samples})")  # fmt: skip
    parser.add_argument("--density", action="store_true", help="the spectral density (SLQ)")
    parser.add_argument("--density-runs", type=integer, default=given.density_runs,
                        help=f"its Lanczos runs (default {given.density_runs})")  # fmt: skip
    parser.add_argument("--density-steps", type=integer, default=given.density_steps,
                        help=f"steps per run (default {given.density_steps})")  # fmt: skip
    parser.add_argument("--samples", type=integer, help="use the first N samples of the data")
    parser.add_argument("--train", action="store_true",
                        help="train mode (batch statistics, a fixed dropout mask)")  # fmt: skip
    parser.add_argument("--seed", type=integer, default=given.seed,
                        help="seed of the random vectors")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    parser.add_argument("--double", action="store_true", help="compute in float64")
    parser.add_argument("--title", help="figure title (default: what was computed)")
    parser.add_argument("--save", type=Path, help="the numbers as JSON (with the record)")
    options.add_output_options(parser, what=IMAGE_FILE)


def _hessian(ns: argparse.Namespace) -> int:
    from gdscope.jobs.hessian import HessianJob, make_hessian
    from gdscope.render.spectrum import spectrum_summary

    if ns.model is None or ns.data is None:  # (landscape's options may make them optional)
        raise GdscopeError("gdscope hessian needs --model and --data")
    options.check_outputs(ns, saves=(".json",))
    curvature = CurvatureOptions(
        top=ns.top, tol=ns.tol, steps=ns.steps, trace=ns.trace, trace_samples=ns.trace_samples,
        density=ns.density, density_runs=ns.density_runs, density_steps=ns.density_steps,
        samples=ns.samples, train=ns.train, seed=ns.seed,
    )  # fmt: skip
    job = HessianJob(model=ns.model, data=ns.data, loss=ns.loss, checkpoint=ns.checkpoint,
                     device=ns.device, double=ns.double, curvature=curvature)  # fmt: skip
    update, close = options.progress("hessian", unit="hvp")
    try:
        output = make_hessian(job, ns.out, save=ns.save, dpi=ns.dpi, force=ns.force,
                              title=ns.title, progress=update, wrote=options.wrote)  # fmt: skip
    finally:
        close()
    sys.stderr.write(spectrum_summary(output.spectrum) + "\n")
    spectrum = output.spectrum
    if spectrum.interrupted:
        kept = [f"the top {len(spectrum.eigenvalues)} eigenvalue(s)"]
        if spectrum.trace is not None:
            kept.append(f"the trace over {spectrum.trace_samples} vectors")
        if spectrum.density is not None:
            kept.append(f"the density of {len(spectrum.density.nodes)} run(s)")
        print(f"gdscope: interrupted: kept {', '.join(kept)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


_RUN = {"hessian": _hessian}
COMMANDS = tuple(_RUN)


def run(ns: argparse.Namespace) -> int:
    return _RUN[ns.command](ns)
