"""One object table for every keyframe of a video: each object keeps one id whichever
keyframe, and whichever encoding, shows it.

Colour masks are numbered by the table, not per file: a colour keeps the id it was first
given, a new colour takes the next free id, so a keyframe missing an object (or holding a
new one) does not renumber the others. A binary 0/255 mask is one object, id 1, in every
keyframe. Encodings that cannot be reconciled (a colour keyframe beside a palette or
greyscale one, a binary keyframe beside several numbered objects) are an error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from sfcprop.io.masks import (
    DAVIS_PALETTE,
    MAX_ID,
    MaskSource,
    RawMask,
    _rgb24,
    is_binary,
    read_raw,
)

GREY = 0x010101  # value v as the colour (v, v, v)


class ObjectTable:
    """Raw masks -> ids, one numbering for a whole video (see the module docstring).

    `number(mask, name)` gives a keyframe's ids `[H, W]` and a `commit` that records its
    objects (call it once the keyframe passed every other check); `read` does both.
    `palette` maps each id to the colour to write it with (None: the DAVIS palette)."""

    def __init__(self) -> None:
        self.colours: dict[int, int] = {}  # R << 16 | G << 8 | B -> id (colour keyframes)
        self.greys: dict[int, int] = {}  # value -> id of grey RGB keyframes (may join colours)
        self.seen: set[int] = set()  # ids that id keyframes used as themselves
        self.binary255 = False  # a binary 0/255 keyframe was read as object 1
        self.palette: list[int] | None = None
        self._ids_from: str | None = None  # the first keyframe that was ids, not RGB
        self._colour_from: str | None = None  # the first colour keyframe

    def read(self, mask: MaskSource | RawMask, name: str | None = None) -> np.ndarray:
        ids, commit = self.number(mask, name)
        commit()
        return ids

    def number(
        self, mask: MaskSource | RawMask, name: str | None = None
    ) -> tuple[np.ndarray, Callable[[], None]]:
        """The ids `[H, W]` of one keyframe (`name` in errors) and the commit of its objects."""
        raw = mask if isinstance(mask, RawMask) else read_raw(mask)
        name = name or raw.source
        if raw.kind == "colour" or (raw.rgb and self._colour_from):
            return self._colour(raw, name)
        return self._values(raw, name)

    # ------------------------------------------------------------------ colours

    def _colour(self, raw: RawMask, name: str) -> tuple[np.ndarray, Callable[[], None]]:
        if self._ids_from:
            raise ValueError(_mixed(name, "is a colour mask", self._ids_from, "holds ids"))
        colours = dict(self.colours) or {v * GREY: i for v, i in self.greys.items()}
        codes = raw.array.astype(np.int64) * GREY if raw.array.ndim == 2 else _rgb24(raw.array)
        unique, inverse = np.unique(codes, return_inverse=True)
        new = [int(c) for c in unique if c != 0 and int(c) not in colours]
        start = max(colours.values(), default=0) + 1
        if start + len(new) - 1 > MAX_ID:
            raise ValueError(
                f"{name} brings the colour masks to {start + len(new) - 1} colours besides "
                f"black, more than the {MAX_ID} objects a mask can have: is it a photo, or a "
                "mask saved as JPEG?"
            )
        colours.update({c: start + i for i, c in enumerate(new)})
        lut = np.array([colours.get(int(c), 0) for c in unique], dtype=np.uint8)
        ids = lut[inverse].reshape(codes.shape)

        def commit() -> None:
            self.colours = colours
            self._colour_from = self._colour_from or name
            self.palette = colour_palette(colours)

        return ids, commit

    # ------------------------------------------------------------------ ids

    def _values(self, raw: RawMask, name: str) -> tuple[np.ndarray, Callable[[], None]]:
        if self._colour_from and not raw.rgb:
            raise ValueError(_mixed(name, "holds ids", self._colour_from, "is a colour mask"))
        ids, values = raw.array, np.unique(raw.array)
        binary255 = is_binary(ids) and 255 in values
        if binary255 and 255 not in self.seen:  # one object: id 1
            others = sorted(self.seen - {0, 1})
            if others:
                raise ValueError(
                    f"{name} is a binary 0/255 mask (one object, read as id 1) but other "
                    f"keyframes number their objects {others}: give {name} the id of its "
                    "object"
                )
            ids = (ids > 0).astype(np.uint8)
        elif self.binary255 and 255 in values:  # 255 is the object binary keyframes drew
            if 1 in values:
                raise ValueError(
                    f"{name} holds ids 1 and 255, but a binary 0/255 keyframe was read as "
                    "object 1: give each object one id in every keyframe"
                )
            ids = np.where(ids == 255, 1, ids)
        used = {int(v) for v in np.unique(ids)}

        def commit() -> None:
            self.seen |= used
            self.binary255 |= bool(binary255 and 255 not in used)
            if raw.rgb:
                self.greys.update(_value_ids(raw, ids))
            else:
                self._ids_from = self._ids_from or name
            if self.palette is None and raw.palette is not None:
                self.palette = list(raw.palette)
                if binary255 and 255 not in used:  # entry 1 is the colour 255 was drawn with
                    self.palette[3:6] = self.palette[765:768]

        return ids, commit


def _value_ids(raw: RawMask, ids: np.ndarray) -> dict[int, int]:
    """Each value of a raw mask -> the id it was given."""
    values, index = np.unique(raw.array, return_index=True)
    return dict(zip(values.tolist(), ids.reshape(-1)[index].tolist(), strict=True))


def _mixed(name: str, what: str, other: str, other_is: str) -> str:
    return (
        f"{name} {what} but {other} {other_is}: give every keyframe in one encoding (all "
        "colour masks, or all ids: palette or greyscale PNGs, arrays)"
    )


def colour_palette(colours: dict[int, int]) -> list[int]:
    """The DAVIS palette with entry `id` set to the colour of each `colour -> id`."""
    palette = list(DAVIS_PALETTE)
    palette[0:3] = [0, 0, 0]
    for c, i in colours.items():
        palette[3 * i : 3 * i + 3] = [c >> 16, (c >> 8) & 255, c & 255]
    return palette


def read_mask(mask: MaskSource) -> tuple[np.ndarray, list[int] | None]:
    """A mask, from a file or an array, as `(ids [H, W], palette or None)`.

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
    colour of entry 255. Images are turned as their EXIF orientation says. JPEG masks are
    refused (lossy: every edge gets new values). Several keyframes of one video are read
    with one `ObjectTable`, so that their objects keep one id.
    """
    table = ObjectTable()
    return table.read(mask), table.palette


def load_first_mask(mask: MaskSource) -> torch.Tensor:
    """A mask (a file, or an array / tensor of ids or of colours; see `read_mask`) as
    int64 `[H, W]`."""
    return torch.from_numpy(read_mask(mask)[0].astype(np.int64))


def colour_table(rgb: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """A colour mask `[H, W, 3]` as `(ids uint8 [H, W], palette)`: black is id 0, the other
    colours ids 1..N in increasing order (by R, then G, then B); palette entry i is the
    colour of id i (768 ints, entries above N from the DAVIS palette)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype.kind not in "iu":
        raise ValueError(f"a colour mask must be integer [H, W, 3], got {rgb.dtype} {rgb.shape}")
    if rgb.size and (rgb.min() < 0 or rgb.max() > 255):
        raise ValueError("the colours of a colour mask must be in 0..255")
    table = ObjectTable()
    ids = table.read(RawMask("colour", rgb.astype(np.uint8), rgb=True, source="the colour mask"))
    return ids, table.palette
