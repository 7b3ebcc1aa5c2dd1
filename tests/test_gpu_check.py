"""benchmarks/gpu_check.py runs on a CPU too (tiny sizes), so it works the day a GPU is lent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_the_gpu_check_runs_every_figure_on_the_cpu():
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick"],
                          capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    figures = rows[1:]  # after the header
    assert len(figures) == 6, done.stdout
    assert any("plane" in row for row in figures) and any("Hessian" in row for row in figures)
    assert sum("vs recipe" in row for row in figures) == 2
