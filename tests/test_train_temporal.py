"""Training options beyond the paper: colour jitter of the views and the temporal cycle term.

Tiny synthetic images and clips written by the tests (never the shared data).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from sfcprop.train import TrainConfig, cycle_loss, train
from sfcprop.train.data import ClipDataset, TwoViewDataset, photometric
from sfcprop.train.model import FCNet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def video_root(tmp_path_factory: pytest.TempPathFactory):
    """Two 'videos' of 5 frames (a texture shifting right by 2 px a frame) and one of 2."""
    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    base = np.asarray(
        Image.fromarray((rng.random((8, 12, 3)) * 255).astype(np.uint8)).resize(
            (96, 48), Image.BICUBIC
        )
    )
    for name, n in (("a", 5), ("b", 5), ("short", 2)):
        (root / name).mkdir()
        for t in range(n):
            Image.fromarray(np.roll(base, 2 * t, axis=1)).save(root / name / f"{t:05d}.png")
    (root / "a" / "notes.txt").write_text("not a frame")
    return root


def test_photometric_is_reproducible_in_range_and_off_at_zero():
    x = torch.rand(3, 16, 16)
    assert torch.equal(photometric(x, np.random.default_rng(0), 0.0), x)
    y1 = photometric(x, np.random.default_rng(3), 0.4)
    y2 = photometric(x, np.random.default_rng(3), 0.4)
    assert torch.equal(y1, y2) and y1.min() >= 0 and y1.max() <= 1
    changed = [
        not torch.allclose(photometric(x, np.random.default_rng(s), 0.4), x) for s in range(20)
    ]
    assert sum(changed) >= 10  # jittered with probability 0.8 (+ greyscale 0.2)


def test_jitter_changes_colours_but_not_the_crop_boxes(video_root):
    plain = TwoViewDataset(video_root / "a", 32)
    jittered = TwoViewDataset(video_root / "a", 32, jitter=0.4)
    differ = 0
    for seed in range(6):
        v1, v2, b1, b2 = plain[(0, seed)]
        w1, w2, c1, c2 = jittered[(0, seed)]
        assert torch.equal(b1, c1)  # the first view's box is drawn before any jitter
        differ += int(not torch.allclose(v1, w1))
    assert differ >= 3


def test_clips_are_consecutive_frames_under_one_crop(video_root):
    clips = ClipDataset(video_root, 48, length=3)
    assert len(clips) == 3 + 3  # a and b: starts 0..2; 'short' has too few frames
    full = ClipDataset(video_root, 48, length=3, scale=(1.0, 1.0))
    x = full[(1, 0)]  # video a, frames 1..3, the whole frame (96x48 -> 48x48)
    assert x.shape == (3, 3, 48, 48)
    assert not torch.allclose(x[0], x[1])  # the texture moved
    same = ClipDataset(video_root, 48, length=3)[(0, 7)]
    again = ClipDataset(video_root, 48, length=3)[(0, 7)]
    assert torch.equal(same, again)
    with pytest.raises(FileNotFoundError, match="6 or more frames"):
        ClipDataset(video_root, 32, length=6)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        ClipDataset(video_root / "missing", 32)


def _cycle_by_hand(feats: torch.Tensor, tau: float) -> torch.Tensor:
    """Loops over walks and cells: the return probability of 0 -> k -> 0 for every k."""
    f = torch.nn.functional.normalize(feats.double(), dim=2).flatten(3)  # [B, K, C, n]
    b, k, _, n = f.shape
    terms = []
    for walk in range(1, k):
        for i in range(b):
            mats = [torch.softmax(f[i, s].T @ f[i, s + 1] / tau, dim=1) for s in range(walk)] + [
                torch.softmax(f[i, s + 1].T @ f[i, s] / tau, dim=1) for s in reversed(range(walk))
            ]
            walk_p = mats[0]
            for m in mats[1:]:
                walk_p = walk_p @ m
            terms.append(-torch.log(torch.diagonal(walk_p)).mean())
    # mean over the batch per walk, then over walks: equal weights, so one mean is the same
    return torch.stack(terms).mean()


def test_cycle_loss_matches_a_direct_computation_and_known_answers():
    torch.manual_seed(0)
    feats = torch.randn(2, 3, 8, 3, 3)
    got = cycle_loss(feats, 0.1)
    assert got.item() == pytest.approx(_cycle_by_hand(feats, 0.1).item(), rel=1e-5)
    distinct = torch.eye(9).view(1, 1, 9, 3, 3).repeat(1, 3, 1, 1, 1)  # every cell its own
    assert cycle_loss(distinct, 0.01).item() == pytest.approx(0.0, abs=1e-6)
    constant = torch.ones(1, 2, 4, 3, 3)  # every transition uniform: return mass 1/n
    assert cycle_loss(constant, 0.07).item() == pytest.approx(math.log(9), rel=1e-5)


def test_cycle_term_adds_its_weighted_loss_and_trains_the_trunk():
    torch.manual_seed(0)
    net = FCNet(dense_objective="infonce", dense_on="trunk", cycle_weight=0.5)
    v = torch.randn(2, 3, 32, 32)
    box = torch.tensor([[0.0, 0.0, 1.0, 1.0]]).repeat(2, 1)
    clips = torch.randn(2, 3, 3, 32, 32)
    loss, parts = net(v, v, box, box, clips)
    assert set(parts) == {"dense", "cycle"}
    assert loss.item() == pytest.approx((parts["dense"] + 0.5 * parts["cycle"]).item(), rel=1e-5)
    loss.backward()
    assert net.online_encoder.conv1.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="cycle_root"):
        TrainConfig(cycle_weight=1.0)
    with pytest.raises(ValueError, match="cycle_length"):
        TrainConfig(cycle_length=1)


def tiny(root, out_dir, **kw) -> TrainConfig:
    """The contrastive trunk recipe at 32 px, batch 4, no checkpoints but the last."""
    base = dict(
        image_root=str(root),
        out_dir=str(out_dir),
        img_size=32,
        batch_size=4,
        iterations=4,
        threads=1,
        save_every=0,
        log_every=0,
        seed=1,
        dense_objective="infonce",
        dense_on="trunk",
    )
    return TrainConfig(**{**base, **kw})


def test_a_short_run_with_both_options_resumes_exactly(video_root, tmp_path):
    kw = dict(jitter=0.4, cycle_weight=1.0, cycle_root=str(video_root), cycle_batch=2)
    straight = train(tiny(video_root, tmp_path / "a", **kw))
    first = train(tiny(video_root, tmp_path / "b", **kw), stop_at=2)
    rest = train(tiny(video_root, tmp_path / "c", resume=str(tmp_path / "b/last.pt"), **kw))
    assert all(np.isfinite(straight)) and first + rest == straight


def test_recipe_name_states_the_options():
    from sfcprop.train.export import recipe_name

    base = {"dense_objective": "infonce", "dense_on": "trunk"}
    assert "jitter" not in recipe_name(base) and "cycle" not in recipe_name(base)
    named = recipe_name({**base, "jitter": 0.4, "cycle_weight": 0.5})
    assert "colour jitter 0.4" in named and "temporal cycle term x0.5" in named


def test_init_starts_both_encoders_from_an_exported_trunk(video_root, tmp_path):
    from sfcprop.train import export_trunk
    from sfcprop.train.checkpoint import load_checkpoint

    train(tiny(video_root, tmp_path / "a", iterations=2))
    trunk = export_trunk(tmp_path / "a/last.pt", tmp_path / "a.safetensors")
    cfg = tiny(video_root, tmp_path / "b", iterations=1, seed=2, init=str(trunk))
    net = FCNet(dense_on="trunk")
    from sfcprop.train.trainer import init_state

    net.init_encoders(init_state(str(trunk)))
    a = load_checkpoint(tmp_path / "a/last.pt")["model"]
    w = "online_encoder.conv1.weight"
    assert torch.equal(net.online_encoder.conv1.weight, a[w].half().float())
    assert torch.equal(net.target_encoder.conv1.weight, net.online_encoder.conv1.weight)
    assert torch.equal(init_state(str(tmp_path / "a/last.pt"))["conv1.weight"], a[w])
    train(cfg)  # one step from the trunk: runs, and the step moved the weights off it
    b = load_checkpoint(tmp_path / "b/last.pt")["model"]
    assert not torch.equal(b[w], a[w].half().float())
    with pytest.raises(KeyError, match="do not fit"):
        net.init_encoders({"conv1.weight": a[w], "nope": a[w]})


def test_hflip_mirrors_both_views_of_an_item_and_nothing_else(video_root):
    from sfcprop.models.base import IMAGENET_MEAN, IMAGENET_STD
    from sfcprop.train.data import _crop

    path = sorted((video_root / "a").glob("*.png"))[0]
    img = Image.open(path).convert("RGB")
    W, H = img.size
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    flipped = TwoViewDataset(path.parent, 24, hflip=True)
    plain = TwoViewDataset(path.parent, 24)

    def crop(box: torch.Tensor, mirror: bool) -> torch.Tensor:
        x0, y0, x1, y1 = (box * torch.tensor([W, H, W, H])).round().int().tolist()
        if mirror:  # the mirrored box of the original image, its crop flipped back
            return (_crop(img, (W - x1, y0, W - x0, y1), 24).flip(-1) - mean) / std
        return (_crop(img, (x0, y0, x1, y1), 24) - mean) / std

    mirrored = 0
    for seed in range(12):
        v1, v2, b1, b2 = flipped[(0, seed)]
        m1 = torch.allclose(v1, crop(b1, True), atol=0.05)
        assert m1 != torch.allclose(v1, crop(b1, False), atol=0.05)
        assert torch.allclose(v2, crop(b2, m1), atol=0.05)  # the same mirror for both views
        mirrored += int(m1)
        p1, _, c1, _ = plain[(0, seed)]
        assert torch.allclose(p1, crop(c1, False), atol=0.05)  # without hflip: never mirrored
    assert 2 <= mirrored <= 10  # probability 0.5
