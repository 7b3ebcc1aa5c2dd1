"""Module paths of gdscope 0.1's flat layout: ``gdscope.plots`` is ``gdscope.render.panels``
and so on. The table below is the only place the old names live.

``gdscope.plots`` (or ``from gdscope import plots``) still gives the new module itself (not a
copy, so ``monkeypatch`` and ``isinstance`` see one object whichever name was used), through
the package's ``__getattr__``, with a ``DeprecationWarning`` naming the new path. ``import
gdscope.plots`` and ``from gdscope.plots import …`` no longer work: offering them would take an
import hook on ``sys.meta_path``, which every import of the whole program would pass through.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

__all__ = ["MOVED", "moved"]

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


def moved(name: str) -> ModuleType | None:
    """The module ``gdscope.<name>`` moved to, with a ``DeprecationWarning`` naming it; None
    when ``name`` is not an old path."""
    if name not in MOVED:
        return None
    new = f"gdscope.{MOVED[name]}"
    # stacklevel 3: the warning names the line that asked (this, the package's __getattr__, it).
    warnings.warn(f"gdscope.{name} is now {new}; import it from there", DeprecationWarning,
                  stacklevel=3)  # fmt: skip
    return importlib.import_module(new)
