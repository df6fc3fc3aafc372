"""Generated clips with moving objects and their exact ground truth (deterministic).

`generate_clip`: noise-textured shapes (the tests' clip); `photo_clip`: photographed
objects over a photographed background with camera motion (`sfcprop demo`'s clip, from
the public-domain / CC0 images packaged in `demo_images/`). No data set, no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


@dataclass
class Clip:
    """frames: uint8 `[T, 3, H, W]`; masks: uint8 `[T, H, W]` (0 background, ids 1..n)."""

    frames: torch.Tensor
    masks: torch.Tensor


def _texture(rng: np.random.Generator, h: int, w: int, scale: int) -> torch.Tensor:
    """Smooth colour noise `[3, h, w]` in [0, 1]: coarse noise upsampled plus fine grain."""
    coarse = torch.from_numpy(rng.random((1, 3, h // scale + 2, w // scale + 2))).float()
    smooth = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0]
    fine = torch.from_numpy(rng.random((3, h, w))).float()
    return (0.75 * smooth + 0.25 * fine).clamp(0, 1)


def generate_clip(
    num_frames: int = 24,
    height: int = 240,
    width: int = 320,
    seed: int = 0,
    leaves_at: int | None = None,
) -> Clip:
    """Two textured objects (an ellipse and a rectangle) moving over a textured
    background, the ellipse passing in front of the rectangle; shapes change slowly.
    `leaves_at`: the ellipse (object 1) is gone from this frame on."""
    rng = np.random.default_rng(seed)
    background = _texture(rng, height, width, 24) * 0.8
    tex = [_texture(rng, height, width, 6), _texture(rng, height, width, 10)]
    tint = [torch.tensor([1.0, 0.35, 0.25]), torch.tensor([0.25, 0.55, 1.0])]
    yy, xx = torch.meshgrid(
        torch.arange(height, dtype=torch.float32),
        torch.arange(width, dtype=torch.float32),
        indexing="ij",
    )
    frames, masks = [], []
    for t in range(num_frames):
        s = t / max(1, num_frames - 1)
        image = background.clone()
        mask = torch.zeros(height, width, dtype=torch.uint8)
        # object 2: a rectangle drifting left, slowly growing; drawn first (behind)
        cy, cx = 0.55 * height, (0.7 - 0.25 * s) * width
        hh, hw = (0.16 + 0.03 * s) * height, 0.14 * width
        rect = ((yy - cy).abs() < hh) & ((xx - cx).abs() < hw)
        # object 1: an ellipse moving right and down, rotating its axes
        ey, ex = (0.35 + 0.2 * s) * height, (0.2 + 0.45 * s) * width
        a, b = 0.16 * width, (0.12 + 0.04 * np.sin(3 * s)) * height
        ang = 0.8 * s
        u = (xx - ex) * np.cos(ang) + (yy - ey) * np.sin(ang)
        v = -(xx - ex) * np.sin(ang) + (yy - ey) * np.cos(ang)
        ellipse = (u / a) ** 2 + (v / b) ** 2 < 1
        if leaves_at is not None and t >= leaves_at:
            ellipse = torch.zeros_like(ellipse)
        for oid, region in ((2, rect), (1, ellipse)):
            shift = int(round(6 * s * (1 if oid == 1 else -1)))
            obj = torch.roll(tex[oid - 1], shifts=shift, dims=2) * tint[oid - 1][:, None, None]
            image = torch.where(region, obj, image)
            mask[region] = oid
        frames.append((image * 255).round().to(torch.uint8))
        masks.append(mask)
    return Clip(torch.stack(frames), torch.stack(masks))


# --------------------------------------------------------------------------- photo clip

IMAGES = Path(__file__).resolve().parent / "demo_images"  # see demo_images/LICENSES.md


@dataclass(frozen=True)
class _Track:
    """A cut-out's path over the clip: centre (x, y) and height as fractions of the frame,
    rotation in radians; each a (start, end) pair, interpolated linearly."""

    x: tuple[float, float]
    y: tuple[float, float]
    height: tuple[float, float]
    angle: tuple[float, float]


def _photo(name: str) -> torch.Tensor:
    """A packaged photograph as float `[3, h, w]` in [0, 1]."""
    path = IMAGES / name
    if not path.is_file():
        raise FileNotFoundError(f"demo image {path} is missing (a broken sfcprop install?)")
    with Image.open(path) as im:
        array = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _lerp(pair: tuple[float, float], s: float) -> float:
    return pair[0] + (pair[1] - pair[0]) * s


def _pixel_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates `[H, W]` (y, x)."""
    return torch.meshgrid(
        torch.arange(height, dtype=torch.float32) + 0.5,
        torch.arange(width, dtype=torch.float32) + 0.5,
        indexing="ij",
    )


def _sample(image: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """`image` `[3, h, w]` read bilinearly at normalised coordinates `u, v` `[H, W]`
    (-1..1 spans the image's width, height)."""
    grid = torch.stack([u, v], dim=-1)[None]
    return F.grid_sample(image[None], grid, mode="bilinear", align_corners=False)[0]


def _camera(
    background: torch.Tensor, yy: torch.Tensor, xx: torch.Tensor, s: float, pan: float
) -> torch.Tensor:
    """The background seen through a crop window that pans horizontally (`pan`: signed
    fraction of the photo's width over the clip), drifts down and zooms in slowly."""
    bh, bw = background.shape[1:]
    height, width = yy.shape
    win_w = bw * (0.80 - 0.12 * s)  # zoom in: the window shrinks
    win_h = win_w * height / width
    cx = bw / 2 + pan * bw * (s - 0.5)
    cy = bh / 2 + 0.04 * bh * (s - 0.5)
    cx = min(max(cx, win_w / 2), bw - win_w / 2)
    cy = min(max(cy, win_h / 2), bh - win_h / 2)
    u = (cx + (xx / width - 0.5) * win_w) / bw * 2 - 1
    v = (cy + (yy / height - 0.5) * win_h) / bh * 2 - 1
    return _sample(background, u, v)


def _cutout(
    texture: torch.Tensor,
    shape: str,
    track: _Track,
    yy: torch.Tensor,
    xx: torch.Tensor,
    s: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A photo cut-out placed on the frame: (its pixels `[3, H, W]`, its exact region
    `[H, W]` bool). `shape`: "ellipse" (inscribed in the photo) or "card" (the photo with
    rounded corners)."""
    height, width = yy.shape
    th, tw = texture.shape[1:]
    hy = _lerp(track.height, s) * height / 2  # half-size in pixels
    hx = hy * tw / th
    cx, cy, angle = _lerp(track.x, s) * width, _lerp(track.y, s) * height, _lerp(track.angle, s)
    dx, dy = xx - cx, yy - cy
    c, n = float(np.cos(angle)), float(np.sin(angle))
    u = (dx * c + dy * n) / hx  # object coordinates, -1..1 across the photo
    v = (-dx * n + dy * c) / hy
    if shape == "ellipse":
        region = u**2 + v**2 < 1
    elif shape == "card":
        r = 0.2 * min(hx, hy)  # corner radius, pixels
        qx = ((u.abs() * hx) - (hx - r)).clamp(min=0)
        qy = ((v.abs() * hy) - (hy - r)).clamp(min=0)
        region = (u.abs() < 1) & (v.abs() < 1) & (qx**2 + qy**2 < r**2)
    else:
        raise ValueError(f"shape must be 'ellipse' or 'card', got {shape!r}")
    if 2 * hy < th:  # shrink the photo first (antialiased), so that no detail aliases
        size = (max(2, round(2 * hy)), max(2, round(2 * hx)))
        texture = F.interpolate(texture[None], size=size, mode="bilinear", antialias=True)[0]
    return _sample(texture, u, v), region


def _tracks(rng: np.random.Generator) -> tuple[_Track, _Track]:
    """Object 1 (the cat, in front) crosses left to right and grows (it approaches);
    object 2 (the astronaut card, behind) crosses right to left and shrinks. Their paths
    cross halfway, so the cat partly hides the card there."""
    j = rng.uniform(-0.03, 0.03, size=4)
    cat = _Track(
        x=(0.22 + j[0], 0.70 + j[1]), y=(0.45, 0.66), height=(0.38, 0.55), angle=(0.0, 0.35)
    )
    card = _Track(
        x=(0.74 + j[2], 0.36 + j[3]), y=(0.42, 0.38), height=(0.55, 0.45), angle=(-0.05, 0.1)
    )
    return cat, card


def photo_clip(num_frames: int = 24, height: int = 240, width: int = 320, seed: int = 0) -> Clip:
    """Two photographed objects cut out with exact masks, moving over a photographed
    background filmed by a panning, zooming camera (deterministic for a `seed`).

    Object 1: an elliptical cut-out of a cat's face, crossing left to right and growing;
    object 2: a rounded-rectangle portrait of an astronaut, crossing right to left and
    shrinking, partly hidden by the cat where their paths cross. Background: a coffee cup
    on a wooden table. The photographs are public domain / CC0 (demo_images/LICENSES.md).
    """
    if num_frames < 1 or height < 8 or width < 8:
        raise ValueError(
            f"photo_clip needs num_frames >= 1 and a frame of at least 8x8 pixels, got "
            f"num_frames={num_frames}, height={height}, width={width}"
        )
    rng = np.random.default_rng(seed)
    background = _photo("coffee.jpg")
    cutouts = ((1, _photo("chelsea.jpg"), "ellipse"), (2, _photo("astronaut.jpg"), "card"))
    tracks = dict(zip((1, 2), _tracks(rng), strict=True))
    pan = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.08, 0.12))
    yy, xx = _pixel_grid(height, width)
    frames, masks = [], []
    for t in range(num_frames):
        s = t / max(1, num_frames - 1)
        image = _camera(background, yy, xx, s, pan)
        mask = torch.zeros(height, width, dtype=torch.uint8)
        for oid, texture, shape in reversed(cutouts):  # object 2 first: it is behind
            pixels, region = _cutout(texture, shape, tracks[oid], yy, xx, s)
            image = torch.where(region, pixels, image)
            mask[region] = oid
        frames.append((image.clamp(0, 1) * 255).round().to(torch.uint8))
        masks.append(mask)
    return Clip(torch.stack(frames), torch.stack(masks))
