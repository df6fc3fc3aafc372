"""All resizing: frames (antialiased uint8, or CRW's float protocol), id maps (nearest) and
soft maps (bilinear)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_frame(
    frame: torch.Tensor, size: tuple[int, int], policy: str = "antialias"
) -> torch.Tensor:
    """uint8 `[3, H, W]` -> `[3, *size]` (unchanged when the size is already right).

    "antialias": uint8, bilinear, half-pixel centres, antialiased when shrinking (a user's
    large frames); "float": CRW's benchmark protocol, the float image in [0, 1], bilinear,
    no antialiasing, no rounding (float32 out; a frame already at `size` comes back as it is,
    uint8, which the backbones' `normalize` takes alike)."""
    if tuple(frame.shape[-2:]) == tuple(size):
        return frame
    if policy == "float":
        x = frame[None].float() / 255.0
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)[0]
    out = F.interpolate(
        frame[None].float(), size=tuple(size), mode="bilinear", align_corners=False, antialias=True
    )
    return out[0].round().clamp(0, 255).to(torch.uint8)


def resize_ids(ids: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Integer ids `[H, W]` -> `[*size]`, nearest neighbour (half-pixel centres, as PIL's
    NEAREST); same dtype."""
    if tuple(ids.shape) == tuple(size):
        return ids
    out = F.interpolate(ids[None, None].double(), size=tuple(size), mode="nearest-exact")
    return out[0, 0].round().to(ids.dtype)


def resize_soft(soft: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`[L, h, w]` -> `[L, *size]`: bilinear, half-pixel centres, no antialiasing
    (what `cv2.resize(INTER_LINEAR)` does)."""
    return F.interpolate(
        soft[None], size=size, mode="bilinear", align_corners=False, antialias=False
    )[0]
