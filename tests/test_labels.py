"""`sfcprop.labels.resize` (frames, id maps, soft maps) and `sfcprop.labels.ids` (the ids of a
mask, one-hot maps on the grid and back), against computations written out here."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sfcprop.labels.ids import decode, label_ids, one_hot, to_grid
from sfcprop.labels.resize import resize_frame, resize_ids, resize_soft

FRAME = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 37, 53), dtype=np.uint8))


def bilinear_1d(n_in: int, n_out: int) -> np.ndarray:
    """`[n_out, n_in]` weights of a bilinear resize with half-pixel centres, no antialiasing
    (a source position below 0 is 0, the last pixel repeats)."""
    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = min(int(np.floor(src)), n_in - 1)
        i1, frac = min(i0 + 1, n_in - 1), src - i0
        weights[i, i0] += 1 - frac
        weights[i, i1] += frac
    return weights


def bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`[C, H, W]` -> `[C, *size]` in float64, one axis after the other."""
    rows, cols = bilinear_1d(image.shape[1], size[0]), bilinear_1d(image.shape[2], size[1])
    return np.einsum("yh,chw,xw->cyx", rows, image.astype(np.float64), cols)


# --------------------------------------------------------------------------- frames


@pytest.mark.parametrize("size", [(20, 30), (74, 106), (37, 20)])
def test_float_policy_is_the_float_image_resized_bilinearly(size):
    got = resize_frame(FRAME, size, "float")
    assert got.dtype == torch.float32 and got.shape == (3, *size)
    want = bilinear(FRAME.numpy() / 255.0, size)  # torch: float32 source positions, hence 1e-5
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-5)
    x = FRAME[None].double() / 255.0  # torch's own, in float64
    by_torch = F.interpolate(x, size=size, mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(got.double(), by_torch, rtol=0, atol=1e-5)


def test_antialias_policy_is_uint8_and_filters_like_pil_when_shrinking():
    size = (12, 17)
    got = resize_frame(FRAME, size)
    assert got.dtype == torch.uint8 and got.shape == (3, *size)
    image = Image.fromarray(FRAME.permute(1, 2, 0).numpy())
    pil = np.asarray(image.resize(size[::-1], Image.BILINEAR)).transpose(2, 0, 1)
    assert np.abs(got.numpy().astype(int) - pil).max() <= 1  # PIL's rounding, at most
    aliased = resize_frame(FRAME, size, "float").numpy() * 255  # no antialiasing
    assert np.abs(aliased - pil).max() > 20  # a test that can tell the two apart


@pytest.mark.parametrize("policy", ["antialias", "float"])
def test_a_frame_of_the_right_size_is_returned_unchanged(policy):
    assert resize_frame(FRAME, (37, 53), policy) is FRAME


# --------------------------------------------------------------------------- id maps


@pytest.mark.parametrize("size", [(20, 30), (74, 106), (37, 20), (5, 99)])
def test_ids_resize_as_pils_nearest(size):
    ids = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (37, 53)))
    pil = Image.fromarray(ids.numpy().astype(np.uint8)).resize(size[::-1], Image.NEAREST)
    got = resize_ids(ids, size)
    assert got.dtype == torch.int64 and np.array_equal(got.numpy(), np.asarray(pil))
    small = resize_ids(ids.to(torch.uint8), size)
    assert small.dtype == torch.uint8 and torch.equal(small.long(), got)
    assert resize_ids(ids, (37, 53)) is ids


# --------------------------------------------------------------------------- soft maps


def test_soft_maps_resize_bilinearly_by_hand():
    """A 2x2 map of `2y + x` doubled: the 1-D weights are [1], [3/4, 1/4], [1/4, 3/4], [1]
    (half-pixel centres, the border repeated), and the map stays linear."""
    soft = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    ramp = torch.tensor([0.0, 0.25, 0.75, 1.0])
    want = 2 * ramp[:, None] + ramp[None, :]
    torch.testing.assert_close(resize_soft(soft, (4, 4))[0], want, rtol=0, atol=1e-7)
    # halving without antialiasing: the mean of each 2x2 block, nothing from outside it
    big = torch.arange(16.0).reshape(1, 4, 4)
    torch.testing.assert_close(
        resize_soft(big, (2, 2))[0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]), rtol=0, atol=0
    )
    maps = torch.from_numpy(np.random.default_rng(2).random((3, 5, 7))).float()
    np.testing.assert_allclose(
        resize_soft(maps, (8, 3)).numpy(), bilinear(maps.numpy(), (8, 3)), rtol=0, atol=1e-6
    )


# --------------------------------------------------------------------------- ids of a mask


def test_label_ids_are_0_then_the_objects_in_order():
    assert label_ids(torch.tensor([[5, 0], [2, 5]])) == [0, 2, 5]
    assert label_ids(torch.tensor([[7, 3]], dtype=torch.uint8)) == [0, 3, 7]  # 0 always first
    assert label_ids(torch.full((2, 2), 255)) == [0, 255]
    assert label_ids(torch.zeros(2, 2, dtype=torch.long), allow_empty=True) == [0]


@pytest.mark.parametrize(
    "mask, message",
    [
        (torch.zeros(2, 2), "mask ids must be integers, got dtype torch.float32"),
        (torch.ones(2, 2, dtype=torch.bool), "mask ids must be integers, got dtype torch.bool"),
        (torch.tensor([[0, -3], [4, 1]]), "mask ids must be >= 0, got -3"),
        (
            torch.tensor([[0, 256]]),
            "mask ids must be at most 255 (they are written as 8-bit palette PNGs), got 256",
        ),
        (
            torch.zeros(3, 4, dtype=torch.long),
            "the first mask holds no object: every pixel is background (id 0)",
        ),
        (torch.ones(1, 2, 2, dtype=torch.long), "a mask must be [H, W], got shape (1, 2, 2)"),
    ],
    ids=["float", "bool", "negative", "above 255", "no object", "3 dimensions"],
)
def test_label_ids_errors(mask, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        label_ids(mask)


def test_one_hot_to_the_grid_and_back():
    mask = torch.tensor([[4, 4, 0, 9], [4, 4, 0, 9]])
    hot = one_hot(mask, [0, 4, 9])
    assert hot.dtype == torch.float32 and hot[:, 0, 3].tolist() == [0.0, 0.0, 1.0]
    assert hot.sum(0).eq(1).all()
    assert one_hot(mask, [0, 4])[:, 0, 3].tolist() == [0.0, 0.0]  # an id not asked for: 0
    grid = to_grid(mask, [0, 4, 9], (1, 2))  # each cell: the mean of its 2x2 block
    torch.testing.assert_close(grid[:, 0], torch.tensor([[0.0, 0.5], [1.0, 0.0], [0.0, 0.5]]))
    soft = torch.tensor([[[0.1, 0.2]], [[0.3, 0.7]], [[0.6, 0.1]]])  # argmax: 9, then 4
    back = decode(soft, [0, 4, 9], (1, 2))
    assert back.dtype == torch.uint8 and back.tolist() == [[9, 4]]
