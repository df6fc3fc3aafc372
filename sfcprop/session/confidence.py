"""Where tracking fails: the measures of a propagated object, and flags.

Everything here is derived from the propagation itself, on the feature grid:
- certainty: the mean soft label of an object over the cells it wins (1 where the top-k
  keys behind those cells agree on it, lower where they are split);
- area: the object's area (cells it wins) relative to its area in the keyframe(s) the
  frame was propagated from, capped at 1 (`growth`: not capped);
- agreement: between a keyframe and the next one, the IoU of the object in the forward
  and the backward pass (1 when both passes agree, or with one pass only);
- similarity: the cosine of the object's mean feature with its keyframe's;
- distance: the frames to the nearest keyframe;
- drop: how far the similarity fell below the median of the (up to `DROP_WINDOW`) frames
  before it in its stretch (the keyframe counting as 1): a look-alike taking the object's
  place drops it at once, a slow change of appearance does not (`SimilarityTrend`).
The confidence combines them into an estimate of the object's J on the frame
(`sfcprop.session.estimate`: fitted weights, or 0.2's `certainty * min(1, area / 0.25)`
by name); 1 for an object absent from its keyframes and predicted absent.
Flags: an object is "lost" on a frame whose estimated J is below `LOST_J` (by the 0.2
formula: whose area ratio is below `LOST_AREA`); a "cut" is a frame whose dissimilarity to
the one before it (1 - the mean best cosine within the radius, `propagator.similarity`) is
at least `CUT_MIN` and `CUT_FACTOR` times the median of the frames before it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from sfcprop.session.estimate import DEFAULT_METHOD, estimate

LOST_AREA = 0.1  # "certainty-area": lost below this area ratio
LOST_J = 0.2  # "calibrated": lost where the estimated J is below this
CUT_FACTOR = 4.0  # a cut: dissimilarity this many times the recent median ...
CUT_MIN = 0.05  # ... and at least this (1 - mean best cosine)
CUT_HISTORY = 20
DROP_WINDOW = 5  # frames of the similarity's recent median


@dataclass(frozen=True)
class Flag:
    """A frame to check: `kind` "lost" (object `object` lost), "cut" (likely scene cut,
    `object` None) or "unpropagated" (no result: before the first keyframe with
    `forward_only`; `object` None); `value`: the area ratio or the similarity that raised
    it (0 for "unpropagated")."""

    frame: int
    kind: str
    object: int | None
    value: float


@dataclass(frozen=True)
class FrameStats:
    """Per-object measures of one frame: each `[objects]` float64 (channel 0, the
    background, left out). `confidence` is the estimate of the frame's J
    (`sfcprop.session.estimate`); `area` the area ratio capped at 1, `growth` uncapped;
    `similarity` the cosine of the object's mean feature with its keyframe's; `distance`
    the frames to the nearest keyframe (the same for every object); `drop` the fall of the
    similarity below its recent median (`SimilarityTrend`; None: 0)."""

    confidence: np.ndarray
    certainty: np.ndarray
    area: np.ndarray
    agreement: np.ndarray
    growth: np.ndarray
    similarity: np.ndarray
    distance: np.ndarray
    drop: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.drop is None:
            object.__setattr__(self, "drop", np.zeros_like(self.certainty))

    @classmethod
    def constant(cls, objects: int, value: float) -> FrameStats:
        """Every measure `value` (a keyframe: 1, as given; a frame without result: 0)."""
        v = np.full(objects, float(value))
        return cls(v, v, v, v, v, v, np.zeros(objects))


class SimilarityTrend:
    """The `drop` of each frame of one stretch, fed in order (a pass's order; between two
    keyframes, time order): `max(0, median of the last DROP_WINDOW similarities - this
    one)`, per object, the stretch's keyframe counting as similarity 1. Only the frames
    the median reads are kept (`history`, at most `DROP_WINDOW`)."""

    def __init__(self) -> None:
        self.history: deque[np.ndarray] = deque(maxlen=DROP_WINDOW)

    def drop(self, similarity: np.ndarray) -> np.ndarray:
        """`[L]` drop of the next frame's similarity `[L]`; the frame joins the history."""
        sim = np.asarray(similarity, np.float64)
        recent = ([np.ones_like(sim), *self.history])[-DROP_WINDOW:]
        self.history.append(sim)
        return np.maximum(0.0, np.median(np.stack(recent), axis=0) - sim)


def areas(soft: torch.Tensor) -> np.ndarray:
    """Cells won by each channel of soft labels `[L, h, w]` (argmax), `[L]` float64."""
    won = soft.argmax(dim=0).flatten()
    return torch.bincount(won, minlength=soft.shape[0]).double().cpu().numpy()


def prototypes(features: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """The unit mean feature `[L, C]` of the cells each channel of `soft` `[L, h, w]` wins
    in `features` `[C, h, w]` (zero for a channel that wins none)."""
    won = soft.argmax(dim=0).flatten()
    flat = features.float().flatten(1).T  # [h w, C]
    sums = torch.zeros(soft.shape[0], flat.shape[1], device=flat.device)
    sums.index_add_(0, won.to(flat.device), flat)
    return F.normalize(sums, dim=1)


def prototype_similarity(
    features: torch.Tensor, soft: torch.Tensor, key: torch.Tensor
) -> np.ndarray:
    """`[L]` cosine of each channel's prototype in this frame with the keyframe's `key`
    `[L, C]` (`prototypes`); 0 where either is empty."""
    return (prototypes(features, soft) * key.to(features.device)).sum(1).double().cpu().numpy()


def pass_agreement(forward: torch.Tensor, backward: torch.Tensor) -> np.ndarray:
    """`[L]` IoU of each channel's cells (argmax) in two passes' soft labels `[L, h, w]`
    (1 where neither pass has it; channel 0, the background, always 1)."""
    fw, bw = forward.argmax(dim=0), backward.argmax(dim=0)
    iou = np.ones(forward.shape[0])
    for l in range(1, forward.shape[0]):
        a, b = fw == l, bw == l
        union = int((a | b).sum())
        if union:
            iou[l] = int((a & b).sum()) / union
    return iou


def frame_stats(
    soft: torch.Tensor,
    ref_area: np.ndarray,
    other: torch.Tensor | None = None,
    *,
    similarity: np.ndarray | None = None,
    distance: int = 0,
    drop: np.ndarray | None = None,
    method: str = DEFAULT_METHOD,
) -> FrameStats:
    """Measures of the frame with soft labels `soft` `[L, h, w]` (combined passes).

    ref_area `[L]`: cells of each channel in the keyframe(s) the frame came from (their
    mean for two); other: `(forward, backward)` soft labels stacked `[2, L, h, w]` when the
    frame lies between two keyframes; similarity `[L]`: `prototype_similarity` (None: 1);
    distance: frames to the nearest keyframe; drop `[L]`: `SimilarityTrend.drop` (None:
    0); method: how the measures become the
    confidence (`sfcprop.session.estimate.METHODS`)."""
    won = soft.argmax(dim=0)
    area = areas(soft)
    picked = soft.gather(0, won[None])[0]
    sums = torch.zeros(soft.shape[0], dtype=torch.float64, device=soft.device)
    sums.index_add_(0, won.flatten(), picked.flatten().double())
    certainty = np.divide(sums.cpu().numpy(), area, out=np.zeros_like(area), where=area > 0)
    ref = np.asarray(ref_area, dtype=np.float64)
    growth = np.divide(area, ref, out=np.ones_like(area), where=ref > 0)
    ratio = np.minimum(growth, 1.0)
    agreement = np.ones_like(area) if other is None else pass_agreement(other[0], other[1])
    absent = (ref == 0) & (area == 0)
    certainty[absent] = 1.0
    sim = np.ones_like(area) if similarity is None else np.asarray(similarity, np.float64)
    stats = FrameStats(
        np.zeros(len(area) - 1),
        certainty[1:],
        ratio[1:],
        agreement[1:],
        growth[1:],
        sim[1:],
        np.full(len(area) - 1, float(distance)),
        None if drop is None else np.asarray(drop, np.float64)[1:],
    )
    confidence = np.where(absent[1:], 1.0, estimate(stats, method))
    return replace(stats, confidence=np.clip(confidence, 0, 1))


def lost_flags(
    t: int,
    stats: FrameStats,
    ref_area: np.ndarray,
    ids: Sequence[int],
    method: str = DEFAULT_METHOD,
) -> list[Flag]:
    """ "lost" flags of frame `t`: objects present in their keyframe(s) whose estimated J is
    below `LOST_J` ("certainty-area": whose area ratio is below `LOST_AREA`, as in 0.2);
    `ids`: the object ids, channel order without the background. `value`: that measure."""
    present = np.asarray(ref_area, dtype=np.float64)[1:] > 0
    measure, below = (
        (stats.area, LOST_AREA) if method == "certainty-area" else (stats.confidence, LOST_J)
    )
    return [
        Flag(t, "lost", int(ids[i]), float(measure[i]))
        for i in np.flatnonzero(present & (measure < below))
    ]


def is_cut(similarity: float, history: Sequence[float]) -> bool:
    """Whether a frame whose similarity to the one before is `similarity` follows a cut:
    its dissimilarity `1 - similarity` is at least `CUT_MIN` and `CUT_FACTOR` times the
    median of the (up to `CUT_HISTORY`, at least 3) frames before it (`history`, oldest
    first)."""
    recent = history[-CUT_HISTORY:]
    if len(recent) < 3:
        return False
    d = 1.0 - similarity
    return d >= CUT_MIN and d > CUT_FACTOR * (1.0 - float(np.median(recent)))


def cut_flags(similarities: Sequence[float | None]) -> list[Flag]:
    """ "cut" flags of frames `t` with `similarities[t]` to frame t - 1 (None: unknown)."""
    flags, history = [], []
    for t, s in enumerate(similarities):
        if s is None:
            continue
        if is_cut(s, history):
            flags.append(Flag(t, "cut", None, float(s)))
        history.append(s)
    return flags


def lost_runs(flags: Sequence[Flag]) -> list[tuple[int, int, int]]:
    """`(object, first frame, last frame)` of each run of consecutive "lost" flags."""
    runs: list[list[int]] = []
    for f in sorted((f for f in flags if f.kind == "lost"), key=lambda f: (f.object, f.frame)):
        if runs and runs[-1][0] == f.object and runs[-1][2] == f.frame - 1:
            runs[-1][2] = f.frame
        else:
            runs.append([f.object, f.frame, f.frame])
    return [tuple(r) for r in runs]
