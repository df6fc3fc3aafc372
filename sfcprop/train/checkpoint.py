"""Checkpoints that resume exactly, written atomically and readable with `weights_only=True`.

A checkpoint is a dict of tensors and plain Python values: `model` (FCNet state dict, released
key layout), `optimizer`, `scaler`, `step`, `config` (`TrainConfig.to_dict()`), `losses`
(`[step]` float64, the logged loss of every step so far) and `rng` (torch / CUDA / numpy /
python states, stored as tensors and plain types).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sfcprop.io.atomic import atomic_path


def rng_state() -> dict[str, Any]:
    """Capture the torch, CUDA, numpy and python RNG states as tensors / plain types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "state": list(py_state), "gauss": gauss},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def save_atomic(obj: dict[str, Any], path: str | Path) -> None:
    """`torch.save` to a temporary file next to `path`, then moved into place (`atomic_path`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by `train` (tensors and plain types only: `weights_only=True`)."""
    return torch.load(path, map_location=map_location, weights_only=True)
