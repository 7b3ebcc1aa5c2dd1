"""Module paths of gdscope 0.1's flat layout, still importable: ``gdscope.plots`` is
``gdscope.render.panels`` and so on. The table below is the only place the old names live.

An import of an old path returns the new module itself (not a copy), so ``monkeypatch`` and
``isinstance`` see one object whichever path was used.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

__all__ = ["MOVED", "install"]

MOVED = {
    "output": "files",
    "data": "problem.data",
    "losses": "problem.losses",
    "functions": "problem.testfunctions",
    "objectives": "problem.objective",
    "landscape": "problem.maps",
    "stability": "problem.stability",
    "optimizers": "optim.specs",
    "sgd": "optim.sgdconfig",
    "transforms": "optim.rules",
    "trajectory": "engines.trajectory",
    "train": "engines.reference",
    "batched": "engines.batched",
    "batches": "engines.minibatch",
    "native": "engines.native",
    "recorder": "nets.recorder",
    "trainer": "nets.fit",
    "directions": "nets.directions",
    "projection": "nets.projection",
    "modelscape": "nets.plane",
    "distributed": "nets.distributed",
    "surfacefiles": "nets.surface_io",
    "sweep": "studies.sweep",
    "phase": "studies.phase",
    "compare": "studies.shootout",
    "plots": "render.panels",
    "overlays": "render.overlays",
    "surface": "render.surface3d",
    "charts": "render.studycharts",
    "diagrams": "render.nesterov",
    "animation": "render.animation",
    "netviews": "render.networks",
    "config": "jobs.plotconfig",
    "figures": "jobs.plot",
    "article": "jobs.article",
    "reproduce": "jobs.reproduce",
    "replay": "jobs.replay",
    "export": "jobs.export",
    "netjobs": "jobs.landscape",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``gdscope.<old>`` and loads it as the module that lives at the new path."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.partition(".")
        if package == "gdscope" and name in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(f"gdscope.{MOVED[spec.name.partition('.')[2]]}")

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the new module was executed when it was imported."""


def install() -> None:
    """Put the alias finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Alias())
