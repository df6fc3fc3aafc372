"""The `sfcprop` command: thin wrappers around the library.

Every command follows `sfcprop.errors`' policy: exit codes 0 success, 1 bad input or a
failed run (one `sfcprop: error: ...` line on stderr), 2 bad usage, 130 interrupted, 143
terminated. `propagate` and `track` lock `--out`, write into a staging folder beside it
and move that into place at the end (`sfcprop.io.runs`), so a failed run leaves no output
folder and a second run into the same `--out` fails at once.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sfcprop import __version__, errors

EXAMPLES = """examples:
  sfcprop --version
  sfcprop demo                                   # generated clip, shipped model, no network
  sfcprop propagate frames/ first.png --out out/ # your own video (folder of frames)
  sfcprop propagate clip.mp4 first.png --out out/ --short-side 480 --gif
  sfcprop track clip.mp4 points.json --out tracks/ --gif
  sfcprop backbones                              # the registry: names, sources, cached?
  sfcprop eval davis --root DAVIS --backbone fc --out results/ --device cuda
  sfcprop train-fc --image-root images/ --out-dir runs/fc
"""

# subcommands implemented elsewhere, each a `main(argv) -> int`
DELEGATED = {
    "backbones": ("sfcprop.models.registry", "cli_main", "list the backbone registry"),
    "eval": ("sfcprop.apps.evaluate", "main", "benchmark on DAVIS / JHMDB / VIP"),
    "train-fc": ("sfcprop.train.cli", "main", "train the fine-grained network (FC)"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sfcprop",
        description="Propagate labels through video (SFC).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"sfcprop {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = sub.add_parser(
        "demo",
        help="propagate on a clip made of photographs with the shipped model",
        description="Build a clip of photographed objects moving over a photographed "
        "background (camera motion, occlusion, scale change; exact masks), propagate its "
        "first mask with the shipped FC model, write masks and an overlay GIF, print J&F "
        "beside that of random weights.",
        epilog="example: sfcprop demo --out demo-out",
    )
    d.add_argument("--out", default="sfcprop-demo", help="output folder (default: %(default)s)")
    d.add_argument("--backbone", default="fc", help="registry name or checkpoint path")
    d.add_argument("--frames", type=int, default=24, help="clip length (default: %(default)s)")
    d.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cpu)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.add_argument(
        "--no-baseline", action="store_true", help="skip the random-weights run (half the time)"
    )
    _add_propagate(sub)
    _add_track(sub)
    for name, (_, _, help_) in DELEGATED.items():
        sub.add_parser(name, help=help_, add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `sfcprop`; returns the exit status (see `sfcprop.errors`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return errors.run_command(lambda: _dispatch(argv))


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in DELEGATED:
        module, func, _ = DELEGATED[argv[0]]
        return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)
    args = _parser().parse_args(argv)
    commands = {"demo": _demo, "propagate": _propagate, "track": _track}
    return commands[args.command](args)


def _demo(args: argparse.Namespace) -> int:
    from sfcprop.apps.demo import report, run_demo

    summary = run_demo(
        args.out, args.backbone, args.device, args.frames, args.quiet, not args.no_baseline
    )
    print(f"wrote {args.out}/masks/*.png and {args.out}/overlay.gif")
    print("\n".join(report(summary, Path(args.backbone).name, args.frames)))
    return 0


# --------------------------------------------------------------------------- propagate, track

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

TRACK_EPILOG = """examples:
  sfcprop track frames/ points.json --out tracks/ --gif
  sfcprop track clip/ joint_positions.mat --out tracks/ --size 320x320 --gt joint_positions.mat

POINTS: the points of the first frame, (x, y) 0-based pixels: .json ([[x, y], ...],
{"name": [x, y], ...} or {"points": [...], "names": [...]}), .csv (header x,y[,name]
or rows x,y / name,x,y) or JHMDB's joint_positions.mat (its first frame). Writes
<out>/tracks.csv (frame,name,x,y,confidence), <out>/tracks.json and the overlays asked
for; with --gt prints PCK@0.1 and PCK@0.2 (frame 0 skipped) and writes <out>/pck.json.
Exit codes: 0 ok, 1 bad input or failed run, 2 usage."""

GIF_MAX_SIDE = 480


def _add_common(p: argparse.ArgumentParser, preset_help: str, skip=()) -> None:
    from sfcprop.config import PRESETS, add_arguments

    p.add_argument("--out", required=True, help="output folder (must not be the input folder)")
    p.add_argument(
        "--backbone",
        default="fc",
        help="registry name (see `sfcprop backbones`), checkpoint file, or module:callable "
        "giving a Correspondence module (default: fc, the shipped model)",
    )
    p.add_argument(
        "--weights",
        metavar="FILE",
        help="a checkpoint file for --backbone (a registry name): its architecture with "
        "these weights (e.g. --backbone mocov2 --weights moco_v2_800ep_pretrain.pth.tar)",
    )
    p.add_argument("--semantic", help="a second backbone to fuse with (SFC), as --backbone")
    p.add_argument("--preset", choices=sorted(PRESETS), help=preset_help)
    add_arguments(p, skip=skip)
    o = p.add_argument_group("pictures")
    o.add_argument("--overlays", action="store_true", help="write overlays/<stem>.jpg")
    o.add_argument(
        "--gif", action="store_true", help=f"write overlay.gif (at most {GIF_MAX_SIDE} px)"
    )
    o.add_argument("--mp4", action="store_true", help="write overlay.mp4 (needs PyAV)")
    o.add_argument(
        "--fps", type=_positive, help="frame rate of the GIF/mp4 (default: the video's, or 10)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")


def _add_propagate(sub) -> None:
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
    _add_common(p, "parameter set (default: davis, or davis-sfc with --semantic)")


def _add_track(sub) -> None:
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
    _add_common(p, "parameter set (default: jhmdb's parameters at the frames' own size)")
    p.add_argument("--gt", metavar="MAT", help="JHMDB joint_positions.mat to score PCK against")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _propagate(args: argparse.Namespace) -> int:
    from sfcprop import io
    from sfcprop.io import runs

    errors.require_device(args.device)
    with runs.locked(args.out) as out:
        _check_out(args, out, [args.frames, args.first_mask])
        frames = io.open_frames(args.frames)
        keys, palette = _annotations(Path(args.first_mask), frames)
        palette = palette or io.DAVIS_PALETTE
        session = _session(args, frames, keys)
        store = session.store
        objects = [i for i in session.label_ids if i != 0]
        rows, flags = [], []
        with runs.staging(out) as tmp, _Pictures(tmp, args, frames) as pictures:
            for r in _bar(session.run(), frames.count, args.quiet, "propagate"):
                name = store.name(r.t)
                io.write_mask(tmp / f"{name}.png", r.ids, palette)
                pictures.add(name, lambda r=r: _overlay(store[r.t], r.ids, palette))
                rows += [
                    (r.t, name, obj, float(c)) for obj, c in zip(objects, r.confidence, strict=True)
                ]
                flags += [(name, f) for f in r.flags]
            _write_confidence(tmp, rows, flags, sorted(keys))
    if not args.quiet:
        print(f"wrote {len(rows) // max(1, len(objects))} masks to {out}{pictures.summary()}")
        _summary(objects, rows, flags)
    _warn_truncated(frames)
    return 0


def _session(args: argparse.Namespace, frames, keys: dict[int, np.ndarray]):
    """The keyframe `Session` of a `propagate` run, its backbones loaded and `keys`
    annotated."""
    from sfcprop.config import from_args
    from sfcprop.io import FrameStore
    from sfcprop.session import Session

    preset = args.preset or ("davis" if args.semantic is None else "davis-sfc")
    session = Session(
        FrameStore(frames, keep=list(keys) != [0]),
        _net(args.backbone, args.weights),
        _net(args.semantic),
        preset=from_args(args, preset),
        rule=args.rule,
        forward_only=args.forward_only,
        keep_results=False,
    )
    for t, mask in sorted(keys.items()):
        session.annotate(t, mask)
    _say_weights(session.model, args.quiet)
    return session


def _annotations(path: Path, frames) -> tuple[dict[int, np.ndarray], list[int] | None]:
    """`{frame index: ids}` and a palette: one mask file is frame 0's; a folder holds masks
    named like the frames they annotate."""
    from sfcprop import io

    if not path.is_dir():
        mask, palette = io.read_mask(path)
        return {0: io.load_first_mask(mask)}, palette
    files = io.list_files(path, (".png", ".npy"))
    if not files:
        raise ValueError(f"{path} holds no masks (.png or .npy named like the frames)")
    index = _frame_index(frames)
    keys, palette = {}, None
    for f in files:
        t = index(f.stem)
        if t is None:
            raise ValueError(
                f"the mask {f.name} names no frame of the video: masks are named like the "
                f"frames they annotate ({frames.name(0)}, {frames.name(1)} ...)"
            )
        mask, pal = io.read_mask(f)
        keys[t] = io.load_first_mask(mask)
        palette = palette or pal
    return keys, palette


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


def _write_confidence(folder: Path, rows, flags, keyframes) -> None:
    """`confidence.csv` (frame,name,object,confidence) and `flags.json`."""
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
        json.dumps({"keyframes": keyframes, "flags": items}, indent=1) + "\n"
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


def _track(args: argparse.Namespace) -> int:
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
        _check_out(args, out, [args.frames, args.points, args.gt])
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
            _net(args.backbone, args.weights),
            _net(args.semantic),
            preset=from_args(args, base),
        )
        tracked, confidence, stems = [], [], []
        with runs.staging(out) as tmp, _Pictures(tmp, args, frames) as pictures:
            for t, p, c in _bar(stream, frames.count, args.quiet, "track"):
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
    _warn_truncated(frames)
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


def _net(spec: str | None, weights: str | None = None):
    """A backbone argument: registry names and files pass through to the library (a
    registry name with `weights`, a checkpoint file, is loaded with them);
    `module:callable` is imported and called (a module given as an instance is used)."""
    if weights is not None:
        return _with_weights(spec, weights)
    if spec is None or ":" not in spec or Path(spec).exists():
        return spec
    module, _, attr = spec.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot import backbone {spec!r}: {e}") from None
    return obj() if isinstance(obj, type) or not hasattr(obj, "forward") else obj


def _with_weights(spec: str, weights: str):
    """`--backbone NAME --weights FILE`: the registry architecture NAME with FILE's weights."""
    from sfcprop.models import backbone
    from sfcprop.models.registry import REGISTRY

    if spec not in REGISTRY:
        raise ValueError(
            f"--weights goes with a registry name as --backbone (see `sfcprop backbones`), "
            f"not {spec!r}"
        )
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no such weights file: {weights}")
    return backbone(spec, weights=path)


def _check_out(args: argparse.Namespace, out: Path, inputs: Sequence[str | None]) -> None:
    """Refuse `out` (`--out`, resolved) when it is an input folder, a file, a non-empty
    folder without --force, or (with --force) a folder holding an input."""
    given = [Path(p).resolve() for p in inputs if p is not None]
    for p in given:
        if p == out:
            raise ValueError(f"--out {args.out} is an input; write the results elsewhere")
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"--out {args.out} exists and is not a folder")
        if any(out.iterdir()):
            if not args.force:
                raise ValueError(
                    f"--out {args.out} exists and is not empty; pass --force to replace it"
                )
            inside = [p for p in given if out in p.parents]
            if inside:
                raise ValueError(f"--out {args.out} holds the input {inside[0]}; not replacing it")


class _Tap:
    """Frames that remember the last one read (the frame whose result comes next)."""

    def __init__(self, frames) -> None:
        self.frames, self.last = frames, None

    def __iter__(self):
        for frame in self.frames:
            self.last = frame
            yield frame


class _Pictures:
    """The overlays a run asked for: JPEGs, a GIF (shrunk), an mp4 (streamed)."""

    def __init__(self, folder: Path, args: argparse.Namespace, frames) -> None:
        from sfcprop import io

        self.folder, self.args = folder, args
        self.fps = args.fps or frames.fps or 10
        self.gif: list = []
        self.video = None
        if args.mp4:
            io.require_av()  # fail before the run, not after it
        if args.overlays:
            (folder / "overlays").mkdir()

    def __enter__(self) -> _Pictures:
        return self

    def add(self, stem: str, draw) -> None:
        """Add frame `stem`; `draw()` makes its picture (called only when one is wanted)."""
        from sfcprop.io.viz import gif_frame

        args = self.args
        if not (args.overlays or args.gif or args.mp4):
            return
        image = draw()
        if args.overlays:
            image.save(self.folder / "overlays" / f"{stem}.jpg", quality=90)
        if args.gif:
            small = image.copy()
            small.thumbnail((GIF_MAX_SIDE, GIF_MAX_SIDE))
            self.gif.append(gif_frame(small))
        if args.mp4:
            from sfcprop.io import VideoWriter

            if self.video is None:
                self.video = VideoWriter(self.folder / "overlay.mp4", self.fps)
            self.video.write(image)

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is not None:
            if self.video is not None:
                self.video.abort()
            return
        from sfcprop.io.viz import save_gif

        if self.gif:
            save_gif(self.gif, self.folder / "overlay.gif", self.fps)
        if self.video is not None:
            self.video.close()

    def summary(self) -> str:
        parts = [
            name
            for name, on in (
                ("overlays/", self.args.overlays),
                ("overlay.gif", self.args.gif),
                ("overlay.mp4", self.args.mp4),
            )
            if on
        ]
        return f" (+ {', '.join(parts)})" if parts else ""


def _overlay(frame, ids, palette):
    from sfcprop.io.viz import overlay

    return overlay(frame, ids, palette)


def _draw(frame, points):
    from sfcprop.io.viz import draw_keypoints

    return draw_keypoints(frame, points)


def _bar(it, total: int | None, quiet: bool, what: str):
    """`it` with the progress bar (`sfcprop.io.progress`), started once its first item is
    there (the backbone loaded, the first frame read), so that a failure before shows none."""
    from sfcprop.io.progress import bar

    return bar(it, enabled=not quiet, total=total, desc=what)


def _warn_truncated(frames) -> None:
    """One warning line when a video decoded to fewer frames than its header says."""
    note = frames.shortfall()
    if note:
        print(f"warning: {note} (a truncated file?)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
