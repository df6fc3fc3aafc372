"""Reading frames and masks, writing palette PNGs."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .labels import as_mask_tensor

FrameSource = torch.Tensor | np.ndarray | Sequence | str | os.PathLike
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _davis_palette() -> list[int]:
    """The DAVIS / PASCAL VOC palette: 256 RGB triplets, flattened."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


DAVIS_PALETTE = _davis_palette()


def natural_key(name: str) -> list:
    """Sort key that orders `frame2` before `frame10`."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files of a folder in natural order; ValueError when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder of frames: {folder}")
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return sorted(files, key=lambda p: natural_key(p.name))


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """An image file as uint8 RGB `[3, H, W]`."""
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no such image file: {path}") from None
    except OSError as e:
        raise ValueError(f"cannot read image {path}: {e}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def _from_pil(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)


def iter_frames(source: FrameSource) -> Iterator[torch.Tensor]:
    """Frames one at a time as uint8 `[3, H, W]` tensors.

    source: uint8 `[T, 3, H, W]` tensor, uint8 `[T, H, W, 3]` array, a list of PIL images,
    tensors or image paths, or a folder of image files (natural order).
    """
    if isinstance(source, (str, os.PathLike)):
        source = list_images(source)
    if isinstance(source, torch.Tensor):
        if source.ndim != 4 or source.shape[1] != 3 or source.dtype != torch.uint8:
            raise ValueError(
                f"frames as a tensor must be uint8 [T, 3, H, W], got {source.dtype} "
                f"{tuple(source.shape)}"
            )
        yield from source
        return
    if isinstance(source, np.ndarray):
        if source.ndim != 4 or source.shape[3] != 3 or source.dtype != np.uint8:
            raise ValueError(
                f"frames as an array must be uint8 [T, H, W, 3], got {source.dtype} {source.shape}"
            )
        for frame in source:
            yield torch.from_numpy(frame.copy()).permute(2, 0, 1)
        return
    for item in source:
        if isinstance(item, Image.Image):
            yield _from_pil(item)
        elif isinstance(item, (str, os.PathLike)):
            yield read_image(item)
        elif isinstance(item, torch.Tensor) and item.ndim == 3 and item.dtype == torch.uint8:
            yield item
        else:
            raise TypeError(f"cannot read a frame from {type(item).__name__}")


def read_mask(path: str | os.PathLike) -> tuple[np.ndarray, list[int] | None]:
    """A mask PNG as `(ids uint8 [H, W], palette or None)`.

    Palette PNGs give their indices; greyscale masks give their values, except binary
    0/255 masks, which give 0/1.
    """
    try:
        with Image.open(path) as img:
            palette = img.getpalette() if img.mode == "P" else None
            if img.mode not in ("P", "L", "1"):
                raise ValueError(
                    f"{path} is a {img.mode} image; a mask must be a palette (P) or "
                    "greyscale (L) PNG of object ids"
                )
            ids = np.asarray(img.convert("L") if img.mode == "1" else img).copy()
    except FileNotFoundError:
        raise FileNotFoundError(f"no such mask file: {path}") from None
    except OSError as e:
        raise ValueError(f"cannot read mask {path}: {e}") from None
    if palette is None and set(np.unique(ids).tolist()) <= {0, 255}:
        ids = (ids > 0).astype(np.uint8)
    return ids, palette


def load_first_mask(mask) -> torch.Tensor:
    """A first-frame mask (path, array or tensor) as int64 `[H, W]`."""
    if isinstance(mask, (str, os.PathLike)):
        mask = read_mask(mask)[0]
    return as_mask_tensor(mask)


def write_mask(
    path: str | os.PathLike, ids: np.ndarray | torch.Tensor, palette: list[int] | None = None
) -> None:
    """Write ids `[H, W]` (0..255) as a palette PNG, atomically (temp file, then rename)."""
    if isinstance(ids, torch.Tensor):
        ids = ids.cpu().numpy()
    if ids.ndim != 2 or ids.min() < 0 or ids.max() > 255:
        raise ValueError(f"ids must be [H, W] in 0..255, got shape {ids.shape}")
    img = Image.fromarray(ids.astype(np.uint8), mode="P")
    img.putpalette(palette or DAVIS_PALETTE)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            img.save(f, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
