"""Masks in and out: palette, greyscale and colour PNGs, `.npy` files, arrays and tensors
read as they are (`RawMask`; `sfcprop.io.objects` gives their objects ids); palette PNGs
written."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from sfcprop.io.atomic import atomic_path
from sfcprop.io.images import _one_line, open_image


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

MAX_ID = 255  # ids are written as uint8 palette PNGs
MaskSource = str | os.PathLike | np.ndarray | torch.Tensor

LOSSY_FORMATS = ("JPEG", "MPO")  # PIL's names of the JPEG formats

FRINGE_AREA = 0.001  # an id covering less than this share of the image is tiny

FRINGE_EDGE = 0.9  # ... with this share of its pixels next to another id: on an edge

FRINGE_COUNT = 5  # this many tiny ids on the edges of others: anti-aliasing


@dataclass(frozen=True)
class RawMask:
    """A mask as its file or array holds it, before ids are given to its objects.

    kind: "ids" (integer values: a greyscale PNG, an `[H, W]` array, a greyscale image
    saved as RGB), "palette" (a palette PNG's indices) or "colour" (`[H, W, 3]` colours,
    black the background). array: `[H, W]` values or `[H, W, 3]` uint8 colours. palette:
    a palette PNG's (768 ints). rgb: whether it came as RGB (a grey one may join colours)."""

    kind: Literal["ids", "palette", "colour"]
    array: np.ndarray
    palette: list[int] | None = None
    rgb: bool = False
    source: str = "the mask"


def read_raw(mask: MaskSource) -> RawMask:
    """A mask file (PNG, `.npy`) or array as a `RawMask`; EXIF orientation is applied to
    images as viewers show them. JPEG masks are refused (lossy: every edge gets new values);
    greyscale and colour masks warn when many ids of tiny area lie along the edges of others
    (anti-aliased edges: threshold the mask first)."""
    if isinstance(mask, (np.ndarray, torch.Tensor)):
        return _raw_array(mask, "the mask")
    if Path(mask).suffix.lower() == ".npy":
        try:
            array = np.load(mask, allow_pickle=False)
        except FileNotFoundError:
            raise FileNotFoundError(f"no such mask file: {mask}") from None
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read mask {mask}: {_one_line(e)}") from None
        return _raw_array(array, str(mask))
    try:
        img = open_image(mask)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such mask file: {mask}") from None
    _refuse_lossy(img, mask)
    return _raw_image(img, str(mask))


def _is_colour(mask) -> bool:
    return isinstance(mask, (np.ndarray, torch.Tensor)) and mask.ndim == 3 and mask.shape[2] == 3


def _refuse_lossy(img: Image.Image, path) -> None:
    if img.format in LOSSY_FORMATS:
        values = np.asarray(img.convert("RGB")).reshape(-1, 3)
        n = len(np.unique(values, axis=0))
        raise ValueError(
            f"{path} is a JPEG: its lossy compression gives every edge new values (it reads "
            f"as {n} different values, each an object); save the mask as PNG"
        )


def _raw_image(img: Image.Image, source: str) -> RawMask:
    """An opened mask image as a `RawMask`."""
    if img.mode == "P":
        return RawMask("palette", np.asarray(img).copy(), img.getpalette(), source=source)
    if img.mode in ("L", "1"):
        grey = np.asarray(img.convert("L")).copy()
        _warn_grey(grey, source)
        return RawMask("ids", grey, source=source)
    if img.mode in ("RGB", "RGBA", "LA"):
        rgba = np.asarray(img.convert("RGBA"))
        rgb = np.where(rgba[..., 3:] == 0, 0, rgba[..., :3]).astype(np.uint8)
        return _raw_array(rgb, source)
    raise ValueError(
        f"{source} is a {img.mode} image; a mask must be a palette (P), greyscale (L) or "
        "colour (RGB) PNG"
    )


def _raw_array(mask, source: str) -> RawMask:
    """An array (or tensor) of ids `[H, W]` or colours `[H, W, 3]` as a `RawMask`."""
    array = mask.cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if array.dtype.kind not in "iu" and not (array.dtype == bool and array.ndim == 2):
        raise ValueError(f"mask ids must be integers (or bool), got dtype {array.dtype}")
    if _is_colour(array):
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError("the colours of a colour mask must be in 0..255")
        if _is_grey(array):  # a greyscale mask saved as RGB
            _warn_grey(array[..., 0], source)
            return RawMask("ids", array[..., 0].astype(np.uint8), rgb=True, source=source)
        rgb = array.astype(np.uint8)
        if len(np.unique(_rgb24(rgb))) <= MAX_ID + 1:  # more: refused when numbered
            _warn_fringe_ids(_rgb24(rgb), source)
        return RawMask("colour", rgb, rgb=True, source=source)
    if array.ndim != 2:
        raise ValueError(f"a mask must be [H, W] ids or [H, W, 3] colours, got shape {array.shape}")
    if array.dtype.kind == "u" and array.size and array.max() > MAX_ID:  # before any cast
        raise ValueError(
            f"mask ids must be at most {MAX_ID} (they are written as 8-bit palette PNGs), "
            f"got {array.max()}"
        )
    return RawMask("ids", array.astype(np.uint8) if array.dtype == bool else array, source=source)


def _rgb24(rgb: np.ndarray) -> np.ndarray:
    """Colours `[..., 3]` as one int each (R << 16 | G << 8 | B)."""
    flat = rgb.astype(np.int64)
    return flat[..., 0] << 16 | flat[..., 1] << 8 | flat[..., 2]


def _is_grey(rgb: np.ndarray) -> bool:
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _warn_grey(grey: np.ndarray, source: str) -> None:
    if not is_binary(grey):
        _warn_fringe_ids(grey, source)


def is_binary(ids: np.ndarray) -> bool:
    """Only the values 0 and 255 (or 0 and 1, or bool), some of them not 0: one object."""
    if ids.dtype == bool:
        return bool(ids.any())
    return bool(ids.any()) and bool(np.isin(ids, (0, 255)).all() or np.isin(ids, (0, 1)).all())


def _warn_fringe_ids(ids: np.ndarray, source: str) -> None:
    """Warn when many ids each cover a tiny area, mostly along the edges of other ids: the
    marks of anti-aliasing (or of resizing), not objects."""
    values, compact, counts = np.unique(ids, return_inverse=True, return_counts=True)
    compact = compact.reshape(ids.shape)
    edge = np.zeros(ids.shape, dtype=bool)
    down = compact[1:] != compact[:-1]
    edge[1:] |= down
    edge[:-1] |= down
    right = compact[:, 1:] != compact[:, :-1]
    edge[:, 1:] |= right
    edge[:, :-1] |= right
    on_edge = np.bincount(compact[edge], minlength=len(values)) / counts
    tiny = (counts < FRINGE_AREA * ids.size) & (on_edge >= FRINGE_EDGE) & (values != 0)
    if tiny.sum() >= FRINGE_COUNT:
        warnings.warn(
            f"{source}: {int(tiny.sum())} of its {int((values != 0).sum())} ids each cover "
            f"under {FRINGE_AREA:.1%} of the image, along the edges of others: anti-aliased "
            "edges rather than objects? Every id is propagated as an object; threshold the "
            "mask first (e.g. `mask >= 128` for a 0/255 mask) or save it without "
            "anti-aliasing",
            stacklevel=2,
        )


def write_mask(
    path: str | os.PathLike, ids: np.ndarray | torch.Tensor, palette: list[int] | None = None
) -> None:
    """Write ids `[H, W]` (0..255) as a palette PNG, atomically (temp file, then rename).
    Missing parent folders are made; a failed write removes those it made."""
    if isinstance(ids, torch.Tensor):
        ids = ids.cpu().numpy()
    if ids.ndim != 2 or ids.min() < 0 or ids.max() > 255:
        raise ValueError(f"ids must be [H, W] in 0..255, got shape {ids.shape}")
    img = Image.fromarray(ids.astype(np.uint8), mode="P")
    img.putpalette(palette or DAVIS_PALETTE)
    with _new_folders(Path(path).parent), atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


@contextmanager
def _new_folders(folder: Path) -> Iterator[None]:
    """Make `folder` and its missing parents; on failure inside, remove those made (when
    they are still empty)."""
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        yield
    except BaseException:
        for p in made:  # deepest first
            with suppress(OSError):
                p.rmdir()
        raise


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


def __getattr__(name: str):
    """`read_mask`, `load_first_mask` and `colour_table` live in `sfcprop.io.objects`."""
    if name in ("read_mask", "load_first_mask", "colour_table"):
        from sfcprop.io import objects

        return getattr(objects, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
