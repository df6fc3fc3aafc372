"""sfcprop as a CVAT AI tracker: a tracking function for `cvat-cli function create-native`.

```
cvat-cli --server-host URL --auth USER function create-native "sfcprop" \\
    --function-module sfcprop.integrations.cvat -p backbone=str:fc -p short_side=int:480
cvat-cli --server-host URL --auth USER function run-agent FUNCTION_ID \\
    --function-module sfcprop.integrations.cvat -p backbone=str:fc -p short_side=int:480
```
`create(**params)` builds the model once; `preprocess_image` encodes each frame once for
every shape on it (and shapes tracked together from one frame share each step's
affinity, see `Frame`); each shape's state is one forward pass of the reference protocol (its
keyframe plus the m most recent frames, `sfcprop.core.propagator.Memory`, bounded);
`track` returns None where sfcprop's calibrated confidence says the object is lost (CVAT
then ends the track) rather than a wrong shape. Shapes: mask, polygon, rectangle (the box
becomes labels by `cvat_boxes`; the box of the propagated region comes back) and
points (tracked as keypoints: None once a point's map vanishes). See docs/cvat.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import PIL.Image
import torch
from cvat_sdk import auto_annotation as cvataa

from sfcprop.config import PRESETS
from sfcprop.core.propagator import Affinity, Pass, Propagator, load_model
from sfcprop.integrations import cvat_boxes as boxes
from sfcprop.integrations import cvat_shapes as shapes
from sfcprop.labels import keypoints
from sfcprop.labels.codecs import MaskCodec
from sfcprop.session import confidence as conf

PARAMETERS = {  # name: (type, what it is), as `-p name=type:value`
    "backbone": (str, "a registered backbone or a checkpoint path (default fc)"),
    "weights": (str, "the backbone's weights: a release name or a file (default: shipped)"),
    "preset": (str, f"settings preset, one of {', '.join(PRESETS)} (default davis)"),
    "short_side": (int, "frames resized to this short side before the backbone"),
    "device": (str, "torch device, e.g. cpu or cuda (default cpu)"),
    "threads": (int, "torch CPU threads (default: torch's)"),
    "box": (str, "how a rectangle becomes labels: refine (default) or fill"),
}
TOPN = 3  # cells averaged to place a point (as `track_keypoints`)


@dataclass(frozen=True)
class Frame:
    """A preprocessed image: its unit features `[C, h, w]` and its size `(H, W)`.

    `affinities`: a memo of this frame's `Affinity` to each memory (`Memory.key`) a track
    has asked for: shapes started on the same frame and tracked together share their
    memory's frames, so the costly part of a step runs once for all of them (the labels,
    the only part that differs, are gathered per shape). It lives as long as the frame's
    request; nothing else about the frame changes."""

    features: torch.Tensor
    size: tuple[int, int]
    affinities: dict[tuple[int, ...], Affinity] = field(
        default_factory=dict, compare=False, repr=False
    )


@dataclass
class TrackState:
    """One shape's track: its forward pass (`run.memory`: the keyframe's features and soft
    labels, and those of the m most recent frames, a bounded deque), the keyframe's
    measures for the confidence, and what the output shape needs."""

    shape_type: str
    run: Pass
    size: tuple[int, int]
    key: torch.Tensor  # [L, C] the keyframe's prototypes (confidence.prototypes)
    ref_area: np.ndarray  # [L] the keyframe's cells per channel
    codec: MaskCodec | None = None  # region shapes: how masks go to the grid and back
    vertices: int = 0  # a polygon's vertex count
    steps: int = 0  # frames tracked since the keyframe
    lost: bool = False
    trend: conf.SimilarityTrend = field(default_factory=conf.SimilarityTrend)

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor the state holds (the memory's features and labels, the prototypes)."""
        memory = self.run.memory
        out = [*memory.first, self.key]
        for feats, soft in memory.recent:
            out += [feats, soft]
        return out

    def retained_bytes(self) -> int:
        """Bytes of the distinct tensor storages the state holds."""
        seen: dict[int, int] = {}
        for t in self.tensors():
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        return sum(seen.values())


class SfcpropTracker:
    """The tracking function (CVAT's `TrackingFunction` protocol) over a built model."""

    spec = cvataa.TrackingFunctionSpec(supported_shape_types=shapes.SHAPE_TYPES)

    def __init__(self, model: Propagator, box: str = "refine") -> None:
        self.model = model
        self.box = boxes.check_rule(box)

    def preprocess_image(self, context: object, image: PIL.Image.Image) -> Frame:
        """The frame's features, computed once for every shape tracked on it."""
        rgb = np.asarray(image.convert("RGB"))
        frame = torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous()
        return Frame(self.model.encode(frame), (rgb.shape[0], rgb.shape[1]))

    def init_tracking_state(
        self, context: object, pp_image: Frame, shape: cvataa.TrackableShape
    ) -> TrackState:
        """A state from the shape on its keyframe (`ShapeError` for a type or points
        sfcprop cannot read)."""
        kind = shapes.check_type(shape.type)
        model, size = self.model, pp_image.size
        grid = tuple(pp_image.features.shape[1:])
        codec = None
        vertices = 0
        if kind == "points":
            xy = shapes.points_to_array(shape.points, size)
            soft = keypoints.encode_keypoints(xy, size, grid)
        elif kind == "rectangle":
            soft, codec = boxes.box_soft(model, pp_image.features, shape.points, size, self.box)
        else:
            mask = shapes.shape_to_mask(kind, shape.points, size)
            codec = MaskCodec()
            ids = codec.check(0, mask.astype(np.uint8), size)
            soft = codec.encode(ids, size, model.input_size(*size), grid)
            vertices = len(shape.points) // 2 if kind == "polygon" else 0
        soft = soft.to(model.device, torch.float32)
        plan = model.plan_memory(*size, soft.shape[0])
        run = model.open_pass(pp_image.features, soft, size, plan)
        key = conf.prototypes(pp_image.features, soft)
        return TrackState(kind, run, size, key, conf.areas(soft), codec, vertices)

    def track(
        self, context: object, pp_image: Frame, state: TrackState
    ) -> cvataa.TrackableShape | None:
        """The shape on the next frame, or None where sfcprop flags the object lost."""
        if pp_image.size != state.size:
            raise ValueError(
                f"the frame is {pp_image.size} (H, W) but the track started on {state.size}"
            )
        if state.lost:
            return None
        key = state.run.memory.key()
        found = pp_image.affinities.get(key)
        if found is None:
            found = pp_image.affinities[key] = state.run.affinity(pp_image.features)
        soft = state.run.step(pp_image.features, found)
        state.steps += 1
        points = self._shape_points(state, pp_image.features, soft)
        if points is None:
            state.lost = True
            return None
        return cvataa.TrackableShape(type=state.shape_type, points=points)

    def _shape_points(
        self, state: TrackState, features: torch.Tensor, soft: torch.Tensor
    ) -> list[float] | None:
        if state.shape_type == "points":
            xy, _ = keypoints.decode_keypoints(soft.cpu(), state.size, topn=TOPN)
            return None if np.isnan(xy).any() else shapes.array_to_points(xy)
        if is_lost(state, features, soft):
            return None
        mask = state.codec.decode(soft, state.size).numpy() == 1
        return shapes.mask_to_shape(state.shape_type, mask, state.vertices)


def is_lost(state: TrackState, features: torch.Tensor, soft: torch.Tensor) -> bool:
    """sfcprop's rule on a tracked frame, the measures as a `Session`'s forward pass takes
    them: the calibrated estimate of the object's J below `confidence.LOST_J`
    (`confidence.lost_flags`)."""
    similarity = conf.prototype_similarity(features, soft, state.key)
    drop = state.trend.drop(similarity)
    stats = conf.frame_stats(
        soft, state.ref_area, similarity=similarity, distance=state.steps, drop=drop
    )
    return bool(conf.lost_flags(state.steps, stats, state.ref_area, [1]))


def create(**params: object) -> SfcpropTracker:
    """The tracking function, from `cvat-cli ... -p name=type:value` parameters
    (`PARAMETERS`); a wrong name or type is a `ValueError` that says what is expected."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; expected: {usage()}")
    for name, value in params.items():
        kind = PARAMETERS[name][0]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(
                f"parameter {name} must be {kind.__name__} (-p {name}={kind.__name__}:...), got "
                f"{type(value).__name__} {value!r}; expected: {usage()}"
            )
    boxes.check_rule(str(params.get("box", "refine")))
    preset = params.get("preset", "davis")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    if params.get("threads") is not None:
        torch.set_num_threads(int(params["threads"]))
    device = str(params.get("device", "cpu"))
    net: object = params.get("backbone", "fc")
    if "weights" in params:
        from sfcprop.models import backbone

        net = backbone(str(net), weights=params["weights"])
    settings = {"short_side": params["short_side"]} if "short_side" in params else {}
    model = load_model(net, preset=preset, device=device, **settings)
    return SfcpropTracker(model, str(params.get("box", "refine")))


def usage() -> str:
    """The parameters `create` takes, as `-p` options."""
    return "; ".join(f"-p {n}={t.__name__}:... ({what})" for n, (t, what) in PARAMETERS.items())
