"""Frames in (folders, video files, arrays), masks and points in, masks, videos and tracks out;
short-side resizing and streaming through `propagate`."""

import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_inputs import PROPERTY
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageOps
from toys import PooledColour

from sfcprop import io, labels
from sfcprop.bench.synthetic import generate_clip
from sfcprop.config import Config
from sfcprop.core.propagator import Propagator
from sfcprop.io import matfile
from sfcprop.session.api import propagate, propagate_iter, propagate_soft

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip():
    return generate_clip(num_frames=6, height=48, width=80, seed=2)


@pytest.fixture(scope="module")
def net():
    return PooledColour().eval()


def _save_frames(folder, frames, names):
    folder.mkdir()
    for name, f in zip(names, frames, strict=True):
        Image.fromarray(f.permute(1, 2, 0).numpy()).save(folder / name)
    return folder


def _lossless_video(path, frames, fps=12):
    with io.VideoWriter(path, fps, lossless=True) as writer:
        for f in frames:
            writer.write(f)
    return path


# --------------------------------------------------------------------------- masks


def test_palette_png_round_trip_keeps_ids_and_palette(tmp_path):
    ids = np.random.default_rng(0).integers(0, 7, (20, 30)).astype(np.uint8)
    palette = list(np.random.default_rng(1).integers(0, 256, 768))
    io.write_mask(tmp_path / "m.png", ids, palette)
    back, pal = io.read_mask(tmp_path / "m.png")
    assert np.array_equal(back, ids) and back.dtype == np.uint8
    assert pal[:768] == palette
    io.write_mask(tmp_path / "d.png", torch.from_numpy(ids))  # default: the DAVIS palette
    assert io.read_mask(tmp_path / "d.png")[1][:768] == io.DAVIS_PALETTE
    assert list(tmp_path.iterdir()) != [] and not list(tmp_path.glob("*.tmp*"))


def test_binary_greyscale_and_npy_masks(tmp_path):
    binary = np.zeros((10, 12), np.uint8)
    binary[2:5, 3:9] = 255
    Image.fromarray(binary).save(tmp_path / "b.png")
    ids, pal = io.read_mask(tmp_path / "b.png")
    assert pal is None and set(np.unique(ids)) == {0, 1}
    np.save(tmp_path / "m.npy", (binary // 255 * 3).astype(np.int32))
    assert set(np.unique(io.load_first_mask(tmp_path / "m.npy")).tolist()) == {0, 3}
    Image.fromarray(np.stack([binary] * 3, -1)).save(tmp_path / "rgb.png")  # grey as RGB
    assert io.read_mask(tmp_path / "rgb.png")[1] is None
    assert np.array_equal(io.read_mask(tmp_path / "rgb.png")[0], ids)
    Image.fromarray(binary).convert("CMYK").save(tmp_path / "cmyk.tif")
    with pytest.raises(ValueError, match="palette"):
        io.read_mask(tmp_path / "cmyk.tif")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        io.read_mask(tmp_path / "bad.png")


# --------------------------------------------------------------------------- frames


def test_folder_natural_order_and_names(clip, tmp_path):
    names = [f"f{i * 5}.png" for i in range(6)]  # f5 before f10
    folder = _save_frames(tmp_path / "frames", clip.frames, names)
    (folder / "notes.txt").write_text("ignored")
    frames = io.open_frames(folder)
    assert frames.count == 6 and frames.folder == folder
    assert [frames.name(t) for t in range(6)] == [n[:-4] for n in names]
    assert torch.equal(torch.stack(list(frames)), clip.frames)
    arrays = io.open_frames(clip.frames.permute(0, 2, 3, 1).numpy())
    assert arrays.count == 6 and arrays.name(3) == "00003"


def test_frame_source_errors(clip, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        io.open_frames(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no such folder of frames or video"):
        io.open_frames(tmp_path / "missing")
    one = _save_frames(tmp_path / "one", clip.frames[:1], ["a.png"])
    with pytest.raises(ValueError, match="single image"):
        io.open_frames(one / "a.png")
    dup = _save_frames(tmp_path / "dup", clip.frames[:2], ["a.png", "a.jpg"])
    with pytest.raises(ValueError, match=r"dup: a.jpg and a.png name the same frame"):
        io.open_frames(dup)


def test_lossless_video_round_trip(clip, tmp_path):
    pytest.importorskip("av")
    path = _lossless_video(tmp_path / "clip.mp4", clip.frames)
    reader = io.VideoReader(path)
    assert reader.size == (48, 80) and reader.num_frames == 6 and reader.fps == pytest.approx(12)
    assert torch.equal(torch.stack(list(reader)), clip.frames)
    frames = io.open_frames(str(path))
    assert frames.count == 6 and frames.fps == pytest.approx(12) and frames.name(2) == "00002"
    assert torch.equal(torch.stack(list(io.iter_frames(path))), clip.frames)
    assert not [p for p in tmp_path.iterdir() if p.name != "clip.mp4"]  # no temp file left


def test_rejected_video_and_missing_pyav(tmp_path, monkeypatch):
    pytest.importorskip("av")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="cannot decode video"):
        io.open_frames(bad)
    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
    with pytest.raises(ImportError, match=r"pip install 'sfcprop\[video\]'"):
        io.open_frames(bad)


def test_video_writer_pads_odd_sizes_and_refuses_mixed(tmp_path):
    av = pytest.importorskip("av")
    frames = torch.randint(0, 256, (3, 3, 15, 21), dtype=torch.uint8)
    with io.VideoWriter(tmp_path / "v.mp4", 5) as w:
        for f in frames:
            w.write(f)
    with av.open(str(tmp_path / "v.mp4")) as c:
        s = c.streams.video[0]
        assert (s.frames, s.codec_context.width, s.codec_context.height) == (3, 22, 16)
    with (
        pytest.raises(ValueError, match="all video frames"),
        io.VideoWriter(tmp_path / "x.mp4") as w,
    ):
        w.write(frames[0])
        w.write(frames[0][:, :8])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


def test_video_writer_takes_frames_by_the_frames_rule(clip, tmp_path):
    """uint16 and float frames are written as their 8 bits (what reading them gives);
    what is not a frame is refused saying what a frame to write is."""
    pytest.importorskip("av")
    path = tmp_path / "v.mp4"
    kinds = [clip.frames[0] / 255.0, clip.frames[1].permute(1, 2, 0).numpy().astype(np.uint16) << 8]
    kinds += [Image.fromarray(clip.frames[2].permute(1, 2, 0).numpy())]
    with io.VideoWriter(path, 5, lossless=True) as writer:
        for frame in kinds:
            writer.write(frame)
    assert torch.equal(torch.stack(list(io.VideoReader(path))), clip.frames[:3])
    bad = {
        r"must be a \[3, H, W\] tensor, got shape \(48, 80, 3\)": clip.frames[0].permute(1, 2, 0),
        "the frame has float values from 0 to 2": clip.frames[0].float(),
        "the frame has int64 values": clip.frames[0].long(),
    }
    for words, frame in bad.items():
        with pytest.raises((TypeError, ValueError), match=words), io.VideoWriter(path) as w:
            w.write(frame)
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]  # no temporary file left


# --------------------------------------------------------------------------- bit depths


def png_file(path: Path, width: int, height: int, depth: int, colour: int, idat: bytes) -> Path:
    """A PNG of one IDAT chunk, written byte by byte: `depth` bits per sample, PNG colour
    type `colour` (0 grey, 2 RGB, 4 grey + alpha, 6 RGBA)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    head = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    body = chunk(b"IHDR", head) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def png16(path: Path, values: np.ndarray) -> Path:
    """A 16-bit PNG of `[H, W]` grey or `[H, W, C]` samples (C: 2, 3 or 4), which PIL
    does not write for colour."""
    channels = 1 if values.ndim == 2 else values.shape[2]
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]  # grey, grey + alpha, RGB, RGBA
    rows = values.astype(">u2").reshape(values.shape[0], -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on every row
    return png_file(path, values.shape[1], values.shape[0], 16, colour, zlib.compress(raw))


def _high_byte(values: np.ndarray) -> np.ndarray:
    return (values >> 8).astype(np.uint8)


def _times_255(values: np.ndarray) -> np.ndarray:
    return np.round(values.astype(np.float64) * 255).astype(np.uint8)


def _chw(values: np.ndarray) -> np.ndarray:
    """`[H, W]` grey, `[H, W, 2]` grey + alpha or `[H, W, C]` colour as `[3, H, W]`, alpha
    dropped."""
    grey = values if values.ndim == 2 else values[..., 0] if values.shape[2] == 2 else None
    rgb = values[..., :3] if grey is None else np.repeat(grey[..., None], 3, 2)
    return rgb.transpose(2, 0, 1)


def _read(tmp_path: Path, kind: str, values: np.ndarray) -> torch.Tensor:
    """`values` written or passed as `kind`, read back by sfcprop.io."""
    path = tmp_path / "frame"
    if kind.endswith("PNG"):
        return io.read_image(png16(path.with_suffix(".png"), values))
    if kind.endswith("TIFF"):
        Image.fromarray(values).save(path.with_suffix(".tif"))
        return io.read_image(path.with_suffix(".tif"))
    if kind.endswith("PIL image"):
        return next(io.iter_frames([Image.fromarray(values)]))
    if kind.endswith("tensor"):
        chw = torch.from_numpy(values.transpose(2, 0, 1).copy())
        one, whole = next(io.iter_frames([chw])), next(io.iter_frames(chw[None]))
    else:
        one, whole = next(io.iter_frames([values])), next(io.iter_frames(values[None]))
    assert torch.equal(one, whole)  # a list of frames and one array: the same rule
    return one


# kind: the dtype drawn, its shape ("grey" [H, W], else [H, W, C]) and the 8-bit rule
KINDS = {
    "16-bit grey PNG": (np.uint16, "grey", _high_byte),
    "48-bit RGB PNG": (np.uint16, 3, _high_byte),
    "64-bit RGBA PNG": (np.uint16, 4, _high_byte),
    "32-bit grey + alpha PNG": (np.uint16, 2, _high_byte),
    "16-bit TIFF": (np.uint16, "grey", _high_byte),
    "32-bit integer TIFF": (np.int32, "grey", _high_byte),  # PIL mode I, 16-bit values
    "float TIFF": (np.float32, "grey", _times_255),
    "16-bit PIL image": (np.uint16, "grey", _high_byte),
    "float PIL image": (np.float32, "grey", _times_255),
    "uint16 array": (np.uint16, 3, _high_byte),
    "float32 array": (np.float32, 3, _times_255),
    "float64 array": (np.float64, 3, _times_255),
    "float16 array": (np.float16, 3, _times_255),
    "uint16 tensor": (np.uint16, 3, _high_byte),
    "float32 tensor": (np.float32, 3, _times_255),
    "float64 tensor": (np.float64, 3, _times_255),
}


@PROPERTY
@given(
    kind=st.sampled_from(sorted(KINDS)),
    h=st.integers(1, 9),
    w=st.integers(2, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_16_bit_and_float_frames_read_as_numpy_scales_them(tmp_path, kind, h, w, seed):
    """Frames of every bit depth and float kind, files and arrays: never a constant image
    (the 16-bit PNG once read as all 255, the float TIFF as all 0); the 8-bit values are
    those numpy computes (16-bit: the high byte; floats in [0, 1]: times 255, rounded)."""
    dtype, channels, rule = KINDS[kind]
    shape = (h, w) if channels == "grey" else (h, w, channels)
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        values = rng.random(shape).astype(dtype)
        top = 1.0
    else:
        values = rng.integers(0, 1 << 16, shape).astype(dtype)
        top = 0xFFFF
    values[0, 0], values[-1, -1] = 0, top  # a dark and a bright pixel: not constant
    frame = _read(tmp_path, kind, values)
    assert frame.dtype == torch.uint8 and frame.shape == (3, h, w)
    assert frame.unique().numel() > 1
    np.testing.assert_array_equal(frame.numpy(), _chw(rule(values)), err_msg=kind)


def test_propagate_reads_16_bit_and_float_frames_like_their_8_bits(clip, net, tmp_path):
    """A folder of 48-bit PNGs (v * 257: the high byte is v), uint16 arrays and float
    tensors in [0, 1] propagate exactly as the uint8 frames."""
    wide = [f.permute(1, 2, 0).numpy().astype(np.uint16) * 257 for f in clip.frames]
    (tmp_path / "png16").mkdir()
    for t, values in enumerate(wide):
        png16(tmp_path / "png16" / f"{t:03d}.png", values)
    mask = clip.masks[0].long()
    want = propagate(clip.frames, mask, net, context=2).ids
    for frames in (tmp_path / "png16", wide, clip.frames.double() / 255, clip.frames / 255.0):
        assert torch.equal(propagate(frames, mask, net, context=2).ids, want)


def test_floats_outside_0_1_and_other_integers_are_refused(tmp_path):
    grey = np.linspace(0, 255, 48, dtype=np.float32).reshape(6, 8)
    Image.fromarray(grey).save(tmp_path / "hdr.tif")
    with pytest.raises(ValueError, match=r"hdr.tif has float values from 0 to 255: floats are"):
        io.read_image(tmp_path / "hdr.tif")
    Image.fromarray((grey * 1000).astype(np.int32)).save(tmp_path / "i32.tif")
    with pytest.raises(ValueError, match=r"i32.tif holds 32-bit integers from 0 to 255000"):
        io.read_image(tmp_path / "i32.tif")
    below = torch.full((2, 3, 4, 5), -0.25)
    with pytest.raises(ValueError, match=r"frame 0 has float values from -0.25 to -0.25"):
        list(io.iter_frames(below))
    nan = torch.zeros(3, 4, 5, dtype=torch.float64)
    nan[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="frame 1 has float values that are not finite"):
        list(io.iter_frames([torch.zeros(3, 4, 5), nan]))
    with pytest.raises(ValueError, match=r"must be uint8 \[T, H, W, 3\], got int16"):
        list(io.iter_frames(np.zeros((2, 4, 5, 3), np.int16)))
    with pytest.raises(TypeError, match="has int32 values; a frame holds uint8, uint16 or float"):
        io.frames.to_uint8(torch.zeros(3, 2, 2, dtype=torch.int32), "the frame")


# --------------------------------------------------------------------------- orientation


TURNS = {3: 2, 6: -1, 8: 1}  # EXIF orientation -> quarter turns (np.rot90) a viewer makes


@pytest.mark.parametrize("orientation", sorted(TURNS))
@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif", ".webp"])
def test_frames_are_read_as_a_viewer_shows_them(tmp_path, suffix, orientation):
    """A frame with an EXIF orientation comes back turned, as `ImageOps.exif_transpose`
    shows it (for lossless files: the pixels turned by numpy)."""
    pixels = np.random.default_rng(orientation).integers(0, 256, (24, 40, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"f{suffix}"
    Image.fromarray(pixels).save(
        path, exif=exif, **({"lossless": True} if suffix == ".webp" else {})
    )
    frame = io.read_image(path).permute(1, 2, 0).numpy()
    with Image.open(path) as img:
        shown = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    np.testing.assert_array_equal(frame, shown)
    if suffix != ".jpg":
        np.testing.assert_array_equal(frame, np.rot90(pixels, TURNS[orientation]))
    assert io.frames.open_image(path).size == shown.shape[1::-1]


def test_a_folder_of_turned_frames_has_the_shown_size(clip, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 8
    (tmp_path / "turned").mkdir()
    for t, f in enumerate(clip.frames[:3]):
        Image.fromarray(f.permute(1, 2, 0).numpy()).save(
            tmp_path / "turned" / f"{t}.png", exif=exif
        )
    frames = torch.stack(list(io.open_frames(tmp_path / "turned")))
    assert torch.equal(frames, clip.frames[:3].rot90(1, (2, 3)))  # 80 x 48, turned left


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_a_video_is_read_as_its_display_matrix_turns_it(clip, tmp_path, degrees):
    """A phone's portrait video: frames stored landscape with a display matrix that turns
    them (`degrees` counter-clockwise) come back turned, as a player shows them."""
    av = pytest.importorskip("av")
    path = tmp_path / "turned.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=10, options={"crf": "0"})
        if not hasattr(stream, "set_display_rotation"):
            pytest.skip("this PyAV writes no display matrix")
        stream.pix_fmt, stream.height, stream.width = "rgb24", 48, 80
        stream.set_display_rotation(degrees)
        for f in clip.frames:
            pixels = np.ascontiguousarray(f.permute(1, 2, 0).numpy())
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    reader = io.VideoReader(path)
    want = clip.frames.rot90(degrees // 90, (2, 3))
    assert reader.size == tuple(want.shape[2:]) and torch.equal(torch.stack(list(reader)), want)


# --------------------------------------------------------------------------- pixel limit


def test_images_over_pils_pixel_limit_are_refused_naming_the_file(clip, tmp_path, monkeypatch):
    """More than `Image.MAX_IMAGE_PIXELS` (PIL warns) or twice that (PIL raises): a
    ValueError naming the file and its pixel count, for frames and `open_image`."""
    folder = _save_frames(tmp_path / "frames", clip.frames[:2], ["a.png", "b.png"])  # 3840 px
    Image.fromarray(clip.masks[0].numpy()[:30, :40]).save(tmp_path / "b.png")  # 1200 px
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"a.png is an image of 3,840 pixels, more than the 1,000"):
        io.read_image(folder / "a.png")
    with pytest.raises(ValueError, match=r"b.png is an image of 1,200 pixels, more than the 1,000"):
        io.frames.open_image(tmp_path / "b.png")
    with pytest.raises(ValueError, match=r"frames/a.png is an image of 3,840 pixels"):
        list(io.open_frames(folder))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1200)  # at the limit: read
    assert io.frames.open_image(tmp_path / "b.png").size == (40, 30)


# --------------------------------------------------------------------------- frame names


@pytest.mark.parametrize(
    "names",
    [
        ["0.png", "1.png", "01.png"],
        ["5.png", "005.jpg"],
        ["a7.png", "A07.PNG"],
        ["x_2_y.png", "x_002_y.png", "x_3_y.png"],
        ["f0.png", "f0.jpg"],
    ],
)
def test_two_files_naming_one_frame_are_refused(clip, tmp_path, names):
    """Names that sort as one (zero padding, case, extension) would drop a frame or order
    them as the file system lists them: an error naming both files."""
    folder = _save_frames(tmp_path / "frames", clip.frames[: len(names)], names)
    clash = sorted(n for n in names if n not in ("0.png", "x_3_y.png"))
    with pytest.raises(ValueError, match="name the same frame") as error:
        io.open_frames(folder)
    assert str(error.value).startswith(f"{folder}: {clash[0]} and {clash[1]} name the same")
    with pytest.raises(ValueError, match="name the same frame"):
        io.list_files(folder, (".png", ".jpg"))


def test_unambiguous_numbers_keep_their_natural_order(clip, tmp_path):
    names = ["10.png", "9.png", "009a.png", "100.jpg", "x1.png", "x01b.png"]
    folder = _save_frames(tmp_path / "frames", clip.frames, names)
    got = [p.name for p in io.list_images(folder)]
    assert got == ["9.png", "009a.png", "10.png", "100.jpg", "x1.png", "x01b.png"]


# --------------------------------------------------------------------------- resizing


def test_sizes_and_resizing():
    # the size rule lives in Config (one place); labels/resize does the resampling
    assert Config(short_side=240).encoded_size(480, 854) == (240, 427)
    assert Config(short_side=480).encoded_size(854, 480) == (854, 480)
    assert Config(short_side=None).encoded_size(48, 80) == (48, 80)
    with pytest.raises(ValueError, match="short_side"):
        Config(short_side=0).encoded_size(48, 80)
    ids = torch.from_numpy(np.random.default_rng(0).integers(0, 5, (37, 53)))
    for size in [(20, 30), (74, 106)]:
        pil = Image.fromarray(ids.numpy().astype(np.uint8)).resize(size[::-1], Image.NEAREST)
        assert np.array_equal(labels.resize_ids(ids, size).numpy(), np.asarray(pil))
    frame = torch.full((3, 40, 60), 200, dtype=torch.uint8)
    small = labels.resize_frame(frame, (20, 30))
    assert small.shape == (3, 20, 30) and small.dtype == torch.uint8 and (small == 200).all()


def test_short_side_at_native_size_is_the_reference(clip, net):
    mask = clip.masks[0].long()
    ref = propagate(clip.frames, mask, net, topk=5, context=2, radius=4, return_soft=True)
    same = propagate(
        clip.frames, mask, net, topk=5, context=2, radius=4, short_side=48, return_soft=True
    )
    assert torch.equal(same.ids, ref.ids) and torch.equal(same.soft, ref.soft)


def test_short_side_outputs_at_the_original_size(clip, net):
    mask = clip.masks[0].long()
    out = propagate(
        clip.frames, mask, net, topk=5, context=2, radius=4, short_side=24, return_soft=True
    )
    assert out.ids.shape == (6, 48, 80) and torch.equal(out.ids[0], mask.to(torch.uint8))
    assert out.soft.shape == (6, 3, 3, 5)  # the grid of the 24 x 40 frames
    # by hand: frames resized, mask resized nearest, soft labels decoded at 48 x 80; on this
    # coarse grid an object wins no cell, so it keeps the one it covers most
    prop = Propagator(net, topk=5, context=2, radius=4)
    small = labels.resize_ids(mask, (24, 40))
    assert len(labels.to_grid(small, [0, 1, 2], (3, 5)).argmax(0).unique()) < 3
    key = labels.keep_objects(labels.to_grid(small, [0, 1, 2], (3, 5)), mask, [0, 1, 2])
    assert len(key.argmax(0).unique()) == 3
    prop.start(labels.resize_frame(clip.frames[0], (24, 40)), key)
    soft = prop.step(labels.resize_frame(clip.frames[1], (24, 40)))
    torch.testing.assert_close(soft, out.soft[1])
    assert torch.equal(labels.decode(soft, [0, 1, 2], (48, 80)), out.ids[1])


def test_full_size_soft_maps_are_resized_to_the_grid(clip, net):
    rng = np.random.default_rng(0)
    maps = torch.from_numpy(rng.random((4, 48, 80))).float()  # any number of float maps
    grid = labels.resize_soft(maps, (6, 10))
    a = propagate_soft(clip.frames, maps, net, context=2)
    b = propagate_soft(clip.frames, grid, net, context=2)
    assert a.shape == (6, 4, 6, 10)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="feature grid"):
        propagate_soft(clip.frames, maps[:, :20], net)


def test_propagate_iter_streams_lazily(clip, net, tmp_path):
    pulled = []

    def frames():
        for t, f in enumerate(clip.frames):
            pulled.append(t)
            yield f

    ref = propagate(clip.frames, clip.masks[0].long(), net, context=2)
    for r in propagate_iter(frames(), clip.masks[0].long(), net, context=2):
        assert pulled[-1] == r.t  # one frame read per result: nothing buffered
        assert torch.equal(r.ids, ref.ids[r.t]) and r.soft.shape == (3, 6, 10)


def test_propagate_reads_a_video_file_like_its_frames(clip, net, tmp_path):
    pytest.importorskip("av")
    path = _lossless_video(tmp_path / "clip.mp4", clip.frames)
    mask = clip.masks[0].long()
    assert torch.equal(propagate(path, mask, net).ids, propagate(clip.frames, mask, net).ids)


# --------------------------------------------------------------------------- points and tracks


def test_read_points_in_every_form(tmp_path):
    want = np.array([[10.0, 20.0], [30.5, 4.0]])
    forms = {
        "a.json": json.dumps([[10, 20], [30.5, 4]]),
        "b.json": json.dumps({"head": [10, 20], "hand": [30.5, 4]}),
        "c.json": json.dumps({"points": [[10, 20], [30.5, 4]], "names": ["head", "hand"]}),
        "d.csv": "name,x,y\nhead,10,20\nhand,30.5,4\n",
        "e.csv": "10,20\n30.5,4\n",
        "f.csv": "head,10,20\nhand,30.5,4\n",
        "g.csv": "y,x\n20,10\n4,30.5\n",
    }
    for name, text in forms.items():
        (tmp_path / name).write_text(text)
        points, names = io.read_points(tmp_path / name)
        np.testing.assert_array_equal(points, want, err_msg=name)
        assert names in (None, ["head", "hand"]), name
    (tmp_path / "nan.json").write_text("[[1, 2], [null, null]]")
    assert np.isnan(io.read_points(tmp_path / "nan.json")[0][1]).all()
    for name, text in {
        "x.json": "{",
        "y.csv": "1,2,3,4\n",
        "z.txt": "1 2",
        "w.json": "[[1]]",
    }.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match="cannot read points"):
            io.read_points(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        io.read_points(tmp_path / "none.json")


def test_read_points_from_jhmdb_mat(data_dir):
    mat = next((data_dir / "jhmdb-sample" / "joint_positions").glob("*/*/joint_positions.mat"))
    points, names = io.read_points(mat)
    gt = io.read_joint_positions(mat)
    assert points.shape == (15, 2) and gt.shape == (40, 15, 2) and names is None
    np.testing.assert_array_equal(points, gt[0])
    assert points[0, 0] == pytest.approx(285.5)  # 1-based 286.5 in the file


def test_write_tracks(tmp_path):
    points = np.array([[[1.0, 2.0], [3.0, 4.0]], [[1.5, 2.5], [np.nan, np.nan]]])
    conf = np.array([[1.0, 1.0], [0.5, 0.0]])
    csv_path, json_path = io.write_tracks(tmp_path, points, conf, ["a", "b,c"], ["x1", "x2"])
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "frame,name,x,y,confidence"
    assert lines[3] == "x2,a,1.500,2.500,0.50000" and lines[4] == 'x2,"b,c",,,0.00000'
    data = json.loads(json_path.read_text())
    assert data["points"][1] == [[1.5, 2.5], None] and data["names"] == ["a", "b,c"]
    assert data["frames"] == ["x1", "x2"] and data["confidence"][1] == [0.5, 0.0]


# --------------------------------------------------------------------------- bad inputs


def test_folders_of_frames_skip_what_is_not_an_image_file(clip, tmp_path):
    """A subfolder named like an image, macOS's `._*` AppleDouble files and dotfiles are
    not frames (they used to fail the run after every frame was done)."""
    folder = _save_frames(tmp_path / "frames", clip.frames, [f"{i}.jpg" for i in range(6)])
    (folder / "x.jpg").mkdir()
    (folder / "._0.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (folder / ".hidden.png").write_bytes(b"not an image")
    assert [p.name for p in io.list_images(folder)] == [f"{i}.jpg" for i in range(6)]
    assert io.open_frames(folder).count == 6 and len(list(io.open_frames(folder))) == 6
    for p in folder.iterdir():
        if p.name.endswith(".jpg") and p.name[0].isdigit():
            p.unlink()
    with pytest.raises(ValueError, match="no image files"):
        io.list_images(folder)


def test_a_list_of_numpy_frames_is_read(clip, net):
    arrays = [f.permute(1, 2, 0).numpy() for f in clip.frames]
    assert torch.equal(torch.stack(list(io.iter_frames(arrays))), clip.frames)
    frames = io.open_frames(arrays)
    assert frames.count == 6 and frames.name(5) == "00005"
    want = propagate(clip.frames, clip.masks[0].long(), net).ids
    assert torch.equal(propagate(arrays, clip.masks[0].long(), net).ids, want)
    bad = [*arrays[:2], arrays[2].astype(np.float32)]  # floats of 0-255, not 0-1
    with pytest.raises(ValueError, match=r"frame 2 has float values from 0 to 2\d\d: floats"):
        list(io.iter_frames(bad))
    bad[2] = arrays[2].astype(np.int64)
    with pytest.raises(TypeError, match=r"read frame 2 from ndarray int64 \(48, 80, 3\).*uint8"):
        list(io.iter_frames(bad))
    with pytest.raises(TypeError, match=r"read frame 0 from Tensor uint8 \(48, 80, 3\)"):
        list(io.iter_frames([clip.frames[0].permute(1, 2, 0)]))  # channels last as a tensor


def _mat(path, *elements: bytes):
    """A MATLAB v5 file (little-endian) of raw data elements."""
    text = b"MATLAB 5.0 MAT-file, written by test_io".ljust(116, b" ")
    path.write_bytes(text + bytes(8) + (0x0100).to_bytes(2, "little") + b"IM" + b"".join(elements))
    return path


def _element(mtype: int, body: bytes) -> bytes:
    return mtype.to_bytes(4, "little") + len(body).to_bytes(4, "little") + body


def test_malformed_mat_of_points_names_the_file(tmp_path):
    cut = _mat(tmp_path / "cut.mat", _element(14, bytes(8)))  # a matrix cut short
    junk = _mat(tmp_path / "junk.mat", _element(15, b"x\x9c not zlib data"))
    for path in (cut, junk):
        with pytest.raises(ValueError, match=f"cannot read {path}"):
            io.read_points(path)
        with pytest.raises(ValueError, match=f"cannot read {path}"):
            io.read_joint_positions(path)


def test_mat_that_inflates_without_limit_is_refused(tmp_path):
    """A few hundred kB of zlib data inflating to 256 MiB: refused after inflating at
    most `MAT_MAX_BYTES`, not read into memory."""
    import tracemalloc
    import zlib

    z = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    data = b"".join(z.compress(chunk) for _ in range(256)) + z.flush()
    bomb = _mat(tmp_path / "bomb.mat", _element(15, data))
    assert bomb.stat().st_size < 400_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"bomb.mat: a compressed variable inflates to more"):
            io.read_points(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * matfile.MAT_MAX_BYTES + (8 << 20)
    big = tmp_path / "big.mat"
    big.write_bytes(bomb.read_bytes()[:128] + bytes(matfile.MAT_MAX_BYTES + 1))
    with pytest.raises(ValueError, match="a .mat file is read up to 16 MiB"):
        io.read_joint_positions(big)
    with pytest.raises(ValueError, match="inflates to more than 16 MiB"):  # eval's reader too
        matfile.read_mat(bomb)


def _faststart_mp4(path, frames):
    """An mp4 whose header (moov) comes first, so that a truncated copy still opens."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=10, options={"crf": "18"})
        s.pix_fmt, s.height, s.width = "yuv420p", frames.shape[2], frames.shape[3]
        for f in frames:
            arr = np.ascontiguousarray(f.permute(1, 2, 0).numpy())
            c.mux(s.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")))
        c.mux(s.encode())
    return path


def truncated_video(path, frames):
    """A copy of an mp4 of `frames` cut so that it opens but decodes to fewer frames than
    its header says: `(path, decoded)`."""
    data = _faststart_mp4(path.with_name("whole.mp4"), frames).read_bytes()
    for keep in range(95, 40, -5):
        path.write_bytes(data[: len(data) * keep // 100])
        try:
            n = len(list(io.VideoReader(path)))
        except ValueError:
            continue
        if 0 < n < len(frames):
            return path, n
    pytest.skip("no truncation of the test video opens with fewer frames")


def test_truncated_video_reports_both_counts(clip, tmp_path):
    path, n = truncated_video(tmp_path / "cut.mp4", clip.frames)
    frames = io.open_frames(path)
    assert frames.count == 6 and frames.shortfall() is None  # not decoded yet
    assert len(list(frames)) == n
    assert frames.shortfall() == f"the header of cut.mp4 says 6 frames, {n} were decoded"
    whole = io.open_frames(path.with_name("whole.mp4"))
    assert len(list(whole)) == 6 and whole.shortfall() is None


# --------------------------------------------------------------------------- Frames by index


def _frame_sources(clip, tmp_path) -> dict:
    """The clip's frames as a folder, a lossless video, a list, a tensor and an array."""
    names = [f"{t:05d}.png" for t in range(len(clip.frames))]
    return {
        "folder": _save_frames(tmp_path / "frames", clip.frames, names),
        "video": _lossless_video(tmp_path / "clip.mp4", clip.frames),
        "list": [f.permute(1, 2, 0).numpy() for f in clip.frames],
        "tensor": clip.frames,
        "array": clip.frames.permute(0, 2, 3, 1).numpy(),
    }


@pytest.mark.parametrize("kind", ["folder", "video", "list", "tensor", "array"])
def test_frames_have_a_length_and_are_read_by_index(clip, tmp_path, kind):
    if kind == "video":
        pytest.importorskip("av")
    frames = io.open_frames(_frame_sources(clip, tmp_path)[kind])
    assert len(frames) == 6
    for t in (0, 4, -1, -6, np.int64(2)):
        assert torch.equal(frames[t], clip.frames[t]), t
    for t in (6, -7):
        with pytest.raises(IndexError, match=f"frame {t} is past the end of the video"):
            frames[t]
    with pytest.raises(TypeError, match="a frame index is an integer, not str"):
        frames["2"]


def test_frames_of_a_generator_have_no_length_and_no_index(clip):
    frames = io.open_frames(f for f in clip.frames)
    with pytest.raises(TypeError, match="is not known before reading them; iterate"):
        len(frames)
    with pytest.raises(TypeError, match="can be read only once; give a list"):
        frames[0]
    assert frames.count is None
    again = io.open_frames(frames)  # a Frames of a Frames is the same frames
    assert again is frames and io.Frames(frames).count is None
    assert len(list(frames)) == 6  # not consumed by the refusals


def test_a_video_past_its_decoded_end_is_an_index_error(clip, tmp_path):
    path, n = truncated_video(tmp_path / "cut.mp4", clip.frames)
    frames = io.open_frames(path)
    assert len(frames) == 6  # the header's count, before decoding
    assert frames[n - 1].shape == clip.frames[0].shape
    with pytest.raises(IndexError, match=f"frame {n} is past the end of the video \\({n} frames"):
        frames[n]
    assert torch.equal(frames[-1], frames[n - 1])  # from the end as decoded


def test_a_video_without_a_frame_count_is_still_read_by_index(clip, tmp_path):
    pytest.importorskip("av")
    frames = io.open_frames(_lossless_video(tmp_path / "clip.mkv", clip.frames))
    assert frames.count is None  # Matroska's header does not count frames
    with pytest.raises(TypeError, match="frames of the video clip.mkv is not known"):
        len(frames)
    assert torch.equal(frames[2], clip.frames[2]) and torch.equal(frames[-1], clip.frames[5])


def test_write_mask_makes_its_folders_and_leaves_none_when_it_fails(tmp_path, monkeypatch):
    ids = np.zeros((4, 6), np.uint8)
    ids[1:3, 2:5] = 2
    io.write_mask(tmp_path / "my_video" / "out" / "00000.png", ids)
    assert np.array_equal(io.read_mask(tmp_path / "my_video" / "out" / "00000.png")[0], ids)
    io.write_mask(tmp_path / "my_video" / "out" / "00001.png", ids)  # the folder is there

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        io.write_mask(tmp_path / "new" / "deeper" / "00000.png", ids)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_video"]  # nothing left
    with pytest.raises(OSError, match="disk full"):
        io.write_mask(tmp_path / "my_video" / "out" / "00002.png", ids)
    assert sorted(p.name for p in (tmp_path / "my_video" / "out").iterdir()) == [
        "00000.png",
        "00001.png",
    ]  # a folder that was there stays, with no temporary file
    (tmp_path / "file").write_text("")
    with pytest.raises((FileExistsError, NotADirectoryError)):
        io.write_mask(tmp_path / "file" / "00000.png", ids)
