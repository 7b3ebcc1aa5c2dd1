"""The whole of ``gdscope example connect``, timed: the command itself in a fresh Python
process (imports, two digits MLPs trained, the Bézier curve trained between them, the line, the
curve and the plane measured, the figure and the numbers written), its wall time and CPU time
(both cores' seconds), with the load average before and after, the highest loss along the
straight line and along the curve (and the ends'), and the lowest training accuracy along each.

    python benchmarks/bench_connect.py                      # once, into a temporary directory
    python benchmarks/bench_connect.py --repeat 3 --keep c  # the last run's files kept in c/
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _losses(numbers: Path) -> str:
    saved = json.loads(numbers.read_text())
    ends = max(saved["line_loss"][0], saved["line_loss"][-1])
    lowest = (100 * min(saved[f"{path}_accuracy"]) for path in ("line", "curve"))
    return f"{saved['line_max']:.4g} | {saved['curve_max']:.4g} | {ends:.3g} | " + " | ".join(
        f"{value:.1f}%" for value in lowest
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="copy the last run's files here")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} (the example runs on one thread)")  # fmt: skip
    print("| run | wall s | CPU s | load before (1/5/15 min) | load after | highest loss, line "
          "| highest loss, curve | the ends' | lowest accuracy, line | curve |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for index in range(args.repeat):
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "connect"
            before, cpu = os.getloadavg(), _children_cpu()
            began = time.perf_counter()
            command = [sys.executable, "-m", "gdscope", "example", "connect", "--out", str(out)]
            subprocess.run(command, check=True, capture_output=True)  # only the table prints
            wall, cpu = time.perf_counter() - began, _children_cpu() - cpu
            after = os.getloadavg()
            load = "/".join(f"{x:.1f}" for x in before), "/".join(f"{x:.1f}" for x in after)
            print(f"| {index + 1} | {wall:.1f} | {cpu:.1f} | {load[0]} | {load[1]} | "
                  f"{_losses(out / 'connect.json')} |", flush=True)  # fmt: skip
            if args.keep is not None and index == args.repeat - 1:
                args.keep.mkdir(parents=True, exist_ok=True)
                for path in out.iterdir():
                    shutil.copyfile(path, args.keep / path.name)


if __name__ == "__main__":
    main()
