"""Writing video files one frame at a time (PyAV)."""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sfcprop.io.atomic import publish
from sfcprop.io.frames import require_av
from sfcprop.io.images import image_tensor, to_uint8


class VideoWriter:
    """Write frames to a video file one at a time; the file appears at `path` on `close()`
    (written to a temporary file beside it before; `abort()` or an exception inside a `with`
    block removes it).

    Frames: PIL images, `[3, H, W]` tensors or `[H, W, 3]` arrays, all of one size; their
    values uint8, uint16 or floats in [0, 1] (read by `sfcprop.io.frames.to_uint8`).
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
    """One frame to write as uint8 `[H, W, 3]`, by the frames' rule (`to_uint8`)."""
    if isinstance(image, Image.Image):
        return image_tensor(image).permute(1, 2, 0).numpy()
    tensor = isinstance(image, torch.Tensor)
    if image.ndim != 3 or image.shape[0 if tensor else 2] != 3:
        layout = "[3, H, W] tensor" if tensor else "[H, W, 3] array"
        raise ValueError(f"a frame to write must be a {layout}, got shape {tuple(image.shape)}")
    if tensor:
        image = image.detach().cpu().permute(1, 2, 0)
    return to_uint8(image, "the frame").numpy()
