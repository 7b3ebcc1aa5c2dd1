"""gdscope: see what a PyTorch optimizer does.

The pipeline: a problem (``make_data`` + a ``LossSpec``) → ``train`` records a ``Trajectory``
→ ``loss_map`` samples a ``Landscape`` → renderers in ``gdscope.plots`` draw them.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import PlotConfig
from .data import Dataset, DataSpec, make_data
from .errors import GdscopeError
from .landscape import Grid, Landscape, loss_map
from .losses import ARTICLE_LOSSES, LossSpec
from .sgd import SGDConfig
from .train import train
from .trajectory import Trajectory

__all__ = [
    "ARTICLE_LOSSES",
    "DataSpec",
    "Dataset",
    "GdscopeError",
    "Grid",
    "Landscape",
    "LossSpec",
    "PlotConfig",
    "SGDConfig",
    "Trajectory",
    "__version__",
    "loss_map",
    "make_data",
    "train",
]
