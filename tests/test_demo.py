"""The generated clip and `sfcprop demo`."""

import numpy as np
import pytest
import torch
from toys import PooledColour

from sfcprop import cli
from sfcprop.backbones.registry import shipped_weights
from sfcprop.demo import run_demo, score
from sfcprop.io import list_images, read_mask
from sfcprop.synthetic import generate_clip

pytestmark = pytest.mark.usefixtures("one_thread")


def test_clip_is_deterministic_and_moves():
    a, b = generate_clip(num_frames=6, seed=3), generate_clip(num_frames=6, seed=3)
    assert torch.equal(a.frames, b.frames) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.frames, generate_clip(num_frames=6, seed=4).frames)
    assert a.frames.shape == (6, 3, 240, 320) and a.frames.dtype == torch.uint8
    assert set(a.masks.unique().tolist()) == {0, 1, 2}
    centroid = [torch.nonzero(m == 1).float().mean(0) for m in (a.masks[0], a.masks[-1])]
    assert (centroid[1] - centroid[0]).norm() > 50  # the ellipse travels


def test_score_known_answers():
    gt = generate_clip(num_frames=5).masks.numpy()
    assert score(gt, gt)["J&F-Mean"] == 1.0
    empty = np.zeros_like(gt)
    assert score(empty, gt)["J-Mean"] == 0.0


def test_demo_writes_masks_and_gif_and_scores_them(tmp_path):
    summary = run_demo(tmp_path, PooledColour().eval(), num_frames=6, quiet=True)
    pngs = list_images(tmp_path / "masks")
    assert [p.name for p in pngs] == [f"{t:05d}.png" for t in range(6)]
    assert (tmp_path / "overlay.gif").stat().st_size > 0
    # the printed numbers are those of the written files
    written = np.stack([read_mask(p)[0] for p in pngs])
    again = score(written, generate_clip(num_frames=6).masks.numpy())
    assert again["J&F-Mean"] == pytest.approx(summary["J&F-Mean"])
    assert 0.0 <= summary["J&F-Mean"] <= 1.0


def test_cli_demo_with_the_shipped_model(tmp_path, capsys):
    try:
        shipped_weights("fc-r18-sfcprop.safetensors")
    except (FileNotFoundError, ValueError):
        pytest.skip("the shipped model weights/fc-r18-sfcprop.safetensors is not there yet")
    assert cli.main(["demo", "--out", str(tmp_path / "d"), "--frames", "6", "--quiet"]) == 0
    out = capsys.readouterr().out
    jf = float(out.strip().splitlines()[-1].split()[0])
    assert 0.0 <= jf <= 1.0
    assert len(list((tmp_path / "d" / "masks").iterdir())) == 6
