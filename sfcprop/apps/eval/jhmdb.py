"""`sfcprop eval jhmdb`: frames at 320x320, joints encoded on the grid and propagated as
soft maps, PCK@0.1/0.2 over all frames but each clip's first, joints not found dropped (as
CRW); results as `<out>/<action>/<clip>/keypoints.npz` (`points` [T, K, 2] (x, y) pixels,
NaN = not found, `confidence` [T, K])."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sfcprop.apps.eval import common
from sfcprop.bench import datasets, metrics
from sfcprop.labels import keypoints


def _propagate(seq: datasets.KeypointSequence, out: Path, n: int, model: common._Model):
    from sfcprop.io import read_image
    from sfcprop.session import propagate_soft

    first = read_image(seq.frames[0])
    hw = tuple(first.shape[1:])
    config = common.protocol(model)
    grid = keypoints.grid_size(config.encoded_size(*hw))
    first_soft = keypoints.encode_keypoints(seq.first_keypoints, hw, grid)
    soft = propagate_soft(
        [read_image(p) for p in seq.frames[:n]],  # resized by the propagator (CRW's policy)
        first_soft,
        model.backbone,
        model.semantic,
        preset=config,
        progress=not model.quiet,
    )
    decoded = [keypoints.decode_keypoints(s, hw) for s in soft]
    points = np.stack([p for p, _ in decoded])
    confidence = np.stack([c for _, c in decoded])

    def write(folder: Path) -> None:
        np.savez(folder / "keypoints.npz", points=points, confidence=confidence)

    common.write_atomically(out / seq.name, write)


def read_keypoint_results(results: Path, seq: datasets.KeypointSequence, n: int) -> np.ndarray:
    """Predicted points `[n, K, 2]` of `results/<seq>/keypoints.npz`."""
    path = results / seq.name / "keypoints.npz"
    if not path.is_file():
        raise FileNotFoundError(f"missing keypoint results: {path}")
    with np.load(path) as z:
        points = z["points"]
    if len(points) < n or points.shape[1:] != seq.keypoints.shape[1:]:
        raise ValueError(
            f"{path}: points {points.shape}, expected [{n}, *{seq.keypoints.shape[1:]}]"
        )
    return points[:n]


def run(
    args, reader, dist: common.Dist, results: Path, model: common._Model | None, report: Path
) -> int:
    """Propagate this rank's missing clips (unless only scoring), read its share's points;
    rank 0 scores them all and writes the tables."""
    mine = dist.share(reader.names)
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in common.bar(mine, args.quiet or dist.rank != 0, desc="clips", unit="clip"):
        seq = reader[name]
        n = common.frame_count(seq, args.max_frames)
        if model is not None and not common.complete(results / name, ["keypoints.npz"]):
            _propagate(seq, results, n, model)
        pred = read_keypoint_results(results, seq, n)
        pairs[name] = (pred[1:n], seq.keypoints[1:n])
    gathered = dist.gather(pairs)
    if dist.rank != 0:
        return 0
    merged = {k: v for part in gathered for k, v in part.items()}
    merged = {k: merged[k] for k in reader.names if k in merged}
    pred = np.concatenate([p for p, _ in merged.values()])
    gt = np.concatenate([g for _, g in merged.values()])
    alphas = (0.1, 0.2)
    table = {f"PCK@{a}": metrics.pck(pred, gt, a) for a in alphas}
    header = ("Clip", *table)
    rows = [(k, *(metrics.pck(p, g, a) for a in alphas)) for k, (p, g) in merged.items()]
    common.write_csv(report / "global_results-pck.csv", list(table), [table.values()])
    common.write_csv(report / "per-clip_results-pck.csv", header, rows)
    joints = np.stack([metrics.pck_per_joint(pred, gt, a) for a in alphas], axis=1)
    common.write_csv(
        report / "per-joint_results-pck.csv",
        ("Joint", *table),
        [(j, *r) for j, r in enumerate(joints)],
    )
    counted = int((~np.isnan(metrics.pck_distances(pred, gt))).sum())
    print(
        f"{len(merged)} clips, {len(pred)} frames scored; {counted} of {gt.shape[0] * gt.shape[1]}"
        " joints counted (the others were not found, as CRW drops them); PCK in percent"
    )
    common.print_table("JHMDB PCK", list(table), [table.values()])
    return 0
