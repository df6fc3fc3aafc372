"""`propagate`, `propagate_iter` and `propagate_soft`: a session plus one loop."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from sfcprop.core import budget
from sfcprop.core.propagator import Propagator
from sfcprop.io.frames import FrameSource, count_frames
from sfcprop.io.progress import frames_bar
from sfcprop.labels.codecs import SoftCodec
from sfcprop.labels.resize import resize_soft
from sfcprop.models.base import Correspondence
from sfcprop.session.combine import DEFAULT_RULE
from sfcprop.session.results import FrameResult, Propagation
from sfcprop.session.session import Session


def propagate_iter(
    frames: FrameSource,
    annotations,
    backbone: Propagator | Correspondence | str = "fc",
    semantic: Correspondence | str | None = None,
    *,
    reserve_per_frame: int = 0,
    progress: bool | None = None,
    **options: Any,
) -> Iterator[FrameResult]:
    """`propagate` one frame at a time: yields a `FrameResult` (`t, ids [H, W] uint8 (CPU),
    soft [L, h, w], confidence [objects], flags`) as each frame is final, in order, so a
    caller can write it and drop it (nothing accumulates).

    Channel l of `soft` is id l of the union of the annotations' ids (0 first, then the
    ids in increasing order). `reserve_per_frame`: bytes the caller keeps of each frame,
    counted against `max_memory` (before any work when the number of frames is known,
    else as frames are done). Other arguments (`rule`, `forward_only`, `progress`,
    settings) as `propagate`.
    """
    session = Session.streaming(frames, annotations, backbone, semantic, **options)
    yield from frames_bar(
        _stream(session, reserve_per_frame),
        progress,
        frames,
        session.size,
        session.config.precision,
    )


def _stream(session: Session, reserve_per_frame: int) -> Iterator[FrameResult]:
    """The session's results in order, `reserve_per_frame` bytes of each counted against
    `max_memory` (before any work when the number of frames is known, else as they come)."""
    max_memory = session.config.max_memory
    count = count_frames(session.store.frames) if max_memory and reserve_per_frame else None
    session.outputs = reserve_per_frame * (count or 0)
    for n, result in enumerate(session.run(), start=1):
        kept = n * reserve_per_frame
        plan = session.plan
        if max_memory and count is None and plan.total + kept > max_memory:
            raise budget.MemoryBudgetError(
                f"keeping the results of {n} frames ({budget.format_bytes(kept)}) with "
                f"the {budget.format_bytes(plan.total)} propagation needs exceeds "
                f"max_memory = {budget.format_bytes(max_memory)}; stream them instead "
                "(sfcprop.propagate_iter, or `sfcprop propagate --out`)"
            )
        yield result


def propagate(
    frames: FrameSource,
    annotations,
    backbone: Propagator | Correspondence | str = "fc",
    semantic: Correspondence | str | None = None,
    *,
    rule: str = DEFAULT_RULE,
    forward_only: bool = False,
    return_soft: bool = False,
    progress: bool | None = None,
    **settings: Any,
) -> Propagation:
    """Propagate object masks through `frames`.

    frames: `[T, 3, H, W]` tensor, `[T, H, W, 3]` numpy array (uint8; 16-bit and float
    in [0, 1] are scaled to 8 bits), list of PIL images or image paths, a folder of images
    or a video file. annotations: the first frame's mask (`[H, W]` integer ids, 0 =
    background, `[H, W, 3]` colours, or a palette / greyscale / colour PNG path), or a
    mapping `{frame index: mask}` of keyframes: frames between two keyframes combine a
    forward and a backward pass (`rule`, see `combine`; `forward_only` for one
    direction); one object table numbers every keyframe (`sfcprop.io.ObjectTable`: a
    colour is one object in every keyframe); an object may first appear at any keyframe
    and a keyframe may show none; annotated frames come back as given. Settings (`Config`
    fields, e.g. `preset="davis"`, `topk`, `radius`,
    `short_side`, `precision`, `max_memory`, `device`; see `Propagator`). progress: a bar
    (None: where a person is watching, a terminal or a notebook). Returns a
    `Propagation`: the ids of every frame, per-object confidence and the frames to check
    (`flags`, `lost()`); with `return_soft`, the soft labels on the encoded frames' grid.
    """
    session = Session.streaming(
        frames, annotations, backbone, semantic, rule=rule, forward_only=forward_only, **settings
    )
    per_frame = session.size[0] * session.size[1]  # uint8 ids
    if return_soft:  # float32 [L, h, w] on the stride-8 grid of the encoded size
        h, w = session.config.encoded_size(*session.size)
        per_frame += len(session.label_ids) * -(-h // 8) * -(-w // 8) * 4
    stream = _stream(session, per_frame)
    out: dict[int, FrameResult] = {}
    for r in frames_bar(stream, progress, frames, session.size, session.config.precision):
        out[r.t] = r
    order = [out[t] for t in sorted(out)]
    ids = session.label_ids
    soft = [r.soft.cpu() for r in order] if return_soft else None
    n_obj = len(ids) - 1
    confidence = np.stack([r.confidence for r in order]).reshape(len(order), n_obj)
    flags = [f for r in order for f in r.flags]
    return Propagation(
        torch.stack([r.ids for r in order]),
        ids,
        torch.stack(soft) if return_soft else None,
        torch.from_numpy(confidence.astype(np.float32)),
        flags,
        sorted(session.keyframes),
    )


def propagate_soft(
    frames: FrameSource,
    annotations,
    backbone: Propagator | Correspondence | str = "fc",
    semantic: Correspondence | str | None = None,
    *,
    full_size: bool = False,
    progress: bool | None = None,
    **options: Any,
) -> torch.Tensor:
    """Propagate soft labels (keypoint maps, part maps, any number of float maps) given
    on a keyframe's feature grid `[L, h, w]` or at its full size `[L, H, W]` (resized to
    the grid, bilinear): the first frame's maps or `{frame index: maps}`. Returns the maps
    as they are (no argmax, no normalisation) on the feature grid, `[T, L, h, w]` (h, w:
    the encoded frame's size / 8, rounded up); with `full_size`, `[T, L, H, W]` at the
    frames' own size (each frame's grid maps resized, bilinear: `labels.resize_soft`;
    float32, so T * L * H * W * 4 bytes). Other arguments (`rule`, `forward_only`,
    settings) as `propagate`."""
    session = Session.streaming(
        frames, annotations, backbone, semantic, codec=SoftCodec(), **options
    )
    out = {}
    for r in frames_bar(session.run(), progress, frames, session.size, session.config.precision):
        out[r.t] = resize_soft(r.soft, session.size).cpu() if full_size else r.soft.cpu()
    return torch.stack([out[t] for t in sorted(out)])
