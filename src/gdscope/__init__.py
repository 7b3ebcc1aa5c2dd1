"""gdscope: see what a PyTorch optimizer does.

The pipeline: a problem (``make_data`` + a ``LossSpec``, or a ``TestFunction``) → ``train`` (or
``run_batched`` for many configurations) records a ``Trajectory``
→ ``loss_map`` samples a ``Landscape`` → renderers in ``gdscope.plots`` draw them.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import PlotConfig, load_toml
from .data import CsvData, Dataset, DataSpec, load_csv, make_data
from .errors import GdscopeError
from .functions import FUNCTIONS, TestFunction
from .landscape import Grid, Landscape, loss_map
from .losses import ARTICLE_LOSSES, LossSpec
from .recorder import Recorder
from .sgd import SGDConfig
from .train import train
from .trajectory import Trajectory


def __getattr__(name: str) -> object:
    """Heavier entry points, imported on first use: ``make_plot``, ``make_animation``,
    ``save_trajectories``, ``run_batched``, ``fit``, ``model_landscape``, ``draw_landscape``
    (and ``gdscope.replay.replay`` for re-making files)."""
    import importlib

    homes = {"make_plot": "jobs", "make_animation": "jobs",
             "save_trajectories": "export", "run_batched": "batched", "fit": "trainer",
             "model_landscape": "netjobs", "draw_landscape": "netjobs"}  # fmt: skip
    if name in homes:
        return getattr(importlib.import_module(f".{homes[name]}", __name__), name)
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
    "PlotConfig",
    "Recorder",
    "SGDConfig",
    "TestFunction",
    "Trajectory",
    "__version__",
    "draw_landscape",
    "fit",
    "load_csv",
    "load_toml",
    "loss_map",
    "make_animation",
    "make_data",
    "make_plot",
    "model_landscape",
    "run_batched",
    "save_trajectories",
    "train",
]
