"""A CVAT task's keyframes through a keyframe `Session`, and the results back as CVAT's
request models (`cvat_sdk.api_client.models`); no server here (`sfcprop cvat` talks to it).

Objects: each track is one object (its shapes that are not `outside` are its keyframes; an
`outside` shape says it is absent there); standalone shapes of one label and one group
(0 when ungrouped) are one object across frames. An object's keyframes are the frames
where it is drawn (or marked outside): objects with the same keyframes are propagated
together by one keyframe `Session` as one id map (masks, polygons and rectangles, a box
made a mask by `cvat_boxes`; later shapes over earlier ones, by z order), objects with
other keyframes by sessions of their own, so an object not drawn on a frame says nothing
about it there. Each points object has its own keypoint session (the same number of
points on each of its keyframes). Results come back as shapes of the object's own type
on every frame that is not one of its keyframes, except where sfcprop flags it lost; the
confidence goes into `score` and into the label's attribute named "confidence" where it
has one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from cvat_sdk.api_client import models

from sfcprop.core.propagator import Propagator
from sfcprop.integrations import cvat_boxes as boxes
from sfcprop.integrations import cvat_shapes as shapes
from sfcprop.io.atomic import atomic_path
from sfcprop.labels.codecs import KeypointCodec
from sfcprop.session.confidence import Flag
from sfcprop.session.results import Propagation
from sfcprop.session.session import Session

SOURCE = "semi-auto"  # CVAT's source of shapes made by a tool from an annotator's ones
CONFIDENCE = "confidence"  # the attribute that receives the confidence


@dataclass
class TaskObject:
    """One object of a task: its label, shape type and keyframes `{frame: points}`
    (`None`: marked absent there); `vertices`: a polygon's largest vertex count."""

    key: tuple
    label_id: int
    shape_type: str
    keyframes: dict[int, list[float] | None] = field(default_factory=dict)
    z_order: dict[int, int] = field(default_factory=dict)
    vertices: int = 0


@dataclass
class Check:
    """A frame to look at: `kind` "lost" / "cut" / "suggested"; `label` the object's label
    name (None for the whole frame); `value` the measure that raised it."""

    frame: int
    kind: str
    label: str | None
    value: float


@dataclass
class Upload:
    """What `sfcprop cvat` sends (`request`) and the frames it asks to check."""

    request: models.LabeledDataRequest
    checks: list[Check]
    skipped: list[str]


def _type(shape) -> str:
    return str(getattr(shape.type, "value", shape.type))


def read_objects(data: models.LabeledData) -> tuple[list[TaskObject], list[str]]:
    """The task's objects from its annotations, and a line per annotation left out (a
    shape type sfcprop does not track, a tag)."""
    objects: dict[tuple, TaskObject] = {}
    skipped: list[str] = []

    def add(key, label_id, kind, frame, points, z) -> None:
        obj = objects.setdefault(key, TaskObject(key, label_id, kind))
        if obj.shape_type != kind:
            raise shapes.ShapeError(
                f"object {key} is drawn as a {obj.shape_type} and as a {kind} (frame {frame}): "
                "an object keeps one shape type"
            )
        obj.keyframes[int(frame)] = None if points is None else list(points)
        obj.z_order[int(frame)] = int(z or 0)
        if kind == "polygon" and points is not None:
            obj.vertices = max(obj.vertices, len(points) // 2)

    for shape in data.get("shapes") or []:
        kind = _type(shape)
        if kind not in shapes.SHAPE_TYPES:
            skipped.append(f"frame {shape.frame}: a {kind} shape (not tracked)")
            continue
        group = "points" if kind == "points" else "region"
        key = ("shape", shape.label_id, shape.get("group") or 0, group)
        add(key, shape.label_id, kind, shape.frame, shape.points, shape.get("z_order"))
    for n, track in enumerate(data.get("tracks") or []):
        for shape in track.shapes:
            kind = _type(shape)
            if kind not in shapes.SHAPE_TYPES:
                skipped.append(f"frame {shape.frame}: a {kind} track (not tracked)")
                break
            points = None if shape.get("outside") else shape.points
            key = ("track", track.get("id") or f"#{n}")
            add(key, track.label_id, kind, shape.frame, points, shape.get("z_order"))
    skipped += [f"a tag on frame {tag.frame} (not tracked)" for tag in data.get("tags") or []]
    return list(objects.values()), skipped


def keyframe_masks(
    objects: Sequence[TaskObject],
    hw: tuple[int, int],
    region: Callable[[TaskObject, int, list[float]], np.ndarray] | None = None,
) -> dict[int, np.ndarray]:
    """`{frame: ids [H, W] uint8}` of the region objects: object i (of those given) is id
    i + 1, drawn in z order (then in the order given). `region(obj, frame, points)`: an
    object's bool mask (default: `cvat_shapes.shape_to_mask`, a rectangle filled)."""
    if len(objects) > 255:
        raise ValueError(f"at most 255 region objects per task, got {len(objects)}")
    if region is None:

        def region(obj: TaskObject, t: int, points: list[float]) -> np.ndarray:
            return shapes.shape_to_mask(obj.shape_type, points, hw)

    frames = sorted({t for obj in objects for t in obj.keyframes})
    out = {}
    for t in frames:
        ids = np.zeros(hw, dtype=np.uint8)
        drawn = [(obj.z_order.get(t, 0), i, obj) for i, obj in enumerate(objects)]
        for _, i, obj in sorted(drawn, key=lambda d: d[:2]):
            points = obj.keyframes.get(t)
            if points is not None:
                ids[region(obj, t, points)] = i + 1
        out[t] = ids
    return out


def confidence_attribute(label: models.Label | None, value: float) -> list:
    """`[AttributeValRequest]` holding `value` in the label's "confidence" attribute
    (number: clipped to its range and step; text: 3 decimals), else `[]`."""
    for attr in (label.get("attributes") if label is not None else None) or []:
        if attr.name.lower() != CONFIDENCE:
            continue
        kind = str(getattr(attr.input_type, "value", attr.input_type))
        if kind == "number":
            low, high, step = (float(v) for v in attr.values[:3])
            v = min(max(low + round((value - low) / step) * step, low), high)
            text = f"{v:g}"
        elif kind == "text":
            text = f"{value:.3f}"
        else:
            return []
        return [models.AttributeValRequest(spec_id=attr.id, value=text)]
    return []


def shape_request(
    obj: TaskObject, frame: int, points: list[float], value: float, label
) -> models.LabeledShapeRequest:
    """A propagated shape as CVAT's request model (`value` clipped to CVAT's 0..1 score)."""
    value = min(max(float(value), 0.0), 1.0)
    return models.LabeledShapeRequest(
        type=obj.shape_type,
        frame=int(frame),
        label_id=int(obj.label_id),
        points=[float(v) for v in points],
        source=SOURCE,
        score=float(value),
        attributes=confidence_attribute(label, value),
    )


def propagate_task(
    model: Propagator,
    frames,
    data: models.LabeledData,
    labels: Sequence[models.Label],
    *,
    rule: str | None = None,
    suggest: int = 3,
    box: str = "refine",
) -> Upload:
    """Propagate a task's keyframes both ways through `frames` (anything a `Session`
    reads, at the task's size); returns the shapes to upload and the frames to check.
    box: how a rectangle becomes its object's mask (`cvat_boxes.BOX_RULES`)."""
    boxes.check_rule(box)
    objects, skipped = read_objects(data)
    if not objects:
        raise ValueError("the task holds no mask, polygon, rectangle or points annotation")
    by_id = {label.id: label for label in labels}
    groups: dict[tuple[int, ...], list[TaskObject]] = {}
    for obj in objects:
        if obj.shape_type in shapes.MASK_TYPES:
            groups.setdefault(tuple(sorted(obj.keyframes)), []).append(obj)
    out: list[models.LabeledShapeRequest] = []
    checks: list[Check] = []
    options = {"rule": rule} if rule else {}
    for group in groups.values():
        result = _regions(model, frames, group, options, box)
        lost = {(f.frame, f.object) for f in result.flags if f.kind == "lost"}
        for t in range(len(result.ids)):
            if t in result.keyframes:
                continue
            for i, obj in enumerate(group):
                if (t, i + 1) in lost or (i + 1) not in result.label_ids:
                    continue
                c = float(result.confidence[t, result.label_ids.index(i + 1) - 1])
                mask = result.ids[t].numpy() == i + 1
                points = shapes.mask_to_shape(obj.shape_type, mask, obj.vertices or 32)
                if points is not None:
                    out.append(shape_request(obj, t, points, c, by_id.get(obj.label_id)))
        checks += [_check(f, group, by_id) for f in result.flags]
        checks += [Check(t, "suggested", None, 0.0) for t in result.suggest_keyframes(suggest)]
    for obj in (o for o in objects if o.shape_type == "points"):
        out += _points(model, frames, obj, by_id.get(obj.label_id), options)
    checks.sort(key=lambda c: (c.frame, c.kind, c.label or ""))
    return Upload(models.LabeledDataRequest(shapes=out), checks, skipped)


def _regions(model, frames, group: Sequence[TaskObject], options, box: str) -> Propagation:
    """Region objects with the same keyframes, propagated together (object i: id i + 1)."""
    session = Session(model, frames, **options)
    size = tuple(session.store[0].shape[1:])

    def region(obj: TaskObject, t: int, points: list[float]) -> np.ndarray:
        if obj.shape_type == "rectangle":
            return boxes.box_mask(model, session.store[t], points, box)
        return shapes.shape_to_mask(obj.shape_type, points, size)

    for t, ids in keyframe_masks(group, size, region).items():
        session.annotate(t, ids)
    return session.result()


def _check(flag: Flag, regions: Sequence[TaskObject], by_id) -> Check:
    label = None
    if flag.object is not None:
        obj = regions[flag.object - 1]
        found = by_id.get(obj.label_id)
        label = found.name if found is not None else f"label {obj.label_id}"
    return Check(flag.frame, flag.kind, label, float(flag.value))


def _points(model, frames, obj: TaskObject, label, options) -> list:
    """A points object tracked as keypoints from its keyframes (NaN-free frames only)."""
    given = {t: p for t, p in obj.keyframes.items() if p is not None}
    if not given:
        return []
    session = Session(model, frames, codec=KeypointCodec(), keep_results=False, **options)
    hw = tuple(session.store[0].shape[1:])
    for t, points in given.items():
        session.annotate(t, shapes.points_to_array(points, hw))
    out = []
    for r in session.run():
        xy, confidence = r.labels
        if r.t in session.keyframes or np.isnan(xy).any():
            continue
        points = shapes.array_to_points(xy)
        out.append(shape_request(obj, r.t, points, float(confidence.min()), label))
    return out


def dry_run_json(task_id: int, upload: Upload) -> dict:
    """What `--dry-run` writes: the request as CVAT's API takes it, the frames to check
    and the annotations left out."""
    return {
        "task": int(task_id),
        "annotations": upload.request.to_dict(),
        "checks": [asdict(c) for c in upload.checks],
        "left_out": list(upload.skipped),
    }


def write_dry_run(path: str | Path, task_id: int, upload: Upload) -> None:
    """`dry_run_json` written to `path` (atomically; its folder made if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(dry_run_json(task_id, upload), indent=1) + "\n")
