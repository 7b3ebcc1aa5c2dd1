"""What a snapshot costs as a streamed recording grows: ``Recorder(path=...)`` on a 3-parameter
model, one snapshot per step, timed in blocks of ``--block`` steps.

Prints a table (microseconds per snapshot, block by block). The target: flat. Appending a
snapshot writes one row to ``snapshots.f32`` and one to ``steps.bin`` and never rewrites the
index, so the last block costs what the first does (before ``steps.bin``, the index was
rewritten at every snapshot and each block of 2000 steps took ~0.8 s longer than the last).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from gdscope.nets.recorder import Recorder, open_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", type=int, default=2000)
    parser.add_argument("--blocks", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}")
    print("| steps so far | µs per snapshot |")
    print("|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        recorder = Recorder(nn.Linear(2, 1), path=Path(folder) / "rec")
        for block in range(args.blocks):
            began = time.perf_counter()
            for _ in range(args.block):
                recorder.step(0.5)
            seconds = time.perf_counter() - began
            print(f"| {(block + 1) * args.block:,} | {1e6 * seconds / args.block:.1f} |")
        assert len(open_path(Path(folder) / "rec")) == 1 + args.blocks * args.block


if __name__ == "__main__":
    main()
