"""One object table per video (`sfcprop.io.objects`): keyframes in any encoding mean the
same objects, and every keyframe comes back exactly as given. Properties (hypothesis) draw
objects, colours and which keyframe shows which; known answers pin the rules."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_inputs import PROPERTY
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from toys import PooledColour

import sfcprop
from sfcprop import io
from sfcprop.apps import cli
from sfcprop.io.objects import ObjectTable

pytestmark = pytest.mark.usefixtures("one_thread")
HW = (24, 40)

# not grey: an RGB mask of greys only is greyscale ids (`read_mask`)
colours = st.tuples(*[st.integers(0, 255)] * 3).filter(lambda c: len(set(c)) > 1)


@st.composite
def keyframes(draw, max_objects: int = 5, max_keys: int = 4) -> tuple[list, list[np.ndarray]]:
    """Distinct colours of 1..N objects, and 1..K keyframes: each a label map (-1: none,
    else the object's index) of bands showing a random subset of the objects."""
    n = draw(st.integers(1, max_objects))
    palette = draw(st.lists(colours, min_size=n, max_size=n, unique=True))
    maps = []
    for _ in range(draw(st.integers(1, max_keys))):
        shown = draw(st.lists(st.integers(0, n - 1), max_size=n, unique=True))
        label = np.full(HW, -1)
        for j, obj in enumerate(shown):
            label[:, 2 + 6 * j : 6 + 6 * j] = obj
        maps.append(label)
    return palette, maps


def _paint(label: np.ndarray, palette: list) -> np.ndarray:
    rgb = np.zeros((*label.shape, 3), np.uint8)
    for obj, colour in enumerate(palette):
        rgb[label == obj] = colour
    return rgb


def _colours_of(ids: np.ndarray, palette: list[int]) -> np.ndarray:
    """What a viewer shows of ids written with `palette`."""
    return np.asarray(palette, np.uint8).reshape(-1, 3)[ids]


@PROPERTY
@given(keyframes())
def test_each_colour_keeps_one_id_and_every_keyframe_comes_back_as_given(drawn):
    """Whatever subset each keyframe shows (an object missing, a new colour), one colour is
    one id in every keyframe, two colours never share one, and the ids written with the
    table's palette show the keyframe's own colours."""
    palette, maps = drawn
    table, ids_of = ObjectTable(), {}
    for label in maps:
        rgb = _paint(label, palette)
        ids = table.read(rgb)
        for obj, colour in enumerate(palette):
            if (label == obj).any():
                (value,) = np.unique(ids[label == obj])
                assert ids_of.setdefault(colour, int(value)) == value  # one id per colour
        assert not (ids[label == -1]).any()  # black stays background
    assert len(set(ids_of.values())) == len(ids_of)  # distinct colours, distinct ids
    for label in maps:  # read again after every keyframe is known: same ids, same colours
        rgb = _paint(label, palette)
        shown = _colours_of(table.read(rgb), table.palette or io.DAVIS_PALETTE)
        assert np.array_equal(shown, rgb)


@PROPERTY
@given(keyframes(max_objects=4), st.sampled_from(["palette", "grey", "array"]))
def test_id_keyframes_keep_their_ids_in_every_encoding(drawn, encoding):
    """Palette PNGs, greyscale PNGs and integer arrays of ids: an object's id is its value,
    whichever keyframes show it."""
    _, maps = drawn
    table, folder = ObjectTable(), Path(tempfile.mkdtemp())
    for k, label in enumerate(maps):
        values = np.where(label >= 0, 3 + 7 * label, 0).astype(np.uint8)  # ids 3, 10, 17, 24
        if encoding == "palette":
            source = Image.fromarray(values, mode="P")
            source.putpalette(io.DAVIS_PALETTE)
        elif encoding == "grey":
            source = Image.fromarray(values, mode="L")
        else:
            source = values.astype(np.int32)
        if isinstance(source, Image.Image):
            source.save(folder / f"{k}.png")
            source = folder / f"{k}.png"
        assert np.array_equal(table.read(source), values)
    shutil.rmtree(folder)


def test_a_colour_missing_from_a_later_keyframe_keeps_the_others_ids():
    red, green, blue = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    label = np.zeros(HW, int) - 1
    label[:, :10], label[:, 10:20], label[:, 20:30] = 0, 1, 2
    table = ObjectTable()
    first = table.read(_paint(label, [red, green, blue]))  # ids by colour: blue 1, green 2, red 3
    assert [first[0, 0], first[0, 10], first[0, 20]] == [3, 2, 1]
    later = table.read(_paint(np.where(label == 1, -1, label), [red, green, blue]))
    assert [later[0, 0], later[0, 10], later[0, 20]] == [3, 0, 1]  # green absent, no renumbering
    new = table.read(_paint(label, [red, (9, 9, 200), blue]))  # a new colour: the next id
    assert [new[0, 0], new[0, 10], new[0, 20]] == [3, 4, 1]


def test_binary_keyframes_are_object_one_in_every_encoding():
    table = ObjectTable()
    binary = np.zeros(HW, np.uint8)
    binary[5:15, 5:15] = 255
    assert set(np.unique(table.read(binary))) == {0, 1}
    assert set(np.unique(table.read(binary.astype(bool)))) == {0, 1}
    more = binary.copy()
    more[20:, :] = 7  # the 255 object again, and a new one
    assert set(np.unique(table.read(more))) == {0, 1, 7}
    clash = more.copy()
    clash[0, 0] = 1
    with pytest.raises(ValueError, match="holds ids 1 and 255, but a binary 0/255 keyframe"):
        table.read(clash)


def test_255_of_a_numbered_keyframe_stays_255_in_a_later_binary_one():
    table = ObjectTable()
    numbered = np.zeros(HW, np.uint8)
    numbered[:5], numbered[10:] = 255, 1
    table.read(numbered)
    only = np.where(numbered == 255, 255, 0).astype(np.uint8)
    assert set(np.unique(table.read(only))) == {0, 255}


def test_a_binary_keyframe_beside_several_numbered_objects_is_ambiguous():
    table = ObjectTable()
    numbered = np.zeros(HW, np.uint8)
    numbered[:5], numbered[10:] = 3, 9
    table.read(numbered)
    with pytest.raises(
        ValueError, match=r"is a binary 0/255 mask .* number their objects \[3, 9\]"
    ):
        table.read(np.where(numbered == 3, 255, 0).astype(np.uint8))
    assert table.read(numbered).max() == 9  # the refused keyframe changed nothing


@pytest.mark.parametrize("order", ["colour first", "ids first"])
def test_colour_beside_palette_keyframes_is_an_error(tmp_path, order):
    ids = np.zeros(HW, np.uint8)
    ids[:, 5:15] = 2
    io.write_mask(tmp_path / "p.png", ids)
    colour = _paint(np.where(ids == 2, 0, -1), [(200, 10, 10)])
    sources = [colour, tmp_path / "p.png"]
    table = ObjectTable()
    table.read(sources[order == "ids first"])
    with pytest.raises(ValueError, match="give every keyframe in one encoding"):
        table.read(sources[order != "ids first"])


def test_grey_rgb_keyframes_join_colour_ones_with_their_ids():
    """A white-on-black mask saved as RGB reads as one object (id 1); a later colour mask
    keeps white as that object and numbers its new colour after it."""
    white = np.zeros((*HW, 3), np.uint8)
    white[:, :10] = 255
    table = ObjectTable()
    assert set(np.unique(table.read(white))) == {0, 1}
    both = white.copy()
    both[:, 20:30] = (0, 200, 0)
    ids = table.read(both)
    assert ids[0, 0] == 1 and ids[0, 25] == 2
    assert _colours_of(ids, table.palette)[0, 25].tolist() == [0, 200, 0]


# --------------------------------------------------------------------------- through propagate


def _clip(n=6):
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 3, *HW), generator=g, dtype=torch.uint8)


def test_colour_keyframes_come_back_in_their_colours_through_the_api_and_the_command(tmp_path):
    red, green = (230, 20, 20), (20, 230, 20)
    label = np.full(HW, -1)
    label[:, 4:12], label[:, 20:32] = 0, 1
    k0 = _paint(label, [red, green])
    k4 = _paint(np.where(label == 0, -1, label), [red, green])  # red absent on frame 4
    frames = _clip()
    result = sfcprop.propagate(frames, {0: k0, 4: k4}, PooledColour().eval())
    assert result.label_ids == [0, 1, 2]
    table = ObjectTable()
    table.read(k0)
    for t, given_ in ((0, k0), (4, k4)):
        assert np.array_equal(_colours_of(result.ids[t].numpy(), table.palette), given_)
    folder, masks, out = tmp_path / "frames", tmp_path / "keys", tmp_path / "out"
    folder.mkdir(), masks.mkdir()
    for t, f in enumerate(frames):
        Image.fromarray(f.permute(1, 2, 0).numpy()).save(folder / f"{t:05d}.png")
    Image.fromarray(k0).save(masks / "00000.png")
    Image.fromarray(k4).save(masks / "00004.png")
    argv = ["propagate", folder, masks, "--out", out, "--backbone", "toys:PooledColour"]
    assert cli.main([str(a) for a in [*argv, "--quiet"]]) == 0
    for t, given_ in ((0, k0), (4, k4)):
        shown = np.asarray(Image.open(out / f"{t:05d}.png").convert("RGB"))
        assert np.array_equal(shown, given_)
    written = np.stack([np.asarray(Image.open(out / f"{t:05d}.png")) for t in range(6)])
    assert np.array_equal(written, result.ids.numpy())


def test_a_0_255_keyframe_after_a_palette_one_is_the_same_object():
    first = np.zeros(HW, np.uint8)
    first[5:15, 5:15] = 1
    later = np.zeros(HW, np.uint8)
    later[6:16, 6:16] = 255
    result = sfcprop.propagate(_clip(), {0: first, 3: later}, PooledColour().eval())
    assert result.label_ids == [0, 1]
    assert np.array_equal(result.ids[3].numpy(), (later > 0).astype(np.uint8))


@pytest.mark.parametrize("mask_exif", [False, True], ids=["mask as shown", "mask with the tag"])
def test_masks_and_frames_are_read_as_a_viewer_shows_them(tmp_path, mask_exif):
    """Frames stored on their side with an EXIF orientation (a phone's portrait photos): a
    mask drawn on the shown image, or stored like the frames with the same tag, fits."""
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, f in enumerate(_clip(3)):  # stored 24 x 40, shown 40 x 24
        Image.fromarray(f.permute(1, 2, 0).numpy()).save(folder / f"{t}.png", exif=exif)
    shown = np.zeros((40, 24), np.uint8)
    shown[5:20, 3:12] = 1
    if mask_exif:  # stored like the frames: the shown mask turned back
        stored = np.rot90(shown, 1)
        img = Image.fromarray(stored, mode="P")
        img.putpalette(io.DAVIS_PALETTE)
        img.save(tmp_path / "m.png", exif=exif)
    else:
        io.write_mask(tmp_path / "m.png", shown)
    assert np.array_equal(io.read_mask(tmp_path / "m.png")[0], shown)
    result = sfcprop.propagate(folder, tmp_path / "m.png", PooledColour().eval())
    assert result.ids.shape == (3, 40, 24)
    assert np.array_equal(result.ids[0].numpy(), shown)
