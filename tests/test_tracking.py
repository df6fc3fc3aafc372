"""`track_keypoints`: a known-answer translation, input checks, resizing, real JHMDB frames.
(Encoding/decoding round trips without propagation: tests/test_keypoints.py.)"""

import numpy as np
import pytest
import torch
from toys import PooledColour

from sfcprop import Tracks, track_keypoints
from sfcprop.bench import metrics
from sfcprop.bench.synthetic import generate_clip
from sfcprop.io.points import read_joint_positions
from sfcprop.labels import keypoints
from sfcprop.labels.codecs import check_points
from sfcprop.session.tracking import JHMDB_JOINTS, track_keypoints_iter

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def net():
    return PooledColour().eval()


def _shifting(n=5, h=48, w=80):
    g = torch.Generator().manual_seed(0)
    base = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
    return torch.stack([torch.roll(base, 8 * t, dims=2) for t in range(n)])


def test_points_follow_a_translation_exactly(net):
    """Frames shifted by one feature cell (8 px) per frame: with top-1 the maps move one
    cell per frame, so each decoded point moves 8 px per frame."""
    frames = _shifting()
    points = np.array([[20.0, 17.0], [28.0, 30.0], [12.0, 36.0]])  # patches never wrap
    tracks = track_keypoints(frames, points, net, topk=1, context=2, radius=3)
    assert isinstance(tracks, Tracks)
    assert tracks.points.shape == (5, 3, 2) and tracks.confidence.shape == (5, 3)
    np.testing.assert_array_equal(tracks.points[0], points)  # frame 0: as given
    np.testing.assert_array_equal(tracks.confidence[0], 1.0)
    encoded = keypoints.encode_keypoints(points, (48, 80), (6, 10))
    start, _ = keypoints.decode_keypoints(encoded, (48, 80))
    for t in range(1, 5):
        np.testing.assert_allclose(tracks.points[t], start + [8.0 * t, 0.0], atol=1e-9)
        np.testing.assert_allclose(tracks.confidence[t], 1.0)


def test_iter_matches_and_nan_points_stay_not_found(net):
    clip = generate_clip(num_frames=4, height=48, width=64)
    points = [[10.0, 10.0], [np.nan, np.nan], [40.0, 30.0]]
    tracks = track_keypoints(clip.frames, points, net, context=2)
    assert tracks.points[:, 1].isnan().all() and (tracks.confidence[:, 1] == 0).all()
    assert tracks.points[:, [0, 2]].isfinite().all()
    for t, p, c in track_keypoints_iter(clip.frames, points, net, context=2):
        np.testing.assert_array_equal(p, tracks.points[t])
        np.testing.assert_array_equal(c, tracks.confidence[t])


@pytest.mark.parametrize(
    "points, message",
    [
        ([[64.0, 10.0]], r"point 0 \(x=64, y=10\) is outside the 64x48 frame"),
        ([[1.0, 1.0], [3.0, -0.5]], r"point 1 \(x=3, y=-0.5\)"),
        ([[np.nan, np.nan]], "every point is NaN"),
        ([1.0, 2.0, 3.0], r"\[K, 2\]"),
    ],
)
def test_bad_points(net, points, message):
    with pytest.raises(ValueError, match=message):
        track_keypoints(torch.zeros(2, 3, 48, 64, dtype=torch.uint8), points, net)


def test_inside_means_0_to_size():
    check_points([[0, 0], [63.99, 47.99]], (48, 64))


def test_resizing_options(net):
    clip = generate_clip(num_frames=3, height=48, width=64)
    points = [[20.0, 20.0], [50.0, 30.0]]
    big = track_keypoints(clip.frames, points, net, size=(96, 96), context=2)
    small = track_keypoints(clip.frames, points, net, short_side=24, context=2)
    for tracks in (big, small):  # points stay in the original frame's pixels
        assert tracks.points.shape == (3, 2, 2)
        assert (tracks.points[1:] >= 0).all() and (tracks.points[1:, :, 0] < 64).all()
    with pytest.raises(ValueError, match="not both"):
        track_keypoints(clip.frames, points, net, size=(32, 32), short_side=24)
    mixed = [clip.frames[0], clip.frames[1][:, :40]]
    with pytest.raises(ValueError, match=r"frame 1 is \(40, 64\)"):
        track_keypoints(mixed, points, net, size=(32, 32))


def test_jhmdb_sample_first_frames(data_dir, net):
    root = data_dir / "jhmdb-sample"
    frames = sorted((root / "Rename_Images").glob("*/*/*.png"))[:4]
    gt = read_joint_positions(next((root / "joint_positions").glob("*/*/joint_positions.mat")))
    tracks = track_keypoints(frames, gt[0], net, size=(320, 320))
    assert tracks.points.shape == (4, len(JHMDB_JOINTS), 2)
    assert tracks.points.isfinite().all()
    # frame 1 is close to frame 0: even the toy features keep most joints near
    assert metrics.pck(tracks.points[1:2], gt[1:2], 0.5) > 50
