"""Memory budget of propagation: an estimate of the peak, block sizes that fit a `max_memory`,
and a clear error (with what would fit) when a request cannot.

What propagation holds (`n = h * w` cells of the stride-8 grid, `C` channels, `L` labels,
`m` context frames, `k` top-k; features take `b` = 4 bytes, 2 in half precision):

- features: frame 0 and the m preceding frames, `(m + 1) * C * n * b` bytes;
- labels: their soft labels, `(m + 1) * L * n * 4`;
- backbone: activations of one forward pass (estimated from a small probe, see
  `backbone_bytes`);
- affinity: one step's temporaries: a block of frame-0 scores (`rows * n`), a block of
  short-term windows, the window tables, the candidates of every slot and their merge;
- decoding: one frame as read and resized, and the labels upsampled to it for the ids;
- outputs: what `propagate` keeps for the caller (the ids of every frame; 0 when streamed
  with `propagate_iter` or `sfcprop propagate`).

Only the two block sizes change under a budget; results are the same for any block size.
The estimate counts the tensors propagation holds, not torch itself or the weights (the
process's memory before propagation) nor what the allocator keeps after frees: measured
peaks above that baseline were 0.95-1.9x the estimate (`benchmarks/bench_propagation.py`,
README), so leave headroom. With a `max_memory`, `Propagator` returns freed heap memory
to the system after every frame (`release_freed`, glibc): measured side by side over 40
frames, the peak above the baseline went from 1.29x to 1.06x the estimate (ResNet-18) and
from 1.35x to 1.30x (fused). On CUDA the plan counts GPU and host memory together.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from dataclasses import dataclass, replace

import torch
from torch import nn

from sfcprop.config import Config
from sfcprop.core.affinity import workspace_bytes

GLOBAL_ROWS = 2048  # query rows per block of the frame-0 affinity (the CPU default)
WINDOW_ELEMS = 1 << 22  # elements of short-term key windows per block (the CPU default)
# on a GPU, blocks large enough that a 480p step is one product per frame (fewer launches)
CUDA_GLOBAL_ROWS, CUDA_WINDOW_ELEMS = 8192, 1 << 26
_MIN_GLOBAL_ROWS, _MIN_WINDOW_ELEMS = 64, 1 << 16


class MemoryBudgetError(MemoryError):
    """A propagation request whose estimated peak does not fit `max_memory`."""


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc: nothing to call
        return None


def release_freed() -> bool:
    """Give the heap memory freed so far back to the system (glibc `malloc_trim(0)`).

    The allocator otherwise keeps freed blocks of the affinity's temporaries, and the
    process's memory grows above what propagation holds. False where unavailable."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def default_blocks(device: torch.device) -> tuple[int, int]:
    """`(global_rows, window_elems)` to start from on `device` (before any `max_memory` fit)."""
    if device.type == "cuda":
        return CUDA_GLOBAL_ROWS, CUDA_WINDOW_ELEMS
    return GLOBAL_ROWS, WINDOW_ELEMS


def format_bytes(n: float) -> str:
    """`1.23 GiB`, `456 MiB`, `12 KiB`."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            digits = 2 if unit == "GiB" else 1 if value < 100 else 0
            return f"{value:.{digits}f} {unit}"
    return f"{int(n)} B"


@dataclass(frozen=True)
class MemoryPlan:
    """Estimated peak of a propagation, in bytes, and the block sizes it assumes."""

    features: int
    labels: int
    backbone: int
    affinity: int
    decoding: int
    outputs: int
    global_rows: int = GLOBAL_ROWS
    window_elems: int = WINDOW_ELEMS

    @property
    def total(self) -> int:
        parts = (self.features, self.labels, self.backbone, self.affinity, self.decoding)
        return sum(parts) + self.outputs

    def describe(self) -> str:
        parts = ("features", "labels", "backbone", "affinity", "decoding", "outputs")
        inner = ", ".join(f"{p} {format_bytes(getattr(self, p))}" for p in parts)
        return f"{format_bytes(self.total)} ({inner})"


_PROBE = 64


def backbone_bytes(net: nn.Module, height: int, width: int) -> int:
    """Estimated activation peak of `net` on one `height x width` frame.

    The outputs of every leaf module are measured once on a 64 x 64 probe and scaled by the
    pixel count; the peak is taken as three times the largest (a layer's input, its output
    and one temporary live together), plus the normalised frame.
    """
    largest = _largest_leaf_output(net)
    return int(3 * largest * height * width / _PROBE**2) + 4 * 3 * height * width


def _largest_leaf_output(net: nn.Module) -> int:
    cached = getattr(net, "_sfcprop_largest_leaf", None)
    if cached is not None:
        return cached
    sizes = [0]

    def hook(_module, _inputs, output) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel() * 4)  # float32 bytes

    leaves = [m for m in net.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        param = next(net.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.inference_mode():
            net(torch.zeros(1, 3, _PROBE, _PROBE, device=device))
    finally:
        for h in handles:
            h.remove()
    object.__setattr__(net, "_sfcprop_largest_leaf", max(sizes))
    return max(sizes)


def estimate(
    frame_size: tuple[int, int],
    grid: tuple[int, int],
    channels: int,
    n_labels: int,
    config: Config,
    backbone: int,
    outputs: int = 0,
    global_rows: int = GLOBAL_ROWS,
    window_elems: int = WINDOW_ELEMS,
    feature_bytes: int = 4,
) -> MemoryPlan:
    """The `MemoryPlan` of propagating `frame_size` frames on a `grid` of `channels`-d
    features (see module doc).

    `backbone`: activation bytes of one frame (`backbone_bytes`); `outputs`: bytes the
    caller keeps over the whole video; `feature_bytes`: 4 (float32) or 2 (half).
    """
    n, slots, lab = grid[0] * grid[1], config.context + 1, n_labels
    affinity = workspace_bytes(
        grid,
        channels,
        lab,
        config.topk,
        config.context,
        config.radius,
        global_rows,
        window_elems,
        feature_bytes,
    )
    fb = feature_bytes
    return MemoryPlan(
        features=slots * channels * n * fb,
        labels=slots * lab * n * 4,
        backbone=backbone,
        affinity=int(affinity),
        # uint8 frame, float copies to resize it; soft labels upsampled, and their argmax
        decoding=frame_size[0] * frame_size[1] * (3 * 9 + lab * 8 + 8),
        outputs=outputs,
        global_rows=global_rows,
        window_elems=window_elems,
    )


def fit(plan: MemoryPlan, max_memory: int, rebuild) -> MemoryPlan:
    """Halve the block sizes of `plan` until it fits `max_memory` (exact results at any
    size); `rebuild(global_rows, window_elems)` recomputes the plan. Returns the first plan
    that fits, or the smallest one (the caller decides what to do with it)."""
    while plan.total > max_memory:
        rows = max(_MIN_GLOBAL_ROWS, plan.global_rows // 2)
        elems = max(_MIN_WINDOW_ELEMS, plan.window_elems // 2)
        if (rows, elems) == (plan.global_rows, plan.window_elems):
            break
        plan = rebuild(rows, elems)
    return plan


def too_big(
    plan: MemoryPlan,
    max_memory: int,
    frame_size: tuple[int, int],
    config: Config,
    short_side_fits: int | None,
    context_fits: int | None,
) -> MemoryBudgetError:
    """The error for a plan that does not fit, saying what would."""
    hints = []
    if short_side_fits:
        hints.append(f"resize the frames with short_side={short_side_fits}")
    if context_fits is not None and context_fits < config.context:
        hints.append(f"keep fewer frames in memory with context={context_fits}")
    what = " or ".join(hints)
    if plan.outputs:
        stream = (
            "stream the results instead of keeping them all (sfcprop.propagate_iter, or "
            "`sfcprop propagate --out`, which write each frame as it is done)"
        )
        fits_streamed = plan.total - plan.outputs <= max_memory
        what = stream if fits_streamed else f"{stream} and {what}" if what else stream
    what = what or "use a machine with more memory"
    return MemoryBudgetError(
        f"propagating {frame_size[1]}x{frame_size[0]} frames with {config.context} frames of "
        f"context needs about {plan.describe()}, more than max_memory = "
        f"{format_bytes(max_memory)}; to fit, {what}"
    )


@dataclass
class Planner:
    """The memory planner of one propagator: `plan` estimates a run's peak, fits the
    affinity's blocks to `config.max_memory`, and raises `MemoryBudgetError` (saying what
    would fit: a short side, a shorter context, streaming) when nothing does.

    nets: the backbone(s); feature_bytes: 4 (float32) or 2 (half); device: where blocks
    start from (larger on CUDA)."""

    nets: list[nn.Module]
    feature_bytes: int
    device: torch.device

    def plan(
        self,
        size: tuple[int, int],
        config: Config,
        n_labels: int,
        outputs: int = 0,
        cached: int = 0,
    ) -> MemoryPlan:
        """The plan of `size` frames with `n_labels` labels; `outputs`: bytes the caller
        keeps; `cached`: feature maps kept besides the context (keyframe sessions)."""
        plan = self.estimate(size, config, n_labels, outputs, cached)
        limit = config.max_memory
        if limit is None or plan.total <= limit:
            return plan
        fits = self._fits(size, config, n_labels, outputs, cached)
        if outputs and fits == (None, None):  # what would fit once the results are streamed
            fits = self._fits(size, config, n_labels, 0, cached)
        raise too_big(plan, limit, size, config, *fits)

    def estimate(self, size, config: Config, n_labels, outputs=0, cached=0) -> MemoryPlan:
        """The plan with blocks fitted to `config.max_memory` (the smallest when none fit)."""
        hw = config.encoded_size(*size)
        grid = self.nets[0].grid(*hw)
        acts = max(backbone_bytes(net, *hw) for net in self.nets)
        acts += (len(self.nets) - 1) * self.nets[0].dim * grid[0] * grid[1] * 4  # first kept
        channels = sum(net.dim for net in self.nets)
        kept = outputs + cached * channels * grid[0] * grid[1] * self.feature_bytes

        def rebuild(rows: int, elems: int) -> MemoryPlan:
            return estimate(
                size,
                grid,
                channels,
                n_labels,
                config,
                acts,
                kept,
                rows,
                elems,
                self.feature_bytes,
            )

        plan = rebuild(*default_blocks(self.device))
        return plan if config.max_memory is None else fit(plan, config.max_memory, rebuild)

    def _fits(self, size, config: Config, n_labels, outputs, cached):
        """The largest short side, and the longest context, that would fit."""

        def fits(c: Config) -> bool:
            return self.estimate(size, c, n_labels, outputs, cached).total <= c.max_memory

        current = min(config.encoded_size(*size))
        sides = (1080, 960, 720, 640, 560, 480, 400, 360, 320, 240, 160)
        side = next(
            (s for s in sides if s < current and fits(replace(config, short_side=s, size=None))),
            None,
        )
        contexts = range(config.context - 1, -1, -1)
        context = next((m for m in contexts if fits(replace(config, context=m))), None)
        return side, context
