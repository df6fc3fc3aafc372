"""`sfcprop demo`: propagate the first mask of the photo clip (`synthetic.photo_clip`)
with the shipped model, beside a randomly initialised network of the same layout."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from sfcprop.bench import metrics
from sfcprop.bench.synthetic import Clip, photo_clip
from sfcprop.io import write_mask
from sfcprop.io.viz import overlay, save_gif
from sfcprop.models.base import Correspondence
from sfcprop.session import Propagation, propagate

RANDOM_SEED = 0  # the random-weights baseline's init seed
MIN_FRAMES = 3  # `score` drops the first and the last frame


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


def random_weights(seed: int = RANDOM_SEED) -> Correspondence:
    """A ResNet-18 trunk with torchvision's default random init (seeded; the global RNG
    is left as it was), as `benchmarks/bench_fc_vs_random.py` builds it."""
    from sfcprop.models import resnet18
    from sfcprop.models.registry import backbone

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = resnet18().state_dict()
    return backbone("imagenet-r18", weights=state)


def _run(
    clip: Clip, model: Correspondence | str, device: str | None, quiet: bool
) -> tuple[Propagation, dict[str, float]]:
    """Propagate frame 0's mask through `clip`: (the result, its DAVIS summary + seconds)."""
    start = time.perf_counter()
    result = propagate(
        clip.frames, clip.masks[0].long(), model, preset="davis", device=device, progress=not quiet
    )
    summary = score(result.ids.numpy(), clip.masks.numpy())
    summary["seconds"] = time.perf_counter() - start
    return result, summary


def run_demo(
    out: str | Path,
    backbone: Correspondence | str = "fc",
    device: str | None = None,
    num_frames: int = 24,
    quiet: bool = False,
    baseline: bool = True,
) -> dict[str, float]:
    """Build the photo clip, propagate frame 0's mask with `backbone`, write
    `out/masks/*.png` and `out/overlay.gif`, and return its DAVIS summary against the
    clip's exact masks (`J&F-Mean`, `J-Mean`, `F-Mean`, `seconds`). With `baseline`, the
    same for `random_weights()` under keys prefixed `random ` (nothing written)."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < MIN_FRAMES:
        raise ValueError(
            f"the demo needs num_frames >= {MIN_FRAMES} (the first and last frames are not "
            f"scored), got {num_frames!r}"
        )
    out = Path(out)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    clip = photo_clip(num_frames=num_frames)
    result, summary = _run(clip, backbone, device, quiet)
    for t, ids in enumerate(result.ids):
        write_mask(out / "masks" / f"{t:05d}.png", ids)
    save_gif(
        [overlay(f, i) for f, i in zip(clip.frames, result.ids, strict=True)], out / "overlay.gif"
    )
    if baseline:
        _, random = _run(clip, random_weights(), device, quiet)
        summary.update({f"random {k}": v for k, v in random.items()})
    return summary


def report(summary: dict[str, float], name: str, num_frames: int) -> list[str]:
    """The demo's printed table: what J&F means, then a row for random weights (when
    `summary` has them) and, last, `name`'s row with its margin over random weights."""
    lines = [
        f"J&F on the {num_frames}-frame photo clip, 0 to 1, higher is better: the mean of "
        "region overlap J and boundary accuracy F against the exact masks",
        f"{'backbone':<16} {'J&F-Mean':>8} {'J-Mean':>7} {'F-Mean':>7} {'seconds':>8}",
    ]
    baseline = "random J&F-Mean" in summary
    if baseline:
        lines[1] += "  vs random"
        lines.append(_row("random weights", summary, "random "))
    lines.append(_row(name, summary, ""))
    if baseline:
        lines[-1] += f"  {summary['J&F-Mean'] - summary['random J&F-Mean']:+9.3f}"
    return lines


def _row(label: str, summary: dict[str, float], prefix: str) -> str:
    jf, j, f, s = (summary[prefix + k] for k in ("J&F-Mean", "J-Mean", "F-Mean", "seconds"))
    return f"{label:<16} {jf:8.3f} {j:7.3f} {f:7.3f} {s:8.1f}"
