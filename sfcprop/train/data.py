"""Two-view data for FC: random-resized crops of one image plus their boxes in that image.

Every random choice is derived from `(seed, epoch, position)`, never from global RNG state, so a
run resumed at step `s` sees exactly the batches an uninterrupted run sees, whatever the number
of DataLoader workers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset, DistributedSampler

from sfcprop.models.base import IMAGENET_MEAN, IMAGENET_STD

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def list_images(root: str | Path) -> list[Path]:
    """All .jpg/.jpeg/.png files under `root` (recursive, case-insensitive), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image_root {str(root)!r} is not a folder")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise FileNotFoundError(f"no .jpg/.jpeg/.png images under {str(root)!r}")
    return paths


def crop_box(
    rng: np.random.Generator,
    width: int,
    height: int,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """A random-resized-crop box `(x0, y0, x1, y1)` in pixels, as torchvision samples it.

    Area fraction uniform in `scale`, log-uniform aspect in `ratio`, 10 tries, then the
    largest centred crop with the aspect clamped to `ratio`.
    """
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            x0 = int(rng.integers(0, width - w + 1))
            y0 = int(rng.integers(0, height - h + 1))
            return x0, y0, x0 + w, y0 + h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    x0, y0 = (width - w) // 2, (height - h) // 2
    return x0, y0, x0 + w, y0 + h


def _load(path: Path, short_side: int) -> Image.Image:
    img = Image.open(path).convert("RGB")
    if short_side > 0 and min(img.size) != short_side:
        s = short_side / min(img.size)
        size = (max(1, round(img.width * s)), max(1, round(img.height * s)))
        img = img.resize(size, Image.BILINEAR)
    return img


def _to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB `img` as float `[3, H, W]` in [0, 1]."""
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)


def _crop(img: Image.Image, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """`box` of `img` resized to `size x size` (PIL bilinear): float `[3, S, S]` in [0, 1]."""
    return _to_tensor(img.resize((size, size), Image.BILINEAR, box=box))


def photometric(x: torch.Tensor, rng: np.random.Generator, strength: float) -> torch.Tensor:
    """SimCLR-style colour change of one view `[3, S, S]` in [0, 1], drawn from `rng`.

    With probability 0.8: brightness, contrast and saturation factors uniform in
    `[1 - strength, 1 + strength]` and a hue shift uniform in `+-strength / 4`, in random order;
    then greyscale with probability 0.2. `strength = 0` returns `x` unchanged.
    """
    if strength <= 0:
        return x
    if rng.random() < 0.8:
        ops = [
            lambda y: TF.adjust_brightness(y, rng.uniform(1 - strength, 1 + strength)),
            lambda y: TF.adjust_contrast(y, rng.uniform(1 - strength, 1 + strength)),
            lambda y: TF.adjust_saturation(y, rng.uniform(1 - strength, 1 + strength)),
            lambda y: TF.adjust_hue(y, rng.uniform(-strength / 4, strength / 4)),
        ]
        for k in rng.permutation(4):
            x = ops[k](x)
    if rng.random() < 0.2:
        x = TF.rgb_to_grayscale(x, num_output_channels=3)
    return x.clamp(0, 1)


class TwoViewDataset(Dataset):
    """Items are `(image_index, crop_seed)`; each gives two views and their normalised boxes.

    Returns `(view1, view2, box1, box2)`: views `[3, S, S]` float, ImageNet mean/std normalised;
    boxes `[4]` = `(x0, y0, x1, y1)` divided by the image width / height. With `hflip`, the
    image is mirrored (for both views) with probability 0.5 before cropping; colour jitter only
    with `jitter > 0` (`photometric`, drawn independently for each view).
    `preload_short_side > 0` decodes every image once, resized to that short side, into memory.
    """

    def __init__(
        self,
        root: str | Path,
        img_size: int,
        scale: tuple[float, float] = (0.0, 1.0),
        preload_short_side: int = 0,
        jitter: float = 0.0,
        hflip: bool = False,
    ) -> None:
        self.paths = list_images(root)
        self.img_size, self.scale, self.short_side = img_size, scale, preload_short_side
        self.jitter, self.hflip = jitter, hflip
        self.cache = (
            [_load(p, preload_short_side) for p in self.paths] if preload_short_side else None
        )
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.paths)

    def _view(
        self, img: Image.Image, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x0, y0, x1, y1 = crop_box(rng, img.width, img.height, self.scale)
        x = photometric(_crop(img, (x0, y0, x1, y1), self.img_size), rng, self.jitter)
        box = torch.tensor([x0 / img.width, y0 / img.height, x1 / img.width, y1 / img.height])
        return (x - self.mean) / self.std, box

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        index, crop_seed = item
        img = self.cache[index] if self.cache is not None else _load(self.paths[index], 0)
        rng = np.random.default_rng(crop_seed)
        if self.hflip and rng.random() < 0.5:  # drawn only with hflip: other runs keep their crops
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        v1, b1 = self._view(img, rng)
        v2, b2 = self._view(img, rng)
        return v1, v2, b1, b2


class ClipDataset(Dataset):
    """Short clips of consecutive frames for the temporal cycle term (`TrainConfig.cycle_weight`).

    `root` holds one folder of frames per video (sorted by name = time order); a clip is
    `length` consecutive frames of one folder, and every start position is an item. Items are
    `(clip_index, crop_seed)`; each gives `[length, 3, S, S]` (ImageNet-normalised), the same
    random-resized crop box applied to every frame (as CRW samples its clips), no jitter.
    """

    def __init__(
        self,
        root: str | Path,
        img_size: int,
        length: int = 3,
        scale: tuple[float, float] = (0.0, 1.0),
        preload_short_side: int = 0,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"cycle_root {str(root)!r} is not a folder")
        videos = []
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            frames = sorted(
                p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
            if len(frames) >= length:
                videos.append(frames)
        if not videos:
            raise FileNotFoundError(
                f"no folder under {str(root)!r} has {length} or more frames (one folder a video)"
            )
        self.clips = [(v, s) for v, f in enumerate(videos) for s in range(len(f) - length + 1)]
        self.videos, self.length = videos, length
        self.img_size, self.scale, self.short_side = img_size, scale, preload_short_side
        self.cache = (
            [[_load(p, preload_short_side) for p in f] for f in videos]
            if preload_short_side
            else None
        )
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        index, crop_seed = item
        v, start = self.clips[index]
        span = range(start, start + self.length)
        if self.cache is not None:
            frames = [self.cache[v][k] for k in span]
        else:
            frames = [_load(self.videos[v][k], 0) for k in span]
        rng = np.random.default_rng(crop_seed)
        box = crop_box(rng, frames[0].width, frames[0].height, self.scale)
        clip = torch.stack([_crop(img, box, self.img_size) for img in frames])
        return (clip - self.mean) / self.std


class StepBatchSampler:
    """Endless per-rank batches of `(image_index, crop_seed)`, starting at `start_step`.

    Epoch `e` is `DistributedSampler(shuffle=True, seed, drop_last=True)` at `set_epoch(e)`, cut
    into batches of `batch_size` (the per-rank batch); a leftover partial batch is dropped.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.sampler = DistributedSampler(
            dataset, world_size, rank, shuffle=True, seed=seed, drop_last=True
        )
        self.batch_size, self.seed, self.start_step = batch_size, seed, start_step
        self.rank = rank
        self.steps_per_epoch = len(self.sampler) // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{len(dataset)} images are too few for a per-rank batch of {batch_size}"
            )

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, skip = divmod(self.start_step, self.steps_per_epoch)
        while True:
            self.sampler.set_epoch(epoch)
            indices = list(self.sampler)
            seeds = np.random.SeedSequence([self.seed, epoch, self.rank]).generate_state(
                len(indices), dtype=np.uint64
            )
            for b in range(skip, self.steps_per_epoch):
                sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
                yield [(int(i), int(s)) for i, s in zip(indices[sl], seeds[sl], strict=True)]
            epoch, skip = epoch + 1, 0
