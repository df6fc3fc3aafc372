"""Keypoint tracking: points on frame 0 propagated as soft maps (spec section 6, CRW's code).

Each point becomes its own channel (a small Gaussian on the feature grid, plus one
background channel), the maps are propagated like any soft labels, and each frame's map
is decoded back to a point: `sfcprop.keypoints` holds the JHMDB encoding and decoding used
by default. Frame 0 gives the points as they were given.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Literal, NamedTuple

import numpy as np
import torch

from . import keypoints
from .backbones.base import Correspondence
from .config import PRESETS, Config
from .io import FrameSource
from .propagation import Session, _progress

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


class Tracks(NamedTuple):
    """points: `[T, K, 2]` float64 (x, y) pixels, NaN where a point was not found;
    confidence: `[T, K]`, the peak of the point's propagated map (1 on frame 0, 0 when not
    found). CPU tensors, like every result of sfcprop (`.numpy()` gives arrays)."""

    points: torch.Tensor
    confidence: torch.Tensor


def check_points(points, image_hw: tuple[int, int]) -> np.ndarray:
    """`points` as float64 `[K, 2]` (x, y), each inside the `H x W` frame (0 <= x < W,
    0 <= y < H, 0-based pixels) or NaN (not given); ValueError otherwise."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise ValueError(f"points must be [K, 2] (x, y) with K >= 1, got shape {pts.shape}")
    (h, w), given = image_hw, ~np.isnan(pts).any(axis=1)
    if not given.any():
        raise ValueError("every point is NaN: give at least one (x, y)")
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    bad = np.flatnonzero(given & ~inside)
    if len(bad):
        k = int(bad[0])
        x, y = pts[k]
        raise ValueError(
            f"point {k} (x={x:g}, y={y:g}) is outside the {w}x{h} frame: points are 0-based "
            f"pixels, 0 <= x < {w}, 0 <= y < {h} ({len(bad)} point(s) outside)"
        )
    return pts


def track_keypoints_iter(
    frames: FrameSource,
    points,
    backbone: Correspondence | str = "fc",
    semantic: Correspondence | str | None = None,
    *,
    preset: str | Config | None = None,
    size: tuple[int, int] | None = None,
    short_side: int | None = None,
    sigma: float = 0.5,
    rounding: Literal["crw", "floor"] = "crw",
    topn: int = 3,
    **settings,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """`track_keypoints` one frame at a time: yields `(t, points [K, 2], confidence [K])`."""
    if size is not None and short_side is not None:
        raise ValueError("give size or short_side, not both")
    if preset is None:  # JHMDB's parameters, at the frames' own size unless asked
        name = "jhmdb" if semantic is None else "jhmdb-sfc"
        preset = replace(PRESETS[name], size=None, resize="antialias")
    config = Config.preset(preset, size=size, short_side=short_side, **settings)
    session = Session(
        frames, backbone, semantic, preset=config, keep_results=False, keep_frames=False
    )
    first = session.store[0] if session.store.has(0) else None
    if first is None:
        raise ValueError("the video holds no frames")
    hw = tuple(first.shape[1:])
    pts = check_points(points, hw)
    grid = session.prop.grid(*hw)
    session.annotate_soft(
        0, keypoints.encode_keypoints(pts, hw, grid, sigma=sigma, rounding=rounding)
    )
    for r in session.run():
        if r.t == 0:
            yield 0, pts.copy(), (~np.isnan(pts).any(axis=1)).astype(np.float64)
        else:
            found, confidence = keypoints.decode_keypoints(r.soft.cpu(), hw, topn=topn)
            yield r.t, found, confidence


def track_keypoints(
    frames: FrameSource,
    points,
    backbone: Correspondence | str = "fc",
    semantic: Correspondence | str | None = None,
    *,
    preset: str | Config | None = None,
    size: tuple[int, int] | None = None,
    short_side: int | None = None,
    sigma: float = 0.5,
    rounding: Literal["crw", "floor"] = "crw",
    topn: int = 3,
    progress: bool | None = None,
    **params,
) -> Tracks:
    """Track points `[K, 2]` (x, y) 0-based pixels of frame 0 through `frames`.

    frames: anything `sfcprop.io.iter_frames` reads (folder, video file, array, tensor,
    list). points: inside the frame (ValueError otherwise), or NaN for a point not given.
    preset: "jhmdb" (default; "jhmdb-sfc" with a `semantic` backbone) with keyword
    overrides (`topk`, `context`, `radius`, `temperature`, `lam`) and `Propagator`'s
    `max_memory`, `precision`. size `(H', W')` or
    short_side: resize frames (bilinear) before the backbone; JHMDB's protocol is
    `size=(320, 320)`. The JHMDB radius of 3 cells suits a ~40-cell grid: for large frames
    pass e.g. `short_side=320` or a larger `radius`. sigma, rounding: the encoding
    (`keypoints.encode_keypoints`); topn: cells averaged when decoding
    (`keypoints.decode_keypoints`). Returns `Tracks(points [T, K, 2], confidence [T, K])`;
    frame 0 holds the given points.
    """
    stream = track_keypoints_iter(
        frames,
        points,
        backbone,
        semantic,
        preset=preset,
        size=size,
        short_side=short_side,
        sigma=sigma,
        rounding=rounding,
        topn=topn,
        **params,
    )
    out = [(p, c) for _, p, c in _progress(stream, progress, frames)]
    return Tracks(
        torch.from_numpy(np.stack([p for p, _ in out])),
        torch.from_numpy(np.stack([c for _, c in out])),
    )
