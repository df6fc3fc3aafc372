"""Bad inputs of the labels layer: mask ids (`labels.ids`) and what the codecs check against
the frames (`labels.codecs`); each row through the API and the `sfcprop` command
(`bad_inputs.check`). Then a property test (hypothesis) draws masks of every dtype."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from bad_inputs import PROPERTY, TOY, Case, Inputs, Run, case_id, check
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from toys import PooledColour

import sfcprop
from sfcprop import io

pytestmark = pytest.mark.usefixtures("one_thread")
RNG = np.random.default_rng(0)


def _keys(w: Inputs, **masks) -> Run:
    """Keyframe masks `f0=..., f3=...` (arrays, written as PNGs, or file names already in
    `w.tmp`): the API gets `{t: array}`, the command their folder."""
    folder = w.tmp / "keys"
    folder.mkdir()
    api = {}
    for stem, mask in masks.items():
        t = int(stem.strip("f").split(".")[0])
        name = stem if "." in stem else f"{stem}.png"
        if name.endswith(".npy"):
            np.save(folder / name, mask)
            api[t] = folder / name
        elif isinstance(mask, Image.Image):
            mask.save(folder / name)
            api[t] = folder / name
        else:
            Image.fromarray(mask).save(folder / name)
            api[t] = mask
    net = PooledColour().eval()
    argv = ["propagate", w.frames, folder, "--backbone", TOY]
    return Run(lambda: sfcprop.propagate(w.frames, api, net), argv)


def _palette_png(ids: np.ndarray) -> Image.Image:
    img = Image.fromarray(ids.astype(np.uint8), mode="P")
    img.putpalette(io.DAVIS_PALETTE)
    return img


def _colour(w: Inputs) -> np.ndarray:
    rgb = np.zeros((48, 80, 3), np.uint8)
    rgb[w.clip.masks[0].numpy() == 1] = (200, 30, 30)
    return rgb


def _binary(w: Inputs, obj: int = 1) -> np.ndarray:
    return np.where(w.clip.masks[3].numpy() == obj, 255, 0).astype(np.uint8)


CASES = [
    # ------------------------------------------------------------------ ids
    Case(
        "ids above 255",
        ValueError,
        "mask ids must be at most 255 (they are written as 8-bit palette PNGs), got 300",
        lambda w: w.propagate(mask=w.npy("m.npy", w.clip.masks[0].numpy().astype(np.int32) * 150)),
    ),
    Case(
        "negative ids",
        ValueError,
        "mask ids must be >= 0, got -",
        lambda w: w.propagate(mask=w.npy("m.npy", -w.clip.masks[0].numpy().astype(np.int16))),
    ),
    Case(
        "float mask",
        ValueError,
        "mask ids must be integers (or bool), got dtype float32",
        lambda w: w.propagate(mask=w.npy("m.npy", w.clip.masks[0].numpy().astype(np.float32))),
    ),
    Case(
        "mask without an object",
        ValueError,
        "the first mask holds no object: every pixel is background (id 0)",
        lambda w: w.propagate(mask=w.png("m.png", np.zeros((48, 80), np.uint8))),
    ),
    # ------------------------------------------------------------------ codecs
    Case(
        "mask of another size",
        ValueError,
        "frame 0 is (48, 80) (H, W) but its mask is (40, 80)",
        lambda w: w.propagate(mask=w.npy("small.npy", w.clip.masks[0][:40].numpy())),
    ),
    # ------------------------------------------------------------------ keyframes disagree
    Case(
        "a colour keyframe beside a palette one",
        ValueError,
        "is a colour mask but the mask of frame 0",
        lambda w: _keys(w, f0=_palette_png(w.clip.masks[0].numpy()), f3=_colour(w)),
    ),
    Case(
        "a palette keyframe after colour ones",
        ValueError,
        "holds ids but the mask of frame 0",
        lambda w: _keys(w, f0=_colour(w), f3=_palette_png(w.clip.masks[3].numpy())),
    ),
    Case(
        "a binary keyframe beside numbered objects",
        ValueError,
        "is a binary 0/255 mask (one object, read as id 1) but other keyframes number their "
        "objects [2]",
        lambda w: _keys(w, f0=w.clip.masks[0].numpy().astype(np.uint8), f3=_binary(w, 2)),
    ),
    Case(
        "ids 1 and 255 after a binary keyframe",
        ValueError,
        "holds ids 1 and 255, but a binary 0/255 keyframe was read as object 1",
        lambda w: _keys(
            w,
            f0=_binary(w),
            f3=np.where(w.clip.masks[3].numpy() == 2, 1, _binary(w)).astype(np.uint8),
        ),
    ),
    Case(
        "two keyframe files for one frame",
        ValueError,
        "name the same frame",
        lambda w: Run(
            None,
            _keys(w, f3=_binary(w), **{"f3.npy": _binary(w)}).argv,
        ),
    ),
    Case(
        "points outside the frame",
        ValueError,
        "point 1 (x=500, y=20) is outside the 80x48 frame",
        lambda w: w.track(w.file("p.json", "[[10, 10], [500, 20]]")),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_bad_input(case: Case, tmp_path, monkeypatch, capsys):
    check(case, Inputs(tmp_path, monkeypatch), capsys)


def test_uint64_ids_above_int64():
    mask = np.array([[0, 2**63]], dtype=np.uint64)
    frames = torch.zeros(2, 3, 1, 2, dtype=torch.uint8)
    with pytest.raises(ValueError, match="mask ids must be at most 255"):
        sfcprop.propagate(frames, mask, PooledColour().eval())


# --------------------------------------------------------------------------- properties


MASK_DTYPES = [bool, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64]
MASK_DTYPES += [np.uint64, np.float32, np.float64]


def _mask_values(dtype) -> st.SearchStrategy:
    """Mostly small ids (where the interesting cases are), sometimes any the dtype holds."""
    if np.dtype(dtype).kind == "b":
        return st.booleans()
    if np.dtype(dtype).kind == "f":
        return st.sampled_from([0.0, 1.0, 2.0, 0.5, math.nan])
    info = np.iinfo(dtype)
    small = st.integers(max(info.min, -2), min(info.max, 300))
    top = info.max
    return st.one_of(small, small, small, st.integers(info.min, top))


@st.composite
def masks(draw) -> np.ndarray:
    dtype = draw(st.sampled_from(MASK_DTYPES))
    shape = draw(st.tuples(st.integers(1, 12), st.integers(1, 12)))
    return draw(hnp.arrays(dtype, shape, elements=_mask_values(dtype)))


def _expected(mask: np.ndarray) -> list[int] | str:
    """The ids a mask propagates with (0 included), or the words its error must say."""
    if mask.dtype.kind == "f":
        return "mask ids must be integers (or bool)"
    values = {int(v) for v in np.unique(mask)}
    if values - {0} == {255}:
        return [0, 1]  # 0/255: one object
    if min(values) < 0:
        return "mask ids must be >= 0"
    if max(values) > 255:
        return "mask ids must be at most 255"
    if values == {0}:
        return "the first mask holds no object"
    return sorted(values | {0})


@PROPERTY
@given(mask=masks())
def test_random_masks_propagate_with_their_ids_or_say_why_not(mask):
    """Any small mask of any dtype: it propagates with the union of its ids (a binary one
    as id 1), and frame 0 comes back as given; or a ValueError says what is wrong; never
    another exception."""
    frames = torch.from_numpy(RNG.integers(0, 256, (2, 3, *mask.shape), dtype=np.uint8))
    want = _expected(mask)
    if isinstance(want, str):
        with pytest.raises(ValueError, match=re.escape(want)):
            sfcprop.propagate(frames, mask, PooledColour().eval())
        return
    result = sfcprop.propagate(frames, mask, PooledColour().eval())
    assert list(result.label_ids) == want
    first = mask.astype(np.int64) if want != [0, 1] else (mask > 0).astype(np.int64)
    assert np.array_equal(result.ids[0].numpy(), first)
    assert set(np.unique(result.ids.numpy())) <= set(want)
