"""The FC training loop: CPU or CUDA, optional AMP, DDP under `torchrun`, exact resume."""

from __future__ import annotations

import csv
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from tqdm import tqdm

from sfcprop.io.atomic import atomic_path
from sfcprop.train.checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state
from sfcprop.train.config import RECIPE_FIELDS, TrainConfig
from sfcprop.train.data import ClipDataset, StepBatchSampler, TwoViewDataset
from sfcprop.train.export import PREFIX
from sfcprop.train.model import FCNet
from sfcprop.train.objectives import ema_momentum


@dataclass
class _Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1


def _dist_env() -> _Dist:
    """Rank / local rank / world size from `torchrun`'s environment (single process without)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    return _Dist(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world)


def _device(cfg: TrainConfig, local_rank: int) -> torch.device:
    kind = cfg.device
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device='cuda' but CUDA is not available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device(kind)


def init_state(path: str) -> dict[str, torch.Tensor]:
    """Encoder weights (torchvision keys) from an exported trunk or a training checkpoint."""
    from sfcprop.models.checkpoints import read_checkpoint

    stored = read_checkpoint(path, namespace=False)
    if isinstance(stored, dict) and isinstance(stored.get("model"), dict):  # a training run
        model = stored["model"]
        return {k[len(PREFIX) :]: v for k, v in model.items() if k.startswith(PREFIX)}
    if not isinstance(stored, dict):
        raise KeyError(f"{path}: expected a dict of tensors, got {type(stored).__name__}")
    return stored


def _lr(cfg: TrainConfig, step: int) -> float:
    """The learning rate of 0-based `step`: linear warm-up, then constant or cosine to 0."""
    if cfg.warmup > 0 and step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.lr_schedule == "cosine":
        done = (step - cfg.warmup) / max(1, cfg.iterations - cfg.warmup)
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, done)))
    return cfg.lr


def write_loss_csv(losses: list[float], path: str | Path) -> None:
    """`iteration,loss` rows (1-based iteration) for the per-step losses."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["iteration", "loss"])
        w.writerows((i + 1, f"{v:.6f}") for i, v in enumerate(losses))


def _merge_resumed_config(cfg: TrainConfig, saved: dict) -> TrainConfig:
    """The checkpoint's recipe wins; run-time options (paths, device, threads) come from `cfg`."""
    merged = cfg.to_dict()
    for k in RECIPE_FIELDS:
        if k in saved:
            merged[k] = saved[k]
    return TrainConfig.from_dict(merged)


def train(cfg: TrainConfig, stop_at: int | None = None) -> list[float]:
    """Train FC with `cfg`; return the losses of the steps run by this call.

    Writes `out_dir/last.pt` every `save_every` steps and at the end (rank 0), and
    `out_dir/loss.csv`. `stop_at` ends the run after that many total steps (a later `resume`
    continues exactly, with the same schedules, as if never stopped).
    """
    ckpt = load_checkpoint(cfg.resume) if cfg.resume else None
    if ckpt is not None:
        cfg = _merge_resumed_config(cfg, ckpt["config"])
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    dinfo = _dist_env()
    device = _device(cfg, dinfo.local_rank)  # sets the CUDA device before NCCL starts
    own_group = dinfo.world_size > 1 and not dist.is_initialized()
    if own_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg.batch_size % dinfo.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} not divisible by {dinfo.world_size} ranks")
    scaled = cfg.amp and device.type == "cuda"  # float16 needs loss scaling; bfloat16 does not
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    net = FCNet(
        proj_hidden=cfg.proj_hidden,
        proj_dim=cfg.proj_dim,
        pos_radius=cfg.pos_radius,
        byol_weight=cfg.byol_weight,
        dense_objective=cfg.dense_objective,
        temperature=cfg.temperature,
        dense_on=cfg.dense_on,
        batch_negatives=cfg.batch_negatives,
        cycle_weight=cfg.cycle_weight,
    ).to(device)
    opt = torch.optim.Adam(net.online_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=scaled)
    step, losses = 0, []
    if ckpt is None and cfg.init:
        net.init_encoders(init_state(cfg.init))
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        step, losses = int(ckpt["step"]), ckpt["losses"].tolist()
        set_rng_state(ckpt["rng"])
        del ckpt
    model = net
    if dinfo.world_size > 1:
        ids = [device.index] if device.type == "cuda" else None
        model = DDP(net, device_ids=ids)

    data = TwoViewDataset(
        cfg.image_root,
        cfg.img_size,
        (cfg.min_scale, cfg.max_scale),
        cfg.preload_short_side,
        cfg.jitter,
        cfg.hflip,
    )
    per_rank = cfg.batch_size // dinfo.world_size
    batches = StepBatchSampler(data, per_rank, cfg.seed, step, dinfo.rank, dinfo.world_size)

    def loader(dataset, batch_sampler) -> DataLoader:
        return DataLoader(
            dataset,
            batch_sampler=batch_sampler,
            num_workers=cfg.workers,
            pin_memory=device.type == "cuda",
            persistent_workers=cfg.workers > 0,
        )

    clip_iter = None
    if cfg.cycle_weight > 0:
        clips = ClipDataset(
            cfg.cycle_root,
            cfg.img_size,
            cfg.cycle_length,
            (cfg.min_scale, cfg.max_scale),
            cfg.preload_short_side,
        )
        per_rank_clips = max(1, cfg.cycle_batch // dinfo.world_size)
        clip_batches = StepBatchSampler(
            clips, per_rank_clips, cfg.seed + 1, step, dinfo.rank, dinfo.world_size
        )
        clip_iter = iter(loader(clips, clip_batches))
    end = cfg.iterations if stop_at is None else min(stop_at, cfg.iterations)
    main = dinfo.rank == 0
    out = Path(cfg.out_dir)

    def save() -> None:
        if not main:
            return
        state = {
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "scaler": scaler.state_dict(),
            "step": step,
            "config": cfg.to_dict(),
            "losses": torch.tensor(losses, dtype=torch.float64),
            "rng": rng_state(),
        }
        save_atomic(state, out / "last.pt")
        if cfg.keep_every and step % cfg.keep_every == 0:
            save_atomic(state, out / f"step_{step:06d}.pt")
        write_loss_csv(losses, out / "loss.csv")

    run_losses: list[float] = []
    bar = tqdm(total=end, initial=step, disable=not main, dynamic_ncols=True, mininterval=2.0)
    net.train()
    t0, it = time.time(), iter(loader(data, batches))
    while step < end:
        v1, v2, b1, b2 = (t.to(device, non_blocking=True) for t in next(it))
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, step)
        amp_ctx = torch.autocast(device.type, dtype=amp_dtype) if cfg.amp else nullcontext()
        clip = next(clip_iter).to(device, non_blocking=True) if clip_iter is not None else None
        with amp_ctx:
            loss, _ = model(v1, v2, b1, b2, clip)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        net.update_target(ema_momentum(step, cfg.iterations, cfg.ema_base))
        value = loss.detach()
        if dinfo.world_size > 1:
            dist.all_reduce(value)
            value /= dinfo.world_size
        value = float(value)
        losses.append(value)
        run_losses.append(value)
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{value:.4f}")
        if main and cfg.log_every and step % cfg.log_every == 0:
            recent = sum(losses[-cfg.log_every :]) / len(losses[-cfg.log_every :])
            sec = (time.time() - t0) / len(run_losses)
            bar.write(
                f"step {step}/{cfg.iterations} loss {recent:.4f} lr {_lr(cfg, step - 1):.2e} "
                f"{sec:.2f}s/it"
            )
        if cfg.save_every and step % cfg.save_every == 0 and step < end:
            save()
    save()
    bar.close()
    if dinfo.world_size > 1:
        dist.barrier()
    if own_group:
        dist.destroy_process_group()
    return run_losses
