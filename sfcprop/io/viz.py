"""Pictures of results: masks blended on frames, keypoints and skeletons, animated GIFs,
videos, and a one-line preview for notebooks (`show`)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageDraw

from sfcprop.io.atomic import atomic_path
from sfcprop.io.frames import FrameSource, iter_frames
from sfcprop.io.masks import DAVIS_PALETTE
from sfcprop.io.video import VideoWriter

# JHMDB's 15-joint skeleton (joint order of `tracking.JHMDB_JOINTS`): head, arms, legs
JHMDB_SKELETON = (
    (0, 2), (0, 1), (0, 3), (0, 4), (3, 7), (7, 11), (4, 8), (8, 12),
    (1, 5), (1, 6), (5, 9), (9, 13), (6, 10), (10, 14),
)  # fmt: skip


def overlay(
    frame: torch.Tensor, ids: torch.Tensor, palette: Sequence[int] | None = None, alpha: float = 0.5
) -> Image.Image:
    """Blend the colours of `ids` `[H, W]` on `frame` (uint8 `[3, H, W]`); id 0 stays clear.
    Object borders are drawn in full colour."""
    pal = _palette(palette).astype(np.float32)
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


def draw_keypoints(
    image: Image.Image | torch.Tensor,
    points,
    confidence=None,
    *,
    skeleton: Sequence[tuple[int, int]] | str | None = "auto",
    palette: Sequence[int] | None = None,
    radius: int | None = None,
    min_confidence: float = 0.0,
) -> Image.Image:
    """Draw points `[K, 2]` (x, y) pixels on `image` (PIL or uint8 `[3, H, W]`): point k as
    a dot in palette colour k + 1, joined by `skeleton` lines (pairs of point indices;
    "auto": `JHMDB_SKELETON` when K = 15, else none). NaN points and points whose
    `confidence` `[K]` is below `min_confidence` are left out. Returns a new RGB image."""
    img = _to_pil(image).copy()
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    shown = ~np.isnan(pts).any(axis=1)
    if confidence is not None:
        shown &= np.asarray(confidence, dtype=np.float64).reshape(-1) >= min_confidence
    if isinstance(skeleton, str):
        if skeleton != "auto":
            raise ValueError(f"skeleton must be pairs of indices, None or 'auto', not {skeleton!r}")
        skeleton = JHMDB_SKELETON if len(pts) == len(JHMDB_SKELETON) + 1 else ()
    pal = _palette(palette)
    r = radius or max(2, round(min(img.size) / 90))
    draw = ImageDraw.Draw(img)
    for a, b in skeleton or ():
        if a < len(pts) and b < len(pts) and shown[a] and shown[b]:
            draw.line([tuple(pts[a]), tuple(pts[b])], fill=(255, 255, 255), width=max(1, r // 2))
    for k in np.flatnonzero(shown):
        x, y = pts[k]
        colour = tuple(int(c) for c in pal[(k + 1) % 256])
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=(0, 0, 0))
    return img


def save_gif(
    images: Sequence[Image.Image], path: str | os.PathLike | BinaryIO, fps: float = 10
) -> None:
    """Write an animated GIF (looping), atomically when `path` is a path (a binary file
    object is written as it is). RGB images get a palette each (fast octree). PIL holds
    every frame until it writes, so for a long video shrink the frames first or write an
    mp4 (`save_video`)."""
    if not images:
        raise ValueError("no images to write")
    frames = [gif_frame(img) for img in images]

    def write(target) -> None:
        frames[0].save(
            target,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=int(1000 / fps),
            loop=0,
        )

    if not isinstance(path, (str, os.PathLike)):
        write(path)
        return
    with atomic_path(path) as tmp:
        write(tmp)


def gif_frame(image: Image.Image) -> Image.Image:
    """An image as a palette ("P") image for a GIF: 255 colours by fast octree (PIL's
    default, median cut, is ~100x slower)."""
    if image.mode == "P":
        return image
    return image.convert("RGB").quantize(colors=255, method=Image.Quantize.FASTOCTREE)


def save_video(
    images: Iterable[Image.Image | torch.Tensor], path: str | os.PathLike, fps: float = 10
) -> None:
    """Write images to an mp4 (H.264) one at a time, atomically (needs PyAV; see
    `sfcprop.io.VideoWriter` for lossless output)."""
    with VideoWriter(path, fps) as writer:
        for image in images:
            writer.write(image)


def show(
    frames: FrameSource,
    ids=None,
    *,
    points=None,
    palette: Sequence[int] | None = None,
    fps: float = 10,
    max_side: int = 320,
    max_frames: int = 300,
):
    """A one-line preview in a notebook: `sfcprop.viz.show(frames, result)`.

    frames: anything `iter_frames` reads; ids: `[T, H, W]` ids or a `Propagation`;
    points: `[T, K, 2]` or `Tracks`. Frames are shrunk to `max_side` and cut after
    `max_frames`. Returns an inline GIF (`IPython.display.Image`) when IPython is
    installed, else a PIL image: a row of up to 8 evenly spaced frames.
    """
    ids = getattr(ids, "ids", ids)
    points = getattr(points, "points", points)
    images = []
    for t, frame in enumerate(iter_frames(frames)):
        if t >= max_frames:
            break
        img = overlay(frame, torch.as_tensor(ids[t]), palette) if ids is not None else frame
        if points is not None:
            img = draw_keypoints(img, points[t], palette=palette)
        img = _to_pil(img)
        img.thumbnail((max_side, max_side))
        images.append(img)
    if not images:
        raise ValueError("no frames to show")
    try:
        from IPython.display import Image as InlineImage
    except ImportError:
        return _row(images)
    buffer = io.BytesIO()
    save_gif(images, buffer, fps)
    return InlineImage(data=buffer.getvalue(), format="gif")


def _row(images: Sequence[Image.Image], n: int = 8) -> Image.Image:
    picks = [images[i] for i in np.unique(np.linspace(0, len(images) - 1, n).round().astype(int))]
    w, h = sum(i.width for i in picks), max(i.height for i in picks)
    grid = Image.new("RGB", (w, h))
    x = 0
    for img in picks:
        grid.paste(img, (x, 0))
        x += img.width
    return grid


def _palette(palette: Sequence[int] | None) -> np.ndarray:
    """`[256, 3]` colours: `palette` (flat RGB), completed from the DAVIS palette."""
    pal = np.asarray(DAVIS_PALETTE, dtype=np.int64).reshape(-1, 3)
    if palette is not None:
        given = np.asarray(palette, dtype=np.int64)
        given = given[: len(given) // 3 * 3].reshape(-1, 3)[:256]
        pal[: len(given)] = given
    return pal


def _to_pil(image: Image.Image | torch.Tensor) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.fromarray(image.permute(1, 2, 0).cpu().numpy())
