"""Id maps to soft maps on the feature grid and back (spec section 3)."""

from __future__ import annotations

import torch

from sfcprop.errors import check_shape
from sfcprop.io.masks import MAX_ID
from sfcprop.labels.resize import resize_soft

MAX_LABELS = 255


def label_ids(mask: torch.Tensor, allow_empty: bool = False) -> list[int]:
    """The ids of a mask `[H, W]`: 0 (background, channel 0) then the objects.

    Raises ValueError for non-integer, negative or > 255 ids, more than 255 objects, or
    a mask with no object (unless `allow_empty`: a later keyframe may show none).
    """
    check_shape(mask, "H W", "a mask")
    if mask.is_floating_point() or mask.is_complex() or mask.dtype == torch.bool:
        raise ValueError(f"mask ids must be integers, got dtype {mask.dtype}")
    ids = torch.unique(mask).tolist()
    if ids[0] < 0:
        raise ValueError(f"mask ids must be >= 0, got {ids[0]}")
    if ids[-1] > MAX_ID:
        raise ValueError(
            f"mask ids must be at most {MAX_ID} (they are written as 8-bit palette PNGs), "
            f"got {ids[-1]}"
        )
    objects = [i for i in ids if i != 0]
    if not objects and not allow_empty:
        raise ValueError("the first mask holds no object: every pixel is background (id 0)")
    if len(objects) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} object ids are supported, got {len(objects)}")
    return [0, *objects]


def one_hot(mask: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """`[H, W]` ids -> `[L, H, W]` float32 one-hot over `ids` (pixels of other ids: all 0)."""
    return torch.stack([(mask == i) for i in ids]).float()


def to_grid(mask: torch.Tensor, ids: list[int], grid: tuple[int, int]) -> torch.Tensor:
    """First-frame ids `[H, W]` -> soft labels `[L, h, w]` on the feature grid."""
    return resize_soft(one_hot(mask, ids), grid)


def decode(soft: torch.Tensor, ids: list[int], size: tuple[int, int]) -> torch.Tensor:
    """Soft labels `[L, h, w]` -> ids `[H, W]` (uint8): upsample, argmax, map to `ids`."""
    lut = torch.tensor(ids, dtype=torch.uint8, device=soft.device)
    return lut[resize_soft(soft, size).argmax(dim=0)]
