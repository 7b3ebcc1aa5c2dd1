"""``gdscope reproduce``: every article figure into a folder, with an ``index.html`` gallery."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from gdscope import interrupts
from gdscope.errors import GdscopeError
from gdscope.files import FIGURE_FORMATS, check_folder, figure_format, make_folder, write_text
from gdscope.jobs.article import (
    ARTICLE_FIGURES,
    ArticleFigure,
    draw_article_figure,
    save_article_figure,
)
from gdscope.jobs.plot import MapCache
from gdscope.jobs.records import DEFAULT_DPI, read_record
from gdscope.version import __version__

__all__ = ["gallery_html", "previous_figures", "reproduce"]


def reproduce(
    out_dir: str | Path,
    *,
    fmt: str = "png",
    force: bool = False,
    dpi: float = DEFAULT_DPI,
    figures: Sequence[ArticleFigure] = ARTICLE_FIGURES,
    progress: Callable[[ArticleFigure, Path], None] | None = None,
) -> list[Path]:
    """Draw ``figures`` into ``out_dir`` and write the gallery; returns the files written.

        A non-empty ``out_dir`` is refused unless ``force``. With ``force`` the article figures a
        previous run wrote there in another format are removed first (one folder holds one
        format, so the gallery never points past half of them) once the new set is written (a
    Ctrl-C before then leaves the old set whole), the ones in ``fmt`` are replaced,
        and anything else in the folder is left alone.
    """
    fmt = figure_format(f"x.{fmt}")
    out = check_folder(out_dir)
    stale = [p for f, paths in previous_figures(out).items() if f != fmt for p in paths]
    if out.is_dir() and any(out.iterdir()) and not force:
        formats = sorted({p.suffix[1:] for p in stale})
        held = f" (it holds the article's figures as {', '.join(formats)})" if formats else ""
        raise GdscopeError(
            f"{out} is not empty{held}; pass force=True to replace the figures a previous"
            f" reproduce wrote there with {fmt} ones",
            settings=["force"],
        )
    make_folder(out)
    cache: MapCache = {}  # the article's four maps are shared by seven figures
    written = []
    for spec in figures:
        fig = draw_article_figure(spec, fig=Figure(), cache=cache)
        path = save_article_figure(spec, fig, out / spec.filename(fmt), fmt=fmt, dpi=dpi,
                                   force=force)  # fmt: skip
        written.append(path)
        if progress is not None:
            progress(spec, path)
    with interrupts.deferred():  # the new set is complete: only now does the old one go
        written.append(write_text(out / "index.html", gallery_html(figures, fmt), force=force))
        for path in stale:
            path.unlink()
    return written


def previous_figures(out_dir: str | Path) -> dict[str, list[Path]]:
    """The article figures in ``out_dir``, by format: files named as one (``fig07-….png``)
    that carry that figure's record, so a file of the same name gdscope did not write is
    never taken for one."""
    out = Path(out_dir)
    found: dict[str, list[Path]] = {}
    if not out.is_dir():
        return found
    for spec in ARTICLE_FIGURES:
        for fmt in FIGURE_FORMATS:
            path = out / spec.filename(fmt)
            if path.is_file() and _figure_key(path) == spec.key:
                found.setdefault(fmt, []).append(path)
    return found


def _figure_key(path: Path) -> object:
    """The article figure ``path``'s record names, or None if it carries no figure record."""
    try:
        rec = read_record(path)
    except GdscopeError:
        return None
    return rec.get("figure") if rec.get("kind") == "figure" else None


def gallery_html(figures: Sequence[ArticleFigure], fmt: str) -> str:
    """A self-contained page: each figure with its caption, configuration and re-make command."""
    items = []
    for spec in figures:
        name = html.escape(spec.filename(fmt))
        if fmt == "pdf":
            picture = f'<p><a href="{name}">{name}</a></p>'
        else:
            picture = f'<a href="{name}"><img src="{name}" alt="{html.escape(spec.title)}"></a>'
        commands = "\n".join(html.escape(c) for c in spec.commands(spec.filename(fmt)))
        config = html.escape(json.dumps(spec.config.to_dict(), indent=2))
        items.append(
            f"""<section id="{spec.key}">
<h2>Fig. {spec.number}. {html.escape(spec.title)}</h2>
{picture}
<p class="caption">{html.escape(spec.caption)}</p>
<p>Re-make this figure alone:</p>
<pre><code>{commands}</code></pre>
<details><summary>Exact configuration</summary><pre>{config}</pre></details>
</section>"""
        )
    body = "\n".join(items)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>gdscope: the article's figures</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
pre {{ background: #f6f8fa; padding: .6em; overflow-x: auto; }}
.caption {{ color: #333; }}
section {{ margin-bottom: 3em; }}
</style>
</head>
<body>
<h1>Visualizing gradient descent parameters in torch, reproduced</h1>
<p>Made by gdscope {html.escape(__version__)} with <code>gdscope reproduce</code>.
Every number comes from <code>torch.nn.Linear</code>, <code>torch.optim.SGD</code> and
<code>torch.nn</code> losses.</p>
{body}
</body>
</html>
"""
