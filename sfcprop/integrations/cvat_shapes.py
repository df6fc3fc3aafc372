"""CVAT shapes to pixel masks and back (no server, no model).

Coordinates are CVAT's: x right, y down, in pixels of the full image, pixel `(x, y)`
covering `[x, x + 1] x [y, y + 1]`.
- mask: CVAT's RLE (`cvat_sdk.masks.encode_mask` / `decode_mask`: run lengths, then the
  inclusive box `x1, y1, x2, y2`).
- polygon: `x0, y0, x1, y1, ...`; rasterised with the pixels whose centre lies inside (PIL's
  fill, which also takes the pixels on the outline), traced back out as the outline of the
  largest connected region through its boundary pixels' centres, simplified to a given
  number of vertices (the keyframe's own count) by inserting, one at a time, the contour
  point farthest from the polygon so far (Douglas-Peucker's rule, top down).
- rectangle: `xtl, ytl, xbr, ybr`; becomes the mask of the pixels whose centre lies inside
  the box (the box filled); the box of a mask is its tightest box `x1, y1, x2 + 1, y2 + 1`.
- points: `x0, y0, x1, y1, ...` as `[K, 2]` (x, y) arrays, tracked as keypoints.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np
from cvat_sdk import masks as cvat_masks
from PIL import Image, ImageDraw

MASK_TYPES = ("mask", "polygon", "rectangle")  # tracked as an object mask
SHAPE_TYPES = (*MASK_TYPES, "points")  # every type sfcprop tracks


class ShapeError(ValueError):
    """A CVAT shape sfcprop cannot read: an unsupported type or malformed points."""


def check_type(shape_type: str) -> str:
    """`shape_type` if sfcprop tracks it, else a `ShapeError` naming the supported ones."""
    if shape_type not in SHAPE_TYPES:
        raise ShapeError(
            f"sfcprop cannot track a {shape_type!r} shape: supported types are "
            f"{', '.join(SHAPE_TYPES)} (ellipses, cuboids, skeletons and polylines are not)"
        )
    return shape_type


def _numbers(points: Sequence[float], what: str, least: int, even: bool = True) -> np.ndarray:
    values = np.asarray(list(points), dtype=np.float64)
    if values.ndim != 1 or len(values) < least or (even and len(values) % 2):
        raise ShapeError(
            f"a {what} needs {'an even number of ' if even else ''}at least {least} numbers, "
            f"got {len(values)}"
        )
    if not np.isfinite(values).all():
        raise ShapeError(f"the points of a {what} hold NaN or infinite values")
    return values


def shape_to_mask(shape_type: str, points: Sequence[float], hw: tuple[int, int]) -> np.ndarray:
    """The bool `[H, W]` mask of a mask / polygon / rectangle shape on an `hw` image."""
    h, w = hw
    if check_type(shape_type) == "mask":
        try:
            mask = cvat_masks.decode_mask(list(points), image_width=w, image_height=h)
        except ValueError as e:
            raise ShapeError(f"a mask shape that does not fit the {w}x{h} image: {e}") from None
        if not mask.any():
            raise ShapeError("the mask shape holds no pixel: draw the object first")
        return mask
    if shape_type == "polygon":
        return rasterise_polygon(_numbers(points, "polygon", 6).reshape(-1, 2), hw)
    if shape_type == "rectangle":
        return box_to_mask(_numbers(points, "rectangle", 4)[:4], hw)
    raise ShapeError(f"a {shape_type!r} shape is not a region: use points_to_array")


def mask_to_shape(shape_type: str, mask: np.ndarray, vertices: int = 32) -> list[float] | None:
    """The points of a `shape_type` shape drawn from a bool `[H, W]` mask (None if empty).
    vertices: a polygon's vertex count (at most the outline's length)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return None
    if check_type(shape_type) == "mask":
        x1, y1, x2, y2 = mask_box(mask)
        return [float(v) for v in cvat_masks.encode_mask(mask, bbox=[x1, y1, x2, y2])]
    if shape_type == "rectangle":
        return [float(v) for v in mask_box(mask)]
    if shape_type == "polygon":
        return [float(v) for v in trace_polygon(mask, vertices).ravel()]
    raise ShapeError(f"a {shape_type!r} shape is not a region: use array_to_points")


def box_to_mask(box: Sequence[float], hw: tuple[int, int]) -> np.ndarray:
    """The pixels of an `hw` image whose centre lies inside `xtl, ytl, xbr, ybr`; a box
    thinner than a pixel still takes the pixel under its centre."""
    h, w = hw
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    c0, c1 = math.ceil(x1 - 0.5), math.floor(x2 - 0.5)
    r0, r1 = math.ceil(y1 - 0.5), math.floor(y2 - 0.5)
    if c1 < c0:
        c0 = c1 = math.floor((x1 + x2) / 2)
    if r1 < r0:
        r0 = r1 = math.floor((y1 + y2) / 2)
    mask = np.zeros(hw, dtype=bool)
    mask[max(r0, 0) : min(r1 + 1, h), max(c0, 0) : min(c1 + 1, w)] = True
    if not mask.any():
        raise ShapeError(f"the rectangle {[x1, y1, x2, y2]} lies outside the {w}x{h} image")
    return mask


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The tightest box `x1, y1, x2, y2` (edges: `x2`, `y2` exclusive) of a non-empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def rasterise_polygon(xy: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bool `[H, W]` of the pixels a polygon `[N, 2]` (x, y) covers (outline included)."""
    h, w = hw
    image = Image.new("1", (w, h), 0)
    # PIL puts integer coordinates on pixel centres; CVAT's centres are at k + 0.5
    ImageDraw.Draw(image).polygon([(x - 0.5, y - 0.5) for x, y in xy.tolist()], fill=1, outline=1)
    mask = np.array(image, dtype=bool)
    if not mask.any():
        raise ShapeError(f"the polygon lies outside the {w}x{h} image")
    return mask


def largest_region(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected region of a bool mask (runs of each row joined by
    union-find: linear in the number of runs, not of pixels)."""
    padded = np.pad(np.asarray(mask, dtype=np.int8), ((0, 0), (1, 1)))
    edges = np.diff(padded, axis=1)
    starts, ends = np.nonzero(edges == 1), np.nonzero(edges == -1)
    rows, begin, end = starts[0], starts[1], ends[1]  # run r: row, [begin, end) columns
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = np.searchsorted(rows, np.arange(mask.shape[0] + 1))  # runs of row y: first[y]..
    for y in range(1, mask.shape[0]):
        i, i_end = first[y - 1], first[y]
        j, j_end = first[y], first[y + 1]
        while i < i_end and j < j_end:  # 8-connected: [b, e) touch when b1 <= e2 and b2 <= e1
            if begin[i] <= end[j] and begin[j] <= end[i]:
                parent[root(i)] = root(j)
            if end[i] < end[j]:
                i += 1
            else:
                j += 1
    roots = np.array([root(i) for i in range(len(rows))])
    sizes = np.bincount(roots, weights=end - begin)
    keep = np.flatnonzero(roots == int(np.argmax(sizes)))
    out = np.zeros(mask.shape, dtype=bool)
    for r in keep:
        out[rows[r], begin[r] : end[r]] = True
    return out


_MOORE = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]  # (dy, dx)


def outline(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels `[N, 2]` (x, y) of a mask's largest region, in order around it
    (Moore-neighbour tracing, clockwise in image coordinates)."""
    region = np.pad(largest_region(mask), 1)
    ys, xs = np.nonzero(region)
    start = (int(ys[0]), int(xs[0]))  # the topmost, then leftmost pixel
    out, cur, back = [start], start, 6  # entered from the west (background)
    first = None  # (pixel, back) after the first move: seen again, the loop is closed
    for _ in range(4 * region.size):
        for k in range(8):
            d = (back + 1 + k) % 8
            ny, nx = cur[0] + _MOORE[d][0], cur[1] + _MOORE[d][1]
            if region[ny, nx]:
                cur, back = (ny, nx), (d + 4) % 8
                break
        else:  # a single pixel
            break
        if first is None:
            first = (cur, back)
        elif (cur, back) == first:  # Jacob's stopping criterion
            break
        out.append(cur)
    if len(out) > 1 and out[-1] == start:
        out.pop()
    pts = np.array(out, dtype=np.float64)[:, ::-1] - 1  # (x, y), padding removed
    return pts


def trace_polygon(mask: np.ndarray, vertices: int) -> np.ndarray:
    """A polygon `[n, 2]` (x, y) around the largest region of a bool mask, through its
    boundary pixels' centres, with `n = min(vertices, outline length)` (at least 3 points
    where the outline has them; a single pixel gives its 4 corners)."""
    ring = outline(mask) + 0.5
    if len(ring) < 3:  # one or two pixels: the corners of their box
        x1, y1 = ring.min(0) - 0.5
        x2, y2 = ring.max(0) + 0.5
        return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
    keep = simplify(ring, max(3, int(vertices)))
    return ring[keep]


def simplify(ring: np.ndarray, n: int) -> np.ndarray:
    """Indices (in order) of `n` points of a closed contour `[N, 2]`: the point farthest
    from the start, then, one at a time, the point farthest from its polygon segment."""
    count = len(ring)
    if n >= count:
        return np.arange(count)
    far = int(np.argmax(((ring - ring[0]) ** 2).sum(1)))
    chosen = {0, far}
    heap: list[tuple[float, int, int, int]] = []

    def push(a: int, b: int) -> None:  # the segment a -> b (indices, wrapping round)
        idx = np.arange(a + 1, b if b > a else b + count) % count
        if len(idx) == 0:
            return
        p, q = ring[a], ring[b]
        d = q - p
        length = math.hypot(*d)
        rel = ring[idx] - p
        dist = np.abs(d[0] * rel[:, 1] - d[1] * rel[:, 0]) / length if length else np.hypot(*rel.T)
        k = int(np.argmax(dist))
        heapq.heappush(heap, (-float(dist[k]), int(idx[k]), a, b))

    push(0, far)
    push(far, 0)
    while len(chosen) < n and heap:
        _, k, a, b = heapq.heappop(heap)
        chosen.add(k)
        push(a, k)
        push(k, b)
    return np.array(sorted(chosen))


def points_to_array(points: Sequence[float], hw: tuple[int, int]) -> np.ndarray:
    """A points shape as `[K, 2]` (x, y), each kept inside the `hw` image (CVAT may put a
    point on the far edge, x = W)."""
    h, w = hw
    xy = _numbers(points, "points shape", 2).reshape(-1, 2)
    outside = (xy[:, 0] < -1) | (xy[:, 0] > w + 1) | (xy[:, 1] < -1) | (xy[:, 1] > h + 1)
    if outside.any():
        x, y = xy[int(np.flatnonzero(outside)[0])]
        raise ShapeError(f"the point (x={x:g}, y={y:g}) lies outside the {w}x{h} image")
    xy[:, 0] = xy[:, 0].clip(0, w - 1e-3)
    xy[:, 1] = xy[:, 1].clip(0, h - 1e-3)
    return xy


def array_to_points(xy: np.ndarray) -> list[float]:
    """`[K, 2]` (x, y) as a CVAT points list."""
    return [float(v) for v in np.asarray(xy, dtype=np.float64).ravel()]
