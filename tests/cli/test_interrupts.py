"""Ctrl-C at any moment of a long command: exit 130 (the time it took is printed, never
asserted: a loaded machine may take long; a hang fails after 60 s), one line saying
what was kept, no traceback, and every file written complete and readable.

Each test runs ``python -m gdscope …`` in a subprocess and sends it SIGINT at a moment it
recognises from the outside: the progress bar's first line (before any chunk finished, the
total already shown), a bar showing finished configurations (mid-run), a file printed on stdout
(mid-run, between files), or the temporary file ``files.write_atomic`` writes into (saving;
not the empty ``.probe`` file an output's check makes and removes at once, which must not be
left either).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gdscope
from gdscope.files import PROBE_SUFFIX

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")]

SRC = str(Path(gdscope.__file__).resolve().parents[1])
START_TIMEOUT_S = 180.0

Moment = Callable[["Running"], bool]


class Running:
    """A ``gdscope`` subprocess whose stderr is a terminal (so it draws its progress bar)."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (SRC, os.environ.get("PYTHONPATH")) if p)}  # fmt: skip
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # tqdm's width
        self.cwd = cwd
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gdscope", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=slave, text=True,
        )  # fmt: skip
        os.close(slave)
        self.err, self.out = "", ""
        self._readers = [
            threading.Thread(target=self._read_pty, args=(master,), daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_pty(self, fd: int) -> None:
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            self.err += chunk.decode(errors="replace")
        os.close(fd)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.out += line

    def bar(self) -> tuple[int, int] | None:
        """The progress bar's latest ``done/total``."""
        found = re.findall(r"(\d+)/(\d+) \[", self.err)
        return (int(found[-1][0]), int(found[-1][1])) if found else None

    def saving(self) -> bool:
        return any(p.name.endswith(".tmp") for p in self.cwd.rglob(".*"))

    def interrupt_when(self, moment: Moment) -> float:
        """Wait for ``moment``, send SIGINT, wait for the exit: seconds from signal to exit."""
        began = time.monotonic()
        while not moment(self):
            if self.proc.poll() is not None:
                pytest.fail(f"ended before the moment came:\n{self.err}\n{self.out}")
            if time.monotonic() - began > START_TIMEOUT_S:
                self.proc.kill()
                pytest.fail(f"the moment never came:\n{self.err}")
            time.sleep(0.002)
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail("SIGINT was not honoured within 60 s")
        took = time.monotonic() - sent
        for reader in self._readers:
            reader.join(timeout=10)
        return took


@dataclass(frozen=True)
class Outcome:
    took: float
    line: str
    err: str
    out: str


def interrupt(args: list[str], cwd: Path, moment: Moment) -> Outcome:
    """Run, interrupt at ``moment`` and check what every interruption must do."""
    running = Running(args, cwd)
    took = running.interrupt_when(moment)
    err = running.err.replace("\r", "\n")
    print(f"{args[0]}: exit {took:.2f} s after SIGINT")  # shown with -s: the measured numbers
    assert running.proc.returncode == 130, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("gdscope:")]
    assert len(lines) == 1 and lines[0].startswith("gdscope: interrupted"), err
    left = [p for p in cwd.rglob(".*") if p.name.endswith((".tmp", PROBE_SUFFIX))]
    assert not left, f"a temporary file left: {left}"
    for path in cwd.rglob("*"):
        if path.is_file():
            readable(path)
    return Outcome(took, lines[0], err, running.out)


def readable(path: Path) -> None:
    """Open the file as its kind is read; fails on a truncated one."""
    suffix = path.suffix
    if suffix == ".png":
        with Image.open(path) as image:
            image.load()
    elif suffix == ".gif":
        with Image.open(path) as image:
            image.seek(image.n_frames - 1)
            image.load()
    elif suffix == ".npz":
        with np.load(path) as arrays:
            for name in arrays.files:
                arrays[name]  # decompresses: a cut file fails here
    elif suffix == ".json":
        json.loads(path.read_text())
    elif suffix == ".csv":
        assert path.read_text().splitlines()[1].startswith("cell,")
    elif suffix == ".html":
        assert path.read_text().rstrip().endswith("</html>")


def bar_shown(running: Running) -> bool:
    return running.bar() is not None


def some_finished(running: Running) -> bool:
    shown = running.bar()
    return shown is not None and 0 < shown[0] < shown[1]


def printed(text: str) -> Moment:
    return lambda running: text in running.out


def saving(running: Running) -> bool:
    return running.saving()


def kept_configurations(line: str) -> tuple[int, int] | None:
    found = re.search(r"kept (\d+) of (\d+) configurations", line)
    return (int(found[1]), int(found[2])) if found else None


PHASE = ["phase", "--x", "lr=0.001:0.5:64", "--y", "momentum=0:0.99:32", "--epochs", "20000",
         "--out", "p.png", "--save", "p.npz"]  # fmt: skip
SWEEP = ["sweep", "--optimizer", "adam", "--vary", "lr=0.01:0.5:8", "--vary", "beta1=0,0.5,0.9",
         "--epochs", "1500", "--out", "s.png", "--save", "s.json"]  # fmt: skip


def test_phase_mid_run_keeps_the_finished_cells(tmp_path):
    outcome = interrupt(PHASE, tmp_path, some_finished)
    kept = kept_configurations(outcome.line)
    assert kept is not None and 0 < kept[0] < kept[1] == 2048, outcome.line
    completed = np.load(tmp_path / "p.npz")["completed"]
    assert completed.sum() == kept[0] and completed[: kept[0]].all()  # row order, no gaps
    assert outcome.out.splitlines() == ["p.png", "p.npz"]


def test_phase_while_saving_finishes_the_files(tmp_path):
    outcome = interrupt(PHASE, tmp_path, saving)
    kept = kept_configurations(outcome.line)
    assert kept is not None and kept[0] > 0, outcome.line
    assert {p.name for p in tmp_path.iterdir()} == {"p.png", "p.npz"}


def test_sweep_mid_run_keeps_the_finished_panels(tmp_path):
    # Drawing the 16 finished panels is the slow part (matplotlib: ~1 s alone, 6 s on a
    # shared, loaded 2-core machine); Ctrl-C still ends the run at once.
    outcome = interrupt(SWEEP, tmp_path, some_finished)
    kept = kept_configurations(outcome.line)
    assert kept is not None and 0 < kept[0] < kept[1] == 24, outcome.line
    cells = json.loads((tmp_path / "s.json").read_text())["cells"]
    assert sum(cell["completed"] for cell in cells) == kept[0]


def test_sweep_before_any_chunk_finished_writes_nothing(tmp_path):
    outcome = interrupt(SWEEP, tmp_path, bar_shown)
    assert outcome.line == "gdscope: interrupted: nothing finished; nothing written"
    assert not list(tmp_path.iterdir())


def test_compare_while_saving(tmp_path):
    interrupt(["compare", "--budget", "300", "--out", "c.png", "--save", "c.json"], tmp_path,
              saving)  # fmt: skip


def test_landscape_mid_run(tmp_path):
    args = ["landscape", "--model", "gdscope.examples.mlp:make_model", "--data",
            "gdscope.examples.mlp:make_loader", "--x", "-1", "1", "11", "--y", "-1", "1", "11",
            "--chunk", "8", "--out", "l.png", "--save", "l.npz"]  # fmt: skip
    outcome = interrupt(args, tmp_path, some_finished)
    found = re.search(r"kept (\d+) of (\d+) grid points", outcome.line)
    assert found is not None and 0 < int(found[1]) < int(found[2]) == 121, outcome.line
    with np.load(tmp_path / "l.npz") as saved:
        assert np.isnan(saved["loss"]).sum() >= 121 - int(found[1])  # the rest left blank
    assert (tmp_path / "l.png").exists()


def test_example_between_files_keeps_those_written(tmp_path):
    outcome = interrupt(["example", "mlp", "--out", "ex", "--epochs", "1", "--grid", "61"],
                        tmp_path, printed("mlp-sgd.npz"))  # fmt: skip
    written = sorted(p.name for p in (tmp_path / "ex").iterdir())
    assert written[:2] == ["mlp-sgd.npz", "mlp-sgd.png"]
    for name in written:
        assert name in outcome.line


def test_animate_while_drawing_frames_writes_the_film_so_far(tmp_path):
    outcome = interrupt(["animate", "--out", "a.gif", "--epochs", "200"], tmp_path, some_finished)
    found = re.search(r"kept the first (\d+) of (\d+) frames", outcome.line)
    assert found is not None and 0 < int(found[1]) < int(found[2]), outcome.line
    with Image.open(tmp_path / "a.gif") as film:  # identical frames may be merged
        assert 1 <= film.n_frames <= int(found[1])


def test_reproduce_between_figures_keeps_the_finished_ones(tmp_path):
    outcome = interrupt(["reproduce", "--out", "r"], tmp_path, printed("Fig.  2"))
    figures = sorted((tmp_path / "r").glob("*.png"))
    assert len(figures) >= 2 and f"kept {len(figures)} file(s)" in outcome.line
