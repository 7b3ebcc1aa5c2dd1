"""The example notebooks (examples/notebooks/) run top to bottom in a fresh kernel, as CI runs
them (nbclient): any cell's error fails the test, and each notebook must have drawn figures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import require

nbformat = require("nbformat")
nbclient = require("nbclient")
require("ipykernel")

NOTEBOOKS = sorted((Path(__file__).parents[1] / "examples" / "notebooks").glob("*.ipynb"))


def test_there_are_the_two_notebooks():
    assert [n.name for n in NOTEBOOKS] == ["article.ipynb", "own-model.ipynb"]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_the_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    source = Path(__file__).parents[1] / "src"
    # the kernel imports this tree's gdscope (and starts this Python's kernel)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(source), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    book = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(  # the python3 kernel: this Python's (ipykernel's own)
        book, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    images = [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]  # fmt: skip
    assert len(images) >= 1
