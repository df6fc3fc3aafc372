"""Masks in and out: palette, binary, greyscale and colour PNGs, arrays and tensors read as
ids; palette PNGs written."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sfcprop.io.atomic import atomic_path
from sfcprop.io.frames import _one_line


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


def read_mask(mask: MaskSource) -> tuple[np.ndarray, list[int] | None]:
    """A first-frame mask, from a file or an array, as `(ids [H, W], palette or None)`.

    - palette PNG (DAVIS): its indices and its palette, as they are;
    - greyscale PNG, `[H, W]` integer array: its values; a binary mask (only 0 and 255,
      only 0 and 1, or bool) is one object, id 1;
    - RGB PNG, `[H, W, 3]` array: greyscale when R = G = B everywhere, else a colour mask:
      black is the background (id 0) and each other colour an object, ids 1..N in
      increasing colour order (by R, then G, then B); the palette maps each id back to its
      colour, so that writing the results with it gives the input's colours (RGBA:
      transparent pixels are background);
    - `.npy`: its array, as an array.

    ids are uint8 except for an integer array (or `.npy`), whose dtype is kept. A palette
    PNG whose only indices are 0 and 255 gives 0/1, its palette's entry 1 then being the
    colour of entry 255. JPEG masks are refused (lossy: every edge gets new values).
    Greyscale and colour masks warn when many ids of tiny area lie along the edges of others
    (anti-aliased edges: threshold the mask first).
    """
    if isinstance(mask, (np.ndarray, torch.Tensor)):
        return _array_mask(mask, "the mask")
    if Path(mask).suffix.lower() == ".npy":
        try:
            array = np.load(mask, allow_pickle=False)
        except FileNotFoundError:
            raise FileNotFoundError(f"no such mask file: {mask}") from None
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read mask {mask}: {_one_line(e)}") from None
        return _array_mask(array, str(mask))
    try:
        with Image.open(mask) as img:
            _refuse_lossy(img, mask)
            return _image_mask(img, str(mask))
    except FileNotFoundError:
        raise FileNotFoundError(f"no such mask file: {mask}") from None
    except OSError as e:
        raise ValueError(f"cannot read mask {mask}: {e}") from None


def load_first_mask(mask: MaskSource) -> torch.Tensor:
    """A first-frame mask (a file, or an array / tensor of ids or of colours; see
    `read_mask`) as int64 `[H, W]`."""
    if isinstance(mask, (str, os.PathLike)) or _is_colour(mask):
        mask = read_mask(mask)[0]
    return as_mask_tensor(mask)


def colour_table(rgb: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """A colour mask `[H, W, 3]` as `(ids uint8 [H, W], palette)`: black is id 0, the other
    colours ids 1..N in increasing order (by R, then G, then B); palette entry i is the
    colour of id i (768 ints, entries above N from the DAVIS palette)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype.kind not in "iu":
        raise ValueError(f"a colour mask must be integer [H, W, 3], got {rgb.dtype} {rgb.shape}")
    if rgb.size and (rgb.min() < 0 or rgb.max() > 255):
        raise ValueError("the colours of a colour mask must be in 0..255")
    flat = rgb.reshape(-1, 3).astype(np.int64)
    colours, ids = np.unique(flat[:, 0] << 16 | flat[:, 1] << 8 | flat[:, 2], return_inverse=True)
    if colours[0] != 0:  # no black: every colour is an object
        colours, ids = np.concatenate([[0], colours]), ids + 1
    if len(colours) - 1 > 255:
        raise ValueError(
            f"the colour mask holds {len(colours) - 1} colours besides black, more than the "
            "255 objects a mask can have: is it a photo, or a mask saved as JPEG?"
        )
    palette = list(DAVIS_PALETTE)
    for i, c in enumerate(colours.tolist()):
        palette[3 * i : 3 * i + 3] = [c >> 16, (c >> 8) & 255, c & 255]
    return ids.reshape(rgb.shape[:2]).astype(np.uint8), palette


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


def _image_mask(img: Image.Image, source: str) -> tuple[np.ndarray, list[int] | None]:
    """The ids and palette of an opened mask image (see `read_mask`)."""
    if img.mode == "P":
        return _palette_mask(np.asarray(img).copy(), img.getpalette())
    if img.mode in ("L", "1"):
        return _grey_mask(np.asarray(img.convert("L")).copy(), source), None
    if img.mode in ("RGB", "RGBA", "LA"):
        rgba = np.asarray(img.convert("RGBA"))
        rgb = np.where(rgba[..., 3:] == 0, 0, rgba[..., :3]).astype(np.uint8)
        return _array_mask(rgb, source)
    raise ValueError(
        f"{source} is a {img.mode} image; a mask must be a palette (P), greyscale (L) or "
        "colour (RGB) PNG"
    )


def _palette_mask(ids: np.ndarray, palette: list[int]) -> tuple[np.ndarray, list[int]]:
    if ids.any() and np.isin(ids, (0, 255)).all():  # one object, drawn with index 255
        palette = list(palette)
        palette[3:6] = palette[765:768]
        ids = (ids > 0).astype(np.uint8)
    return ids, palette


def _array_mask(mask, source: str) -> tuple[np.ndarray, list[int] | None]:
    """The ids (and palette, for colours) of a mask array (see `read_mask`)."""
    array = mask.cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if array.dtype.kind not in "iu" and not (array.dtype == bool and array.ndim == 2):
        raise ValueError(f"mask ids must be integers (or bool), got dtype {array.dtype}")
    if _is_colour(array):
        if _is_grey(array):  # a greyscale mask saved as RGB
            return _grey_mask(array[..., 0], source), None
        ids, palette = colour_table(array)
        _warn_fringe_ids(ids, source)
        return ids, palette
    if array.ndim != 2:
        raise ValueError(f"a mask must be [H, W] ids or [H, W, 3] colours, got shape {array.shape}")
    if array.dtype == bool or (array.dtype.kind in "iu" and _is_binary(array)):
        return (array > 0).astype(np.uint8), None
    return array, None


def _is_grey(rgb: np.ndarray) -> bool:
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _grey_mask(grey: np.ndarray, source: str) -> np.ndarray:
    if _is_binary(grey):
        return (grey > 0).astype(np.uint8)
    _warn_fringe_ids(grey, source)
    return grey


def _is_binary(ids: np.ndarray) -> bool:
    """Only the values 0 and 255 (or 0 and 1), some of them not 0."""
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
    """Write ids `[H, W]` (0..255) as a palette PNG, atomically (temp file, then rename)."""
    if isinstance(ids, torch.Tensor):
        ids = ids.cpu().numpy()
    if ids.ndim != 2 or ids.min() < 0 or ids.max() > 255:
        raise ValueError(f"ids must be [H, W] in 0..255, got shape {ids.shape}")
    img = Image.fromarray(ids.astype(np.uint8), mode="P")
    img.putpalette(palette or DAVIS_PALETTE)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


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
