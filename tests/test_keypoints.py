"""JHMDB keypoint encoding (CRW's Gaussian patch) and decoding (top-3 weighted mean)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sfcprop.labels.keypoints import decode_keypoints, encode_keypoints, grid_size

HW, GRID = (240, 320), (40, 40)  # a JHMDB frame, resized to 320x320 -> a 40x40 grid


def reference_patch(px: float, py: float, grid=GRID) -> np.ndarray:
    """CRW's map for one joint at grid position (px, py), written from its description:
    a 4x4 patch from int(p - 1.5) (truncation) holding exp(-d^2 / (2 * 0.5^2)) for
    offsets d = -2..1 around its third cell, clipped to the grid."""
    out = np.zeros(grid)
    x0, y0 = int(px - 1.5), int(py - 1.5)
    for i in range(4):
        for j in range(4):
            y, x = y0 + i, x0 + j
            if 0 <= y < grid[0] and 0 <= x < grid[1]:
                out[y, x] = math.exp(-((i - 2) ** 2 + (j - 2) ** 2) / (2 * 0.25))
    return out


def test_encoding_matches_crw_patch_and_background():
    rng = np.random.default_rng(0)
    pts = np.c_[rng.uniform(-20, 340, 30), rng.uniform(-20, 260, 30)]  # some outside
    soft = encode_keypoints(pts, HW, GRID)
    assert soft.shape == (31, 40, 40) and soft.dtype == torch.float32
    for k, (x, y) in enumerate(pts):
        ref = reference_patch(x * 40 / 320, y * 40 / 240)
        assert np.allclose(soft[k + 1].numpy(), ref, atol=1e-7), k
    joints = soft[1:]
    assert torch.equal(soft[0], (joints == 0).all(0).float())  # 1 exactly where no joint
    assert soft[1:].amax(dim=(1, 2)).max() == 1.0  # peak exactly 1


def test_peak_sits_on_the_nearest_cell_top_left_aligned():
    soft = encode_keypoints(np.array([[100.0, 50.0], [99.0, 49.0]]), HW, GRID)
    # x: 100 * 40 / 320 = 12.5 -> cell 13 (halves up); y: 50 * 40 / 240 = 8.33 -> cell 8
    assert divmod(int(soft[1].argmax()), 40) == (8, 13)
    assert soft[1, 8, 13] == 1.0 and soft[1, 8, 14] == pytest.approx(math.exp(-2))
    assert soft[1, 6:10, 11:15].count_nonzero() == 16 and soft[1].count_nonzero() == 16
    assert divmod(int(soft[2].argmax()), 40) == (8, 12)  # 12.375, 8.17


def test_crw_truncation_near_the_border_and_the_floor_variant():
    pts = np.array([[8.0, 1.2]])  # grid x 1.0, y 0.2: CRW puts the peak at (1, 2), not (0, 1)
    crw = encode_keypoints(pts, HW, GRID)
    floor = encode_keypoints(pts, HW, GRID, rounding="floor")
    assert divmod(int(crw[1].argmax()), 40) == (1, 2)
    assert divmod(int(floor[1].argmax()), 40) == (0, 1)
    with pytest.raises(ValueError, match="rounding"):
        encode_keypoints(pts, HW, GRID, rounding="round")


def test_joints_outside_or_nan_give_an_empty_channel_and_decode_as_not_found():
    soft = encode_keypoints(np.array([[-40.0, 10.0], [np.nan, 5.0], [160.0, 120.0]]), HW, GRID)
    assert soft[1].sum() == 0 and soft[2].sum() == 0 and soft[3].sum() > 0
    points, conf = decode_keypoints(soft, HW)
    assert np.isnan(points[:2]).all() and conf[:2].tolist() == [0.0, 0.0]
    assert np.isfinite(points[2]).all() and conf[2] == 1.0


def test_decoding_a_hand_made_map():
    soft = torch.zeros(2, 10, 20)
    soft[1, 2, 3], soft[1, 2, 4], soft[1, 5, 5], soft[1, 7, 7] = 0.5, 0.3, 0.2, 0.1
    points, conf = decode_keypoints(soft, (80, 160))  # 8 px per cell both ways
    # top 3: weights 0.5, 0.3, 0.2 -> x = 3.7 cells, y = 2.6 cells
    assert points[0] == pytest.approx([3.7 * 8, 2.6 * 8])
    assert conf[0] == pytest.approx(0.5)
    soft[1] *= 7  # normalised: the scale does not matter
    assert decode_keypoints(soft, (80, 160))[0] == pytest.approx(points)
    with pytest.raises(ValueError, match=r"\[K \+ 1, h, w\]"):
        decode_keypoints(torch.zeros(1, 4, 4), (32, 32))


def test_round_trip_comes_back_within_half_a_cell():
    rng = np.random.default_rng(1)
    # near cell positions (within 0.35 cells), away from the border
    cells = np.c_[rng.integers(2, 38, 200), rng.integers(2, 38, 200)].astype(float)
    cells += rng.uniform(-0.35, 0.35, cells.shape)
    pts = cells * [320 / 40, 240 / 40]
    back, conf = decode_keypoints(encode_keypoints(pts, HW, GRID), HW)
    err_cells = np.abs(back - pts) / [8, 6]
    assert err_cells.max() <= 0.5 and (conf == 1).all()
    # anywhere: the nearest cell (<= 0.5) plus the tie-break pull (0.107) per axis
    pts = np.c_[rng.uniform(12, 308, 500), rng.uniform(9, 231, 500)]
    back, _ = decode_keypoints(encode_keypoints(pts, HW, GRID), HW)
    bias = math.exp(-2) / (1 + 2 * math.exp(-2))
    assert (np.abs(back - pts) / [8, 6]).max() <= 0.5 + bias + 1e-9
    assert np.hypot(*((back - pts) / [8, 6]).T).mean() < 0.5


def test_grid_size():
    assert grid_size((320, 320)) == (40, 40)
    assert grid_size((480, 854)) == (60, 107)
