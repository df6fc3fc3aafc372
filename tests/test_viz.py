"""Overlays, keypoints and skeletons, GIF/mp4 writing, the notebook preview."""

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from sfcprop import Propagation, Tracks
from sfcprop.io import viz
from sfcprop.io.masks import DAVIS_PALETTE

pytestmark = pytest.mark.usefixtures("one_thread")


def _frames(n=3, h=40, w=60):
    return torch.full((n, 3, h, w), 100, dtype=torch.uint8)


def test_overlay_blends_objects_and_completes_short_palettes():
    ids = torch.zeros(40, 60, dtype=torch.uint8)
    ids[10:30, 10:30] = 2
    short = [0, 0, 0, 255, 0, 0]  # a PNG palette with 2 entries: id 2 gets DAVIS colour 2
    img = np.asarray(viz.overlay(_frames()[0], ids, short))
    assert (img[0, 0] == 100).all()  # background untouched
    assert np.array_equal(img[29, 20], DAVIS_PALETTE[6:9])  # border in full colour
    inside = np.round(0.5 * 100 + 0.5 * np.array(DAVIS_PALETTE[6:9]))
    assert np.array_equal(img[20, 20], inside)


def test_keypoints_and_the_jhmdb_skeleton():
    frame = _frames()[0]
    three = np.array([[10.0, 10.0], [50.0, 30.0], [np.nan, np.nan]])
    img = np.asarray(viz.draw_keypoints(frame, three, radius=3))
    assert np.array_equal(img[10, 10], DAVIS_PALETTE[3:6])  # point 0: colour 1
    assert np.array_equal(img[30, 50], DAVIS_PALETTE[6:9])
    assert (img[20, 30] == 100).all()  # 3 points: no skeleton ("auto")
    joints = np.full((15, 2), np.nan)
    joints[0], joints[2] = [30.0, 30.0], [30.0, 6.0]  # neck and face: a skeleton edge
    img = np.asarray(viz.draw_keypoints(frame, joints, radius=2))
    assert (img[18, 30] == 255).all()  # the neck-face line, white
    hidden = np.asarray(
        viz.draw_keypoints(frame, three, confidence=[0.9, 0.1, 0.0], min_confidence=0.5)
    )
    assert (hidden[30, 50] == 100).all()
    assert len(viz.JHMDB_SKELETON) == 14  # a tree over the 15 joints
    assert sorted({j for e in viz.JHMDB_SKELETON for j in e}) == list(range(15))


def test_gif_and_video(tmp_path):
    images = [Image.new("RGB", (31, 17), (i * 40, 0, 0)) for i in range(4)]
    viz.save_gif(images, tmp_path / "a.gif", fps=5)
    with Image.open(tmp_path / "a.gif") as g:
        assert g.n_frames == 4 and g.info["duration"] == 200
    av = pytest.importorskip("av")
    viz.save_video(images, tmp_path / "a.mp4", fps=5)
    with av.open(str(tmp_path / "a.mp4")) as c:
        assert len(list(c.decode(video=0))) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "a.mp4"]


def test_show_gives_an_inline_gif_or_a_row_of_frames(monkeypatch):
    frames = _frames(n=5)
    ids = torch.zeros(5, 40, 60, dtype=torch.uint8)
    ids[:, 5:20, 5:20] = 1
    result = Propagation(ids, [0, 1])
    tracks = Tracks(np.full((5, 2, 2), 10.0), np.ones((5, 2)))
    pytest.importorskip("IPython")
    shown = viz.show(frames, result, points=tracks)
    assert type(shown).__name__ == "Image" and shown.format == "gif"  # IPython's
    assert shown.data[:6] == b"GIF89a"
    monkeypatch.setitem(sys.modules, "IPython", None)
    monkeypatch.setitem(sys.modules, "IPython.display", None)
    row = viz.show(frames, ids, max_side=30)
    assert isinstance(row, Image.Image) and row.size == (5 * 30, 20)
    with pytest.raises(ValueError, match="no frames"):
        viz.show(frames[:0])
