"""FC pre-training: positives, loss, EMA, data, a short run, exact resume, trunk export, CLI.

Everything runs on tiny synthetic images written by the tests (never the shared data).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from sfcprop.models import resnet18
from sfcprop.train import (
    TrainConfig,
    byol_loss,
    dense_infonce_loss,
    dense_loss,
    ema_momentum,
    export_trunk,
    main,
    positive_mask,
    train,
)
from sfcprop.train.checkpoint import load_checkpoint
from sfcprop.train.data import StepBatchSampler, TwoViewDataset, crop_box
from sfcprop.train.export import recipe_name
from sfcprop.train.model import FCNet

FULL = torch.tensor([[0.0, 0.0, 1.0, 1.0]])


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory):
    """8 smooth random colour images (6x6 noise upsampled), in nested folders, png and jpg."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(8):
        sub = root / f"seq{i % 2}"
        sub.mkdir(exist_ok=True)
        img = Image.fromarray((rng.random((6, 6, 3)) * 255).astype(np.uint8))
        img.resize((64, 48), Image.BICUBIC).save(sub / f"{i}.{'png' if i % 2 else 'jpg'}")
    (root / "notes.txt").write_text("not an image")
    return root


def tiny_config(image_root, out_dir, **kw) -> TrainConfig:
    base = dict(
        image_root=str(image_root),
        img_size=32,
        batch_size=4,
        iterations=24,
        proj_hidden=64,
        proj_dim=32,
        threads=1,
        out_dir=str(out_dir),
        save_every=0,
        log_every=0,
        seed=1,
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def short_run(image_root, tmp_path_factory):
    """24 iterations of 32px crops, batch 4, on the 8 images: (config, losses)."""
    cfg = tiny_config(image_root, tmp_path_factory.mktemp("run"))
    return cfg, train(cfg)


# --- positives and loss -------------------------------------------------------------------


def test_identical_boxes_small_radius_gives_only_the_same_cell():
    mask = positive_mask(FULL, FULL, 4, 4, radius=0.5)  # cell 0.25, diag 0.354: d < 0.177
    assert mask.shape == (1, 16, 16)
    assert torch.equal(mask[0], torch.eye(16, dtype=torch.bool))


def test_identical_boxes_larger_radius_gives_the_four_neighbours():
    mask = positive_mask(FULL, FULL, 4, 4, radius=0.8)  # d < 0.283: 4-neighbours, no diagonals
    i, j = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    i, j = i.flatten(), j.flatten()
    manhattan = (i[:, None] - i[None]).abs() + (j[:, None] - j[None]).abs()
    assert torch.equal(mask[0], manhattan <= 1)
    assert mask[0, 5].sum() == 5 and mask[0, 0].sum() == 3  # inner cell, corner cell


def test_left_half_box_matches_by_hand():
    # View a: whole image, centres x = .125 .375 .625 .875. View b: left half, centres x =
    # .0625 .1875 .3125 .4375. Larger diagonal is a's (0.354): positive when d < 0.177.
    half = torch.tensor([[0.0, 0.0, 0.5, 1.0]])
    mask = positive_mask(FULL, half, 4, 4)[0].reshape(4, 4, 4, 4)  # [ia, ja, ib, jb]
    expected_cols = {0: {0, 1}, 1: {2, 3}, 2: set(), 3: set()}
    for ia in range(4):
        for ja in range(4):
            pos = {(ib, jb) for ib, jb in mask[ia, ja].nonzero().tolist()}
            assert pos == {(ia, jb) for jb in expected_cols[ja]}
    assert torch.equal(positive_mask(half, FULL, 4, 4), positive_mask(FULL, half, 4, 4).mT)


def test_disjoint_boxes_give_no_positives_and_zero_loss():
    a, b = torch.tensor([[0.0, 0.0, 0.4, 0.4]]), torch.tensor([[0.6, 0.6, 1.0, 1.0]])
    mask = positive_mask(a, b, 4, 4)
    assert not mask.any()
    feats = torch.randn(1, 8, 4, 4)
    assert dense_loss(feats, feats, mask).item() == 0.0


def test_dense_loss_is_minus_two_for_aligned_features_and_ignores_scale():
    feats = torch.randn(3, 16, 4, 4)
    mask = positive_mask(FULL.repeat(3, 1), FULL.repeat(3, 1), 4, 4)
    assert dense_loss(feats, 5 * feats, mask).item() == pytest.approx(-2.0, abs=1e-5)
    assert dense_loss(feats, -feats, mask).item() == pytest.approx(2.0, abs=1e-5)


def test_infonce_matches_a_direct_computation():
    torch.manual_seed(0)
    a, b = FULL.repeat(2, 1), torch.tensor([[0.0, 0.0, 0.5, 1.0], [0.25, 0.0, 1.0, 1.0]])
    mask = positive_mask(a, b, 4, 4)
    pred, target = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    p = F.normalize(pred.flatten(2), dim=1).transpose(1, 2)  # [B, n, C]
    t = F.normalize(target.flatten(2), dim=1)  # [B, C, n]
    terms = []
    for i in range(2):
        logits = (p[i] @ t[i]) / 0.1
        for q in range(16):
            pos = mask[i, q]
            if pos.any():
                prob = logits[q].softmax(0)
                terms.append(-prob[pos].sum().log())
    expected = torch.stack(terms).mean()
    got = dense_infonce_loss(pred, target, mask, temperature=0.1)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    # batch negatives: every cell of both images is a key; positives stay in the same image
    keys = torch.cat([t[0], t[1]], dim=1)  # [C, 2n]
    terms = []
    for i in range(2):
        logits = (p[i] @ keys) / 0.1
        for q in range(16):
            pos = torch.zeros(32, dtype=torch.bool)
            pos[16 * i : 16 * i + 16] = mask[i, q]
            if pos.any():
                terms.append(-logits[q].softmax(0)[pos].sum().log())
    got = dense_infonce_loss(pred, target, mask, temperature=0.1, batch_negatives=True)
    assert got.item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-5)


def test_infonce_is_zero_for_distinct_aligned_cells_and_log_n_for_constant_ones():
    mask = positive_mask(FULL, FULL, 4, 4, radius=0.1)  # each cell: itself
    distinct = torch.eye(16).view(1, 16, 4, 4)  # cell p: basis vector p
    assert dense_infonce_loss(distinct, distinct, mask, 0.01).item() == pytest.approx(0, abs=1e-6)
    constant = torch.ones(1, 8, 4, 4)
    loss = dense_infonce_loss(constant, constant, mask, 0.07)
    assert loss.item() == pytest.approx(math.log(16), rel=1e-5)
    none = positive_mask(FULL, torch.tensor([[2.0, 2.0, 3.0, 3.0]]), 4, 4)
    assert dense_infonce_loss(constant, constant, none).item() == 0.0


def test_trunk_objective_trains_the_layer3_features_without_heads():
    torch.manual_seed(0)
    net = FCNet(dense_objective="infonce", dense_on="trunk")
    assert net.online_encoder.layer4 is None and not hasattr(net, "online_projector")
    v = torch.randn(2, 3, 32, 32)
    loss, _ = net(v, v, FULL.repeat(2, 1), FULL.repeat(2, 1))
    loss.backward()
    assert net.online_encoder.layer3[0].conv1.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="dense_on"):
        TrainConfig(dense_on="layer4")
    with pytest.raises(ValueError, match="dense_objective"):
        TrainConfig(dense_objective="triplet")


def test_byol_branch_adds_its_weighted_loss():
    assert byol_loss(torch.ones(2, 4), 3 * torch.ones(2, 4)).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_loss(torch.ones(2, 4), -torch.ones(2, 4)).item() == pytest.approx(4.0)
    torch.manual_seed(0)
    net = FCNet(proj_hidden=16, proj_dim=8, byol_weight=0.5)
    v = torch.randn(2, 3, 32, 32)
    loss, parts = net(v, v.flip(-1), FULL.repeat(2, 1), FULL.repeat(2, 1))
    assert set(parts) == {"dense", "byol"}
    assert loss.item() == pytest.approx((parts["dense"] + 0.5 * parts["byol"]).item(), rel=1e-5)
    loss.backward()
    assert net.online_byol_predictor.linear1.weight.grad is not None
    assert net.target_byol_projector.linear1.weight.grad is None


# --- EMA --------------------------------------------------------------------------------


def test_ema_schedule_endpoints():
    assert ema_momentum(0, 1000) == pytest.approx(0.99)
    assert ema_momentum(500, 1000) == pytest.approx(0.995)
    assert ema_momentum(1000, 1000) == pytest.approx(1.0)
    assert ema_momentum(0, 10, base=0.9) == pytest.approx(0.9)


def test_learning_rate_schedules():
    from sfcprop.train.trainer import _lr

    constant = TrainConfig(lr=1e-3, warmup=10, iterations=110)
    assert [_lr(constant, s) for s in (0, 4, 9, 50, 109)] == pytest.approx(
        [1e-4, 5e-4, 1e-3, 1e-3, 1e-3]
    )
    cosine = TrainConfig(lr=1e-3, warmup=10, iterations=110, lr_schedule="cosine")
    assert _lr(cosine, 4) == pytest.approx(5e-4)  # warm-up as before
    assert _lr(cosine, 10) == pytest.approx(1e-3)  # then 0.5 (1 + cos(pi * done))
    assert _lr(cosine, 60) == pytest.approx(0.5e-3)
    assert _lr(cosine, 110) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")


def test_update_target_is_an_ema_of_parameters():
    torch.manual_seed(0)
    net = FCNet(proj_hidden=16, proj_dim=8)
    online, target = net.online_encoder.conv1.weight, net.target_encoder.conv1.weight
    assert torch.equal(online, target) and not target.requires_grad
    with torch.no_grad():
        online.add_(1.0)
    before = target.clone()
    net.update_target(0.9)
    assert torch.allclose(target, 0.9 * before + 0.1 * online)


# --- data -------------------------------------------------------------------------------


def test_crop_boxes_lie_in_the_image_and_are_reproducible():
    for seed in range(50):
        x0, y0, x1, y1 = crop_box(np.random.default_rng(seed), 64, 48, (0.0, 1.0))
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 48
        assert crop_box(np.random.default_rng(seed), 64, 48, (0.0, 1.0)) == (x0, y0, x1, y1)


def test_views_are_normalised_crops_with_unit_boxes(image_root):
    data = TwoViewDataset(image_root, 32, (0.2, 1.0), preload_short_side=40)
    assert len(data) == 8  # .txt ignored, nested folders found
    v1, v2, b1, b2 = data[(3, 123)]
    assert v1.shape == v2.shape == (3, 32, 32)
    assert v1.min() < 0 < v1.max()  # ImageNet-normalised, not [0, 1]
    for b in (b1, b2):
        assert 0 <= b[0] < b[2] <= 1 and 0 <= b[1] < b[3] <= 1
    assert not torch.equal(b1, b2)  # two independent crops
    assert all(torch.equal(x, y) for x, y in zip(data[(3, 123)], (v1, v2, b1, b2), strict=True))


def test_batches_restart_exactly_at_a_step(image_root):
    data = TwoViewDataset(image_root, 32)
    full = StepBatchSampler(data, 3, seed=5)  # 2 batches per epoch (8 // 3), leftover dropped
    it = iter(full)
    batches = [next(it) for _ in range(7)]
    it = iter(StepBatchSampler(data, 3, seed=5, start_step=3))
    assert [next(it) for _ in range(4)] == batches[3:]
    assert batches[0] != batches[2]  # a new shuffle and new crop seeds each epoch


# --- training, resume, export -----------------------------------------------------------


def test_loss_falls_over_a_short_run(short_run):
    cfg, losses = short_run
    assert len(losses) == cfg.iterations and all(np.isfinite(losses))
    assert np.mean(losses[-6:]) < np.mean(losses[:6]) - 0.5
    ckpt = load_checkpoint(f"{cfg.out_dir}/last.pt")  # weights_only=True
    assert ckpt["step"] == 24 and torch.equal(ckpt["losses"], torch.tensor(losses).double())


def test_resume_reproduces_an_uninterrupted_run(image_root, tmp_path):
    kw = dict(iterations=6)  # each checkpoint is ~190 MB: only the final ones are written
    straight = train(tiny_config(image_root, tmp_path / "a", **kw))
    first = train(tiny_config(image_root, tmp_path / "b", **kw), stop_at=3)
    resumed = train(
        tiny_config(image_root, tmp_path / "c", resume=str(tmp_path / "b/last.pt"), **kw)
    )
    assert len(first) == len(resumed) == 3
    assert first + resumed == straight  # bit-exact on CPU
    a, c = (load_checkpoint(tmp_path / d / "last.pt")["model"] for d in ("a", "c"))
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_resume_keeps_the_recipe_and_takes_run_time_options():
    from sfcprop.train.trainer import _merge_resumed_config

    saved = TrainConfig(amp=True, preload_short_side=320, dense_on="trunk", threads=1)
    given = TrainConfig(image_root="imgs", threads=2, out_dir="elsewhere")  # flags omitted
    merged = _merge_resumed_config(given, saved.to_dict())
    assert (merged.amp, merged.preload_short_side, merged.dense_on) == (True, 320, "trunk")
    assert (merged.threads, merged.out_dir, merged.image_root) == (2, "elsewhere", "imgs")


def test_export_loads_strictly_into_resnet18(short_run, tmp_path):
    cfg, _ = short_run
    out = export_trunk(f"{cfg.out_dir}/last.pt", tmp_path / "fc.safetensors", {"data": "synthetic"})
    assert out.stat().st_size < 10_000_000
    sd = load_file(out)
    assert len(sd) == 90 == len(resnet18().state_dict())
    assert all(v.dtype == torch.float16 for k, v in sd.items() if "num_batches" not in k)
    trunk = resnet18()
    trunk.load_state_dict(sd, strict=True)
    online = load_checkpoint(f"{cfg.out_dir}/last.pt")["model"]
    assert torch.equal(
        sd["layer3.1.conv2.weight"], online["online_encoder.layer3.1.conv2.weight"].half()
    )
    with safe_open(out, "pt") as f:
        meta = f.metadata()
    assert meta["iterations"] == "24" and meta["data"] == "synthetic"
    assert "ImageNet" in meta["normalization"]
    assert meta["recipe"].startswith("FC (SFC seed A.1)")  # the paper's loss: the default
    variant = recipe_name({"dense_objective": "infonce", "dense_on": "trunk"})
    assert "not the paper's loss" in variant and "InfoNCE" in variant


def test_cli_help_and_export(short_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "--batch-size" in text and "--byol-weight" in text and "examples:" in text
    cfg, _ = short_run
    out = tmp_path / "cli.safetensors"
    assert main(["--export", f"{cfg.out_dir}/last.pt", str(out), "--meta", "k=v"]) == 0
    assert len(load_file(out)) == 90


def test_export_of_the_target_encoder_writes_the_ema_weights(short_run, tmp_path):
    cfg, _ = short_run
    out = export_trunk(f"{cfg.out_dir}/last.pt", tmp_path / "t.safetensors", encoder="target")
    model = load_checkpoint(f"{cfg.out_dir}/last.pt")["model"]
    sd = load_file(out)
    key = "layer2.0.conv1.weight"
    assert torch.equal(sd[key], model[f"target_encoder.{key}"].half())
    assert not torch.equal(sd[key], model[f"online_encoder.{key}"].half())  # EMA lags
    with safe_open(out, "pt") as f:
        assert f.metadata()["encoder"].startswith("target")
    with pytest.raises(ValueError, match="encoder must be one of"):
        export_trunk(f"{cfg.out_dir}/last.pt", tmp_path / "x.safetensors", encoder="ema")
    assert not (tmp_path / "x.safetensors").exists()


def test_bn_recalibration_matches_per_image_statistics(short_run, image_root):
    from sfcprop.models.base import IMAGENET_MEAN, IMAGENET_STD
    from sfcprop.train.batchnorm import pick_images, recalibrate_bn
    from sfcprop.train.export import trunk_state_dict

    cfg, _ = short_run
    state = trunk_state_dict(load_checkpoint(f"{cfg.out_dir}/last.pt")["model"])
    images = pick_images(image_root, 3)
    assert images == pick_images(image_root, 3) and len(pick_images(image_root, 99)) == 8
    new = recalibrate_bn(state, images, short_side=40)
    assert set(new) == set(state) and all(new[k].dtype == state[k].dtype for k in state)
    assert all(
        torch.equal(new[k], state[k]) for k in state if "running" not in k and "num" not in k
    )
    # bn1 follows conv1 directly: its statistics are those of conv1's output, by hand
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    means, variances = [], []
    for path in images:
        img = Image.open(path).convert("RGB")
        s = 40 / min(img.size)
        img = img.resize((round(img.width * s), round(img.height * s)), Image.BILINEAR)
        x = (torch.from_numpy(np.asarray(img, np.float32) / 255).permute(2, 0, 1) - mean) / std
        y = F.conv2d(x[None], state["conv1.weight"].float(), stride=2, padding=3)[0]
        means.append(y.mean((1, 2)))
        variances.append(y.flatten(1).var(1, unbiased=True))
    torch.testing.assert_close(
        new["bn1.running_mean"].float(),
        torch.stack(means).mean(0).half().float(),
        atol=2e-3,
        rtol=2e-3,
    )
    torch.testing.assert_close(
        new["bn1.running_var"].float(),
        torch.stack(variances).mean(0).half().float(),
        atol=2e-3,
        rtol=2e-3,
    )
    assert int(new["bn1.num_batches_tracked"]) == 3
    with pytest.raises(ValueError, match="count must be positive"):
        pick_images(image_root, 0)


def test_cli_export_with_bn_statistics(short_run, image_root, tmp_path):
    cfg, _ = short_run
    out = tmp_path / "bn.safetensors"
    args = ["--export", f"{cfg.out_dir}/last.pt", str(out), "--export-encoder", "target"]
    assert (
        main([*args, "--bn-root", str(image_root), "--bn-count", "2", "--bn-short-side", "40"]) == 0
    )
    with safe_open(out, "pt") as f:
        meta = f.metadata()
    assert meta["bn_statistics"] == "recomputed on 2 whole training images at short side 40"
    plain = export_trunk(f"{cfg.out_dir}/last.pt", tmp_path / "plain.safetensors", encoder="target")
    a, b = load_file(out), load_file(plain)
    assert torch.equal(a["conv1.weight"], b["conv1.weight"])
    assert not torch.equal(a["bn1.running_mean"], b["bn1.running_mean"])
    with pytest.raises(SystemExit):
        main([*args, "--bn-root", str(image_root), "--bn-count", "0"])
