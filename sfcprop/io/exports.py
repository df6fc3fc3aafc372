"""COCO, YouTube-VIS and MOTS structures from id maps and confidences (no file is read
here), and the table of categories they share.

Masks are run-length encoded by pycocotools' own encoder (`pycocotools.mask.encode`; an
extra: `pip install "sfcprop[coco]"`), imported when first needed. A compressed RLE is
`{"size": [h, w], "counts": str}` as COCO results and YouTube-VIS results hold it; the
YouTube-VIS dataset file holds the uncompressed form (`counts` a list of run lengths), as
the official annotation files do and as their readers (`frPyObjects`) expect.

Each object's category comes from a `sfcprop.io.categories.Categories`: by default one
class-agnostic category for all, `{"id": 1, "name": "object"}` (as DAVIS is).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sfcprop.io.categories import Categories

FORMATS = ("davis", "coco", "ytvis", "mots")
MOTS_ID_BASE = 1000  # MOTS track id = category id * 1000 + object id


def mask_api():
    """`pycocotools.mask`, or an ImportError saying how to install it."""
    try:
        from pycocotools import mask
    except ImportError:
        raise ImportError(
            'COCO, YouTube-VIS and MOTS exports need pycocotools: pip install "sfcprop[coco]"'
        ) from None
    return mask


def encode_objects(ids: np.ndarray, objects: Iterable[int] | None = None) -> dict[int, dict]:
    """`{object id: compressed RLE}` of each object with at least one pixel in `ids`
    `[H, W]` (0 is the background); `objects`: only these ids (default: all present)."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"ids must be [H, W], got shape {ids.shape}")
    present = [int(i) for i in np.unique(ids) if i != 0]
    if objects is not None:
        wanted = set(objects)
        present = [i for i in present if i in wanted]
    if not present:
        return {}
    stack = np.asfortranarray(np.stack([ids == i for i in present], axis=-1).astype(np.uint8))
    rles = mask_api().encode(stack)
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return dict(zip(present, rles, strict=True))


def decode(rle: Mapping) -> np.ndarray:
    """A compressed or uncompressed RLE as a bool mask `[h, w]`."""
    m = mask_api()
    if isinstance(rle["counts"], list):
        rle = m.frPyObjects(dict(rle), *rle["size"])
    return m.decode(dict(rle)).astype(bool)


def uncompressed(rle: Mapping) -> dict:
    """The uncompressed form `{"size", "counts": [run lengths]}` of a compressed RLE: the
    runs of the column-major mask, starting with background."""
    flat = decode(rle).ravel(order="F")
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": list(rle["size"]), "counts": counts}


def _box_area(rle: Mapping) -> tuple[list[float], float]:
    m = mask_api()
    return [float(v) for v in m.toBbox(dict(rle))], float(m.area(dict(rle)))


@dataclass
class EncodedVideo:
    """One video's masks as RLEs. frames: frame names in order; rles: per frame, `{object:
    RLE}` of the objects present; confidence: `[T, len(objects)]` or None (unknown: every
    score 1)."""

    name: str
    frames: list[str]
    height: int
    width: int
    objects: list[int]
    rles: list[dict[int, dict]]
    confidence: np.ndarray | None = None

    def score(self, t: int, obj: int) -> float:
        """The confidence of `obj` in frame `t` (1 when unknown)."""
        if self.confidence is None:
            return 1.0
        return float(self.confidence[t, self.objects.index(obj)])

    def mean_score(self, obj: int) -> float:
        """The mean confidence of `obj` over the video (1 when unknown)."""
        if self.confidence is None:
            return 1.0
        return float(np.mean(self.confidence[:, self.objects.index(obj)]))

    def present(self) -> list[int]:
        """The objects present in at least one frame."""
        seen = set().union(*self.rles) if self.rles else set()
        return [o for o in self.objects if o in seen]


def encode_video(
    name: str,
    frames: Sequence[str],
    masks: Iterable[np.ndarray],
    objects: Sequence[int] | None = None,
    confidence: np.ndarray | None = None,
) -> EncodedVideo:
    """Encode a video's id maps (one `[H, W]` per frame name, one size). `objects`: its
    object ids (default: those present); an id outside them is an error."""
    rles, size = [], None
    for frame, ids in zip(frames, masks, strict=True):
        if size is None:
            size = ids.shape
        elif ids.shape != size:
            raise ValueError(f"{name}: frame {frame} is {ids.shape}, the first frame {size}")
        encoded = encode_objects(ids)
        if objects is not None and not set(encoded) <= set(objects):
            extra = sorted(set(encoded) - set(objects))
            raise ValueError(f"{name}: frame {frame} holds ids {extra} not among {list(objects)}")
        rles.append(encoded)
    if size is None:
        raise ValueError(f"{name}: no frames")
    if objects is None:
        objects = sorted(set().union(*rles))
    if confidence is not None and confidence.shape != (len(rles), len(objects)):
        raise ValueError(
            f"{name}: confidence is {confidence.shape}, expected {(len(rles), len(objects))}"
        )
    return EncodedVideo(name, list(frames), *map(int, size), list(objects), rles, confidence)


def coco_instances(videos: Sequence[EncodedVideo], categories: Categories) -> dict:
    """A COCO instance segmentation file: one image per frame (`file_name`
    `<video>/<frame>.jpg`, with `video_id` and `frame_index`), one annotation per object
    and frame where present (RLE, bbox and area from pycocotools, `score` its confidence,
    `object` its id), the videos and categories."""
    images, annotations, listed = [], [], []
    for v, video in enumerate(videos, start=1):
        listed.append({"id": v, "name": video.name, "length": len(video.frames)})
        for t, (frame, rles) in enumerate(zip(video.frames, video.rles, strict=True)):
            image_id = len(images) + 1
            images.append(_image(image_id, video, v, t, frame))
            for obj, rle in rles.items():
                bbox, area = _box_area(rle)
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": categories.of(video.name, obj),
                        "segmentation": rle,
                        "area": area,
                        "bbox": bbox,
                        "iscrowd": 0,
                        "score": round(video.score(t, obj), 4),
                        "object": obj,
                    }
                )
    return {
        "info": {"description": "sfcprop results"},
        "videos": listed,
        "images": images,
        "annotations": annotations,
        "categories": categories.table,
    }


def _image(image_id: int, video: EncodedVideo, v: int, t: int, frame: str) -> dict:
    return {
        "id": image_id,
        "file_name": f"{video.name}/{frame}.jpg",
        "height": video.height,
        "width": video.width,
        "video_id": v,
        "frame_index": t,
    }


def ytvis_results(videos: Sequence[EncodedVideo], categories: Categories) -> list[dict]:
    """YouTube-VIS results: one entry per object and video (objects present in some
    frame): `video_id` (1.. in order), `category_id`, `segmentations` (an RLE or None per
    frame), `score` (the object's mean confidence)."""
    out = []
    for v, video in enumerate(videos, start=1):
        for obj in video.present():
            out.append(
                {
                    "video_id": v,
                    "category_id": categories.of(video.name, obj),
                    "segmentations": [r.get(obj) for r in video.rles],
                    "score": round(video.mean_score(obj), 4),
                    "object": obj,
                }
            )
    return out


def ytvis_instances(videos: Sequence[EncodedVideo], categories: Categories) -> dict:
    """The same masks as a YouTube-VIS dataset file (`videos` with `file_names`
    `<video>/<frame>.jpg`, `annotations` with uncompressed RLEs, `areas`, `bboxes`)."""
    listed, annotations = [], []
    for v, video in enumerate(videos, start=1):
        h, w = video.height, video.width
        names = [f"{video.name}/{f}.jpg" for f in video.frames]
        listed.append({"id": v, "file_names": names, "height": h, "width": w, "length": len(names)})
        for obj in video.present():
            rles = [r.get(obj) for r in video.rles]
            boxes = [None if r is None else _box_area(r) for r in rles]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "video_id": v,
                    "category_id": categories.of(video.name, obj),
                    "segmentations": [None if r is None else uncompressed(r) for r in rles],
                    "areas": [None if b is None else b[1] for b in boxes],
                    "bboxes": [None if b is None else b[0] for b in boxes],
                    "iscrowd": 0,
                    "height": h,
                    "width": w,
                    "length": 1,
                    "object": obj,
                }
            )
    return {
        "info": {"description": "sfcprop results"},
        "videos": listed,
        "categories": categories.table,
        "annotations": annotations,
    }


def mots_text(video: EncodedVideo, categories: Categories) -> str:
    """A MOTS txt file: one line `frame id class h w rle` per object and frame where
    present; frames 1.. (MOTSChallenge), id = class * 1000 + object id."""
    lines = []
    for t, rles in enumerate(video.rles, start=1):
        for obj, rle in rles.items():
            if obj >= MOTS_ID_BASE:
                raise ValueError(f"{video.name}: MOTS ids hold objects below 1000, got {obj}")
            c = categories.of(video.name, obj)
            h, w = rle["size"]
            lines.append(f"{t} {c * MOTS_ID_BASE + obj} {c} {h} {w} {rle['counts']}")
    return "".join(f"{line}\n" for line in lines)


@dataclass
class TrackedVideo:
    """One video's keypoint tracks (what `sfcprop track` writes): points `[T, K, 2]` (x,
    y; NaN where not found), confidence `[T, K]`, the frame and point names."""

    name: str
    frames: list[str]
    names: list[str]
    points: np.ndarray
    confidence: np.ndarray


def coco_keypoints(videos: Sequence[TrackedVideo]) -> dict:
    """A COCO keypoints file: one image per frame, one annotation per video and frame
    (`keypoints` `[x, y, v] * K` with v the point's confidence, 0 where not found;
    `score` their mean over the points found; bbox and area of the points found); one
    category per set of point names."""
    categories: list[dict] = []
    images, annotations = [], []
    for v, video in enumerate(videos, start=1):
        kind = next((c for c in categories if c["keypoints"] == video.names), None)
        if kind is None:
            kind = {
                "id": len(categories) + 1,
                "name": "object",
                "supercategory": "object",
                "keypoints": list(video.names),
                "skeleton": [],
            }
            categories.append(kind)
        for t, frame in enumerate(video.frames):
            image_id = len(images) + 1
            name = f"{video.name}/{frame}.jpg"
            images.append({"id": image_id, "file_name": name, "video_id": v, "frame_index": t})
            annotations.append(_keypoints(len(annotations) + 1, image_id, kind["id"], video, t))
    return {
        "info": {"description": "sfcprop tracks"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def _keypoints(ann_id: int, image_id: int, category: int, video: TrackedVideo, t: int) -> dict:
    flat, xs, ys, found = [], [], [], []
    for (x, y), c in zip(video.points[t], video.confidence[t], strict=True):
        if math.isnan(x) or math.isnan(y):
            flat += [0.0, 0.0, 0.0]
            continue
        flat += [round(float(x), 3), round(float(y), 3), round(float(c), 5)]
        xs.append(float(x))
        ys.append(float(y))
        found.append(float(c))
    box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)] if xs else [0.0] * 4
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category,
        "keypoints": flat,
        "num_keypoints": len(found),
        "score": round(float(np.mean(found)), 5) if found else 0.0,
        "bbox": [round(b, 3) for b in box],
        "area": round(box[2] * box[3], 3),
        "iscrowd": 0,
    }
