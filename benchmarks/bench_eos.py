"""The whole of ``gdscope example eos``, timed: the command itself in a fresh Python process
(imports, the three full-batch runs with their sharpness, the figure and the curves), its wall
time and CPU time (both cores' seconds), with the load average before and after, and each
run's median sharpness over the second half against 2/η.

    python benchmarks/bench_eos.py                  # once, into a temporary directory
    python benchmarks/bench_eos.py --repeat 3 --keep eos   # the last run's files kept in eos/
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

import numpy as np
import torch


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _medians(curves: Path) -> str:
    runs = json.loads(curves.read_text())["runs"]
    parts = []
    for run in runs:
        values = np.array([row[0] for row in run["sharpness"]["values"]], dtype=float)
        median = float(np.median(values[len(values) // 2 :]))
        parts.append(f"η={run['lr']:g}: {median:.3f}/{2 / run['lr']:.3f}")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="copy the last run's eos.png and eos.json here")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    print("| run | wall s | CPU s | load before (1/5/15 min) | load after | median sharpness, "
          "second half / 2/η |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for index in range(args.repeat):
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "eos"
            before, cpu = os.getloadavg(), _children_cpu()
            began = time.perf_counter()
            command = [sys.executable, "-m", "gdscope", "example", "eos", "--out", str(out)]
            subprocess.run(command, check=True, capture_output=True)  # only the table prints
            wall, cpu = time.perf_counter() - began, _children_cpu() - cpu
            after = os.getloadavg()
            load = "/".join(f"{x:.1f}" for x in before), "/".join(f"{x:.1f}" for x in after)
            print(f"| {index + 1} | {wall:.1f} | {cpu:.1f} | {load[0]} | {load[1]} | "
                  f"{_medians(out / 'eos.json')} |", flush=True)  # fmt: skip
            if args.keep is not None and index == args.repeat - 1:
                args.keep.mkdir(parents=True, exist_ok=True)
                for name in ("eos.png", "eos.json"):
                    shutil.copyfile(out / name, args.keep / name)


if __name__ == "__main__":
    main()
