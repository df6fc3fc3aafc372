"""`sfcprop.labels.codecs`: the `Codec` protocol and its three codecs (masks, soft maps,
keypoints), on hand-made labels with known answers."""

import inspect
import re

import numpy as np
import pytest
import torch
from toys import PooledColour

from sfcprop.core.propagator import load_model
from sfcprop.labels.codecs import Codec, KeypointCodec, MaskCodec, SoftCodec
from sfcprop.session.session import Session

HW, GRID = (48, 64), (6, 8)  # frames and their stride-8 feature grid
CODECS = [MaskCodec, SoftCodec, KeypointCodec]
METHODS = ["check", "decode", "encode", "forget", "given", "score"]


def bands(edges: list[int], ids: list[int], hw=HW) -> torch.Tensor:
    """A mask of vertical bands: columns `edges[i]` to `edges[i + 1]` hold `ids[i]`."""
    mask = torch.zeros(hw, dtype=torch.long)
    for a, b, i in zip(edges[:-1], edges[1:], ids, strict=True):
        mask[:, a:b] = i
    return mask


# --------------------------------------------------------------------------- the protocol


def test_the_protocol_names_what_a_session_needs():
    members = {n for n in vars(Codec) if not n.startswith("_")} | set(Codec.__annotations__)
    assert members == {"kind", "objects", "label_ids", *METHODS}


@pytest.mark.parametrize("make", CODECS, ids=lambda c: c.__name__)
def test_each_codec_has_the_protocols_attributes_and_signatures(make):
    codec = make()
    assert isinstance(codec.kind, str) and isinstance(codec.objects, bool)
    assert isinstance(codec.label_ids, list)
    assert isinstance(inspect.getattr_static(make, "label_ids"), property)
    for name in METHODS:  # a session passes the arguments by position
        want = inspect.signature(getattr(Codec, name)).parameters.values()
        got = inspect.signature(getattr(make, name)).parameters.values()
        assert [p.kind for p in got] == [p.kind for p in want], (make.__name__, name)


def test_kinds_and_which_codec_has_objects():
    assert [(c.kind, c.objects) for c in (MaskCodec(), SoftCodec(), KeypointCodec())] == [
        ("mask", True),
        ("soft", False),
        ("points", False),
    ]


# --------------------------------------------------------------------------- masks


def test_the_mask_object_table_is_the_union_of_the_keyframes_ids():
    codec = MaskCodec()
    assert codec.label_ids == [0]
    codec.check(0, bands([0, 16, 64], [0, 3]), HW)
    codec.check(5, bands([0, 8, 32, 64], [7, 0, 3]), HW)
    assert codec.label_ids == [0, 3, 7]
    codec.check(9, torch.zeros(HW, dtype=torch.long), HW)  # none here: allowed
    codec.check(2, bands([0, 40, 64], [200, 1]), HW)
    assert codec.label_ids == [0, 1, 3, 7, 200]
    codec.label_ids.append(99)  # a copy: the table is the codec's
    assert codec.label_ids == [0, 1, 3, 7, 200] and codec.channels == 5


def test_a_mask_needs_the_frames_size_and_may_hold_no_object():
    codec = MaskCodec()
    with pytest.raises(ValueError, match=re.escape("frame 3 is (48, 64) (H, W) but its mask")):
        codec.check(3, torch.ones(40, 64, dtype=torch.long), HW)
    with pytest.raises(ValueError, match=re.escape("(turned by an EXIF orientation?)")):
        codec.check(3, torch.ones(64, 48, dtype=torch.long), HW)
    assert codec.label_ids == [0]  # a refused mask adds no id
    codec.check(4, torch.zeros(HW, dtype=torch.long), HW)  # the session needs an object
    assert codec.label_ids == [0]


def test_a_removed_keyframes_ids_leave_the_table():
    codec = MaskCodec()
    codec.check(0, bands([0, 16, 64], [0, 3]), HW)
    codec.check(5, bands([0, 8, 32, 64], [7, 0, 3]), HW)
    codec.check(5, bands([0, 8, 32, 64], [9, 0, 3]), HW)  # replaced: 7 is gone
    assert codec.label_ids == [0, 3, 9]
    codec.forget(5)
    assert codec.label_ids == [0, 3]


@pytest.mark.parametrize(
    "encoded, edges",
    [(HW, [0, 16, 40, 64]), ((24, 32), [0, 16, 48, 64])],
    ids=["native size", "encoded at half size"],
)
def test_decode_of_encode_gives_the_mask_back(encoded, edges):
    """Vertical bands on cell boundaries (of the encoded frame): each grid cell is one-hot,
    and upsampled back every pixel's own cell weighs most."""
    codec = MaskCodec()
    mask = bands(edges, [0, 4, 9])
    codec.check(0, mask, HW)
    grid = (encoded[0] // 8, encoded[1] // 8)
    soft = codec.encode(mask, HW, encoded, grid)
    cell = (encoded[1] // grid[1]) * HW[1] // encoded[1]  # a cell's width in frame pixels
    columns = mask[0, cell // 2 :: cell]  # the id at each cell's centre
    want = torch.stack([(columns == i).float().expand(grid) for i in (0, 4, 9)])
    torch.testing.assert_close(soft, want, rtol=0, atol=0)
    back = codec.decode(soft, HW)
    assert back.dtype == torch.uint8 and torch.equal(back, mask.to(torch.uint8))
    assert torch.equal(codec.given(mask), mask.to(torch.uint8))


def test_mask_scores_are_the_objects_confidence():
    confidence = np.array([0.25, 0.75])
    assert MaskCodec().score(torch.zeros(HW), confidence) is confidence


# --------------------------------------------------------------------------- soft maps


def test_soft_maps_keep_their_channels_and_resize_only_at_the_frames_size():
    codec = SoftCodec()
    on_grid = torch.rand(4, *GRID)
    codec.check(0, on_grid, HW)
    assert codec.label_ids == [0, 1, 2, 3]
    assert codec.encode(on_grid, HW, HW, GRID) is on_grid
    full = torch.zeros(4, *HW)
    full[2] = 1.0
    torch.testing.assert_close(codec.encode(full, HW, HW, GRID), full[:, :6, :8])  # constant
    assert codec.decode(on_grid, HW) is on_grid  # no argmax, no normalisation
    with pytest.raises(ValueError, match="every keyframe needs the same number of label"):
        codec.check(3, torch.rand(2, *GRID), HW)
    with pytest.raises(ValueError, match=re.escape("got (4, 5, 5)")):
        codec.encode(torch.rand(4, 5, 5), HW, HW, GRID)


# --------------------------------------------------------------------------- keypoints


def test_keypoints_score_per_point():
    """Hand-made maps of 3 joints: peaks 0.8 and 0.3 on single cells, the third all zero
    (not found); each point's score is its peak, whatever the frame's object confidence."""
    codec = KeypointCodec()
    codec.check(0, np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), HW)
    assert codec.label_ids == [0, 1, 2, 3]
    soft = torch.zeros(4, *GRID)
    soft[1, 2, 5] = 0.8  # row 2, column 5: (x, y) = (40, 16) pixels
    soft[2, 4, 1] = 0.3  # (8, 32)
    decoded = codec.decode(soft, HW)
    points, confidence = decoded
    np.testing.assert_array_equal(points[:2], [[40.0, 16.0], [8.0, 32.0]])
    assert np.isnan(points[2]).all()
    score = codec.score(decoded, np.array([0.5]))
    np.testing.assert_allclose(score, [0.8, 0.3, 0.0], rtol=0, atol=1e-7)
    assert score is confidence


def test_keypoints_as_given_and_their_count():
    codec = KeypointCodec()
    pts = np.array([[10.0, 12.0], [np.nan, np.nan], [63.0, 47.0]])
    codec.check(0, pts, HW)
    given, confidence = codec.given(pts)
    np.testing.assert_array_equal(given, pts)
    assert given is not pts and confidence.tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="needs the same 3 points, got 2 on frame 6"):
        codec.check(6, pts[:2], HW)
    with pytest.raises(ValueError, match=re.escape("point 0 (x=64, y=0) is outside the 64x48")):
        codec.check(6, np.array([[64.0, 0.0], [1, 1], [2, 2]]), HW)


def test_a_session_of_points_reports_one_score_per_point():
    frames = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (4, 3, *HW), np.uint8))
    model = load_model(PooledColour().eval(), topk=3, context=1, radius=3)
    session = Session(model, frames, codec=KeypointCodec())
    session.annotate(0, np.array([[10.0, 12.0], [40.0, 30.0]]))
    results = list(session.run())
    assert [r.t for r in results] == [0, 1, 2, 3]
    for r in results[1:]:
        points, confidence = r.labels
        assert points.shape == (2, 2) and r.confidence is confidence  # the codec's score
        assert r.soft.shape == (3, *GRID)
