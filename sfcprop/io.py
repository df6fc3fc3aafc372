"""Reading frames (folders, video files, arrays), masks and points; writing palette PNGs,
videos and keypoint tracks.

Everything is read lazily: a folder or a video file is decoded one frame at a time, so a
long video never sits in memory. Video files need PyAV (`pip install 'sfcprop[video]'`).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import struct
import tempfile
import warnings
import zlib
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .labels import as_mask_tensor

FrameSource = torch.Tensor | np.ndarray | Sequence | Iterable | str | os.PathLike
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv")
VIDEO_EXTRA = "pip install 'sfcprop[video]'"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path`; on success it replaces `path` (with the permissions
    a new file gets under the umask), on failure it is removed: no half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(suffix=path.suffix, prefix=f".{path.stem}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def publish(tmp: Path, path: Path) -> None:
    """Move a finished temporary file into place with a new file's usual permissions
    (`mkstemp` makes them owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)
    os.replace(tmp, path)


def _davis_palette() -> list[int]:
    """The DAVIS / PASCAL VOC palette: 256 RGB triplets, flattened."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


DAVIS_PALETTE = _davis_palette()


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
    `suffixes`, in natural order."""
    files = [
        p
        for p in Path(folder).iterdir()
        if p.suffix.lower() in suffixes and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """An image file as uint8 RGB `[3, H, W]`."""
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no such image file: {path}") from None
    except OSError as e:
        raise ValueError(f"cannot read image {path}: {e}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def _from_pil(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)


def iter_frames(source: FrameSource) -> Iterator[torch.Tensor]:
    """Frames one at a time as uint8 `[3, H, W]` tensors.

    source: uint8 `[T, 3, H, W]` tensor, uint8 `[T, H, W, 3]` array, a folder of image
    files (natural order), a video file (PyAV), or any iterable of frames (a list, a
    generator, a `VideoReader`, `Frames`), each a PIL image, an image path, a uint8
    `[3, H, W]` tensor or a uint8 `[H, W, 3]` array.
    """
    if isinstance(source, (str, os.PathLike)):
        source = open_frames(source).source
    if isinstance(source, torch.Tensor):
        if source.ndim != 4 or source.shape[1] != 3 or source.dtype != torch.uint8:
            raise ValueError(
                f"frames as a tensor must be uint8 [T, 3, H, W], got {source.dtype} "
                f"{tuple(source.shape)}"
            )
        yield from source
        return
    if isinstance(source, np.ndarray):
        if source.ndim != 4 or source.shape[3] != 3 or source.dtype != np.uint8:
            raise ValueError(
                f"frames as an array must be uint8 [T, H, W, 3], got {source.dtype} {source.shape}"
            )
        for frame in source:
            yield torch.from_numpy(frame.copy()).permute(2, 0, 1)
        return
    if isinstance(source, Frames):
        source = source.source
    for item in source:
        yield _frame(item)


FRAME_KINDS = (
    "a PIL image, an image path, a uint8 [3, H, W] tensor or a uint8 [H, W, 3] array "
    "(or give all frames as one uint8 [T, 3, H, W] tensor or [T, H, W, 3] array)"
)


def _shaped(frame, dtype, channels: int) -> bool:
    """A 3-dimensional `frame` of `dtype` with 3 colours along axis `channels`."""
    return frame.ndim == 3 and frame.dtype == dtype and frame.shape[channels] == 3


def _frame(item) -> torch.Tensor:
    """One item of an iterable of frames as uint8 `[3, H, W]`."""
    if isinstance(item, Image.Image):
        return _from_pil(item)
    if isinstance(item, (str, os.PathLike)):
        return read_image(item)
    if isinstance(item, torch.Tensor) and _shaped(item, torch.uint8, 0):
        return item
    if isinstance(item, np.ndarray) and _shaped(item, np.uint8, 2):
        return torch.from_numpy(item.copy()).permute(2, 0, 1)
    what = type(item).__name__
    if isinstance(item, (torch.Tensor, np.ndarray)):
        what += f" {str(item.dtype).removeprefix('torch.')} {tuple(item.shape)}"
    raise TypeError(f"cannot read a frame from {what}: a frame is {FRAME_KINDS}")


# --------------------------------------------------------------------------- video files


def require_av():
    """The PyAV module, or an ImportError that names the extra to install."""
    try:
        import av
    except ImportError:
        raise ImportError(f"video files need PyAV: {VIDEO_EXTRA}") from None
    return av


class VideoReader:
    """A video file decoded lazily, one uint8 RGB `[3, H, W]` frame at a time (PyAV).

    Opening it decodes the first frame, so a file that the decoder rejects fails here with
    a ValueError. `num_frames`: the frame count in the container's header (None when it
    does not say; some files are off: the JHMDB sample's .avi says 48 and holds 40);
    `decoded`: the frames the last complete iteration decoded (None before one);
    `fps`: the average frame rate (None when unknown); `size`: `(H, W)`. Each iteration
    decodes the file again from the start.
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
        self.size = (first.height, first.width)
        self.decoded: int | None = None

    def __iter__(self) -> Iterator[torch.Tensor]:
        av = require_av()
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                n = 0
                for frame in container.decode(stream):
                    yield torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
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


class Frames:
    """A source of frames (see `iter_frames`) with what an output needs to know about it.

    Iterating gives uint8 `[3, H, W]` frames, lazily for folders and video files.
    `name(t)`: the output stem of frame t (the file's stem for a folder or a list of image
    paths, else `00000`, `00001` ...); `count`: the number of frames when known without
    decoding (None otherwise; for a video file, its header's count, which can be off);
    `fps`: a video file's frame rate (None otherwise); `folder`: the input folder of a
    folder source.
    """

    def __init__(self, source: FrameSource) -> None:
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


def open_frames(source: FrameSource) -> Frames:
    """`Frames` of a folder, a video file, an array, a tensor or a list (see `iter_frames`).
    A folder is listed and a video's first frame decoded now, so bad inputs fail early."""
    return source if isinstance(source, Frames) else Frames(source)


def short_side_size(hw: tuple[int, int], short_side: int | None) -> tuple[int, int]:
    """`(H, W)` scaled (aspect kept, rounded) so that the shorter side is `short_side`;
    unchanged for None."""
    if short_side is None:
        return int(hw[0]), int(hw[1])
    if int(short_side) < 1:
        raise ValueError(f"short_side must be >= 1, got {short_side}")
    scale = int(short_side) / min(hw)
    return max(1, round(hw[0] * scale)), max(1, round(hw[1] * scale))


def resize_frame(
    frame: torch.Tensor, size: tuple[int, int], antialias: bool = True
) -> torch.Tensor:
    """uint8 `[3, H, W]` -> uint8 `[3, *size]`: bilinear, half-pixel centres, antialiased
    when shrinking (unchanged when the size is already right)."""
    if tuple(frame.shape[-2:]) == tuple(size):
        return frame
    out = F.interpolate(
        frame[None].float(),
        size=tuple(size),
        mode="bilinear",
        align_corners=False,
        antialias=antialias,
    )
    return out[0].round().clamp(0, 255).to(torch.uint8)


def resize_ids(ids: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Integer ids `[H, W]` -> `[*size]`, nearest neighbour (half-pixel centres, as PIL's
    NEAREST); same dtype."""
    if tuple(ids.shape) == tuple(size):
        return ids
    out = F.interpolate(ids[None, None].double(), size=tuple(size), mode="nearest-exact")
    return out[0, 0].round().to(ids.dtype)


class VideoWriter:
    """Write frames to a video file one at a time; the file appears at `path` on `close()`
    (written to a temporary file beside it before; `abort()` or an exception inside a `with`
    block removes it).

    Frames: PIL images, uint8 `[3, H, W]` tensors or `[H, W, 3]` arrays, all of one size.
    Default: H.264 (`libx264`, yuv420p, `crf`), playable everywhere; odd sizes are padded by
    one pixel (edge copy). `lossless=True`: `libx264rgb` at crf 0, which decodes to exactly
    the RGB values written (fewer players show it). Needs PyAV.
    """

    def __init__(
        self, path: str | os.PathLike, fps: float = 10, *, lossless: bool = False, crf: int = 18
    ) -> None:
        av = require_av()
        self.path = Path(path)
        fd, tmp = tempfile.mkstemp(suffix=self.path.suffix or ".mp4", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self._lossless = lossless
        self._rate = Fraction(fps).limit_denominator(1001)
        self._crf = 0 if lossless else crf
        self._container = av.open(tmp, "w")
        self._stream = None

    def _open_stream(self, h: int, w: int) -> None:
        codec = "libx264rgb" if self._lossless else "libx264"
        self._stream = self._container.add_stream(
            codec, rate=self._rate, options={"crf": str(self._crf), "preset": "medium"}
        )
        self._stream.pix_fmt = "rgb24" if self._lossless else "yuv420p"
        self._stream.height, self._stream.width = h, w
        self._size = (h, w)

    def write(self, image: Image.Image | torch.Tensor | np.ndarray) -> None:
        """Append one frame."""
        av = require_av()
        arr = _rgb_array(image)
        if not self._lossless:  # yuv420p needs even sizes
            arr = np.pad(arr, ((0, arr.shape[0] % 2), (0, arr.shape[1] % 2), (0, 0)), "edge")
        if self._stream is None:
            self._open_stream(*arr.shape[:2])
        if arr.shape[:2] != self._size:
            raise ValueError(f"all video frames must be {self._size}, got {arr.shape[:2]}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self._stream is None:
            self.abort()
            raise ValueError("no frames to write")
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        publish(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the file."""
        try:
            self._container.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _rgb_array(image: Image.Image | torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        image = image.permute(1, 2, 0).cpu().numpy()
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"a frame must be uint8 [H, W, 3] or [3, H, W], got {image.shape}")
    return image


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


# --------------------------------------------------------------------------- masks


MaskSource = str | os.PathLike | np.ndarray | torch.Tensor
LOSSY_FORMATS = ("JPEG", "MPO")  # PIL's names of the JPEG formats
FRINGE_AREA = 0.001  # an id covering less than this share of the image is tiny
FRINGE_EDGE = 0.9  # ... with this share of its pixels next to another id: on an edge
FRINGE_COUNT = 5  # this many tiny ids on the edges of others: anti-aliasing


def read_mask(mask: MaskSource) -> tuple[np.ndarray, list[int] | None]:
    """A first-frame mask, from a file or an array, as `(ids [H, W], palette or None)`.

    - palette PNG (DAVIS): its indices and its palette, as they are;
    - greyscale PNG, `[H, W]` integer array: its values; a binary mask (only 0 and 255,
      only 0 and 1, or bool) is one object, id 1;
    - RGB PNG, `[H, W, 3]` array: greyscale when R = G = B everywhere, else a colour mask:
      black is the background (id 0) and each other colour an object, ids 1..N in
      increasing colour order (by R, then G, then B); the palette maps each id back to its
      colour, so that writing the results with it gives the input's colours (RGBA:
      transparent pixels are background);
    - `.npy`: its array, as an array.

    ids are uint8 except for an integer array (or `.npy`), whose dtype is kept. A palette
    PNG whose only indices are 0 and 255 gives 0/1, its palette's entry 1 then being the
    colour of entry 255. JPEG masks are refused (lossy: every edge gets new values).
    Greyscale and colour masks warn when many ids of tiny area lie along the edges of others
    (anti-aliased edges: threshold the mask first).
    """
    if isinstance(mask, (np.ndarray, torch.Tensor)):
        return _array_mask(mask, "the mask")
    if Path(mask).suffix.lower() == ".npy":
        try:
            array = np.load(mask, allow_pickle=False)
        except FileNotFoundError:
            raise FileNotFoundError(f"no such mask file: {mask}") from None
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read mask {mask}: {_one_line(e)}") from None
        return _array_mask(array, str(mask))
    try:
        with Image.open(mask) as img:
            _refuse_lossy(img, mask)
            return _image_mask(img, str(mask))
    except FileNotFoundError:
        raise FileNotFoundError(f"no such mask file: {mask}") from None
    except OSError as e:
        raise ValueError(f"cannot read mask {mask}: {e}") from None


def load_first_mask(mask: MaskSource) -> torch.Tensor:
    """A first-frame mask (a file, or an array / tensor of ids or of colours; see
    `read_mask`) as int64 `[H, W]`."""
    if isinstance(mask, (str, os.PathLike)) or _is_colour(mask):
        mask = read_mask(mask)[0]
    return as_mask_tensor(mask)


def colour_table(rgb: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """A colour mask `[H, W, 3]` as `(ids uint8 [H, W], palette)`: black is id 0, the other
    colours ids 1..N in increasing order (by R, then G, then B); palette entry i is the
    colour of id i (768 ints, entries above N from the DAVIS palette)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype.kind not in "iu":
        raise ValueError(f"a colour mask must be integer [H, W, 3], got {rgb.dtype} {rgb.shape}")
    if rgb.size and (rgb.min() < 0 or rgb.max() > 255):
        raise ValueError("the colours of a colour mask must be in 0..255")
    flat = rgb.reshape(-1, 3).astype(np.int64)
    colours, ids = np.unique(flat[:, 0] << 16 | flat[:, 1] << 8 | flat[:, 2], return_inverse=True)
    if colours[0] != 0:  # no black: every colour is an object
        colours, ids = np.concatenate([[0], colours]), ids + 1
    if len(colours) - 1 > 255:
        raise ValueError(
            f"the colour mask holds {len(colours) - 1} colours besides black, more than the "
            "255 objects a mask can have: is it a photo, or a mask saved as JPEG?"
        )
    palette = list(DAVIS_PALETTE)
    for i, c in enumerate(colours.tolist()):
        palette[3 * i : 3 * i + 3] = [c >> 16, (c >> 8) & 255, c & 255]
    return ids.reshape(rgb.shape[:2]).astype(np.uint8), palette


def _is_colour(mask) -> bool:
    return isinstance(mask, (np.ndarray, torch.Tensor)) and mask.ndim == 3 and mask.shape[2] == 3


def _refuse_lossy(img: Image.Image, path) -> None:
    if img.format in LOSSY_FORMATS:
        values = np.asarray(img.convert("RGB")).reshape(-1, 3)
        n = len(np.unique(values, axis=0))
        raise ValueError(
            f"{path} is a JPEG: its lossy compression gives every edge new values (it reads "
            f"as {n} different values, each an object); save the mask as PNG"
        )


def _image_mask(img: Image.Image, source: str) -> tuple[np.ndarray, list[int] | None]:
    """The ids and palette of an opened mask image (see `read_mask`)."""
    if img.mode == "P":
        return _palette_mask(np.asarray(img).copy(), img.getpalette())
    if img.mode in ("L", "1"):
        return _grey_mask(np.asarray(img.convert("L")).copy(), source), None
    if img.mode in ("RGB", "RGBA", "LA"):
        rgba = np.asarray(img.convert("RGBA"))
        rgb = np.where(rgba[..., 3:] == 0, 0, rgba[..., :3]).astype(np.uint8)
        return _array_mask(rgb, source)
    raise ValueError(
        f"{source} is a {img.mode} image; a mask must be a palette (P), greyscale (L) or "
        "colour (RGB) PNG"
    )


def _palette_mask(ids: np.ndarray, palette: list[int]) -> tuple[np.ndarray, list[int]]:
    if ids.any() and np.isin(ids, (0, 255)).all():  # one object, drawn with index 255
        palette = list(palette)
        palette[3:6] = palette[765:768]
        ids = (ids > 0).astype(np.uint8)
    return ids, palette


def _array_mask(mask, source: str) -> tuple[np.ndarray, list[int] | None]:
    """The ids (and palette, for colours) of a mask array (see `read_mask`)."""
    array = mask.cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if array.dtype.kind not in "iu" and not (array.dtype == bool and array.ndim == 2):
        raise ValueError(f"mask ids must be integers (or bool), got dtype {array.dtype}")
    if _is_colour(array):
        if _is_grey(array):  # a greyscale mask saved as RGB
            return _grey_mask(array[..., 0], source), None
        ids, palette = colour_table(array)
        _warn_fringe_ids(ids, source)
        return ids, palette
    if array.ndim != 2:
        raise ValueError(f"a mask must be [H, W] ids or [H, W, 3] colours, got shape {array.shape}")
    if array.dtype == bool or (array.dtype.kind in "iu" and _is_binary(array)):
        return (array > 0).astype(np.uint8), None
    return array, None


def _is_grey(rgb: np.ndarray) -> bool:
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _grey_mask(grey: np.ndarray, source: str) -> np.ndarray:
    if _is_binary(grey):
        return (grey > 0).astype(np.uint8)
    _warn_fringe_ids(grey, source)
    return grey


def _is_binary(ids: np.ndarray) -> bool:
    """Only the values 0 and 255 (or 0 and 1), some of them not 0."""
    return bool(ids.any()) and bool(np.isin(ids, (0, 255)).all() or np.isin(ids, (0, 1)).all())


def _warn_fringe_ids(ids: np.ndarray, source: str) -> None:
    """Warn when many ids each cover a tiny area, mostly along the edges of other ids: the
    marks of anti-aliasing (or of resizing), not objects."""
    values, compact, counts = np.unique(ids, return_inverse=True, return_counts=True)
    compact = compact.reshape(ids.shape)
    edge = np.zeros(ids.shape, dtype=bool)
    down = compact[1:] != compact[:-1]
    edge[1:] |= down
    edge[:-1] |= down
    right = compact[:, 1:] != compact[:, :-1]
    edge[:, 1:] |= right
    edge[:, :-1] |= right
    on_edge = np.bincount(compact[edge], minlength=len(values)) / counts
    tiny = (counts < FRINGE_AREA * ids.size) & (on_edge >= FRINGE_EDGE) & (values != 0)
    if tiny.sum() >= FRINGE_COUNT:
        warnings.warn(
            f"{source}: {int(tiny.sum())} of its {int((values != 0).sum())} ids each cover "
            f"under {FRINGE_AREA:.1%} of the image, along the edges of others: anti-aliased "
            "edges rather than objects? Every id is propagated as an object; threshold the "
            "mask first (e.g. `mask >= 128` for a 0/255 mask) or save it without "
            "anti-aliasing",
            stacklevel=2,
        )


def write_mask(
    path: str | os.PathLike, ids: np.ndarray | torch.Tensor, palette: list[int] | None = None
) -> None:
    """Write ids `[H, W]` (0..255) as a palette PNG, atomically (temp file, then rename)."""
    if isinstance(ids, torch.Tensor):
        ids = ids.cpu().numpy()
    if ids.ndim != 2 or ids.min() < 0 or ids.max() > 255:
        raise ValueError(f"ids must be [H, W] in 0..255, got shape {ids.shape}")
    img = Image.fromarray(ids.astype(np.uint8), mode="P")
    img.putpalette(palette or DAVIS_PALETTE)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


# --------------------------------------------------------------------------- keypoints


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
    return points, names


def read_joint_positions(path: str | os.PathLike) -> np.ndarray:
    """JHMDB's `joint_positions.mat`: float64 `[T, K, 2]` (x, y) 0-based pixels (`pos_img`
    is 2 x K x T, 1-based). Files over `datasets.MAT_MAX_BYTES` (on disk or inflated) are
    refused; every error names the file."""
    from .datasets import read_mat

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
    folder = Path(folder)
    rows = ["frame,name,x,y,confidence"]
    for i in range(t):
        for j in range(k):
            x, y = points[i, j]
            xy = ",".join("" if math.isnan(v) else f"{v:.3f}" for v in (x, y))
            rows.append(f"{_csv_cell(frames[i])},{_csv_cell(names[j])},{xy},{confidence[i, j]:.5f}")
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
    _write_text(csv_path, "\n".join(rows) + "\n")
    _write_text(json_path, json.dumps(data) + "\n")
    return csv_path, json_path


def _csv_cell(value: str) -> str:
    return f'"{value.replace(chr(34), chr(34) * 2)}"' if any(c in value for c in ',"\n') else value


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
