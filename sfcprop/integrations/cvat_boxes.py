"""How a CVAT rectangle becomes an object's labels on its first frame.

"fill": every pixel whose centre lies inside the box is the object (the background inside
the box is propagated with it). "refine" (the default): the box filled, then, on the
feature grid, the box's cells split between object and background by their features: a
cell stays object where its feature is closer (cosine) to the mean feature of the cells
called object than to the mean of the background (a ring of `RING` cells around the box
and the box's cells called background), `ROUNDS` rounds from every box cell as object; if
fewer than `MIN_KEEP` of the box's cells remain, the box filled. Measured by
`benchmarks/bench_cvat.py --boxes` (results-cvat-boxes-240.txt).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sfcprop.core.propagator import Propagator
from sfcprop.integrations import cvat_shapes as shapes
from sfcprop.labels import ids as labels
from sfcprop.labels.codecs import MaskCodec

BOX_RULES = ("refine", "fill")
RING = 2  # cells of background around the box
ROUNDS = 3
MIN_KEEP = 0.2  # of the box's cells, else the box filled


def check_rule(rule: str) -> str:
    """`rule` if it is one of `BOX_RULES`, else a ValueError saying what is expected."""
    if rule not in BOX_RULES:
        raise ValueError(f"box must be one of {', '.join(BOX_RULES)}, got {rule!r}")
    return rule


def refine(features: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """The box-filled soft labels `[2, h, w]` with the box's background cells moved to
    channel 0 (see the module docstring); `features` `[C, h, w]` of the same frame."""
    f = F.normalize(features.float().flatten(1), dim=0)  # [C, n]
    h, w = soft.shape[1:]
    inside = (soft[1] > 0.5).flatten()
    if not inside.any():
        return soft
    grown = F.max_pool2d(inside.view(1, 1, h, w).float(), 2 * RING + 1, 1, RING)
    ring = (grown.flatten() > 0.5) & ~inside
    if not ring.any():  # the box covers the frame: the rest of it is the background
        ring = ~inside
    if not ring.any():
        return soft
    keep = inside.clone()
    for _ in range(ROUNDS):
        fg = F.normalize(f[:, keep].mean(1), dim=0)
        bg = F.normalize(f[:, ring | (inside & ~keep)].mean(1), dim=0)
        keep = inside & ((fg @ f) > (bg @ f))
        if int(keep.sum()) < MIN_KEEP * int(inside.sum()):
            return soft
    out = soft.clone()
    out[1] = soft[1] * keep.view(h, w).to(soft.dtype)
    out[0] = 1 - out[1]
    return out


def box_soft(
    model: Propagator,
    features: torch.Tensor,
    box,
    size: tuple[int, int],
    rule: str = "refine",
) -> tuple[torch.Tensor, MaskCodec]:
    """Soft labels `[2, h, w]` of a rectangle `xtl, ytl, xbr, ybr` on a `size` frame with
    features `[C, h, w]` by `rule`, and the codec that decodes its propagated labels."""
    mask = shapes.shape_to_mask("rectangle", box, size)
    codec = MaskCodec()
    ids = codec.check(0, mask.astype(np.uint8), size)
    soft = codec.encode(ids, size, model.input_size(*size), tuple(features.shape[1:]))
    soft = soft.to(features.device, torch.float32)
    return (refine(features, soft) if check_rule(rule) == "refine" else soft), codec


def box_mask(model: Propagator, frame: torch.Tensor, box, rule: str = "refine") -> np.ndarray:
    """The object's bool mask `[H, W]` that a rectangle on `frame` (uint8 `[3, H, W]`)
    becomes by `rule`, at the frame's size (for a keyframe session): "refine"'s labels
    decoded at the frame's size, inside the box."""
    size = (int(frame.shape[1]), int(frame.shape[2]))
    filled = shapes.box_to_mask(box, size)
    if check_rule(rule) == "fill":
        return filled
    soft, _ = box_soft(model, model.encode(frame), box, size, rule)
    refined = (labels.decode(soft, [0, 1], size) == 1).cpu().numpy() & filled
    return refined if refined.any() else filled
