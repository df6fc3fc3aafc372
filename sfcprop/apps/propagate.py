"""`sfcprop propagate`: masks through a video from the first frame's mask or from
keyframes; writes a mask per frame, per-object confidence and the frames to check."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from sfcprop import errors
from sfcprop.apps.common import Pictures, add_common, backbone_arg, bar, check_out, warn_truncated

PROPAGATE_EPILOG = """examples:
  sfcprop propagate frames/ first.png --out masks/ --gif
  sfcprop propagate frames/ keyframes/ --out masks/     # sparse masks: 00000.png, 00040.png
  sfcprop propagate clip.mp4 first.png --out out/ --short-side 480 --mp4 --overlays

Writes <out>/<frame stem>.png (palette PNGs with the masks' palette; a video's frames are
00000, 00001 ...), <out>/confidence.csv (frame,name,object,confidence), <out>/flags.json
(the frames to check: lost objects, likely scene cuts), and with --overlays
<out>/overlays/<stem>.jpg, with --gif <out>/overlay.gif, with --mp4 <out>/overlay.mp4.
Video files need PyAV: pip install 'sfcprop[video]'. Exit codes: 0 ok, 1 bad input or
failed run, 2 usage."""


def add_parser(sub) -> None:
    """The `propagate` subcommand's parser."""
    from sfcprop.session import DEFAULT_RULE, RULES

    p = sub.add_parser(
        "propagate",
        help="propagate masks through your video (first frame or keyframes)",
        description="Propagate object masks through a folder of frames or a video file: the "
        "first frame's mask, or a folder of sparse masks on any frames (keyframes, tracked "
        "forward and backward); write a mask per frame, per-object confidence and the frames "
        "to check.",
        epilog=PROPAGATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("frames", metavar="FRAMES_OR_VIDEO", help="folder of frames or video file")
    p.add_argument(
        "first_mask",
        metavar="ANNOTATIONS",
        help="the first frame's ids (palette or greyscale PNG, binary 0/255 is one object, "
        "or an integer .npy), or a folder of masks named like the frames they annotate "
        "(the DAVIS convention: 00000.png, 00040.png ...; a video's frames are 00000, 00001 ...)",
    )
    p.add_argument(
        "--forward-only",
        action="store_true",
        help="propagate each keyframe forward only (default: both directions between keyframes)",
    )
    p.add_argument(
        "--rule",
        choices=RULES,
        default=DEFAULT_RULE,
        help="how a frame between two keyframes combines the two passes (default: %(default)s)",
    )
    p.add_argument(
        "--suggest",
        type=int,
        default=3,
        metavar="N",
        help="suggest the N frames to annotate next (in flags.json and printed; default: "
        "%(default)s, 0 for none)",
    )
    add_common(p, "parameter set (default: davis, or davis-sfc with --semantic)")


def run(args: argparse.Namespace) -> int:
    """`sfcprop propagate`, its arguments parsed: lock `--out`, write the masks, confidence
    and flags into a staging folder, move it into place; print the summary."""
    from sfcprop import io
    from sfcprop.io import runs

    errors.require_device(args.device)
    with runs.locked(args.out) as out:
        check_out(args, out)
        frames = io.open_frames(args.frames)
        keys = annotation_files(Path(args.first_mask), frames)
        session = _session(args, frames, keys)
        store = session.store
        with runs.staging(out) as tmp, Pictures(tmp, args, frames) as pictures:
            results = bar(
                session.run(), frames.count, args.quiet, "propagate", session.size, args.precision
            )
            objects, rows, flags, suggested = write_propagation(
                session, tmp, results, args.suggest, pictures
            )
    if not args.quiet:
        print(f"wrote {len(rows) // max(1, len(objects))} masks to {out}{pictures.summary()}")
        _summary(objects, rows, flags)
        if suggested:
            names = ", ".join(f"{t} ({store.name(t)})" for t in suggested)
            print(f"annotate next: frames {names} (expected to improve the video most)")
    warn_truncated(frames)
    return 0


def write_propagation(session, folder: Path, results: Iterable, suggest: int, pictures=None):
    """Write what `sfcprop propagate` writes of a video into `folder`: a palette PNG per
    frame of `results` (the session's `run()`, wrapped in a bar), `confidence.csv` and
    `flags.json` (with the `suggest` frames to annotate next); `pictures`: the overlays
    asked for (a `Pictures`) or None. Returns `(objects, rows, flags, suggested)`: the
    object ids, the rows of `confidence.csv` `(t, name, object, confidence)`, the flags
    `(name, Flag)` and the frames suggested."""
    from sfcprop import io

    palette = session.codec.palette or io.DAVIS_PALETTE
    store = session.store
    objects = [i for i in session.label_ids if i != 0]
    rows, flags = [], []
    for r in results:
        name = store.name(r.t)
        io.write_mask(folder / f"{name}.png", r.ids, palette)
        if pictures is not None:
            pictures.add(name, lambda r=r: _overlay(store[r.t], r.ids, palette))
        rows += [(r.t, name, obj, float(c)) for obj, c in zip(objects, r.confidence, strict=True)]
        flags += [(name, f) for f in r.flags]
    keyframes = sorted(session.keyframes)
    suggested = _suggest(rows, objects, keyframes, suggest)
    _write_confidence(folder, rows, flags, keyframes, suggested)
    return objects, rows, flags, suggested


def _session(args: argparse.Namespace, frames, keys: dict[int, Path]):
    """The keyframe `Session` of a `propagate` run, its backbones loaded and `keys`
    annotated."""
    from sfcprop.config import from_args
    from sfcprop.io import FrameStore
    from sfcprop.session import Session

    preset = args.preset or ("davis" if args.semantic is None else "davis-sfc")
    session = Session(
        FrameStore(frames, keep=list(keys) != [0]),
        backbone_arg(args.backbone, args.weights),
        backbone_arg(args.semantic),
        preset=from_args(args, preset),
        rule=args.rule,
        forward_only=args.forward_only,
        keep_results=False,
    )
    for t, mask in sorted(keys.items()):
        session.annotate(t, mask)
    _say_weights(session.model, args.quiet)
    return session


def annotation_files(path: Path, frames) -> dict[int, Path]:
    """`{frame index: mask file}`: one mask file is frame 0's; a folder holds masks named
    like the frames they annotate (the session reads them, into one object table)."""
    from sfcprop import io

    if not path.is_dir():
        return {0: path}
    files = io.list_files(path, (".png", ".npy"))
    if not files:
        raise ValueError(f"{path} holds no masks (.png or .npy named like the frames)")
    index = _frame_index(frames)
    keys: dict[int, Path] = {}
    for f in files:
        t = index(f.stem)
        if t is None:
            raise ValueError(
                f"the mask {f.name} names no frame of the video: masks are named like the "
                f"frames they annotate ({frames.name(0)}, {frames.name(1)} ...)"
            )
        keys[t] = f  # two files of one frame: list_files refused them
    return keys


def _frame_index(frames):
    """stem -> frame index (None for no frame) of a `Frames`."""
    stems = getattr(frames, "_stems", None)
    if stems is not None:
        lookup = {s: t for t, s in enumerate(stems)}
        return lookup.get
    return lambda stem: int(stem) if stem.isdigit() else None


def _say_weights(prop, quiet: bool) -> None:
    if quiet:
        return
    for net in (prop.encoder.backbone, prop.encoder.semantic):
        about = getattr(net, "weights_description", None) if net is not None else None
        if about:
            print(f"weights: {about}", file=sys.stderr)


def _suggest(rows, objects: list[int], keyframes: list[int], n: int) -> list[int]:
    """The frames to annotate next, from the rows of `confidence.csv`."""
    from sfcprop.session.suggest import suggest_keyframes

    if n <= 0 or not rows:
        return []
    frames = 1 + max(t for t, *_ in rows)
    confidence = np.ones((frames, len(objects)))
    for t, _name, obj, c in rows:
        confidence[t, objects.index(obj)] = c
    return suggest_keyframes(confidence, keyframes, n)


def _write_confidence(folder: Path, rows, flags, keyframes, suggested) -> None:
    """`confidence.csv` (frame,name,object,confidence) and `flags.json` (keyframes, flags,
    the frames suggested to annotate next)."""
    import csv

    with open(folder / "confidence.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame", "name", "object", "confidence"])
        w.writerows((t, name, obj, f"{c:.4f}") for t, name, obj, c in rows)
    items = [
        {"frame": f.frame, "name": name, "kind": f.kind, "object": f.object, "value": f.value}
        for name, f in flags
    ]
    (folder / "flags.json").write_text(
        json.dumps({"keyframes": keyframes, "flags": items, "suggested": suggested}, indent=1)
        + "\n"
    )


def _summary(objects, rows, flags) -> None:
    """Per-object confidence; one warning line per lost object, one per likely cut."""
    from sfcprop.session.confidence import lost_runs

    for obj in objects:
        values = [(c, t) for t, _, o, c in rows if o == obj]
        low, at = min(values)
        mean = sum(c for c, _ in values) / len(values)
        print(f"object {obj}: mean confidence {mean:.2f}, lowest {low:.2f} (frame {at})")
    names = {f.frame: name for name, f in flags}
    seen = set()
    for obj, first, _last in lost_runs([f for _, f in flags]):
        if obj not in seen:
            seen.add(obj)
            print(
                f"warning: object {obj} lost from frame {first} ({names[first]}): "
                "add a keyframe there",
                file=sys.stderr,
            )
    for name, f in flags:
        if f.kind == "cut":
            print(
                f"warning: likely scene cut at frame {f.frame} ({name}): add a keyframe there",
                file=sys.stderr,
            )
    empty = [(f.frame, name) for name, f in flags if f.kind == "unpropagated"]
    if empty:
        print(
            f"warning: frames {empty[0][0]}-{empty[-1][0]} ({empty[0][1]} to {empty[-1][1]}) "
            "have no result (--forward-only, before the first keyframe): their masks are "
            "background and their confidence 0",
            file=sys.stderr,
        )


def _overlay(frame, ids, palette):
    from sfcprop.io.viz import overlay

    return overlay(frame, ids, palette)
