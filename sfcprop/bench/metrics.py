"""Evaluation metrics: DAVIS J and F (official davis2017-evaluation), JHMDB PCK, VIP mIoU.

Everything here is plain numpy and matches the reference tools number for number:

- J, F, Mean / Recall / Decay: `davis2017-evaluation` (`metrics.py`, `utils.py`,
  `evaluation.py`) in its semi-supervised mode, which passes no void mask. F's boundary is
  `_seg2bmap` (1-px, towards the origin, image border not a boundary) and its dilation is
  `cv2.dilate(.., skimage.morphology.disk(r))`, reproduced exactly without OpenCV/skimage.
- PCK: CRW's `eval_pck.py` (spec section 6).
- mIoU: TimeCycle's / UVC's `eval_vip.py` (summed confusion matrix, nanmean over classes).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np

DAVIS_MEASURES = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


# --------------------------------------------------------------------------- DAVIS J and F


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """bool `[H, W]` -> bool `[H, W]` 1-px boundary (`_seg2bmap` of the official code).

    A pixel is boundary when it differs from its east, south or south-east neighbour;
    outside the image counts as background except that the last row only looks east, the
    last column only south, and the bottom-right pixel is never a boundary.
    """
    seg = np.asarray(mask).astype(bool)
    b = np.zeros_like(seg)
    inner = seg[:-1, :-1]
    b[:-1, :-1] = (inner ^ seg[:-1, 1:]) | (inner ^ seg[1:, :-1]) | (inner ^ seg[1:, 1:])
    b[-1, :-1] = seg[-1, :-1] ^ seg[-1, 1:]
    b[:-1, -1] = seg[:-1, -1] ^ seg[1:, -1]
    b[-1, -1] = False
    return b


def disk(radius: int) -> np.ndarray:
    """bool `[2r+1, 2r+1]` disk `x^2 + y^2 <= r^2` (`skimage.morphology.disk`)."""
    r = int(radius)
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return x * x + y * y <= r * r


def dilate_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """bool `[H, W]` dilated by `disk(radius)`; outside the image contributes nothing
    (`cv2.dilate`'s default border). Rows of the disk are runs, so this is one running sum
    per run half-width and one shifted OR per disk row."""
    b = np.asarray(mask, dtype=bool)
    r = int(radius)
    h, w = b.shape
    if r <= 0 or not b.any():
        return b.copy()
    # cs[:, j] = number of set pixels in columns < j - r (clipped to 0..w)
    cs = np.zeros((h, w + 1 + 2 * r + 1), dtype=np.int32)
    np.cumsum(b, axis=1, out=cs[:, r + 1 : r + 1 + w])
    cs[:, r + 1 + w :] = cs[:, r + w : r + w + 1]
    runs: dict[int, np.ndarray] = {}
    out = np.zeros_like(b)
    for dy in range(-min(r, h - 1), min(r, h - 1) + 1):
        half = math.isqrt(r * r - dy * dy)
        if half not in runs:  # any set pixel in columns x - half .. x + half
            runs[half] = cs[:, r + half + 1 : r + half + 1 + w] > cs[:, r - half : r - half + w]
        run = runs[half]
        if dy >= 0:
            out[: h - dy] |= run[dy:]
        else:
            out[-dy:] |= run[: h + dy]
    return out


def boundary_radius(shape: tuple[int, int], bound_th: float = 0.008) -> int:
    """Tolerance in pixels: `ceil(bound_th * sqrt(H^2 + W^2))`, or `bound_th` itself when
    it is >= 1 (8 px at 480x854)."""
    if bound_th >= 1:
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """Region similarity J of two bool `[H, W]` masks; an empty union gives 1."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    union = np.count_nonzero(pred | gt)
    return 1.0 if union == 0 else np.count_nonzero(pred & gt) / union


def _crop(*masks: np.ndarray) -> tuple[slice, slice]:
    """Bounding box of all set pixels, grown by 1 px (boundaries are unchanged in it)."""
    any_set = np.logical_or.reduce(masks)
    rows, cols = np.flatnonzero(any_set.any(axis=1)), np.flatnonzero(any_set.any(axis=0))
    h, w = any_set.shape
    return (
        slice(max(rows[0] - 1, 0), min(rows[-1] + 2, h)),
        slice(max(cols[0] - 1, 0), min(cols[-1] + 2, w)),
    )


def boundary_prf(
    pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008
) -> tuple[float, float, float]:
    """Boundary (F, precision, recall) of two bool `[H, W]` masks (official `f_measure`).

    Empty predicted boundary with some ground truth gives (P, R) = (1, 0), the reverse
    (0, 1), both empty (1, 1); F = 2PR / (P + R), or 0 when P + R = 0.
    """
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"masks must be [H, W] of one shape, got {pred.shape} and {gt.shape}")
    radius = boundary_radius(pred.shape, bound_th)
    if not (pred.any() or gt.any()):
        return 1.0, 1.0, 1.0
    # Boundaries lie on or next to set pixels: within the bounding box grown by 1 px the
    # boundary maps and the dilation (only read at boundary pixels) are exactly those of
    # the whole frame, whose border rule applies where the box touches the border.
    ys, xs = _crop(pred, gt)
    fg, gb = boundary_map(pred[ys, xs]), boundary_map(gt[ys, xs])
    n_fg, n_gt = int(np.count_nonzero(fg)), int(np.count_nonzero(gb))
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = np.count_nonzero(fg & dilate_disk(gb, radius)) / n_fg
        recall = np.count_nonzero(gb & dilate_disk(fg, radius)) / n_gt
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return f, precision, recall


def f_measure(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """Boundary F of two bool `[H, W]` masks (see `boundary_prf`)."""
    return boundary_prf(pred, gt, bound_th)[0]


def frame_scores(
    pred: np.ndarray, gt: np.ndarray, n_objects: int, bound_th: float = 0.008
) -> tuple[np.ndarray, np.ndarray]:
    """J and F of objects 1..n_objects in one frame: ids `[H, W]` -> (J `[N]`, F `[N]`).

    An id in `pred` above `n_objects` is an error (as in the official tool).
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction is {pred.shape} but the ground truth is {gt.shape}")
    if pred.size and int(pred.max()) > n_objects:
        raise ValueError(
            f"the prediction holds id {int(pred.max())} but the sequence has {n_objects} objects"
        )
    n = n_objects + 1
    g = np.where(gt.astype(np.int64) <= n_objects, gt, 0).astype(np.int64)  # other ids: bg
    conf = np.bincount((g * n + pred.astype(np.int64)).ravel(), minlength=n * n).reshape(n, n)
    inter = np.diag(conf)[1:]
    union = conf.sum(0)[1:] + conf.sum(1)[1:] - inter
    j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    f = np.array([f_measure(pred == k, g == k, bound_th) for k in range(1, n)])
    return j.astype(np.float64), f


def statistics(values: np.ndarray) -> tuple[float, float, float]:
    """Per-object Mean, Recall and Decay of per-frame values `[T]` (official
    `db_statistics`): nanmean; fraction of frames above 0.5; mean of the first of 4 bins
    minus mean of the last, bins cut at `round(linspace(1, T, 5) + 1e-10) - 1` with the
    end index included (neighbouring bins share a frame). T = 0 gives NaNs.

    The official code casts the bin edges to uint8, which breaks Decay (NaN) for T > 256;
    here they are plain integers (identical for T <= 256, every DAVIS sequence).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = float(np.nanmean(v))
        recall = float(np.nanmean(v > 0.5))
        ids = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(np.int64)
        bins = [v[ids[i] : ids[i + 1] + 1] for i in range(4)]
        decay = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    return mean, recall, decay


def davis_summary(per_object: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """The official global table from per-object per-frame scores `{name: (J [T], F [T])}`.

    Each measure is the plain mean over objects of the per-object statistic;
    J&F-Mean = (J-Mean + F-Mean) / 2. Keys: `DAVIS_MEASURES`.
    """
    if not per_object:
        raise ValueError("no objects to summarise")
    js = np.array([statistics(j) for j, _ in per_object.values()])
    fs = np.array([statistics(f) for _, f in per_object.values()])
    jm, jr, jd = js.mean(axis=0)
    fm, fr, fd = fs.mean(axis=0)
    values = ((jm + fm) / 2, jm, jr, jd, fm, fr, fd)
    return {k: float(v) for k, v in zip(DAVIS_MEASURES, values, strict=True)}


# --------------------------------------------------------------------------- JHMDB PCK


def pck_distances(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Joint distances over the person's size: `[N, K]` from `[N, K, 2]` (x, y) pixels.

    The size is 0.6 x the diagonal of the bounding box of the ground-truth joints of that
    frame, taken over the joints that count: those with a finite prediction and ground
    truth (CRW drops joints it did not find, from the box too). Joints that do not count
    are NaN; a frame whose box has size 0 gives inf (counted, never correct).
    """
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"need pred and gt [N, K, 2], got {pred.shape} and {gt.shape}")
    valid = np.isfinite(pred).all(-1) & np.isfinite(gt).all(-1)  # [N, K]
    g = np.where(valid[..., None], gt, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        lo, hi = np.nanmin(g, axis=1), np.nanmax(g, axis=1)  # [N, 2]
    size = 0.6 * np.hypot(*(hi - lo).T)  # [N]
    dist = np.hypot(*(pred - gt).transpose(2, 0, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = dist / size[:, None]
    out[~np.isfinite(out)] = np.inf  # a box of size 0: counted, never correct
    return np.where(valid, out, np.nan)


def pck_per_joint(pred: np.ndarray, gt: np.ndarray, alpha: float) -> np.ndarray:
    """Percentage `[K]` of frames where joint k is within alpha x size (see `pck_distances`);
    inputs `[N, K, 2]` already without each clip's frame 0. NaN for a joint that never
    counts."""
    d = pck_distances(pred, gt)
    counted = ~np.isnan(d)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * ((d <= alpha) & counted).sum(0) / counted.sum(0)


def pck(pred: np.ndarray, gt: np.ndarray, alpha: float) -> float:
    """PCK@alpha in percent: mean over joints of `pck_per_joint` (CRW `computePCK`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return float(np.nanmean(pck_per_joint(pred, gt, alpha)))


# --------------------------------------------------------------------------- VIP mIoU


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, n_classes: int = 20) -> np.ndarray:
    """int64 `[n, n]` counts, rows = ground truth, columns = prediction, from ids `[H, W]`.

    Pixels whose ground truth is outside 0..n-1 (e.g. 255, void) are ignored; a predicted
    id outside 0..n-1 is an error.
    """
    gt, pred = np.asarray(gt).astype(np.int64), np.asarray(pred).astype(np.int64)
    if gt.shape != pred.shape:
        raise ValueError(f"prediction is {pred.shape} but the ground truth is {gt.shape}")
    keep = (gt >= 0) & (gt < n_classes)
    p = pred[keep]
    if p.size and (p.min() < 0 or p.max() >= n_classes):
        raise ValueError(f"predicted ids must be in 0..{n_classes - 1}, got {p.min()}..{p.max()}")
    counts = np.bincount(gt[keep] * n_classes + p, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def class_iou(conf: np.ndarray) -> np.ndarray:
    """Per-class IoU `[n]` of a confusion matrix; NaN for a class absent from both."""
    conf = np.asarray(conf, dtype=np.float64)
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union


def mean_iou(conf: np.ndarray) -> float:
    """mIoU: nanmean of `class_iou` over the classes (background included, as
    TimeCycle's / UVC's `eval_vip.py` does with its 20 classes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return float(np.nanmean(class_iou(conf)))
