"""Any module + the name of a layer to read -> a stride-8 `Correspondence`.

The layer's output is caught with a forward hook (the rest of the network is not run).
A `[B, C, h, w]` map is used as is; `[B, N, C]` tokens (a ViT block) are laid out on the
patch grid, leading extra tokens (CLS, registers) dropped. When the map is not already on
the stride-8 grid, it is resampled bilinearly (`align_corners=False`, no antialiasing:
half-pixel centres, as the labels are resampled) to `ceil(H/8) x ceil(W/8)`, then
L2-normalised over channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from sfcprop.models.base import IMAGENET_MEAN, IMAGENET_STD, Correspondence


class _Caught(Exception):
    """Raised by the hook to stop the forward once the layer has run."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output = output


class LayerAdapter(Correspondence):
    """Wrap `module`, reading the output of its sub-module `layer` (a `named_modules` name).

    `patch`: the token stride for layers that output `[B, N, C]` tokens (ViTs).
    `dim`: channels of the layer (found with one small dummy forward when omitted).
    `mean`/`std`: the input normalisation the wrapped network expects.
    `forward`: normalised `[B, 3, H, W]` -> unit `[B, dim, ceil(H/8), ceil(W/8)]`.
    """

    def __init__(
        self,
        module: nn.Module,
        layer: str,
        *,
        patch: int | None = None,
        dim: int | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        modules = dict(module.named_modules())
        if layer not in modules:
            names = [n for n in modules if n][:20]
            raise KeyError(f"{type(module).__name__} has no layer {layer!r}; e.g. {names}")
        self.module, self.layer, self.patch = module, layer, patch
        self.mean, self.std = mean, std
        self._target = modules[layer]
        if dim is None:
            was_training = module.training
            module.eval()
            with torch.no_grad():
                param = next(module.parameters(), None)
                device = param.device if param is not None else None
                dim = self._layer_output(torch.zeros(1, 3, 64, 64, device=device)).shape[1]
            module.train(was_training)
        self.dim = dim

    def _hook(self, _module: nn.Module, _inputs: tuple, output: object) -> None:
        raise _Caught(output[0] if isinstance(output, (tuple, list)) else output)

    def _layer_output(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's output as a map `[B, C, h, w]` for normalised input `x`."""
        handle = self._target.register_forward_hook(self._hook)
        try:
            self.module(x)
        except _Caught as caught:
            out = caught.output
        else:
            raise RuntimeError(f"layer {self.layer!r} did not run in the forward pass")
        finally:
            handle.remove()
        if out.ndim == 3:
            if self.patch is None:
                raise ValueError(f"layer {self.layer!r} gives tokens [B, N, C]: pass patch=")
            h, w = x.shape[-2] // self.patch, x.shape[-1] // self.patch
            if out.shape[1] < h * w:
                raise ValueError(f"{out.shape[1]} tokens cannot fill a {h}x{w} patch grid")
            out = rearrange(out[:, out.shape[1] - h * w :], "b (h w) c -> b c h w", h=h, w=w)
        if out.ndim != 4:
            raise ValueError(f"layer {self.layer!r} output has shape {tuple(out.shape)}")
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised `[B, 3, H, W]` -> unit `[B, dim, ceil(H/8), ceil(W/8)]`."""
        out = self._layer_output(x)
        grid = self.grid(*x.shape[-2:])
        if tuple(out.shape[-2:]) != grid:
            out = F.interpolate(out, size=grid, mode="bilinear", align_corners=False)
        return F.normalize(out, dim=1)
