"""Id maps to soft maps on the feature grid and back (spec section 3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

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


def keep_objects(soft: torch.Tensor, mask: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """Soft labels `[L, h, w]` encoded from `mask` `[H, W]` (any size), with every object of
    the mask winning at least one cell: an object the resize left without any (smaller than
    a cell, or between the grid's sample points) takes the free cell it covers most, as a
    one-hot cell, so that it is propagated (and flagged when it is lost) rather than gone
    from the first propagated frame. Objects that win a cell are left as they are."""
    check_shape(soft, "L h w", "soft labels")
    won = soft.argmax(dim=0)
    missing = [c for c, i in enumerate(ids) if c and not (won == c).any() and (mask == i).any()]
    if not missing:
        return soft
    cover = F.interpolate(one_hot(mask, ids)[None], size=soft.shape[1:], mode="area")[0]
    soft, taken = soft.clone(), torch.zeros_like(won, dtype=torch.bool)
    for c in missing:
        cell = int(cover[c].masked_fill(taken, -1).flatten().argmax())
        y, x = divmod(cell, soft.shape[2])
        soft[:, y, x] = 0
        soft[c, y, x] = 1
        taken[y, x] = True
    return soft


def decode(soft: torch.Tensor, ids: list[int], size: tuple[int, int]) -> torch.Tensor:
    """Soft labels `[L, h, w]` -> ids `[H, W]` (uint8): upsample, argmax, map to `ids`."""
    lut = torch.tensor(ids, dtype=torch.uint8, device=soft.device)
    return lut[resize_soft(soft, size).argmax(dim=0)]
