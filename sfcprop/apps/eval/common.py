"""What every benchmark of `sfcprop eval` shares: this process's rank and device, the
resumable output folder (its settings file, a sequence staged and moved into place), the
CSV files and tables, and the model (the networks, the preset, the overrides)."""

from __future__ import annotations

import argparse
import csv
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sfcprop import errors
from sfcprop.bench import datasets
from sfcprop.config import Config
from sfcprop.io import runs

CONFIG_FILE = "sfcprop-eval.json"


# --------------------------------------------------------------------------- distribution


@dataclass
class Dist:
    """This process's place among torchrun's ranks (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1

    def share(self, names: Sequence[str]) -> list[str]:
        return list(names[self.rank :: self.world])

    def gather(self, obj: Any) -> list[Any]:
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self, together: bool = True) -> None:
        """End the process group; `together`: wait for every rank first (a rank that tears
        gloo down while a peer is still sending can abort), skipped after an error."""
        if self.world > 1:
            import torch.distributed as dist

            if together:
                dist.barrier()
            dist.destroy_process_group()


def _setup(device: str | None) -> tuple[Dist, torch.device]:
    """This process's rank and device (the CPU unless `device` names another)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = device is not None and device.startswith("cuda")
    if world == 1:
        return Dist(), torch.device(device or "cpu")
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size()), torch.device(
        f"cuda:{local}" if cuda else "cpu"
    )


# --------------------------------------------------------------------------- output folder


def bar(iterable: Iterable, quiet: bool, desc: str, unit: str) -> Iterable:
    """`iterable` with a progress bar; a Ctrl-C that a library dropped stops at the next item."""
    from sfcprop.io.progress import bar as progress_bar

    errors.check_interrupted()  # one during start-up: before a bar shows
    for item in progress_bar(iterable, enabled=not quiet, desc=desc, unit=unit):
        errors.check_interrupted()
        yield item


def write_atomically(final: Path, write: Callable[[Path], None]) -> None:
    """Run `write(tmp_dir)`, then move the folder to `final` (replacing a leftover); the
    staging folders of killed runs are removed (see `sfcprop.io.runs`)."""
    with runs.staging(final) as tmp:
        write(tmp)


def frame_count(seq, max_frames: int | None) -> int:
    n = len(seq.frames)
    return n if max_frames is None else max(1, min(n, max_frames))


def complete(folder: Path, files: Iterable[str]) -> bool:
    return folder.is_dir() and all((folder / f).is_file() for f in files)


def check_names(reader: datasets.Reader, listed: Path | None, jhmdb: bool = False) -> None:
    """Refuse a sequence name that is not a plain folder name (JHMDB's: `<action>/<clip>`,
    two of them): the results of sequence `name` are `<out>/<name>`, an absolute path or a
    `..` would write (or score) elsewhere. The error names the split list `listed` and its
    line."""
    expected = "<action>/<clip>, two plain folder names" if jhmdb else "a plain folder name, no '/'"
    for name in reader.names:
        parts = name.split("/")
        if len(parts) == (2 if jhmdb else 1) and all(map(_plain, parts)):
            continue
        raise ValueError(
            f"{_line_of(listed, name)}: {name!r} is not a sequence name (expected {expected}; "
            "not absolute, no '\\', not '.' or '..')"
        )


def _plain(part: str) -> bool:
    return part not in ("", ".", "..") and not any(c in part for c in "/\\\0")


def _line_of(listed: Path | None, name: str) -> str:
    """`split list <file> line <n>`: the first listed line that gives `name` (the file alone
    where none is found)."""
    if listed is None:
        return "the sequences found"
    try:
        lines = listed.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if (name and name in text) or (not name and not text.split()[0].strip("/")):
            return f"split list {listed} line {n}"
    return f"split list {listed}"


def split_file(reader: datasets.Reader, split: str | None) -> Path | None:
    """The split list file `reader` read its names from (as `bench.datasets` finds it)."""
    if isinstance(reader, datasets.Davis2017):
        return reader.root / "ImageSets" / "2017" / f"{reader.split}.txt"
    if isinstance(reader, datasets.Davis2016):
        return reader.root / "ImageSets" / reader.resolution / f"{reader.split}.txt"
    if isinstance(reader, datasets.JHMDB):
        return None if split is None else Path(split)
    given = Path(split or "val")
    return given if given.is_file() else reader.root / "lists" / f"{split or 'val'}_videos.txt"


def check_config(out: Path, config: dict) -> None:
    """Refuse to resume into a folder written with other settings."""
    path = out / CONFIG_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        if old != config:
            diff = {k: (old.get(k), v) for k, v in config.items() if old.get(k) != v}
            raise ValueError(
                f"{out} holds results of other settings {diff} (was, now); use another --out"
            )


def record_config(out: Path, config: dict, dist: Dist) -> None:
    """Write the settings of a run that is about to start work (rank 0)."""
    if dist.rank == 0 and not (out / CONFIG_FILE).is_file():
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n")
    dist.barrier()


def run_settings(args: argparse.Namespace) -> dict:
    """The settings a resumed run must share, as `CONFIG_FILE` holds them."""
    keys = ("task", "backbone", "semantic", "preset", "bn_warmup", "topk", "context", "radius")
    keys += ("temperature", "lam", "year", "first_mask", "size", "short_side")
    config = {k: getattr(args, k) for k in keys}
    config["size"] = None if args.size is None else list(args.size)  # as JSON reads it back
    if args.resize is not None:  # (folders written before this option have none)
        config["resize"] = args.resize
    if getattr(args, "vip_label_quirk", False):
        config["vip_label_quirk"] = True
    if args.precision not in (None, "float32"):  # (folders written before this option are float32)
        config["precision"] = args.precision
    return config


# --------------------------------------------------------------------------- tables


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    def fmt(v: Any) -> Any:
        return f"{v:.6f}" if isinstance(v, (float, np.floating)) else v

    errors.check_interrupted()  # no tables of a run that Ctrl-C ended
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows([fmt(v) for v in row] for row in rows)


def print_table(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    rows = [
        [f"{v:.3f}" if isinstance(v, (float, np.floating)) else str(v) for v in r] for r in rows
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"{'-' * 12} {title} {'-' * 12}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for r in rows:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))
    print()


# --------------------------------------------------------------------------- the model


@dataclass
class _Model:
    """What propagation needs: the networks, the preset and the overrides."""

    backbone: Any
    semantic: Any
    preset: str
    params: dict
    device: torch.device
    quiet: bool


def _model(args: argparse.Namespace, device: torch.device) -> _Model:
    from sfcprop.models import backbone as load

    def get(name: str | None):
        return None if name is None else load(name, sfc_bn_warmup=args.bn_warmup, device=device)

    quiet = args.quiet or int(os.environ.get("RANK", "0")) != 0
    preset, params = _settings(args)
    return _Model(get(args.backbone), get(args.semantic), preset, params, device, quiet)


def _settings(args: argparse.Namespace) -> tuple[str, dict]:
    """The preset's name and the `Config` overrides the flags give."""
    preset = args.preset or (args.task if args.semantic is None else f"{args.task}-sfc")
    names = ("topk", "context", "radius", "temperature", "lam", "resize", "size", "short_side")
    params = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    params["precision"] = args.precision or "float32"
    return preset, params


def protocol(model: _Model) -> Config:
    """The run's `Config`: the model's preset and overrides (jhmdb / vip presets: square
    frames of 320 / 560 unless --size or --short-side say otherwise), on its device; frames
    resized as CRW does (float, no antialiasing) unless --resize says otherwise."""
    params = {"resize": "float", **model.params}
    return Config.preset(model.preset, device=str(model.device), **params)
