"""Explorer latency: from moving a slider to the redrawn maps, measured inside Chromium.

Starts ``gdscope serve`` on a free loopback port, opens the page in Debian's Chromium
(headless), moves the learning-rate slider N times (waiting for each redraw) and prints the
distribution of input-to-redraw times, for the four article panels and for one panel.
Run: ``python benchmarks/bench_explorer.py [--moves 60]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics

from playwright.sync_api import sync_playwright

from gdscope.server.launch import running_server

MEASURE = """async (value) => {
  const before = window.gdscope.renders;
  const t0 = performance.now();
  const s = document.getElementById('h-lr');
  s.value = value; s.dispatchEvent(new Event('input', {bubbles: true}));
  while (!(window.gdscope.renders > before && document.body.dataset.ready === 'true')) {
    await new Promise(r => requestAnimationFrame(r));
  }
  await new Promise(r => requestAnimationFrame(r));  // the frame that shows it
  return performance.now() - t0;
}"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--moves", type=int, default=60)
    args = parser.parse_args()
    with running_server() as url, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium"),
            args=["--no-sandbox", "--disable-background-networking", "--no-first-run"],
        )
        # bypass_csp: Playwright's wait_for_function uses eval, which the page's policy forbids.
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
        print("| view | moves | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) |")
        print("|---|---:|---:|---:|---:|---:|")
        for view, fragment in (("four panels", ""), ("one panel (MSE)", "loss-mse")):
            page.goto(url + "/")
            page.wait_for_function("document.body.dataset.ready === 'true'", timeout=60_000)
            if fragment:
                page.select_option("#loss", "mse")
                page.wait_for_timeout(1500)
            page.wait_for_timeout(1000)
            times, fetch, draw, maps = [], [], [], []
            for i in range(args.moves):
                times.append(page.evaluate(MEASURE, 0.02 + 0.9 * (i % 37) / 37))
                timing = page.evaluate("window.gdscope.timing")
                fetch.append(timing["fetch_ms"])
                draw.append(timing["draw_ms"])
                maps.append(timing["maps_ms"])
            print(
                f"<!-- {view}: median fetch {statistics.median(fetch):.0f} ms, draw "
                f"{statistics.median(draw):.0f} ms (maps {statistics.median(maps):.0f}) -->"
            )
            p95, p99 = percentile(times, 95), percentile(times, 99)
            print(
                f"| {view} | {len(times)} | {statistics.median(times):.0f} | "
                f"{p95:.0f} | {p99:.0f} | {max(times):.0f} |"
            )
        browser.close()


if __name__ == "__main__":
    main()
