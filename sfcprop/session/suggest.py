"""The frames to annotate next: where a new keyframe is expected to improve the video most."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def reach(t: int, keyframes: Iterable[int], length: int) -> np.ndarray:
    """`[length]` share of each frame's error that a keyframe at `t` is expected to fix: 1
    at `t`, falling linearly to 0 at the neighbouring keyframes (or one past the video's
    ends, where there is none): a keyframe fixes its stretch, most near itself."""
    keys = sorted(set(keyframes))
    before = max((k for k in keys if k < t), default=-1)
    after = min((k for k in keys if k > t), default=length)
    frames = np.arange(length)
    left = np.clip(1 - (t - frames) / (t - before), 0, 1)
    right = np.clip(1 - (frames - t) / (after - t), 0, 1)
    return np.where(frames <= t, left, right)


def suggest_keyframes(confidence: np.ndarray, keyframes: Iterable[int], n: int) -> list[int]:
    """The `n` frames (best first) whose annotation is expected to improve the video most.

    confidence `[T, objects]`: the estimated J of each object on each frame; a frame's
    expected error is `1 - ` its mean. Greedy: the frame whose `reach` covers the most
    remaining error, then that error counted as fixed, and again; so suggestions spread
    over the video instead of piling on its worst stretch. Keyframes are never suggested;
    fewer than `n` come back when fewer frames are left."""
    c = np.asarray(confidence, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"confidence must be [T, objects], got shape {c.shape}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    length, keys = len(c), set(keyframes)
    error = 1 - (c.mean(axis=1) if c.shape[1] else np.ones(length))
    error[list(keys)] = 0
    picks: list[int] = []
    for _ in range(min(n, length - len(keys))):
        gains = [
            -1.0 if t in keys else float(error @ reach(t, keys, length)) for t in range(length)
        ]
        t = int(np.argmax(gains))
        error *= 1 - reach(t, keys, length)
        keys.add(t)
        picks.append(t)
    return picks
