"""`sfcprop track`: points of the first frame through a video (JHMDB's encoding and
decoding); writes the tracks, the pictures asked for and, against ground truth, PCK."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sfcprop import errors
from sfcprop.apps.common import Pictures, add_common, backbone_arg, bar, check_out, warn_truncated

TRACK_EPILOG = """examples:
  sfcprop track frames/ points.json --out tracks/ --gif
  sfcprop track clip/ joint_positions.mat --out tracks/ --size 320x320 --gt joint_positions.mat

POINTS: the points of the first frame, (x, y) 0-based pixels: .json ([[x, y], ...],
{"name": [x, y], ...} or {"points": [...], "names": [...]}), .csv (header x,y[,name]
or rows x,y / name,x,y) or JHMDB's joint_positions.mat (its first frame). Writes
<out>/tracks.csv (frame,name,x,y,confidence), <out>/tracks.json and the overlays asked
for; with --gt prints PCK@0.1 and PCK@0.2 (frame 0 skipped) and writes <out>/pck.json.
Exit codes: 0 ok, 1 bad input or failed run, 2 usage."""


def add_parser(sub) -> None:
    """The `track` subcommand's parser."""
    p = sub.add_parser(
        "track",
        help="track points of the first frame through your video",
        description="Track keypoints given on the first frame (JHMDB encoding and "
        "decoding) through a folder of frames or a video file.",
        epilog=TRACK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("frames", metavar="FRAMES_OR_VIDEO", help="folder of frames or video file")
    p.add_argument("points", metavar="POINTS", help="first-frame points: .json, .csv or .mat")
    add_common(p, "parameter set (default: jhmdb's parameters at the frames' own size)")
    p.add_argument("--gt", metavar="MAT", help="JHMDB joint_positions.mat to score PCK against")


def run(args: argparse.Namespace) -> int:
    """`sfcprop track`, its arguments parsed: lock `--out`, track into a staging folder,
    move it into place; print the summary and, with `--gt`, PCK."""
    from dataclasses import replace

    from sfcprop import io
    from sfcprop.config import PRESETS, from_args
    from sfcprop.io import runs
    from sfcprop.session import track_keypoints_iter
    from sfcprop.session.tracking import JHMDB_JOINTS

    errors.require_device(args.device)
    if args.size is not None and args.short_side is not None:
        raise ValueError("give --size or --short-side, not both")
    with runs.locked(args.out) as out:
        check_out(args, out)  # every input: frames, points, --gt, --weights ...
        frames = io.open_frames(args.frames)
        points, names = io.read_points(args.points)
        if names is None:
            names = list(JHMDB_JOINTS) if len(points) == len(JHMDB_JOINTS) else None
        gt = io.read_joint_positions(args.gt) if args.gt else None
        if gt is not None and gt.shape[1] != len(points):
            raise ValueError(f"--gt has {gt.shape[1]} joints but {args.points} has {len(points)}")
        base = args.preset or replace(
            PRESETS["jhmdb" if args.semantic is None else "jhmdb-sfc"],
            size=None,
            resize="antialias",
        )
        tap = _Tap(frames)
        stream = track_keypoints_iter(
            tap,
            points,
            backbone_arg(args.backbone, args.weights),
            backbone_arg(args.semantic),
            preset=from_args(args, base),
        )
        tracked, confidence, stems = [], [], []
        with runs.staging(out) as tmp, Pictures(tmp, args, frames) as pictures:
            for t, p, c in bar(stream, frames.count, args.quiet, "track"):
                tracked.append(p)
                confidence.append(c)
                stems.append(frames.name(t))
                pictures.add(stems[-1], lambda p=p: _draw(tap.last, p))
            io.write_tracks(tmp, np.stack(tracked), np.stack(confidence), names, stems)
            scores = _pck(np.stack(tracked), gt, tmp) if gt is not None else None
    if not args.quiet:
        print(f"wrote {len(stems)} frames of {len(points)} tracks to {out}{pictures.summary()}")
    if scores is not None:
        print(
            f"PCK@0.1 {scores['PCK@0.1']:.1f} PCK@0.2 {scores['PCK@0.2']:.1f} (percent; "
            f"{scores['frames']} frames scored, frame 0 skipped)"
        )
    warn_truncated(frames)
    return 0


def _pck(pred: np.ndarray, gt: np.ndarray, folder: Path) -> dict:
    """PCK@0.1 and @0.2 of the frames both have, frame 0 skipped; also `folder/pck.json`."""
    from sfcprop.bench import metrics

    n = min(len(pred), len(gt))
    if n < 2:
        raise ValueError("PCK needs at least 2 frames with ground truth (frame 0 is skipped)")
    scores = {f"PCK@{a}": metrics.pck(pred[1:n], gt[1:n], a) for a in (0.1, 0.2)}
    scores["frames"] = n - 1
    (folder / "pck.json").write_text(json.dumps(scores) + "\n")
    return scores


class _Tap:
    """Frames that remember the last one read (the frame whose result comes next)."""

    def __init__(self, frames) -> None:
        self.frames, self.last = frames, None

    def __iter__(self):
        for frame in self.frames:
            self.last = frame
            yield frame


def _draw(frame, points):
    from sfcprop.io.viz import draw_keypoints

    return draw_keypoints(frame, points)
