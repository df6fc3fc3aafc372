"""`sfcprop batch` / `sfcprop.batch`: three generated videos in the DAVIS layout and as a
manifest, shards, resuming after SIGKILL, SIGTERM, a corrupt video, exports. What it
reads and bad inputs: tests/test_batch_sources.py; the Ray engine: tests/test_batch_ray.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from toys import PooledColour

import sfcprop
from sfcprop import io
from sfcprop.apps import cli
from sfcprop.apps.sources import Shard
from sfcprop.bench.synthetic import generate_clip

TOY = "toys:PooledColour"  # tests/toys.py, importable while pytest runs
REPO = Path(__file__).resolve().parents[1]
NAMES = ("bear", "cat", "dog")
KEYS = {"cat": (0, 3)}  # cat has two keyframes; the others frame 0 only

pytestmark = pytest.mark.usefixtures("one_thread")


def make_dataset(root: Path, frames: int = 5) -> Path:
    """`root/JPEGImages/<video>/0000t.png` and `root/Annotations/<video>/<key>.png`."""
    for i, name in enumerate(NAMES):
        clip = generate_clip(num_frames=frames, height=40, width=56, seed=10 + i)
        (root / "JPEGImages" / name).mkdir(parents=True)
        (root / "Annotations" / name).mkdir(parents=True)
        for t, f in enumerate(clip.frames):
            Image.fromarray(f.permute(1, 2, 0).numpy()).save(
                root / "JPEGImages" / name / f"{t:05d}.png"
            )
        for t in KEYS.get(name, (0,)):
            io.write_mask(root / "Annotations" / name / f"{t:05d}.png", clip.masks[t])
    return root


def run(capsys, *argv):
    rc = cli.main(["batch", *map(str, argv)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def read_out(out: Path) -> dict[str, dict[str, np.ndarray]]:
    """video -> frame stem -> ids, of every video folder in `out`."""
    return {
        v.name: {p.stem: io.read_mask(p)[0] for p in sorted(v.glob("*.png"))}
        for v in sorted(out.iterdir())
        if v.is_dir() and not v.name.startswith(".")
    }


def summary(out: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (out / "summary.jsonl").read_text().splitlines()]
    return {r["name"]: r for r in rows}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "DAVIS")


@pytest.fixture(scope="module")
def serial(dataset, tmp_path_factory):
    """The unsharded serial run of the dataset (through the command)."""
    out = tmp_path_factory.mktemp("serial") / "out"
    rc = cli.main(["batch", str(dataset), "--out", str(out), "--backbone", TOY, "--quiet"])
    assert rc == 0
    return out


def test_a_batch_equals_one_propagate_call_per_video(dataset, serial):
    net = PooledColour().eval()
    got = read_out(serial)
    assert sorted(got) == list(NAMES)
    for name in NAMES:
        keys = {t: dataset / "Annotations" / name / f"{t:05d}.png" for t in KEYS.get(name, (0,))}
        want = sfcprop.propagate(dataset / "JPEGImages" / name, keys, net).ids.numpy()
        assert sorted(got[name]) == [f"{t:05d}" for t in range(5)]
        for t in range(5):
            assert np.array_equal(got[name][f"{t:05d}"], want[t]), (name, t)
        assert (serial / name / "confidence.csv").is_file()
        flags = json.loads((serial / name / "flags.json").read_text())
        assert flags["keyframes"] == list(KEYS.get(name, (0,)))
    rows = summary(serial)
    assert sorted(rows) == list(NAMES)
    for row in rows.values():
        assert row["status"] == "ok" and row["frames"] == 5 and row["objects"] == 2
        assert 0 <= row["mean_confidence"] <= 1 and row["error"] is None
        assert row["lost_runs"] >= 0 and row["seconds"] > 0
    assert json.loads((serial / "batch.json").read_text())["settings"]["backbone"] == TOY


def test_a_manifest_gives_what_the_dataset_folder_gives(dataset, serial, tmp_path, capsys):
    """CSV (paths relative to the manifest, a video's name from its folder) and JSON lines
    (absolute paths, names given)."""
    csv_rows = ["frames,annotations"]
    for name in NAMES:
        ann = f"Annotations/{name}" if name in KEYS else f"Annotations/{name}/00000.png"
        csv_rows.append(f"JPEGImages/{name},{ann}")
    manifest = dataset / "videos.csv"
    manifest.write_text("\n".join(csv_rows) + "\n")
    lines = [
        json.dumps(
            {
                "name": n,
                "frames": str(dataset / "JPEGImages" / n),
                "task": "masks",
                "annotations": str(dataset / "Annotations" / n),
            }
        )
        for n in NAMES
    ]
    jsonl = tmp_path / "videos.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    try:
        for source, out in ((manifest, tmp_path / "a"), (jsonl, tmp_path / "b")):
            rc, _, err = run(capsys, source, "--out", out, "--backbone", TOY, "--quiet")
            assert rc == 0, err
            got, want = read_out(out), read_out(serial)
            assert sorted(got) == sorted(want)
            for name in NAMES:
                for stem, ids in want[name].items():
                    assert np.array_equal(got[name][stem], ids), (source.name, name, stem)
    finally:
        manifest.unlink()


def test_the_shards_together_equal_the_unsharded_run(dataset, serial, tmp_path, capsys):
    out = tmp_path / "out"
    for i, n in ((0, 2), (1, 1)):
        rc, stdout, err = run(capsys, dataset, "--out", out, "--backbone", TOY, "--shard", f"{i}/2")
        assert rc == 0, err
        assert f"batch shard {i}/2: {n} videos written" in stdout
    got, want = read_out(out), read_out(serial)
    assert sorted(got) == list(NAMES)
    for name in NAMES:
        for stem, ids in want[name].items():
            assert np.array_equal(got[name][stem], ids)
    assert sorted(summary(out)) == list(NAMES)  # both shards wrote the one summary file
    assert [j.name for j in Shard(0, 2).select(_jobs(dataset))] == ["bear", "dog"]


def _jobs(dataset):
    from sfcprop.apps.sources import read_source

    return read_source(dataset)


def test_a_rerun_skips_what_is_finished(dataset, serial, capsys):
    before = {p: p.stat().st_mtime_ns for p in serial.glob("*/*.png")}
    rc, out, err = run(capsys, dataset, "--out", serial, "--backbone", TOY)
    assert rc == 0, err
    assert "3 of 3 videos finished before: skipped" in err
    assert "0 videos written" in out
    assert before == {p: p.stat().st_mtime_ns for p in serial.glob("*/*.png")}


def test_other_settings_into_the_same_out_are_refused(dataset, serial, capsys):
    rc, _, err = run(capsys, dataset, "--out", serial, "--backbone", TOY, "--short-side", 32)
    assert rc == 1 and "written with other settings (config" in err
    assert len(err.strip().splitlines()) == 1


SLOW_TOY = """
import time
from toys import PooledColour

class Slow(PooledColour):
    def forward(self, x):
        time.sleep(0.3)
        return super().forward(x)
"""


def test_a_run_killed_after_one_video_resumes_to_the_same_output(dataset, serial, tmp_path):
    (tmp_path / "slowtoy.py").write_text(SLOW_TOY)
    path = os.pathsep.join([str(REPO), str(REPO / "tests"), str(tmp_path)])
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "sfcprop.apps.cli", "batch", str(dataset), "--out", str(out)]
    cmd += ["--backbone", "slowtoy:Slow", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "bear").is_dir() and list(out.glob(".cat.tmp-*/*.png")):
            break  # one video done, the next half written
        time.sleep(0.02)
    proc.kill()
    proc.communicate(timeout=60)
    assert (out / "bear").is_dir() and not (out / "cat").exists(), "killed too early or late"
    assert list(out.glob(".cat.tmp-*"))  # SIGKILL: a staging folder left, looks unfinished
    rc = subprocess.run(cmd[:-1], env=env, capture_output=True, text=True)  # not quiet
    assert rc.returncode == 0, rc.stderr
    assert "1 of 3 videos finished before: skipped" in rc.stderr
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".cat")) == []
    got, want = read_out(out), read_out(serial)
    assert sorted(got) == list(NAMES)
    for name in NAMES:
        for stem, ids in want[name].items():
            assert np.array_equal(got[name][stem], ids)


def test_a_corrupt_video_fails_alone_and_retry_failed_redoes_it(dataset, serial, tmp_path, capsys):
    root = make_dataset(tmp_path / "DAVIS")
    frame = root / "JPEGImages" / "cat" / "00002.png"
    good = frame.read_bytes()
    frame.write_bytes(b"not a png")
    out = tmp_path / "out"
    rc, stdout, err = run(capsys, root, "--out", out, "--backbone", TOY)
    assert rc == 1
    assert "2 videos written, 1 failed" in stdout
    assert err.strip().splitlines()[-1].startswith("sfcprop: error: 1 of 3 videos failed")
    assert "batch 3/3 videos: 100%" in err  # the bar over videos and frames
    assert "failed: cat: " in err
    rows = summary(out)
    assert rows["cat"]["status"] == "failed" and "00002.png" in rows["cat"]["error"]
    assert "\n" not in rows["cat"]["error"]
    assert sorted(read_out(out)) == ["bear", "dog"] and not (out / "cat").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".cat.tmp")]

    rc, _, err = run(capsys, root, "--out", out, "--backbone", TOY)  # still broken, skipped
    assert rc == 1 and "1 videos failed before: skipped (--retry-failed" in err
    frame.write_bytes(good)
    mtime = (out / "bear" / "00000.png").stat().st_mtime_ns
    rc, stdout, err = run(capsys, root, "--out", out, "--backbone", TOY, "--retry-failed")
    assert rc == 0, err
    assert "1 videos written, 0 failed" in stdout
    assert summary(out)["cat"]["status"] == "ok"
    assert (out / "bear" / "00000.png").stat().st_mtime_ns == mtime  # not redone
    want = read_out(serial)
    for stem, ids in want["cat"].items():
        assert np.array_equal(read_out(out)["cat"][stem], ids)


def test_the_python_entry_returns_a_report(dataset, serial, tmp_path):
    report = sfcprop.batch(
        dataset, tmp_path / "out", PooledColour().eval(), shard="1/2", progress=False
    )
    assert report.ok and report.videos == 1 and report.skipped == 0
    assert [r.name for r in report.rows] == ["cat"] and report.rows[0].status == "ok"
    got, want = read_out(tmp_path / "out"), read_out(serial)
    for stem, ids in want["cat"].items():
        assert np.array_equal(got["cat"][stem], ids)
    assert torch.get_num_threads() == 1


def test_out_inside_the_dataset_or_a_foreign_folder_is_refused(dataset, tmp_path, capsys):
    rc, _, err = run(capsys, dataset, "--out", dataset / "results", "--backbone", TOY)
    assert rc == 1 and "is inside the input" in err and not (dataset / "results").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    rc, _, err = run(capsys, dataset, "--out", foreign, "--backbone", TOY)
    assert rc == 1 and "not a batch's output folder" in err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_formats_are_exported_once_every_shard_is_done(dataset, serial, tmp_path, capsys):
    """--format coco --format ytvis: shard 0/2 alone leaves the exports for later (the
    command to run them); shard 1/2 finishes the source and writes them beside DIR; the
    COCO file read back with pycocotools gives the ids of the masks."""
    from pycocotools.coco import COCO

    out = tmp_path / "out"
    argv = [dataset, "--out", out, "--backbone", TOY, "--format", "coco", "--format", "ytvis"]
    rc, _, err = run(capsys, *argv, "--shard", "0/2")
    assert rc == 0 and "no exports yet" in err and "sfcprop export" in err
    assert not (tmp_path / "out-exports").exists()
    rc, stdout, err = run(capsys, *argv, "--shard", "1/2")
    assert rc == 0, err
    exports = tmp_path / "out-exports"
    assert f"wrote {exports / 'coco' / 'instances.json'}" in stdout
    assert (exports / "ytvis" / "results.json").is_file()
    coco = COCO(str(exports / "coco" / "instances.json"))
    want = read_out(serial)
    for image in coco.dataset["images"]:
        video, frame = image["file_name"].removesuffix(".jpg").split("/")
        ids = np.zeros((image["height"], image["width"]), np.uint8)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            ids[coco.annToMask(ann) > 0] = ann["object"]
        assert np.array_equal(ids, want[video][frame]), (video, frame)
    assert len(coco.dataset["images"]) == 15


def test_sigterm_leaves_finished_videos_and_no_half_written_one(dataset, tmp_path):
    (tmp_path / "slowtoy.py").write_text(SLOW_TOY)
    path = os.pathsep.join([str(REPO), str(REPO / "tests"), str(tmp_path)])
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "sfcprop.apps.cli", "batch", str(dataset), "--out", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--backbone", "slowtoy:Slow", "--quiet"], env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if list(out.glob(".bear.tmp-*/*.png")):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err == "sfcprop: error: terminated\n"
    assert not (out / "bear").exists()
    assert sorted(p.name for p in out.iterdir()) == ["batch.json"]  # no staging, no lock
