"""`sfcprop demo`: propagate the first mask of a generated clip with the shipped model."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import metrics
from .io import write_mask
from .propagation import propagate
from .synthetic import generate_clip
from .viz import overlay, save_gif


def score(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """DAVIS summary of ids `[T, H, W]` against the ground truth (first and last frame
    dropped, as the semi-supervised protocol does)."""
    n_objects = int(gt.max())
    per_frame = [
        metrics.frame_scores(p, g, n_objects) for p, g in zip(pred[1:-1], gt[1:-1], strict=True)
    ]
    j = np.stack([s[0] for s in per_frame])  # [T-2, objects]
    f = np.stack([s[1] for s in per_frame])
    return metrics.davis_summary({str(i + 1): (j[:, i], f[:, i]) for i in range(n_objects)})


def run_demo(
    out: str | Path,
    backbone: str = "fc",
    device: str | None = None,
    num_frames: int = 24,
    quiet: bool = False,
) -> dict[str, float]:
    """Generate the clip, propagate frame 0's mask, write `out/masks/*.png`,
    `out/overlay.gif` and return the DAVIS summary against the generated ground truth."""
    out = Path(out)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    clip = generate_clip(num_frames=num_frames)
    start = time.perf_counter()
    result = propagate(
        clip.frames,
        clip.masks[0].long(),
        backbone,
        preset="davis",
        device=device,
        progress=not quiet,
    )
    seconds = time.perf_counter() - start
    for t, ids in enumerate(result.ids):
        write_mask(out / "masks" / f"{t:05d}.png", ids)
    save_gif(
        [overlay(f, i) for f, i in zip(clip.frames, result.ids, strict=True)], out / "overlay.gif"
    )
    summary = score(result.ids.numpy(), clip.masks.numpy())
    summary["seconds"] = seconds
    return summary
