"""Export an FC checkpoint's inference trunk: an encoder up to layer3, float16 safetensors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import save

from sfcprop.io.atomic import atomic_path
from sfcprop.io.runs import refuse_overlap
from sfcprop.models.resnet import resnet18
from sfcprop.train.batchnorm import recalibrate_bn
from sfcprop.train.checkpoint import load_checkpoint

PREFIX = "online_encoder."
ENCODERS = ("online", "target")


def trunk_state_dict(
    model_state: dict[str, torch.Tensor], encoder: str = "online"
) -> dict[str, torch.Tensor]:
    """`{encoder}_encoder.*` without `layer4`, renamed to torchvision keys, floats as float16.

    `encoder`: "online" (the trained network) or "target" (its EMA, BN statistics from its own
    forward passes). Checks that the keys are exactly those of
    `sfcprop.models.resnet18().state_dict()` (90 for ResNet-18: weights, BN running stats
    and `num_batches_tracked`).
    """
    if encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
    prefix = f"{encoder}_encoder."
    out = {
        k[len(prefix) :]: v.detach().cpu()
        for k, v in model_state.items()
        if k.startswith(prefix) and not k.startswith(prefix + "layer4.")
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
    if cfg.get("hflip", False):
        extras += ", horizontal flips"
    if cfg.get("cycle_weight", 0) > 0:
        extras += f", temporal cycle term x{cfg['cycle_weight']:g}"
    return f"FC variant (not the paper's loss): {loss} {where}, EMA target{extras}"


def check_export_path(
    checkpoint_path: str | Path, out_path: str | Path, inputs: Sequence[str | Path | None] = ()
) -> None:
    """Refuse an export path that is a folder, or is (or lies inside) the checkpoint or one
    of the other `inputs` (BN images, their folder): it would be replaced by the trunk."""
    refuse_overlap(out_path, [checkpoint_path, *inputs], "the export path")
    if Path(out_path).is_dir():
        raise ValueError(f"the export path {out_path} is a folder; give a file (.safetensors)")


def export_trunk(
    checkpoint_path: str | Path,
    out_path: str | Path,
    metadata: dict[str, str] | None = None,
    encoder: str = "online",
    bn_images: Sequence[str | Path] = (),
    bn_short_side: int = 480,
) -> Path:
    """Write the trunk of `checkpoint_path` to `out_path` (safetensors, float16); return the path.

    `encoder`: "online" or "target" (the EMA network). With `bn_images`, the BN running
    statistics are recomputed on those whole images at `bn_short_side` (`recalibrate_bn`).
    Metadata (all strings): `format`, `arch`, `recipe`, `iterations` (steps trained),
    `encoder`, `bn_statistics`, `normalization` and the training `config` as JSON, updated
    with `metadata`. Load with `resnet18().load_state_dict(safetensors.torch.load_file(out_path))`.
    A ValueError, before anything is read, for an `out_path` that is a folder or is (or lies
    inside) an input: the checkpoint or a BN image (`check_export_path`).
    """
    check_export_path(checkpoint_path, out_path, bn_images)
    ckpt = load_checkpoint(checkpoint_path)
    tensors = trunk_state_dict(ckpt["model"], encoder)
    if bn_images:
        tensors = recalibrate_bn(tensors, bn_images, bn_short_side)
        bn = f"recomputed on {len(bn_images)} whole training images at short side {bn_short_side}"
    else:
        bn = "from training (running averages over the crops)"
    cfg = ckpt.get("config", {})
    meta = {
        "format": "sfcprop-trunk-v1",
        "arch": "resnet18",
        "layers": "conv1..layer3, layer3 at stride 1 (stride-8 map, 256 channels)",
        "recipe": recipe_name(cfg),
        "iterations": str(int(ckpt["step"])),
        "encoder": "target (EMA of the online encoder)" if encoder == "target" else "online",
        "bn_statistics": bn,
        "normalization": "ImageNet mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)",
        "dtype": "float16",
        "config": json.dumps(cfg, sort_keys=True),
    }
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp:  # moved into place with a new file's usual permissions
        tmp.write_bytes(save(tensors, metadata=meta))
    return out_path
