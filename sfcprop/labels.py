"""Label maps to soft maps on the feature grid and back (spec section 3)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MAX_LABELS = 255
MAX_ID = 255  # ids are written as uint8 palette PNGs


def label_ids(mask: torch.Tensor, allow_empty: bool = False) -> list[int]:
    """The ids of a mask `[H, W]`: 0 (background, channel 0) then the objects.

    Raises ValueError for non-integer, negative or > 255 ids, more than 255 objects, or
    a mask with no object (unless `allow_empty`: a later keyframe may show none).
    """
    if mask.ndim != 2:
        raise ValueError(f"a mask must be [H, W], got shape {tuple(mask.shape)}")
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


def as_mask_tensor(mask) -> torch.Tensor:
    """An `[H, W]` mask array/tensor as int64 ids: integer ids as they are, except that a
    binary mask (bool, or only the values 0 and 255) is one object, id 1. Floats are refused,
    even whole numbers (ids must come as integers); a colour mask `[H, W, 3]` is read by
    `sfcprop.io.read_mask` / `load_first_mask`, which give each colour an id."""
    if isinstance(mask, np.ndarray):
        if mask.dtype.kind not in "iub":
            raise ValueError(f"mask ids must be integers (or bool), got dtype {mask.dtype}")
        if mask.dtype.kind == "u" and mask.size and mask.max() > np.iinfo(np.int64).max:
            raise ValueError(f"mask ids must be at most {MAX_ID}, got {mask.max()}")
        mask = torch.from_numpy(mask.astype(np.int64))
    elif isinstance(mask, torch.Tensor):
        if mask.is_floating_point() or mask.is_complex():
            raise ValueError(f"mask ids must be integers (or bool), got dtype {mask.dtype}")
        mask = mask.long()
    else:
        raise TypeError(f"a mask must be a numpy array, a tensor or a PNG path, got {type(mask)}")
    if mask.ndim == 3 and mask.shape[-1] == 3:
        raise ValueError(
            "a [H, W, 3] mask holds colours: read it with sfcprop.io.read_mask (or give it to "
            "propagate / io.load_first_mask), which numbers the colours"
        )
    if mask.any() and ((mask == 0) | (mask == 255)).all():
        mask = (mask > 0).long()
    return mask


def one_hot(mask: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """`[H, W]` ids -> `[L, H, W]` float32 one-hot over `ids` (pixels of other ids: all 0)."""
    return torch.stack([(mask == i) for i in ids]).float()


def resize_soft(soft: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`[L, h, w]` -> `[L, *size]`: bilinear, half-pixel centres, no antialiasing
    (what `cv2.resize(INTER_LINEAR)` does)."""
    return F.interpolate(
        soft[None], size=size, mode="bilinear", align_corners=False, antialias=False
    )[0]


def to_grid(mask: torch.Tensor, ids: list[int], grid: tuple[int, int]) -> torch.Tensor:
    """First-frame ids `[H, W]` -> soft labels `[L, h, w]` on the feature grid."""
    return resize_soft(one_hot(mask, ids), grid)


def decode(soft: torch.Tensor, ids: list[int], size: tuple[int, int]) -> torch.Tensor:
    """Soft labels `[L, h, w]` -> ids `[H, W]` (uint8): upsample, argmax, map to `ids`."""
    lut = torch.tensor(ids, dtype=torch.uint8, device=soft.device)
    return lut[resize_soft(soft, size).argmax(dim=0)]
