"""JHMDB keypoints to soft maps on the feature grid and back (spec section 6, CRW's code).

Channel 0 is the background, channels 1..K the joints, as everywhere in the library.

Encoding follows CRW's `draw_labelmap_np` (sigma 0.5): the joint's grid position is
`(x * w / W, y * h / H)` (pixels 0-based, no half-pixel shift); the 4x4 patch starts at
`int(p - 1.5)` on each axis and holds the fixed values `exp(-d^2 / (2 sigma^2))` for
offsets d = -2, -1, 0, 1 from its third cell, so the peak (exactly 1) sits on the cell
nearest to p (halves round up). CRW's `int` truncates towards zero, so for p < 1.5 (a
joint within 1.5 cells, 12 px at 320x320, of the left / top border) the patch and its peak
sit one cell further right / down. That is the reference behaviour and the default
(`rounding="crw"`); `rounding="floor"` puts the peak on the nearest cell there too.

Decoding follows CRW's `process_pose`: per joint the 3 highest cells (ties: the first in
row-major order), their values normalised to sum 1, give a weighted mean (x, y) in cells,
scaled back by `W / w`, `H / h`. A channel that is all zero is "not found": NaN point,
confidence 0. CRW writes -1 there and then drops the joint from PCK; NaN does the same
with `sfcprop.bench.metrics.pck`.

On an unpropagated map the peak's four neighbours tie (0.135 each), so the top 3 are the
peak and its upper and left neighbours, and the decoded point sits 0.107 cells up and left
of the peak: with the peak on the nearest cell, a round trip lands within
0.5 + 0.107 cells per axis, within 0.5 for points within 0.39 cells of a cell position.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch


def grid_size(image_hw: tuple[int, int], stride: int = 8) -> tuple[int, int]:
    """Feature grid `(ceil(H / stride), ceil(W / stride))` of an `H x W` frame."""
    return -(-image_hw[0] // stride), -(-image_hw[1] // stride)


def encode_keypoints(
    points: np.ndarray | torch.Tensor,
    image_hw: tuple[int, int],
    grid_hw: tuple[int, int],
    sigma: float = 0.5,
    patch: int = 4,
    rounding: Literal["crw", "floor"] = "crw",
) -> torch.Tensor:
    """Joints to soft maps: points `[K, 2]` (x, y) 0-based pixels of an `H x W` frame ->
    float32 `[K + 1, h, w]` on the `h x w` grid; channel 0 is the background (1 where no
    joint channel is non-zero), channel k + 1 joint k. A joint whose patch falls outside
    the grid (or is NaN) leaves its channel all zero.

    `patch` is CRW's `6 * sigma + 1` (4 for sigma 0.5); the patch spans offsets
    `-(patch // 2) .. patch - patch // 2 - 1` around the peak cell.
    """
    pts = torch.as_tensor(points, dtype=torch.float64).reshape(-1, 2)
    (H, W), (h, w) = image_hw, grid_hw
    size = int(patch)
    offsets = torch.arange(size, dtype=torch.float64) - size // 2  # -2, -1, 0, 1
    g1 = torch.exp(-(offsets**2) / (2 * sigma**2))
    g = (g1[:, None] * g1[None, :]).float()  # [size, size], peak 1 at [size//2, size//2]
    out = torch.zeros(len(pts) + 1, h, w)
    half = (size - 1) / 2  # 1.5: CRW's 3 * sigma for sigma = 0.5
    for k, (x, y) in enumerate(pts.tolist()):
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        gx, gy = x * w / W, y * h / H
        if rounding == "crw":
            x0, y0 = int(gx - half), int(gy - half)  # truncation towards zero, as CRW
        elif rounding == "floor":
            x0, y0 = math.floor(gx - half), math.floor(gy - half)
        else:
            raise ValueError(f"rounding must be 'crw' or 'floor', got {rounding!r}")
        xs, ys = slice(max(x0, 0), min(x0 + size, w)), slice(max(y0, 0), min(y0 + size, h))
        if xs.start >= xs.stop or ys.start >= ys.stop:
            continue
        out[k + 1, ys, xs] = g[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    out[0] = (out[1:] == 0).all(dim=0).float()
    return out


def decode_keypoints(
    soft: torch.Tensor | np.ndarray, image_hw: tuple[int, int], topn: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Soft maps `[K + 1, h, w]` (channel 0 background) -> (points `[K, 2]` (x, y) pixels
    of the `H x W` frame, confidence `[K]`).

    Per joint: the `topn` highest cells, weights = their values over their sum, point =
    weighted mean cell position x `(W / w, H / h)`; confidence = the highest value. An
    all-zero channel gives a NaN point and confidence 0.
    """
    s = torch.as_tensor(soft, dtype=torch.float32)
    if s.ndim != 3 or s.shape[0] < 2:
        raise ValueError(f"soft maps must be [K + 1, h, w] with K >= 1, got {tuple(s.shape)}")
    (H, W), (h, w) = image_hw, s.shape[1:]
    flat = s[1:].reshape(s.shape[0] - 1, -1).double()  # [K, h*w]
    n = min(topn, flat.shape[1])
    vals, idx = torch.sort(flat, dim=1, descending=True, stable=True)
    vals, idx = vals[:, :n], idx[:, :n]
    total = vals.sum(1, keepdim=True)
    weights = vals / torch.where(total == 0, torch.ones_like(total), total)
    x = (weights * (idx % w)).sum(1) * (W / w)
    y = (weights * torch.div(idx, w, rounding_mode="floor")).sum(1) * (H / h)
    points = torch.stack([x, y], dim=1).numpy()
    found = (flat != 0).any(dim=1).numpy()
    points[~found] = np.nan
    confidence = np.where(found, vals[:, 0].numpy(), 0.0)
    return points, confidence
