"""sfcprop: propagate labels through video by dense feature correspondence (SFC).

- `propagate(frames, mask_or_keyframes)` -> `Propagation` (ids `[T, H, W]`, confidence,
  flags); `propagate_iter` streams it as `FrameResult`s; `propagate_soft` for soft / part
  maps; `track_keypoints` (`track_keypoints_iter`: `TrackResult`s) for points.
  Keyframes: `{frame: mask}`.
- `load_model(backbone, semantic, **settings)` -> `Propagator`, built once; `Session(model,
  frames)` per video: keyframes and corrections that recompute only what changes.
- `Config`, `PRESETS`: every setting of a run, validated once (`Config.preset("davis", ...)`).
- `backbone(name, weights=...)`, `list_backbones()`: the registry.
- `batch(source, out, ...)`: every video of a dataset folder or a manifest, resumable, in
  shards or on Ray (`sfcprop batch`; docs/batch.md).
- `sfcprop.io`, `sfcprop.viz`: reading and writing labels, overlays.

Results are CPU torch tensors (`.numpy()` for arrays).
"""

import importlib
import warnings
from typing import TYPE_CHECKING

from sfcprop import _aliases

__version__ = "0.1.0"
_aliases.install()  # the module paths of the flat 0.1 layout, deprecated

# Names load on first use (PEP 562): `import sfcprop` (and the `sfcprop` command, whose
# error policy then covers start-up, Ctrl-C included) does not import torch until needed.
_MODULES = {"io": "io", "viz": "io.viz"}
_EXPORTS = {
    "Config": "config",
    "PRESETS": "config",
    "Correspondence": "models",
    "backbone": "models",
    "list_backbones": "models",
    "MemoryBudgetError": "core.budget",
    "MemoryPlan": "core.budget",
    "Propagator": "core.propagator",
    "load_model": "core.propagator",
    "Flag": "session.confidence",
    "FrameResult": "session",
    "Propagation": "session",
    "Session": "session",
    "TrackResult": "session",
    "Tracks": "session",
    "propagate": "session",
    "propagate_iter": "session",
    "propagate_soft": "session",
    "track_keypoints": "session",
    "track_keypoints_iter": "session",
    "batch": "apps.batch",
}
_DEPRECATED = {"Preset": "Config", "get_preset": "Config.preset"}  # 0.1's names


def __getattr__(name: str):
    if name in _DEPRECATED:
        warnings.warn(
            f"sfcprop.{name} is deprecated: use sfcprop.{_DEPRECATED[name]}",
            DeprecationWarning,
            stacklevel=2,
        )
        from sfcprop import config

        return getattr(config, f"_{name}")
    if name in _MODULES:
        value = importlib.import_module(f"sfcprop.{_MODULES[name]}")
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(f"sfcprop.{_EXPORTS[name]}"), name)
    else:
        raise AttributeError(f"module 'sfcprop' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULES, *_EXPORTS])


if TYPE_CHECKING:  # for type checkers and editors
    from sfcprop import io
    from sfcprop.apps.batch import batch
    from sfcprop.config import PRESETS, Config
    from sfcprop.core.budget import MemoryBudgetError, MemoryPlan
    from sfcprop.core.propagator import Propagator, load_model
    from sfcprop.io import viz
    from sfcprop.models import Correspondence, backbone, list_backbones
    from sfcprop.session import (
        FrameResult,
        Propagation,
        Session,
        TrackResult,
        Tracks,
        propagate,
        propagate_iter,
        propagate_soft,
        track_keypoints,
        track_keypoints_iter,
    )
    from sfcprop.session.confidence import Flag


__all__ = [
    "Config",
    "Correspondence",
    "Flag",
    "FrameResult",
    "MemoryBudgetError",
    "MemoryPlan",
    "PRESETS",
    "Propagation",
    "Propagator",
    "Session",
    "TrackResult",
    "Tracks",
    "backbone",
    "batch",
    "io",
    "list_backbones",
    "load_model",
    "propagate",
    "propagate_iter",
    "propagate_soft",
    "track_keypoints",
    "track_keypoints_iter",
    "viz",
]
