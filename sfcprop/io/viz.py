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
from sfcprop.io.frames import FrameSource, as_frame, iter_frames
from sfcprop.io.masks import DAVIS_PALETTE
from sfcprop.io.video import VideoWriter

# JHMDB's 15-joint skeleton (joint order of `tracking.JHMDB_JOINTS`): head, arms, legs
JHMDB_SKELETON = (
    (0, 2), (0, 1), (0, 3), (0, 4), (3, 7), (7, 11), (4, 8), (8, 12),
    (1, 5), (1, 6), (5, 9), (9, 13), (6, 10), (10, 14),
)  # fmt: skip

# The longer side of a GIF's frames (larger ones are shrunk): 90 frames of 854x480 at full
# size make a 24 MB GIF; the CLI's `--gif` writes the same size
GIF_MAX_SIDE = 480

Picture = Image.Image | torch.Tensor | np.ndarray  # PIL, uint8 [3, H, W] or [H, W, 3]


def overlay(
    frame: Picture, ids, palette: Sequence[int] | None = None, alpha: float = 0.5
) -> Image.Image:
    """Blend the colours of `ids` on `frame`; id 0 stays clear. Object borders are drawn in
    full colour.

    frame: a PIL image, a `[3, H, W]` tensor or an `[H, W, 3]` array (uint8; 16-bit and
    floats in [0, 1] as `sfcprop.io.iter_frames` reads them); ids: `[H, W]` integer ids
    0-255 (a tensor, an array, or a palette / greyscale PIL image). Returns an RGB image."""
    img = _rgb(frame).astype(np.float32)
    lab = _ids(ids, img.shape[:2])
    colour = _palette(palette).astype(np.float32)[lab]
    fg = (lab > 0)[..., None]
    out = np.where(fg, (1 - alpha) * img + alpha * colour, img)
    edge = np.zeros(lab.shape, bool)
    edge[:-1] |= lab[:-1] != lab[1:]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    out[edge & (lab > 0)] = colour[edge & (lab > 0)]
    return Image.fromarray(out.round().clip(0, 255).astype(np.uint8))


def draw_keypoints(
    image: Picture,
    points,
    confidence=None,
    *,
    skeleton: Sequence[tuple[int, int]] | str | None = "auto",
    palette: Sequence[int] | None = None,
    radius: int | None = None,
    min_confidence: float = 0.0,
) -> Image.Image:
    """Draw points `[K, 2]` (x, y) pixels on `image` (as `overlay`'s frame): point k as
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
    images: Sequence[Picture],
    path: str | os.PathLike | BinaryIO,
    fps: float = 10,
    max_side: int | None = GIF_MAX_SIDE,
) -> None:
    """Write an animated GIF (looping), atomically when `path` is a path (a binary file
    object is written as it is). Images (as `overlay`'s frame) larger than `max_side`
    pixels are shrunk to it, aspect kept (None: full size; 90 frames of 854x480 make
    24 MB); RGB images get a palette each (fast octree). PIL holds every frame until it
    writes, so for a long video write an mp4 (`save_video`)."""
    if not images:
        raise ValueError("no images to write")
    if max_side is not None and (isinstance(max_side, bool) or max_side < 1):
        raise ValueError(f"max_side must be a positive number of pixels or None, not {max_side}")
    frames = [gif_frame(_shrunk(_image(img), max_side)) for img in images]

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


def _shrunk(image: Image.Image, max_side: int | None) -> Image.Image:
    """`image`, shrunk to at most `max_side` pixels on its longer side (None: as it is)."""
    if max_side is None or max(image.size) <= max_side:
        return image
    small = image.copy()
    small.thumbnail((max_side, max_side))
    return small


def gif_frame(image: Image.Image) -> Image.Image:
    """An image as a palette ("P") image for a GIF: 255 colours by fast octree (PIL's
    default, median cut, is ~100x slower)."""
    if image.mode == "P":
        return image
    return image.convert("RGB").quantize(colors=255, method=Image.Quantize.FASTOCTREE)


def save_video(images: Iterable[Picture], path: str | os.PathLike, fps: float = 10) -> None:
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
        img = overlay(frame, ids[t], palette) if ids is not None else frame
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


def _image(image: Picture) -> Image.Image:
    """A PIL image as it is (a palette image keeps its palette), else an RGB one."""
    return image if isinstance(image, Image.Image) else Image.fromarray(_rgb(image))


def _to_pil(image: Picture) -> Image.Image:
    """An RGB PIL image of a picture (see `Picture`)."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    return Image.fromarray(_rgb(image))


def _rgb(image: Picture) -> np.ndarray:
    """`[H, W, 3]` uint8 of a picture, by the rule of frames (`sfcprop.io.as_frame`)."""
    return as_frame(image, "the image").permute(1, 2, 0).cpu().numpy()


def _ids(ids, size: tuple[int, int]) -> np.ndarray:
    """`[H, W]` int64 ids 0-255 of a tensor, an array or a PIL image, of the frame's `size`."""
    if isinstance(ids, Image.Image):
        if ids.mode not in ("P", "L", "1"):
            raise ValueError(f"ids as a PIL image are a palette or greyscale image, not {ids.mode}")
        ids = np.asarray(ids)
    lab = ids.cpu().numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
    if lab.ndim != 2 or lab.dtype.kind not in "biu":
        raise ValueError(f"ids are an [H, W] map of integers, got {lab.dtype} {lab.shape}")
    if lab.shape != tuple(size):
        raise ValueError(f"ids of size {lab.shape} on a frame of size {tuple(size)}")
    if lab.size and (lab.min() < 0 or lab.max() > 255):
        raise ValueError(f"ids run from {lab.min()} to {lab.max()}; overlays show ids 0-255")
    return lab.astype(np.int64)
