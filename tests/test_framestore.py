"""`FrameStore`: frames by index; a sequential source decoded once into a bounded cache."""

import numpy as np
import pytest
import torch

from sfcprop.bench.synthetic import generate_clip
from sfcprop.io.framestore import FrameStore


@pytest.fixture(scope="module")
def clip():
    return generate_clip(num_frames=6, height=32, width=48)


def test_an_iterator_is_decoded_once_and_spills_to_disk(clip):
    pulled = []

    def frames():
        for t, f in enumerate(clip.frames):
            pulled.append(t)
            yield f

    one = clip.frames[0].numel()
    store = FrameStore(frames(), keep=True, memory=2 * one)  # two frames in memory
    assert store.known_length is None
    for t in (4, 0, 5, 2, 1, 3):  # out of order
        assert torch.equal(store[t], clip.frames[t])
    assert pulled == list(range(6))  # each frame decoded once
    assert len(store) == 6 and not store.has(6)
    folder = store._disk
    assert folder is not None and len(list(folder.glob("*.npy"))) == 4  # the rest on disk
    store.close()
    assert not folder.exists()
    with pytest.raises(IndexError, match="past the end"):
        store[6]


def test_without_keep_only_the_last_frame_is_there(clip):
    store = FrameStore(iter(list(clip.frames)), keep=False)
    assert torch.equal(store[0], clip.frames[0])
    assert torch.equal(store[3], clip.frames[3])
    with pytest.raises(RuntimeError, match="keep=True"):
        store[1]


def test_indexable_sources_are_read_directly(clip, tmp_path):
    from PIL import Image

    for t, f in enumerate(clip.frames):
        Image.fromarray(f.permute(1, 2, 0).numpy()).save(tmp_path / f"{t:03d}.png")
    for source in (clip.frames, clip.frames.permute(0, 2, 3, 1).numpy(), tmp_path):
        store = FrameStore(source)
        assert len(store) == 6 and torch.equal(store[5], clip.frames[5])
    assert FrameStore(tmp_path).name(2) == "002"
    for source in (
        clip.frames / 255.0,
        clip.frames.permute(0, 2, 3, 1).numpy().astype(np.uint16) << 8,
    ):
        assert torch.equal(FrameStore(source)[4], clip.frames[4])  # floats in [0, 1], 16 bits
    with pytest.raises(ValueError, match=r"must be uint8 \[T, 3, H, W\], got torch.int64"):
        FrameStore(clip.frames.long())
    store = FrameStore(clip.frames.float())  # floats of 0-255: which scale? refused
    with pytest.raises(ValueError, match="frame 3 has float values from 0 to 2"):
        store[3]


def test_a_bad_frame_in_a_list_is_named(clip):
    frames = [f.permute(1, 2, 0).numpy() for f in clip.frames]
    frames[2] = frames[2].astype(np.float32)
    frames[4] = frames[4].astype(np.int64)
    store = FrameStore(frames)
    assert torch.equal(store[1], clip.frames[1])
    with pytest.raises(ValueError, match="frame 2 has float values from 0 to 2"):
        store[2]
    with pytest.raises(TypeError, match="cannot read frame 4 from ndarray int64"):
        store[4]
