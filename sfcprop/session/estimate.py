"""An object's confidence on a propagated frame: an estimate of its J there, from the
measures of `sfcprop.session.confidence`.

- "calibrated" (the default): `sigmoid(w . signals) * identity`, the weights fitted to
  the true per-frame J of the 8 DAVIS-2016 development sequences by
  `benchmarks/bench_confidence.py score --write` (shipped in `confidence.json`, with the
  command and the data they came from; that benchmark scores them leave-one-sequence-out).
  `identity = clip(1 - drop / DROP_SCALE, 0, 1)`: a fixed guard, not fitted, against a
  look-alike taking the object's place (the development sequences have too few such
  frames to weigh it: fitted, the drop's weight comes out 0; as a guard it raises the
  leave-one-out Spearman with keyframes every 20 from 0.58 to 0.61).
- "certainty-area": the formula of sfcprop 0.2, `certainty * min(1, area / 0.25)`.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

import numpy as np

METHODS = ("calibrated", "certainty-area")
DEFAULT_METHOD = "calibrated"
AREA_FLOOR = 0.25  # "certainty-area": an object may shrink to a quarter before it counts
DROP_SCALE = 0.5  # "calibrated": a similarity drop of this much sets the estimate to 0

SIGNALS = (  # the inputs of the calibrated estimate, in the weights' order
    "bias",
    "certainty-area",
    "certainty",
    "area",
    "log-growth",
    "agreement",
    "similarity",
    "log-distance",
)


def certainty_area(stats) -> np.ndarray:
    """The 0.2 formula: `certainty * min(1, area / AREA_FLOOR)`."""
    return stats.certainty * np.minimum(1.0, stats.area / AREA_FLOOR)


def signals(stats) -> np.ndarray:
    """`[objects, len(SIGNALS)]` inputs of the calibrated estimate from a `FrameStats`."""
    growth = np.clip(stats.growth, 1 / 32, 32)
    columns = [
        np.ones_like(stats.certainty),
        certainty_area(stats),
        stats.certainty,
        stats.area,
        np.log2(growth) / 5,
        stats.agreement,
        stats.similarity,
        np.log1p(stats.distance) / np.log(101),
    ]
    return np.stack(columns, axis=-1)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


@functools.cache
def calibration() -> dict:
    """The shipped weights and where they came from (`confidence.json`)."""
    text = resources.files("sfcprop.session").joinpath("confidence.json").read_text()
    table = json.loads(text)
    if tuple(table["signals"]) != SIGNALS:
        raise ValueError(f"confidence.json holds weights of {table['signals']}, not {SIGNALS}")
    return table


def estimate(stats, method: str = DEFAULT_METHOD, weights: np.ndarray | None = None):
    """Each object's confidence `[objects]` in [0, 1] by `method` (`METHODS`); `weights`
    replace the shipped ones (fitting, leave-one-out scoring)."""
    if method == "certainty-area":
        return np.clip(certainty_area(stats), 0, 1)
    if method != "calibrated":
        raise ValueError(f"confidence must be one of {METHODS}, got {method!r}")
    w = np.asarray(calibration()["weights"] if weights is None else weights, np.float64)
    return sigmoid(signals(stats) @ w) * identity(stats)


def identity(stats) -> np.ndarray:
    """`[objects]` in [0, 1]: 1 unless the object's similarity to its keyframe dropped below
    its recent median (`FrameStats.drop`), 0 from a drop of `DROP_SCALE` on."""
    return np.clip(1.0 - stats.drop / DROP_SCALE, 0.0, 1.0)
