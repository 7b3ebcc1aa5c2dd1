"""The page's files: only the web folder's and Plotly.js, from memory."""

from __future__ import annotations

import pytest

pytest.importorskip("plotly")

from gdscope.server.static import WEB, files


def test_only_the_web_folder_and_plotly_are_served():
    names = set(files())
    assert names == {p.name for p in WEB.iterdir() if p.is_file()} | {"plotly.min.js"}
    content, media = files()["index.html"]
    assert media == "text/html" and content == (WEB / "index.html").read_bytes()
    assert files()["app.js"][1] in ("text/javascript", "application/javascript")
