"""Bad inputs of the io layer: frames (folders, files, videos, arrays), mask files and
points files; each row through the API and the `sfcprop` command (`bad_inputs.check`).
Then a property test (hypothesis) draws lists of frames a table would not think of."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_inputs import PROPERTY, Case, Inputs, case_id, check
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from test_io import png_file
from toys import PooledColour

import sfcprop

pytestmark = pytest.mark.usefixtures("one_thread")
RNG = np.random.default_rng(0)
PHOTO = RNG.integers(0, 256, (48, 80, 3), dtype=np.uint8)


def _two_sizes(w: Inputs) -> Path:
    frames = list(w.clip.frames)
    frames[3] = frames[3][:, :40]
    return w.folder("mixed", frames)


def _junk_only(w: Inputs) -> Path:
    folder = w.tmp / "junk"
    (folder / "x.jpg").mkdir(parents=True)
    (folder / "._f0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (folder / ".f1.png").write_bytes(b"hidden")
    return folder


def _corrupt_frame(w: Inputs) -> Path:
    (w.frames / "f9.png").write_bytes(b"\x89PNG broken")  # the last frame: after 5 masks
    return w.frames


def _replace_frame(w: Inputs, values: np.ndarray) -> Path:
    """The good frames with `f2.png` replaced by `f2.tif`, a greyscale TIFF of `values`
    (48 x 80 of them, float32: PIL's mode F, int32: mode I)."""
    (w.frames / "f2.png").unlink()
    Image.fromarray(values.reshape(48, 80)).save(w.frames / "f2.tif")
    return w.frames


def _bomb(w: Inputs, side: int) -> Path:
    """The good frames and `f9.png`: a 1-bit black PNG of `side` x `side` pixels, a few
    kB that inflate to `side**2 / 8` bytes (`side`: a multiple of 500)."""
    z = zlib.compressobj(9)
    rows = bytes(1 + side // 8) * 500  # 500 rows: a filter byte and the packed bits each
    idat = b"".join(z.compress(rows) for _ in range(side // 500)) + z.flush()
    png_file(w.frames / "f9.png", side, side, 1, 0, idat)
    return w.frames


def _floats_0_255(w: Inputs) -> list[np.ndarray]:
    frames = [f.permute(1, 2, 0).numpy().astype(np.float64) for f in w.clip.frames]
    frames[0][0, 0], frames[0][1, 1] = 0, 255
    return frames


def _nan_tensor(w: Inputs) -> torch.Tensor:
    frames = w.clip.frames / 255.0
    frames[1, 0, 5, 5] = float("nan")
    return frames


def _needs_av(w: Inputs) -> None:
    pytest.importorskip("av")


def _cmyk(w: Inputs) -> Path:
    Image.fromarray(w.clip.masks[0].numpy() * 100).convert("CMYK").save(w.tmp / "m.tif")
    return w.tmp / "m.tif"


def _zip_bomb(w: Inputs) -> Path:
    z = zlib.compressobj(9)
    data = b"".join(z.compress(bytes(1 << 20)) for _ in range(64)) + z.flush()
    return w.mat("bomb.mat", (15, data))


CASES = [
    # ------------------------------------------------------------------ frames
    Case(
        "missing frames folder",
        FileNotFoundError,
        "no such folder of frames or video file",
        lambda w: w.propagate(frames=w.tmp / "nowhere"),
    ),
    Case(
        "empty folder",
        ValueError,
        "no image files (.jpg, .jpeg, .png",
        lambda w: w.propagate(frames=w.folder("empty", [])),
    ),
    Case(
        "folder of junk only (a folder x.jpg, ._ and dot files)",
        ValueError,
        "no image files",
        lambda w: w.propagate(frames=_junk_only(w)),
    ),
    Case(
        "a single image as frames",
        ValueError,
        "is a single image; give a folder of frames or a video file",
        lambda w: w.propagate(frames=w.frames / "f0.png"),
    ),
    Case(
        "corrupt image file",
        ValueError,
        "cannot read image",
        lambda w: w.propagate(frames=_corrupt_frame(w)),
    ),
    Case(
        "mixed frame sizes",
        ValueError,
        "frame 3 is (40, 80) (H, W) but the keyframes",
        lambda w: w.propagate(frames=_two_sizes(w)),
    ),
    Case(
        "two frames share a name",
        ValueError,
        "f0.jpg and f0.png name the same frame",
        lambda w: w.propagate(
            frames=w.folder("dup", list(w.clip.frames[:2]), ["f0.png", "f0.jpg"])
        ),
    ),
    Case(
        "one frame number twice (1.png, 01.png)",
        ValueError,
        "01.png and 1.png name the same frame (one name or number, with another zero padding",
        lambda w: w.propagate(
            frames=w.folder(
                "pad", list(w.clip.frames), ["0.png", "1.png", "01.png", "2.png", "3.png"]
            )
        ),
    ),
    Case(
        "one frame number twice, another extension (5.png, 005.jpg)",
        ValueError,
        "005.jpg and 5.png name the same frame",
        lambda w: w.propagate(
            frames=w.folder(
                "ext", list(w.clip.frames), ["3.png", "4.png", "5.png", "005.jpg", "6.png"]
            )
        ),
    ),
    Case(
        "float TIFF frame outside [0, 1]",
        ValueError,
        "f2.tif has float values from 0 to 255: floats are read as 0-1",
        lambda w: w.propagate(frames=_replace_frame(w, np.linspace(0, 255, 3840, np.float32))),
    ),
    Case(
        "32-bit integer TIFF frame",
        ValueError,
        "f2.tif holds 32-bit integers from 0 to 100000; integer images are read as 8-bit or 16-bit",
        lambda w: w.propagate(frames=_replace_frame(w, np.linspace(0, 1e5, 3840).astype(np.int32))),
    ),
    Case(
        "decompression bomb frame (a PNG of 400 million pixels)",
        ValueError,
        "f9.png is an image of 400,000,000 pixels, more than the 89,478,485 that "
        "PIL.Image.MAX_IMAGE_PIXELS allows",
        lambda w: w.propagate(frames=_bomb(w, 20000)),
    ),
    Case(
        "frame over PIL's pixel limit (100 million pixels)",
        ValueError,
        "f9.png is an image of 100,000,000 pixels, more than the 89,478,485",
        lambda w: w.propagate(frames=_bomb(w, 10000)),
    ),
    Case(
        "video the decoder rejects",
        ValueError,
        "cannot decode video",
        lambda w: (
            _needs_av(w)
            or w.propagate(frames=w.file("clip.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(500)))
        ),
    ),
    Case(
        "float frames of 0-255 in a list",
        ValueError,
        "frame 0 has float values from 0 to 255: floats are read as 0-1; give values in [0, 1]",
        lambda w: w.propagate(frames=_floats_0_255(w)),
    ),
    Case(
        "NaN in a float frames tensor",
        ValueError,
        "frame 1 has float values that are not finite (NaN or inf)",
        lambda w: w.propagate(frames=_nan_tensor(w)),
    ),
    Case(
        "frames tensor of int64",
        ValueError,
        "frames as a tensor must be uint8 [T, 3, H, W], got torch.int64",
        lambda w: w.propagate(frames=w.clip.frames.long()),
    ),
    Case(
        "frames of int32 in a list",
        TypeError,
        "cannot read frame 0 from ndarray int32 (48, 80, 3): a frame is a PIL image",
        lambda w: w.propagate(
            frames=[f.permute(1, 2, 0).numpy().astype(np.int32) for f in w.clip.frames]
        ),
    ),
    Case(
        "frames tensor with 4 channels",
        ValueError,
        "frames as a tensor must be [T, 3, H, W], got shape (5, 4, 48, 80)",
        lambda w: w.propagate(frames=torch.cat([w.clip.frames, w.clip.frames[:, :1]], 1)),
    ),
    # ------------------------------------------------------------------ mask files
    Case(
        "JPEG mask",
        ValueError,
        "is a JPEG: its lossy compression gives every edge new values",
        lambda w: w.propagate(
            mask=w.png("m.jpg", (w.clip.masks[0].numpy() * 100).astype(np.uint8), quality=70)
        ),
    ),
    Case(
        "a photo as the mask",
        ValueError,
        "more than the 255 objects a mask can have: is it a photo",
        lambda w: w.propagate(mask=w.png("photo.png", PHOTO)),
    ),
    Case(
        "CMYK mask",
        ValueError,
        "is a CMYK image; a mask must be a palette (P), greyscale (L) or colour (RGB) PNG",
        lambda w: w.propagate(mask=_cmyk(w)),
    ),
    Case(
        "mask of 3 dimensions",
        ValueError,
        "a mask must be [H, W] ids or [H, W, 3] colours, got shape (2, 48, 80)",
        lambda w: w.propagate(mask=w.npy("m.npy", np.ones((2, 48, 80), np.int64))),
    ),
    Case(
        "unreadable mask",
        ValueError,
        "cannot read image",
        lambda w: w.propagate(mask=w.file("bad.png", b"garbage")),
    ),
    Case(
        "missing mask file",
        FileNotFoundError,
        "no such mask file",
        lambda w: w.propagate(mask=w.tmp / "none.png"),
    ),
    # ------------------------------------------------------------------ points files
    Case(
        "missing points file",
        FileNotFoundError,
        "no such points file",
        lambda w: w.track(w.tmp / "none.json"),
    ),
    Case(
        "a point of three numbers",
        ValueError,
        "a point must be [x, y], got [1, 2, 3]",
        lambda w: w.track(w.file("p.json", "[[1, 2, 3]]")),
    ),
    Case(
        "malformed .mat of points",
        ValueError,
        "cannot read",
        lambda w: w.track(w.mat("cut.mat", (14, bytes(8)))),
    ),
    Case(
        ".mat inflating without limit",
        ValueError,
        "bomb.mat: a compressed variable inflates to more than 16 MiB",
        lambda w: w.track(_zip_bomb(w)),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_bad_input(case: Case, tmp_path, monkeypatch, capsys):
    check(case, Inputs(tmp_path, monkeypatch), capsys)


# --------------------------------------------------------------------------- properties


FRAME_KINDS = ["hwc uint8", "chw tensor", "hwc float", "hw uint8", "hwc4 uint8", "chw array"]
FRAME_KINDS += ["chw float tensor", "hwc uint16", "hwc float 2-257", "chw int64 tensor"]


@st.composite
def frame_lists(draw) -> tuple[list, tuple[int, int]]:
    """2-4 frames, each of a random kind and (mostly) the same size."""
    hw = draw(st.tuples(st.integers(1, 20), st.integers(1, 20)))
    frames = []
    for _ in range(draw(st.integers(2, 4))):
        kind = draw(st.sampled_from(FRAME_KINDS[:2] * 3 + FRAME_KINDS[2:]))
        h, w = draw(st.sampled_from([hw] * 4 + [(hw[0] + 1, hw[1])]))
        pixels = RNG.integers(0, 256, (h, w, 4), dtype=np.uint8)
        frames.append(
            {
                "hwc uint8": pixels[..., :3],
                "chw tensor": torch.from_numpy(pixels[..., :3]).permute(2, 0, 1),
                "hwc float": pixels[..., :3] / 255.0,
                "hw uint8": pixels[..., 0],
                "hwc4 uint8": pixels,
                "chw array": pixels[..., :3].transpose(2, 0, 1),
                "chw float tensor": torch.from_numpy(pixels[..., :3] / 255.0).permute(2, 0, 1),
                "hwc uint16": pixels[..., :3].astype(np.uint16) << 8,
                "hwc float 2-257": pixels[..., :3].astype(np.float32) + 2,
                "chw int64 tensor": torch.from_numpy(pixels[..., :3]).permute(2, 0, 1).long(),
            }[kind]
        )
    return frames, hw


def _frame_error(frames: list, hw: tuple[int, int]) -> str | None:
    """The words the error of a list of frames must hold (the first bad frame's), or None."""
    for t, f in enumerate(frames):
        readable = (np.uint8, np.uint16, np.float32, np.float64, torch.uint8, torch.float64)
        colours = 2 if isinstance(f, np.ndarray) else 0
        if not (f.dtype in readable and f.ndim == 3 and f.shape[colours] == 3):
            return f"cannot read frame {t} from"  # and what a frame must be
        if f.dtype in (np.float32, np.float64, torch.float64) and f.max() > 1:
            return f"frame {t} has float values from"
        size = tuple(f.shape[:2] if isinstance(f, np.ndarray) else f.shape[1:])
        if size != hw:
            return f"frame {t} is {size} (H, W) but"
    return None


@PROPERTY
@given(case=frame_lists())
def test_random_frame_lists_propagate_or_name_the_bad_frame(case):
    """A list of frames of mixed kinds: [H, W, 3] arrays and [3, H, W] tensors of uint8,
    uint16 or floats in [0, 1] propagate, as their uint8 frames do; anything else is
    refused (TypeError or ValueError) naming the frame and saying what a frame must be, or
    which frame has another size."""
    frames, hw = case
    mask = np.zeros(hw, np.uint8)
    mask[: max(1, hw[0] // 2)] = 2
    words = _frame_error(frames, hw)
    if words is None:
        result = sfcprop.propagate(frames, mask, PooledColour().eval())
        assert result.ids.shape == (len(frames), *hw)
        as_uint8 = [_uint8(f) for f in frames]
        assert torch.equal(result.ids, sfcprop.propagate(as_uint8, mask, PooledColour().eval()).ids)
        return
    with pytest.raises((TypeError, ValueError), match=re.escape(words)):
        sfcprop.propagate(frames, mask, PooledColour().eval())


def _uint8(frame) -> np.ndarray:
    """A good frame of the property test as a uint8 [H, W, 3] array, computed by numpy."""
    if isinstance(frame, torch.Tensor):
        frame = frame.permute(1, 2, 0).numpy()
    if frame.dtype == np.uint16:
        return (frame >> 8).astype(np.uint8)
    return np.round(frame * 255).astype(np.uint8) if frame.dtype.kind == "f" else frame
