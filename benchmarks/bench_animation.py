"""Time ``gdscope animate``'s work: the article's four panels, 100 epochs, GIF and MP4.

Prints a table (seconds, frames, file size); the issue's target is under 30 s per animation.
"""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path

from gdscope.jobs.plot import make_animation
from gdscope.jobs.plotconfig import PlotConfig
from gdscope.optim.specs import OptimizerSpec
from gdscope.render.animation import AnimationOptions


def main() -> None:
    config = PlotConfig(optimizer=OptimizerSpec.of("sgd", lr=0.1, momentum=0.9), epochs=100)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for suffix in ("gif", "mp4"):
            out = Path(folder) / f"a.{suffix}"
            began = time.perf_counter()
            make_animation(config, out, options=AnimationOptions(fps=20))
            rows.append((suffix, time.perf_counter() - began, out.stat().st_size))
    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()}")
    print("| format | panels | frames | seconds | size |")
    print("|---|---|---|---|---|")
    for suffix, seconds, size in rows:
        print(f"| {suffix} | 4 | 101 | {seconds:.1f} | {size / 1e6:.1f} MB |")


if __name__ == "__main__":
    main()
