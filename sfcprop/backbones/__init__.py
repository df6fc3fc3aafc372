"""Backbones: the `Correspondence` contract, stride-8 trunks and the registry."""

from .base import IMAGENET_MEAN, IMAGENET_STD, Correspondence
from .resnet import ResNetTrunk, resnet18, resnet50

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Correspondence", "ResNetTrunk", "resnet18", "resnet50"]
