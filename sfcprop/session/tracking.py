"""Keypoint tracking: points on frame 0 propagated as soft maps (spec section 6, CRW's code).

Each point becomes its own channel (a small Gaussian on the feature grid, plus one
background channel), the maps are propagated like any soft labels, and each frame's map
is decoded back to a point: `sfcprop.labels.keypoints` holds the JHMDB encoding and decoding used
by default. Frame 0 gives the points as they were given.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Literal, NamedTuple

import numpy as np
import torch

from sfcprop.config import PRESETS, Config
from sfcprop.core.propagator import Propagator
from sfcprop.io.frames import FrameSource
from sfcprop.io.progress import frames_bar
from sfcprop.labels.codecs import KeypointCodec
from sfcprop.models.base import Correspondence
from sfcprop.session.combine import DEFAULT_RULE
from sfcprop.session.results import shape_of
from sfcprop.session.session import Session

# JHMDB's 15 joints, in the order of `pos_img` in joint_positions.mat
JHMDB_JOINTS = (
    "neck",
    "belly",
    "face",
    "right shoulder",
    "left shoulder",
    "right hip",
    "left hip",
    "right elbow",
    "left elbow",
    "right knee",
    "left knee",
    "right wrist",
    "left wrist",
    "right ankle",
    "left ankle",
)


class TrackResult(NamedTuple):
    """One frame of `track_keypoints_iter`: `points` `[K, 2]` float64 (x, y) pixels, NaN
    where not found; `confidence` `[K]` (1 on the keyframes, 0 where not found)."""

    t: int
    points: np.ndarray
    confidence: np.ndarray

    def __repr__(self) -> str:
        found = int((~np.isnan(np.asarray(self.points, dtype=float)).any(-1)).sum())
        confidence = np.asarray(self.confidence, dtype=float)
        mean = float(confidence.mean()) if confidence.size else 0.0
        return (
            f"TrackResult(t={self.t}, points {shape_of(self.points)}, found {found} of "
            f"{len(self.points)}, mean confidence {mean:.2f})"
        )


class Tracks(NamedTuple):
    """points: `[T, K, 2]` float64 (x, y) pixels, NaN where a point was not found;
    confidence: `[T, K]`, the peak of the point's propagated map (1 on frame 0, 0 when not
    found). CPU tensors, like every result of sfcprop (`.numpy()` gives arrays)."""

    points: torch.Tensor
    confidence: torch.Tensor

    def __repr__(self) -> str:
        points = np.asarray(self.points, dtype=float)  # [T, K, 2]
        frames, count = points.shape[:2]
        lost = int(np.isnan(points).any(-1).sum())
        return (
            f"Tracks(points {shape_of(self.points)}, confidence {shape_of(self.confidence)}: "
            f"{count} points on {frames} frames, {lost} not found)"
        )


def track_keypoints_iter(
    frames: FrameSource,
    points,
    backbone: Propagator | Correspondence | str = "fc",
    semantic: Correspondence | str | None = None,
    *,
    preset: str | Config | None = None,
    size: tuple[int, int] | None = None,
    short_side: int | None = None,
    sigma: float = 0.5,
    rounding: Literal["crw", "floor"] = "crw",
    topn: int = 3,
    rule: str = DEFAULT_RULE,
    **settings,
) -> Iterator[TrackResult]:
    """`track_keypoints` one frame at a time: yields a `TrackResult` (`t, points [K, 2],
    confidence [K]`) as each frame is final, in order."""
    codec = KeypointCodec(sigma, rounding, topn)
    given = dict(size=size, short_side=short_side, **settings)
    if not isinstance(backbone, Propagator):  # JHMDB's parameters unless asked
        name = "jhmdb" if semantic is None else "jhmdb-sfc"
        base = preset or replace(PRESETS[name], size=None, resize="antialias")
        preset, given = Config.preset(base, **given), {}
    session = Session.streaming(
        frames, points, backbone, semantic, preset=preset, rule=rule, codec=codec, **given
    )
    for r in session.run():
        found, confidence = r.labels
        yield TrackResult(r.t, found, confidence)


def track_keypoints(
    frames: FrameSource,
    points,
    backbone: Propagator | Correspondence | str = "fc",
    semantic: Correspondence | str | None = None,
    *,
    progress: bool | None = None,
    **options,
) -> Tracks:
    """Track points `[K, 2]` (x, y) 0-based pixels of frame 0 (or `{frame: points}` of
    keyframes, the same K points on each; see `sfcprop.Session`) through `frames`.

    frames: anything `sfcprop.io.iter_frames` reads (folder, video file, array, tensor,
    list). points: inside the frame (ValueError otherwise), or NaN for a point not given.
    Keywords are `track_keypoints_iter`'s: preset "jhmdb" (default; "jhmdb-sfc" with a
    `semantic` backbone) with overrides (`topk`, `context`, `radius`, `temperature`,
    `lam`, `max_memory`, `precision`); size `(H', W')` or short_side: resize frames
    (bilinear) before the backbone (JHMDB's protocol is `size=(320, 320)`; its radius of 3
    cells suits a ~40-cell grid: for large frames pass e.g. `short_side=320` or a larger
    `radius`); sigma, rounding: the encoding (`keypoints.encode_keypoints`); topn: cells
    averaged when decoding (`keypoints.decode_keypoints`); rule. Returns
    `Tracks(points [T, K, 2], confidence [T, K])`; frame 0 holds the given points.
    """
    stream = track_keypoints_iter(frames, points, backbone, semantic, **options)
    out = [(p, c) for _, p, c in frames_bar(stream, progress, frames)]
    return Tracks(
        torch.from_numpy(np.stack([p for p, _ in out])),
        torch.from_numpy(np.stack([c for _, c in out])),
    )
