"""Pictures of results: masks blended on frames, animated GIFs."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .io import DAVIS_PALETTE


def overlay(
    frame: torch.Tensor, ids: torch.Tensor, palette: Sequence[int] | None = None, alpha: float = 0.5
) -> Image.Image:
    """Blend the colours of `ids` `[H, W]` on `frame` (uint8 `[3, H, W]`); id 0 stays clear.
    Object borders are drawn in full colour."""
    pal = np.asarray(palette or DAVIS_PALETTE, dtype=np.float32).reshape(-1, 3)
    img = frame.permute(1, 2, 0).cpu().numpy().astype(np.float32)
    lab = ids.cpu().numpy().astype(np.int64)
    colour = pal[lab]
    fg = (lab > 0)[..., None]
    out = np.where(fg, (1 - alpha) * img + alpha * colour, img)
    edge = np.zeros(lab.shape, bool)
    edge[:-1] |= lab[:-1] != lab[1:]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    out[edge & (lab > 0)] = colour[edge & (lab > 0)]
    return Image.fromarray(out.round().clip(0, 255).astype(np.uint8))


def save_gif(images: Sequence[Image.Image], path: str | os.PathLike, fps: float = 10) -> None:
    """Write an animated GIF (looping), atomically."""
    if not images:
        raise ValueError("no images to write")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(suffix=".gif", dir=path.parent)
    os.close(fd)
    try:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=list(images[1:]),
            duration=int(1000 / fps),
            loop=0,
        )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
