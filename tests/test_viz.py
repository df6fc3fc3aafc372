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


def _scene(h=40, w=60):
    """A frame as a tensor, an array and a PIL image; ids as a tensor, an array and a PIL
    palette image."""
    frame = torch.randint(0, 256, (3, h, w), generator=torch.Generator().manual_seed(0))
    frame = frame.to(torch.uint8)
    ids = torch.zeros(h, w, dtype=torch.uint8)
    ids[5:25, 10:40] = 1
    ids[20:35, 30:55] = 3
    hwc = frame.permute(1, 2, 0).numpy()
    pil_ids = Image.fromarray(ids.numpy(), mode="P")
    frames = {"tensor": frame, "array": hwc, "pil": Image.fromarray(hwc)}
    return frames, {"tensor": ids, "array": ids.numpy(), "pil": pil_ids}


@pytest.mark.parametrize("frame_kind", ["tensor", "array", "pil"])
@pytest.mark.parametrize("ids_kind", ["tensor", "array", "pil"])
def test_overlay_takes_numpy_and_pil_as_well_as_tensors(frame_kind, ids_kind):
    frames, ids = _scene()
    expected = np.asarray(viz.overlay(frames["tensor"], ids["tensor"]))
    got = np.asarray(viz.overlay(frames[frame_kind], ids[ids_kind]))
    assert np.array_equal(got, expected)
    assert not np.array_equal(expected, frames["array"])  # the objects are drawn
    assert np.array_equal(expected[0, 0], frames["array"][0, 0])  # the background is not


def test_keypoints_gif_and_video_take_numpy_and_pil(tmp_path):
    frames, ids = _scene()
    points = [[12.0, 8.0], [45.0, 30.0]]
    expected = np.asarray(viz.draw_keypoints(frames["tensor"], points, radius=2))
    for kind in ("array", "pil"):
        assert np.array_equal(
            np.asarray(viz.draw_keypoints(frames[kind], points, radius=2)), expected
        )
    three = [frames["array"], 255 - frames["tensor"], frames["pil"].transpose(0)]  # distinct
    viz.save_gif(three, tmp_path / "a.gif")
    with Image.open(tmp_path / "a.gif") as g:
        assert g.n_frames == 3 and g.size == (60, 40)
    av = pytest.importorskip("av")
    viz.save_video(three, tmp_path / "a.mp4")
    with av.open(str(tmp_path / "a.mp4")) as c:
        assert len(list(c.decode(video=0))) == 3


def test_overlay_names_what_is_wrong_with_the_ids():
    frames, ids = _scene()
    with pytest.raises(ValueError, match=r"ids of size \(20, 60\) on a frame of size \(40, 60\)"):
        viz.overlay(frames["array"], ids["array"][:20])
    with pytest.raises(ValueError, match="ids are an \\[H, W\\] map of integers, got float32"):
        viz.overlay(frames["array"], ids["array"].astype(np.float32))
    with pytest.raises(ValueError, match="ids run from 0 to 300; overlays show ids 0-255"):
        viz.overlay(frames["array"], ids["array"].astype(np.int64) * 100)
    with pytest.raises(TypeError, match="cannot read the image from ndarray bool"):
        viz.overlay(np.zeros((40, 60, 3), bool), ids["array"])


def test_gifs_are_capped_at_the_clis_size_by_default(tmp_path):
    from sfcprop.apps import common

    assert viz.GIF_MAX_SIDE == common.GIF_MAX_SIDE == 480  # the API writes what the CLI does
    big = [Image.new("RGB", (854, 480), (i * 60, 90, 0)) for i in range(3)]
    viz.save_gif(big, tmp_path / "capped.gif")
    viz.save_gif(big, tmp_path / "small.gif", max_side=100)
    viz.save_gif(big, tmp_path / "full.gif", max_side=None)
    sizes = {}
    for name in ("capped", "small", "full"):
        with Image.open(tmp_path / f"{name}.gif") as g:
            assert g.n_frames == 3
            sizes[name] = g.size
    assert sizes == {"capped": (480, 270), "small": (100, 56), "full": (854, 480)}
    assert big[0].size == (854, 480)  # the caller's images are left as they were
    with pytest.raises(ValueError, match="max_side must be a positive number of pixels or None"):
        viz.save_gif(big, tmp_path / "no.gif", max_side=0)
    assert not (tmp_path / "no.gif").exists()
