"""A generated clip with moving, textured objects and its ground truth (deterministic).

Used by `sfcprop demo` and the tests: no data set, no network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Clip:
    """frames: uint8 `[T, 3, H, W]`; masks: uint8 `[T, H, W]` (0 background, ids 1..n)."""

    frames: torch.Tensor
    masks: torch.Tensor


def _texture(rng: np.random.Generator, h: int, w: int, scale: int) -> torch.Tensor:
    """Smooth colour noise `[3, h, w]` in [0, 1]: coarse noise upsampled plus fine grain."""
    coarse = torch.from_numpy(rng.random((1, 3, h // scale + 2, w // scale + 2))).float()
    smooth = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0]
    fine = torch.from_numpy(rng.random((3, h, w))).float()
    return (0.75 * smooth + 0.25 * fine).clamp(0, 1)


def generate_clip(
    num_frames: int = 24,
    height: int = 240,
    width: int = 320,
    seed: int = 0,
    leaves_at: int | None = None,
) -> Clip:
    """Two textured objects (an ellipse and a rectangle) moving over a textured
    background, the ellipse passing in front of the rectangle; shapes change slowly.
    `leaves_at`: the ellipse (object 1) is gone from this frame on."""
    rng = np.random.default_rng(seed)
    background = _texture(rng, height, width, 24) * 0.8
    tex = [_texture(rng, height, width, 6), _texture(rng, height, width, 10)]
    tint = [torch.tensor([1.0, 0.35, 0.25]), torch.tensor([0.25, 0.55, 1.0])]
    yy, xx = torch.meshgrid(
        torch.arange(height, dtype=torch.float32),
        torch.arange(width, dtype=torch.float32),
        indexing="ij",
    )
    frames, masks = [], []
    for t in range(num_frames):
        s = t / max(1, num_frames - 1)
        image = background.clone()
        mask = torch.zeros(height, width, dtype=torch.uint8)
        # object 2: a rectangle drifting left, slowly growing; drawn first (behind)
        cy, cx = 0.55 * height, (0.7 - 0.25 * s) * width
        hh, hw = (0.16 + 0.03 * s) * height, 0.14 * width
        rect = ((yy - cy).abs() < hh) & ((xx - cx).abs() < hw)
        # object 1: an ellipse moving right and down, rotating its axes
        ey, ex = (0.35 + 0.2 * s) * height, (0.2 + 0.45 * s) * width
        a, b = 0.16 * width, (0.12 + 0.04 * np.sin(3 * s)) * height
        ang = 0.8 * s
        u = (xx - ex) * np.cos(ang) + (yy - ey) * np.sin(ang)
        v = -(xx - ex) * np.sin(ang) + (yy - ey) * np.cos(ang)
        ellipse = (u / a) ** 2 + (v / b) ** 2 < 1
        if leaves_at is not None and t >= leaves_at:
            ellipse = torch.zeros_like(ellipse)
        for oid, region in ((2, rect), (1, ellipse)):
            shift = int(round(6 * s * (1 if oid == 1 else -1)))
            obj = torch.roll(tex[oid - 1], shifts=shift, dims=2) * tint[oid - 1][:, None, None]
            image = torch.where(region, obj, image)
            mask[region] = oid
        frames.append((image * 255).round().to(torch.uint8))
        masks.append(mask)
    return Clip(torch.stack(frames), torch.stack(masks))
