"""Export an FC checkpoint's inference trunk: online encoder up to layer3, float16 safetensors."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save

from sfcprop.backbones.resnet import resnet18

from .checkpoint import load_checkpoint

PREFIX = "online_encoder."


def trunk_state_dict(model_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`online_encoder.*` without `layer4`, renamed to torchvision keys, floats as float16.

    Checks that the keys are exactly those of `sfcprop.backbones.resnet18().state_dict()` (90 for
    ResNet-18: weights, BN running stats and `num_batches_tracked`).
    """
    out = {
        k[len(PREFIX) :]: v.detach().cpu()
        for k, v in model_state.items()
        if k.startswith(PREFIX) and not k.startswith(PREFIX + "layer4.")
    }
    expected = set(resnet18().state_dict())
    if set(out) != expected:
        missing, extra = sorted(expected - set(out)), sorted(set(out) - expected)
        raise KeyError(f"trunk keys do not match resnet18: missing {missing}, unexpected {extra}")
    return {
        k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in sorted(out.items())
    }


def recipe_name(cfg: dict) -> str:
    """One line naming the objective a training config used."""
    objective = cfg.get("dense_objective", "cosine")
    on = cfg.get("dense_on", "head")
    if (objective, on) == ("cosine", "head"):
        return "FC (SFC seed A.1): dense BYOL/PixPro-style loss, EMA target"
    loss = "contrastive (InfoNCE) dense loss" if objective == "infonce" else "dense cosine loss"
    where = "on the layer3 trunk features, no heads" if on == "trunk" else "through the heads"
    extras = ""
    if cfg.get("jitter", 0) > 0:
        extras += f", colour jitter {cfg['jitter']:g}"
    if cfg.get("cycle_weight", 0) > 0:
        extras += f", temporal cycle term x{cfg['cycle_weight']:g}"
    return f"FC variant (not the paper's loss): {loss} {where}, EMA target{extras}"


def export_trunk(
    checkpoint_path: str | Path,
    out_path: str | Path,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write the trunk of `checkpoint_path` to `out_path` (safetensors, float16); return the path.

    Metadata (all strings): `format`, `arch`, `recipe`, `iterations` (steps trained),
    `normalization` and the training `config` as JSON, updated with `metadata`.
    Load with `resnet18().load_state_dict(safetensors.torch.load_file(out_path))`.
    """
    ckpt = load_checkpoint(checkpoint_path)
    tensors = trunk_state_dict(ckpt["model"])
    cfg = ckpt.get("config", {})
    meta = {
        "format": "sfcprop-trunk-v1",
        "arch": "resnet18",
        "layers": "conv1..layer3, layer3 at stride 1 (stride-8 map, 256 channels)",
        "recipe": recipe_name(cfg),
        "iterations": str(int(ckpt["step"])),
        "normalization": "ImageNet mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)",
        "dtype": "float16",
        "config": json.dumps(cfg, sort_keys=True),
    }
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    tmp.write_bytes(save(tensors, metadata=meta))  # plain open(): the usual file permissions
    tmp.replace(out_path)
    return out_path
