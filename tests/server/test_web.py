"""End-to-end: the real server on a free loopback port, driven in Debian's Chromium."""

from __future__ import annotations

import csv
import io
import json
import shutil
import urllib.request
from pathlib import Path

import pytest

playwright = pytest.importorskip("playwright.sync_api")
from gdscope.jobs.plotconfig import PlotConfig  # noqa: E402
from gdscope.optim.specs import OptimizerSpec  # noqa: E402
from gdscope.optim.table import OPTIMIZER_TABLE  # noqa: E402
from gdscope.problem.losses import ARTICLE_LOSSES  # noqa: E402
from gdscope.problem.maps import Grid  # noqa: E402
from gdscope.server.app import OUT, running_server  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
]


@pytest.fixture(scope="module")
def server():
    # A loaded machine (make test runs beside other work) can take long to import torch.
    with running_server(timeout=120) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"],
        )  # fmt: skip
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    # bypass_csp: wait_for_function evaluates its predicate with eval, which the page's policy
    # forbids (tests/server/test_security.py checks the page under that policy).
    page = browser.new_page(
        viewport={"width": 1400, "height": 1400}, accept_downloads=True, bypass_csp=True
    )
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server + "/")
    wait_ready(page)
    yield page
    assert errors == []
    page.close()


def wait_ready(page, renders: int = 0) -> None:
    ready = "document.body && document.body.dataset.ready === 'true' && window.gdscope"
    page.wait_for_function(f"{ready} && window.gdscope.renders > {renders}", timeout=30_000)


def renders(page) -> int:
    return page.evaluate("window.gdscope.renders")


def current_path(page, index: int = 0) -> list[list[float]]:
    """The current run's path as the map's canvas drew it (data coordinates)."""
    drawn = f"window.gdscope.drawn[{index}].paths.at(-1)"
    return page.evaluate(f"[{drawn}.weights, {drawn}.biases]")


def canvas_pixel(page, index: int, w: float, b: float) -> list[int]:
    """RGBA of the path canvas of map ``index`` at data point (w, b)."""
    return page.evaluate(f"""(() => {{
        const div = document.getElementById('map-{index}');
        const canvas = div.querySelector('canvas.paths');
        const size = {{w: div._fullLayout.xaxis._length, h: div._fullLayout.yaxis._length}};
        const [x0, x1] = div._fullLayout.xaxis.range, [y0, y1] = div._fullLayout.yaxis.range;
        const r = canvas.width / size.w;
        const x = Math.round(({b} - x0) / (x1 - x0) * size.w * r);
        const y = Math.round((size.h - ({w} - y0) / (y1 - y0) * size.h) * r);
        return Array.from(canvas.getContext('2d').getImageData(x, y, 1, 1).data); }})()""")


def post(server: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        server + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def set_slider(page, key: str, value: float) -> None:
    before = renders(page)
    page.evaluate(
        f"""(() => {{ const s = document.getElementById('h-{key}'); s.value = {value};
            s.dispatchEvent(new Event('input', {{bubbles: true}})); }})()"""
    )
    wait_ready(page, before)


def test_page_draws_the_four_article_panels_like_the_api(page, server):
    assert page.locator("#maps .js-plotly-plot").count() == 4
    drawn = current_path(page, 0)
    expected = post(server, "/api/trajectories", {
        "losses": [{"name": n} for n in ("mse", "l1", "huber", "smoothl1")],
        "optimizer": {"name": "sgd", "hyper": {"lr": 0.1}}, "epochs": 100, "start": [6, -3],
    })["runs"][0]  # fmt: skip
    assert drawn == [expected["weights"], expected["biases"]]
    # The command is the one a record of this figure holds (SGD's lr 0.1 is the default).
    figure = PlotConfig(losses=ARTICLE_LOSSES, start=(6.0, -3.0), grid=Grid())
    assert page.text_content("#command") == figure.command(OUT)
    # The canvas really shows it: the green start dot at (6, -3), nothing far from the path.
    red, green, blue, alpha = canvas_pixel(page, 0, 6.0, -3.0)
    assert alpha == 255 and green > red and green > blue
    assert canvas_pixel(page, 0, -4.5, 7.5)[3] == 0
    # Hovering the map still tells the loss there (the landscape is a painted image).
    assert page.evaluate("document.getElementById('map-0').data[0].z.length") == 101


def test_slider_moves_the_path_and_the_url(page):
    before = current_path(page)
    set_slider(page, "lr", 0.3)
    assert current_path(page) != before
    state = json.loads(urllib.request.unquote(page.evaluate("location.hash").split("=", 1)[1]))
    assert state["hyper"]["lr"] == pytest.approx(0.3)


def test_click_on_the_map_sets_the_start(page):
    box = page.locator("#map-0 .nsewdrag").first.bounding_box()
    before = renders(page)
    page.mouse.click(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.8)
    wait_ready(page, before)
    weights, biases = current_path(page)
    start = page.evaluate("window.gdscope.state.start")
    assert start != [6, -3]
    assert weights[0] == pytest.approx(start[0], abs=1e-4) and biases[0] == pytest.approx(
        start[1], abs=1e-4
    )
    assert start[0] < 1.5 and start[1] < 1.5  # lower left of the map


def test_nesterov_toggle_and_reload_keep_the_state(page, server):
    set_slider(page, "momentum", 0.9)
    plain = current_path(page)
    before = renders(page)
    page.check("#h-nesterov")
    wait_ready(page, before)
    assert current_path(page) != plain
    page.wait_for_timeout(1500)  # the phase panel follows the knobs
    assert page.text_content("#status") == "" and page.text_content("#phaseStatus") == ""
    url = page.url
    assert "nesterov%22%3Atrue" in url
    page.goto(server + "/static/index.html")  # elsewhere, then back to the shared link
    page.goto(url)
    page.reload()
    wait_ready(page)
    assert page.is_checked("#h-nesterov")
    assert page.input_value("#n-momentum") == "0.9"


def test_diverged_run_says_where(page):
    set_slider(page, "lr", 2.0)
    assert "MSELoss: diverged at step 13" in page.text_content("#status")


def test_csv_download_matches_the_api(page, server):
    with page.expect_download() as info:
        page.click("#downloadCsv")
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    answer = post(server, "/api/trajectories", {
        "losses": [{"name": n} for n in ("mse", "l1", "huber", "smoothl1")],
        "optimizer": {"name": "sgd", "hyper": {"lr": 0.1}}, "epochs": 100, "start": [6, -3],
    })  # fmt: skip
    mse = [r for r in rows if r["loss"] == "MSELoss"]
    assert len(rows) == 4 * 101 and len(mse) == 101
    for row, w, value in zip(
        mse, answer["runs"][0]["weights"], answer["runs"][0]["losses"], strict=True
    ):
        assert float(row["weight"]) == pytest.approx(w) and float(row["value"]) == pytest.approx(
            value
        )


def test_playback_moves_the_marker(page):
    page.fill("#step", "0")
    page.dispatch_event("#step", "input")
    assert page.evaluate("window.gdscope.drawn[0].marker") == pytest.approx([6.0, -3.0])
    red, green, blue, alpha = canvas_pixel(page, 0, 6.0, -3.0)
    assert alpha == 255 and red > 200 and green > 200 and blue < 100  # the yellow step marker
    assert page.text_content("#stepLabel") == "step 0 / 100"


def test_screenshot(page, tmp_path):
    shot = tmp_path / "explorer.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000


def test_test_function_problem_and_3d_surface(page, server):
    page.select_option("#problem", "rosenbrock")  # reloads the page from the new state
    page.wait_for_function("location.hash.includes('rosenbrock')")
    wait_ready(page)
    state = page.evaluate("window.gdscope.state")
    assert state["grid"]["w"] == [-1, 3] and state["grid"]["b"] == [-2, 2]
    assert state["start"] == [1, -1.2] and state["hyper"]["lr"] == 0.001
    assert page.evaluate("document.getElementById('map-0').layout.xaxis.title.text") == "x"
    assert page.is_hidden("#seed") and page.is_hidden("#loss")  # no data, no regression loss
    assert page.text_content("#vname") == "y"
    expected = post(server, "/api/trajectories", {
        "function": {"name": "rosenbrock"}, "start": [1, -1.2], "epochs": 100,
        "optimizer": {"name": "sgd", "hyper": state["hyper"]}})["runs"][0]  # fmt: skip
    weights, biases = current_path(page)
    assert weights == pytest.approx(expected["weights"]) and biases == pytest.approx(
        expected["biases"]
    )
    assert "--function rosenbrock" in page.text_content("#command")
    before = renders(page)
    page.select_option("#view", "surface")
    wait_ready(page, before)
    kinds = page.evaluate("document.getElementById('map-0').data.map((t) => t.type)")
    assert kinds[0] == "surface" and "scatter3d" in kinds
    lifted = page.evaluate(
        "document.getElementById('map-0').data.find((t) => t.type === 'scatter3d').z"
    )
    assert lifted == pytest.approx(expected["losses"])


def choose_optimizer(page, name: str) -> None:
    before = renders(page)
    page.select_option("#optimizer", name)
    wait_ready(page, before)


def test_a_control_for_every_hyperparameter_of_the_table(page):
    for name, entry in OPTIMIZER_TABLE.items():
        choose_optimizer(page, name)
        shown = page.evaluate(
            "[...document.querySelectorAll('#hyper [data-hyper]')].map((row) => row.dataset.hyper)"
        )
        assert shown == [h.name for h in entry.hyperparameters]
        for hyper in entry.hyperparameters:
            kind = page.get_attribute(f"#h-{hyper.name}", "type")
            assert kind == ("checkbox" if hyper.kind == "bool" else "range")
            if hyper.below is not None:
                assert float(page.get_attribute(f"#n-{hyper.name}", "max")) == hyper.below
        axes = page.evaluate("[...document.getElementById('phaseX').options].map((o) => o.value)")
        assert axes == [h.name for h in entry.hyperparameters if h.kind == "float"]


def test_the_command_is_the_one_the_server_computes(page):
    choose_optimizer(page, "adam")  # keeps the learning rate, 0.1
    set_slider(page, "beta1", 0.8)
    adam = OptimizerSpec.of("adam", lr=0.1, betas=(0.8, 0.999))
    figure = PlotConfig(losses=ARTICLE_LOSSES, optimizer=adam, start=(6.0, -3.0), grid=Grid())
    assert page.text_content("#command") == figure.command(OUT)
    before = renders(page)
    page.select_option("#view", "contour")
    wait_ready(page, before)
    assert page.text_content("#command").endswith(f"--view contour --out {OUT}")
