"""ResNet trunks at stride 8: the recipe of the CRW / SFC test-time encoders.

Every convolution of `layer3` (and `layer4`, when kept) runs at stride 1, the 1x1
downsample included, with no dilation. At test time `layer4`, `avgpool` and `fc` are
dropped: the map is `layer3`'s output (256 channels for ResNet-18, 1024 for ResNet-50).
State-dict keys are torchvision's (`conv1.weight`, `layer1.0.bn1.running_mean`, ...).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet as tv

from sfcprop.models.base import Correspondence

Padding = Literal["zeros", "reflect"]

_ARCHS = {
    "resnet18": (tv.BasicBlock, [2, 2, 2, 2]),
    "resnet50": (tv.Bottleneck, [3, 4, 6, 3]),
}
_LAYER_DIMS = {"resnet18": (64, 128, 256, 512), "resnet50": (256, 512, 1024, 2048)}


def _unstride(layer: nn.Module) -> None:
    for m in layer.modules():
        if isinstance(m, nn.Conv2d):
            m.stride = (1, 1)


class ResNetTrunk(Correspondence):
    """ResNet-18/50 up to `layer3` (or `layer4` with `keep_layer4`) at stride 8.

    `padding="reflect"` gives CRW's network (reflect padding in every padded conv).
    `normalize_output=False` returns raw activations (for training heads).
    """

    def __init__(
        self,
        arch: str = "resnet18",
        padding: Padding = "zeros",
        keep_layer4: bool = False,
        normalize_output: bool = True,
    ) -> None:
        super().__init__()
        if arch not in _ARCHS:
            raise ValueError(f"unknown ResNet arch {arch!r}; expected one of {sorted(_ARCHS)}")
        if padding not in ("zeros", "reflect"):
            raise ValueError(f"padding must be 'zeros' or 'reflect', got {padding!r}")
        block, layers = _ARCHS[arch]
        net = tv.ResNet(block, layers)
        _unstride(net.layer3)
        _unstride(net.layer4)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        self.layer4 = net.layer4 if keep_layer4 else None
        self.arch, self.padding, self.normalize_output = arch, padding, normalize_output
        self.dim = _LAYER_DIMS[arch][3 if keep_layer4 else 2]
        if padding == "reflect":
            for m in self.modules():
                if isinstance(m, nn.Conv2d) and max(m.padding) > 0:
                    m.padding_mode = "reflect"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, 3, H, W]` normalised -> `[B, dim, ceil(H/8), ceil(W/8)]`."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        if self.layer4 is not None:
            x = self.layer4(x)
        return F.normalize(x, dim=1) if self.normalize_output else x


def resnet18(padding: Padding = "zeros", **kwargs) -> ResNetTrunk:
    """ResNet-18 trunk at stride 8 (256 channels)."""
    return ResNetTrunk("resnet18", padding, **kwargs)


def resnet50(padding: Padding = "zeros", **kwargs) -> ResNetTrunk:
    """ResNet-50 trunk at stride 8 (1024 channels)."""
    return ResNetTrunk("resnet50", padding, **kwargs)
