"""`propagate` and its input checks (the `Propagator` itself: test_propagator.py)."""

import numpy as np
import pytest
import torch
from PIL import Image
from toys import PooledColour

from sfcprop.bench.synthetic import generate_clip
from sfcprop.core.features import Encoder, fuse
from sfcprop.io.masks import write_mask
from sfcprop.labels.resize import resize_soft
from sfcprop.session.api import propagate, propagate_iter, propagate_soft


@pytest.fixture(scope="module")
def clip():
    return generate_clip(num_frames=8, height=64, width=96, seed=1)


@pytest.fixture(scope="module")
def net():
    return PooledColour().eval()


def test_input_forms_agree(clip, net, tmp_path):
    mask = clip.masks[0].long()
    ref = propagate(clip.frames, mask, net, topk=5, context=3, radius=4)
    arrays = clip.frames.permute(0, 2, 3, 1).numpy()
    (tmp_path / "frames").mkdir()
    for i, a in enumerate(arrays):  # natural order: frame2 before frame10
        Image.fromarray(a).save(tmp_path / "frames" / f"frame{i * 4}.png")
    write_mask(tmp_path / "first.png", mask)
    forms = [
        (arrays, mask.numpy()),
        ([Image.fromarray(a) for a in arrays], mask.numpy().astype(np.uint8)),
        (tmp_path / "frames", tmp_path / "first.png"),
        (
            [tmp_path / "frames" / f"frame{i * 4}.png" for i in range(8)],
            str(tmp_path / "first.png"),
        ),
    ]
    for frames, first in forms:
        out = propagate(frames, first, net, topk=5, context=3, radius=4)
        assert torch.equal(out.ids, ref.ids)
    assert ref.ids.shape == (8, 64, 96) and ref.ids.dtype == torch.uint8
    assert ref.label_ids == [0, 1, 2]
    assert torch.equal(ref.ids[0], mask.to(torch.uint8))  # frame 0: the given mask


def test_known_answer_translation(net):
    """Frames shifted by exactly one feature cell (8 px) per frame: with top-1 the labels
    move one cell per frame, exactly."""
    g = torch.Generator().manual_seed(0)
    base = torch.randint(0, 256, (3, 48, 80), generator=g, dtype=torch.uint8)
    frames = torch.stack([torch.roll(base, 8 * t, dims=2) for t in range(6)])
    mask = torch.zeros(48, 80, dtype=torch.long)
    mask[8:32, 16:40] = 1
    mask[32:48, 0:8] = 2
    out = propagate(frames, mask, net, topk=1, context=2, radius=3, return_soft=True)
    for t in range(6):
        torch.testing.assert_close(out.soft[t], torch.roll(out.soft[0], t, dims=2))
    torch.testing.assert_close(out.soft.sum(1), torch.ones(6, 6, 10), atol=1e-6, rtol=0)


def test_two_backbones_fuse(clip, net):
    other = PooledColour(dim=8, seed=5).eval()
    enc = Encoder(net, other, lam=1.75)
    f = enc(clip.frames[:2])
    a, b = net.encode(clip.frames[:2]), other.encode(clip.frames[:2])
    cos_fused = (f[0] * f[1]).sum(0)
    expect = (1.75**2 * (a[0] * a[1]).sum(0) + (b[0] * b[1]).sum(0)) / (1 + 1.75**2)
    torch.testing.assert_close(cos_fused, expect, atol=1e-5, rtol=0)
    out = propagate(clip.frames, clip.masks[0].long(), net, other, preset="davis-sfc")
    assert out.ids.shape == (8, 64, 96)


def _bad(clip, net, frames=None, mask=None, **kw):
    frames = clip.frames if frames is None else frames
    mask = clip.masks[0].long() if mask is None else mask
    return propagate(frames, mask, net, **kw)


@pytest.mark.parametrize(
    "mask, message",
    [
        (torch.zeros(64, 96, dtype=torch.long), "no object"),
        (torch.zeros(64, 96), "integers"),
        (torch.full((64, 96), -1), ">= 0"),
        (torch.arange(64 * 96).reshape(64, 96) % 300, "at most 255"),
        (torch.ones(32, 96, dtype=torch.long), r"its mask is \(32, 96\)"),
        (torch.ones(2, 64, 96, dtype=torch.long), r"\[H, W\]"),
    ],
)
def test_bad_masks(clip, net, mask, message):
    with pytest.raises(ValueError, match=message):
        _bad(clip, net, mask=mask)


def test_bad_frames(clip, net):
    with pytest.raises(ValueError, match="no frames"):
        _bad(clip, net, frames=clip.frames[:0])
    mixed = [clip.frames[0], clip.frames[1][:, :32]]
    with pytest.raises(ValueError, match=r"frame 1 is \(32, 96\)"):
        _bad(clip, net, frames=mixed)
    with pytest.raises(ValueError, match="uint8"):
        _bad(clip, net, frames=clip.frames.float())
    with pytest.raises(FileNotFoundError, match="no such folder"):
        _bad(clip, net, frames="/nonexistent/frames")


def test_backbone_must_give_stride_8(clip):
    with pytest.raises(ValueError, match="stride 8"):
        _bad(clip, PooledColour(stride=16).eval())


def test_fused_grids_must_match():
    with pytest.raises(ValueError, match="same grid"):
        fuse(torch.ones(1, 4, 8, 12), torch.ones(1, 4, 4, 6), 1.0)


def test_bad_parameters(clip, net):
    with pytest.raises(ValueError, match="unknown preset"):
        _bad(clip, net, preset="kinetics")
    with pytest.raises(ValueError, match="radius must be a finite number > 0"):
        _bad(clip, net, radius=0)
    with pytest.raises(TypeError, match="Correspondence"):
        _bad(clip, torch.nn.Identity())


def test_propagate_iter_takes_progress_like_propagate(clip, net, monkeypatch):
    import io
    import sys

    mask = clip.masks[0].long()
    ref = propagate(clip.frames, mask, net, progress=False)

    class Terminal(io.StringIO):  # where a person is watching: a bar by default
        def isatty(self) -> bool:
            return True

    for progress, bar in ((False, False), (True, True), (None, True)):
        monkeypatch.setattr(sys, "stderr", Terminal())
        results = list(propagate_iter(clip.frames, mask, net, progress=progress))
        assert torch.equal(torch.stack([r.ids for r in results]), ref.ids)
        shown = sys.stderr.getvalue()
        assert ("8/8" in shown) is bar, (progress, shown)


def test_propagate_soft_full_size_is_the_grid_result_resized(clip, net):
    frames = clip.frames[:, :, :60, :90]  # not a multiple of the stride: the grid rounds up
    maps = torch.stack([(clip.masks[0][:60, :90] == i).float() for i in (0, 1)])
    grid = propagate_soft(frames, maps, net, progress=False)
    full = propagate_soft(frames, maps, net, full_size=True, progress=False)
    assert grid.shape == (8, 2, 8, 12) and full.shape == (8, 2, 60, 90)
    torch.testing.assert_close(full, torch.stack([resize_soft(g, (60, 90)) for g in grid]))
    short = propagate_soft(frames, maps, net, full_size=True, short_side=32, progress=False)
    assert short.shape == (8, 2, 60, 90)  # the frames' own size, whatever they were encoded at
