"""Points in (CSV, JSON, JHMDB's .mat) and keypoint tracks out (CSV and JSON)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import struct
import unicodedata
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sfcprop.io.atomic import _write_text
from sfcprop.io.images import _one_line


def read_points(path: str | os.PathLike) -> tuple[np.ndarray, list[str] | None]:
    """Keypoints of frame 0 from a file: `([K, 2]` float64 (x, y) 0-based pixels, names or
    None).

    `.json`: `[[x, y], ...]`, `{"name": [x, y], ...}` or `{"points": [[x, y], ...],
    "names": [...]}`; `.csv`: a header naming columns `x` and `y` (and optionally `name`),
    or rows `x,y` / `name,x,y` without a header; `.mat`: JHMDB's `joint_positions.mat`
    (frame 0 of `pos_img`, 1-based there). `null` / empty coordinates are NaN (not given).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such points file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".mat":  # its errors name the file
        points, names = read_joint_positions(path)[0], None
    else:
        try:
            if suffix == ".json":
                points, names = _points_json(json.loads(path.read_text()))
            elif suffix == ".csv":
                points, names = _points_csv(path.read_text().splitlines())
            else:
                raise ValueError("expected a .json, .csv or .mat file")
            points = np.asarray(points, dtype=np.float64)
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read points from {path}: {_one_line(e)}") from None
    if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
        raise ValueError(f"{path}: expected K >= 1 points (x, y), got shape {points.shape}")
    if names is not None:
        try:
            check_names(names)
        except ValueError as e:
            raise ValueError(f"cannot read points from {path}: {e}") from None
    return points, names


def check_names(names: Sequence[str]) -> None:
    """A ValueError naming the first of `names` that is not a string of printable text
    (a control character such as a line break would break the rows of tracks.csv)."""
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise ValueError(f"the name of point {i} must be text, got {name!r}")
        bad = next((c for c in name if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)
        if bad is not None:
            raise ValueError(
                f"the name of point {i}, {name!r}, holds the control character {bad!r}; "
                "names are one line of printable text"
            )


def read_joint_positions(path: str | os.PathLike) -> np.ndarray:
    """JHMDB's `joint_positions.mat`: float64 `[T, K, 2]` (x, y) 0-based pixels (`pos_img`
    is 2 x K x T, 1-based). Files over `matfile.MAT_MAX_BYTES` (on disk or inflated) are
    refused; every error names the file."""
    from sfcprop.io.matfile import read_mat

    path = Path(path)
    try:
        pos = read_mat(path).get("pos_img")
    except FileNotFoundError:
        raise FileNotFoundError(f"no such .mat file: {path}") from None
    except (ValueError, TypeError, LookupError, struct.error, zlib.error) as e:
        text = _one_line(e)
        raise ValueError(text if str(path) in text else f"cannot read {path}: {text}") from None
    if pos is None or pos.ndim != 3 or pos.shape[0] != 2:
        raise ValueError(f"{path} holds no 'pos_img' of shape 2 x K x T (JHMDB joint positions)")
    return np.asarray(pos, dtype=np.float64).transpose(2, 1, 0) - 1.0


def _coord(v) -> float:
    return math.nan if v is None or (isinstance(v, str) and not v.strip()) else float(v)


def _points_json(data) -> tuple[list, list[str] | None]:
    if isinstance(data, dict) and "points" in data:
        names = data.get("names")
        data = data["points"]
    elif isinstance(data, dict):
        names, data = [str(k) for k in data], list(data.values())
    else:
        names = None
    if not isinstance(data, list):
        raise ValueError("expected a list of [x, y] pairs")
    points = []
    for p in data:
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            raise ValueError(f"a point must be [x, y], got {p!r}")
        points.append([_coord(v) for v in p])
    if names is not None and len(names) != len(points):
        raise ValueError(f"{len(names)} names for {len(points)} points")
    return points, names


def _points_csv(lines: list[str]) -> tuple[list, list[str] | None]:
    rows = [r for r in csv.reader(lines) if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError("no rows")
    head = [c.strip().lower() for c in rows[0]]
    if "x" in head and "y" in head:
        ix, iy = head.index("x"), head.index("y")
        iname = next((head.index(k) for k in ("name", "joint", "label") if k in head), None)
        body = rows[1:]
    else:
        width = len(rows[0])
        if width not in (2, 3):
            raise ValueError("rows must be x,y or name,x,y (or give a header with x and y)")
        ix, iy, iname = (0, 1, None) if width == 2 else (1, 2, 0)
        body = rows
    points = [[_coord(r[ix]), _coord(r[iy])] for r in body]
    names = [r[iname].strip() for r in body] if iname is not None else None
    return points, names


def write_tracks(
    folder: str | os.PathLike,
    points: np.ndarray,
    confidence: np.ndarray,
    names: Sequence[str] | None = None,
    frame_names: Sequence[str] | None = None,
) -> tuple[Path, Path]:
    """Write `tracks.csv` (one row per frame and point: frame, name, x, y, confidence;
    empty x, y when not found) and `tracks.json` (`{"frames", "names", "points" [T][K][2],
    "confidence" [T][K]}`, null when not found) into `folder`; returns both paths.

    points: `[T, K, 2]` (x, y) pixels, NaN when not found; confidence: `[T, K]`.
    """
    points, confidence = np.asarray(points, np.float64), np.asarray(confidence, np.float64)
    t, k = points.shape[:2]
    if points.shape != (t, k, 2) or confidence.shape != (t, k):
        raise ValueError(
            f"need points [T, K, 2] and confidence [T, K], got {points.shape}, {confidence.shape}"
        )
    names = list(names) if names is not None else [str(i) for i in range(k)]
    frames = list(frame_names) if frame_names is not None else [f"{i:05d}" for i in range(t)]
    if len(names) != k or len(frames) != t:
        raise ValueError(f"need {k} names and {t} frame names, got {len(names)} and {len(frames)}")
    folder = Path(folder)
    text = io.StringIO()
    minimal = csv.writer(text, lineterminator="\n")  # quotes a cell holding , " or \n
    quoted = csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_ALL)  # and \r
    minimal.writerow(["frame", "name", "x", "y", "confidence"])
    for i in range(t):
        for j in range(k):
            xy = ["" if math.isnan(v) else f"{v:.3f}" for v in points[i, j]]
            row = [str(frames[i]), str(names[j]), *xy, f"{confidence[i, j]:.5f}"]
            (quoted if any("\r" in c for c in row) else minimal).writerow(row)
    data = {
        "frames": frames,
        "names": names,
        "points": [
            [None if np.isnan(p).any() else [round(float(v), 3) for v in p] for p in f]
            for f in points
        ],
        "confidence": [[round(float(c), 5) for c in f] for f in confidence],
    }
    csv_path, json_path = folder / "tracks.csv", folder / "tracks.json"
    _write_text(csv_path, text.getvalue())
    _write_text(json_path, json.dumps(data) + "\n")
    return csv_path, json_path
