"""`sfcprop batch`: what it reads (a resolution level, an image set, the first keyframe
only, a keypoints manifest), shards from the environment, and bad inputs (one error line,
nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_batch import TOY, run, summary
from toys import PooledColour

import sfcprop
from sfcprop import io
from sfcprop.apps import cli
from sfcprop.apps.sources import Shard, parse_shard, shard_from_env
from sfcprop.bench.synthetic import generate_clip

pytestmark = pytest.mark.usefixtures("one_thread")


def test_shards_from_the_environment_and_bad_shards():
    assert shard_from_env({}) == (Shard(0, 1), None)
    assert shard_from_env({"RANK": "1", "WORLD_SIZE": "4"}) == (Shard(1, 4), "RANK")
    env = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "5"}
    assert shard_from_env(env) == (Shard(2, 3), "SLURM_ARRAY_TASK_ID")
    with pytest.raises(ValueError, match="SLURM_ARRAY_TASK_ID='9'"):
        shard_from_env({**env, "SLURM_ARRAY_TASK_ID": "9"})
    assert parse_shard(" 3/4 ") == Shard(3, 4)
    for bad in ("4/4", "1", "-1/2", "a/b", "1/0"):
        with pytest.raises(ValueError, match="--shard expects i/N"):
            parse_shard(bad)


def test_first_keyframe_only_and_a_resolution_level(tmp_path, capsys):
    """DAVIS ground truth annotates every frame: --keyframes first uses frame 0's alone;
    JPEGImages/480p/ is found by itself."""
    root = tmp_path / "DAVIS"
    clip = generate_clip(num_frames=4, height=40, width=56, seed=1)
    for sub in ("JPEGImages/480p/v", "Annotations/480p/v", "ImageSets/2017"):
        (root / sub).mkdir(parents=True)
    for t, f in enumerate(clip.frames):
        Image.fromarray(f.permute(1, 2, 0).numpy()).save(root / f"JPEGImages/480p/v/{t:05d}.jpg")
        io.write_mask(root / f"Annotations/480p/v/{t:05d}.png", clip.masks[t])
    (root / "ImageSets/2017/val.txt").write_text("v\n")
    out = tmp_path / "out"
    rc, _, err = run(
        capsys,
        root,
        "--out",
        out,
        "--backbone",
        TOY,
        "--image-set",
        "val",
        "--keyframes",
        "first",
        "--quiet",
    )
    assert rc == 0, err
    want = sfcprop.propagate(
        root / "JPEGImages/480p/v", clip.masks[0].long(), PooledColour().eval()
    )
    for t in range(4):
        assert np.array_equal(io.read_mask(out / "v" / f"{t:05d}.png")[0], want.ids[t].numpy())
    assert json.loads((out / "v" / "flags.json").read_text())["keyframes"] == [0]


def test_keypoints_rows_write_what_track_writes(tmp_path, capsys):
    clip = generate_clip(num_frames=4, height=40, width=56, seed=2)
    frames = tmp_path / "clip"
    frames.mkdir()
    for t, f in enumerate(clip.frames):
        Image.fromarray(f.permute(1, 2, 0).numpy()).save(frames / f"{t}.png")
    (tmp_path / "points.json").write_text(json.dumps([[10, 12], [30, 20]]))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"frames": "clip", "annotations": "points.json"}) + "\n")
    out = tmp_path / "out"
    rc, _, err = run(capsys, manifest, "--out", out, "--backbone", TOY, "--quiet")
    assert rc == 0, err
    argv = ["track", frames, tmp_path / "points.json", "--out", tmp_path / "t", "--backbone", TOY]
    assert cli.main([str(a) for a in argv] + ["--quiet"]) == 0
    capsys.readouterr()
    for name in ("tracks.csv", "tracks.json"):
        assert (out / "clip" / name).read_text() == (tmp_path / "t" / name).read_text()
    row = summary(out)["clip"]
    assert row["task"] == "keypoints" and row["objects"] == 2 and row["frames"] == 4


BAD = {  # name -> (exit code, part of the message)
    "no JPEGImages": (1, "has no JPEGImages/ folder"),
    "no Annotations": (1, "has no Annotations/ folder"),
    "missing source": (1, "no such dataset folder or manifest"),
    "row without frames": (1, "line 2: no frames"),
    "unknown column": (1, "unknown column(s) ['frame']"),
    "two rows, one name": (1, "line 3: a second video named 'a'"),
    "no such image set": (1, "no image set 'test'"),
    "bad shard": (2, "--shard expects i/N"),
    "workers without ray": (2, "--workers, --num-cpus and --num-gpus go with --engine ray"),
}


def _bad(tmp_path: Path, name: str) -> list:
    """The arguments after `batch` (but --out) of the bad input `name`."""
    empty = tmp_path / "empty"
    (empty / "JPEGImages" / "v").mkdir(parents=True)
    dataset = tmp_path / "dataset"
    (dataset / "JPEGImages" / "v").mkdir(parents=True)
    (dataset / "Annotations" / "v").mkdir(parents=True)
    manifests = {
        "row without frames": "frames,annotations\n,first.png\n",
        "unknown column": "frame,annotations\nclip,first.png\n",
        "two rows, one name": "frames,annotations,name\nx,y.png,a\nz,w.png,a\n",
    }
    manifest = tmp_path / "m.csv"
    manifest.write_text(manifests.get(name, ""))
    return {
        "no JPEGImages": [tmp_path],
        "no Annotations": [empty],
        "missing source": [tmp_path / "nope"],
        "no such image set": [dataset, "--image-set", "test"],
        "bad shard": [dataset, "--shard", "2/2"],
        "workers without ray": [dataset, "--workers", "2"],
    }.get(name, [manifest])


@pytest.mark.parametrize("name", list(BAD))
def test_bad_inputs_give_one_error_line(name, tmp_path, capsys):
    code, message = BAD[name]
    out = tmp_path / "out"
    rc, _, err = run(capsys, *_bad(tmp_path, name), "--out", out, "--backbone", TOY)
    assert rc == code, err
    assert err.startswith("sfcprop: error: ") and len(err.strip().splitlines()) == 1, err
    assert message in err
    assert not out.exists()
