"""The two ways to start gdscope besides the installed command: ``python -m gdscope`` and
``gdscope --version`` (the version from ``gdscope/version.py``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gdscope.cli.main import main
from gdscope.version import __version__


def test_version_in_process(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"gdscope {__version__}\n"


def test_python_dash_m_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "gdscope", "--version"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert (done.returncode, done.stdout) == (0, f"gdscope {__version__}\n")
    bad = subprocess.run([sys.executable, "-m", "gdscope", "plot", "--lr", "x"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_the_program_ends_a_ctrl_c_while_it_loads_in_one_line_and_only_then(monkeypatch):
    import signal

    from gdscope import interrupts
    from gdscope.cli import main as program

    seen = []
    loaded = sys.modules["gdscope.cli.main"]._groups

    def groups():  # what Ctrl-C would do while the command groups load
        seen.append(signal.getsignal(signal.SIGINT))
        return loaded()

    monkeypatch.setattr(sys.modules["gdscope.cli.main"], "_groups", groups)
    monkeypatch.setattr(sys, "argv", ["gdscope", "--version"])
    with pytest.raises(SystemExit):
        program()  # the program: no argv
    assert seen[0] is interrupts._starting
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    seen.clear()
    with pytest.raises(SystemExit):
        program(["--version"])  # called from Python: Ctrl-C is the caller's
    assert seen[0] is signal.default_int_handler
