"""gdscope: see what a PyTorch optimizer does.

The pipeline, one subpackage a layer (imports go downwards only): ``problem`` (data, losses,
test functions, 2-D maps) → ``optim`` (optimizer specs, batched update rules) → ``engines``
(the reference loop, the batched engine: ``Trajectory``) → ``studies`` (sweeps, phase
diagrams, shoot-outs) and ``nets`` (landscapes of any ``nn.Module``) → ``render`` (matplotlib
artists, animations) → ``jobs`` (compute, draw, save with a record) → ``cli`` and ``server``.
``docs/architecture.md`` has the map.

Importing the package changes nothing in the program that imports it (no signal handler, no
import hook, no setting of torch's or of ``warnings``) and loads nothing heavy: each name below
is imported from its module when first asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gdscope.version import __version__

if TYPE_CHECKING:  # the names for type checkers; at run time ``__getattr__`` imports them
    from gdscope.engines.batched import run_batched
    from gdscope.engines.reference import train
    from gdscope.engines.trajectory import Trajectory
    from gdscope.errors import GdscopeError
    from gdscope.jobs.connect import draw_connect
    from gdscope.jobs.export import save_trajectories
    from gdscope.jobs.hessian import draw_sharpness, draw_spectrum
    from gdscope.jobs.landscape import draw_landscape, model_landscape
    from gdscope.jobs.plot import make_animation, make_plot
    from gdscope.jobs.plotconfig import PlotConfig, load_toml
    from gdscope.nets.curvature import curvature
    from gdscope.nets.curves import connect
    from gdscope.nets.fit import fit
    from gdscope.nets.recorder import Recorder
    from gdscope.optim.sgdconfig import SGDConfig
    from gdscope.problem.data import CsvData, Dataset, DataSpec, load_csv, make_data
    from gdscope.problem.losses import ARTICLE_LOSSES, LossSpec
    from gdscope.problem.maps import Grid, Landscape, loss_map
    from gdscope.problem.testfunctions import FUNCTIONS, TestFunction
    from gdscope.server.notebook import board, explore
    from gdscope.studies.netstudy import Network, compare_network, run_network_grid

_EXPORTS = {
    "ARTICLE_LOSSES": "problem.losses",
    "CsvData": "problem.data",
    "DataSpec": "problem.data",
    "Dataset": "problem.data",
    "FUNCTIONS": "problem.testfunctions",
    "GdscopeError": "errors",
    "Grid": "problem.maps",
    "Landscape": "problem.maps",
    "LossSpec": "problem.losses",
    "Network": "studies.netstudy",
    "PlotConfig": "jobs.plotconfig",
    "Recorder": "nets.recorder",
    "SGDConfig": "optim.sgdconfig",
    "TestFunction": "problem.testfunctions",
    "Trajectory": "engines.trajectory",
    "board": "server.notebook",
    "compare_network": "studies.netstudy",
    "connect": "nets.curves",
    "curvature": "nets.curvature",
    "draw_connect": "jobs.connect",
    "draw_landscape": "jobs.landscape",
    "draw_sharpness": "jobs.hessian",
    "draw_spectrum": "jobs.hessian",
    "explore": "server.notebook",
    "fit": "nets.fit",
    "load_csv": "problem.data",
    "load_toml": "jobs.plotconfig",
    "loss_map": "problem.maps",
    "make_animation": "jobs.plot",
    "make_data": "problem.data",
    "make_plot": "jobs.plot",
    "model_landscape": "jobs.landscape",
    "run_batched": "engines.batched",
    "run_network_grid": "studies.netstudy",
    "save_trajectories": "jobs.export",
    "train": "engines.reference",
}
"""Each public name and the module (under ``gdscope.``) that defines it."""


def __getattr__(name: str) -> object:
    """A name of ``_EXPORTS``, imported from its module the first time it is asked for; an old
    module path (``gdscope.plots``, see ``_moved``) with a ``DeprecationWarning``."""
    import importlib

    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"gdscope.{_EXPORTS[name]}"), name)
        globals()[name] = value  # asked once: later look-ups find it without this function
        return value
    from gdscope._moved import moved

    module = moved(name)
    if module is not None:
        return module
    raise AttributeError(f"module 'gdscope' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "ARTICLE_LOSSES",
    "FUNCTIONS",
    "CsvData",
    "DataSpec",
    "Dataset",
    "GdscopeError",
    "Grid",
    "Landscape",
    "LossSpec",
    "Network",
    "PlotConfig",
    "Recorder",
    "SGDConfig",
    "TestFunction",
    "Trajectory",
    "__version__",
    "board",
    "compare_network",
    "connect",
    "curvature",
    "draw_connect",
    "draw_landscape",
    "draw_sharpness",
    "draw_spectrum",
    "explore",
    "fit",
    "load_csv",
    "load_toml",
    "loss_map",
    "make_animation",
    "make_data",
    "make_plot",
    "model_landscape",
    "run_batched",
    "run_network_grid",
    "save_trajectories",
    "train",
]
