"""The page's files and Plotly.js, served from memory: only these names, so no path leads
elsewhere."""

from __future__ import annotations

import functools
import mimetypes
from importlib import resources
from pathlib import Path

__all__ = ["WEB", "files"]

WEB = Path(str(resources.files("gdscope.server") / "web"))
"""The page's folder in the installed package."""
PLOTLY = "plotly.min.js"


@functools.cache
def files() -> dict[str, tuple[bytes, str]]:
    """The page's files and Plotly.js, read once: name → (bytes, media type).

    Served from memory in one piece on the event loop: read from disk in chunks, each a turn of
    a worker thread and of the loop, Plotly.js (4.8 MB) took seconds while clients flooded the
    compute API.
    """
    plotly = Path(str(resources.files("plotly") / "package_data" / PLOTLY))
    return {
        path.name: (path.read_bytes(), mimetypes.guess_type(path.name)[0] or "text/plain")
        for path in [*sorted(WEB.iterdir()), plotly]
        if path.is_file()
    }
