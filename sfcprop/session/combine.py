"""How a frame between two keyframes combines the forward and the backward pass."""

from __future__ import annotations

import torch

RULES = ("distance", "certainty", "nearest")

DEFAULT_RULE = "distance"  # chosen by benchmarks/bench_keyframes.py (README, "Keyframes")


def combine(
    forward: torch.Tensor, backward: torch.Tensor, d_forward: int, d_backward: int, rule: str
) -> torch.Tensor:
    """Soft labels `[L, h, w]` of a frame `d_forward` frames after the earlier keyframe and
    `d_backward` before the later one, from the two passes' soft labels.

    "distance": weights linear in time (`d_backward / (d_forward + d_backward)` for the
    forward pass); "certainty": those weights times each pass's per-cell certainty (its
    largest soft label), renormalised per cell; "nearest": the pass of the nearer keyframe
    (the forward one on a tie)."""
    if rule == "nearest":
        return forward if d_forward <= d_backward else backward
    w = d_backward / (d_forward + d_backward)
    if rule == "distance":
        return w * forward + (1 - w) * backward
    if rule == "certainty":
        a = w * forward.amax(dim=0, keepdim=True)
        b = (1 - w) * backward.amax(dim=0, keepdim=True)
        return (a * forward + b * backward) / (a + b).clamp_min(1e-12)
    raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
