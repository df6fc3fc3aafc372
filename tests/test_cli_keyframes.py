"""`sfcprop propagate FRAMES KEYFRAMES/`: sparse masks named like the frames, confidence and
flags written, one warning line per lost object."""

import csv
import json

import pytest
import torch
from PIL import Image
from toys import PooledColour

from sfcprop import io, propagate
from sfcprop.apps import cli
from sfcprop.bench.synthetic import generate_clip

TOY = "toys:PooledColour"
PARAMS = ["--topk", "5", "--context", "3", "--radius", "4"]

pytestmark = pytest.mark.usefixtures("one_thread")


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture
def video(tmp_path):
    clip = generate_clip(num_frames=12, height=64, width=96, seed=1, leaves_at=6)
    frames = tmp_path / "frames"
    frames.mkdir()
    for t, f in enumerate(clip.frames):
        Image.fromarray(f.permute(1, 2, 0).numpy()).save(frames / f"{t:05d}.png")
    keys = tmp_path / "keys"
    keys.mkdir()
    for t in (0, 8):
        io.write_mask(keys / f"{t:05d}.png", clip.masks[t])
    return clip, frames, keys


def test_a_folder_of_sparse_masks(video, tmp_path, capsys):
    clip, frames, keys = video
    rc, out, err = run(
        capsys, "propagate", frames, keys, "--out", tmp_path / "o", "--backbone", TOY, *PARAMS
    )
    assert rc == 0, err
    written = sorted((tmp_path / "o").glob("*.png"))
    assert len(written) == 12
    for t in (0, 8):  # keyframes as given
        assert (io.read_mask(written[t])[0] == clip.masks[t].numpy()).all()
    api = propagate(
        clip.frames,
        {0: clip.masks[0].long(), 8: clip.masks[8].long()},
        PooledColour().eval(),
        topk=5,
        context=3,
        radius=4,
    )
    for t in range(12):  # the command gives the API's masks
        assert torch.equal(torch.from_numpy(io.read_mask(written[t])[0]), api.ids[t])
    with open(tmp_path / "o" / "confidence.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 * 2 and {r["object"] for r in rows} == {"1", "2"}
    got = {(int(r["frame"]), int(r["object"])): float(r["confidence"]) for r in rows}
    assert got[(3, 1)] == pytest.approx(float(api.confidence[3, 0]), abs=1e-4)
    flags = json.loads((tmp_path / "o" / "flags.json").read_text())
    assert flags["keyframes"] == [0, 8]
    assert "object 1: mean confidence" in out


def test_a_lost_object_gives_one_warning_line(tmp_path, capsys):
    clip = generate_clip(num_frames=10, height=64, width=96, seed=1)
    frames = clip.frames.clone()
    frames[5:] = 255 - frames[5:]  # another scene from frame 5: both objects are lost
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, f in enumerate(frames):
        Image.fromarray(f.permute(1, 2, 0).numpy()).save(folder / f"{t:05d}.png")
    io.write_mask(tmp_path / "first.png", clip.masks[0])
    rc, out, err = run(
        capsys,
        "propagate",
        folder,
        tmp_path / "first.png",
        "--out",
        tmp_path / "o",
        "--backbone",
        TOY,
        *PARAMS,
    )
    assert rc == 0, err
    lost = [ln for ln in err.splitlines() if "lost from frame" in ln]
    flags = json.loads((tmp_path / "o" / "flags.json").read_text())["flags"]
    lost_objects = {f["object"] for f in flags if f["kind"] == "lost"}
    assert len(lost) == len(lost_objects) >= 1  # one line per lost object
    assert "add a keyframe there" in lost[0]


def test_a_mask_that_names_no_frame(video, tmp_path, capsys):
    clip, frames, keys = video
    io.write_mask(keys / "frame-x.png", clip.masks[0])
    rc, _, err = run(capsys, "propagate", frames, keys, "--out", tmp_path / "o", "--backbone", TOY)
    assert rc == 1 and "frame-x.png names no frame" in err
    assert not (tmp_path / "o").exists()


def test_the_weights_file_is_named_at_the_start(tmp_path, capsys):
    clip = generate_clip(num_frames=3, height=32, width=48)
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, f in enumerate(clip.frames):
        Image.fromarray(f.permute(1, 2, 0).numpy()).save(folder / f"{t:05d}.png")
    io.write_mask(tmp_path / "first.png", clip.masks[0])
    rc, _, err = run(capsys, "propagate", folder, tmp_path / "first.png", "--out", tmp_path / "o")
    assert rc == 0, err
    line = next(ln for ln in err.splitlines() if ln.startswith("weights: "))
    assert "fc" in line and "fc-r18-sfcprop.safetensors" in line  # the shipped model's file


def test_forward_only_says_which_frames_have_no_result(video, tmp_path, capsys):
    clip, frames, keys = video
    (keys / "00000.png").unlink()  # the first keyframe is frame 8
    out = tmp_path / "o"
    argv = ["propagate", frames, keys, "--out", out, "--backbone", TOY, "--forward-only"]
    rc, _, err = run(capsys, *argv)
    assert rc == 0
    assert "frames 0-7 (00000 to 00007) have no result (--forward-only" in err
    flags = json.loads((out / "flags.json").read_text())["flags"]
    assert [f["frame"] for f in flags if f["kind"] == "unpropagated"] == list(range(8))
    with open(out / "confidence.csv") as f:
        rows = [r for r in csv.DictReader(f) if int(r["frame"]) < 8]
    assert rows and all(float(r["confidence"]) == 0 for r in rows)


def test_a_time_estimate_before_the_long_part(video, tmp_path, capsys):
    """After the first frames, one line says the frames, their size and the time expected;
    the API says it too where a bar shows."""
    clip, frames, keys = video
    rc, _, err = run(capsys, "propagate", frames, keys, "--out", tmp_path / "o", "--backbone", TOY)
    assert rc == 0
    lines = [ln for ln in err.splitlines() if "frames of 96x64: about" in ln]
    assert len(lines) == 1 and "s/frame (timed on the first 3)" in lines[0], err
    propagate(clip.frames, clip.masks[0], PooledColour().eval(), progress=True)
    assert "12 frames of 96x64: about" in capsys.readouterr().err


def test_the_estimate_suggests_a_smaller_short_side_only_for_large_frames():
    from sfcprop.io.progress import estimate_line

    assert "short side of 240" in estimate_line(90, (480, 854), 1.2)
    assert "about 108 s at 1.20 s/frame" in estimate_line(90, (480, 854), 1.2)
    assert "about 4 min" in estimate_line(200, (480, 854), 1.2)
    assert "short side" not in estimate_line(90, (240, 426), 0.3)
    assert "about 27 s at 0.30 s/frame" in estimate_line(90, (240, 426), 0.3)


def test_the_estimate_names_bfloat16_where_the_cpu_has_units_for_it():
    from pathlib import Path

    from sfcprop.io.progress import estimate_line

    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    units = "avx512_bf16" in flags or "amx_bf16" in flags
    assert ("--precision bfloat16" in estimate_line(90, (240, 426), 0.3)) == units
    assert "--precision bfloat16" not in estimate_line(90, (240, 426), 0.3, "bfloat16")
