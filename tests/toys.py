"""Small, fast stand-ins for real backbones."""

import torch
import torch.nn.functional as F

from sfcprop.models import Correspondence


class PooledColour(Correspondence):
    """Stride-`stride` features: 8x8 average colour through a fixed random 1x1 conv."""

    def __init__(self, dim: int = 16, stride: int = 8, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.proj = torch.nn.Conv2d(3, dim, 1)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(dim, 3, 1, 1, generator=g))
            self.proj.bias.copy_(torch.randn(dim, generator=g))
        self.dim, self.stride = dim, stride

    def forward(self, x):
        x = F.avg_pool2d(x, self.stride, ceil_mode=True)
        return F.normalize(self.proj(x), dim=1)
