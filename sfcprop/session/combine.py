"""How a frame between two keyframes combines the forward and the backward pass."""

from __future__ import annotations

import numpy as np
import torch

from sfcprop.session import confidence as conf

RULES = ("distance", "certainty", "nearest", "guard")

# chosen stretch by stretch by benchmarks/bench_stretches.py (README, "Keyframes"): of the
# rules, the fewest stretches below the better single pass and the smallest worst loss
DEFAULT_RULE = "guard"
GUARD_IOU = 0.5  # "guard": the passes disagree on an object below this IoU


def combine(
    forward: torch.Tensor,
    backward: torch.Tensor,
    d_forward: int,
    d_backward: int,
    rule: str,
    areas: tuple[np.ndarray, np.ndarray] | None = None,
) -> torch.Tensor:
    """Soft labels `[L, h, w]` of a frame `d_forward` frames after the earlier keyframe and
    `d_backward` before the later one, from the two passes' soft labels.

    "distance": weights linear in time (`d_backward / (d_forward + d_backward)` for the
    forward pass); "certainty": those weights times each pass's per-cell certainty (its
    largest soft label), renormalised per cell; "nearest": the pass of the nearer keyframe
    (the forward one on a tie); "guard": "distance", unless the passes disagree on an
    object that both keyframes hold (IoU below `GUARD_IOU`; an object of one keyframe only
    is expected to differ): then the pass whose own estimate of its J is higher
    (`pass_estimates`; needs `areas`, each keyframe's cells per channel `[L]`)."""
    if rule == "nearest":
        return forward if d_forward <= d_backward else backward
    w = d_backward / (d_forward + d_backward)
    if rule == "distance":
        return w * forward + (1 - w) * backward
    if rule == "certainty":
        a = w * forward.amax(dim=0, keepdim=True)
        b = (1 - w) * backward.amax(dim=0, keepdim=True)
        return (a * forward + b * backward) / (a + b).clamp_min(1e-12)
    if rule == "guard":
        if areas is None:
            raise ValueError('rule "guard" needs the keyframes\' areas (areas=(a, b))')
        both = (np.asarray(areas[0]) > 0) & (np.asarray(areas[1]) > 0)  # in both keyframes
        split = (conf.pass_agreement(forward, backward) < GUARD_IOU)[1:] & both[1:]
        if not split.any():
            return w * forward + (1 - w) * backward
        ef, eb = pass_estimates(forward, backward, d_forward, d_backward, areas)
        return forward if ef[split].mean() >= eb[split].mean() else backward
    raise ValueError(f"rule must be one of {RULES}, got {rule!r}")


def pass_estimates(
    forward: torch.Tensor,
    backward: torch.Tensor,
    d_forward: int,
    d_backward: int,
    areas: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Each pass's calibrated estimate of its objects' J `[L - 1]`, from that pass alone:
    its certainty, its area against its own keyframe's and its distance to it."""
    f = conf.frame_stats(forward.float(), areas[0], distance=d_forward).confidence
    b = conf.frame_stats(backward.float(), areas[1], distance=d_backward).confidence
    return f, b
