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

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Names load on first use (PEP 562): `import sfcprop` (and the `sfcprop` command, whose
# error policy then covers start-up, Ctrl-C included) does not import torch until needed.
_EXPORTS = {
    "viz": None,  # sfcprop.viz.show(frames, result) in a notebook
    "Correspondence": "backbones",
    "backbone": "backbones",
    "list_backbones": "backbones",
    "MemoryBudgetError": "budget",
    "MemoryPlan": "budget",
    "Flag": "confidence",
    "PRESETS": "config",
    "Config": "config",
    "Preset": "config",
    "get_preset": "config",
    "FrameResult": "propagation",
    "Propagation": "propagation",
    "Propagator": "propagation",
    "Session": "propagation",
    "propagate": "propagation",
    "propagate_iter": "propagation",
    "propagate_soft": "propagation",
    "Tracks": "tracking",
    "track_keypoints": "tracking",
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sfcprop' has no attribute {name!r}")
    module = _EXPORTS[name]
    value = importlib.import_module(f".{module or name}", __name__)
    value = value if module is None else getattr(value, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # for type checkers and editors
    from . import viz
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
