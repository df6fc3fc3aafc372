"""`sfcprop export`: results already on disk as DAVIS, COCO, YouTube-VIS or MOTS files.

A *video results folder* is what `sfcprop propagate --out V` writes: `V/<frame>.png`
(palette masks, one per frame), `V/confidence.csv` (frame,name,object,confidence) and
`V/flags.json`; or what `sfcprop track --out V` writes (`V/tracks.json`). A *results
root* is a folder of video results folders (other files, such as `summary.jsonl`, and
folders holding no results are ignored). The formats and the layout of `--out` are in
docs/exports.md; the structures are built by `sfcprop.io.exports`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from sfcprop.io.categories import Categories, read_categories
from sfcprop.io.exports import FORMATS

EPILOG = """examples:
  sfcprop export results/ --format coco --format ytvis --out exports/
  sfcprop export results/bmx-trees --format mots --out mots-out/
  sfcprop export results/ --format ytvis --categories meta.json --out exports/

RESULTS: a folder written by `sfcprop propagate --out` (or `sfcprop track --out`), or a
folder of them (one per video). Writes <out>/davis/<video>/<frame>.png,
<out>/coco/instances.json (keypoints: <out>/coco/keypoints.json), <out>/ytvis/results.json
and <out>/ytvis/instances.json, <out>/mots/<video>.txt. Every object is of one category,
{"id": 1, "name": "object"}, unless --categories names them (see docs/exports.md).
COCO, YouTube-VIS and MOTS need pycocotools: pip install "sfcprop[coco]".
Exit codes: 0 ok, 1 bad input, 2 usage."""

MASKS, TRACKS = "masks", "tracks"
CONFIDENCE_HEADER = ["frame", "name", "object", "confidence"]


def main(argv: list[str]) -> int:
    """Entry point of `sfcprop export` (run under `sfcprop.errors`' policy by the CLI)."""
    p = argparse.ArgumentParser(
        prog="sfcprop export",
        description="Write propagation or tracking results as DAVIS, COCO, YouTube-VIS or "
        "MOTS files.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("results", metavar="RESULTS", help="a video results folder or a folder of them")
    p.add_argument(
        "--format",
        dest="formats",
        action="append",
        required=True,
        choices=FORMATS,
        help="a format to write (repeat for several)",
    )
    p.add_argument("--out", required=True, help="output folder (not inside RESULTS)")
    p.add_argument(
        "--categories",
        metavar="JSON",
        help="each object's category (default: one category, 'object'; see docs/exports.md)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    args = p.parse_args(argv)
    written = export_results(
        Path(args.results),
        args.formats,
        Path(args.out),
        categories=args.categories,
        force=args.force,
        progress=False if args.quiet else None,
    )
    if not args.quiet:
        for path in written:
            print(f"wrote {path}")
    return 0


def export_results(
    root: Path,
    formats: Sequence[str],
    out: Path,
    *,
    categories: Categories | Mapping | str | os.PathLike | None = None,
    force: bool = False,
    progress: bool | None = False,
) -> list[Path]:
    """Export the results under `root` (a video results folder, or a folder of them) in
    each of `formats` (`sfcprop.io.exports.FORMATS`) into the folder `out`; returns the
    files and folders written (`out/davis`, `out/coco/instances.json`, ...).

    `out` must not be, hold or lie inside `root`; an existing non-empty `out` is replaced
    only with `force`. Everything is written into a staging folder beside `out` and moved
    into place when complete. categories: a `Categories`, a mapping or a JSON file
    (`Categories.from_json`); default: one category `{"id": 1, "name": "object"}`.
    progress: a bar over the videos (None: when stderr is a terminal)."""
    from sfcprop.io import runs

    root = Path(root)
    runs.refuse_overlap(out, [root], "--out")
    videos = find_videos(root)
    return export_videos(
        videos, formats, out, categories=categories, force=force, progress=progress
    )


def export_videos(
    videos: Sequence[Path],
    formats: Sequence[str],
    out: Path,
    *,
    categories: Categories | Mapping | str | os.PathLike | None = None,
    force: bool = False,
    progress: bool | None = False,
) -> list[Path]:
    """`export_results` of a list of video results folders (each named by its folder);
    `out` must not be, hold or lie inside one of them (it may lie beside them)."""
    from sfcprop.io import runs

    formats = _check_formats(formats)
    table = _categories(categories)
    if not videos:
        raise ValueError("no video results to export")
    names = [_name(v) for v in videos]
    if len(set(names)) != len(names):
        raise ValueError(f"two video results folders have one name: {sorted(names)}")
    kinds = [_kind(v) for v in videos]
    for v, kind in zip(videos, kinds, strict=True):
        if kind is None:
            raise ValueError(f"{v} holds no results ({_EXPECTED})")
        if kind == TRACKS and set(formats) - {"coco"}:
            raise ValueError(
                f"{v} holds keypoint tracks (tracks.json): they export as --format coco only"
            )
    runs.refuse_overlap(out, videos, "--out")
    with runs.locked(out) as final:
        if final.exists() and not final.is_dir():
            raise ValueError(f"--out {out} exists and is not a folder")
        if final.exists() and any(final.iterdir()) and not force:
            raise ValueError(f"--out {out} exists and is not empty; pass --force to replace it")
        with runs.staging(final) as tmp:
            listed = list(zip(names, videos, kinds, strict=True))
            written = _write(tmp, listed, formats, table, progress)
    return [final / w for w in written]


_EXPECTED = (
    "expected <frame>.png masks with confidence.csv, as `sfcprop propagate --out` writes "
    "them, or tracks.json from `sfcprop track --out`"
)


def find_videos(root: Path) -> list[Path]:
    """The video results folders of `root`: `[root]` when it is one, else its subfolders
    that are (not hidden; in natural order)."""
    from sfcprop.io import natural_key

    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"no such results folder: {root}")
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder of results ({_EXPECTED})")
    if _kind(root) is not None:
        return [root]
    found = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and _kind(p)]
    if not found:
        raise ValueError(
            f"{root} holds no results: {_EXPECTED}, or a folder of such folders (one per video)"
        )
    return sorted(found, key=lambda p: natural_key(p.name))


def _kind(folder: Path) -> str | None:
    if (folder / "tracks.json").is_file():
        return TRACKS
    if (folder / "confidence.csv").is_file() or any(folder.glob("*.png")):
        return MASKS
    return None


def _name(folder: Path) -> str:
    return Path(folder).resolve().name


def _check_formats(formats: Sequence[str]) -> list[str]:
    if isinstance(formats, str):
        formats = [formats]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown export format {unknown or formats}: expected {list(FORMATS)}")
    return list(dict.fromkeys(formats))


def _categories(given) -> Categories:
    if given is None:
        return Categories()
    if isinstance(given, Categories):
        return given
    if isinstance(given, Mapping):
        return Categories.from_json(given)
    return read_categories(given)


def _write(tmp: Path, videos: list[tuple[str, Path, str]], formats, table, progress) -> list[Path]:
    """Write every format into `tmp`; the paths written, relative to it."""
    from sfcprop import errors
    from sfcprop.io import exports
    from sfcprop.io.progress import bar

    encoded, tracked = [], []
    rle = bool(set(formats) & {"coco", "ytvis", "mots"})
    if rle:
        exports.mask_api()  # the ImportError before any work
    for name, folder, kind in bar(videos, progress, desc="export", unit="video"):
        errors.check_interrupted()
        if kind == TRACKS:
            tracked.append(_read_tracks(name, folder))
            continue
        frames, objects, confidence = _read_confidence(folder)
        davis = tmp / "davis" / name if "davis" in formats else None
        masks = _masks(folder, frames, davis)
        if not rle:
            for _ in masks:
                pass
            continue
        video = exports.encode_video(name, frames, masks, objects, confidence)
        encoded.append(video)
        if "mots" in formats:
            _text(tmp / "mots" / f"{name}.txt", exports.mots_text(video, table))
    written = [Path(f) for f in ("davis", "mots") if f in formats and (tmp / f).exists()]
    if "coco" in formats and encoded:
        written.append(_json(tmp, "coco/instances.json", exports.coco_instances(encoded, table)))
    if "coco" in formats and tracked:
        written.append(_json(tmp, "coco/keypoints.json", exports.coco_keypoints(tracked)))
    if "ytvis" in formats:
        written.append(_json(tmp, "ytvis/results.json", exports.ytvis_results(encoded, table)))
        written.append(_json(tmp, "ytvis/instances.json", exports.ytvis_instances(encoded, table)))
    return written


def _json(tmp: Path, relative: str, data) -> Path:
    _text(tmp / relative, json.dumps(data, separators=(",", ":")) + "\n")
    return Path(relative)


def _text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _read_confidence(folder: Path) -> tuple[list[str], list[int] | None, np.ndarray | None]:
    """The frame names in order, the objects and the confidence `[T, K]` of a video
    results folder: from `confidence.csv`, else its PNGs in natural order (no objects or
    confidence known)."""
    from sfcprop.io import list_files

    path = folder / "confidence.csv"
    if not path.is_file():
        return [p.stem for p in list_files(folder, (".png",))], None, None
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != CONFIDENCE_HEADER:
        raise ValueError(f"{path}: expected the header {','.join(CONFIDENCE_HEADER)}")
    names: dict[int, str] = {}
    values: dict[tuple[int, int], float] = {}
    for line, row in enumerate(rows[1:], start=2):
        try:
            t, name, obj, c = int(row[0]), row[1], int(row[2]), float(row[3])
        except (ValueError, IndexError):
            raise ValueError(
                f"{path}, line {line}: expected frame,name,object,confidence, got {row}"
            ) from None
        if names.setdefault(t, name) != name:
            raise ValueError(f"{path}, line {line}: frame {t} is named {names[t]} and {name}")
        values[t, obj] = c
    if not names:
        raise ValueError(f"{path} lists no frames")
    frames = [names[t] for t in sorted(names)]
    extra = sorted({p.stem for p in list_files(folder, (".png",))} - set(frames))
    if extra:
        raise ValueError(f"{folder / extra[0]}.png is not a frame of {path} (frames named there)")
    objects = sorted({o for _, o in values})
    confidence = np.array([[values.get((t, o), np.nan) for o in objects] for t in sorted(names)])
    if np.isnan(confidence).any():
        raise ValueError(f"{path}: some frame lacks the confidence of some object")
    return frames, objects, confidence


def _masks(folder: Path, frames: list[str], davis: Path | None) -> Iterator[np.ndarray]:
    """The ids `[H, W]` of each frame's `<frame>.png` (palette indices or grey values, as
    DAVIS' tools read them); with `davis`, each is also written there as a palette PNG
    (palette PNGs copied as they are)."""
    from PIL import Image

    from sfcprop.io import DAVIS_PALETTE, write_mask

    if davis is not None:
        davis.mkdir(parents=True)
    for frame in frames:
        path = folder / f"{frame}.png"
        try:
            with Image.open(path) as img:
                mode = img.mode
                ids = np.array(img) if mode in ("P", "L") else None
        except FileNotFoundError:
            raise FileNotFoundError(f"missing mask {path} (a frame of confidence.csv)") from None
        if ids is None:
            raise ValueError(
                f"{path} is a {mode} image; masks must be palette (P) or greyscale (L) PNGs of "
                "object ids"
            )
        if davis is not None:
            if mode == "P":
                shutil.copyfile(path, davis / path.name)
            else:
                write_mask(davis / path.name, ids, DAVIS_PALETTE)
        yield ids


def _read_tracks(name: str, folder: Path):
    """`tracks.json` of a `sfcprop track` result as a `TrackedVideo`."""
    from sfcprop.io.exports import TrackedVideo

    path = folder / "tracks.json"
    try:
        data = json.loads(path.read_text())
        frames, names = [str(f) for f in data["frames"]], [str(n) for n in data["names"]]
        points = np.array(
            [[(np.nan, np.nan) if p is None else p for p in f] for f in data["points"]],
            dtype=np.float64,
        ).reshape(len(frames), len(names), 2)
        confidence = np.array(data["confidence"], dtype=np.float64)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"{path} is not a tracks file of `sfcprop track` (frames, names, points, "
            f"confidence): {e}"
        ) from None
    if confidence.shape != (len(frames), len(names)):
        raise ValueError(f"{path}: confidence is {confidence.shape}, points {points.shape}")
    return TrackedVideo(name, frames, names, points, confidence)
