"""Importing gdscope changes nothing in the program that imports it: no Ctrl-C handler (a user's
``python -m mypkg.loop`` whose package imports gdscope keeps its ``finally``), no import hook,
no ``warnings`` filter, no torch or matplotlib setting. The public names load on first use;
the old flat module paths (``gdscope.plots``) resolve with a ``DeprecationWarning``."""

from __future__ import annotations

import ast
import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import gdscope
from gdscope._moved import MOVED

SRC = str(Path(gdscope.__file__).resolve().parents[1])
START_TIMEOUT_S = 180.0


def _env(*paths: str) -> dict[str, str]:
    """This environment with ``paths`` (then gdscope's sources) first on the module path."""
    given = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (*paths, SRC, given) if p)}


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_a_user_package_that_imports_gdscope_keeps_its_ctrl_c(tmp_path):
    # Python sets sys.argv[0] to "-m" while it imports mypkg (the parent of the module run):
    # gdscope once took that for its own command and made Ctrl-C end the program at once.
    _write(tmp_path, {
        "mypkg/__init__.py": """
            import gdscope
            from gdscope import SGDConfig, train  # (torch loaded too)
            """,
        "mypkg/loop.py": """
            import pathlib
            import sys
            import time

            ready, done = map(pathlib.Path, sys.argv[1:3])
            try:
                ready.write_text("looping")
                while True:
                    time.sleep(0.01)
            finally:
                done.write_text("the finally ran")
            """,
    })  # fmt: skip
    ready, done = tmp_path / "ready", tmp_path / "done"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mypkg.loop", str(ready), str(done)], cwd=tmp_path,
        env=_env(str(tmp_path)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    waited = 0.0
    while not ready.exists() and proc.poll() is None and waited < START_TIMEOUT_S:
        time.sleep(0.05)
        waited += 0.05
    assert ready.exists(), proc.communicate(timeout=60)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert done.read_text() == "the finally ran"
    assert proc.returncode == -signal.SIGINT  # Python's own end for an uncaught Ctrl-C
    assert "KeyboardInterrupt" in err and "gdscope" not in out + err.replace(SRC, "")


PROBE = """
    import json
    import signal
    import sys
    import warnings

    import matplotlib
    import numpy
    import torch


    def state():
        handlers = {}
        for number in signal.valid_signals():
            try:
                handlers[int(number)] = repr(signal.getsignal(number))
            except (OSError, ValueError):
                pass
        return {
            "signals": handlers,
            "meta_path": [repr(f) for f in sys.meta_path],
            "path_hooks": [repr(h) for h in sys.path_hooks],
            "excepthook": repr(sys.excepthook),
            "unraisablehook": repr(sys.unraisablehook),
            "warnings": [repr(f) for f in warnings.filters],
            "showwarning": repr(warnings.showwarning),
            "dtype": str(torch.get_default_dtype()),
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "grad": torch.is_grad_enabled(),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "matmul_precision": torch.get_float32_matmul_precision(),
            "anomaly": torch.is_anomaly_enabled(),
            "numpy_errors": numpy.geterr(),
            "backend": matplotlib.get_backend(),
            "rc": {k: repr(v) for k, v in matplotlib.rcParams.items()},
        }


    before = state()
    import gdscope

    names = [getattr(gdscope, name) for name in gdscope.__all__]  # every public name, loaded
    after = state()
    print(json.dumps({k: [before[k], after[k]] for k in before if before[k] != after[k]}))
    """


@pytest.mark.slow
def test_importing_gdscope_and_every_public_name_changes_no_setting(tmp_path):
    # Run as ``python -m probe``: the import happens while sys.argv[0] is "-m".
    _write(tmp_path, {"probe.py": PROBE})
    done = subprocess.run([sys.executable, "-m", "probe"], cwd=tmp_path, env=_env(str(tmp_path)),
                          capture_output=True, text=True, timeout=START_TIMEOUT_S)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {}


def test_importing_the_package_loads_nothing_heavy():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, gdscope, gdscope.cli; "
         "print(sorted(m for m in ('torch', 'matplotlib', 'numpy') if m in sys.modules))"],
        env=_env(), capture_output=True, text=True, timeout=START_TIMEOUT_S,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr


def _type_checking_names() -> dict[str, str]:
    """The names ``gdscope/__init__.py`` imports for type checkers, and their modules."""
    tree = ast.parse(Path(gdscope.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If))
    froms = [node for node in block.body if isinstance(node, ast.ImportFrom) and node.module]
    return {alias.name: str(node.module).removeprefix("gdscope.") for node in froms
            for alias in node.names}  # fmt: skip


def test_the_public_names_are_listed_alike_for_people_type_checkers_and_the_lazy_import():
    exports = gdscope._EXPORTS
    assert _type_checking_names() == exports
    assert set(gdscope.__all__) == {*exports, "__version__"}
    for name, module in exports.items():
        assert getattr(gdscope, name) is getattr(importlib.import_module(f"gdscope.{module}"), name)
    assert set(gdscope.__all__) <= set(dir(gdscope))


@pytest.mark.parametrize("old", sorted(set(MOVED) - set(gdscope.__all__)))
def test_an_old_module_path_is_the_new_module_with_a_deprecation_warning(old):
    new = importlib.import_module(f"gdscope.{MOVED[old]}")
    with pytest.warns(DeprecationWarning, match=f"gdscope.{old} is now gdscope.{MOVED[old]}"):
        assert getattr(gdscope, old) is new


def test_the_warning_names_the_line_that_used_the_old_path():
    with pytest.warns(DeprecationWarning) as caught:
        from gdscope import plots  # noqa: F401
    assert {Path(w.filename).name for w in caught} == {Path(__file__).name}


def test_an_old_name_shadowed_by_a_public_one_is_the_public_one():
    from gdscope.engines.reference import train

    assert "train" in MOVED and gdscope.train is train  # the function, as documented


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'plotz'"):
        gdscope.plotz  # noqa: B018
    with pytest.raises(ModuleNotFoundError):  # no import hook: old paths are attributes only
        importlib.import_module("gdscope.plots")
