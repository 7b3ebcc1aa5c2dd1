"""``gdscope replay``: read the record a gdscope file carries and make the file again.

PNG keeps it in a text chunk, SVG in its metadata, PDF in its Subject; a GIF or MP4 has a
side-car ``.json``. The same record through the same code gives the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gdscope.errors import GdscopeError
from gdscope.jobs.records import DEFAULT_DPI, evaluation_argv, read_record

__all__ = ["read_record", "replay", "strip_outputs"]


_OUTPUT_FLAGS = {"--out": 1, "--force": 0, "--save": 1, "--animate": 1}
EVALUATION_FLAGS = {"--strategy": 1, "--chunk": 1, "--memory-format": 1, "--plan": 1}


def strip_outputs(argv: list[str], flags: dict[str, int] | None = None) -> list[str]:
    """``argv`` without ``--out``/``--save``/``--animate`` and their values, and without
    ``--force`` (or without the given ``flags``: name → number of values)."""
    flags = _OUTPUT_FLAGS if flags is None else flags
    kept, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        name = arg.split("=", 1)[0]
        if name in flags:
            skip = 0 if "=" in arg else flags[name]
            continue
        kept.append(arg)
    return kept


def replay(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    run_argv: Callable[[list[str]], int] | None = None,
) -> Path:
    """Make ``path`` again from its record, into ``out`` (default ``NAME-replay.EXT``).

    A record of kind ``argv`` (a landscape, or a sweep/phase/compare file an older gdscope
    wrote) holds a command line: ``run_argv`` runs it (the CLI passes its ``main``; this layer
    never imports the CLI)."""
    source = Path(path)
    rec = _upgrade(read_record(source))
    target = (
        Path(out) if out is not None else source.with_name(f"{source.stem}-replay{source.suffix}")
    )
    kind = rec.get("kind")
    where = f"{source.name} record"
    if rec.get("interrupted"):  # its finished part cannot be computed again as it was
        raise GdscopeError(f"{source.name} was cut short by Ctrl-C ({rec['interrupted']}); "
                           "replay makes finished files: run its command again")  # fmt: skip
    try:
        if kind == "argv":
            return _replay_argv(rec, source, target, force=force, run_argv=run_argv)
        if kind in _JOBS:
            return _JOBS[kind](rec, target, force, where)
    except KeyError as missing:
        raise GdscopeError(f"{source.name}: its record lacks {missing}") from None
    raise GdscopeError(f"{source.name}: unknown record kind {kind!r}")


def _upgrade(rec: dict[str, Any]) -> dict[str, Any]:
    """Records older versions wrote without a kind: ``gdscope reproduce``'s figures (their dpi
    was not recorded: the default, unless given), and the command lines of studies."""
    if rec.get("kind") is None and "figure" in rec:
        return {**rec, "kind": "figure", "dpi": rec.get("dpi", DEFAULT_DPI)}
    if rec.get("kind") is None and isinstance(rec.get("argv"), list):
        return {**rec, "kind": "argv"}
    return rec


def _plot(rec: dict[str, Any], target: Path, force: bool, where: str) -> Path:
    from gdscope.jobs.plot import make_plot
    from gdscope.jobs.plotconfig import PlotConfig

    config = PlotConfig.from_dict(rec["config"], where=where)
    return make_plot(config, target, title=rec.get("title"), dpi=rec["dpi"], force=force)


def _figure(rec: dict[str, Any], target: Path, force: bool, where: str) -> Path:
    from gdscope.jobs.article import make_article_figure

    return make_article_figure(rec["figure"], target, dpi=rec["dpi"], force=force)


def _animate(rec: dict[str, Any], target: Path, force: bool, where: str) -> Path:
    from gdscope.jobs.plot import make_animation
    from gdscope.jobs.plotconfig import PlotConfig
    from gdscope.render.animation import AnimationOptions

    config = PlotConfig.from_dict(rec["config"], where=where)
    options = AnimationOptions.from_dict(rec["animation"])
    return make_animation(config, target, options=options, title=rec.get("title"), force=force)


def _sweep(rec: dict[str, Any], target: Path, force: bool, where: str) -> Path:
    from gdscope.jobs.studies import make_sweep
    from gdscope.jobs.studyconfig import SweepConfig
    from gdscope.jobs.studyfiles import Outputs

    config = SweepConfig.from_dict(rec["config"], where=where)
    return make_sweep(config, Outputs(target, rec["dpi"], force)).written[0]


def _phase(rec: dict[str, Any], target: Path, force: bool, where: str) -> Path:
    from gdscope.jobs.studies import make_phase
    from gdscope.jobs.studyconfig import PhaseConfig
    from gdscope.jobs.studyfiles import Outputs

    config = PhaseConfig.from_dict(rec["config"], where=where)
    return make_phase(config, Outputs(target, rec["dpi"], force)).written[0]


def _compare(rec: dict[str, Any], target: Path, force: bool, where: str) -> Path:
    from gdscope.jobs.studies import make_compare
    from gdscope.jobs.studyconfig import CompareConfig
    from gdscope.jobs.studyfiles import Outputs

    config = CompareConfig.from_dict(rec["config"], where=where)
    return make_compare(config, Outputs(target, rec["dpi"], force)).written[0]


def _hessian(rec: dict[str, Any], target: Path, force: bool, where: str) -> Path:
    from gdscope.jobs.hessian import HessianJob, make_hessian

    job = HessianJob.from_dict(rec["job"], where=where)
    return make_hessian(job, target, dpi=rec["dpi"], force=force, title=rec.get("title")).written[0]


def _eos(rec: dict[str, Any], target: Path, force: bool, where: str) -> Path:
    from gdscope.jobs.hessian import EOS_DEFAULT, make_eos

    return make_eos(target, data=rec.get("data", EOS_DEFAULT), rates=rec["rates"],
                    steps=rec["steps"], every=rec["every"], dpi=rec["dpi"], force=force,
                    log=lambda _: None).written[0]  # fmt: skip


def _connect(rec: dict[str, Any], target: Path, force: bool, where: str) -> Path:
    from gdscope.jobs.connect import ConnectJob, make_connect

    job = ConnectJob.from_dict(rec["job"], where=where)
    made = make_connect(job, target, dpi=rec["dpi"], force=force, title=rec.get("title"))
    if not made.written:  # Ctrl-C while the curve trained
        raise KeyboardInterrupt
    return made.written[-1]  # (the figure)


def _curves(rec: dict[str, Any], target: Path, force: bool, where: str) -> Path:
    from gdscope.jobs.board import make_curves

    return make_curves(rec, target, force=force)


_JOBS: dict[str, Callable[[dict[str, Any], Path, bool, str], Path]] = {
    "plot": _plot, "figure": _figure, "animate": _animate, "sweep": _sweep, "phase": _phase,
    "compare": _compare, "hessian": _hessian, "eos": _eos, "connect": _connect,
    "curves": _curves,
}  # fmt: skip


def _replay_argv(
    rec: dict[str, Any],
    source: Path,
    target: Path,
    *,
    force: bool,
    run_argv: Callable[[list[str]], int] | None,
) -> Path:
    """Re-run the recorded command line, with the evaluation the original chose."""
    if run_argv is None:
        raise GdscopeError(
            f"{source.name}: its record is a command line: replay it with `gdscope replay` "
            "(or pass run_argv=gdscope.cli.main.main)"
        )
    from gdscope.files import check_unchanged

    for file, sha256 in rec.get("sha256", {}).items():  # the files it read, pinned
        check_unchanged(file, sha256)
    argv = [*strip_outputs(list(rec["argv"])), "--out", str(target)]
    chosen = rec.get("evaluation")
    if chosen:  # evaluate as the original did (auto's choice depended on timing);
        # the record's argv holds none of these flags (the CLI strips them)
        argv += evaluation_argv(chosen)
    if force:
        argv.append("--force")
    with contextlib.redirect_stdout(io.StringIO()):  # the command prints what it wrote: the
        code = run_argv(argv)  # replay's caller says it once
    if code != 0:
        raise GdscopeError(f"re-running {' '.join(rec['argv'][:1])} failed")
    return target
