"""The BatchNorm warm-up quirk of the released SFC code (spec section 1).

SFC's `make_encoder` runs one all-zero `[1, 3, 256, 256]` input through the trunk in
train mode after loading the weights, so every BatchNorm's running statistics move 10%
(momentum 0.1) towards that input's batch statistics. The published SFC numbers include
it; the clean behaviour (checkpoint statistics kept) is sfcprop's default.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # the registry imports this module and the trunks import the registry
    from sfcprop.models.resnet import ResNetTrunk


def _collapse_to_constants(net: nn.Module) -> nn.Module:
    """A copy of `net` that maps per-channel constants the way `net` maps constant maps.

    With reflect padding a constant map stays constant through every convolution, whose
    value is then `W.sum((kh, kw)) @ c`: a 1x1 convolution of the summed kernel.
    """
    net = copy.deepcopy(net).double()
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            w = m.weight.data.sum(dim=(2, 3), keepdim=True)
            m.weight = nn.Parameter(w)
            m.kernel_size, m.stride, m.padding, m.padding_mode = (1, 1), (1, 1), (0, 0), "zeros"
    return net


@torch.no_grad()
def sfc_bn_warmup(trunk: ResNetTrunk) -> ResNetTrunk:
    """Apply SFC's zero-image train-mode forward to `trunk`'s BatchNorm statistics, in place.

    Zero-padded trunks run the forward itself (float32, as the original). Reflect-padded
    trunks (CRW) see spatially constant maps with zero batch variance in every BatchNorm,
    where re-running the forward only amplifies float rounding; there the update is
    computed exactly on per-channel constants (two identical samples, so the unbiased
    batch variance is exactly 0 and each BatchNorm outputs its bias, as in the original).
    """
    was_training = trunk.training
    if trunk.padding == "reflect":
        collapsed = _collapse_to_constants(trunk).train()
        collapsed(torch.zeros(2, 3, 1, 1, dtype=torch.float64))
        src = dict(collapsed.named_buffers())
        for name, buf in trunk.named_buffers():
            buf.copy_(src[name].to(buf.dtype))
    else:
        device = next(trunk.parameters()).device
        trunk.train()(torch.zeros(1, 3, 256, 256, device=device))
    return trunk.train(was_training)
