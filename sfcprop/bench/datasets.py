"""Readers for the evaluation datasets in the layouts users download.

Each reader checks its root and split list when built, knows its sequence `names`, and
loads one sequence at a time (`reader[name]`, or iterate): frame paths, the first-frame
annotation and the ground truth of every frame. Nothing is read from the images until a
mask or frame is asked for.

- `Davis2017`: `JPEGImages/480p/<seq>/*.jpg`, `Annotations/480p/<seq>/*.png` (palette,
  ids 1..N), `ImageSets/2017/<split>.txt`.
- `Davis2016`: `JPEGImages/480p`, binary 0/255 `Annotations/480p`, `ImageSets/480p/<split>.txt`
  and, optionally, `Annotations2017first/<seq>/00000.png` (the DAVIS-2017 multi-object
  first frame). The ground truth is the union of the objects on every frame, so one object
  is scored; the default propagates the binary first mask (`first="binary"`), the other
  choice propagates the multi-object mask (`first="multi"`) whose result is scored as the
  union of its objects.
- `JHMDB`: `Rename_Images/<action>/<clip>/*.png`, `joint_positions/<action>/<clip>/
  joint_positions.mat` (`pos_img` 2 x 15 x T, 1-based: 1 is subtracted).
- `VIP`: `Images/<video>/*.jpg`, `Annotations/Category_ids/<video>/*.png` (part classes,
  0 = background), `lists/<split>_videos.txt`.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Literal, TypeVar

import numpy as np

from sfcprop.io.matfile import read_mat

DATA_ENV = "SFCPROP_DATA"
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _list_files(folder: Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"missing {what} folder: {folder}")
    files = [p for p in folder.iterdir() if p.suffix.lower() in suffixes and p.is_file()]
    if not files:
        raise FileNotFoundError(f"no {what} ({', '.join(suffixes)}) in {folder}")
    return sorted(files, key=lambda p: _natural_key(p.name))


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"missing {what}: {path}")
    return path


def _read_list(path: Path, what: str) -> list[str]:
    """Non-empty, non-comment lines of a split file."""
    _require(path, what)
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def read_ids(path: str | os.PathLike, binary: bool = False) -> np.ndarray:
    """A mask PNG as ids uint8 `[H, W]`: palette indices or grey values, as the official
    DAVIS tool reads them (`np.array(Image.open(path))`); `binary`: non-zero -> 1."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L", "1"):
                raise ValueError(
                    f"{path} is a {img.mode} image; a mask must be a palette (P) or greyscale "
                    "(L) PNG of ids"
                )
            ids = np.array(img.convert("L") if img.mode == "1" else img, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"missing mask file: {path}") from None
    return (ids > 0).astype(np.uint8) if binary else ids


def read_palette(path: str | os.PathLike) -> list[int] | None:
    """The palette of a PNG (768 ints), or None when it has none."""
    from PIL import Image

    with Image.open(path) as img:
        return img.getpalette() if img.mode == "P" else None


@dataclass(frozen=True)
class MaskSequence:
    """One video with object or part masks.

    frames: image paths in order; first_mask: the annotation propagated from frame 0;
    annotations: the ground-truth PNG of every frame, None where a frame has none (its
    frame 0 entry is the ground truth that scoring uses); binary: the ground truth is 0/255
    (any non-zero pixel is the one object).
    """

    name: str
    frames: tuple[Path, ...]
    first_mask: Path
    annotations: tuple[Path | None, ...]
    binary: bool = False

    @property
    def frame_names(self) -> list[str]:
        """Frame file stems (`00000`): the names of the result PNGs."""
        return [p.stem for p in self.frames]

    def read_first(self) -> tuple[np.ndarray, list[int] | None]:
        """(ids uint8 `[H, W]`, palette or None) of the mask to propagate."""
        is_gt = self.first_mask == self.annotations[0]
        ids = read_ids(self.first_mask, binary=self.binary and is_gt)
        return ids, read_palette(self.first_mask)

    def read_annotation(self, t: int) -> np.ndarray | None:
        """Ground-truth ids uint8 `[H, W]` of frame t (binary: 0/1), None if not annotated."""
        path = self.annotations[t]
        return None if path is None else read_ids(path, binary=self.binary)


@dataclass(frozen=True)
class KeypointSequence:
    """One JHMDB clip: frames and keypoints float64 `[T, K, 2]` ((x, y) 0-based pixels)."""

    name: str
    frames: tuple[Path, ...]
    keypoints: np.ndarray

    @property
    def first_keypoints(self) -> np.ndarray:
        """Frame 0's joints `[K, 2]`: the annotation that is propagated."""
        return self.keypoints[0]


S = TypeVar("S")


class Reader(Generic[S]):
    """A dataset: `names`, `len()`, `reader[name]` and iteration (one sequence at a time)."""

    root: Path
    names: list[str]

    def load(self, name: str) -> S:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[S]:
        return (self.load(n) for n in self.names)

    def __getitem__(self, name: str) -> S:
        if name not in self.names:
            raise KeyError(f"no sequence {name!r} in {type(self).__name__} at {self.root}")
        return self.load(name)

    def _select(self, sequences: Sequence[str] | None) -> None:
        if sequences is None:
            return
        unknown = [s for s in sequences if s not in self.names]
        if unknown:
            raise KeyError(
                f"unknown sequence(s) {', '.join(unknown)} in {type(self).__name__} at {self.root}"
            )
        self.names = [n for n in self.names if n in set(sequences)]


def _root(root: str | os.PathLike, what: str) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"missing {what} root folder: {path}")
    return path


def _mask_sequence(
    name: str, image_dir: Path, ann_dir: Path, first: Path | None = None, binary: bool = False
) -> MaskSequence:
    frames = _list_files(image_dir, FRAME_SUFFIXES, f"frames of {name}")
    _require(ann_dir, f"annotation folder of {name}")
    anns = tuple((ann_dir / f"{p.stem}.png") for p in frames)
    anns = tuple(a if a.is_file() else None for a in anns)
    if anns[0] is None:
        raise FileNotFoundError(
            f"missing first-frame annotation of {name}: {ann_dir / frames[0].stem}.png"
        )
    return MaskSequence(name, tuple(frames), first or anns[0], anns, binary)


class Davis2017(Reader[MaskSequence]):
    """DAVIS-2017 semi-supervised: multi-object palette masks (ids 1..N)."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "val",
        resolution: str = "480p",
        sequences: Sequence[str] | None = None,
    ) -> None:
        self.root, self.split, self.resolution = _root(root, "DAVIS-2017"), split, resolution
        self.names = _read_list(self.root / "ImageSets" / "2017" / f"{split}.txt", "split list")
        _require(self.root / "JPEGImages" / resolution, "frames folder")
        _require(self.root / "Annotations" / resolution, "annotations folder")
        self._select(sequences)

    def load(self, name: str) -> MaskSequence:
        return _mask_sequence(
            name,
            self.root / "JPEGImages" / self.resolution / name,
            self.root / "Annotations" / self.resolution / name,
        )


class Davis2016(Reader[MaskSequence]):
    """DAVIS-2016: one binary (0/255) mask per frame, the union of the objects.

    first="binary" propagates the binary first mask (one object, the DAVIS-2016
    protocol); first="multi" propagates `Annotations2017first/<seq>/00000.png`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "val",
        resolution: str = "480p",
        first: Literal["binary", "multi"] = "binary",
        sequences: Sequence[str] | None = None,
    ) -> None:
        if first not in ("binary", "multi"):
            raise ValueError(f"first must be 'binary' or 'multi', got {first!r}")
        self.root, self.split, self.resolution = _root(root, "DAVIS-2016"), split, resolution
        self.first = first
        self.names = _read_list(self.root / "ImageSets" / resolution / f"{split}.txt", "split list")
        _require(self.root / "JPEGImages" / resolution, "frames folder")
        _require(self.root / "Annotations" / resolution, "annotations folder")
        self._select(sequences)

    def load(self, name: str) -> MaskSequence:
        first = None
        if self.first == "multi":
            first = _require(
                self.root / "Annotations2017first" / name / "00000.png",
                f"DAVIS-2017 first-frame mask of {name}",
            )
        return _mask_sequence(
            name,
            self.root / "JPEGImages" / self.resolution / name,
            self.root / "Annotations" / self.resolution / name,
            first=first,
            binary=True,
        )


def davis(
    root: str | os.PathLike,
    split: str = "val",
    year: Literal["auto", "2016", "2017"] = "auto",
    first: Literal["binary", "multi"] = "binary",
    sequences: Sequence[str] | None = None,
) -> Davis2016 | Davis2017:
    """A DAVIS reader; `year="auto"` picks 2017 when `ImageSets/2017` exists, else 2016."""
    base = _root(root, "DAVIS")
    if year == "auto":
        year = "2017" if (base / "ImageSets" / "2017").is_dir() else "2016"
        if year == "2016" and not (base / "ImageSets" / "480p").is_dir():
            raise FileNotFoundError(
                f"{base} is not a DAVIS folder: neither ImageSets/2017 nor ImageSets/480p exists"
            )
    if year == "2017":
        return Davis2017(base, split, sequences=sequences)
    if year == "2016":
        return Davis2016(base, split, first=first, sequences=sequences)
    raise ValueError(f"year must be 'auto', '2016' or '2017', got {year!r}")


# --------------------------------------------------------------------------- JHMDB


class JHMDB(Reader[KeypointSequence]):
    """JHMDB clips (names `<action>/<clip>`) with their 15 joints per frame.

    split: a list file, one clip a line, either `<action>/<clip>` or CRW's
    `<frames folder> <joint_positions.mat>` (relative paths are taken from `root`); None
    takes every clip under `Rename_Images` that has a `joint_positions.mat`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | os.PathLike | None = None,
        sequences: Sequence[str] | None = None,
    ) -> None:
        self.root = _root(root, "JHMDB")
        self._paths: dict[str, tuple[Path, Path]] = {}
        if split is None:
            images = _require(self.root / "Rename_Images", "frames folder")
            for clip in sorted(p for p in images.glob("*/*") if p.is_dir()):
                name = f"{clip.parent.name}/{clip.name}"
                mat = self.root / "joint_positions" / name / "joint_positions.mat"
                if mat.is_file():
                    self._paths[name] = (clip, mat)
            if not self._paths:
                raise FileNotFoundError(
                    "no clip with a joint_positions/<action>/<clip>/joint_positions.mat "
                    f"in {self.root}"
                )
        else:
            for line in _read_list(Path(split), "JHMDB split list"):
                name, paths = self._parse(line)
                self._paths[name] = paths
        self.names = list(self._paths)
        self._select(sequences)

    def _parse(self, line: str) -> tuple[str, tuple[Path, Path]]:
        tokens = line.split()
        if len(tokens) >= 2 and tokens[1].endswith(".mat"):
            frames, mat = (self.root / t for t in tokens[:2])  # absolute paths stay absolute
            return f"{frames.parent.name}/{frames.name}", (frames, mat)
        name = tokens[0].strip("/")
        if name.count("/") != 1:
            raise ValueError(
                f"cannot read JHMDB split line {line!r}: expected '<action>/<clip>' or "
                "'<frames folder> <joint_positions.mat>'"
            )
        return name, (
            self.root / "Rename_Images" / name,
            self.root / "joint_positions" / name / "joint_positions.mat",
        )

    def load(self, name: str) -> KeypointSequence:
        frames_dir, mat = self._paths[name]
        frames = _list_files(frames_dir, (".png", ".jpg"), f"frames of {name}")
        arrays = read_mat(_require(mat, f"joint positions of {name}"))
        if "pos_img" not in arrays:
            raise ValueError(f"{mat} holds no numeric 'pos_img' (has: {', '.join(arrays)})")
        pos = np.asarray(arrays["pos_img"], dtype=np.float64)
        if pos.ndim != 3 or pos.shape[0] != 2:
            raise ValueError(f"'pos_img' of {mat} must be 2 x K x T, got {pos.shape}")
        points = pos.transpose(2, 1, 0) - 1.0  # [T, K, 2], 0-based
        n = min(len(frames), len(points))
        if len(frames) != len(points):
            warnings.warn(
                f"{name}: {len(frames)} frames but {len(points)} annotated; using the first {n}",
                stacklevel=2,
            )
        return KeypointSequence(name, tuple(frames[:n]), points[:n])


# --------------------------------------------------------------------------- VIP


class VIP(Reader[MaskSequence]):
    """VIP (VIP_Fine) human part parsing: category-id PNGs (0 = background, 1..19 parts).

    split: `"val"` reads `lists/val_videos.txt` (a line may be a path: its last part is the
    video), or a path to a list file.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | os.PathLike = "val",
        sequences: Sequence[str] | None = None,
    ) -> None:
        self.root = _root(root, "VIP")
        listed = Path(split)
        if not listed.is_file():
            listed = self.root / "lists" / f"{split}_videos.txt"
        self.names = [
            ln.split()[0].rstrip("/").split("/")[-1] for ln in _read_list(listed, "split list")
        ]
        _require(self.root / "Images", "frames folder")
        _require(self.root / "Annotations" / "Category_ids", "annotations folder")
        self._select(sequences)

    def load(self, name: str) -> MaskSequence:
        return _mask_sequence(
            name, self.root / "Images" / name, self.root / "Annotations" / "Category_ids" / name
        )


def data_root(repo_root: str | os.PathLike | None = None) -> Path | None:
    """The shared test/benchmark data folder: `$SFCPROP_DATA`, else `<repo>/../shared/data`;
    None when neither exists."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env) if Path(env).is_dir() else None
    base = Path(repo_root) if repo_root else Path(__file__).resolve().parents[2]
    path = base.parent / "shared" / "data"
    return path if path.is_dir() else None
