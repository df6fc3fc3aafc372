"""sfcprop: propagate labels through video by dense feature correspondence (SFC).

- `propagate(frames, mask_or_keyframes)` -> `Propagation` (ids `[T, H, W]`, confidence,
  flags); `propagate_iter` streams it; `propagate_soft` for soft / part maps;
  `track_keypoints` for points. Keyframes: `{frame: mask}`.
- `Session`: keyframes and corrections that recompute only what changes.
- `Config` / `PRESETS`: every setting of a run, validated once.
- `backbone(name, weights=...)`, `list_backbones()`: the registry.
- `sfcprop.io`, `sfcprop.viz`: reading and writing labels, overlays.

Results are CPU torch tensors (`.numpy()` for arrays).
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
