"""Users' labels onto the feature grid and back: masks, soft / part maps, keypoints.

A codec turns one keyframe's labels, as a user gives them, into soft labels `[L, h, w]` on
the feature grid (`encode`) and a propagated frame's soft labels back into user labels
(`decode`); `check` validates a keyframe's labels before any work. Grid tensors stay
between the two; the `Session` only sees soft labels.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import numpy as np
import torch

from sfcprop.io.masks import RawMask, read_raw
from sfcprop.io.objects import ObjectTable
from sfcprop.labels import ids as labels
from sfcprop.labels import keypoints
from sfcprop.labels.resize import resize_ids, resize_soft


class Codec(Protocol):
    """What a `Session` needs of a kind of labels. `kind` names it; `objects`: its channels
    after the first are objects with an area (masks: lost flags, `Session.result`);
    `label_ids`: the id of each channel."""

    kind: str
    objects: bool

    @property
    def label_ids(self) -> list[int]: ...

    def check(self, t: int, label: Any, hw: tuple[int, int]) -> Any:
        """The keyframe's labels, validated (ValueError naming frame `t` otherwise)."""

    def forget(self, t: int) -> None:
        """Keyframe `t` was removed: its labels no longer count."""

    def encode(self, value: Any, hw, encoded_hw, grid) -> torch.Tensor:
        """Checked labels -> soft labels `[L, h, w]` on the feature grid."""

    def decode(self, soft: torch.Tensor, hw: tuple[int, int]) -> Any:
        """Soft labels `[L, h, w]` -> user labels of an `hw` frame."""

    def given(self, value: Any) -> Any:
        """A keyframe's labels as they come back (exactly as given)."""

    def score(self, decoded: Any, confidence: np.ndarray) -> np.ndarray:
        """The per-item confidence of a frame result (objects, or points)."""


class MaskCodec:
    """Object masks `[H, W]` (0 = background): PNG paths, arrays or tensors of ids or of
    colours. One `ObjectTable` numbers every keyframe's objects (a colour keeps its id in
    every keyframe); the objects are the union of the keyframes' ids: channel l is
    `ids[l]`, 0 first; a keyframe without some object says it is absent there.

    Masks go to the encoded frame's size by nearest neighbour, then to the grid
    bilinearly; an object smaller than a cell keeps the cell it covers most
    (`labels.ids.keep_objects`). `bilinear_ids_at=(H', W')` reproduces a quirk of CRW's
    VIP loader instead: the id image itself resized bilinearly to `H' x W'` and rounded (its
    `cv2.resize` call passes INTER_NEAREST where `dst` goes), so blended boundary values
    become extra label channels (ids absent from the mask); needed only to match CRW's VIP
    numbers exactly (spec section 5; cv2's fixed-point rounding may differ in rare pixels)."""

    kind = "mask"
    objects = True

    def __init__(self, bilinear_ids_at: tuple[int, int] | None = None) -> None:
        self.table = ObjectTable()
        self.found: dict[int, list[int]] = {}  # keyframe -> its ids
        self.bilinear_ids_at = tuple(bilinear_ids_at) if bilinear_ids_at else None

    @property
    def ids(self) -> list[int]:
        """0, then every id of the keyframes, increasing."""
        return sorted({0}.union(*self.found.values()))

    @property
    def channels(self) -> int:
        return len(self.ids)

    @property
    def palette(self) -> list[int] | None:
        """The colour of each id: the colour masks' colours, else the first palette PNG's."""
        return self.table.palette

    def check(self, t: int, label: Any, hw: tuple[int, int]) -> torch.Tensor:
        raw = label if isinstance(label, RawMask) else read_raw(label)
        named = "" if raw.source == "the mask" else f" ({raw.source})"
        ids, commit = self.table.number(raw, f"the mask of frame {t}{named}")
        mask = torch.from_numpy(ids.astype(np.int64))
        if tuple(mask.shape) != tuple(hw):
            turned = " (turned by an EXIF orientation?)" if mask.shape[::-1] == hw else ""
            raise ValueError(
                f"frame {t} is {tuple(hw)} (H, W) but its mask is {tuple(mask.shape)}{turned}"
                f"{named}"
            )
        try:
            found = labels.label_ids(mask, allow_empty=True)
        except ValueError as e:
            raise ValueError(f"the mask of frame {t}: {e}") from None
        if self.bilinear_ids_at is not None:
            found = torch.unique(self._blended(mask)).tolist()
        commit()
        self.found[t] = found
        return mask

    def forget(self, t: int) -> None:
        self.found.pop(t, None)

    def encode(self, mask: torch.Tensor, hw, encoded_hw, grid) -> torch.Tensor:
        if self.bilinear_ids_at is not None:
            if tuple(encoded_hw) != self.bilinear_ids_at:
                raise ValueError(
                    f"bilinear_ids_at={self.bilinear_ids_at} but frames are encoded at "
                    f"{tuple(encoded_hw)}"
                )
            return labels.to_grid(self._blended(mask), self.ids, grid)  # CRW's, exactly
        small = resize_ids(mask, encoded_hw)  # nearest; unchanged at native size
        return labels.keep_objects(labels.to_grid(small, self.ids, grid), mask, self.ids)

    def _blended(self, mask: torch.Tensor) -> torch.Tensor:
        """The id image resized bilinearly (half-pixel centres, no antialiasing), rounded."""
        out = resize_soft(mask[None].double(), self.bilinear_ids_at)[0]
        return out.round().long()

    def decode(self, soft: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """Ids `[H, W]` uint8 (CPU): upsampled soft labels, argmax."""
        return labels.decode(soft, self.ids, hw).cpu()

    def given(self, mask: torch.Tensor) -> torch.Tensor:
        return mask.to(torch.uint8)

    @property
    def label_ids(self) -> list[int]:
        return list(self.ids)

    def score(self, decoded, confidence: np.ndarray) -> np.ndarray:
        return confidence


class SoftCodec:
    """Soft maps of any number of classes (part maps, keypoint maps): `[L, h, w]` on the
    feature grid or `[L, H, W]` at the frame's size (resized to the grid, bilinear);
    decoded as they are (no argmax, no normalisation). Every keyframe has the same L."""

    kind = "soft"
    objects = False

    def __init__(self) -> None:
        self._channels: int | None = None

    @property
    def channels(self) -> int:
        return self._channels or 0

    def check(self, t: int, label: Any, hw: tuple[int, int]) -> torch.Tensor:
        soft = torch.as_tensor(label, dtype=torch.float32)
        if soft.ndim != 3:
            raise ValueError(
                f"soft labels must be [L, h, w] or [L, H, W], got {tuple(soft.shape)} (frame {t})"
            )
        if not torch.isfinite(soft).all():
            raise ValueError(f"the soft labels of frame {t} hold NaN or infinite values")
        if self._channels is not None and soft.shape[0] != self._channels:
            raise ValueError(
                f"every keyframe needs the same number of label channels: {soft.shape[0]} "
                f"on frame {t}, {self._channels} before"
            )
        self._channels = soft.shape[0]
        return soft

    def forget(self, t: int) -> None:
        pass

    def encode(self, soft: torch.Tensor, hw, encoded_hw, grid) -> torch.Tensor:
        if tuple(soft.shape[1:]) not in (tuple(grid), tuple(hw)):
            raise ValueError(
                f"soft labels must be [L, h, w] on the {tuple(grid)} feature grid or [L, H, W] "
                f"at the frame's size {tuple(hw)}, got {tuple(soft.shape)}"
            )
        return soft if tuple(soft.shape[1:]) == tuple(grid) else resize_soft(soft, grid)

    def decode(self, soft: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        return soft.cpu()

    def given(self, soft: torch.Tensor) -> torch.Tensor:
        return soft

    @property
    def label_ids(self) -> list[int]:
        return list(range(self.channels))

    def score(self, decoded, confidence: np.ndarray) -> np.ndarray:
        return confidence


class KeypointCodec:
    """Points `[K, 2]` (x, y) 0-based pixels, NaN for a point not given (JHMDB encoding,
    spec section 6: a Gaussian channel per point plus a background channel; decoded from
    the `topn` best cells). Decodes to `(points [K, 2], confidence [K])`."""

    kind = "points"
    objects = False

    def __init__(
        self, sigma: float = 0.5, rounding: Literal["crw", "floor"] = "crw", topn: int = 3
    ) -> None:
        self.sigma, self.rounding, self.topn = sigma, rounding, topn
        self.count: int | None = None

    @property
    def channels(self) -> int:
        return (self.count or 0) + 1

    def check(self, t: int, label: Any, hw: tuple[int, int]) -> np.ndarray:
        pts = check_points(label, hw)
        if self.count is not None and len(pts) != self.count:
            raise ValueError(
                f"every keyframe needs the same {self.count} points, got {len(pts)} on frame {t}"
            )
        self.count = len(pts)
        return pts

    def forget(self, t: int) -> None:
        pass

    def encode(self, pts: np.ndarray, hw, encoded_hw, grid) -> torch.Tensor:
        return keypoints.encode_keypoints(pts, hw, grid, sigma=self.sigma, rounding=self.rounding)

    def decode(self, soft: torch.Tensor, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        return keypoints.decode_keypoints(soft.cpu(), hw, topn=self.topn)

    def given(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return pts.copy(), (~np.isnan(pts).any(axis=1)).astype(np.float64)

    @property
    def label_ids(self) -> list[int]:
        return list(range(self.channels))

    def score(self, decoded: tuple[np.ndarray, np.ndarray], confidence) -> np.ndarray:
        return decoded[1]  # per point


def check_points(points, image_hw: tuple[int, int]) -> np.ndarray:
    """`points` as float64 `[K, 2]` (x, y), each inside the `H x W` frame (0 <= x < W,
    0 <= y < H, 0-based pixels) or NaN (not given); ValueError otherwise."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise ValueError(f"points must be [K, 2] (x, y) with K >= 1, got shape {pts.shape}")
    (h, w), given = image_hw, ~np.isnan(pts).any(axis=1)
    if not given.any():
        raise ValueError("every point is NaN: give at least one (x, y)")
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    bad = np.flatnonzero(given & ~inside)
    if len(bad):
        k = int(bad[0])
        x, y = pts[k]
        raise ValueError(
            f"point {k} (x={x:g}, y={y:g}) is outside the {w}x{h} frame: points are 0-based "
            f"pixels, 0 <= x < {w}, 0 <= y < {h} ({len(bad)} point(s) outside)"
        )
    return pts
