"""``gdscope.explore()``: a preset checked like a request, one background server per kernel
that a notebook's page may frame (and no other page by default), stopped by ``stop()``; in
Chromium, a page on another loopback port frames the explorer and it opens on the preset."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import chromium, require

pytest.importorskip("fastapi")

import gdscope
from gdscope.errors import GdscopeError
from gdscope.server import notebook
from gdscope.server.app import security_headers


@pytest.fixture(scope="module")
def explorer() -> Iterator[gdscope.server.notebook.Explorer]:
    shown = gdscope.explore("adam", lr=0.05, epochs=40, loss="mse", view="contour")
    yield shown
    notebook.stop()


def test_preset_holds_only_what_is_given_and_is_checked():
    assert notebook.preset() == {}
    assert notebook.preset("sgd", lr=0.2, momentum=0.9, log=True, function="rosenbrock") == {
        "optimizer": "sgd", "hyper": {"lr": 0.2, "momentum": 0.9}, "problem": "rosenbrock",
        "color": "log",
    }  # fmt: skip
    for bad in ({"optimizer": "nope"}, {"optimizer": "sgd", "betas": 0.9},
                {"epochs": 10**6}, {"loss": "hinge"}, {"view": "pie"}):  # fmt: skip
        with pytest.raises(GdscopeError, match=r"^explore: "):
            notebook.preset(**bad)


def test_bad_origins_are_refused():
    with pytest.raises(GdscopeError, match="not an origin"):
        security_headers(("http://x; script-src *",))
    with pytest.raises(GdscopeError, match="not an origin"):
        security_headers(("http://[::1]:8888",))  # CSP has no IPv6 sources: browsers drop them


def test_explore_shows_an_iframe_on_the_preset_that_notebooks_may_frame(explorer):
    assert explorer._repr_html_().startswith(f'<iframe src="{explorer.url}"')
    state = json.loads(urllib.parse.unquote(explorer.url.split("#state=")[1]))
    assert state == {"optimizer": "adam", "hyper": {"lr": 0.05}, "epochs": 40, "loss": "mse",
                     "view": "contour"}  # fmt: skip
    with urllib.request.urlopen(explorer.url) as reply:
        policy = reply.headers["Content-Security-Policy"]
        assert reply.status == 200 and reply.headers["X-Frame-Options"] is None
    assert "frame-ancestors http://localhost:* http://127.0.0.1:*;" in policy + ";"
    base = urllib.parse.urlsplit(explorer.url).netloc
    assert urllib.parse.urlsplit(gdscope.explore().url).netloc == base  # one server


@pytest.mark.browser
def test_a_notebook_page_frames_the_explorer_open_on_the_preset(explorer):
    executable = chromium()
    playwright = require("playwright.sync_api")
    parent = f'<!doctype html><iframe src="{explorer.url}" width="1200" height="900"></iframe>'

    class Notebook(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(parent.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Notebook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"http://localhost:{server.server_address[1]}/")
            frame = page.frame_locator("iframe")
            optimizer = frame.locator("#optimizer")
            optimizer.wait_for(timeout=30_000)
            page.wait_for_timeout(500)
            assert optimizer.input_value(timeout=30_000) == "adam"
            assert frame.locator("#epochs").input_value() == "40"
            browser.close()
    finally:
        server.shutdown()


def test_stop_ends_the_server():  # last: it stops the module's server too
    shown = gdscope.explore(origins=("http://localhost:8888",))
    process = notebook._SERVERS[("http://localhost:8888",)][1]
    notebook.stop()
    assert process.poll() is not None and notebook._SERVERS == {}
    with pytest.raises(OSError):
        urllib.request.urlopen(shown.url, timeout=2)
