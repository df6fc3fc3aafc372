"""`Session`: one video over a built model; keyframes in, labels on every frame out.

Each stretch of frames between two keyframes gets a forward pass from the earlier keyframe
and a backward pass from the later one (each pass the reference protocol of
`sfcprop.core.propagator`, with its keyframe as the global key), combined by a `rule`;
frames before the first keyframe get the backward pass, frames after the last the forward
one. With one keyframe at frame 0 this is the published protocol, unchanged. Adding or
replacing a keyframe recomputes only the stretches next to it, from the features kept in a
`FeatureCache`; the codec keeps the object table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

from sfcprop.config import Config, parse_bytes
from sfcprop.core.propagator import Propagator, load_model
from sfcprop.io.frames import FrameSource
from sfcprop.io.framestore import FrameStore
from sfcprop.labels.codecs import Codec, MaskCodec
from sfcprop.models.base import Correspondence
from sfcprop.session import confidence as conf
from sfcprop.session.cache import FeatureCache
from sfcprop.session.combine import DEFAULT_RULE, RULES, combine
from sfcprop.session.estimate import DEFAULT_METHOD, METHODS
from sfcprop.session.guard import RunGuard
from sfcprop.session.keyframes import Keyframes
from sfcprop.session.results import FrameResult, Propagation, _Done, remap, remap_objects

DEFAULT_FEATURE_CACHE = 1 << 30


class Session:
    """Keyframes in, labels on every frame out; corrections recompute only what changes.

    ```
    model = sfcprop.load_model("fc")          # once
    s = Session(model, frames)                # per video (or Session(frames, "fc"))
    s.annotate(0, mask0); s.annotate(40, mask40)
    result = s.result()          # a Propagation
    s.annotate(20, fixed)        # a correction: recomputes frames 1-39 only
    result = s.result()
    ```
    model: a built `Propagator` (`sfcprop.load_model`); the form `Session(frames, backbone,
    semantic, **settings)` builds one with the same factory, on first use (after the
    labels' checks, so that bad annotations fail before any weights are read).
    frames: anything `sfcprop.io.iter_frames` reads (a video or an iterator is decoded once
    into a bounded cache, see `FrameStore`). codec: what the annotations are
    (`sfcprop.labels.codecs`): masks by default (`[H, W]` ids or colours, one object table
    for every keyframe; the objects are the union of the keyframes' ids, an object may
    first appear at any keyframe, and a keyframe may show none, as long as one keyframe
    shows an object), `SoftCodec()` for
    soft / part maps, `KeypointCodec()` for points. rule: how a frame between two
    keyframes combines the two passes (`RULES`); forward_only: each keyframe only forward
    (frames before the first keyframe stay background). feature_cache: bytes of feature
    maps kept for reuse by the second pass and by corrections (default 1 GiB, less when
    `max_memory` leaves less). keep_passes: keep both passes' soft labels of the frames
    between two keyframes in `passes` (to compare rules without recomputing). `preset` and
    other keywords (`Config` fields) build the model in the second form.

    Changing the keyframes inside a `run()` loop is refused (finish or break the loop,
    then run again); calls from other threads wait for a run to end.
    """

    def __init__(
        self,
        model: Propagator | FrameSource | FrameStore,
        frames: FrameSource | FrameStore | Correspondence | str | None = None,
        semantic: Correspondence | str | None = None,
        *,
        rule: str = DEFAULT_RULE,
        forward_only: bool = False,
        feature_cache: int | str | None = None,
        keep_results: bool = True,
        keep_frames: bool = True,
        keep_passes: bool = False,
        codec: Codec | None = None,
        confidence: str = DEFAULT_METHOD,
        preset: str | Config | None = None,
        **settings: Any,
    ) -> None:
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
        if confidence not in METHODS:
            raise ValueError(f"confidence must be one of {METHODS}, got {confidence!r}")
        self.method = confidence
        if isinstance(model, Propagator):
            if frames is None:
                raise TypeError("Session(model, frames): the frames of the video are missing")
            self._model: Propagator | None = load_model(model, semantic, preset=preset, **settings)
            self.config = self._model.config
        else:  # Session(frames, backbone, semantic, **settings): the model on first use
            model, frames = frames if frames is not None else "fc", model
            self.config = Config.for_run(semantic is not None, preset, **settings)
            self._model, self._nets = None, (model, semantic)
        self.store = frames if isinstance(frames, FrameStore) else FrameStore(frames, keep_frames)
        self.rule, self.forward_only, self.keep_results = rule, forward_only, keep_results
        # t -> (forward, backward, d_forward, d_backward) of frames between two keyframes
        self.passes: dict[int, tuple[torch.Tensor, torch.Tensor, int, int]] | None = (
            {} if keep_passes else None
        )
        self._cache_limit = (
            parse_bytes(feature_cache) if feature_cache not in (None, 0) else feature_cache
        )
        self.plan = None  # the memory plan of this video (run sets it)
        self.codec = codec if codec is not None else MaskCodec()
        # t -> labels as the codec checked them
        self.keyframes = Keyframes(self.config.keyframe_memory > 0)
        self.size: tuple[int, int] | None = None
        self.results: dict[int, _Done] = {}
        self.similarities: dict[int, float] = {}
        self.features = FeatureCache(0)
        self.steps = 0  # propagation steps run (each one frame of one pass)
        self.outputs = 0  # bytes the caller keeps, counted against max_memory
        self._guard = RunGuard()  # a run or a change in progress

    @property
    def model(self) -> Propagator:
        """The model (built on first use when the session was given backbone names)."""
        if self._model is None:
            self._model = load_model(*self._nets, preset=self.config)
        return self._model

    @classmethod
    def streaming(
        cls,
        frames: FrameSource,
        annotations,
        backbone: Propagator | Correspondence | str = "fc",
        semantic: Correspondence | str | None = None,
        **kwargs: Any,
    ) -> Session:
        """A session for one pass over its results (it keeps none), annotated with
        `annotations`: a first frame's labels or `{frame index: labels}`. With frame 0
        alone no frame is read twice, so a video or an iterator is not cached."""
        keys = _keyframes(annotations)
        kwargs.setdefault("keep_frames", list(keys) != [0])
        if isinstance(backbone, Propagator):
            session = cls(backbone, frames, semantic, keep_results=False, **kwargs)
        else:
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
        with self._guard.hold(f"annotate frame {t}"):
            value = self.codec.check(t, label, hw)
            self.size = hw
            self.keyframes.set(t, value)

    @property
    def label_ids(self) -> list[int]:
        """Channel l of the soft labels is id `label_ids[l]` (masks; else `l`)."""
        return self.codec.label_ids

    def remove(self, t: int) -> None:
        """Remove the annotation of frame `t` (its stretch is recomputed)."""
        if t not in self.keyframes:
            raise KeyError(f"frame {t} is not annotated; annotated: {sorted(self.keyframes)}")
        if len(self.keyframes) == 1:
            raise ValueError("cannot remove the only keyframe")
        with self._guard.hold(f"remove frame {t}"):
            self.keyframes.remove(t)
            self.codec.forget(t)
            self.results.pop(t, None)

    # ------------------------------------------------------------------ running

    def segments(self) -> list[tuple[int | None, int | None]]:
        """The stretches between keyframes: `(None, k0)`, `(k0, k1)`, ..., `(kn, None)`."""
        return self.keyframes.stretches()

    def run(self) -> Iterator[FrameResult]:
        """Recompute what the annotations changed; yield those frames' results in order
        (keyframes included), each as soon as it is final. The session cannot change while
        the loop runs (annotate after it); other threads' calls wait for it."""
        with self._guard.hold("run"):
            yield from self._run()

    def _run(self) -> Iterator[FrameResult]:
        if not self.keyframes:
            raise ValueError("annotate at least one frame before running")
        if self.codec.objects and len(self.label_ids) == 1:
            raise ValueError(
                "the first mask holds no object: every pixel is background (id 0)"
                if len(self.keyframes) == 1
                else "no keyframe holds an object: every pixel of every mask is background (id 0)"
            )
        self._plan()
        history: list[float] = []
        for a, b in self.segments():
            if a is not None and self.keyframes.is_new(a):
                yield self._keyframe_result(a)
            if self.keyframes.is_stale((a, b)):
                for t, done in self._segment(a, b):
                    yield self._emit(t, done, history)
        self.keyframes.done()

    def result(self, return_soft: bool = False) -> Propagation:
        """Run what is stale, then every frame's result (needs `keep_results`)."""
        with self._guard.hold("call result()"):
            for _ in self._run():
                pass
            return self._gather(return_soft)

    def _gather(self, return_soft: bool) -> Propagation:
        if not self.keep_results:
            raise RuntimeError("this session keeps no results (keep_results=False)")
        if not self.codec.objects:
            raise ValueError(f"result() gathers masks; iterate run() for {self.codec.kind}")
        n = len(self.store)
        ids, soft, confidence = [], [], []
        for t in range(n):
            done = self.results[t]
            s = remap(done.soft, done.ids, self.label_ids)
            ids.append(self._decoded(t, s))
            if return_soft:
                soft.append(s.cpu())
            confidence.append(remap_objects(done.stats.confidence, done.ids, self.label_ids))
        flags = [f for t, done in sorted(self.results.items()) for f in self._flags(t, done)]
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

    def suggest_keyframes(self, n: int = 3) -> list[int]:
        """The `n` frames (best first) whose annotation is expected to improve the video
        most, after running what is stale (so after each correction, fresh suggestions)."""
        return self.result().suggest_keyframes(n)

    def _plan(self) -> None:
        """Check `max_memory` before any work; size the feature cache."""
        h, w = self.size
        cached = 0 if self._streaming() else 1
        self.plan = self.model.plan_memory(h, w, len(self.label_ids), self.outputs, cached)
        limit = self._cache_limit if self._cache_limit is not None else DEFAULT_FEATURE_CACHE
        if self.config.max_memory is not None:
            limit = min(limit, max(0, self.config.max_memory - self.plan.total))
        self.features.limit = 0 if self._streaming() else limit

    def _streaming(self) -> bool:
        """One forward pass from frame 0: no frame or feature is needed twice."""
        return list(self.keyframes) == [0] and self.keyframes.fresh

    def _keyframe_result(self, t: int) -> FrameResult:
        soft = self._key_soft(t)
        area = conf.areas(soft)
        stats = conf.FrameStats.constant(len(self.label_ids) - 1, 1.0)  # as given
        done = _Done(soft, tuple(self.label_ids), stats, area)
        if self.keep_results:
            self.results[t] = done
        given = self.codec.given(self.keyframes[t])
        return FrameResult(t, given, soft, self.codec.score(given, stats.confidence), [])

    def _emit(self, t: int, done: _Done, history: list[float]) -> FrameResult:
        if self.keep_results:
            self.results[t] = done
        flags = self._flags(t, done) if self.codec.objects else []
        sim = self.similarities.get(t)
        if sim is not None:
            if conf.is_cut(sim, history):
                flags.append(conf.Flag(t, "cut", None, sim))
            history.append(sim)
        decoded = self._decoded(t, done.soft)
        score = self.codec.score(decoded, done.stats.confidence)
        return FrameResult(t, decoded, done.soft, score, flags)

    def _flags(self, t: int, done: _Done) -> list[conf.Flag]:
        """A propagated frame's "lost" flags (objects of the session only), or the flag of
        a frame left without a result (before the first keyframe, `forward_only`)."""
        if self.forward_only and t < min(self.keyframes):
            return [conf.Flag(t, "unpropagated", None, 0.0)]
        lost = conf.lost_flags(t, done.stats, done.ref, done.ids[1:], self.method)
        return [f for f in lost if f.object in self.label_ids]

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
            key, trend = self._key_soft(b), conf.SimilarityTrend()
            passed = self._pass(b, frames, False)
            done = {t: self._single(s, key, ids, b - t, sim, trend) for t, s, sim in passed}
            yield from sorted(done.items())
            return
        key_a, trend = self._key_soft(a), conf.SimilarityTrend()
        if b is None:  # after the last keyframe: forward only, streamed
            for t, s, sim in self._pass(a, _count_from(a + 1, self.store), True):
                yield t, self._single(s, key_a, ids, t - a, sim, trend)
            return
        forward = {t: (s, sim) for t, s, sim in self._pass(a, range(a + 1, b), True)}
        if self.forward_only:
            for t, (soft, sim) in forward.items():
                yield t, self._single(soft, key_a, ids, t - a, sim, trend)
            return
        key_b = self._key_soft(b)
        area_a, area_b = conf.areas(key_a), conf.areas(key_b)
        backward = {t: (s, sim) for t, s, sim in self._pass(b, range(b - 1, a, -1), False)}
        for t in range(a + 1, b):
            (fw, sim_f), (bw, sim_b) = forward[t], backward[t]
            if self.passes is not None:
                self.passes[t] = (fw, bw, t - a, b - t)
            soft = combine(fw, bw, t - a, b - t, self.rule, (area_a, area_b))
            w = (b - t) / (b - a)
            ref = w * area_a + (1 - w) * area_b
            sim = w * sim_f + (1 - w) * sim_b
            stats = conf.frame_stats(
                soft,
                ref,
                torch.stack([fw, bw]),
                similarity=sim,
                distance=min(t - a, b - t),
                drop=trend.drop(sim),
                method=self.method,
            )
            yield t, _Done(soft, ids, stats, ref)

    def _single(self, soft, key, ids, distance: int, sim, trend: conf.SimilarityTrend) -> _Done:
        """A frame of one pass: `trend` holds the pass's similarities before it."""
        ref = conf.areas(key)
        drop = trend.drop(sim)
        stats = conf.frame_stats(
            soft, ref, similarity=sim, distance=distance, drop=drop, method=self.method
        )
        return _Done(soft, ids, stats, ref)

    def _background(self, ids) -> _Done:
        h, w = self.model.grid(*self.size)
        soft = torch.zeros(len(ids), h, w)
        soft[0] = 1
        none = conf.FrameStats.constant(len(ids) - 1, 0.0)  # no result here: no confidence
        return _Done(soft, ids, none, np.zeros(len(ids)))

    def _shared_keys(self, k: int) -> list[int]:
        """The other keyframes a pass from `k` keeps as global keys: the
        `Config.keyframe_memory` nearest in time (none with `forward_only`)."""
        if self.forward_only:
            return []
        others = sorted((j for j in self.keyframes if j != k), key=lambda j: (abs(j - k), j))
        return others[: self.config.keyframe_memory]

    def _pass(self, k: int, frames: Iterable[int], forward: bool) -> Iterator[tuple[int, Any]]:
        """`(t, soft, similarity)` of a pass from keyframe `k` over `frames` (in pass order);
        similarity `[L]`: of each channel's features with the keyframe's."""
        key_soft, key_feature = self._key_soft(k), self._feature(k)
        extra = tuple((self._feature(j), self._key_soft(j)) for j in self._shared_keys(k))
        run = self.model.open_pass(key_feature, key_soft, self.size, self.plan, extra)
        key = conf.prototypes(key_feature, key_soft)
        for t in frames:
            frame_hw = tuple(self.store[t].shape[1:])
            if frame_hw != self.size:
                raise ValueError(f"frame {t} is {frame_hw} (H, W) but the keyframes {self.size}")
            feature = self._feature(t)
            soft = run.step(feature)
            self.steps += 1
            sim = run.last_similarity
            if forward:  # the similarity of frame t to t - 1 ...
                self.similarities[t] = sim
            else:  # ... and, backwards, of t + 1 to t (where no forward pass gave it)
                self.similarities.setdefault(t + 1, sim)
            yield t, soft, conf.prototype_similarity(feature, soft, key)

    def _feature(self, t: int) -> torch.Tensor:
        return self.features.get(t, lambda: self.model.encode(self.store[t]))

    def _key_soft(self, t: int) -> torch.Tensor:
        grid = self.model.grid(*self.size)
        encoded = self.model.input_size(*self.size)
        soft = self.codec.encode(self.keyframes[t], self.size, encoded, grid)
        return soft.to(self.model.device, torch.float32)


def _count_from(start: int, store: FrameStore) -> Iterator[int]:
    t = start
    while store.has(t):
        yield t
        t += 1


def _keyframes(annotations) -> dict[int, Any]:
    """A first-frame mask, or a mapping frame index -> mask, as a mapping."""
    if isinstance(annotations, Mapping):
        if not annotations:
            raise ValueError("no annotations: give a first-frame mask or {frame: mask}")
        return dict(annotations)
    return {0: annotations}
