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
from .figures import plot_results, run_config
from .output import check_target, save_figure, write_text

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
    save: str | os.PathLike[str] | None = None,
) -> Path:
    """Draw ``config`` (``gdscope plot``) into ``out`` (.png/.svg/.pdf); with ``save``, also
    write its paths there (.csv/.json/.npz, ``save_trajectories``)."""
    from .export import save_trajectories

    data, landscapes, trajectories = run_config(config)
    drawn = plot_results(config, data, landscapes, trajectories, title=title)
    record = _record("plot", config=config.to_dict(), title=title, dpi=dpi)
    path = save_figure(drawn.figure, out, force=force, dpi=dpi, config=record)
    if save is not None:
        save_trajectories(trajectories, save, force=force, config=config.to_dict())
    return path


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
    for target in (out, sidecar(out)):
        check_target(target, force=force)
    if not config.path:
        raise GdscopeError("an animation shows the paths; drop --no-path")
    _, landscapes, trajectories = run_config(config)
    animator = Animator(
        landscapes, [[t] for t in trajectories], options=options, log=config.log,
        kind=config.view, effective=config.effective, title=title,
    )  # fmt: skip
    path = write_animation(animator.frames(), out, fps=options.fps, force=force)
    record = _record("animate", config=config.to_dict(), animation=options.to_dict(), title=title)
    write_text(sidecar(out), json.dumps(record, sort_keys=True, indent=1), force=force)
    return path
