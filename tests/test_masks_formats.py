"""First masks as people have them: bool, 0/1 and 0/255 alike; colour annotations through
a colour table (written back in their colours); JPEG refused; anti-aliased edges warned
about; palette PNGs (DAVIS) as before."""

import contextlib
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from toys import PooledColour

from sfcprop import io, labels
from sfcprop.bench.synthetic import generate_clip
from sfcprop.session.api import propagate

pytestmark = pytest.mark.usefixtures("one_thread")

RED, GREEN, BLUE = (200, 30, 40), (10, 200, 90), (20, 60, 220)


@pytest.fixture(scope="module")
def clip():
    return generate_clip(num_frames=4, height=48, width=64, seed=1)


def _binary() -> np.ndarray:
    mask = np.zeros((24, 32), np.uint8)
    mask[4:14, 6:20] = 255
    return mask


def _colours() -> np.ndarray:
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[2:10, 2:12], rgb[12:20, 4:16], rgb[6:18, 20:30] = GREEN, RED, BLUE
    return rgb


def _ids(mask) -> list[int]:
    return labels.label_ids(io.load_first_mask(mask))


@contextlib.contextmanager
def _no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --------------------------------------------------------------------------- binary masks


def test_bool_01_and_0255_arrays_and_pngs_are_one_object(tmp_path):
    binary = _binary()
    Image.fromarray(binary).save(tmp_path / "grey.png")
    Image.fromarray(binary).convert("1").save(tmp_path / "bilevel.png")
    Image.fromarray(np.stack([binary] * 3, -1)).save(tmp_path / "grey-as-rgb.png")
    np.save(tmp_path / "m.npy", binary)
    sources = [
        binary > 0,
        binary // 255,
        binary,
        binary.astype(np.int32),
        torch.from_numpy(binary > 0),
        torch.from_numpy(binary),
        tmp_path / "grey.png",
        tmp_path / "bilevel.png",
        tmp_path / "grey-as-rgb.png",
        tmp_path / "m.npy",
    ]
    for source in sources:
        mask = io.load_first_mask(source)
        assert mask.dtype == torch.int64 and torch.equal(mask, torch.from_numpy(binary > 0).long())
        assert _ids(source) == [0, 1], source
        assert labels.label_ids(io.as_mask_tensor(np.asarray(binary))) == [0, 1]


def test_a_bool_mask_propagates(clip):
    net = PooledColour().eval()
    first = clip.masks[0].numpy() == 1
    result = propagate(clip.frames, first, net, context=2)
    same = propagate(clip.frames, first.astype(np.uint8) * 255, net, context=2)
    assert result.label_ids == [0, 1] and torch.equal(result.ids, same.ids)
    assert set(result.ids.unique().tolist()) <= {0, 1}


def test_other_integer_ids_stay_as_they_are():
    ids = np.zeros((10, 10), np.uint8)
    ids[:5], ids[5:, :5] = 3, 255  # 255 with another object: a real id
    assert _ids(ids) == [0, 3, 255]
    assert _ids(np.where(ids > 0, 7, 0)) == [0, 7]


# --------------------------------------------------------------------------- colour masks


def test_colour_array_and_png_give_ids_in_colour_order(tmp_path):
    rgb = _colours()
    Image.fromarray(rgb).save(tmp_path / "colours.png")
    for source in (rgb, torch.from_numpy(rgb), tmp_path / "colours.png"):
        ids, palette = io.read_mask(source)
        assert ids.dtype == np.uint8 and np.unique(ids).tolist() == [0, 1, 2, 3]
        order = sorted([RED, GREEN, BLUE])  # by R, then G, then B
        assert [tuple(palette[3 * i : 3 * i + 3]) for i in range(4)] == [(0, 0, 0), *order]
        for i, colour in enumerate(order, start=1):
            assert ((rgb == colour).all(-1) == (ids == i)).all()
        assert _ids(source) == [0, 1, 2, 3]


def test_colour_results_are_written_back_in_their_colours(clip, tmp_path):
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[clip.masks[0].numpy() == 1], rgb[clip.masks[0].numpy() == 2] = RED, BLUE
    Image.fromarray(rgb).save(tmp_path / "first.png")
    ids, palette = io.read_mask(tmp_path / "first.png")
    result = propagate(clip.frames, tmp_path / "first.png", PooledColour().eval(), context=2)
    assert result.label_ids == [0, 1, 2]
    io.write_mask(tmp_path / "00000.png", result.ids[0], palette)
    back = np.asarray(Image.open(tmp_path / "00000.png").convert("RGB"))
    assert np.array_equal(back, rgb)  # the first frame: exactly the input's colours
    io.write_mask(tmp_path / "00003.png", result.ids[3], palette)
    later = np.asarray(Image.open(tmp_path / "00003.png").convert("RGB")).reshape(-1, 3)
    assert {tuple(c) for c in np.unique(later, axis=0)} <= {(0, 0, 0), RED, BLUE}


def test_colour_mask_without_black_and_with_transparency(tmp_path):
    rgb = _colours()
    rgb[(rgb == 0).all(-1)] = (255, 255, 0)  # no black pixel: four objects
    ids, palette = io.read_mask(rgb)
    assert np.unique(ids).tolist() == [1, 2, 3, 4] and palette[12:15] == [255, 255, 0]
    rgba = np.concatenate([rgb, np.full((24, 32, 1), 255, np.uint8)], -1)
    rgba[(rgb == (255, 255, 0)).all(-1), 3] = 0  # transparent: background
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert np.array_equal(io.read_mask(tmp_path / "rgba.png")[0], io.read_mask(_colours())[0])


def test_colour_mask_errors():
    with pytest.raises(ValueError, match="holds colours: read it with sfcprop.io.read_mask"):
        io.as_mask_tensor(_colours())
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="more than the 255 objects"):
        io.read_mask(noise)
    with pytest.raises(ValueError, match="must be integers"):
        io.read_mask(_colours().astype(np.float32))
    with pytest.raises(ValueError, match="must be integers"):
        io.load_first_mask(_binary().astype(np.float32))


# --------------------------------------------------------------------------- palette PNGs


def test_palette_pngs_read_as_before(data_dir, tmp_path):
    path = data_dir / "davis2016/Annotations2017first/bmx-trees/00000.png"
    with Image.open(path) as img:
        want, want_palette = np.asarray(img), img.getpalette()
    with _no_warning():
        ids, palette = io.read_mask(path)
    assert np.array_equal(ids, want) and palette == want_palette and _ids(path) == [0, 1, 2]


def test_palette_png_drawn_with_index_255_is_one_object_in_its_colour(tmp_path):
    img = Image.fromarray(_binary()).convert("P")  # a greyscale palette, white at 255
    img.save(tmp_path / "p255.png")
    ids, palette = io.read_mask(tmp_path / "p255.png")
    assert np.unique(ids).tolist() == [0, 1] and palette[3:6] == img.getpalette()[765:768]


# --------------------------------------------------------------------------- lossy, anti-aliased


def test_jpeg_masks_are_refused_with_the_fix(tmp_path):
    Image.fromarray(_binary()).save(tmp_path / "m.jpg", quality=75)
    Image.fromarray(_colours()).save(tmp_path / "c.jpeg", quality=90)
    for name in ("m.jpg", "c.jpeg"):
        with pytest.raises(ValueError, match=r"is a JPEG: .* save the mask as PNG"):
            io.load_first_mask(tmp_path / name)


def _antialiased() -> np.ndarray:
    """A 0/255 disc drawn at 4x and shrunk with a smooth filter: grey levels on its edge."""
    yy, xx = np.mgrid[:480, :640]
    disc = (((yy - 240) ** 2 + (xx - 300) ** 2) < 150**2).astype(np.uint8) * 255
    return np.asarray(Image.fromarray(disc).resize((160, 120), Image.BILINEAR))


def test_antialiased_greyscale_mask_warns_and_says_to_threshold(tmp_path):
    grey = _antialiased()
    assert len(np.unique(grey)) > 10
    Image.fromarray(grey).save(tmp_path / "soft.png")
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "soft-rgb.png")
    for name in ("soft.png", "soft-rgb.png"):
        with pytest.warns(UserWarning, match=r"anti-aliased edges.*threshold the mask"):
            io.read_mask(tmp_path / name)
    Image.fromarray(((grey >= 128) * 255).astype(np.uint8)).save(tmp_path / "hard.png")
    with _no_warning():
        assert _ids(tmp_path / "hard.png") == [0, 1]


def test_small_objects_are_not_taken_for_edges(tmp_path):
    ids = np.zeros((240, 320), np.uint8)
    for k in range(1, 9):  # eight objects of 6 x 6 pixels (each under 0.1% of the image)
        ids[20 + 40 * (k % 4) : 26 + 40 * (k % 4), 35 * k : 35 * k + 6] = k
    Image.fromarray(ids).save(tmp_path / "many.png")
    colours = np.stack([ids * 30, 255 - ids * 20, ids * 7], -1) * (ids > 0)[..., None]
    with _no_warning():
        assert _ids(tmp_path / "many.png") == list(range(9))
        assert np.array_equal(io.read_mask(colours.astype(np.uint8))[0] > 0, ids > 0)


def test_segtrack_colour_masks(data_dir):
    path = data_dir / "segtrackv2-bmx/Annotations/bmx/bmx_06668.png"
    with pytest.warns(UserWarning, match="threshold the mask"):
        ids, _ = io.read_mask(path)
    assert len(np.unique(ids)) > 10  # read as it is: the warning says what to do
    thresholded = np.asarray(Image.open(path).convert("L")) >= 128
    assert _ids(thresholded) == [0, 1]
