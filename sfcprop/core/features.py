"""Frames to unit feature maps: one backbone, or two fused (SFC, spec section 2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sfcprop.core import precision as numeric
from sfcprop.models.base import Correspondence


def fuse(fine: torch.Tensor, semantic: torch.Tensor, lam: float) -> torch.Tensor:
    """`normalize(concat(lam * fine, semantic))` over channels; both `[B, C_i, h, w]` unit.

    The cosine of fused features is `(lam^2 cos_fine + cos_sem) / (1 + lam^2)`.
    """
    if fine.shape[0] != semantic.shape[0] or fine.shape[2:] != semantic.shape[2:]:
        raise ValueError(
            f"fused backbones must give the same grid: {tuple(fine.shape[2:])} vs "
            f"{tuple(semantic.shape[2:])} (resample one to the stride-8 grid first)"
        )
    return F.normalize(torch.cat([lam * fine, semantic], dim=1), dim=1)


class FeatureError(ValueError):
    """A backbone gave NaN or infinite features (weights that are finite but broken)."""


def blame(net: torch.nn.Module, frames: torch.Tensor) -> str:
    """What makes `net` give non-finite features for `frames`: a BatchNorm's negative
    running variance, a non-finite weight, else the first module whose output is not
    finite (its name and state keys)."""
    for name, module in net.named_modules():
        var = getattr(module, "running_var", None)
        if isinstance(var, torch.Tensor) and (var < 0).any():
            return f"{name}.running_var holds {int((var < 0).sum())} negative variance(s)"
    for key, value in [*net.named_parameters(), *net.named_buffers()]:
        if value.is_floating_point() and not torch.isfinite(value).all():
            return f"{key} holds NaN or infinite values"
    names = {m: n for n, m in net.named_modules()}
    first: list[str] = []

    def hook(module, _inputs, output) -> None:
        if not first and isinstance(output, torch.Tensor) and not output.isfinite().all():
            first.append(names[module])

    handles = [m.register_forward_hook(hook) for m in names if m is not net]
    try:
        net(net.normalize(frames))
    finally:
        for h in handles:
            h.remove()
    if not first:
        return f"{type(net).__name__} (no single module to blame)"
    keys = [k for k in net.state_dict() if k.startswith(f"{first[0]}.")]
    return f"module {first[0]} is the first to give them (its keys: {', '.join(keys) or 'none'})"


@dataclass
class Encoder:
    """Maps uint8 frames `[B, 3, H, W]` to unit features `[B, C, ceil(H/8), ceil(W/8)]`
    of type `dtype` (float16 / bfloat16: the backbones run under autocast; see `precision`)."""

    backbone: Correspondence
    semantic: Correspondence | None = None
    lam: float | None = None
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        if self.semantic is not None and self.lam is None:
            raise ValueError("two fused backbones need lam (the weight of the first)")
        # channels-last convolutions: ~10% (ResNet-18) to ~25% (ResNet-50) faster on CPU
        for net in (self.backbone, self.semantic):
            if net is not None:
                net.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        h, w = -(-frames.shape[-2] // 8), -(-frames.shape[-1] // 8)
        with numeric.autocast(frames.device, self.dtype):
            feats = [self._run(self.backbone, frames, (h, w))]
            if self.semantic is not None:
                feats.append(self._run(self.semantic, frames, (h, w)))
        if self.semantic is not None:
            out = fuse(feats[0], feats[1], self.lam)
        elif self.dtype != torch.float32:  # a half backbone's output, renormalised in float32
            out = F.normalize(feats[0], dim=1)
        else:
            out = feats[0]
        if not torch.isfinite(out).all():
            nets = [self.backbone, self.semantic][: len(feats)]
            bad = [
                blame(n, frames) for n, f in zip(nets, feats, strict=True) if not f.isfinite().all()
            ]
            raise FeatureError(
                "the backbone gave NaN or infinite features for a frame: "
                + "; ".join(bad or ["the fused features (lam?)"])
                + ". Its weights are finite but not a working model: check that checkpoint"
            )
        return out.to(self.dtype)

    @staticmethod
    def _run(net: Correspondence, frames: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        x = net.normalize(frames).contiguous(memory_format=torch.channels_last)
        out = net(x).float().contiguous()
        if tuple(out.shape[-2:]) != grid:
            raise ValueError(
                f"{type(net).__name__} gave a {tuple(out.shape[-2:])} map for "
                f"{tuple(frames.shape[-2:])} frames; a backbone must give stride 8, "
                f"i.e. {grid}"
            )
        return out
