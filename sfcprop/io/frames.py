"""Frames in: folders of images, video files, arrays, tensors and lists, read lazily and by index.

A folder or a video file is decoded one frame at a time, so a long video never sits in memory.
Video files need PyAV (`pip install 'sfcprop[video]'`).

Every frame comes out as uint8 RGB `[3, H, W]`, by one rule for files and arrays alike
(`images.to_uint8`: uint8 as they are, 16-bit their high byte, floats in [0, 1] scaled by
255; see `sfcprop.io.images`). Image files are read as a viewer shows them
(`images.open_image`: EXIF orientation applied, decompression bombs refused).
"""

from __future__ import annotations

import collections
import operator
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sfcprop.errors import check_shape
from sfcprop.io.images import (  # noqa: F401  (FLOAT_RULE, open_image: importable from here too)
    FLOAT_RULE,
    _one_line,
    _readable,
    image_tensor,
    open_image,
    read_image,
    to_uint8,
)

FrameSource = torch.Tensor | np.ndarray | Sequence | Iterable | str | os.PathLike

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv")

VIDEO_EXTRA = "pip install 'sfcprop[video]'"


def natural_key(name: str) -> list:
    """Sort key that orders `frame2` before `frame10`."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files of a folder in natural order; ValueError when there are none. What is
    not a regular image file is skipped: folders (even one named `x.jpg`), dotfiles and
    macOS's `._*` AppleDouble files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder of frames: {folder}")
    files = list_files(folder, IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def list_files(folder: str | os.PathLike, suffixes: Sequence[str]) -> list[Path]:
    """The regular, not hidden files of `folder` whose suffix (any case) is one of
    `suffixes`, in natural order. Two files whose names sort as one (`1.png` and `01.png`,
    `5.png` and `005.jpg`, `a.png` and `A.png`) would put one frame twice or in an order
    that depends on the file system: a ValueError naming both."""
    files = [
        p
        for p in Path(folder).iterdir()
        if p.suffix.lower() in suffixes and not p.name.startswith(".") and p.is_file()
    ]
    _refuse_same_key(files, Path(folder))
    return sorted(files, key=lambda p: natural_key(p.name))


def _refuse_same_key(files: list[Path], folder: Path) -> None:
    """ValueError when two of `files` have stems of one natural key."""
    seen: dict[tuple, Path] = {}
    for path in sorted(files, key=lambda p: p.name):  # the same pair named on every system
        other = seen.setdefault(tuple(natural_key(path.stem)), path)
        if other is not path:
            raise ValueError(
                f"{folder}: {other.name} and {path.name} name the same frame (one name or "
                "number, with another zero padding, case or extension); keep one of them"
            )


def iter_frames(source: FrameSource) -> Iterator[torch.Tensor]:
    """Frames one at a time as uint8 `[3, H, W]` tensors.

    source: a `[T, 3, H, W]` tensor, a `[T, H, W, 3]` array, a folder of image files
    (natural order), a video file (PyAV), or any iterable of frames (a list, a generator,
    a `VideoReader`, `Frames`), each a PIL image, an image path, a `[3, H, W]` tensor or an
    `[H, W, 3]` array. Values: uint8, uint16 or floats in [0, 1] (see `to_uint8`).
    """
    if isinstance(source, (str, os.PathLike)):
        source = open_frames(source).source
    if isinstance(source, torch.Tensor | np.ndarray):
        check_frames_array(source)
        for t in range(len(source)):
            yield array_frame(source, t)
        return
    if isinstance(source, Frames):
        source = source.source
    for t, item in enumerate(source):
        yield as_frame(item, f"frame {t}")


def check_frames_array(frames: torch.Tensor | np.ndarray) -> None:
    """ValueError unless `frames` is a `[T, 3, H, W]` tensor or a `[T, H, W, 3]` array of
    values that `to_uint8` reads."""
    tensor = isinstance(frames, torch.Tensor)
    dims, what = ("T 3 H W", "frames as a tensor") if tensor else ("T H W 3", "frames as an array")
    uint8 = torch.uint8 if tensor else np.uint8
    check_shape(frames, dims, what, None if _readable(frames.dtype) else uint8)


def array_frame(frames: torch.Tensor | np.ndarray, t: int) -> torch.Tensor:
    """Frame `t` of a checked `[T, 3, H, W]` tensor or `[T, H, W, 3]` array (see
    `check_frames_array`) as uint8 `[3, H, W]`."""
    if isinstance(frames, torch.Tensor):
        return to_uint8(frames[t], f"frame {t}")
    return to_uint8(frames[t], f"frame {t}").permute(2, 0, 1)


FRAME_KINDS = (
    "a PIL image, an image path, a [3, H, W] tensor or an [H, W, 3] array of uint8, uint16 "
    "or floats in [0, 1] (or give all frames as one [T, 3, H, W] tensor or [T, H, W, 3] array)"
)


def _shaped(frame, channels: int) -> bool:
    """A 3-dimensional `frame` of readable values with 3 colours along axis `channels`."""
    return frame.ndim == 3 and _readable(frame.dtype) and frame.shape[channels] == 3


def as_frame(item, what: str = "a frame") -> torch.Tensor:
    """One item of an iterable of frames as uint8 `[3, H, W]`; `what` names it in errors."""
    if isinstance(item, Image.Image):
        return image_tensor(item, what)
    if isinstance(item, (str, os.PathLike)):
        return read_image(item)
    if isinstance(item, torch.Tensor) and _shaped(item, 0):
        return to_uint8(item, what)
    if isinstance(item, np.ndarray) and _shaped(item, 2):
        return to_uint8(item, what).permute(2, 0, 1)
    kind = type(item).__name__
    if isinstance(item, (torch.Tensor, np.ndarray)):
        kind += f" {str(item.dtype).removeprefix('torch.')} {tuple(item.shape)}"
    raise TypeError(f"cannot read {what} from {kind}: a frame is {FRAME_KINDS}")


def require_av():
    """The PyAV module, or an ImportError that names the extra to install."""
    try:
        import av
    except ImportError:
        raise ImportError(f"video files need PyAV: {VIDEO_EXTRA}") from None
    return av


class VideoReader:
    """A video file decoded lazily, one uint8 RGB `[3, H, W]` frame at a time (PyAV),
    turned as its display matrix says (a phone's portrait video), as a player shows it.

    Opening it decodes the first frame, so a file that the decoder rejects fails here with
    a ValueError. `num_frames`: the frame count in the container's header (None when it
    does not say; some files are off: the JHMDB sample's .avi says 48 and holds 40);
    `decoded`: the frames the last complete iteration decoded (None before one);
    `fps`: the average frame rate (None when unknown); `size`: `(H, W)` as shown. Each
    iteration decodes the file again from the start.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no such video file: {path}")
        av = require_av()
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise ValueError(f"{path} holds no video stream")
                stream = container.streams.video[0]
                self.num_frames: int | None = stream.frames or None
                rate = stream.average_rate or stream.guessed_rate
                self.fps: float | None = float(rate) if rate else None
                first = next(container.decode(stream), None)
        except (av.error.FFmpegError, OSError) as e:
            raise ValueError(f"cannot decode video {path}: {_one_line(e)}") from None
        if first is None:
            raise ValueError(f"the video {path} holds no frames")
        turned = _quarter_turns(first) % 2
        self.size = (first.width, first.height) if turned else (first.height, first.width)
        self.decoded: int | None = None

    def __iter__(self) -> Iterator[torch.Tensor]:
        av = require_av()
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                n = 0
                for frame in container.decode(stream):
                    yield _shown(frame)
                    n += 1
        except (av.error.FFmpegError, OSError) as e:
            raise ValueError(f"cannot decode video {self.path}: {_one_line(e)}") from None
        self.decoded = n

    def shortfall(self) -> str | None:
        """`"the header of <file> says N frames, M were decoded"` when the last complete
        iteration gave fewer frames than the header promised, else None."""
        if self.decoded is None or self.num_frames is None or self.decoded >= self.num_frames:
            return None
        name, promised = self.path.name, self.num_frames
        return f"the header of {name} says {promised} frames, {self.decoded} were decoded"


def _shown(frame) -> torch.Tensor:
    """A decoded video frame as uint8 RGB `[3, H, W]`, turned as a player shows it."""
    pixels = frame.to_ndarray(format="rgb24")
    turns = _quarter_turns(frame)
    if turns:
        pixels = np.rot90(pixels, turns).copy()
    return torch.from_numpy(pixels).permute(2, 0, 1)


def _quarter_turns(frame) -> int:
    """The counter-clockwise quarter turns (`np.rot90`'s k) of a video frame's display
    matrix (`VideoFrame.rotation`); 0 with an older PyAV that has no such property."""
    return round(getattr(frame, "rotation", 0) / 90) % 4


class Frames:
    """A source of frames (see `iter_frames`) with what an output needs to know about it.

    Iterating gives uint8 `[3, H, W]` frames, lazily for folders and video files.
    `name(t)`: the output stem of frame t (the file's stem for a folder or a list of image
    paths, else `00000`, `00001` ...); `count`: the number of frames when known without
    decoding (None otherwise; for a video file, its header's count, which can be off);
    `fps`: a video file's frame rate (None otherwise); `folder`: the input folder of a
    folder source. `len(frames)` is `count` (a TypeError when it is not known, as for a
    generator); `frames[t]` reads frame t (see `__getitem__`).
    """

    def __init__(self, source: FrameSource) -> None:
        if isinstance(source, Frames):  # the same frames, described once
            self.__dict__.update(source.__dict__)
            return
        self.folder: Path | None = None
        self.fps: float | None = None
        self._stems: list[str] | None = None
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if path.is_dir():
                self.folder = path
                source = list_images(path)
            elif not path.exists():
                raise FileNotFoundError(f"no such folder of frames or video file: {path}")
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                raise ValueError(
                    f"{path} is a single image; give a folder of frames or a video file"
                )
            else:
                source = VideoReader(path)
                self.fps = source.fps
        if isinstance(source, VideoReader):
            self.fps = source.fps
        if isinstance(source, Sequence) and all(isinstance(p, (str, os.PathLike)) for p in source):
            self._stems = [Path(p).stem for p in source]
            seen: dict[str, Path] = {}
            for p in source:
                other = seen.setdefault(Path(p).stem, Path(p))
                if other != Path(p):
                    raise ValueError(f"two frames share the name {Path(p).stem!r}: {other}, {p}")
        self.source = source
        self.count: int | None = (
            source.num_frames
            if isinstance(source, VideoReader)
            else (len(source) if hasattr(source, "__len__") else None)
        )

    def shortfall(self) -> str | None:
        """For a video file that decoded to fewer frames than its header says, a note
        saying both counts (see `VideoReader.shortfall`); else None."""
        return self.source.shortfall() if isinstance(self.source, VideoReader) else None

    def name(self, t: int) -> str:
        """The output stem of frame `t`."""
        if self._stems is not None and t < len(self._stems):
            return self._stems[t]
        return f"{t:05d}"

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter_frames(self.source)

    def __len__(self) -> int:
        """`count`: the number of frames known without decoding (a video file's header
        says it, and can be off); a TypeError when it is not known."""
        if self.count is None:
            raise TypeError(
                f"the number of frames of {self._kind()} is not known before reading them; "
                "iterate over the frames instead (or give a list, a folder or an array)"
            )
        return self.count

    def __getitem__(self, t: int) -> torch.Tensor:
        """Frame `t` as uint8 `[3, H, W]`; a negative `t` counts from the end. A folder, a
        list or an array reads that frame alone; a video file is decoded from its start up
        to frame t (to its end for a negative t): for many frames out of order use
        `sfcprop.io.FrameStore`, which keeps them. IndexError past the end; TypeError for
        an iterator (it can be read only once)."""
        t = _frame_index(t)
        source = self.source
        if isinstance(source, torch.Tensor | np.ndarray):
            check_frames_array(source)
            return array_frame(source, _in_range(t, len(source)))
        if isinstance(source, Sequence):
            t = _in_range(t, len(source))
            return as_frame(source[t], f"frame {t}")
        if iter(source) is source:
            raise TypeError(
                f"cannot index {self._kind()}: it can be read only once; give a list, a "
                "folder, a video file or an array to read frames by index"
            )
        return _nth(iter_frames(source), t)

    def _kind(self) -> str:
        """The source in words, for errors."""
        if isinstance(self.source, VideoReader):
            return f"the video {self.source.path.name}"
        return f"a {type(self.source).__name__} of frames"


def _frame_index(t) -> int:
    """`t` as an int index (numpy integers too); TypeError for anything else."""
    if isinstance(t, bool):
        raise TypeError("a frame index is an integer, not a bool")
    try:
        return operator.index(t)
    except TypeError:
        raise TypeError(f"a frame index is an integer, not {type(t).__name__}") from None


def _in_range(t: int, n: int) -> int:
    """`t` (negative: from the end) as an index into `n` frames; IndexError outside."""
    if not -n <= t < n:
        raise IndexError(f"frame {t} is past the end of the video ({n} frames)")
    return t % n


def _nth(frames: Iterator[torch.Tensor], t: int) -> torch.Tensor:
    """Frame `t` of a sequential stream (negative: from its end), decoding as far as needed."""
    if t >= 0:
        n = 0
        for n, frame in enumerate(frames, start=1):
            if n > t:
                return frame
        raise IndexError(f"frame {t} is past the end of the video ({n} frames)")
    last = collections.deque(frames, maxlen=-t)
    if len(last) < -t:
        raise IndexError(f"frame {t} is past the end of the video ({len(last)} frames)")
    return last[0]


def open_frames(source: FrameSource) -> Frames:
    """`Frames` of a folder, a video file, an array, a tensor or a list (see `iter_frames`).
    A folder is listed and a video's first frame decoded now, so bad inputs fail early."""
    return source if isinstance(source, Frames) else Frames(source)


def count_frames(frames: FrameSource) -> int | None:
    """The number of frames when known without decoding them (None otherwise)."""
    if isinstance(frames, str | os.PathLike | Frames):
        try:
            return open_frames(frames).count
        except (OSError, ValueError, ImportError):
            return None  # reported when the frames are read
    return len(frames) if hasattr(frames, "__len__") else None
