"""Labels through a video from keyframes: passes in both directions, corrections, confidence.

A `Session` holds the annotated frames (keyframes) and the results. Each stretch of frames
between two keyframes gets a forward pass from the earlier keyframe and a backward pass
from the later one (each pass the reference protocol of `sfcprop.propagator`, with its
keyframe as the global key), combined by a `rule`; frames before the first keyframe get
the backward pass, frames after the last the forward one. With one keyframe at frame 0
this is the published protocol, unchanged. Adding or replacing a keyframe recomputes only
the stretches next to it, from the features it keeps (`feature_cache`).

`propagate`, `propagate_iter` and `propagate_soft` are a session plus one loop.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

from . import budget, labels
from . import confidence as conf
from .backbones.base import Correspondence
from .codecs import KeypointCodec, MaskCodec, SoftCodec
from .config import Config
from .framestore import FrameStore
from .io import Frames, FrameSource, load_first_mask, open_frames
from .progress import bar as progress_bar
from .propagator import Memory, Propagator, run_config, step_soft

__all__ = [
    "DEFAULT_RULE",
    "RULES",
    "FrameResult",
    "Memory",
    "Propagation",
    "Propagator",
    "Session",
    "propagate",
    "propagate_iter",
    "propagate_soft",
    "step_soft",
]

RULES = ("distance", "certainty", "nearest")
DEFAULT_RULE = "distance"  # chosen by benchmarks/bench_keyframes.py (README, "Keyframes")
DEFAULT_FEATURE_CACHE = 1 << 30


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


@dataclass
class Propagation:
    """Result of `propagate`: ids `[T, H, W]` uint8 (annotated frames as given);
    `label_ids` (channel l of `soft` is id `label_ids[l]`; object i of `confidence` is
    `label_ids[i + 1]`); soft `[T, L, h, w]` or None; confidence `[T, objects]` float32
    in [0, 1] (see `sfcprop.confidence`); flags: frames to check (lost objects, likely
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


@dataclass
class _Done:
    soft: torch.Tensor  # [L, h, w] on the grid, channels as `ids`
    ids: tuple[int, ...]
    stats: conf.FrameStats
    ref: np.ndarray  # [L] reference areas


class Session:
    """Keyframes in, labels on every frame out; corrections recompute only what changes.

    ```
    s = Session(frames, "fc")
    s.annotate(0, mask0); s.annotate(40, mask40)
    result = s.result()          # a Propagation
    s.annotate(20, fixed)        # a correction: recomputes frames 1-39 only
    result = s.result()
    ```
    frames: anything `sfcprop.io.iter_frames` reads (a video or an iterator is decoded once
    into a bounded cache, see `FrameStore`). codec: what the annotations are
    (`sfcprop.codecs`): masks by default (`[H, W]` ids; the objects are the union of the
    keyframes' ids, and an object may first appear at any keyframe), `SoftCodec()` for
    soft / part maps, `KeypointCodec()` for points. rule: how a frame between two
    keyframes combines the two passes (`RULES`); forward_only: each keyframe only forward
    (frames before the first keyframe stay background). feature_cache: bytes of feature
    maps kept for reuse by the second pass and by corrections (default 1 GiB, less when
    `max_memory` leaves less). keep_passes: keep both passes' soft labels of the frames
    between two keyframes in `passes` (to compare rules without recomputing). Other
    keywords are `Propagator`'s (backbones, `preset` and `Config` fields).
    """

    def __init__(
        self,
        frames: FrameSource | FrameStore,
        backbone: Correspondence | str = "fc",
        semantic: Correspondence | str | None = None,
        *,
        rule: str = DEFAULT_RULE,
        forward_only: bool = False,
        feature_cache: int | str | None = None,
        keep_results: bool = True,
        keep_frames: bool = True,
        keep_passes: bool = False,
        codec: MaskCodec | SoftCodec | KeypointCodec | None = None,
        preset: str | Config | None = None,
        **settings: Any,
    ) -> None:
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
        # settings checked now; the backbones load when first needed (after the labels'
        # checks, so that bad annotations fail before any weights are read)
        self.config = run_config(semantic is not None, preset, **settings)
        self._nets = (backbone, semantic)
        self._prop: Propagator | None = None
        self.store = frames if isinstance(frames, FrameStore) else FrameStore(frames, keep_frames)
        self.rule, self.forward_only, self.keep_results = rule, forward_only, keep_results
        # t -> (forward, backward, d_forward, d_backward) of frames between two keyframes
        self.passes: dict[int, tuple[torch.Tensor, torch.Tensor, int, int]] | None = (
            {} if keep_passes else None
        )
        self._cache_limit = (
            budget.parse_bytes(feature_cache) if feature_cache not in (None, 0) else feature_cache
        )
        self.codec = codec if codec is not None else MaskCodec()
        self.keyframes: dict[int, Any] = {}  # t -> labels as the codec checked them
        self.size: tuple[int, int] | None = None
        self.results: dict[int, _Done] = {}
        self.similarities: dict[int, float] = {}
        self._features: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._stale: set[tuple[int | None, int | None]] = set()
        self._stale_keys: set[int] = set()
        self._fresh = True
        self.steps = 0  # propagation steps run (each one frame of one pass)
        self.outputs = 0  # bytes the caller keeps, counted against max_memory

    @property
    def prop(self) -> Propagator:
        """The propagator (its backbones loaded on first use)."""
        if self._prop is None:
            self._prop = Propagator(*self._nets, preset=self.config)
        return self._prop

    @classmethod
    def streaming(
        cls,
        frames: FrameSource,
        annotations,
        backbone: Correspondence | str = "fc",
        semantic: Correspondence | str | None = None,
        **kwargs: Any,
    ) -> Session:
        """A session for one pass over its results (it keeps none), annotated with
        `annotations`: a first frame's labels or `{frame index: labels}`. With frame 0
        alone no frame is read twice, so a video or an iterator is not cached."""
        keys = _keyframes(annotations)
        kwargs.setdefault("keep_frames", list(keys) != [0])
        session = cls(frames, backbone, semantic, keep_results=False, **kwargs)
        for t, label in sorted(keys.items()):
            session.annotate(t, label)
        return session

    # ------------------------------------------------------------------ annotations

    def annotate(self, t: int, label) -> None:
        """Set (or replace) the labels of frame `t`, as the codec reads them (masks: `[H, W]`
        ids, 0 = background, a PNG path, array or tensor): they come back as given, and the
        frames up to the neighbouring keyframes are recomputed by the next `run` / `result`."""
        if not isinstance(t, int | np.integer) or isinstance(t, bool) or t < 0:
            raise ValueError(f"a keyframe index must be an integer >= 0, got {t!r}")
        t = int(t)
        if not self.store.has(t):
            if not self.store.has(0):
                raise ValueError("the video holds no frames")
            raise ValueError(
                f"frame {t} is past the end of the video ({self.store.known_length} frames)"
            )
        hw = tuple(self.store[t].shape[1:])
        if self.size is not None and hw != self.size:
            raise ValueError(f"frame {t} is {hw} (H, W) but frame 0 is {self.size}")
        value = self.codec.check(t, label, hw, first=not self.keyframes)
        self.size = hw
        prev, nxt = self._neighbours(t)
        self._stale |= {(prev, t), (t, nxt)}
        self._stale_keys.add(t)
        self.keyframes[t] = value

    @property
    def label_ids(self) -> list[int]:
        """Channel l of the soft labels is id `label_ids[l]` (masks; else `l`)."""
        ids = getattr(self.codec, "ids", None)
        return list(ids) if ids is not None else list(range(self.codec.channels))

    def remove(self, t: int) -> None:
        """Remove the annotation of frame `t` (its stretch is recomputed)."""
        if t not in self.keyframes:
            raise KeyError(f"frame {t} is not annotated; annotated: {sorted(self.keyframes)}")
        if len(self.keyframes) == 1:
            raise ValueError("cannot remove the only keyframe")
        prev, nxt = self._neighbours(t)
        del self.keyframes[t]
        self._stale.add((prev, nxt))
        self.results.pop(t, None)

    def _neighbours(self, t: int) -> tuple[int | None, int | None]:
        before = [k for k in self.keyframes if k < t]
        after = [k for k in self.keyframes if k > t]
        return (max(before) if before else None), (min(after) if after else None)

    # ------------------------------------------------------------------ running

    def segments(self) -> list[tuple[int | None, int | None]]:
        """The stretches between keyframes: `(None, k0)`, `(k0, k1)`, ..., `(kn, None)`."""
        keys = sorted(self.keyframes)
        return list(zip([None, *keys], [*keys, None], strict=True))

    def run(self) -> Iterator[FrameResult]:
        """Recompute what the annotations changed; yield those frames' results in order
        (keyframes included), each as soon as it is final."""
        if not self.keyframes:
            raise ValueError("annotate at least one frame before running")
        self._plan()
        history: list[float] = []
        for a, b in self.segments():
            if a is not None and (self._fresh or a in self._stale_keys):
                yield self._keyframe_result(a)
            if self._fresh or (a, b) in self._stale:
                for t, done in self._segment(a, b):
                    yield self._emit(t, done, history)
        self._fresh = False
        self._stale.clear()
        self._stale_keys.clear()

    def result(self, return_soft: bool = False) -> Propagation:
        """Run what is stale, then every frame's result (needs `keep_results`)."""
        for _ in self.run():
            pass
        if not self.keep_results:
            raise RuntimeError("this session keeps no results (keep_results=False)")
        if self.codec.kind != "mask":
            raise ValueError(f"result() gathers masks; iterate run() for {self.codec.kind}")
        n = len(self.store)
        ids, soft, confidence = [], [], []
        for t in range(n):
            done = self.results[t]
            s = _remap(done.soft, done.ids, self.label_ids)
            ids.append(self._decoded(t, s))
            if return_soft:
                soft.append(s.cpu())
            confidence.append(_remap_objects(done.stats.confidence, done.ids, self.label_ids))
        flags = [
            f
            for t, done in sorted(self.results.items())
            for f in conf.lost_flags(t, done.stats, done.ref, done.ids[1:])
        ]
        flags += conf.cut_flags([self.similarities.get(t) for t in range(n)])
        flags.sort(key=lambda f: (f.frame, f.kind, -1 if f.object is None else f.object))
        return Propagation(
            torch.stack(ids) if ids else torch.empty(0),
            list(self.label_ids),
            torch.stack(soft) if return_soft else None,
            torch.from_numpy(np.stack(confidence).astype(np.float32)),
            flags,
            sorted(self.keyframes),
        )

    def _plan(self) -> None:
        """Check `max_memory` before any work; size the feature cache."""
        h, w = self.size
        cached = 0 if self._streaming() else 1
        self.prop.plan = self.prop.plan_memory(h, w, len(self.label_ids), self.outputs, cached)
        limit = self._cache_limit if self._cache_limit is not None else DEFAULT_FEATURE_CACHE
        if self.config.max_memory is not None:
            limit = min(limit, max(0, self.config.max_memory - self.prop.plan.total))
        self._cache_bytes = limit

    def _streaming(self) -> bool:
        """One forward pass from frame 0: no frame or feature is needed twice."""
        return list(self.keyframes) == [0] and self._fresh

    def _keyframe_result(self, t: int) -> FrameResult:
        soft = self._key_soft(t)
        area = conf.areas(soft)
        ones = np.ones(len(self.label_ids) - 1)
        stats = conf.FrameStats(ones, ones, ones, ones)  # as given
        done = _Done(soft, tuple(self.label_ids), stats, area)
        if self.keep_results:
            self.results[t] = done
        given = self.codec.given(self.keyframes[t])
        return FrameResult(t, given, soft, stats.confidence, [])

    def _emit(self, t: int, done: _Done, history: list[float]) -> FrameResult:
        if self.keep_results:
            self.results[t] = done
        flags = []
        if self.codec.kind == "mask":
            flags = conf.lost_flags(t, done.stats, done.ref, done.ids[1:])
        sim = self.similarities.get(t)
        if sim is not None:
            if conf.is_cut(sim, history):
                flags.append(conf.Flag(t, "cut", None, sim))
            history.append(sim)
        decoded = self._decoded(t, done.soft)
        score = decoded[1] if self.codec.kind == "points" else done.stats.confidence
        return FrameResult(t, decoded, done.soft, score, flags)

    def _decoded(self, t: int, soft: torch.Tensor):
        if t in self.keyframes:
            return self.codec.given(self.keyframes[t])
        return self.codec.decode(soft, self.size)

    def _segment(self, a: int | None, b: int | None) -> Iterator[tuple[int, _Done]]:
        ids = tuple(self.label_ids)
        if a is None:  # before the first keyframe: backward only
            frames = range(b - 1, -1, -1)
            if self.forward_only:
                for t in range(b):
                    yield t, self._background(ids)
                return
            key = self._key_soft(b)
            done = {t: self._single(s, key, ids) for t, s in self._pass(b, frames, False)}
            yield from sorted(done.items())
            return
        key_a = self._key_soft(a)
        if b is None:  # after the last keyframe: forward only, streamed
            for t, s in self._pass(a, _count_from(a + 1, self.store), True):
                yield t, self._single(s, key_a, ids)
            return
        forward = dict(self._pass(a, range(a + 1, b), True))
        if self.forward_only:
            for t in range(a + 1, b):
                yield t, self._single(forward[t], key_a, ids)
            return
        key_b = self._key_soft(b)
        area_a, area_b = conf.areas(key_a), conf.areas(key_b)
        backward = dict(self._pass(b, range(b - 1, a, -1), False))
        for t in range(a + 1, b):
            fw, bw = forward[t], backward[t]
            if self.passes is not None:
                self.passes[t] = (fw, bw, t - a, b - t)
            soft = combine(fw, bw, t - a, b - t, self.rule)
            w = (b - t) / (b - a)
            ref = w * area_a + (1 - w) * area_b
            stats = conf.frame_stats(soft, ref, torch.stack([fw, bw]))
            yield t, _Done(soft, ids, stats, ref)

    def _single(self, soft: torch.Tensor, key: torch.Tensor, ids) -> _Done:
        ref = conf.areas(key)
        return _Done(soft, ids, conf.frame_stats(soft, ref), ref)

    def _background(self, ids) -> _Done:
        h, w = self.prop.grid(*self.size)
        soft = torch.zeros(len(ids), h, w)
        soft[0] = 1
        return self._single(soft, soft, ids)

    def _pass(self, k: int, frames: Iterable[int], forward: bool) -> Iterator[tuple[int, Any]]:
        """`(t, soft)` of a pass from keyframe `k` over `frames` (in pass order)."""
        self.prop.start_encoded(self._feature(k), self._key_soft(k), self.size)
        for t in frames:
            frame_hw = tuple(self.store[t].shape[1:])
            if frame_hw != self.size:
                raise ValueError(f"frame {t} is {frame_hw} (H, W) but the keyframes {self.size}")
            soft = self.prop.step_encoded(self._feature(t))
            self.steps += 1
            sim = self.prop.last_similarity
            if forward:  # the similarity of frame t to t - 1 ...
                self.similarities[t] = sim
            else:  # ... and, backwards, of t + 1 to t (where no forward pass gave it)
                self.similarities.setdefault(t + 1, sim)
            yield t, soft

    def _feature(self, t: int) -> torch.Tensor:
        if t in self._features:
            self._features.move_to_end(t)
            return self._features[t]
        feats = self.prop.encode(self.store[t])
        size = feats.numel() * feats.element_size()
        if not self._streaming() and size <= self._cache_bytes:
            while self._features and (len(self._features) + 1) * size > self._cache_bytes:
                self._features.popitem(last=False)
            self._features[t] = feats
        return feats

    def _key_soft(self, t: int) -> torch.Tensor:
        grid = self.prop.grid(*self.size)
        encoded = self.prop.input_size(*self.size)
        soft = self.codec.encode(self.keyframes[t], self.size, encoded, grid)
        return soft.to(self.prop.device, torch.float32)


def _count_from(start: int, store: FrameStore) -> Iterator[int]:
    t = start
    while store.has(t):
        yield t
        t += 1


def _remap(soft: torch.Tensor, old: tuple[int, ...], new: list[int]) -> torch.Tensor:
    """Soft labels over ids `old` -> over ids `new` (a superset; new channels are 0)."""
    if list(old) == list(new):
        return soft
    out = soft.new_zeros((len(new), *soft.shape[1:]))
    for i, v in enumerate(old):
        out[new.index(v)] = soft[i]
    return out


def _remap_objects(values: np.ndarray, old: tuple[int, ...], new: list[int]) -> np.ndarray:
    """Per-object values over `old[1:]` -> over `new[1:]` (objects new since: 1, absent)."""
    out = np.ones(len(new) - 1)
    for i, v in enumerate(old[1:]):
        out[new.index(v) - 1] = values[i]
    return out


# --------------------------------------------------------------------------- the functions


def _keyframes(annotations) -> dict[int, Any]:
    """A first-frame mask, or a mapping frame index -> mask, as a mapping."""
    if isinstance(annotations, Mapping):
        if not annotations:
            raise ValueError("no annotations: give a first-frame mask or {frame: mask}")
        return dict(annotations)
    return {0: annotations}


def propagate_iter(
    frames: FrameSource,
    annotations,
    backbone: Correspondence | str = "fc",
    semantic: Correspondence | str | None = None,
    *,
    rule: str = DEFAULT_RULE,
    forward_only: bool = False,
    reserve_per_frame: int = 0,
    **settings: Any,
) -> Iterator[FrameResult]:
    """`propagate` one frame at a time: yields a `FrameResult` (`t, ids [H, W] uint8 (CPU),
    soft [L, h, w], confidence [objects], flags`) as each frame is final, in order, so a
    caller can write it and drop it (nothing accumulates).

    Channel l of `soft` is id l of the union of the annotations' ids (0 first, then the
    ids in increasing order). `reserve_per_frame`: bytes the caller keeps of each frame,
    counted against `max_memory` (before any work when the number of frames is known,
    else as frames are done). Other arguments as `propagate`.
    """
    session = Session.streaming(
        frames, annotations, backbone, semantic, rule=rule, forward_only=forward_only, **settings
    )
    max_memory = session.config.max_memory
    count = _count(session.store.frames) if max_memory and reserve_per_frame else None
    session.outputs = reserve_per_frame * (count or 0)
    for n, result in enumerate(session.run(), start=1):
        kept = n * reserve_per_frame
        plan = session.prop.plan
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
    backbone: Correspondence | str = "fc",
    semantic: Correspondence | str | None = None,
    *,
    rule: str = DEFAULT_RULE,
    forward_only: bool = False,
    return_soft: bool = False,
    progress: bool | None = None,
    **settings: Any,
) -> Propagation:
    """Propagate object masks through `frames`.

    frames: uint8 `[T, 3, H, W]` tensor, `[T, H, W, 3]` numpy array, list of PIL images
    or image paths, a folder of images or a video file. annotations: the first frame's
    mask (`[H, W]` integer ids, 0 = background, or a palette/greyscale PNG path), or a
    mapping `{frame index: mask}` of keyframes: frames between two keyframes combine a
    forward and a backward pass (`rule`, see `combine`; `forward_only` for one
    direction); an object may first appear at any keyframe; annotated frames come back
    as given. Settings (`Config` fields, e.g. `preset="davis"`, `topk`, `radius`,
    `short_side`, `precision`, `max_memory`, `device`; see `Propagator`). progress: a bar
    (None: where a person is watching, a terminal or a notebook). Returns a
    `Propagation`: the ids of every frame, per-object confidence and the frames to check
    (`flags`, `lost()`); with `return_soft`, the soft labels on the encoded frames' grid.
    """
    keys = {t: load_first_mask(m) for t, m in _keyframes(annotations).items()}  # read once
    first = keys[min(keys)]
    per_frame = first.numel()  # uint8 ids
    cfg = Config.preset(settings.get("preset") or "davis", **_fields(settings))
    if return_soft:  # float32 [L, h, w] on the stride-8 grid of the encoded size
        h, w = cfg.encoded_size(*first.shape)
        per_frame += len(labels.label_ids(first)) * -(-h // 8) * -(-w // 8) * 4
    stream = propagate_iter(
        frames,
        keys,
        backbone,
        semantic,
        rule=rule,
        forward_only=forward_only,
        reserve_per_frame=per_frame,
        **settings,
    )
    out: dict[int, FrameResult] = {}
    for r in _progress(stream, progress, frames):
        out[r.t] = r
    order = [out[t] for t in sorted(out)]
    ids = sorted({i for m in keys.values() for i in labels.label_ids(m, allow_empty=True)})
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
        sorted(keys),
    )


def _fields(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k != "preset"}


def propagate_soft(
    frames: FrameSource,
    annotations,
    backbone: Correspondence | str = "fc",
    semantic: Correspondence | str | None = None,
    *,
    rule: str = DEFAULT_RULE,
    forward_only: bool = False,
    progress: bool | None = None,
    **settings: Any,
) -> torch.Tensor:
    """Propagate soft labels (keypoint maps, part maps, any number of float maps) given
    on a keyframe's feature grid `[L, h, w]` or at its full size `[L, H, W]` (resized to
    the grid, bilinear): the first frame's maps or `{frame index: maps}`. Returns
    `[T, L, h, w]` as they are (no argmax, no normalisation)."""
    session = Session.streaming(
        frames,
        annotations,
        backbone,
        semantic,
        rule=rule,
        forward_only=forward_only,
        codec=SoftCodec(),
        **settings,
    )
    out = {r.t: r.soft.cpu() for r in _progress(session.run(), progress, frames)}
    return torch.stack([out[t] for t in sorted(out)])


def _progress(it: Iterable, enabled: bool | None, frames: FrameSource = None) -> Iterable:
    return progress_bar(it, enabled, total=_count(frames) if enabled is not False else None)


def _count(frames: FrameSource) -> int | None:
    """The number of frames when known without decoding (for the progress bar)."""
    if isinstance(frames, str | os.PathLike | Frames):
        try:
            return open_frames(frames).count
        except (OSError, ValueError, ImportError):
            return None  # reported when the frames are read
    return len(frames) if hasattr(frames, "__len__") else None
