"""One propagation pass: the memory of a keyframe and the m preceding frames, one step.

The reference protocol (spec sections 3-4): the pass's keyframe (frame 0 of the video in
the published protocol) is a global key; the m preceding frames are short-term keys
limited to a radius; at the start of a pass the missing short-term slots hold copies of
the keyframe; top-k is joint over the whole context; predictions are fed back soft.
Memory holds m + 1 feature maps and their soft labels, whatever the video's length.
"""

from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass, field

import torch
from einops import rearrange

from sfcprop.config import Config
from sfcprop.core import affinity, budget
from sfcprop.core import precision as numeric
from sfcprop.core.features import Encoder
from sfcprop.errors import check_shape
from sfcprop.labels.resize import resize_frame, resize_soft
from sfcprop.models.base import Correspondence


@dataclass
class Memory:
    """The context of the next target frame: the keyframe plus up to m recent frames.

    first: `(features [C, h, w], soft labels [L, h, w])` of the keyframe; recent: the same
    for the frames before the target, oldest first (at most `context` of them); extra:
    other keyframes, global keys like the first (a session's keyframes on the other side of
    the pass; none in the reference protocol).
    """

    first: tuple[torch.Tensor, torch.Tensor]
    recent: deque = field(default_factory=deque)
    extra: tuple[tuple[torch.Tensor, torch.Tensor], ...] = ()

    def short_term(self, context: int) -> list[tuple[int, tuple[torch.Tensor, torch.Tensor]]]:
        """`(multiplicity, (features, labels))` of the m short-term slots: while fewer than
        m frames precede the target, the oldest (the keyframe) fills the missing slots."""
        slots = [(1, item) for item in self.recent]
        if slots:
            slots[0] = (1 + context - len(self.recent), slots[0][1])
        return slots

    def key(self) -> tuple[int, ...]:
        """The identity of the feature tensors in the memory, in slot order: two memories
        with the same key give the same `Affinity` to a query."""
        recent = (id(feats) for feats, _ in (*self.recent, *self.extra))
        return (id(self.first[0]), len(self.recent), *recent)


@dataclass(frozen=True)
class Affinity:
    """The labels-independent part of one step: each query cell's top-k `weights` and
    `index` into the memory's stacked labels `[(slots h w), L]`, and the `similarity` to
    the most recent slot (None without one). Passes whose memories hold the same feature
    tensors (`Memory.key`) get the same affinity for a query."""

    weights: torch.Tensor
    index: torch.Tensor
    similarity: float | None


def step_affinity(
    query: torch.Tensor,
    memory: Memory,
    config: Config,
    global_rows: int = budget.GLOBAL_ROWS,
    window_elems: int = budget.WINDOW_ELEMS,
) -> Affinity:
    """The `Affinity` of the frame with features `query` `[C, h, w]` to `memory`."""
    n = query.shape[1] * query.shape[2]
    feats0 = memory.first[0]
    candidates = [affinity.global_topk(query, feats0, config.topk, config.temperature, global_rows)]
    sim = None
    for slot, (mult, (feats, _)) in enumerate(memory.short_term(config.context), start=1):
        vals, idx = affinity.local_topk(
            query,
            feats,
            config.radius,
            config.topk,
            config.temperature,
            max_window_elems=window_elems,
        )
        candidates += [(vals, idx + slot * n)] * mult
        sim = float(vals[:, 0].mean()) * config.temperature  # the best key, as a cosine
    for slot, (feats, _) in enumerate(memory.extra, start=1 + len(memory.recent)):
        vals, idx = affinity.global_topk(query, feats, config.topk, config.temperature, global_rows)
        candidates.append((vals, idx + slot * n))
    weights, index = affinity.merge_topk(candidates, config.topk)
    return Affinity(weights, index, sim)


def gather_soft(found: Affinity, memory: Memory, grid: tuple[int, int]) -> torch.Tensor:
    """Soft labels `[L, h, w]` of the `grid` frame whose `Affinity` to `memory` is `found`."""
    banks = [memory.first[1]] + [soft for _, soft in (*memory.recent, *memory.extra)]
    bank = rearrange(torch.stack(banks), "s l h w -> (s h w) l")
    out = affinity.gather_labels(found.weights, found.index, bank)
    return rearrange(out, "(h w) l -> l h w", h=grid[0], w=grid[1])


def step_soft(
    query: torch.Tensor,
    memory: Memory,
    config: Config,
    global_rows: int = budget.GLOBAL_ROWS,
    window_elems: int = budget.WINDOW_ELEMS,
    scores: dict | None = None,
) -> torch.Tensor:
    """Soft labels `[L, h, w]` of the frame with features `query` `[C, h, w]`.

    `global_rows` / `window_elems`: block sizes of the affinity (memory, not results).
    `scores`: a dict that receives `"similarity"`, the frame's `similarity` to the most
    recent frame of the memory (read off that slot's top-k, at no extra cost)."""
    found = step_affinity(query, memory, config, global_rows, window_elems)
    if scores is not None and found.similarity is not None:
        scores["similarity"] = found.similarity
    return gather_soft(found, memory, tuple(query.shape[1:]))


def similarity(query: torch.Tensor, previous: torch.Tensor, radius: float) -> float:
    """Mean over the cells of `query` `[C, h, w]` of their best cosine with a cell of
    `previous` within `radius`: near 1 between neighbouring frames, low across a cut."""
    vals, _ = affinity.local_topk(query, previous, radius, 1, 1.0)
    return float(vals.float().mean())


@dataclass
class Pass:
    """One pass of a built model from a keyframe: its `Memory`, the block sizes of its
    `plan`, and the `last_similarity` of the frame it stepped to (to the one before)."""

    model: Propagator
    memory: Memory
    plan: budget.MemoryPlan | None = None
    last_similarity: float | None = None

    def affinity(self, query: torch.Tensor) -> Affinity:
        """The `Affinity` of the next frame (features `query` `[C, h, w]`) to the memory."""
        blocks = (self.plan.global_rows, self.plan.window_elems) if self.plan else ()
        with numeric.no_tf32():
            return step_affinity(query, self.memory, self.model.config, *blocks)

    def step(self, query: torch.Tensor, found: Affinity | None = None) -> torch.Tensor:
        """Soft labels `[L, h, w]` of the next frame from its features `query` `[C, h, w]`;
        the frame joins the memory. `found`: its `affinity`, when already computed (by a
        pass whose memory has the same `Memory.key`)."""
        config = self.model.config
        with numeric.no_tf32():
            found = found if found is not None else self.affinity(query)
            soft = gather_soft(found, self.memory, tuple(query.shape[1:]))
            sim = found.similarity
            if sim is None:  # no short-term slot (context 0)
                sim = similarity(query, self.memory.first[0], config.radius)
        self.last_similarity = sim
        if config.context > 0:
            self.memory.recent.append((query, soft))
        if config.max_memory is not None:
            budget.release_freed()
        return soft


class Propagator:
    """The model, built once: the backbone(s), the `Config`, the memory planner. It encodes
    frames (`encode`) and opens passes (`open_pass`); a `Session` per video runs them.

    `backbone`/`semantic` are `Correspondence` modules or registry names/paths; with two,
    their features are fused with the config's `lam`. `preset`: a preset name or a
    `Config` (default "davis", or "davis-sfc" when fused); keyword arguments override its
    fields (see `Config`). Frames are encoded at `config.encoded_size`; labels live on that
    frame's feature grid.

    Streaming, one pass at a time: `start(frame0, labels)`, then `step(frame)` per frame
    (`memory`, `plan`, `last_similarity` are that pass's). With `max_memory`, `start`
    estimates the peak (`plan_memory`), shrinks the affinity's blocks to fit, and raises
    `MemoryBudgetError` saying what would fit when nothing does.
    """

    def __init__(
        self,
        backbone: Correspondence | str = "fc",
        semantic: Correspondence | str | None = None,
        *,
        preset: str | Config | None = None,
        **settings,
    ) -> None:
        self.config = cfg = Config.for_run(semantic is not None, preset, **settings)
        self.device = torch.device(cfg.device)
        fine = _resolve(backbone, self.device)
        sem = _resolve(semantic, self.device) if semantic is not None else None
        self.encoder = Encoder(fine, sem, cfg.lam, numeric.feature_dtype(cfg.precision))
        nets = [n for n in (fine, sem) if n is not None]
        self.planner = budget.Planner(nets, self.encoder.dtype.itemsize, self.device)
        self.stream: Pass | None = None  # the pass of start / step
        self.size: tuple[int, int] | None = None  # its frames' (H, W)
        self.plan: budget.MemoryPlan | None = None  # its blocks (start sets it)
        self.encoded = 0  # frames run through the backbone(s)

    @property
    def preset(self) -> Config:
        """Deprecated (0.1's name): `config`."""
        warnings.warn("Propagator.preset is deprecated: use .config", DeprecationWarning, 2)
        return self.config

    @property
    def memory(self) -> Memory | None:
        """The memory of the streaming pass (`start` / `step`)."""
        return self.stream.memory if self.stream else None

    @property
    def last_similarity(self) -> float | None:
        return self.stream.last_similarity if self.stream else None

    @property
    def max_memory(self) -> int | None:
        return self.config.max_memory

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The size a `height x width` frame is encoded at."""
        return self.config.encoded_size(height, width)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """The feature grid `(h, w)` of a `height x width` frame."""
        return self.encoder.backbone.grid(*self.input_size(height, width))

    def plan_memory(
        self, height: int, width: int, n_labels: int, outputs: int = 0, cached: int = 0
    ) -> budget.MemoryPlan:
        """Estimated peak memory of propagating `height x width` frames with `n_labels`
        soft labels (`outputs`: bytes the caller keeps; `cached`: feature maps a keyframe
        session keeps besides the context), with blocks fitted to `max_memory`.

        Raises `MemoryBudgetError` when even the smallest blocks do not fit."""
        return self.planner.plan((height, width), self.config, n_labels, outputs, cached)

    def start(self, frame: torch.Tensor, soft: torch.Tensor, outputs: int = 0) -> None:
        """The keyframe (uint8 `[3, H, W]`) and its soft labels: `[L, h, w]` on the feature
        grid, or float maps `[L, H, W]` at the frame's size (resized to the grid: bilinear,
        half-pixel centres, no antialiasing, as masks are). `outputs`: bytes the caller
        will keep, counted against `max_memory` (checked here, before any work)."""
        soft = torch.as_tensor(soft).to(self.device, torch.float32)
        if frame.ndim == 3 and soft.ndim == 3:
            self.plan = self.plan_memory(*frame.shape[1:], soft.shape[0], outputs)
        self.start_encoded(self.encode(frame), soft, tuple(frame.shape[1:]))

    def open_pass(
        self,
        feats: torch.Tensor,
        soft: torch.Tensor,
        size: tuple[int, int],
        plan: budget.MemoryPlan | None = None,
        extra: tuple[tuple[torch.Tensor, torch.Tensor], ...] = (),
    ) -> Pass:
        """A pass from a keyframe with features `feats` `[C, h, w]` (`encode`) and soft labels
        `[L, h, w]` on the grid, or float maps `[L, H, W]` at the frame's `size` (resized to
        the grid: bilinear, half-pixel centres, no antialiasing, as masks are). `extra`:
        other keyframes' `(features, soft labels)`, on the grid, as more global keys."""
        soft = torch.as_tensor(soft).to(self.device, torch.float32)
        grid = tuple(feats.shape[1:])
        if soft.ndim == 3 and tuple(soft.shape[1:]) == tuple(size) != grid:
            soft = resize_soft(soft, grid)
        if soft.ndim != 3 or tuple(soft.shape[1:]) != grid:
            raise ValueError(
                f"keyframe labels must be [L, h, w] on the {grid} feature grid or [L, H, W] at "
                f"the frame's size {tuple(size)}, got {tuple(soft.shape)}"
            )
        if not torch.isfinite(soft).all():
            raise ValueError("keyframe labels hold NaN or infinite values")
        for f, l in extra:
            if f.shape != feats.shape or l.shape != soft.shape:
                raise ValueError(
                    f"extra keyframes must match the keyframe: features {tuple(feats.shape)}, "
                    f"labels {tuple(soft.shape)}; got {tuple(f.shape)}, {tuple(l.shape)}"
                )
        recent = deque([(feats, soft)], maxlen=self.config.context)
        return Pass(self, Memory((feats, soft), recent, tuple(extra)), plan)

    def start_encoded(
        self, feats: torch.Tensor, soft: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        """`start` with the keyframe's features `[C, h, w]` already computed (`encode`);
        `size`: the frame's `(H, W)`. Returns the soft labels on the grid."""
        self.stream = self.open_pass(feats, soft, size, self.plan)
        self.size = tuple(size)
        return self.stream.memory.first[1]

    def step(self, frame: torch.Tensor) -> torch.Tensor:
        """Soft labels `[L, h, w]` of the next frame (uint8 `[3, H, W]`); updates the memory."""
        if self.stream is None:
            raise RuntimeError("call start(first_frame, first_labels) before step()")
        if tuple(frame.shape[1:]) != self.size:
            raise ValueError(
                f"all frames must have the size of frame 0 {self.size}, "
                f"got {tuple(frame.shape[1:])}"
            )
        return self.step_encoded(self.encode(frame))

    def step_encoded(self, query: torch.Tensor) -> torch.Tensor:
        """`step` with the frame's features `[C, h, w]` already computed (`encode`)."""
        if self.stream is None:
            raise RuntimeError("call start(first_frame, first_labels) before step()")
        self.stream.plan = self.plan  # read at each step, as `plan` may be set between them
        return self.stream.step(query)

    def encode(self, frame: torch.Tensor) -> torch.Tensor:
        """Unit features `[C, h, w]` of a uint8 `[3, H, W]` frame, resized by the config."""
        check_shape(frame, "3 H W", "a frame", torch.uint8)
        frame = frame.to(self.device)
        batch = resize_frame(frame, self.input_size(*frame.shape[1:]), self.config.resize)[None]
        self.encoded += 1
        with numeric.no_tf32():
            return self.encoder(batch)[0]


def _resolve(net: Correspondence | str, device: torch.device) -> Correspondence:
    if isinstance(net, str):
        from sfcprop.models import backbone as load_backbone

        net = load_backbone(net)
    if not isinstance(net, Correspondence):
        raise TypeError(
            f"a backbone must be a Correspondence module or a registry name/path, got {type(net)}"
        )
    return net.to(device).eval()


def load_model(
    backbone: Propagator | Correspondence | str = "fc",
    semantic: Correspondence | str | None = None,
    *,
    preset: str | Config | None = None,
    **settings,
) -> Propagator:
    """The one factory: a `Propagator` from backbone names / paths / modules and settings
    (`Config` fields over `preset`); a built `Propagator` is returned as it is (settings
    then belong to it: giving more is an error)."""
    if isinstance(backbone, Propagator):
        extra = sorted(k for k, v in settings.items() if v is not None)
        if semantic is not None or preset is not None or extra:
            given = ["semantic"] * (semantic is not None) + ["preset"] * (preset is not None)
            raise TypeError(
                f"a built model carries its own settings; got {given + extra} as well: pass "
                "them to sfcprop.load_model, or give backbone names here"
            )
        return backbone
    return Propagator(backbone, semantic, preset=preset, **settings)
