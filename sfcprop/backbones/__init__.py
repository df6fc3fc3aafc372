"""Backbones: the `Correspondence` contract, stride-8 trunks and the registry."""

from .adapter import LayerAdapter
from .base import IMAGENET_MEAN, IMAGENET_STD, Correspondence
from .registry import backbone, list_backbones
from .resnet import ResNetTrunk, resnet18, resnet50
from .vit import ViTTokens, vit_small8

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Correspondence", "ResNetTrunk", "resnet18", "resnet50"]
__all__ += ["LayerAdapter", "ViTTokens", "backbone", "list_backbones", "vit_small8"]
