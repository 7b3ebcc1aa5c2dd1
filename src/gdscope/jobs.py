"""Whole jobs behind the CLI, callable from Python: compute, render, save with the record that
``replay`` needs embedded in the file (or beside it, for animations)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from . import __version__
from .animation import AnimationOptions, Animator, animation_format, write_animation
from .config import PlotConfig
from .figures import build_plot, run_config
from .output import save_figure, write_text

__all__ = ["make_animation", "make_article_figure", "make_plot", "sidecar"]


def _record(kind: str, **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "gdscope": __version__, **fields}


def make_plot(
    config: PlotConfig,
    out: str | os.PathLike[str],
    *,
    title: str | None = None,
    dpi: float = 110,
    force: bool = False,
) -> Path:
    """Draw ``config`` (``gdscope plot``) into ``out`` (.png/.svg/.pdf)."""
    drawn = build_plot(config, title=title)
    record = _record("plot", config=config.to_dict(), title=title, dpi=dpi)
    return save_figure(drawn.figure, out, force=force, dpi=dpi, config=record)


def make_article_figure(
    key: str, out: str | os.PathLike[str], *, dpi: float = 110, force: bool = False
) -> Path:
    """One of the article's figures (``gdscope figure``)."""
    from .article import article_figure, draw_article_figure

    spec = article_figure(key)
    fig = draw_article_figure(spec)
    record = _record("figure", figure=spec.key, config=spec.config.to_dict(), dpi=dpi)
    return save_figure(fig, out, force=force, dpi=dpi, config=record)


def sidecar(path: str | os.PathLike[str]) -> Path:
    """Where an animation's record lives: ``movie.gif`` → ``movie.gif.json``."""
    target = Path(path)
    return target.with_name(target.name + ".json")


def make_animation(
    config: PlotConfig,
    out: str | os.PathLike[str],
    *,
    options: AnimationOptions | None = None,
    title: str | None = None,
    force: bool = False,
) -> Path:
    """Animate ``config``'s paths (``gdscope animate``) into ``out`` (.gif/.mp4) and write the
    record beside it (``sidecar``). Both files are checked before any work is done."""
    from .errors import GdscopeError

    options = options or AnimationOptions()
    animation_format(out)
    side = sidecar(out)
    for target in (Path(out), side):
        if not force and target.exists():
            raise GdscopeError(f"{target} already exists; pass --force to overwrite it")
    if not config.path:
        raise GdscopeError("an animation shows the paths; drop --no-path")
    if config.view == "surface":
        raise GdscopeError("animations draw heatmap or contour views")
    _, landscapes, trajectories = run_config(config)
    animator = Animator(
        landscapes, [[t] for t in trajectories], options=options, log=config.log,
        kind=config.view, effective=config.effective, title=title,
    )  # fmt: skip
    path = write_animation(animator.frames(), out, fps=options.fps, force=force)
    record = _record("animate", config=config.to_dict(), animation=options.to_dict(), title=title)
    write_text(side, json.dumps(record, sort_keys=True, indent=1), force=force)
    return path
