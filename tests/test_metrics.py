"""Metrics against hand-computed cases and an independent scipy computation of F."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sfcprop.bench import metrics

scipy_ndimage = pytest.importorskip("scipy.ndimage")


def square(shape, top, left, side):
    m = np.zeros(shape, bool)
    m[top : top + side, left : left + side] = True
    return m


# ----------------------------------------------------------------------------- J and F


def test_empty_prediction_and_empty_ground_truth():
    gt = square((30, 40), 5, 5, 10)
    empty = np.zeros_like(gt)
    assert metrics.jaccard(empty, gt) == 0.0
    assert metrics.boundary_prf(empty, gt) == (0.0, 1.0, 0.0)  # P=1, R=0 -> F=0
    assert metrics.jaccard(gt, empty) == 0.0
    assert metrics.boundary_prf(gt, empty) == (0.0, 0.0, 1.0)  # P=0, R=1 -> F=0
    assert metrics.jaccard(empty, empty) == 1.0
    assert metrics.boundary_prf(empty, empty) == (1.0, 1.0, 1.0)


def test_boundary_of_a_square_is_the_outline_shifted_towards_the_origin():
    # a square on rows/cols 10..19: its boundary is the outline of rows/cols 9..19
    b = metrics.boundary_map(square((40, 40), 10, 10, 10))
    outline = square((40, 40), 9, 9, 11) & ~square((40, 40), 10, 10, 9)
    assert np.array_equal(b, outline)
    assert b.sum() == 40


def test_image_border_is_not_a_boundary():
    full = np.ones((8, 9), bool)
    assert not metrics.boundary_map(full).any()
    # the last row only looks east, the last column only south
    m = np.zeros((5, 5), bool)
    m[4, 2] = True  # bottom row pixel: boundary itself (east differs) and its west neighbour
    b = metrics.boundary_map(m)
    assert b[4, 1] and b[4, 2] and b[3, 1] and b[3, 2] and b.sum() == 4


def test_shifted_square_has_the_hand_computed_f():
    # GT on cols 10..19, prediction 3 px right, tolerance r = 2 px (bound_th >= 1 is pixels).
    # Predicted outline (rows 9..19, cols 12..22, 40 px): top and bottom rows match for cols
    # 12..21 (10 + 10), the left column for rows 10, 11, 17, 18 (within 2 of GT's top/bottom
    # rows), the right column never: P = 24/40; by symmetry R = 24/40; F = 0.6.
    gt = square((40, 40), 10, 10, 10)
    pred = square((40, 40), 10, 13, 10)
    f, p, r = metrics.boundary_prf(pred, gt, bound_th=2)
    assert (p, r) == (0.6, 0.6)
    assert f == pytest.approx(0.6, abs=1e-15)
    assert metrics.jaccard(pred, gt) == pytest.approx(70 / 130)
    # within the tolerance every boundary pixel is matched
    assert metrics.boundary_prf(pred, gt, bound_th=3) == (1.0, 1.0, 1.0)


def test_tolerance_is_8_px_at_480p():
    assert metrics.boundary_radius((480, 854)) == 8  # ceil(0.008 * 979.6)
    assert metrics.boundary_radius((480, 854), bound_th=3) == 3
    assert metrics.disk(8).sum() == 197
    assert np.array_equal(metrics.disk(1), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])


def reference_bmap(seg):
    """`_seg2bmap` as the official code writes it (independent of sfcprop)."""
    seg = seg.astype(bool)
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1], s[:-1, :], se[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def reference_f(pred, gt, bound_th=0.008):
    """Official `f_measure` with scipy's binary_dilation standing in for cv2.dilate."""
    r = bound_th if bound_th >= 1 else math.ceil(bound_th * np.linalg.norm(pred.shape))
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    selem = x**2 + y**2 <= r**2
    fb, gb = reference_bmap(pred), reference_bmap(gt)
    fd = scipy_ndimage.binary_dilation(fb, selem)
    gd = scipy_ndimage.binary_dilation(gb, selem)
    nf, ng = fb.sum(), gb.sum()
    if nf == 0 and ng > 0:
        p, rc = 1.0, 0.0
    elif nf > 0 and ng == 0:
        p, rc = 0.0, 1.0
    elif nf == 0 and ng == 0:
        p, rc = 1.0, 1.0
    else:
        p, rc = (fb & gd).sum() / nf, (gb & fd).sum() / ng
    return 0.0 if p + rc == 0 else 2 * p * rc / (p + rc)


def random_mask(rng, h, w):
    kind = rng.integers(3)
    if kind == 0:  # noise
        return rng.random((h, w)) < rng.random()
    m = np.zeros((h, w), bool)
    for _ in range(rng.integers(1, 4)):  # boxes, often touching the border
        y, x = rng.integers(-5, h), rng.integers(-5, w)
        m[max(y, 0) : y + rng.integers(1, h + 1), max(x, 0) : x + rng.integers(1, w + 1)] = True
    if kind == 2:  # a blob
        yy, xx = np.mgrid[:h, :w]
        m |= (yy - h / 2) ** 2 / 3 + (xx - w / 3) ** 2 < rng.integers(1, h * w // 4 + 2)
    return m


def test_boundary_dilation_and_f_match_an_independent_computation():
    rng = np.random.default_rng(0)
    for i in range(150):
        h, w = (int(v) for v in rng.integers(1, 70, 2))
        a, b = random_mask(rng, h, w), random_mask(rng, h, w)
        assert np.array_equal(metrics.boundary_map(a), reference_bmap(a))
        r = int(rng.integers(1, 10))
        y, x = np.mgrid[-r : r + 1, -r : r + 1]
        ref = scipy_ndimage.binary_dilation(a, x**2 + y**2 <= r**2)
        assert np.array_equal(metrics.dilate_disk(a, r), ref), (h, w, r)
        th = (0.008, 0.05, 0.15, 3)[i % 4]
        assert metrics.f_measure(a, b, th) == pytest.approx(reference_f(a, b, th), abs=1e-12)


def test_f_at_480p_matches_the_independent_computation():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:480, :854]
    for _ in range(3):
        cy, cx, r = rng.integers(0, 480), rng.integers(0, 854), rng.integers(20, 200)
        gt = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        noise = rng.random(gt.shape) < 0.001
        pred = np.roll(gt, tuple(rng.integers(-12, 12, 2)), axis=(0, 1)) ^ noise
        assert metrics.f_measure(pred, gt) == pytest.approx(reference_f(pred, gt), abs=1e-12)


def test_frame_scores_per_object():
    gt = np.zeros((20, 30), np.uint8)
    gt[2:8, 2:8] = 1
    gt[10:15, 10:20] = 2
    gt[0, 0] = 255  # void in the ground truth: not any object
    pred = np.zeros_like(gt)
    pred[2:8, 2:8] = 1  # object 1 exact; object 2 missing
    j, f = metrics.frame_scores(pred, gt, n_objects=2)
    assert j.tolist() == [1.0, 0.0] and f.tolist() == [1.0, 0.0]
    j, f = metrics.frame_scores(np.zeros_like(gt), np.zeros_like(gt), n_objects=2)
    assert j.tolist() == [1.0, 1.0] and f.tolist() == [1.0, 1.0]  # absent and not predicted
    with pytest.raises(ValueError, match="id 3"):
        metrics.frame_scores(np.full_like(gt, 3), gt, n_objects=2)
    with pytest.raises(ValueError, match="prediction is"):
        metrics.frame_scores(pred[:-1], gt, n_objects=2)


# ----------------------------------------------------------------------------- statistics


def test_statistics_mean_recall_and_decay_bins():
    # T = 10: edges round(linspace(1, 10, 5)) - 1 = 0, 2, 5, 7, 9 -> bins [0:3] ... [7:10]
    m, r, d = metrics.statistics(np.arange(10) / 10)
    assert m == pytest.approx(0.45) and r == pytest.approx(0.4)  # 0.6..0.9 are above 0.5
    assert d == pytest.approx(0.1 - 0.8)
    # T = 3: edges 0, 1, 1, 2, 2 -> first bin [0:2], last bin [2:3]
    assert metrics.statistics(np.array([0.9, 0.5, 0.1]))[2] == pytest.approx(0.7 - 0.1)
    # T = 1: every bin is the one frame
    assert metrics.statistics(np.array([0.7])) == pytest.approx((0.7, 1.0, 0.0))
    # T = 100: edges 0, 25, 50, 74, 99 -> first bin 26 frames, last 26
    v = np.r_[np.ones(26), np.zeros(74)]
    assert metrics.statistics(v)[2] == pytest.approx(1.0)
    v = np.r_[np.ones(27), np.zeros(73)]
    assert metrics.statistics(v)[2] == pytest.approx(1.0)  # frame 26 is outside the first bin
    v[74] = 1
    assert metrics.statistics(v)[2] == pytest.approx(1 - 1 / 26)  # frame 74 is in the last
    # longer than 256 frames (the official uint8 cast would give NaN here)
    assert metrics.statistics(np.linspace(1, 0, 300))[2] == pytest.approx(224 / 299)


def test_statistics_nan_and_empty():
    m, r, _ = metrics.statistics(np.array([0.5, 0.6, np.nan]))
    assert m == pytest.approx(0.55)
    assert r == pytest.approx(1 / 3)  # strict > 0.5; NaN frames count as below
    assert all(math.isnan(v) for v in metrics.statistics(np.array([])))


def test_davis_summary():
    table = metrics.davis_summary(
        {
            "a_1": (np.array([1.0, 1.0]), np.array([1.0, 1.0])),
            "a_2": (np.array([0.0, 0.0]), np.array([0.5, 0.5])),
        }
    )
    assert list(table) == list(metrics.DAVIS_MEASURES)
    assert table["J-Mean"] == 0.5 and table["F-Mean"] == 0.75
    assert table["J&F-Mean"] == 0.625
    assert table["J-Recall"] == 0.5 and table["F-Recall"] == 0.5
    assert table["J-Decay"] == 0.0


# ----------------------------------------------------------------------------- PCK


def test_pck_with_known_distances():
    gt = np.array([[[0.0, 0.0], [30.0, 40.0]]] * 2)  # box diagonal 50 -> size 0.6 * 50 = 30
    pred = gt.copy()
    pred[:, 0, 0] += 3.0  # exactly 0.1 * 30: correct (<=) at 0.1
    pred[0, 1, 1] += 3.1  # beyond 0.1, within 0.2
    pred[1, 1, 1] += 7.0  # beyond 0.2
    d = metrics.pck_distances(pred, gt)
    assert d == pytest.approx(np.array([[0.1, 3.1 / 30], [0.1, 7 / 30]]))
    assert metrics.pck_per_joint(pred, gt, 0.1).tolist() == [100.0, 0.0]
    assert metrics.pck_per_joint(pred, gt, 0.2).tolist() == [100.0, 50.0]
    assert metrics.pck(pred, gt, 0.1) == 50.0 and metrics.pck(pred, gt, 0.2) == 75.0


def test_pck_drops_joints_not_found_from_the_count_and_the_box():
    gt = np.array([[[0.0, 0.0], [30.0, 40.0], [300.0, 400.0]]])
    pred = gt.copy()
    pred[0, 2] = np.nan  # not found: the box spans joints 0 and 1 only
    pred[0, 1, 0] += 2.9
    assert metrics.pck_per_joint(pred, gt, 0.1)[:2].tolist() == [100.0, 100.0]
    assert math.isnan(metrics.pck_per_joint(pred, gt, 0.1)[2])
    assert metrics.pck(pred, gt, 0.1) == 100.0


# ----------------------------------------------------------------------------- mIoU


def test_miou_from_a_small_confusion_matrix():
    gt = np.array([[0, 0, 1], [1, 2, 2], [255, 255, 255]])
    pred = np.array([[0, 1, 1], [1, 2, 0], [3, 3, 3]])
    conf = metrics.confusion_matrix(gt, pred, n_classes=4)
    assert conf.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    iou = metrics.class_iou(conf)
    assert iou[:3] == pytest.approx([1 / 3, 2 / 3, 1 / 2]) and math.isnan(iou[3])
    assert metrics.mean_iou(conf) == pytest.approx(0.5)  # class 3 absent: left out
    assert metrics.mean_iou(conf + conf) == pytest.approx(0.5)  # summed over frames
    with pytest.raises(ValueError, match="predicted ids"):
        metrics.confusion_matrix(gt[:2], pred[:2] + 3, n_classes=4)
