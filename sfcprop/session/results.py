"""Typed results: one frame (`FrameResult`), a whole video (`Propagation`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

from sfcprop.session import confidence as conf
from sfcprop.session.suggest import suggest_keyframes


class FrameResult(NamedTuple):
    """One frame's result: `labels` as the codec decodes them (masks: ids `[H, W]` uint8;
    soft maps: `[L, h, w]`; points: `(points [K, 2], confidence [K])`), `soft` `[L, h, w]`
    on the grid, `confidence` `[objects]` in [0, 1], `flags` of this frame."""

    t: int
    labels: Any
    soft: torch.Tensor
    confidence: np.ndarray
    flags: list[conf.Flag]

    @property
    def ids(self) -> torch.Tensor:
        """The ids `[H, W]` uint8 of a mask result."""
        return self.labels

    def __repr__(self) -> str:
        labels = self.labels
        if isinstance(labels, tuple):
            labels = f"({', '.join(shape_of(x) for x in labels)})"
        else:
            labels = shape_of(labels)
        confidence = few(np.round(np.asarray(self.confidence, dtype=float), 2).tolist())
        return (
            f"FrameResult(t={self.t}, labels {labels}, soft {shape_of(self.soft)}, "
            f"confidence {confidence}, {len(self.flags)} flags)"
        )


@dataclass
class Propagation:
    """Result of `propagate`: ids `[T, H, W]` uint8 (annotated frames as given);
    `label_ids` (channel l of `soft` is id `label_ids[l]`; object i of `confidence` is
    `label_ids[i + 1]`); soft `[T, L, h, w]` or None; confidence `[T, objects]` float32
    in [0, 1] (see `sfcprop.session.confidence`); flags: frames to check (lost objects, likely
    scene cuts); keyframes: the annotated frames."""

    ids: torch.Tensor
    label_ids: list[int]
    soft: torch.Tensor | None = None
    confidence: torch.Tensor | None = None
    flags: list[conf.Flag] = field(default_factory=list)
    keyframes: list[int] = field(default_factory=list)

    def lost(self) -> list[tuple[int, int, int]]:
        """`(object id, first frame, last frame)` of each run of frames an object is lost."""
        return conf.lost_runs(self.flags)

    def __repr__(self) -> str:
        soft = f", soft {shape_of(self.soft)}" if self.soft is not None else ""
        return (
            f"Propagation(ids {shape_of(self.ids)}, objects {few(self.label_ids[1:])}, "
            f"keyframes {few(self.keyframes)}{soft}, {len(self.lost())} lost runs, "
            f"{len(self.flags)} flags)"
        )

    def suggest_keyframes(self, n: int = 3) -> list[int]:
        """The `n` frames (best first) whose annotation is expected to improve the video most
        (`sfcprop.session.suggest`): spread over the video, never a keyframe."""
        return suggest_keyframes(self.confidence.numpy(), self.keyframes, n)


def shape_of(x) -> str:
    """A tensor or an array in a few characters, `[T, H, W] uint8`, for a repr."""
    if not hasattr(x, "shape"):
        return type(x).__name__
    return f"[{', '.join(str(n) for n in x.shape)}] {str(x.dtype).removeprefix('torch.')}"


def few(values, n: int = 6) -> str:
    """A list for a repr, its middle cut past `n` items: `[0, 10, 20, 30, 40, ..., 90] (10)`."""
    values = list(values)
    if len(values) <= n:
        return str(values)
    return f"[{', '.join(str(v) for v in values[: n - 1])}, ..., {values[-1]}] ({len(values)})"


@dataclass
class _Done:
    soft: torch.Tensor  # [L, h, w] on the grid, channels as `ids`
    ids: tuple[int, ...]
    stats: conf.FrameStats
    ref: np.ndarray  # [L] reference areas


def remap(soft: torch.Tensor, old: tuple[int, ...], new: list[int]) -> torch.Tensor:
    """Soft labels over ids `old` -> over ids `new` (channels of ids new since: 0; of ids
    gone since, with the keyframes that held them: dropped)."""
    if list(old) == list(new):
        return soft
    out = soft.new_zeros((len(new), *soft.shape[1:]))
    for i, v in enumerate(old):
        if v in new:
            out[new.index(v)] = soft[i]
    return out


def remap_objects(values: np.ndarray, old: tuple[int, ...], new: list[int]) -> np.ndarray:
    """Per-object values over `old[1:]` -> over `new[1:]` (objects new since: 1, absent)."""
    out = np.ones(len(new) - 1)
    for i, v in enumerate(old[1:]):
        if v in new:
            out[new.index(v) - 1] = values[i]
    return out
