"""sfcprop inside CVAT, against the real cvat-sdk / cvat-cli (offline; no mocks).

The tracking function is loaded by cvat-cli's own option parser and `FunctionLoader`, and
initialised by the agent's own worker initialiser (`agent._worker_init`); frames go
through the agent's tracking jobs (`_worker_job_init_tracking`, `_worker_job_track`) as
PIL images, as they do when `cvat-cli function run-agent` serves CVAT. The round trip's
conversions are checked against the SDK's model classes; the network test runs only where
`SFCPROP_CVAT_URL` names a server (see tests/test_cvat_server.py).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import weakref

import numpy as np
import pytest
import torch

cvat_sdk = pytest.importorskip(
    "cvat_sdk", reason="the cvat extra (cvat-sdk >= 2.80, Python >= 3.11) is not installed"
)
pytest.importorskip("cvat_cli", reason="cvat-cli >= 2.80 (the cvat extra) is not installed")

import PIL.Image  # noqa: E402
from cvat_cli._internal import agent  # noqa: E402
from cvat_cli._internal import agent_driver_tracking as tracking  # noqa: E402
from cvat_cli._internal.agent_driver import (  # noqa: E402
    set_worker_current_function,
    worker_current_function,
)
from cvat_cli._internal.common import configure_function_implementation_arguments  # noqa: E402
from cvat_sdk import auto_annotation as cvataa  # noqa: E402
from cvat_sdk.masks import decode_mask, encode_mask  # noqa: E402

import sfcprop  # noqa: E402
from sfcprop.bench.synthetic import generate_clip  # noqa: E402
from sfcprop.integrations import cvat_boxes as boxes  # noqa: E402
from sfcprop.integrations import cvat_shapes as shapes  # noqa: E402
from sfcprop.labels.ids import decode as decode_ids  # noqa: E402
from sfcprop.session.confidence import DROP_WINDOW  # noqa: E402

MODULE = "sfcprop.integrations.cvat"
TASK = 7  # the agent checks that a state is used on the task it was made on


def loader(*params: str):
    """cvat-cli's `FunctionLoader`, from its own `--function-module` / `-p` options."""
    parser = argparse.ArgumentParser()
    got: dict = {}
    parser.set_defaults(_executor=lambda client, **kw: got.update(kw))
    configure_function_implementation_arguments(parser)
    argv = ["--function-module", MODULE, *itertools.chain(*(["-p", p] for p in params))]
    args = vars(parser.parse_args(argv))
    args.pop("_executor")(None, **args)
    return got["function_loader"]


def start_agent(*params: str):
    """The agent worker's start-up (`run-agent`'s process initialiser) with `params`."""
    ids = itertools.count()
    agent._worker_init(loader(*params), lambda: f"state-{next(ids)}")
    return worker_current_function()


def pil(frame: torch.Tensor) -> PIL.Image.Image:
    return PIL.Image.fromarray(frame.permute(1, 2, 0).numpy())


def run(frames, shape_list) -> list[list]:
    """Each frame's shapes after the first, through the agent's tracking jobs."""
    states = tracking._worker_job_init_tracking(TASK, frames[0], shape_list)
    return [tracking._worker_job_track(TASK, image, states) for image in frames[1:]]


@pytest.fixture(scope="module")
def clip():
    return generate_clip(num_frames=12, height=120, width=160, seed=1, leaves_at=6)


@pytest.fixture(scope="module", autouse=True)
def torch_threads():
    """`-p threads=int:1` sets torch's threads for the process: put them back after."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fc_function():
    """The agent started with the fc backbone (one thread: a shared CPU)."""
    return start_agent("backbone=str:fc", "threads=int:1")


@pytest.fixture
def fc(fc_function):
    """The fc function as the agent's current one (another test may have started another)."""
    set_worker_current_function(fc_function)
    return fc_function


# --------------------------------------------------------------------------- loading


def test_cvat_cli_loads_the_function_with_its_parameters(fc):
    assert fc.spec == cvataa.TrackingFunctionSpec(
        supported_shape_types=["mask", "polygon", "rectangle", "points"]
    )
    assert fc.model.config.short_side is None and fc.model.encoder.backbone.dim > 0
    assert torch.get_num_threads() == 1
    # the agent's own check of a server-side function against the spec
    driver = agent.get_function_driver_class(fc.spec)(None, None, fc.spec)
    driver.validate_function_compatibility({"supported_shape_types": ["mask", "points"]})
    with pytest.raises(Exception, match="ellipse"):
        driver.validate_function_compatibility({"supported_shape_types": ["ellipse"]})


@pytest.mark.parametrize(
    "param, message",
    [
        ("short_side=str:240", r"short_side must be int \(-p short_side=int:"),
        ("colour=str:red", r"unknown parameter\(s\) colour; expected: -p backbone=str"),
        ("preset=str:fast", "preset must be one of davis"),
        ("threads=bool:true", "threads must be int"),
        ("box=str:circle", "box must be one of refine, fill, got 'circle'"),
    ],
)
def test_a_bad_parameter_says_what_is_expected(param, message):
    with pytest.raises(ValueError, match=message):
        loader(param).load()


def test_an_unsupported_shape_is_refused_by_name(fc, clip):
    ellipse = cvataa.TrackableShape(type="ellipse", points=[50, 50, 70, 60])
    with pytest.raises(shapes.ShapeError, match="'ellipse'.*supported types are mask, polygon"):
        tracking._worker_job_init_tracking(TASK, pil(clip.frames[0]), [ellipse])
    bad = cvataa.TrackableShape(type="polygon", points=[1, 2, 3])
    with pytest.raises(shapes.ShapeError, match="polygon needs an even number"):
        tracking._worker_job_init_tracking(TASK, pil(clip.frames[0]), [bad])


# --------------------------------------------------------------------------- tracking


def test_a_mask_comes_back_as_propagate_gives_it_then_none_once_gone(fc, clip):
    """Forward-only `propagate` from frame 0 is the same reference protocol (keyframe + m
    recent frames, frames at their own size): CVAT's RLE decodes to the same pixels on
    every frame, and `track` gives None from the frame the object left (frame 6), where
    propagate flags it lost."""
    frames = [pil(f) for f in clip.frames]
    first = (clip.masks[0] == 1).numpy()
    out = run(frames, [cvataa.TrackableShape(type="mask", points=encode_mask(first))])
    ref = sfcprop.propagate(clip.frames, clip.masks[0] == 1, fc.model, forward_only=True)
    lost = sorted(f.frame for f in ref.flags if f.kind == "lost")
    assert lost and lost[0] == 6 == min(t for t in range(12) if not clip.masks[t].eq(1).any())
    for t, (shape,) in enumerate(out, start=1):
        if t < lost[0]:
            assert shape.type == "mask"
            got = decode_mask(shape.points, image_width=160, image_height=120)
            np.testing.assert_array_equal(got, ref.ids[t].numpy() == 1, err_msg=f"frame {t}")
        else:
            assert shape is None, t


def test_polygons_rectangles_and_points_keep_their_type(fc, clip):
    """A polygon comes back with its vertex count, around the region forward-only
    propagate gives its rasterised mask; a rectangle is exactly the box of the region
    propagate_soft gives the box's labels (`cvat_boxes.box_soft`); points come back as
    many points."""
    frames = [pil(f) for f in clip.frames[:6]]
    rect = (clip.masks[0] == 2).numpy()
    box = shapes.mask_box(rect)
    polygon = shapes.mask_to_shape("polygon", rect, 12)
    given = [
        cvataa.TrackableShape(type="polygon", points=polygon),
        cvataa.TrackableShape(type="rectangle", points=box),
        cvataa.TrackableShape(type="points", points=[box[0] + 8, box[1] + 8, box[2] - 8, 80]),
    ]
    out = run(frames, given)
    hw = rect.shape
    poly_ref = sfcprop.propagate(
        clip.frames[:6], shapes.shape_to_mask("polygon", polygon, hw), fc.model, forward_only=True
    )
    features = fc.model.encode(clip.frames[0])
    soft0, _ = boxes.box_soft(fc.model, features, box, hw, "refine")
    box_ref = sfcprop.propagate_soft(clip.frames[:6], soft0, fc.model, forward_only=True)
    for t, (poly, rectangle, points) in enumerate(out, start=1):
        assert poly.type == "polygon" and len(poly.points) == len(polygon)
        drawn = shapes.shape_to_mask("polygon", poly.points, hw)
        region = poly_ref.ids[t].numpy() == 1
        assert (drawn & region).sum() / (drawn | region).sum() > 0.9, t
        assert rectangle.type == "rectangle"
        tracked = decode_ids(box_ref[t], [0, 1], hw).numpy() == 1
        assert rectangle.points == list(shapes.mask_box(tracked)), t
        assert points.type == "points" and len(points.points) == 4
        assert np.isfinite(points.points).all()


def test_box_fill_tracks_the_box_filled(clip):
    """`-p box=str:fill`: the box filled is the first mask (propagate gives the same box)."""
    fn = start_agent("backbone=str:fc", "threads=int:1", "box=str:fill")
    box = shapes.mask_box((clip.masks[0] == 2).numpy())
    given = cvataa.TrackableShape(type="rectangle", points=box)
    out = run([pil(f) for f in clip.frames[:4]], [given])
    filled = shapes.box_to_mask(box, clip.masks[0].shape)
    ref = sfcprop.propagate(clip.frames[:4], filled, fn.model, forward_only=True)
    for t, (rectangle,) in enumerate(out, start=1):
        assert rectangle.points == list(shapes.mask_box(ref.ids[t].numpy() == 1)), t


def test_shapes_tracked_together_share_each_steps_affinity(fc, clip):
    """Shapes started on one frame hold the same frames in memory: one affinity per frame
    serves them all (their labels are gathered each on its own; the polygon test above
    checks each against propagate alone). A shape started later has its own."""
    first = (clip.masks[0] == 1).numpy()
    given = [
        cvataa.TrackableShape(type="mask", points=encode_mask(first)),
        cvataa.TrackableShape(type="rectangle", points=shapes.mask_box(first)),
    ]
    frames = [fc.preprocess_image(None, pil(f)) for f in clip.frames[:3]]
    states = [fc.init_tracking_state(None, frames[0], s) for s in given]
    assert all(fc.track(None, frames[1], s) is not None for s in states)
    assert len(frames[1].affinities) == 1
    states.append(fc.init_tracking_state(None, frames[1], given[0]))
    assert all(fc.track(None, frames[2], s) is not None for s in states)
    assert len(frames[2].affinities) == 2


def test_memory_stays_flat_over_200_frames(fc):
    """The state holds the keyframe and the m most recent frames: its tensors stop growing
    after m frames, an old frame's features are freed, and dropping the state (as the
    agent's container does) frees the keyframe's."""
    clip = generate_clip(num_frames=201, height=48, width=64, seed=3)
    whole = cvataa.TrackableShape(type="rectangle", points=[4, 4, 60, 44])
    image = pil(clip.frames[0])
    (state_id,) = tracking._worker_job_init_tracking(TASK, image, [whole])
    state, _ = tracking._tracking_states.retrieve(state_id, TASK, image.size)
    keyframe = weakref.ref(state.run.memory.first[0])
    context = fc.model.config.context
    sizes, early = [], None
    for t in range(1, 201):
        (shape,) = tracking._worker_job_track(TASK, pil(clip.frames[t]), [state_id])
        assert shape is not None and shape.type == "rectangle", t
        sizes.append(state.retained_bytes())
        if t == 1:
            early = weakref.ref(state.run.memory.recent[-1][0])
    assert state.steps == 200 and len(state.run.memory.recent) == context
    assert len(state.trend.history) <= DROP_WINDOW  # the similarity trend, bounded too
    assert len(set(sizes[context:])) == 1 and sizes[-1] == max(sizes)
    gc.collect()
    assert early() is None  # frame 1's features left the memory and were freed
    del state
    tracking._tracking_states._id_to_ext_state.pop(state_id)
    gc.collect()
    assert keyframe() is None


@pytest.mark.parametrize("shape_type", ["mask", "polygon"])
def test_a_davis_sequence_at_short_side_240(data_dir, shape_type):
    """10 frames of DAVIS-2016 blackswan, `-p short_side=int:240`: the mask equals
    forward-only propagate's at the same setting; the polygon stays on the object."""
    seq = data_dir / "davis2016"
    names = sorted((seq / "JPEGImages/480p/blackswan").glob("*.jpg"))[:10]
    if len(names) < 10:
        pytest.skip(f"DAVIS-2016 blackswan not found under {seq}")
    fn = start_agent("backbone=str:fc", "short_side=int:240", "threads=int:1")
    assert fn.model.config.short_side == 240
    frames = [PIL.Image.open(p).convert("RGB") for p in names]
    truth = [
        np.array(PIL.Image.open(seq / "Annotations/480p/blackswan" / f"{p.stem}.png")) > 0
        for p in names
    ]
    points = shapes.mask_to_shape(shape_type, truth[0], 40)
    out = run(frames, [cvataa.TrackableShape(type=shape_type, points=points)])
    h, w = truth[0].shape
    if shape_type == "mask":
        tensor = torch.stack([torch.from_numpy(np.array(f)).permute(2, 0, 1) for f in frames])
        ref = sfcprop.propagate(tensor, truth[0], fn.model, forward_only=True)
        for t, (shape,) in enumerate(out, start=1):
            got = decode_mask(shape.points, image_width=w, image_height=h)
            np.testing.assert_array_equal(got, ref.ids[t].numpy() == 1, err_msg=f"frame {t}")
    else:
        for t, (shape,) in enumerate(out, start=1):
            assert shape.type == "polygon" and len(shape.points) // 2 <= 40
            drawn = shapes.shape_to_mask("polygon", shape.points, (h, w))
            assert (drawn & truth[t]).sum() / (drawn | truth[t]).sum() > 0.7, t
