"""`TrainConfig`: every option of FC pre-training (SFC seed A.1), with the paper's defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Options of `train`. Defaults are the released recipe (batch 96, 256 crops, 60k iterations).

    Inputs are normalised with ImageNet mean/std at train time (the released code used CIFAR
    statistics for training and ImageNet for testing; we use ImageNet at both).
    """

    image_root: str = _opt("", "folder searched recursively for .jpg/.jpeg/.png images")
    img_size: int = _opt(256, "side of the square crops (feature grid = img_size / 8)")
    batch_size: int = _opt(96, "global batch size (split evenly over DDP ranks)")
    iterations: int = _opt(60000, "total optimiser steps (also sets the EMA schedule)")
    lr: float = _opt(1e-3, "Adam learning rate")
    weight_decay: float = _opt(0.0, "Adam weight decay")
    warmup: int = _opt(0, "linear learning-rate warm-up steps (0 = none, as released)")
    lr_schedule: str = _opt(
        "constant", "'constant' (as released) or 'cosine' (decay to 0 after the warm-up)"
    )
    pos_radius: float = _opt(0.5, "positive radius r, in units of the larger cell diagonal")
    dense_objective: str = _opt(
        "cosine",
        "'cosine' (the paper's loss) or 'infonce' (contrastive over the cells of the other view)",
    )
    temperature: float = _opt(0.07, "softmax temperature of the 'infonce' objective")
    batch_negatives: bool = _opt(
        False, "'infonce': the other images' cells are negatives too (default: same image only)"
    )
    dense_on: str = _opt(
        "head",
        "'head' (the paper: layer4, projection and prediction heads) or 'trunk' (the dense "
        "loss on the layer3 features propagation uses; no heads, no layer4)",
    )
    ema_base: float = _opt(0.99, "EMA momentum at step 0 (cosine ramp to 1)")
    proj_hidden: int = _opt(2048, "hidden width of projection / prediction heads")
    proj_dim: int = _opt(256, "output width of projection / prediction heads")
    byol_weight: float = _opt(0.0, "weight alpha of the joint image-level BYOL loss (0 = off)")
    jitter: float = _opt(
        0.0, "colour jitter strength of each view (0 = none, as released; see data.photometric)"
    )
    hflip: bool = _opt(
        False, "mirror each image (both views) with probability 0.5 (False = never, as released)"
    )
    cycle_weight: float = _opt(
        0.0, "weight of the temporal cycle term on clips of cycle_root (0 = off, as released)"
    )
    cycle_root: str = _opt("", "folder of videos (one folder of frames each) for the cycle term")
    cycle_batch: int = _opt(8, "clips per step for the cycle term")
    cycle_length: int = _opt(3, "frames per clip for the cycle term (walks 0 -> k -> 0)")
    min_scale: float = _opt(0.0, "random-resized-crop minimum area fraction")
    max_scale: float = _opt(1.0, "random-resized-crop maximum area fraction")
    preload_short_side: int = _opt(
        0, "decode all images into memory once, at this short side (0 = off)"
    )
    seed: int = _opt(0, "seed of model init, sampling and crops")
    init: str = _opt(
        "",
        "start the online and target encoders from these weights: an exported trunk "
        "(.safetensors) or a training checkpoint (optimiser and step start fresh; '' = random)",
    )
    device: str = _opt("auto", "'cpu', 'cuda' or 'auto'")
    amp: bool = _opt(False, "mixed precision: CUDA float16 + loss scaling; CPU bfloat16")
    workers: int = _opt(0, "DataLoader worker processes")
    threads: int = _opt(0, "torch CPU threads (0 = torch default)")
    out_dir: str = _opt("runs/fc", "checkpoints (last.pt, step_*.pt) and loss.csv go here")
    save_every: int = _opt(1000, "write a checkpoint every this many steps (and at the end)")
    keep_every: int = _opt(0, "also keep a numbered copy every this many steps (0 = only last.pt)")
    resume: str = _opt("", "checkpoint to resume from (exactly: model, optimiser, RNG, step)")
    log_every: int = _opt(50, "print a log line every this many steps")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (str/int/float/bool only), safe for `torch.load(weights_only=True)`."""
        return asdict(self)

    def __post_init__(self) -> None:
        if self.dense_on not in ("head", "trunk"):
            raise ValueError(f"dense_on must be 'head' or 'trunk', got {self.dense_on!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(
                f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}"
            )
        if self.cycle_weight > 0 and not self.cycle_root:
            raise ValueError("cycle_weight > 0 needs cycle_root (a folder of videos)")
        if self.cycle_length < 2:
            raise ValueError(f"cycle_length must be at least 2, got {self.cycle_length}")
        if self.dense_objective not in ("cosine", "infonce"):
            raise ValueError(
                f"dense_objective must be 'cosine' or 'infonce', got {self.dense_objective!r}"
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`; unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# Options that change the trained model; the rest are run-time settings a resume may change.
RECIPE_FIELDS = [
    "img_size",
    "batch_size",
    "iterations",
    "lr",
    "weight_decay",
    "warmup",
    "lr_schedule",
    "pos_radius",
    "dense_objective",
    "temperature",
    "dense_on",
    "batch_negatives",
    "ema_base",
    "proj_hidden",
    "proj_dim",
    "byol_weight",
    "jitter",
    "hflip",
    "cycle_weight",
    "cycle_batch",
    "cycle_length",
    "min_scale",
    "max_scale",
    "preload_short_side",
    "amp",
    "seed",
    "init",
]
