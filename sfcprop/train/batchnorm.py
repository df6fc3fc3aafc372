"""BatchNorm statistics at the test resolution ("precise BN", Wu & Johnson 2021).

Training sees small crops; propagation sees whole frames. The running statistics a training
run leaves are those of its crops, so before export they can be recomputed on whole training
images at the test resolution: no weight changes, forward passes only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sfcprop.models.base import IMAGENET_MEAN, IMAGENET_STD
from sfcprop.models.resnet import resnet18
from sfcprop.train.data import _load, _to_tensor, list_images


def pick_images(root: str | Path, count: int, seed: int = 0) -> list[Path]:
    """`count` images under `root` (all of them if fewer), a seeded random choice, sorted."""
    paths = list_images(root)
    if count <= 0:
        raise ValueError(f"count must be positive, got {count}")
    keep = np.random.default_rng(seed).permutation(len(paths))[:count]
    return [paths[i] for i in sorted(keep)]


@torch.no_grad()
def recalibrate_bn(
    state: dict[str, torch.Tensor], images: Sequence[str | Path], short_side: int = 480
) -> dict[str, torch.Tensor]:
    """ResNet-18 trunk `state` (torchvision keys, as `trunk_state_dict` gives) with every BN
    layer's running mean and variance replaced by the average of its per-image statistics over
    `images`, each resized to `short_side` and fed whole, one at a time, ImageNet-normalised.

    Weights are unchanged; floats come back in the dtype they came in.
    """
    if not images:
        raise ValueError("recalibrate_bn needs at least one image")
    net = resnet18(normalize_output=False)
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the images
    net.train()
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    for path in images:
        x = _to_tensor(_load(Path(path), short_side))
        net(((x - mean) / std)[None])  # [1, 3, H, W]
    out = net.state_dict()
    return {
        k: out[k].to(v.dtype) if v.is_floating_point() else out[k].clone() for k, v in state.items()
    }
