"""What `sfcprop propagate` and `sfcprop track` share: their common arguments, the
backbone arguments, the checks of `--out` (`sfcprop demo` uses them too), the pictures a
run asked for (overlays, GIF, mp4), the progress bar and the warning of a truncated video."""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Sequence
from pathlib import Path

GIF_MAX_SIDE = 480
# --fps: a GIF frame lasts a whole number of ms up to 655350 (PIL writes hundredths of a
# second in 16 bits), so 1000 fps at most and 1/655.35 at least; a round bound inside
FPS_RANGE = (0.002, 1000.0)
# the arguments of every command that name input files or folders (`input_paths`)
INPUT_ARGS = ("frames", "first_mask", "points", "gt", "weights")
MODEL_ARGS = ("backbone", "semantic")  # input files unless registry names or module:callable


def add_common(p: argparse.ArgumentParser, preset_help: str, skip=()) -> None:
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
        "--fps",
        type=fps_arg,
        help=f"frame rate of the GIF/mp4, {FPS_RANGE[0]:g} to {FPS_RANGE[1]:g} "
        "(default: the video's, or 10)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")


def fps_arg(text: str) -> float:
    """`--fps`: a finite number within `FPS_RANGE` (what a GIF can store)."""
    low, high = FPS_RANGE
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # NaN, inf and the rest
        raise argparse.ArgumentTypeError(
            f"expected a frame rate from {low:g} to {high:g} (a GIF frame lasts 1 ms to "
            f"655 s), got {text!r}"
        )
    return value


def backbone_arg(spec: str | None, weights: str | None = None):
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


def check_out(args: argparse.Namespace, out: Path, inputs: Sequence[str | None] = ()) -> None:
    """Refuse `out` (`--out`, resolved) when it is, holds or lies inside an input (`inputs`
    and every input path among `args`, `input_paths`), is a file, or is a non-empty
    folder without --force."""
    from sfcprop.io import runs

    runs.refuse_overlap(args.out, [*inputs, *input_paths(args)], "--out")
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"--out {args.out} exists and is not a folder")
        if any(out.iterdir()) and not args.force:
            raise ValueError(
                f"--out {args.out} exists and is not empty; pass --force to replace it"
            )


def input_paths(args: argparse.Namespace) -> list[str]:
    """The input files and folders a command's parsed `args` name: the `INPUT_ARGS` given,
    and `--backbone` / `--semantic` where they name a file or folder (`model_paths`)."""
    found = [getattr(args, name, None) for name in INPUT_ARGS]
    return [p for p in found if isinstance(p, str)] + model_paths(args)


def model_paths(args: argparse.Namespace) -> list[str]:
    """`--backbone` and `--semantic` of `args` where they name an existing file or folder
    rather than a registry name (a registry name wins over a file of that name)."""
    found = []
    for name in MODEL_ARGS:
        spec = getattr(args, name, None)
        if isinstance(spec, str) and Path(spec).expanduser().exists():
            from sfcprop.models.registry import REGISTRY

            if spec not in REGISTRY:
                found.append(spec)
    return found


class Pictures:
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

    def __enter__(self) -> Pictures:
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
            save_gif(self.gif, self.folder / "overlay.gif", gif_fps(self.fps))
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


def gif_fps(fps: float) -> float:
    """`fps` within what a GIF can store (`FPS_RANGE`; a video's own rate can be anything)."""
    low, high = FPS_RANGE
    return min(max(fps, low), high) if math.isfinite(fps) and fps > 0 else 10.0


def bar(
    it,
    total: int | None,
    quiet: bool,
    what: str,
    size: tuple[int, int] | None = None,
    precision=None,
):
    """`it` with the progress bar (`sfcprop.io.progress`), started once its first item is
    there (the backbone loaded, the first frame read), so that a failure before shows none;
    with the frames' `size`, a line estimates the time after the first frames.
    A Ctrl-C that a library caught and dropped stops the run at the next item."""
    from sfcprop import errors
    from sfcprop.io.progress import bar as progress_bar

    errors.check_interrupted()  # one during start-up: before a bar shows
    for item in progress_bar(
        it, enabled=not quiet, total=total, desc=what, size=size, precision=precision
    ):
        errors.check_interrupted()
        yield item


def warn_truncated(frames) -> None:
    """One warning line when a video decoded to fewer frames than its header says."""
    note = frames.shortfall()
    if note:
        print(f"warning: {note} (a truncated file?)", file=sys.stderr)
