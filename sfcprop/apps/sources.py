"""What `sfcprop batch` reads: the videos of a dataset folder or a manifest, as `VideoJob`s,
and which of them a shard runs.

A dataset folder has the DAVIS / YouTube-VOS layout: `JPEGImages/<video>/` (frames) and
`Annotations/<video>/` (the masks of some frames, named like them; every file is a
keyframe), either directly or under one resolution level (`JPEGImages/480p/<video>/`);
`ImageSets/**/<set>.txt` (`image_set`) picks videos. A manifest is a CSV file with a header
or a JSON-lines file, one video per row: `frames` (a folder or a video file),
`annotations` (a mask, a folder of keyframe masks or a points file), optional `name` (the
output folder; default the frames' name) and `task` (`masks` or `keypoints`; default from
the annotations: .json / .csv / .mat points are keypoints). Relative paths are taken from
the manifest's folder.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

TASKS = ("masks", "keypoints")
KEYFRAMES = ("all", "first")
MANIFEST_SUFFIXES = (".csv", ".jsonl", ".json", ".ndjson")
COLUMNS = ("frames", "annotations", "name", "task")
POINT_SUFFIXES = (".json", ".csv", ".mat")
RESERVED = ("summary.jsonl", "batch.json")  # files of the output folder
RESOLUTION = re.compile(r"^(\d+p|Full-Resolution)$")
# where a launcher says which copy this is: (index, count, first index) variables
SHARD_ENV = (
    ("RANK", "WORLD_SIZE", None),  # torchrun, torch.distributed
    ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"),
)


@dataclass(frozen=True)
class VideoJob:
    """One video of a batch: its output folder `name`, its `frames` (a folder or a video
    file), its `annotations` (a mask file, a folder of keyframe masks or a points file),
    its `task` (`masks` or `keypoints`) and which keyframes it uses (`all` or `first`)."""

    name: str
    frames: str
    annotations: str
    task: str = "masks"
    keyframes: str = "all"


@dataclass(frozen=True)
class Shard:
    """Copy `index` of `count` (`--shard index/count`): it runs every count-th video of the
    source's sorted names, from the index-th."""

    index: int = 0
    count: int = 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def select(self, jobs: Sequence[VideoJob]) -> list[VideoJob]:
        """The jobs of this shard: `sorted(jobs by name)[index::count]`."""
        return sorted(jobs, key=lambda j: j.name)[self.index :: self.count]


def parse_shard(text: str) -> Shard:
    """`i/N` -> `Shard(i, N)`, with 0 <= i < N; a ValueError saying what is expected."""
    index, slash, count = str(text).strip().partition("/")
    if slash and index.isdigit() and count.isdigit() and int(index) < int(count):
        return Shard(int(index), int(count))
    raise ValueError(
        f"--shard expects i/N, copy i of N counted from 0 (0 <= i < N, e.g. 0/4), got {text!r}"
    )


def shard_from_env(environ: Mapping[str, str] | None = None) -> tuple[Shard, str | None]:
    """The shard a launcher's environment names (torchrun's RANK / WORLD_SIZE, a SLURM
    array's SLURM_ARRAY_TASK_ID / _COUNT, less _MIN) and the variable it came from; the
    whole source (0/1, None) when none is set."""
    env = os.environ if environ is None else environ
    for index, count, first in SHARD_ENV:
        if index in env and count in env:
            try:
                i = int(env[index]) - (int(env[first]) if first and first in env else 0)
                shard = parse_shard(f"{i}/{int(env[count])}")
            except ValueError:
                raise ValueError(
                    f"{index}={env[index]!r} and {count}={env[count]!r} name no shard "
                    "(expected 0 <= index < count); pass --shard i/N"
                ) from None
            return shard, index
    return Shard(), None


def read_source(
    source: str | os.PathLike,
    image_set: str | None = None,
    annotations: str = "Annotations",
    resolution: str | None = None,
    keyframes: str = "all",
) -> list[VideoJob]:
    """The videos of `source`, a dataset folder or a manifest (see the module); a
    ValueError / FileNotFoundError saying what was wrong and what is expected."""
    if keyframes not in KEYFRAMES:
        raise ValueError(f"keyframes must be one of {KEYFRAMES}, got {keyframes!r}")
    path = Path(source).expanduser()
    if path.is_dir():
        jobs = read_dataset(path, image_set, annotations, resolution, keyframes)
    elif path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        if image_set is not None:
            raise ValueError("--image-set picks videos of a dataset folder, not of a manifest")
        jobs = read_manifest(path, keyframes)
    elif not path.exists():
        raise FileNotFoundError(
            f"no such dataset folder or manifest: {source} (expected a folder holding "
            "JPEGImages/ and Annotations/, or a .csv / .jsonl manifest)"
        )
    else:
        raise ValueError(
            f"{source} is neither a dataset folder (JPEGImages/, Annotations/) nor a manifest "
            f"({', '.join(MANIFEST_SUFFIXES)})"
        )
    if not jobs:
        raise ValueError(f"{source} names no videos")
    return jobs


def read_dataset(
    root: Path,
    image_set: str | None = None,
    annotations: str = "Annotations",
    resolution: str | None = None,
    keyframes: str = "all",
) -> list[VideoJob]:
    """The videos of a DAVIS / YouTube-VOS folder: `JPEGImages/[<resolution>/]<video>/`
    with `<annotations>/[<resolution>/]<video>/`."""
    images = root / "JPEGImages"
    if not images.is_dir():
        raise FileNotFoundError(
            f"{root} has no JPEGImages/ folder: a dataset folder holds JPEGImages/<video>/ "
            "(frames) and Annotations/<video>/ (keyframe masks), as DAVIS and YouTube-VOS do"
        )
    masks = root / annotations
    if not masks.is_dir():
        raise FileNotFoundError(
            f"{root} has no {annotations}/ folder (the keyframe masks, "
            f"{annotations}/<video>/00000.png ...); --annotations names another"
        )
    level = _resolution(images, resolution)
    frames_root = images / level if level else images
    masks_root = masks / level if level and (masks / level).is_dir() else masks
    if image_set is not None:
        names = _image_set(root, image_set, level)
    else:
        names = sorted(p.name for p in frames_root.iterdir() if _visible_dir(p))
    for n in names:
        check_name(n, str(frames_root))
    return [
        VideoJob(n, str(frames_root / n), str(masks_root / n), "masks", keyframes) for n in names
    ]


def _visible_dir(p: Path) -> bool:
    return p.is_dir() and not p.name.startswith(".")


def _resolution(images: Path, given: str | None) -> str | None:
    """The resolution level under JPEGImages (DAVIS: 480p, Full-Resolution), or None."""
    if given is not None:
        if not (images / given).is_dir():
            raise FileNotFoundError(f"no such folder: {images / given} (--resolution {given})")
        return given
    levels = sorted(
        p.name for p in images.iterdir() if _visible_dir(p) and RESOLUTION.match(p.name)
    )
    if len(levels) > 1:
        raise ValueError(
            f"{images} holds several resolutions ({', '.join(levels)}); pick one with --resolution"
        )
    return levels[0] if levels else None


def _image_set(root: Path, image_set: str, level: str | None) -> list[str]:
    """The video names of `ImageSets/[<level>|*/]<image_set>.txt`, or of a .txt file."""
    given = Path(image_set).expanduser()
    if given.suffix == ".txt" and given.is_file():
        found = [given]
    else:
        sets = root / "ImageSets"
        found = [sets / level / f"{image_set}.txt"] if level else []
        found += [sets / f"{image_set}.txt", *sorted(sets.glob(f"*/{image_set}.txt"))]
        found = [p for p in found if p.is_file()]
    if not found:
        raise FileNotFoundError(
            f"no image set {image_set!r}: expected {root}/ImageSets/[<folder>/]{image_set}.txt "
            "(one video name a line) or a .txt file"
        )
    lines = found[0].read_text().split()
    return list(dict.fromkeys(lines))  # once each, in the file's order


def read_manifest(path: Path, keyframes: str = "all") -> list[VideoJob]:
    """The rows of a CSV (with a header) or JSON-lines manifest as jobs."""
    base = path.resolve().parent
    rows = _json_lines(path) if path.suffix.lower() != ".csv" else _csv_rows(path)
    jobs: dict[str, VideoJob] = {}
    for where, row in rows:
        job = _job(row, base, f"{path.name} {where}", keyframes)
        if job.name in jobs:
            raise ValueError(
                f"{path.name} {where}: a second video named {job.name!r}; give each row its "
                "own name (the output folder)"
            )
        jobs[job.name] = job
    return list(jobs.values())


def _csv_rows(path: Path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        _check_columns(reader.fieldnames or [], path.name)
        for n, row in enumerate(reader, start=2):
            if None in row:
                raise ValueError(f"{path.name} line {n}: more cells than the header has columns")
            yield f"line {n}", row


def _json_lines(path: Path):
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"{path.name} line {n}: not JSON ({e.msg}); a JSON-lines manifest holds "
                    "one object a line"
                ) from None
            if not isinstance(row, dict):
                raise ValueError(
                    f"{path.name} line {n}: expected an object such as "
                    '{"frames": "clip.mp4", "annotations": "first.png"}'
                )
            _check_columns(list(row), f"{path.name} line {n}")
            yield f"line {n}", row


def _check_columns(columns: Sequence[str], where: str) -> None:
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown or "frames" not in columns:
        what = f"unknown column(s) {unknown}" if unknown else "no frames column"
        raise ValueError(
            f"{where}: {what}; a manifest has the columns frames, annotations and optionally "
            "name, task (masks or keypoints)"
        )


def _job(row: Mapping, base: Path, where: str, keyframes: str) -> VideoJob:
    frames, annotations = _cell(row, "frames", where), _cell(row, "annotations", where)
    for column, value in (("frames", frames), ("annotations", annotations)):
        if not value:
            raise ValueError(
                f"{where}: no {column} (each row needs frames, a folder or a video file, and "
                "annotations, a mask, a folder of keyframe masks or a points file)"
            )
    frames_path, annotations_path = _resolve(frames, base), _resolve(annotations, base)
    name = _cell(row, "name", where) or Path(frames).stem
    check_name(name, where)
    task = _cell(row, "task", where) or (
        "keypoints" if Path(annotations).suffix.lower() in POINT_SUFFIXES else "masks"
    )
    if task not in TASKS:
        raise ValueError(f"{where}: task must be one of {', '.join(TASKS)}, got {task!r}")
    return VideoJob(name, frames_path, annotations_path, task, keyframes)


def _cell(row: Mapping, column: str, where: str) -> str:
    value = row.get(column)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where}: {column} must be a string (a path or a name), got {value!r}")
    return (value or "").strip()


def _resolve(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def check_name(name: str, where: str = "") -> None:
    """A video's name is its output folder: one path component, not hidden."""
    if name in ("", ".", "..", *RESERVED) or "/" in name or "\\" in name or name[0] == ".":
        prefix = f"{where}: " if where else ""
        raise ValueError(
            f"{prefix}the name {name!r} cannot be an output folder (one folder name, not "
            f"starting with a dot, not one of {', '.join(RESERVED)})"
        )
