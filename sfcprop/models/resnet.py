"""ResNet trunks at stride 8: the recipe of the CRW / SFC test-time encoders.

Every convolution of `layer3` (and `layer4`, when kept) runs at stride 1, the 1x1
downsample included, with no dilation. At test time `layer4`, `avgpool` and `fc` are
dropped: the map is `layer3`'s output (256 channels for ResNet-18, 1024 for ResNet-50).
State-dict keys are torchvision's (`conv1.weight`, `layer1.0.bn1.running_mean`, ...).

The registry entries of the ResNet backbones (FC, CRW, MoCo, SimCLR, BYOL, InstDis, SimSiam,
VINCE, VFS, PixPro, ImageNet) are registered at the end of this module.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet as tv

from sfcprop.models import hub
from sfcprop.models.base import Correspondence
from sfcprop.models.registry import Entry, Release, Reported, register

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


# ---------------------------------------------------------------- registry entries

_TV = "https://download.pytorch.org/models/"
_FB = "https://dl.fbaipublicfiles.com/"
_VFS = "https://github.com/xvjiarui/VFS/releases/download/v0.1-rc1/"
_LABEL_PROP = "CRW label propagation, DAVIS-2017 val 480p (topk 10, m 20, radius 12, tau 0.05)"

register(
    Entry(
        "fc",
        "resnet18",
        resnet18,
        256,
        releases={
            "sfc": Release(
                hub.Source(
                    "sfc",
                    "pretrained_fc.pth",
                    url="https://github.com/Alxead/SFC/releases/download/v0.1/pretrained_fc.pth",
                ),
                "fc",
            )
        },
        default="shipped",
        shipped="fc-r18-sfcprop.safetensors",
        paper="Hu et al., Semantic-Aware Fine-Grained Correspondence, ECCV 2022",
        notes="default: the shipped sfcprop-trained file (weights/); SFC's released FC "
        "with weights='sfc'",
    ),
    Entry(
        "crw",
        "resnet18-reflect",
        lambda: resnet18(padding="reflect"),
        256,
        releases={
            "crw": Release(
                hub.Source(
                    "crw",
                    "pretrained.pth",
                    url="https://github.com/ajabri/videowalk/raw/master/pretrained.pth",
                    hash="gitsha1:7d3a446fc45567471ca98d5d43bce4810b3a5759",
                ),
                "crw",
            )
        },
        default="crw",
        paper="Jabri et al., Space-Time Correspondence as a Contrastive Random Walk, NeurIPS 2020",
        licence="MIT",
        reported=Reported(67.6, _LABEL_PROP, "Jabri et al. 2020, Table 1"),
    ),
    Entry(
        "mocov1",
        "resnet50",
        resnet50,
        1024,
        releases={
            "moco_v1_200ep": Release(
                hub.Source(
                    "moco_v1_200ep",
                    "moco_v1_200ep_pretrain.pth.tar",
                    url=_FB + "moco/moco_checkpoints/moco_v1_200ep/moco_v1_200ep_pretrain.pth.tar",
                    hash="md5:b251726a",
                ),
                "mocov1",
            )
        },
        default="moco_v1_200ep",
        paper="He et al., Momentum Contrast for Unsupervised Visual Representation Learning, "
        "CVPR 2020",
        licence="CC-BY-NC-4.0",
    ),
    Entry(
        "mocov2",
        "resnet50",
        resnet50,
        1024,
        releases={
            "moco_v2_800ep": Release(
                hub.Source(
                    "moco_v2_800ep",
                    "moco_v2_800ep_pretrain.pth.tar",
                    url=_FB + "moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar",
                    hash="md5:a04e12f8",
                ),
                "mocov2",
            ),
            "moco_v2_200ep": Release(
                hub.Source(
                    "moco_v2_200ep",
                    "moco_v2_200ep_pretrain.pth.tar",
                    url=_FB + "moco/moco_checkpoints/moco_v2_200ep/moco_v2_200ep_pretrain.pth.tar",
                    hash="md5:59fd9945",
                ),
                "mocov2",
            ),
        },
        default="moco_v2_800ep",
        paper="Chen et al., Improved Baselines with Momentum Contrastive Learning, 2020",
        licence="CC-BY-NC-4.0",
    ),
    Entry(
        "simclr",
        "resnet50",
        resnet50,
        1024,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        paper="Chen et al., A Simple Framework for Contrastive Learning, ICML 2020",
        licence="Apache-2.0",
        notes="input in [0, 1] without mean/std; the release is TensorFlow "
        "(https://storage.cloud.google.com/simclr-gcs/checkpoints/ResNet50_1x.zip): convert it "
        "to torchvision names (e.g. tonylins/simclr-converter) and pass weights=<file>",
    ),
    Entry(
        "byol",
        "resnet50",
        resnet50,
        1024,
        paper="Grill et al., Bootstrap Your Own Latent, NeurIPS 2020",
        licence="Apache-2.0",
        notes="the release is a JAX/Haiku pickle "
        "(https://storage.googleapis.com/deepmind-byol/checkpoints/pretrain_res50x1.pkl): convert "
        "it to torchvision names (ssl-transfer convert_byol) and pass weights=<file>",
    ),
    Entry(
        "instdis",
        "resnet50",
        resnet50,
        1024,
        releases={
            "insdis": Release(
                hub.Source(
                    "insdis",
                    "InsDis.pth",
                    url="https://www.dropbox.com/sh/87d24jqsl6ra7t2/AACcsSIt1_Njv7GsmsuzZ6Sta/"
                    "InsDis.pth?dl=1",
                ),
                "insdis",
            )
        },
        default="insdis",
        paper="Wu et al., Unsupervised Feature Learning via Non-Parametric Instance "
        "Discrimination, CVPR 2018 (PyContrast re-release)",
        notes="layout INFERRED (model/module.encoder.), unverified against the real file",
    ),
    Entry(
        "simsiam",
        "resnet50",
        resnet50,
        1024,
        releases={
            "simsiam_100ep_256bs": Release(
                hub.Source(
                    "simsiam_100ep_256bs",
                    "checkpoint_0099.pth.tar",
                    url=_FB + "simsiam/models/100ep-256bs/pretrain/checkpoint_0099.pth.tar",
                ),
                "simsiam",
            )
        },
        default="simsiam_100ep_256bs",
        paper="Chen & He, Exploring Simple Siamese Representation Learning, CVPR 2021",
        licence="CC-BY-NC-4.0",
    ),
    Entry(
        "vince",
        "resnet50",
        resnet50,
        1024,
        releases={
            "vince_r50": Release(
                hub.Source(
                    "vince_r50",
                    "vince_resnet50.pt",
                    manual="the release is a Google Drive tar "
                    "(https://drive.google.com/uc?id=11TfKfZLLx2FYCATjkll5nUIOxSgSBWGi); "
                    "extract <method>/<NNNNNNNNN>.pt",
                ),
                "vince",
            )
        },
        default="vince_r50",
        paper="Gordon et al., Watching the World Go By: Representation Learning from "
        "Unlabeled Videos, 2020",
        notes="layout INFERRED (feature_extractor.module.model.), unverified",
    ),
    Entry(
        "vfs",
        "resnet18",
        resnet18,
        256,
        releases={
            "vfs_r18": Release(
                hub.Source(
                    "vfs_r18",
                    "r18_nc_sgd_cos_100e_r2_1xNx8_k400-db1a4c0d.pth",
                    url=_VFS + "r18_nc_sgd_cos_100e_r2_1xNx8_k400-db1a4c0d.pth",
                    hash="sha256:db1a4c0d",
                ),
                "torchvision",
            )
        },
        default="vfs_r18",
        paper="Xu & Wang, Rethinking Self-supervised Correspondence Learning: A Video "
        "Frame-level Similarity Perspective, ICCV 2021",
    ),
    Entry(
        "vfs-r50",
        "resnet50",
        resnet50,
        1024,
        releases={
            "vfs_r50": Release(
                hub.Source(
                    "vfs_r50",
                    "r50_nc_sgd_cos_100e_r5_1xNx2_k400-d7ce3ad0.pth",
                    url=_VFS + "r50_nc_sgd_cos_100e_r5_1xNx2_k400-d7ce3ad0.pth",
                    hash="sha256:d7ce3ad0",
                ),
                "torchvision",
            )
        },
        default="vfs_r50",
        paper="Xu & Wang, ICCV 2021 (see vfs)",
    ),
    Entry(
        "pixpro",
        "resnet50",
        resnet50,
        1024,
        releases={
            "pixpro_base_r50_400ep": Release(
                hub.Source(
                    "pixpro_base_r50_400ep",
                    "pixpro_base_r50_400ep_md5_919c6612.pth",
                    hash="md5:919c6612",
                    manual="the release is on Google Drive "
                    "(https://drive.google.com/file/d/1Ox2RoFbTrrllbwvITdZvwkNnKUQSUPmV/view)",
                ),
                "pixpro",
            )
        },
        default="pixpro_base_r50_400ep",
        paper="Xie et al., Propagate Yourself (PixPro), CVPR 2021",
        licence="MIT",
    ),
    Entry(
        "imagenet-r18",
        "resnet18",
        resnet18,
        256,
        releases={
            "imagenet1k_v1": Release(
                hub.Source(
                    "imagenet1k_v1_r18",
                    "resnet18-5c106cde.pth",
                    url=_TV + "resnet18-5c106cde.pth",
                    hash="sha256:5c106cde",
                    hf_repo="timm/resnet18.tv_in1k",
                    hf_filename="model.safetensors",
                ),
                "torchvision",
            )
        },
        default="imagenet1k_v1",
        paper="He et al., Deep Residual Learning, CVPR 2016 (torchvision ImageNet-1k V1 weights)",
        licence="BSD-3-Clause (torchvision)",
    ),
    Entry(
        "imagenet-r50",
        "resnet50",
        resnet50,
        1024,
        releases={
            "imagenet1k_v1": Release(
                hub.Source(
                    "imagenet1k_v1_r50",
                    "resnet50-19c8e357.pth",
                    url=_TV + "resnet50-19c8e357.pth",
                    hash="sha256:19c8e357",
                    hf_repo="timm/resnet50.tv_in1k",
                    hf_filename="model.safetensors",
                ),
                "torchvision",
            )
        },
        default="imagenet1k_v1",
        paper="He et al., Deep Residual Learning, CVPR 2016 (torchvision ImageNet-1k V1 weights)",
        licence="BSD-3-Clause (torchvision)",
    ),
)
