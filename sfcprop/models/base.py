"""The `Correspondence` contract that every backbone satisfies."""

from __future__ import annotations

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Correspondence(nn.Module):
    """A network that maps frames to a dense, L2-normalised feature map.

    Subclasses implement `forward(x)`: `x` is `[B, 3, H, W]` float, normalised with
    `mean`/`std` (see `normalize`); the result is `[B, dim, ceil(H/stride), ceil(W/stride)]`
    with unit vectors along the channels, so a dot product is a cosine similarity.
    """

    stride: int = 8
    dim: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def normalize(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 `[B, 3, H, W]` (0..255) or float in [0, 1] -> the input `forward` expects."""
        if frames.dtype == torch.uint8:
            frames = frames.float() / 255.0
        mean = torch.tensor(self.mean, device=frames.device, dtype=frames.dtype)
        std = torch.tensor(self.std, device=frames.device, dtype=frames.dtype)
        return (frames - mean[:, None, None]) / std[:, None, None]

    @torch.inference_mode()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames `[B, 3, H, W]` -> unit features `[B, dim, h, w]` (eval, no grad)."""
        return self(self.normalize(frames))

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Feature-grid size for an `height x width` frame."""
        return -(-height // self.stride), -(-width // self.stride)
