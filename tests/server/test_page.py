"""The explorer page (server/web) as a user sees it, driven in Debian's Chromium.

Where a test needs an answer the engines would not give on demand (a finite blow-up, an all-0
phase grid), it rewrites the real server's answer on its way to the page (``page.route``).
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest

playwright = pytest.importorskip("playwright.sync_api")
from gdscope.jobs.records import read_record  # noqa: E402
from gdscope.jobs.replay import replay  # noqa: E402
from gdscope.server.app import running_server  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
]
QUIET = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync")  # fmt: skip
READY = (
    "document.body && document.body.dataset.ready === 'true' && window.gdscope"
    " && window.gdscope.renders > "
)
Handler = Callable[[Any], None]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    # A loaded machine (make test runs beside other work) can take long to import torch.
    with running_server(timeout=120) as url:
        yield url


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=list(QUIET))
        yield launched
        launched.close()


@pytest.fixture
def open_page(chromium, server) -> Iterator[Callable[..., Any]]:
    """Opens the page (after installing ``routes``) and waits for its first drawing; at the
    end, no page may have raised a script error."""
    opened: list[Any] = []
    errors: list[str] = []

    def open_(routes: dict[str, Handler] | None = None, width: int = 1400) -> Any:
        page = chromium.new_page(
            viewport={"width": width, "height": 1400}, accept_downloads=True, bypass_csp=True
        )  # Playwright waits evaluate scripts
        page.on("pageerror", lambda error: errors.append(str(error)))
        for pattern, handler in (routes or {}).items():
            page.route(pattern, handler)
        page.goto(server + "/")
        ready(page)
        opened.append(page)
        return page

    yield open_
    for page in opened:
        page.close()
    assert errors == []


def ready(page, after: int = 0) -> None:
    page.wait_for_function(READY + str(after), timeout=30_000)


def renders(page) -> int:
    return page.evaluate("window.gdscope.renders")


def act(page, what: Callable[[], Any]) -> None:
    """Do ``what`` and wait for the page to draw again."""
    before = renders(page)
    what()
    ready(page, before)


def rewrite(path_end: str, change: Callable[[dict], None]) -> dict[str, Handler]:
    """A route that passes the server's JSON answer through ``change`` first."""

    def handle(route) -> None:
        response = route.fetch()
        answer = response.json()
        change(answer)
        route.fulfill(response=response, body=json.dumps(answer))

    return {f"**{path_end}": handle}


def phase_drawn(page) -> dict:
    """The phase heatmap as Plotly drew it (waits for it)."""
    page.wait_for_function("(document.getElementById('phase')._fullData || []).length > 0")
    return page.evaluate("""(() => { const d = document.getElementById('phase'), t = d._fullData[0];
        return {zmin: t.zmin, zmax: t.zmax, z: d.data[0].z, title: d.layout.title.text}; })()""")


def box(page, selector: str) -> dict:
    return page.locator(selector).first.bounding_box()


# 1 -----------------------------------------------------------------------------------------


def test_a_path_that_leaves_the_map_or_diverges_is_warned(open_page):
    def blow_up(answer: dict) -> None:
        first, second = answer["runs"][0], answer["runs"][1]
        first["weights"][7:] = [40.0 * k for k in range(1, len(first["weights"]) - 6)]
        first["diverged_at"] = None  # finite, so the engine did not flag it
        second["diverged_at"] = 12

    page = open_page(rewrite("/api/trajectories", blow_up))
    status = page.locator("#status")
    assert status.is_visible()
    assert "MSELoss: left the map at step 7" in status.text_content()
    assert "L1Loss: diverged at step 12" in status.text_content()


# 2, 4 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_a_yes_no_phase_grid_is_coloured_on_0_to_1(open_page, fill):
    def flat(answer: dict) -> None:
        answer["values"] = [[fill] * len(answer["x"]) for _ in answer["y"]]

    drawn = phase_drawn(open_page(rewrite("/api/phase", flat)))
    assert (drawn["zmin"], drawn["zmax"]) == (0, 1)


def test_a_metric_spanning_decades_gets_log_colour(open_page):
    def blown(answer: dict) -> None:
        rows, cols = len(answer["y"]), len(answer["x"])
        # Ordinary final losses over five decades, beside a blow-up to 6e36.
        answer["values"] = [[10 ** (-3 + 5 * (i + j) / (rows + cols)) for j in range(cols)]
                            for i in range(rows)]  # fmt: skip
        answer["values"][0][:3] = [6e36, 0.0, -2.0]  # a blow-up, and values a log scale drops
        answer["values"][1][0] = None

    page = open_page(rewrite("/api/phase", blown))
    page.select_option("#metric", "final_loss")  # a loss metric (the default is yes/no)
    page.wait_for_function("document.getElementById('phase').dataset.colour === 'log'")
    drawn = phase_drawn(page)
    z = drawn["z"]
    assert z[1][0] is None and all(v is not None for row in z[2:] for v in row)
    ordinary = [v for row in z[2:] for v in row]
    spread = (max(ordinary) - min(ordinary)) / (drawn["zmax"] - drawn["zmin"])
    assert spread > 0.1  # the ordinary cells are not one colour beside the blow-up
    assert z[0][1] == 0 and z[0][2] < 0 < z[0][3] < z[0][0]  # the order kept, 0 and −2 too
    assert "log colour" in drawn["title"]


# 3 -----------------------------------------------------------------------------------------


def test_phase_axes_centre_on_the_problems_learning_rate(open_page):
    page = open_page()
    page.select_option("#problem", "rosenbrock")  # reloads the page from the new state
    page.wait_for_function("location.hash.includes('rosenbrock')")
    ready(page)
    state = page.evaluate("window.gdscope.state")
    lr = state["hyper"]["lr"]
    axis = state["phase"]["x"]
    assert axis["name"] == "lr" and axis["log"]
    assert axis["lo"] < lr < axis["hi"]
    assert (axis["lo"] * axis["hi"]) ** 0.5 == pytest.approx(lr, rel=0.02)
    phase_drawn(page)
    star = page.evaluate("document.getElementById('phase').data[1].x[0]")
    cells = page.evaluate("document.getElementById('phase').data[0].x")
    assert star == lr and min(cells) < star < max(cells)


# 5, 6, 7 -------------------------------------------------------------------------------------


def contrast_with_white(rgb: str) -> float:
    """WCAG contrast ratio of a CSS ``rgb(r, g, b)`` colour against white."""
    channels = [int(c) / 255 for c in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return 1.05 / (luminance + 0.05)


def test_every_pin_colour_reads_on_the_white_page(open_page):
    page = open_page()
    for _ in range(6):
        act(page, lambda: page.click("#pin"))
    colours = page.eval_on_selector_all(
        "#pins li", "items => items.map((li) => getComputedStyle(li).color)"
    )
    assert len(colours) == 6
    assert min(contrast_with_white(c) for c in colours) >= 3.0  # WCAG's minimum for graphics


def set_slider(page, key: str, value: float) -> None:
    script = f"""(() => {{ const s = document.getElementById('h-{key}'); s.value = {value!r};
        s.dispatchEvent(new Event('input', {{bubbles: true}})); }})()"""
    act(page, lambda: page.evaluate(script))


def test_the_step_label_shows_after_every_redraw(open_page):
    page = open_page()
    assert page.text_content("#stepLabel") == "step 100 / 100"
    act(page, lambda: page.fill("#epochs", "40") or page.dispatch_event("#epochs", "change"))
    assert page.text_content("#stepLabel") == "step 40 / 40"


def test_slider_values_are_rounded_alike_everywhere(open_page):
    page = open_page()
    set_slider(page, "lr", 0.482024336283186)
    assert page.input_value("#n-lr") == "0.482"
    assert page.evaluate("window.gdscope.state.hyper.lr") == 0.482
    act(page, lambda: page.click("#pin"))
    assert "0.482" in page.text_content("#command") and "0.4820" not in page.text_content(
        "#command"
    )
    pins = page.text_content("#pins")
    assert '"lr":0.482' in pins and "0.4820" not in pins
    assert '"lr":0.482' in urllib.parse.unquote(page.url)


# 8 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("box_id", ["n-lr", "epochs", "phaseXhi"])
def test_an_emptied_number_box_is_an_error_at_the_box_and_sends_nothing(open_page, box_id):
    page = open_page()
    page.wait_for_timeout(600)  # the phase panel's first request is debounced
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))
    before = page.evaluate("JSON.stringify(window.gdscope.state)")
    page.fill(f"#{box_id}", "")
    page.dispatch_event(f"#{box_id}", "change")
    page.wait_for_timeout(800)
    assert [url for url in sent if "/api/" in url] == []
    assert page.evaluate("JSON.stringify(window.gdscope.state)") == before
    assert page.get_attribute(f"#{box_id}", "aria-invalid") == "true"
    note = page.locator(f"#{box_id} + .boxError")
    assert note.is_visible() and "number" in note.text_content()
    # A number again clears the message, and is sent.
    page.fill(f"#{box_id}", "0.05" if box_id != "epochs" else "50")
    page.dispatch_event(f"#{box_id}", "change")
    page.wait_for_timeout(800)
    assert not note.is_visible() and any("/api/" in url for url in sent)


# 9 -----------------------------------------------------------------------------------------


def middle(rect: dict) -> float:
    return rect["y"] + rect["height"] / 2


def test_the_phase_controls_sit_in_one_row_per_axis(open_page):
    page = open_page()
    for axis in "XY":
        ids = [f"#phase{axis}", f"#phase{axis}lo", f"#phase{axis}hi"]
        rows = [middle(box(page, i)) for i in ids + (["#phaseXlog"] if axis == "X" else [])]
        assert max(rows) - min(rows) < 6, axis  # one line, no wrapping
        assert box(page, f"#phase{axis}lo")["width"] <= 120
    # The x axis's log box belongs to the x row, not before the y label.
    assert (
        box(page, "#phaseY")["y"] > box(page, "#phaseXlog")["y"] + box(page, "#phaseXlog")["height"]
    )
    assert page.locator("label", has=page.locator("#phaseXlog")).text_content().strip() == "log x"


def test_a_checkbox_label_stays_beside_its_box(open_page):
    page = open_page()
    act(page, lambda: page.select_option("#optimizer", "adam"))
    for row in page.locator("#hyper .knob:has(input[type=checkbox])").all():
        check = row.locator("input").bounding_box()
        lines = row.evaluate("""(row) => { const range = document.createRange();
            range.selectNodeContents(row.querySelector('label'));
            return [...range.getClientRects()].map((r) => [r.top, r.bottom]); }""")
        tops = {round(top) for top, _ in lines}
        assert max(tops) - min(tops) <= 4, row.get_attribute("data-hyper")  # one line
        assert lines[0][0] <= middle(check) <= lines[0][1]


def test_the_toolbar_leaves_the_panel_titles_free(open_page):
    page = open_page(width=1100)  # two narrow map columns
    for index in range(4):
        page.hover(f"#map-{index} .nsewdrag")
        bar = box(page, f"#map-{index} .modebar")
        title = box(page, f"#map-{index} .gtitle")
        assert bar is not None and title is not None
        assert title["x"] + title["width"] < bar["x"] or title["y"] > bar["y"] + bar["height"]


def test_the_surface_view_keeps_its_ticks_inside_the_panel(open_page, tmp_path):
    from PIL import Image

    page = open_page()
    act(page, lambda: page.select_option("#view", "surface"))
    page.wait_for_timeout(1500)  # WebGL draws after Plotly returns
    shot = tmp_path / "surface.png"
    page.locator("#map-0").screenshot(path=str(shot))
    with Image.open(shot) as image:
        pixels = image.convert("L")
        width, height = pixels.size
        edges = [(x, y) for x in range(width) for y in (height - 1, height - 2)]
        edges += [(x, y) for y in range(40, height) for x in (0, 1, width - 1, width - 2)]
        dark = [point for point in edges if pixels.getpixel(point) < 200]
    assert dark == []  # nothing drawn against the edge: no clipped tick label or title


# 10 ----------------------------------------------------------------------------------------


def test_png_download_holds_every_panel_and_replays(open_page, tmp_path):
    from PIL import Image

    page = open_page()
    with page.expect_download() as info:
        page.click("#downloadPng")
    saved = tmp_path / "explorer.png"
    shutil.copyfile(info.value.path(), saved)
    rec = read_record(saved)
    assert rec["kind"] == "plot" and rec["config"]["epochs"] == 100
    panels = page.evaluate("""(() => {
        const outer = document.getElementById('maps').getBoundingClientRect();
        return [...document.querySelectorAll('#maps > div')].map((d) => {
          const r = d.getBoundingClientRect();
          return [r.left - outer.left, r.top - outer.top, r.width, r.height]; }); })()""")
    assert len(panels) == 4
    with Image.open(saved) as image:
        rgb = image.convert("RGB")
        for left, top, width, height in panels:  # each panel's green start dot is in the file
            area = rgb.crop((int(left), int(top), int(left + width), int(top + height)))
            colours = {c for _, c in area.getcolors(maxcolors=1 << 20)}
            assert any(
                abs(r - 26) < 12 and abs(g - 150) < 12 and abs(b - 65) < 12 for r, g, b in colours
            )
    again = replay(saved, tmp_path / "replayed.png")
    assert read_record(again)["config"] == rec["config"]


# 11 ----------------------------------------------------------------------------------------


def loss_chart(page) -> dict:
    """The loss chart's y axis type, first trace's y values and title, as Plotly drew them."""
    return page.evaluate("""(() => { const d = document.getElementById('lossChart');
        return {type: d._fullLayout.yaxis.type, y: d.data[0].y,
                title: d.layout.title.text}; })()""")


def test_the_loss_chart_shows_negative_losses(open_page):
    page = open_page()
    page.select_option("#problem", "saddle")
    page.wait_for_function("location.hash.includes('saddle')")
    ready(page)
    losses = page.evaluate("window.gdscope.runs.runs[0].losses")
    assert min(v for v in losses if v is not None) < 0  # the premise: a saddle goes below 0
    chart = loss_chart(page)
    assert chart["type"] != "log"
    assert [y is None for y in chart["y"]] == [v is None for v in losses]
    assert sorted(range(len(losses)), key=lambda i: losses[i]) == sorted(
        range(len(losses)), key=lambda i: chart["y"][i]
    )
    assert "≤ 0" in chart["title"]


# 12 ----------------------------------------------------------------------------------------


def test_view_and_colour_changes_redraw_without_fetching(open_page):
    page = open_page()
    page.wait_for_timeout(600)
    sent: list[str] = []
    page.on("request", lambda request: sent.append(urllib.parse.urlparse(request.url).path))
    # every kind of change once (the 3-D surface is the costly one to draw: once is enough)
    for select, value in (("#color", "log"), ("#view", "contour"), ("#view", "surface"),
                          ("#view", "heatmap")):  # fmt: skip
        act(page, lambda s=select, v=value: page.select_option(s, v))
    page.wait_for_timeout(600)
    assert [p for p in sent if p in ("/api/landscape", "/api/trajectories", "/api/phase")] == []
    assert page.evaluate("document.getElementById('map-0').data[0].type") == "heatmap"


def test_signed_losses_within_a_decade_get_a_linear_axis(open_page):
    def signed(answer: dict) -> None:
        for run in answer["runs"]:
            run["losses"] = [0.5 - 0.01 * k for k in range(len(run["losses"]))]

    page = open_page(rewrite("/api/trajectories", signed))
    chart = loss_chart(page)
    assert chart["type"] == "linear" and "linear scale" in chart["title"]
    assert chart["y"][-1] == pytest.approx(0.5 - 0.01 * (len(chart["y"]) - 1))


@pytest.mark.browser
def test_compute_requests_carry_a_stream_key_and_a_rising_sequence(open_page):
    """The server stops a superseded request only if the page says which stream it belongs to."""
    page = open_page()
    seen: list[dict[str, str]] = []
    page.on("request", lambda r: seen.append(r.headers) if "/api/trajectories" in r.url else None)
    for value in ("0.05", "0.06"):
        act(page, lambda v=value: (page.fill("#n-lr", v), page.dispatch_event("#n-lr", "change")))
    main = [int(h["x-gdscope-seq"]) for h in seen if h.get("x-gdscope-key", "").endswith(":main")]
    assert len(main) == 2 and main[0] < main[1], seen


def test_a_count_metric_of_zeros_and_ones_is_not_drawn_as_yes_no(open_page):
    """Which metrics are yes/no is the server's word (/api/schema), not a guess from values."""

    def zeros_and_ones(answer: dict) -> None:
        answer["values"] = [[float((i + j) % 2) for j in range(len(answer["x"]))]
                            for i in range(len(answer["y"]))]  # fmt: skip

    page = open_page(rewrite("/api/phase", zeros_and_ones))
    page.wait_for_function("document.getElementById('phase').dataset.colour === 'yes/no'")
    page.select_option("#metric", "steps")
    page.wait_for_function("document.getElementById('phase').dataset.colour === 'linear'")


# a newcomer's phone, the 3-D ticks, the phase star ---------------------------------------------


def test_the_page_fits_a_390_px_phone_with_every_control_in_reach(open_page, tmp_path):
    page = open_page(width=390)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    controls = page.locator(
        "#controls input, #controls select, #actions button, #playback button, #phasePanel input,"
        " #phasePanel select"
    )
    assert controls.count() > 20
    for control in controls.all():
        control.scroll_into_view_if_needed()
        rect = control.bounding_box()
        assert rect is not None and rect["x"] >= 0 and rect["x"] + rect["width"] <= 390, (
            control.evaluate("(e) => e.id || e.outerHTML.slice(0, 60)")
        )
    for index in range(4):  # each map as wide as the screen, not cut off at its right
        rect = box(page, f"#map-{index}")
        assert rect["x"] >= 0 and rect["x"] + rect["width"] <= 390
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)


def test_the_surface_view_ticks_its_axes_away_from_the_corners(open_page):
    page = open_page()
    act(page, lambda: page.select_option("#view", "surface"))
    scene = page.evaluate("""(() => {
        const d = document.getElementById('map-0'), s = d.layout.scene;
        const z = d.data[0].z.flat().filter((v) => v !== null);
        return {ticks: [s.xaxis.tickvals, s.yaxis.tickvals, s.zaxis.tickvals],
                ranges: [[d.data[0].x[0], d.data[0].x.at(-1)], [d.data[0].y[0], d.data[0].y.at(-1)],
                         [Math.min(...z), Math.max(...z)]]}; })()""")
    for ticks, (lo, hi) in zip(scene["ticks"], scene["ranges"], strict=True):
        span = hi - lo
        assert 2 <= len(ticks) <= 7  # a few labels, not one at every unit
        # None near an end, where three axes meet at a corner of the box and labels collide.
        inner = (lo + span / 10 - 1e-9, hi - span / 10 + 1e-9)
        assert all(inner[0] <= t <= inner[1] for t in ticks), (ticks, lo, hi)


def test_the_phase_star_is_drawn_inside_the_diagram_or_said_to_be_outside(open_page):
    page = open_page()
    phase_drawn(page)
    assert page.evaluate("document.getElementById('phase').dataset.star") == "inside"
    assert page.locator("#phaseNote").text_content() == ""
    lr = page.evaluate("window.gdscope.state.hyper.lr")
    page.fill("#phaseXlo", str(lr * 5))  # the diagram now starts right of the current lr
    page.fill("#phaseXhi", str(lr * 50))
    page.locator("#phaseXhi").dispatch_event("change")
    page.locator("#phaseXlo").dispatch_event("change")
    page.wait_for_function("document.getElementById('phase').dataset.star === 'outside'")
    names = page.evaluate("document.getElementById('phase').data.map((t) => t.name)")
    assert "current" not in names  # no star stretching the axes to reach it
    cells = page.evaluate("document.getElementById('phase').data[0].x")
    x_range = page.evaluate("document.getElementById('phase')._fullLayout.xaxis.range")
    assert 10 ** x_range[0] > lr and min(cells) > lr  # the axes were not stretched to the star
    assert f"lr {lr}" in page.locator("#phaseNote").text_content()
    assert "lies outside this diagram" in page.locator("#phaseNote").text_content()
