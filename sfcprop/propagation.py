"""Memory of frame 0 and the m preceding frames; `Propagator.step`; `propagate`.

The reference protocol (spec sections 3-4): frame 0 is a global key frame; the m
preceding frames are short-term keys limited to a radius; at the start of a video the
missing short-term slots hold copies of frame 0; top-k is joint over the whole context;
predictions are fed back soft. Memory holds m + 1 feature maps and their soft labels,
whatever the video's length.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import torch
from einops import rearrange

from . import affinity, budget, labels
from . import precision as numeric
from .backbones.base import Correspondence
from .features import Encoder
from .io import (
    Frames,
    FrameSource,
    iter_frames,
    load_first_mask,
    open_frames,
    resize_frame,
    resize_ids,
    short_side_size,
)
from .presets import Preset, get_preset


@dataclass
class Memory:
    """The context of the next target frame: frame 0 plus up to m recent frames.

    first: `(features [C, h, w], soft labels [L, h, w])` of frame 0; recent: the same for
    the frames before the target, oldest first (at most `context` of them).
    """

    first: tuple[torch.Tensor, torch.Tensor]
    recent: deque = field(default_factory=deque)

    def short_term(self, context: int) -> list[tuple[int, tuple[torch.Tensor, torch.Tensor]]]:
        """`(multiplicity, (features, labels))` of the m short-term slots: while fewer than
        m frames precede the target, the oldest (frame 0) fills the missing slots."""
        slots = [(1, item) for item in self.recent]
        if slots:
            slots[0] = (1 + context - len(self.recent), slots[0][1])
        return slots


def step_soft(
    query: torch.Tensor,
    memory: Memory,
    preset: Preset,
    global_rows: int = budget.GLOBAL_ROWS,
    window_elems: int = budget.WINDOW_ELEMS,
) -> torch.Tensor:
    """Soft labels `[L, h, w]` of the frame with features `query` `[C, h, w]`.

    `global_rows` / `window_elems`: block sizes of the affinity (memory, not results)."""
    c, h, w = query.shape
    n = h * w
    feats0, labels0 = memory.first
    candidates = [affinity.global_topk(query, feats0, preset.topk, preset.temperature, global_rows)]
    banks = [labels0]
    for slot, (mult, (feats, soft)) in enumerate(memory.short_term(preset.context), start=1):
        vals, idx = affinity.local_topk(
            query,
            feats,
            preset.radius,
            preset.topk,
            preset.temperature,
            max_window_elems=window_elems,
        )
        candidates += [(vals, idx + slot * n)] * mult
        banks.append(soft)
    weights, index = affinity.merge_topk(candidates, preset.topk)
    bank = rearrange(torch.stack(banks), "s l h w -> (s h w) l")
    out = affinity.gather_labels(weights, index, bank)
    return rearrange(out, "(h w) l -> l h w", h=h, w=w)


class Propagator:
    """Streaming label propagation: `start(frame0, labels)`, then `step(frame)` per frame.

    `backbone`/`semantic` are `Correspondence` modules or registry names/paths; with two,
    their features are fused with `lam`. Parameters come from `preset` (default "davis",
    or "davis-sfc" when fused) and keyword overrides. `short_side`: frames are resized
    (bilinear, antialiased) to this shorter side before the backbone, so labels live on
    the grid of the resized frame; None (default, the reference protocol) keeps them as
    they are. A preset's own `short_side` (VIP's 560) is the dataset protocol that
    `sfcprop eval` applies; it is not used here. `max_memory` (bytes, or "4GiB", "800MB"):
    `start` estimates the peak (`plan_memory`), shrinks the affinity's blocks to fit, and
    raises `MemoryBudgetError` saying what would fit (a short side, a shorter context)
    when nothing does; each step then returns freed memory to the system
    (`budget.release_freed`). None: no limit, default blocks (larger on CUDA). `precision`:
    "float32" (default, the reference results; TensorFloat-32 off on CUDA), or "float16" /
    "bfloat16" (backbone under autocast, features kept in half: a speed mode whose top-k
    differs in some cells, see `sfcprop.precision`).
    """

    def __init__(
        self,
        backbone: Correspondence | str = "fc",
        semantic: Correspondence | str | None = None,
        *,
        preset: str | Preset | None = None,
        device: str | torch.device | None = None,
        short_side: int | None = None,
        max_memory: int | str | None = None,
        precision: str = "float32",
        **params,
    ) -> None:
        short_side_size((1, 1), short_side)  # validates
        dtype = numeric.feature_dtype(precision)
        self.precision = precision
        self.short_side = short_side
        self.max_memory = budget.parse_bytes(max_memory) if max_memory is not None else None
        self.preset = get_preset(preset or ("davis" if semantic is None else "davis-sfc"), **params)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        fine = _resolve(backbone, self.device)
        sem = _resolve(semantic, self.device) if semantic is not None else None
        lam = self.preset.lam if sem is not None else None
        if sem is not None and lam is None:
            raise ValueError(f"fusing two backbones needs lam; preset {self.preset} has none")
        self.encoder = Encoder(fine, sem, lam, dtype)
        self.memory: Memory | None = None
        self.size: tuple[int, int] | None = None
        self.plan: budget.MemoryPlan | None = None

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The size a `height x width` frame is encoded at (after `short_side`)."""
        return short_side_size((height, width), self.short_side)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """The feature grid `(h, w)` of a `height x width` frame."""
        return self.encoder.backbone.grid(*self.input_size(height, width))

    def plan_memory(
        self, height: int, width: int, n_labels: int, outputs: int = 0
    ) -> budget.MemoryPlan:
        """Estimated peak memory of propagating `height x width` frames with `n_labels`
        soft labels (`outputs`: bytes the caller keeps), with blocks fitted to `max_memory`.

        Raises `MemoryBudgetError` when even the smallest blocks do not fit."""
        plan = self._plan((height, width), self.short_side, n_labels, outputs, self.preset)
        if self.max_memory is None or plan.total <= self.max_memory:
            return plan
        fits = self._fits(height, width, n_labels, outputs)
        if outputs and fits == (None, None):  # what would fit once the results are streamed
            fits = self._fits(height, width, n_labels, 0)
        raise budget.too_big(plan, self.max_memory, (height, width), self.preset, *fits)

    def _plan(self, size, short_side, n_labels, outputs, preset) -> budget.MemoryPlan:
        hw = short_side_size(size, short_side)
        nets = [n for n in (self.encoder.backbone, self.encoder.semantic) if n is not None]
        grid = nets[0].grid(*hw)
        acts = max(budget.backbone_bytes(net, *hw) for net in nets)
        acts += (len(nets) - 1) * nets[0].dim * grid[0] * grid[1] * 4  # first map kept
        channels = sum(net.dim for net in nets)

        feature_bytes = self.encoder.dtype.itemsize

        def rebuild(rows: int, elems: int) -> budget.MemoryPlan:
            return budget.estimate(
                size, grid, channels, n_labels, preset, acts, outputs, rows, elems, feature_bytes
            )

        plan = rebuild(*budget.default_blocks(self.device))
        return plan if self.max_memory is None else budget.fit(plan, self.max_memory, rebuild)

    def _fits(self, height, width, n_labels, outputs) -> tuple[int | None, int | None]:
        """The largest short side, and the longest context, that would fit `max_memory`."""

        def fits(short_side: int | None, preset: Preset) -> bool:
            plan = self._plan((height, width), short_side, n_labels, outputs, preset)
            return plan.total <= self.max_memory

        current = min(short_side_size((height, width), self.short_side))
        sides = (1080, 960, 720, 640, 560, 480, 400, 360, 320, 240, 160)
        side = next((s for s in sides if s < current and fits(s, self.preset)), None)
        contexts = range(self.preset.context - 1, -1, -1)
        context = next(
            (m for m in contexts if fits(self.short_side, replace(self.preset, context=m))), None
        )
        return side, context

    def start(self, frame: torch.Tensor, soft: torch.Tensor, outputs: int = 0) -> None:
        """Frame 0 (uint8 `[3, H, W]`) and its soft labels: `[L, h, w]` on the feature grid,
        or float maps `[L, H, W]` at the frame's size (resized to the grid: bilinear,
        half-pixel centres, no antialiasing, as masks are). `outputs`: bytes the caller
        will keep, counted against `max_memory` (checked here, before any work)."""
        soft = torch.as_tensor(soft).to(self.device, torch.float32)
        if frame.ndim == 3 and soft.ndim == 3:
            self.plan = self.plan_memory(*frame.shape[1:], soft.shape[0], outputs)
        with numeric.no_tf32():
            feats = self._encode(frame)
        grid, size = tuple(feats.shape[1:]), tuple(frame.shape[1:])
        if soft.ndim == 3 and tuple(soft.shape[1:]) == size != grid:
            soft = labels.resize_soft(soft, grid)
        if soft.ndim != 3 or tuple(soft.shape[1:]) != grid:
            raise ValueError(
                f"first labels must be [L, h, w] on the {grid} feature grid or [L, H, W] at "
                f"the frame's size {size}, got {tuple(soft.shape)}"
            )
        self.size = size
        self.memory = Memory((feats, soft), deque([(feats, soft)], maxlen=self.preset.context))

    def step(self, frame: torch.Tensor) -> torch.Tensor:
        """Soft labels `[L, h, w]` of the next frame (uint8 `[3, H, W]`); updates the memory."""
        if self.memory is None:
            raise RuntimeError("call start(first_frame, first_labels) before step()")
        if tuple(frame.shape[1:]) != self.size:
            raise ValueError(
                f"all frames must have the size of frame 0 {self.size}, "
                f"got {tuple(frame.shape[1:])}"
            )
        blocks = (self.plan.global_rows, self.plan.window_elems) if self.plan else ()
        with numeric.no_tf32():
            query = self._encode(frame)
            soft = step_soft(query, self.memory, self.preset, *blocks)
        if self.preset.context > 0:
            self.memory.recent.append((query, soft))
        if self.max_memory is not None:
            budget.release_freed()
        return soft

    def _encode(self, frame: torch.Tensor) -> torch.Tensor:
        if frame.ndim != 3 or frame.shape[0] != 3 or frame.dtype != torch.uint8:
            raise ValueError(
                f"a frame must be uint8 [3, H, W], got {frame.dtype} {tuple(frame.shape)}"
            )
        frame = frame.to(self.device)
        if self.short_side is not None:
            frame = resize_frame(frame, self.input_size(*frame.shape[1:]))
        return self.encoder(frame[None])[0]


@dataclass
class Propagation:
    """Result of `propagate`: ids `[T, H, W]` uint8 (the ids of the first mask),
    `label_ids` (channel l of `soft` is id `label_ids[l]`), soft `[T, L, h, w]` or None."""

    ids: torch.Tensor
    label_ids: list[int]
    soft: torch.Tensor | None = None


def propagate_soft_iter(
    frames: FrameSource, first_soft: torch.Tensor, propagator: Propagator, outputs: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield `(frame, soft [L, h, w])` for every frame, frame 0 first (its given labels).

    `outputs`: bytes the caller keeps, counted against the propagator's `max_memory`."""
    it = iter_frames(frames)
    try:
        frame0 = next(it)
    except StopIteration:
        raise ValueError("the video holds no frames") from None
    propagator.start(frame0, first_soft, outputs)
    yield frame0, propagator.memory.first[1]
    for frame in it:
        yield frame, propagator.step(frame)


def propagate_iter(
    frames: FrameSource,
    first_mask,
    backbone: Correspondence | str = "fc",
    semantic: Correspondence | str | None = None,
    *,
    preset: str | Preset | None = None,
    topk: int | None = None,
    context: int | None = None,
    radius: float | None = None,
    temperature: float | None = None,
    lam: float | None = None,
    short_side: int | None = None,
    device: str | torch.device | None = None,
    max_memory: int | str | None = None,
    precision: str = "float32",
    reserve_per_frame: int = 0,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """`propagate` one frame at a time: yields `(t, ids [H, W] uint8 (CPU), soft [L, h, w])`
    as each frame is done, so a caller can write it and drop it (nothing accumulates).

    Channel l of `soft` is id `labels.label_ids(first_mask)[l]` (0 first, then the
    first mask's ids in increasing order). `reserve_per_frame`: bytes the caller keeps of
    each frame, counted against `max_memory` (before any work when the number of frames is
    known, else as frames are done). Other arguments as `propagate`.
    """
    mask = load_first_mask(first_mask)
    ids = labels.label_ids(mask)
    prop = Propagator(
        backbone,
        semantic,
        preset=preset,
        device=device,
        short_side=short_side,
        max_memory=max_memory,
        precision=precision,
        topk=topk,
        context=context,
        radius=radius,
        temperature=temperature,
        lam=lam,
    )
    small = resize_ids(mask, prop.input_size(*mask.shape))  # nearest; unchanged at native size
    first_soft = labels.to_grid(small, ids, prop.grid(*mask.shape))
    count = _count(frames) if max_memory is not None and reserve_per_frame else None
    stream = propagate_soft_iter(
        _same_size(iter_frames(frames), mask.shape),
        first_soft,
        prop,
        reserve_per_frame * (count or 0),
    )
    for t, (_, soft) in enumerate(stream):
        kept = (t + 1) * reserve_per_frame
        if prop.max_memory and count is None and prop.plan.total + kept > prop.max_memory:
            raise budget.MemoryBudgetError(
                f"keeping the results of {t + 1} frames ({budget.format_bytes(kept)}) with "
                f"the {budget.format_bytes(prop.plan.total)} propagation needs exceeds "
                f"max_memory = {budget.format_bytes(prop.max_memory)}; stream them instead "
                "(sfcprop.propagate_iter, or `sfcprop propagate --out`)"
            )
        out = mask.to(torch.uint8) if t == 0 else labels.decode(soft, ids, prop.size).cpu()
        yield t, out, soft


def propagate(
    frames: FrameSource,
    first_mask,
    backbone: Correspondence | str = "fc",
    semantic: Correspondence | str | None = None,
    *,
    preset: str | Preset | None = None,
    topk: int | None = None,
    context: int | None = None,
    radius: float | None = None,
    temperature: float | None = None,
    lam: float | None = None,
    short_side: int | None = None,
    device: str | torch.device | None = None,
    return_soft: bool = False,
    progress: bool = False,
    max_memory: int | str | None = None,
    precision: str = "float32",
) -> Propagation:
    """Propagate the first frame's object mask through `frames`.

    frames: uint8 `[T, 3, H, W]` tensor, `[T, H, W, 3]` numpy array, list of PIL images
    or image paths, a folder of images or a video file (read one at a time). first_mask:
    `[H, W]` integer ids (0 = background) or a palette/greyscale PNG path. short_side:
    resize frames to this shorter side before the backbone (bilinear, antialiased; the
    first mask nearest) and decode the ids back at `H x W`; None: native size, the
    reference protocol. Returns the ids of every frame (frame 0: the given mask) and,
    with `return_soft`, the soft labels (on the grid of the resized frames). Only the ids
    are kept in memory; see `propagate_iter` to stream them. max_memory (bytes, or
    "4GiB", "800MB"): the estimated peak, including the ids kept for every frame, must fit,
    else `MemoryBudgetError` (before any work when the number of frames is known) says
    what would fit; precision: "float32" (default, the reference results), "float16" or
    "bfloat16" (faster where the hardware has units for them, not exact); see `Propagator`.
    """
    mask = load_first_mask(first_mask)
    per_frame = mask.numel()  # uint8 ids
    if return_soft:  # float32 [L, h, w] on the stride-8 grid of the encoded size
        h, w = short_side_size(tuple(mask.shape), short_side)
        per_frame += len(labels.label_ids(mask)) * -(-h // 8) * -(-w // 8) * 4
    stream = propagate_iter(
        frames,
        mask,
        backbone,
        semantic,
        preset=preset,
        topk=topk,
        context=context,
        radius=radius,
        temperature=temperature,
        lam=lam,
        short_side=short_side,
        device=device,
        max_memory=max_memory,
        precision=precision,
        reserve_per_frame=per_frame,
    )
    out_ids, out_soft = [], []
    for _, ids, soft in _progress(stream, progress, frames):
        out_ids.append(ids)
        if return_soft:
            out_soft.append(soft.cpu())
    return Propagation(
        torch.stack(out_ids), labels.label_ids(mask), torch.stack(out_soft) if return_soft else None
    )


def propagate_soft(
    frames: FrameSource,
    first_soft: torch.Tensor,
    backbone: Correspondence | str = "fc",
    semantic: Correspondence | str | None = None,
    *,
    preset: str | Preset | None = None,
    device: str | torch.device | None = None,
    short_side: int | None = None,
    progress: bool = False,
    **params,
) -> torch.Tensor:
    """Propagate soft labels (keypoint maps, part maps, any number of float maps) given
    on frame 0's feature grid `[L, h, w]` or at its full size `[L, H, W]` (resized to the
    grid, bilinear); returns `[T, L, h, w]` as they are (no argmax, no normalisation)."""
    prop = Propagator(
        backbone, semantic, preset=preset, device=device, short_side=short_side, **params
    )
    it = propagate_soft_iter(frames, torch.as_tensor(first_soft, dtype=torch.float32), prop)
    return torch.stack([soft.cpu() for _, soft in _progress(it, progress, frames)])


def _same_size(frames: Iterator[torch.Tensor], size) -> Iterator[torch.Tensor]:
    for t, frame in enumerate(frames):
        if tuple(frame.shape[1:]) != tuple(size):
            raise ValueError(
                f"frame {t} is {tuple(frame.shape[1:])} (H, W) but the first mask is {tuple(size)}"
            )
        yield frame


def _progress(it: Iterable, enabled: bool, frames: FrameSource = None) -> Iterable:
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, unit="frame", total=_count(frames))


def _count(frames: FrameSource) -> int | None:
    """The number of frames when known without decoding (for the progress bar)."""
    if isinstance(frames, (str, os.PathLike, Frames)):
        try:
            return open_frames(frames).count
        except (OSError, ValueError, ImportError):
            return None  # reported when the frames are read
    return len(frames) if hasattr(frames, "__len__") else None


def _resolve(net: Correspondence | str, device: torch.device) -> Correspondence:
    if isinstance(net, str):
        from .backbones import backbone as load_backbone

        net = load_backbone(net)
    if not isinstance(net, Correspondence):
        raise TypeError(
            f"a backbone must be a Correspondence module or a registry name/path, got {type(net)}"
        )
    return net.to(device).eval()
