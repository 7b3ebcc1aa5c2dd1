"""gdscope board's page in Debian's Chromium while a real training writes: a subprocess trains
the example MLP with the Lightning callback; the page sees its steps arrive, draws what the
files hold, computes the landscape (the same numbers as the command it shows) and is looked at
on a wide and on a 390 px screen (screenshots in $GDSCOPE_SCREENSHOTS, else the test's folder).
"""

from __future__ import annotations

import os
import shlex
import shutil
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
from PIL import Image  # noqa: E402

from gdscope.cli.main import main  # noqa: E402
from gdscope.jobs.records import read_record  # noqa: E402
from gdscope.nets.recorder import STEP_ROW, open_path  # noqa: E402
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


def download(page: Any, view: str, folder: Path) -> Path:
    """Click ``view``'s PNG button; the file the browser saved, copied into ``folder``."""
    with page.expect_download() as info:
        page.click(f'button.png[data-view="{view}"]')
    saved = folder / info.value.suggested_filename
    shutil.copyfile(info.value.path(), saved)
    return saved


def earlier(folder: Path, lr: float = 0.1) -> None:
    """A short run of the same network, recorded by ``Recorder`` in a plain loop."""
    import torch
    from torch import nn

    from gdscope.examples.mlp import make_loader, make_model
    from gdscope.nets.recorder import Recorder

    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
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


def open_page(browser: Any, tmp_path: Path, **options: Any) -> tuple[Any, list[str], Path]:
    """A new 1400×1000 page, the errors it reports (uncaught or on its console) and the folder
    for screenshots ($GDSCOPE_SCREENSHOTS, else the test's folder)."""
    shots = Path(os.environ.get("GDSCOPE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, **options)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return page, errors, shots


def test_a_training_is_followed_live_and_its_landscape_matches_the_command(
    board, runs, browser, tmp_path
):
    page, errors, shots = open_page(browser, tmp_path)
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
    # Validation losses appended to validation.bin arrive by the stream and are drawn dashed.
    validation = runs / "live" / "validation.bin"
    np.array([(100, 0.5), (200, 0.25)], dtype=STEP_ROW).tofile(validation)
    until(page, "document.getElementById('loss').data.some((t) => t.name === 'live: validation'"
          " && t.y.length === 2)")  # fmt: skip
    with validation.open("ab") as handle:
        np.array([(300, 0.125)], dtype=STEP_ROW).tofile(handle)
    until(page, "document.getElementById('loss').data.some((t) => t.name === 'live: validation'"
          " && t.y.length === 3)")  # fmt: skip
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
    # Its PNG carries the record that command wrote into its own figure: replay remakes it.
    plane = download(page, "plane", tmp_path)
    assert plane.name == "plane.png" and read_record(plane) == read_record(tmp_path / "again.png")
    # The loss chart's PNG carries a record of the rows it drew, which replay draws again.
    loss = download(page, "loss", tmp_path)
    rec = read_record(loss)
    assert rec["kind"] == "curves" and [r["label"] for r in rec["runs"]] == ["live", "earlier"]
    assert rec["runs"][0]["rows"] == len(recorded)
    assert main(["replay", str(loss), "--out", str(tmp_path / "loss-again.png")]) == 0
    with Image.open(loss) as image:
        assert image.size[0] > 300  # Plotly's picture of the chart, not an empty one
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


def test_two_runs_on_one_plane_each_path_in_its_colour_with_the_command(
    board, runs, browser, tmp_path
):
    earlier(runs / "slow", 0.05)
    earlier(runs / "fast", 0.3)
    page, errors, shots = open_page(browser, tmp_path, accept_downloads=True)
    page.goto(f"{board}/#run=slow&compare=fast")
    until(page, "!document.getElementById('sharedSection').hidden")
    page.select_option("#points", "21")
    page.click("#sharedCompute")
    refined = until(page, "(window.gdscopeBoard.state.shared || {stages: {}}).stages.refined")
    assert [r["name"] for r in refined["runs"]] == ["slow", "fast"]
    named = "document.getElementById('shared').data.filter((t) => t.showlegend !== false)"
    assert page.evaluate(f"{named}.map((t) => t.name)") == ["slow", "fast"]  # the legend's
    colours = page.evaluate(f"{named}.map((t) => t.line.color)")
    loss = page.evaluate("document.getElementById('loss').data.map((t) => t.line.color)")
    assert colours == loss[:2]  # each path in its run's colour on the loss chart
    argv = shlex.split(page.locator("#sharedCmd").inner_text())
    assert argv[argv.index("--path") + 1] == str(runs / "slow") and argv.count("--path") == 2
    saved = tmp_path / "again.npz"
    assert main([*argv[1:-2], "--out", str(tmp_path / "again.png"), "--save", str(saved)]) == 0
    with np.load(saved) as again:
        np.testing.assert_array_equal(again["loss"], np.array(refined["loss"]))
    png = download(page, "shared", tmp_path)
    assert png.name == "shared.png" and read_record(png) == read_record(tmp_path / "again.png")
    page.screenshot(path=str(shots / "board-shared-wide.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(500)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(shots / "board-shared-390.png"), full_page=True)
    assert errors == []


@pytest.mark.filterwarnings("ignore:.*beyond the tuning grid")
def test_study_and_shootout_files_show_each_cells_curve_on_hover(board, runs, browser, tmp_path):
    from gdscope.jobs.studies import make_compare, make_phase
    from gdscope.jobs.studyconfig import CompareConfig, PhaseConfig, RunSettings
    from gdscope.jobs.studyfiles import Outputs
    from tests.jobs.test_studies_network import NETWORK

    make_phase(PhaseConfig("lr=0.1,1", "momentum=0,0.5", network=NETWORK),
               Outputs(tmp_path / "p.png", save=runs / "phase.npz"))  # fmt: skip
    compare = CompareConfig(("sgd", "adam"), tune=("lr=0.01:1:3:log",), network=NETWORK,
                            run=RunSettings())  # fmt: skip
    make_compare(compare, Outputs(tmp_path / "c.png", save=runs / "shootout.json"))
    page, errors, shots = open_page(browser, tmp_path)
    page.goto(f"{board}/#run=phase.npz")
    until(page, "(window.gdscopeBoard.state.data.get('phase.npz') || {}).curves")
    box = page.locator("#fileChart .nsewdrag").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25)
    until(page, "window.gdscopeBoard.cellShown !== undefined")
    shown = page.evaluate("window.gdscopeBoard.cellShown")
    curve = page.evaluate("document.getElementById('fileCurve').data[0].y")
    data = page.evaluate("window.gdscopeBoard.state.data.get('phase.npz').curves.losses")
    assert curve == data[shown] and len(curve) == 6
    study = download(page, "file", tmp_path)  # the file keeps its figure's record: it replays
    assert study.name == "study.png" and read_record(study) == read_record(tmp_path / "p.png")
    page.screenshot(path=str(shots / "board-study-wide.png"), full_page=True)
    # The shoot-out: each optimizer's score at its tuned setting, its table and winner's curve.
    page.click('#runs button:has-text("shootout.json")')
    until(page, "(window.gdscopeBoard.state.data.get('shootout.json') || {}).table")
    assert page.evaluate("document.getElementById('fileChart').data[0].x.length") == 2
    assert page.evaluate("document.getElementById('fileCurve').data.length") == 2
    assert page.locator("#fileTable tr").count() == 3
    shootout = download(page, "file", tmp_path)
    assert shootout.name == "shootout.png"
    assert read_record(shootout) == read_record(tmp_path / "c.png")
    page.screenshot(path=str(shots / "board-shootout-wide.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(500)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(shots / "board-shootout-390.png"), full_page=True)
    assert errors == []
