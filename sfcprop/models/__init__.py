"""Models: the `Correspondence` contract, stride-8 trunks with their registry entries, checkpoint
layouts and verified downloads."""

from sfcprop.models.adapter import LayerAdapter
from sfcprop.models.base import IMAGENET_MEAN, IMAGENET_STD, Correspondence
from sfcprop.models.registry import backbone, list_backbones

# importing the architectures registers their backbones (ResNets first, then the ViT), so
# REGISTRY is full as soon as any module of this package is imported
from sfcprop.models.resnet import ResNetTrunk, resnet18, resnet50
from sfcprop.models.vit import ViTTokens, vit_small8

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Correspondence", "ResNetTrunk", "resnet18", "resnet50"]
__all__ += ["LayerAdapter", "ViTTokens", "backbone", "list_backbones", "vit_small8"]
