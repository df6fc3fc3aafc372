"""The generated clips and `sfcprop demo`."""

from pathlib import Path

import numpy as np
import pytest
import torch
from toys import PooledColour

from sfcprop.apps import cli
from sfcprop.apps.demo import random_weights, report, run_demo, score
from sfcprop.bench import synthetic
from sfcprop.bench.synthetic import generate_clip, photo_clip
from sfcprop.io.frames import list_images
from sfcprop.io.masks import read_mask
from sfcprop.models.registry import shipped_weights

REPO = Path(__file__).resolve().parents[1]

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


def _centroid(mask: torch.Tensor, oid: int) -> torch.Tensor:
    return torch.nonzero(mask == oid).float().mean(0)


def test_photo_clip_is_deterministic_and_moves():
    a, b = photo_clip(num_frames=8, seed=3), photo_clip(num_frames=8, seed=3)
    assert torch.equal(a.frames, b.frames) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.frames, photo_clip(num_frames=8, seed=4).frames)
    assert a.frames.shape == (8, 3, 240, 320) and a.frames.dtype == torch.uint8
    assert a.masks.shape == (8, 240, 320) and a.masks.dtype == torch.uint8
    for m in a.masks:  # both objects visible in every frame
        assert set(m.unique().tolist()) == {0, 1, 2}
    for oid in (1, 2):
        assert (_centroid(a.masks[-1], oid) - _centroid(a.masks[0], oid)).norm() > 60
    area = [(a.masks[t] == 1).sum().item() for t in (0, -1)]
    assert area[1] > 1.5 * area[0]  # the cat approaches: scale change


def test_photo_clip_other_sizes_and_bad_arguments():
    clip = photo_clip(num_frames=3, height=96, width=128, seed=1)
    assert clip.frames.shape == (3, 3, 96, 128) and set(clip.masks.unique().tolist()) == {0, 1, 2}
    with pytest.raises(ValueError, match="num_frames"):
        photo_clip(num_frames=0)


def test_photo_clip_masks_are_exact():
    """Every pixel labelled k is object k's photo as composited; label 0 is the
    background photo seen by the camera, untouched."""
    clip = photo_clip(num_frames=5, seed=2)
    yy, xx = synthetic._pixel_grid(240, 320)
    rng = np.random.default_rng(2)
    tracks = dict(zip((1, 2), synthetic._tracks(rng), strict=True))
    pan = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.08, 0.12))
    t, s = 2, 0.5
    frame, mask = clip.frames[t].float() / 255, clip.masks[t]
    background = synthetic._camera(synthetic._photo("coffee.jpg"), yy, xx, s, pan)
    cat, cat_region = synthetic._cutout(
        synthetic._photo("chelsea.jpg"), "ellipse", tracks[1], yy, xx, s
    )
    assert torch.equal(mask == 1, cat_region)
    for oid, pixels in ((0, background), (1, cat)):
        where = mask == oid
        err = (frame - pixels.clamp(0, 1))[:, where].abs().max().item()
        assert err <= 0.5 / 255 + 1e-6, f"id {oid}: pixels differ from the composited photo"


def test_photo_clip_objects_occlude_each_other():
    """At some frame the cat (1) lies between pixels of the card (2) along a row or a
    column: the card is convex, so the cat hides part of it."""

    def sandwiched(line: torch.Tensor) -> bool:
        two = torch.nonzero(line == 2).flatten()
        one = torch.nonzero(line == 1).flatten()
        return len(two) > 0 and bool(((one > two.min()) & (one < two.max())).any())

    clip = photo_clip()
    frames = [t for t, m in enumerate(clip.masks) if any(map(sandwiched, [*m, *m.T]))]
    assert frames and min(frames) > 0 and max(frames) < len(clip.masks) - 1


def test_photo_clip_camera_pans():
    """The background moves: frame 3 matches frame 0 shifted sideways (the camera pans;
    it zooms too, so the match is not exact) far better than frame 0 in place."""
    clip = photo_clip(num_frames=24)
    a, b = clip.frames[0].float(), clip.frames[3].float()
    keep = (clip.masks[0] == 0) & (clip.masks[3] == 0)  # background in both frames
    keep[:20], keep[-20:], keep[:, :20], keep[:, -20:] = False, False, False, False

    def error(dy: int, dx: int) -> float:
        valid = keep & torch.roll(keep, (dy, dx), dims=(0, 1))
        return (torch.roll(a, (dy, dx), dims=(1, 2)) - b)[:, valid].abs().mean().item()

    errors = {(dy, dx): error(dy, dx) for dy in range(-6, 7) for dx in range(-15, 16)}
    best = min(errors, key=errors.get)
    assert abs(best[1]) >= 3 and errors[best] < 0.75 * errors[(0, 0)]


def test_demo_images_ship_with_their_licences():
    folder = REPO / "sfcprop" / "bench" / "demo_images"
    images = sorted(p.name for p in folder.glob("*.jpg"))
    assert images == ["astronaut.jpg", "chelsea.jpg", "coffee.jpg"]
    assert sum((folder / n).stat().st_size for n in images) < 300_000
    licences = (folder / "LICENSES.md").read_text()
    for name in images:
        assert f"`{name}`" in licences
    assert "CC0" in licences and "public domain" in licences
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "sfcprop.bench.demo_images" in config["packages"]
    assert {"*.jpg", "*.md"} <= set(config["package-data"]["sfcprop.bench.demo_images"])


def test_random_weights_are_seeded_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = random_weights().state_dict(), random_weights().state_dict()
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = random_weights(seed=1).state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_report_explains_jf_and_shows_the_margin_over_random_weights():
    summary = {"J&F-Mean": 0.7, "J-Mean": 0.75, "F-Mean": 0.65, "seconds": 6.0}
    summary.update({f"random {k}": v for k, v in {**summary, "J&F-Mean": 0.5}.items()})
    lines = report(summary, "fc", 24)
    assert "0 to 1, higher is better" in lines[0]
    assert lines[-2].split()[:3] == ["random", "weights", "0.500"]
    assert lines[-1].split() == ["fc", "0.700", "0.750", "0.650", "6.0", "+0.200"]
    alone = report({k: v for k, v in summary.items() if "random" not in k}, "fc", 24)
    assert alone[-1].split() == ["fc", "0.700", "0.750", "0.650", "6.0"]
    assert not any("random" in line for line in alone)


def test_demo_writes_masks_and_gif_and_scores_them(tmp_path):
    summary = run_demo(tmp_path, PooledColour().eval(), num_frames=6, quiet=True)
    pngs = list_images(tmp_path / "masks")
    assert [p.name for p in pngs] == [f"{t:05d}.png" for t in range(6)]
    assert (tmp_path / "overlay.gif").stat().st_size > 0
    # the printed numbers are those of the written files, on the photo clip
    written = np.stack([read_mask(p)[0] for p in pngs])
    again = score(written, photo_clip(num_frames=6).masks.numpy())
    assert again["J&F-Mean"] == pytest.approx(summary["J&F-Mean"])
    for key in ("J&F-Mean", "random J&F-Mean"):
        assert 0.0 <= summary[key] <= 1.0
    alone = run_demo(tmp_path / "alone", PooledColour().eval(), num_frames=3, baseline=False)
    assert not any(k.startswith("random") for k in alone)


def test_cli_demo_with_the_shipped_model(tmp_path, capsys):
    try:
        shipped_weights("fc-r18-sfcprop.safetensors")
    except (FileNotFoundError, ValueError):
        pytest.skip("the shipped model weights/fc-r18-sfcprop.safetensors is not there yet")
    assert cli.main(["demo", "--out", str(tmp_path / "d"), "--frames", "6", "--quiet"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "higher is better" in lines[1]
    random_row, model_row = lines[-2].split(), lines[-1].split()
    assert random_row[:2] == ["random", "weights"] and model_row[0] == "fc"
    jf, random_jf, margin = float(model_row[1]), float(random_row[2]), float(model_row[-1])
    assert 0.0 <= jf <= 1.0 and 0.0 <= random_jf <= 1.0
    assert margin == pytest.approx(jf - random_jf, abs=1.5e-3)
    assert len(list((tmp_path / "d" / "masks").iterdir())) == 6


# --------------------------------------------------------------------------- demo's --out


def _fake_demo(monkeypatch, fail: BaseException | None = None) -> None:
    """`run_demo` replaced by one that writes its files at once (then raises `fail`)."""
    import sfcprop.apps.demo

    def run_demo(out, *args):
        (out / "masks").mkdir()
        (out / "masks" / "00000.png").write_bytes(b"the demo's mask")
        (out / "overlay.gif").write_bytes(b"GIF89a")
        if fail is not None:
            raise fail
        return {"J&F-Mean": 0.5, "J-Mean": 0.5, "F-Mean": 0.5, "seconds": 1.0}

    monkeypatch.setattr(sfcprop.apps.demo, "run_demo", run_demo)


def test_demo_keeps_an_existing_out_unless_forced_then_replaces_it(tmp_path, capsys, monkeypatch):
    _fake_demo(monkeypatch)
    out = tmp_path / "mine"
    (out / "masks").mkdir(parents=True)
    (out / "masks" / "00000.png").write_bytes(b"my own mask")
    (out / "notes.txt").write_text("mine")
    argv = ["demo", "--out", str(out), "--no-baseline", "--quiet"]
    assert cli.main(argv) == 1
    assert "exists and is not empty; pass --force to replace it" in capsys.readouterr().err
    assert (out / "masks" / "00000.png").read_bytes() == b"my own mask"  # untouched
    assert cli.main([*argv, "--force"]) == 0
    assert f"wrote {out}/masks/*.png" in capsys.readouterr().out
    assert (out / "masks" / "00000.png").read_bytes() == b"the demo's mask"
    assert sorted(p.name for p in out.iterdir()) == ["masks", "overlay.gif"]  # as a whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no lock, no staging


@pytest.mark.parametrize(
    "fail, code, message",
    [
        (RuntimeError("the backbone failed"), 1, "the backbone failed"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_a_failed_or_interrupted_demo_leaves_nothing(
    fail, code, message, tmp_path, capsys, monkeypatch
):
    _fake_demo(monkeypatch, fail)
    out = tmp_path / "a" / "b" / "demo"
    assert cli.main(["demo", "--out", str(out), "--quiet"]) == code
    assert capsys.readouterr().err == f"sfcprop: error: {message}\n"
    assert list(tmp_path.iterdir()) == []  # not the folder, nor the parents made for it


def test_demo_needs_three_frames_to_score(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["demo", "--out", str(tmp_path / "d"), "--frames", "2"])
    assert done.value.code == 2
    assert "argument --frames: expected a whole number of frames >= 3" in capsys.readouterr().err
    with pytest.raises(ValueError, match="needs num_frames >= 3"):
        run_demo(tmp_path / "d", PooledColour().eval(), num_frames=2)
    assert list(tmp_path.iterdir()) == []
    summary = run_demo(tmp_path / "d", PooledColour().eval(), num_frames=3, baseline=False)
    assert 0.0 <= summary["J&F-Mean"] <= 1.0  # three frames: one is scored
