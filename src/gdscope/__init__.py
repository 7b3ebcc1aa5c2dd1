"""gdscope: see what a PyTorch optimizer does.

The pipeline, one subpackage a layer (imports go downwards only): ``problem`` (data, losses,
test functions, 2-D maps) → ``optim`` (optimizer specs, batched update rules) → ``engines``
(the reference loop, the batched engine: ``Trajectory``) → ``studies`` (sweeps, phase
diagrams, shoot-outs) and ``nets`` (landscapes of any ``nn.Module``) → ``render`` (matplotlib
artists, animations) → ``jobs`` (compute, draw, save with a record) → ``cli`` and ``server``.
``docs/architecture.md`` has the map.
"""

from __future__ import annotations

from gdscope.interrupts import quiet_start as _quiet_start

_quiet_start()  # the command: Ctrl-C while torch imports ends quietly (exit 130)

from gdscope._moved import install as _install_moved_modules  # noqa: E402
from gdscope.version import __version__  # noqa: E402

_install_moved_modules()

from gdscope.engines.reference import train  # noqa: E402
from gdscope.engines.trajectory import Trajectory  # noqa: E402
from gdscope.errors import GdscopeError  # noqa: E402
from gdscope.jobs.plotconfig import PlotConfig, load_toml  # noqa: E402
from gdscope.nets.recorder import Recorder  # noqa: E402
from gdscope.optim.sgdconfig import SGDConfig  # noqa: E402
from gdscope.problem.data import CsvData, Dataset, DataSpec, load_csv, make_data  # noqa: E402
from gdscope.problem.losses import ARTICLE_LOSSES, LossSpec  # noqa: E402
from gdscope.problem.maps import Grid, Landscape, loss_map  # noqa: E402
from gdscope.problem.testfunctions import FUNCTIONS, TestFunction  # noqa: E402

# Heavier entry points, imported on first use (matplotlib, the batched engine, the nets jobs).
_LAZY = {
    "make_plot": "jobs.plot",
    "make_animation": "jobs.plot",
    "save_trajectories": "jobs.export",
    "run_batched": "engines.batched",
    "fit": "nets.fit",
    "model_landscape": "jobs.landscape",
    "draw_landscape": "jobs.landscape",
    "explore": "server.notebook",
    "curvature": "nets.curvature",
    "Network": "studies.netstudy",
    "run_network_grid": "studies.netstudy",
    "compare_network": "studies.netstudy",
    "draw_spectrum": "jobs.hessian",
    "draw_sharpness": "jobs.hessian",
}


def __getattr__(name: str) -> object:
    """The entry points in ``_LAZY``, imported when first asked for."""
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(f"gdscope.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'gdscope' has no attribute {name!r}")


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
    "compare_network",
    "curvature",
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
