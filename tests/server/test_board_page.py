"""gdscope board's page in Debian's Chromium while a real training writes: a subprocess trains
the example MLP with the Lightning callback; the page sees its steps arrive, draws what the
files hold, computes the landscape (the same numbers as the command it shows) and is looked at
on a wide and on a 390 px screen (screenshots in $GDSCOPE_SCREENSHOTS, else the test's folder).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import chromium, require

playwright = require("playwright.sync_api")
require("lightning")
require("fastapi")
from gdscope.cli.main import main  # noqa: E402
from gdscope.nets.recorder import open_path  # noqa: E402
from gdscope.server.launch import start_server  # noqa: E402

pytestmark = pytest.mark.browser
QUIET = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync")  # fmt: skip
TRAINING = Path(__file__).with_name("board_training.py")
MLP = ("--model", "gdscope.examples.mlp:make_model", "--data", "gdscope.examples.mlp:make_loader")


def until(page: Any, script: str, *, limit: float = 180.0) -> Any:
    """Poll ``script`` in the page until it is truthy (evaluated from outside, so the page's
    own policy, which forbids eval, stays in force); its value."""
    deadline = time.monotonic() + limit
    while True:
        value = page.evaluate(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never true: {script}")
        time.sleep(0.1)


def earlier(folder: Path) -> None:
    """A short run of the same network, recorded by ``Recorder`` in a plain loop."""
    import torch
    from torch import nn

    from gdscope.examples.mlp import make_loader, make_model
    from gdscope.nets.recorder import Recorder

    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(model, path=folder, optimizer=optimizer)
    for x, y in make_loader():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        rec.step(loss)


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    return root


@pytest.fixture
def board(runs) -> Iterator[str]:
    url, process = start_server(timeout=120, command=("board", str(runs)),
                                options=("--no-browser", *MLP))  # fmt: skip
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium(), args=list(QUIET))
        yield launched
        launched.close()


def test_a_training_is_followed_live_and_its_landscape_matches_the_command(
    board, runs, browser, tmp_path
):
    shots = Path(os.environ.get("GDSCOPE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{board}/")
    until(page, "document.body.dataset.ready === 'true' && window.gdscopeBoard.listings > 0")
    assert page.locator("#empty").is_visible()  # no run yet: the page says how to make one
    earlier(runs / "earlier")  # a finished run, to overlay
    until(page, "window.gdscopeBoard.state.data.has('earlier')")  # the first run opens itself
    page.goto(f"{board}/#run=live&compare=earlier")  # a link to a run not started yet
    page.reload()
    until(page, "document.body.dataset.ready === 'true' && window.gdscopeBoard.listings > 0")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    training = subprocess.Popen([sys.executable, str(TRAINING), str(runs / "live"), "20", "0.03"],
                                env=env, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        # The run appears and opens by itself; its steps arrive while the training runs.
        until(page, "window.gdscopeBoard.state.data.has('live')")
        arrived = until(page, "window.gdscopeBoard.rowsArrived > 0 && "
                        "window.gdscopeBoard.state.data.get('live').steps.length")  # fmt: skip
        still_training = training.poll() is None
        later = until(page, f"window.gdscopeBoard.state.data.get('live').steps.length > {arrived}"
                      " && window.gdscopeBoard.state.data.get('live').steps.length")  # fmt: skip
        assert still_training and later > arrived
        assert training.wait(timeout=300) == 0
    finally:
        if training.poll() is None:
            training.kill()
    recorded = open_path(runs / "live")
    until(page, f"window.gdscopeBoard.state.data.get('live').steps.length === {len(recorded)}")
    until(page, "(window.gdscopeBoard.state.data.get('live').sharpness || {steps: []})"
          f".steps.length === {len(recorded.sharpness.steps)}")  # fmt: skip
    script = (
        "(() => { const r = window.gdscopeBoard.state.data.get('live');"
        " return {steps: r.steps, losses: r.losses, s: r.sharpness}; })()"
    )
    shown = page.evaluate(script)
    assert shown["steps"] == recorded.steps.tolist()
    assert shown["losses"][1:] == recorded.losses[1:].tolist() and shown["losses"][0] is None
    assert shown["s"]["threshold"] == recorded.sharpness.threshold.tolist()
    drawn = page.evaluate("document.getElementById('sharpness').data.length")
    assert drawn == 2  # the sharpness and its threshold, 2/η (the earlier run measured none)
    names = page.evaluate("document.getElementById('loss').data.map((t) => t.name)")
    assert names == ["live", "earlier"]  # overlaid, as the link asked
    assert 'open_path("' + str(runs / "earlier") in page.locator("#curveCode").text_content()
    # What Plotly computed for the loss chart (recomputed only when told the data changed): every
    # step, not the few there when the run was first drawn.
    points = page.evaluate("document.getElementById('loss').calcdata[0].length")
    assert points == len(recorded)
    # The landscape: coarse first, then refined; the command it shows gives the same numbers.
    page.select_option("#points", "21")
    page.click("#compute")
    refined = until(page, "(window.gdscopeBoard.state.landscape || {stages: {}}).stages.refined")
    assert len(refined["xs"]) == 21 and refined["snapshots"] == len(recorded)
    argv = shlex.split(page.locator("#planeCmd").inner_text())
    assert argv[:2] == ["gdscope", "landscape"] and argv[-2:] == ["--out", "landscape.png"]
    saved = tmp_path / "again.npz"
    assert main([*argv[1:-2], "--out", str(tmp_path / "again.png"), "--save", str(saved)]) == 0
    with np.load(saved) as again:
        np.testing.assert_array_equal(again["loss"], np.array(refined["loss"]))
        np.testing.assert_array_equal(again["path_x"], np.array(refined["path_x"]))
    until(page, "document.getElementById('line').data && "
          "document.getElementById('line').data.length === 1")  # fmt: skip
    # The Hessian spectrum on demand, with the gdscope hessian command that computes it.
    page.click("#spectrumCompute")
    spectrum = until(page, "(window.gdscopeBoard.state.spectrum || {}).spectrum")
    assert len(spectrum["eigenvalues"]) == 10 and spectrum["snapshots"] == len(recorded)
    assert page.locator("#spectrumCmd").inner_text().startswith("gdscope hessian --model")
    assert page.evaluate("document.getElementById('spectrum').data[0].y.length") == 10
    page.screenshot(path=str(shots / "board-wide.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(500)  # Plotly resizes its charts on the window's resize event
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(shots / "board-390.png"), full_page=True)
    assert errors == []
