"""sfcprop: propagate labels through video by dense feature correspondence (SFC).

`sfcprop.propagate("frames/", "first_mask.png").ids` gives the ids of the first mask on
every frame (`[T, H, W]` uint8), with the shipped FC model.
"""

from . import viz  # sfcprop.viz.show(frames, result) in a notebook
from .backbones import Correspondence, backbone, list_backbones
from .budget import MemoryBudgetError, MemoryPlan
from .confidence import Flag
from .config import PRESETS, Config, Preset, get_preset
from .propagation import (
    FrameResult,
    Propagation,
    Propagator,
    Session,
    propagate,
    propagate_iter,
    propagate_soft,
)
from .tracking import Tracks, track_keypoints

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "Config",
    "Correspondence",
    "Flag",
    "FrameResult",
    "MemoryBudgetError",
    "MemoryPlan",
    "Preset",
    "Propagation",
    "Propagator",
    "backbone",
    "get_preset",
    "list_backbones",
    "propagate",
    "propagate_soft",
    "propagate_iter",
    "Session",
    "Tracks",
    "track_keypoints",
    "viz",
]
