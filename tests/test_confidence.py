"""`sfcprop.session.confidence`: per-object measures of a frame and the flags (lost objects,
scene cuts), on hand-made soft maps whose answers are worked out here."""

import numpy as np
import pytest
import torch

from sfcprop.session import confidence
from sfcprop.session.confidence import Flag, areas, frame_stats, is_cut, lost_flags
from sfcprop.session.estimate import AREA_FLOOR

OLD = "certainty-area"  # the 0.2 formula, by name


def soft_map(winners: list[list[int]], values: list[list[float]], channels: int = 3):
    """Soft labels `[channels, h, w]`: cell (y, x) gives `values[y][x]` to channel
    `winners[y][x]` and splits the rest evenly over the other channels."""
    win = torch.tensor(winners)
    top = torch.tensor(values)
    rest = (1 - top) / (channels - 1)
    soft = rest.expand(channels, *win.shape).clone()
    return soft.scatter_(0, win[None], top[None])


# 2 x 3 cells: object 1 wins 3 cells (0.9, 0.7, 0.5), object 2 one (0.6), background two
SOFT = soft_map([[1, 1, 0], [1, 2, 0]], [[0.9, 0.7, 0.8], [0.5, 0.6, 1.0]])


def test_areas_count_the_cells_each_channel_wins():
    assert areas(SOFT).tolist() == [2.0, 3.0, 1.0]
    assert areas(torch.zeros(4, 2, 2)).tolist() == [4.0, 0.0, 0.0, 0.0]  # ties: the first
    assert areas(SOFT).dtype == np.float64


def test_certainty_area_and_confidence_by_hand():
    ref = np.array([2.0, 6.0, 2.0])  # object 1 had 6 cells, object 2 had 2
    stats = frame_stats(SOFT, ref, method=OLD)
    np.testing.assert_allclose(stats.certainty, [(0.9 + 0.7 + 0.5) / 3, 0.6], rtol=1e-6)
    np.testing.assert_allclose(stats.area, [0.5, 0.5])  # 3 of 6, 1 of 2
    np.testing.assert_allclose(stats.agreement, [1.0, 1.0])  # one pass
    # an object at half its keyframe area is above AREA_FLOOR: confidence = certainty
    np.testing.assert_allclose(stats.confidence, stats.certainty)
    shrunk = frame_stats(SOFT, np.array([2.0, 30.0, 2.0]), method=OLD)  # object 1: 3 of 30 cells
    assert shrunk.area[0] == pytest.approx(0.1)
    want = 0.7 * (0.1 / AREA_FLOOR)  # certainty 0.7, scaled by the area below the floor
    assert shrunk.confidence[0] == pytest.approx(want)


def test_area_is_capped_at_1_and_absent_objects_are_certain():
    grown = frame_stats(
        SOFT, np.array([2.0, 1.0, 0.0]), method=OLD
    )  # object 1: 3 cells of a keyframe 1
    assert grown.area.tolist() == [1.0, 1.0]  # object 2: no keyframe area, a ratio of 1
    gone = soft_map([[0, 0], [0, 0]], [[0.7, 0.7], [0.7, 0.7]])
    stats = frame_stats(gone, np.array([1.0, 0.0, 3.0]), method=OLD)
    assert stats.confidence.tolist() == [1.0, 0.0]  # 1: absent there and here; 2: lost
    assert stats.certainty.tolist() == [1.0, 0.0] and stats.area.tolist() == [1.0, 0.0]


def test_agreement_is_the_iou_of_the_two_passes():
    forward = soft_map([[1, 1, 0], [2, 0, 0]], [[0.9] * 3] * 2)
    backward = soft_map([[0, 1, 1], [2, 0, 0]], [[0.9] * 3] * 2)
    both = torch.stack([forward, backward])
    stats = frame_stats((forward + backward) / 2, np.array([2.0, 2.0, 1.0]), both, method=OLD)
    np.testing.assert_allclose(stats.agreement, [1 / 3, 1.0])  # object 1: 1 cell of 3


def test_lost_flags_follow_the_area():
    soft = torch.zeros(3, 4, 4)
    soft[0] = 1
    soft[:, 0, 0] = torch.tensor([0.0, 1.0, 0.0])  # object 1 keeps 1 cell of its 16
    ref = np.array([0.0, 16.0, 0.0])
    stats = confidence.frame_stats(soft, ref, method=OLD)
    assert stats.area[0] == 1 / 16
    assert stats.confidence[0] == pytest.approx((1 / 16) / AREA_FLOOR)
    assert stats.confidence[1] == 1  # object 2: absent from its keyframe and here
    lost = confidence.lost_flags(7, stats, ref, [1, 2], OLD)  # 0.2's rule, by name
    assert lost == [confidence.Flag(7, "lost", 1, 1 / 16)]


def test_lost_flags_follow_the_estimated_j():
    stats = confidence.FrameStats(np.array([0.15, 0.25, 0.1]), *[np.ones(3)] * 6)
    ref = np.array([9.0, 4.0, 4.0, 0.0])  # the third object is absent from its keyframe
    got = confidence.lost_flags(2, stats, ref, [3, 5, 8])
    assert got == [confidence.Flag(2, "lost", 3, 0.15)]  # 0.25 is not below LOST_J = 0.2
    assert confidence.LOST_J == 0.2


def test_lost_flags_name_the_objects_id_and_skip_those_absent_from_the_keyframe():
    stats = confidence.FrameStats(*[np.array([0.05, 0.0, 0.5])] * 7)
    ref = np.array([5.0, 10.0, 0.0, 4.0])  # the object of id 9 is absent from its keyframe
    assert lost_flags(3, stats, ref, [4, 9, 12]) == [Flag(3, "lost", 4, 0.05)]


def test_cut_and_lost_rules():
    # frame 6: dissimilarity 0.2, 10x the median 0.02 before it: a cut
    sims = [None, 0.98, 0.97, 0.98, 0.99, 0.97, 0.8, 0.98]
    assert confidence.cut_flags(sims) == [confidence.Flag(6, "cut", None, 0.8)]
    assert confidence.cut_flags([None, 0.999, 0.999, 0.999, 0.96]) == []  # below CUT_MIN
    assert confidence.cut_flags([None, 0.8, 0.82, 0.8, 0.6]) == []  # 2x the median only
    runs = confidence.lost_runs(
        [confidence.Flag(t, "lost", 1, 0.0) for t in (3, 4, 5, 9)]
        + [confidence.Flag(4, "lost", 2, 0.0)]
    )
    assert runs == [(1, 3, 5), (1, 9, 9), (2, 4, 4)]


def test_a_cut_needs_three_frames_before_it_and_looks_at_the_last_twenty():
    assert not is_cut(0.1, [0.99, 0.99])  # too little history to judge
    assert is_cut(0.1, [0.99, 0.99, 0.99])
    # 25 dissimilar frames, then 20 alike: the median of the last 20 is 0.99 (a cut at 0.8);
    # over all 45 it would be 0.5, and 0.2 is not 4x 0.5
    history = [0.5] * 25 + [0.99] * confidence.CUT_HISTORY
    assert is_cut(0.8, history)
    assert not is_cut(0.8, history[:25] + history[25:30])
    flags = confidence.cut_flags([None, *history, 0.8])
    assert flags == [Flag(46, "cut", None, 0.8)]
