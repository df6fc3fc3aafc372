"""`sfcprop propagate` and `sfcprop track`: end to end (generated clip, SegTrack v2 bmx, a
DAVIS sequence as a lossless mp4, the JHMDB sample), outputs, and bad inputs (one error
line, exit code 1, no output folder)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from toys import PooledColour

from sfcprop import io, propagate
from sfcprop.apps import cli
from sfcprop.bench.synthetic import generate_clip

TOY = "toys:PooledColour"  # tests/toys.py, importable while pytest runs
REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def assert_failed(rc, err, out_dir: Path, message: str):
    """Exit code 1, exactly one `sfcprop: error:` line, no traceback, no output folder
    and no temporary folder left beside it."""
    assert rc == 1, err
    lines = [ln for ln in err.splitlines() if ln.startswith("sfcprop: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert message in lines[0], lines[0]
    assert not out_dir.exists()
    if out_dir.parent.exists():
        assert not [p for p in out_dir.parent.iterdir() if p.name.startswith(f".{out_dir.name}.")]


@pytest.fixture(scope="module")
def clip():
    return generate_clip(num_frames=5, height=48, width=80, seed=3)


@pytest.fixture
def inputs(clip, tmp_path):
    """A frames folder (f0.png, f3.png, ...) and its first mask with a custom palette."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(clip.frames):
        Image.fromarray(f.permute(1, 2, 0).numpy()).save(folder / f"f{i * 3}.png")
    palette = [0, 0, 0, 250, 10, 10, 10, 10, 250] + [7] * (768 - 9)
    io.write_mask(tmp_path / "first.png", clip.masks[0], palette)
    return folder, tmp_path / "first.png", palette


def _video(frames, path):
    pytest.importorskip("av")
    with io.VideoWriter(path, 10, lossless=True) as w:  # libx264rgb, crf 0: exact RGB
        for f in frames:
            w.write(f)
    return path


# --------------------------------------------------------------------------- end to end


def test_help_shows_examples(capsys):
    for command in ("propagate", "track"):
        with pytest.raises(SystemExit) as e:
            cli.main([command, "--help"])
        assert e.value.code == 0
        assert f"sfcprop {command} " in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli.main(["propagate", "frames/"])  # missing FIRST_MASK and --out: usage
    assert e.value.code == 2


def test_propagate_writes_masks_overlays_and_animations(inputs, clip, tmp_path, capsys):
    folder, first, palette = inputs
    out = tmp_path / "out"
    pictures = ["--gif", "--overlays"] + (["--mp4"] if _has_av() else [])
    argv = ["propagate", folder, first, "--out", out, "--backbone", TOY, "--context", 2]
    rc, stdout, err = run(capsys, *argv, *pictures)
    assert rc == 0, err
    assert "wrote 5 masks" in stdout and "100%" in err  # summary and progress bar
    stems = [f"f{i * 3}" for i in range(5)]
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{s}.png" for s in stems)
    want = propagate(clip.frames, clip.masks[0].long(), PooledColour().eval(), context=2).ids
    for t, stem in enumerate(stems):
        ids, pal = io.read_mask(out / f"{stem}.png")
        assert np.array_equal(ids, want[t].numpy()) and pal[:768] == palette
    assert sorted(p.name for p in (out / "overlays").iterdir()) == sorted(f"{s}.jpg" for s in stems)
    with Image.open(out / "overlay.gif") as gif:
        assert gif.n_frames == 5
    if _has_av():
        assert len(list(io.VideoReader(out / "overlay.mp4"))) == 5
    assert len(list(folder.iterdir())) == 5  # nothing written into the input folder

    rc, _, err = run(capsys, "propagate", folder, first, "--out", out, "--backbone", TOY)
    assert rc == 1 and "pass --force" in err  # an existing result is not overwritten
    rc, stdout, err = run(
        capsys, "propagate", folder, first, "--out", out, "--backbone", TOY, "--force", "--quiet"
    )
    assert rc == 0 and stdout == "" and err == ""
    assert not (out / "overlay.gif").exists()  # replaced as a whole


def test_precision_option_reaches_propagation(inputs, clip, tmp_path, capsys):
    folder, first, _ = inputs
    out = tmp_path / "half"
    argv = ["propagate", folder, first, "--out", out, "--backbone", TOY, "--context", 2]
    rc, _, err = run(capsys, *argv, "--precision", "bfloat16", "--quiet")
    assert rc == 0, err
    net = PooledColour().eval()
    want = propagate(clip.frames, clip.masks[0].long(), net, context=2, precision="bfloat16")
    exact = propagate(clip.frames, clip.masks[0].long(), net, context=2)
    assert not torch.equal(want.ids, exact.ids)  # so the check below can tell them apart
    for t, png in enumerate(sorted(out.glob("*.png"), key=lambda p: int(p.stem[1:]))):
        assert np.array_equal(io.read_mask(png)[0], want.ids[t].numpy())


def test_segtrack_bmx_clip(data_dir, tmp_path, capsys):
    root = data_dir / "segtrackv2-bmx"
    frames = sorted((root / "Images" / "bmx").glob("*.png"))[:6]
    folder = tmp_path / "bmx"
    folder.mkdir()
    for p in frames:
        shutil.copy(p, folder / p.name)
    grey = np.asarray(Image.open(root / "Annotations" / "bmx" / frames[0].name).convert("L"))
    Image.fromarray(((grey >= 128) * 255).astype(np.uint8)).save(tmp_path / "first.png")
    out = tmp_path / "masks"
    argv = ["propagate", folder, tmp_path / "first.png", "--out", out, "--backbone", TOY]
    rc, _, err = run(capsys, *argv, "--quiet")
    assert rc == 0, err
    want = propagate(folder, tmp_path / "first.png", PooledColour().eval()).ids
    assert want.shape == (6, 360, 640) and set(np.unique(want.numpy())) <= {0, 1}
    for t, p in enumerate(frames):
        ids, pal = io.read_mask(out / f"{p.stem}.png")
        assert np.array_equal(ids, want[t].numpy()) and pal[:768] == io.DAVIS_PALETTE


def test_davis_as_an_mp4_gives_the_masks_of_its_frames(data_dir, tmp_path, capsys):
    """The frames of a DAVIS sequence, and the same frames in a lossless mp4 (libx264rgb,
    crf 0, which decodes to exactly the RGB written), give the same masks. Backbone: a
    random-weight ResNet-18 checkpoint file, frames at a short side of 96 px."""
    pytest.importorskip("av")
    import torchvision

    seq = data_dir / "davis2016" / "JPEGImages" / "480p" / "bmx-trees"
    first = data_dir / "davis2016" / "Annotations2017first" / "bmx-trees" / "00000.png"
    folder = tmp_path / "bmx-trees"
    folder.mkdir()
    for p in sorted(seq.glob("*.jpg"))[:4]:
        shutil.copy(p, folder / p.name)
    video = _video(io.open_frames(folder), tmp_path / "bmx-trees.mp4")
    torch.manual_seed(0)
    ckpt = tmp_path / "random-r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), ckpt)
    common = ["--backbone", ckpt, "--short-side", 96, "--quiet"]
    rc, _, err = run(capsys, "propagate", folder, first, "--out", tmp_path / "a", *common)
    assert rc == 0, err
    rc, _, err = run(capsys, "propagate", video, first, "--out", tmp_path / "b", *common)
    assert rc == 0, err
    names = sorted(p.name for p in (tmp_path / "a").glob("*.png"))
    assert names == [f"{t:05d}.png" for t in range(4)]  # DAVIS frames are 00000.jpg ...
    assert names == sorted(p.name for p in (tmp_path / "b").glob("*.png"))
    for name in names:
        a, pal = io.read_mask(tmp_path / "a" / name)
        b, _ = io.read_mask(tmp_path / "b" / name)
        assert a.shape == (480, 854) and np.array_equal(a, b)
        assert pal == io.read_mask(first)[1]  # the first mask's palette


def test_track_jhmdb_sample_prints_pck(data_dir, tmp_path, capsys):
    root = data_dir / "jhmdb-sample"
    folder = tmp_path / "clip"
    folder.mkdir()
    for p in sorted((root / "Rename_Images").glob("*/*/*.png"))[:10]:
        shutil.copy(p, folder / p.name)
    mat = next((root / "joint_positions").glob("*/*/joint_positions.mat"))
    points = tmp_path / "points.json"
    points.write_text(json.dumps(io.read_points(mat)[0].tolist()))
    out = tmp_path / "tracks"
    argv = ["track", folder, points, "--out", out, "--backbone", TOY, "--size", "320x320"]
    rc, stdout, err = run(capsys, *argv, "--gt", mat, "--gif", "--quiet")
    assert rc == 0, err
    line = next(ln for ln in stdout.splitlines() if "PCK@0.2" in ln)
    pck = json.loads((out / "pck.json").read_text())
    assert f"PCK@0.2 {pck['PCK@0.2']:.1f}" in line and pck["frames"] == 9
    assert 0 <= pck["PCK@0.1"] <= pck["PCK@0.2"] <= 100
    rows = (out / "tracks.csv").read_text().splitlines()
    assert len(rows) == 1 + 10 * 15 and rows[1].startswith("00001,neck,285.500,105.500,1.0")
    tracks = json.loads((out / "tracks.json").read_text())
    assert len(tracks["points"]) == 10 and tracks["names"][2] == "face"
    with Image.open(out / "overlay.gif") as gif:
        assert gif.n_frames == 10


@pytest.mark.skipif(
    not (REPO / "weights" / "fc-r18-sfcprop.safetensors").is_file(),
    reason="the shipped model weights/fc-r18-sfcprop.safetensors is not there yet",
)
def test_default_backbone_is_the_shipped_model(inputs, tmp_path, capsys):
    folder, first, _ = inputs
    rc, _, err = run(capsys, "propagate", folder, first, "--out", tmp_path / "out", "--quiet")
    assert rc == 0, err
    assert len(list((tmp_path / "out").glob("*.png"))) == 5


# --------------------------------------------------------------------------- bad inputs


def _case(name, clip, tmp_path, inputs):
    folder, first, _ = inputs
    if name == "mask of another size":
        io.write_mask(tmp_path / "small.png", clip.masks[0][:40])
        return ["propagate", folder, tmp_path / "small.png"], "its mask is (40, 80)"
    if name == "points outside the frame":
        (tmp_path / "p.json").write_text("[[10, 10], [500, 20]]")
        return ["track", folder, tmp_path / "p.json"], "point 1 (x=500, y=20) is outside"
    if name == "empty folder":
        (tmp_path / "empty").mkdir()
        return ["propagate", tmp_path / "empty", first], "no image files"
    if name == "unreadable frame":  # found after some masks are written
        (folder / "f12.png").write_bytes(b"\x89PNG broken")
        return ["propagate", folder, first], "cannot read image"
    if name == "unreadable mask":
        (tmp_path / "bad.png").write_bytes(b"garbage")
        return ["propagate", folder, tmp_path / "bad.png"], "cannot read image"
    if name == "rejected video":
        pytest.importorskip("av")
        (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
        return ["propagate", tmp_path / "clip.mp4", first], "cannot decode video"
    if name == "out is the input folder":
        return ["propagate", folder, first, "--out", folder], "is the input"
    if name == "over max-memory":
        return ["propagate", folder, first, "--max-memory", "100KB"], "max_memory = 97.7 KiB"
    if name == "missing points file":
        return ["track", folder, tmp_path / "none.csv"], "no such points file"
    raise AssertionError(name)


@pytest.mark.parametrize(
    "name",
    [
        "mask of another size",
        "points outside the frame",
        "empty folder",
        "unreadable frame",
        "unreadable mask",
        "rejected video",
        "out is the input folder",
        "missing points file",
        "over max-memory",
    ],
)
def test_bad_inputs_give_one_error_line(name, clip, tmp_path, inputs, capsys):
    argv, message = _case(name, clip, tmp_path, inputs)
    out = tmp_path / "results" / "out"  # parent folders made for it go too
    if "--out" not in argv:
        argv += ["--out", out]
    before = sorted(p.name for p in inputs[0].iterdir())
    rc, _, err = run(capsys, *argv, "--backbone", TOY)
    if name == "out is the input folder":
        assert rc == 1 and "is the input" in err
        assert sorted(p.name for p in inputs[0].iterdir()) == before
        return
    assert_failed(rc, err, out, message)
    assert not (tmp_path / "results").exists()
    assert sorted(p.name for p in inputs[0].iterdir()) == before


def test_without_pyav_a_video_names_the_extra(inputs, tmp_path, capsys, monkeypatch):
    folder, first, _ = inputs
    (tmp_path / "clip.mp4").write_bytes(b"anything")
    monkeypatch.setitem(sys.modules, "av", None)
    out = tmp_path / "out"
    rc, _, err = run(capsys, "propagate", tmp_path / "clip.mp4", first, "--out", out)
    assert_failed(rc, err, out, "pip install 'sfcprop[video]'")
    rc, _, err = run(capsys, "propagate", folder, first, "--out", out, "--mp4", "--backbone", TOY)
    assert_failed(rc, err, out, "pip install 'sfcprop[video]'")


def test_exit_code_and_stderr_of_a_real_process(tmp_path):
    """The whole of stderr is the one error line (usage errors, code 2: test_help...)."""
    (tmp_path / "empty").mkdir()
    cmd = [sys.executable, "-m", "sfcprop.apps.cli", "propagate", tmp_path / "empty", "m.png"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    bad = subprocess.run(
        [*map(str, cmd), "--out", str(tmp_path / "o")], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        f"sfcprop: error: no image files (.jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff) in "
        f"{tmp_path / 'empty'}"
    ]
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- runs


def test_version(capsys):
    import sfcprop

    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"sfcprop {sfcprop.__version__}"


COMMANDS = {  # command -> (module, function) the failure is planted in
    "propagate": ("sfcprop.apps.propagate", "run"),
    "track": ("sfcprop.apps.track", "run"),
    "demo": ("sfcprop.apps.cli", "_demo"),
    "eval": ("sfcprop.apps.eval", "_run"),
    "backbones": ("sfcprop.apps.backbones", "_table"),
    "train-fc": ("sfcprop.train.cli", "export_trunk"),
    "batch": ("sfcprop.apps.batch", "batch"),
    "export": ("sfcprop.apps.export", "export_results"),
}
ARGV = {
    "propagate": ["propagate", "f/", "m.png", "--out", "o"],
    "track": ["track", "f/", "p.json", "--out", "o"],
    "demo": ["demo", "--out", "o"],
    "eval": ["eval", "davis", "--root", "r", "--backbone", "fc", "--out", "o"],
    "backbones": ["backbones"],
    "train-fc": ["train-fc", "--export", "a.pt", "b.safetensors"],
    "batch": ["batch", "s/", "--out", "o"],
    "export": ["export", "r/", "--format", "coco", "--out", "o"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_reports_failures_in_one_line(command, monkeypatch, capsys):
    """Weights unavailable, no CUDA (torch's assertion), any other failure: one line and
    exit code 1; Ctrl-C: 130, also while the command line is parsed (start-up)."""
    import importlib

    from sfcprop.models.hub import WeightsUnavailableError

    module, name = COMMANDS[command]
    failures = [
        (WeightsUnavailableError("weights of 'crw' are not cached; no network"), 1, "not cached"),
        (AssertionError("Torch not compiled with CUDA enabled"), 1, "AssertionError: Torch not"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ]
    for error, code, message in failures:

        def fail(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(importlib.import_module(module), name, fail)
        rc, _, err = run(capsys, *ARGV[command])
        lines = err.splitlines()
        assert rc == code and len(lines) == 1 and lines[0].startswith("sfcprop: error: "), err
        assert message in err
    monkeypatch.setattr(cli, "_parser", lambda: fail(error=KeyboardInterrupt()))
    if command not in cli.DELEGATED:
        rc, _, err = run(capsys, *ARGV[command])
        assert rc == 130 and err == "sfcprop: error: interrupted\n"


def test_no_cuda_is_a_one_line_error(inputs, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("torch sees a CUDA device here")
    folder, first, _ = inputs
    out = tmp_path / "out"
    rc, _, err = run(capsys, "propagate", folder, first, "--out", out, "--device", "cuda")
    assert_failed(rc, err, out, "--device cuda: torch sees no CUDA device")


def test_the_progress_bar_starts_once_the_backbone_is_loaded(inputs, tmp_path, capsys):
    folder, first, _ = inputs
    (tmp_path / "p.json").write_text("[[10, 10]]")
    for argv in (["track", folder, tmp_path / "p.json"], ["propagate", folder, first]):
        out = tmp_path / "out"
        rc, _, err = run(capsys, *argv, "--out", out, "--backbone", "fcc")
        assert_failed(rc, err, out, "'fcc' is neither a registered backbone")
        assert err.count("\n") == 1 and "%" not in err  # no 0% bar before it


def test_weights_option_loads_the_architecture_with_a_file(inputs, clip, tmp_path, capsys):
    import torchvision

    from sfcprop import backbone

    folder, first, _ = inputs
    torch.manual_seed(1)
    ckpt = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), ckpt)
    out = tmp_path / "out"
    argv = ["propagate", folder, first, "--out", out, "--backbone", "imagenet-r18"]
    rc, _, err = run(capsys, *argv, "--weights", ckpt, "--context", 2)
    assert rc == 0, err
    assert f"weights: imagenet-r18: file {ckpt}" in err
    net = backbone("imagenet-r18", weights=ckpt)
    want = propagate(clip.frames, clip.masks[0].long(), net, context=2).ids
    for t in range(5):
        assert np.array_equal(io.read_mask(out / f"f{t * 3}.png")[0], want[t].numpy())
    rc, _, err = run(
        capsys,
        "track",
        folder,
        tmp_path / "none.json",
        "--out",
        tmp_path / "t",
        "--backbone",
        "imagenet-r18",
        "--weights",
        ckpt,
    )
    assert_failed(rc, err, tmp_path / "t", "no such points file")  # track takes it too


def test_output_folder_gets_the_usual_permissions(inputs, tmp_path, capsys):
    folder, first, _ = inputs
    for umask, mode in ((0o022, 0o755), (0o027, 0o750)):
        out = tmp_path / f"out-{mode:o}"
        before = os.umask(umask)
        try:
            rc, _, err = run(
                capsys,
                "propagate",
                folder,
                first,
                "--out",
                out,
                "--backbone",
                TOY,
                "--overlays",
                "--quiet",
            )
        finally:
            os.umask(before)
        assert rc == 0, err
        assert out.stat().st_mode & 0o777 == mode
        assert (out / "overlays").stat().st_mode & 0o777 == mode
        assert (out / "f0.png").stat().st_mode & 0o777 == mode & 0o666


def test_a_second_run_into_the_same_out_fails_at_once(inputs, tmp_path, capsys):
    from sfcprop.io import runs

    folder, first, _ = inputs
    out = tmp_path / "out"
    argv = ["propagate", folder, first, "--out", out, "--backbone", TOY, "--quiet"]
    with runs.locked(out):
        rc, _, err = run(capsys, *argv)
        assert rc == 1 and err.splitlines() == [
            f"sfcprop: error: {out} is being written by another sfcprop run (process "
            f"{os.getpid()}@{socket.gethostname()}); wait for it to finish or write elsewhere"
        ]
        assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["first.png", "frames"]  # nothing left of it
    rc, _, err = run(capsys, *argv)
    assert rc == 0, err
    assert sorted(os.listdir(tmp_path)) == ["first.png", "frames", "out"]  # no lock file left


SLOW_TOY = """
import time
from toys import PooledColour

class Slow(PooledColour):
    def forward(self, x):
        time.sleep(0.25)
        return super().forward(x)
"""


def _start_slow_run(clip, tmp_path):
    """`sfcprop propagate` of 40 frames at 0.25 s each in a process; returns it once it
    wrote its first mask into its staging folder, with that folder."""
    folder = tmp_path / "long"
    folder.mkdir()
    for t in range(40):
        Image.fromarray(clip.frames[t % 5].permute(1, 2, 0).numpy()).save(folder / f"{t}.png")
    io.write_mask(tmp_path / "m.png", clip.masks[0])
    (tmp_path / "slowtoy.py").write_text(SLOW_TOY)
    path = os.pathsep.join([str(REPO), str(REPO / "tests"), str(tmp_path)])
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "sfcprop.apps.cli", "propagate", folder, tmp_path / "m.png"]
    cmd += ["--out", tmp_path / "res" / "out", "--backbone", "slowtoy:Slow", "--quiet"]
    proc = subprocess.Popen(list(map(str, cmd)), env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        staging = list((tmp_path / "res").glob(".out.tmp-*/*.png"))
        if staging:
            return proc, staging[0].parent
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"the run wrote no mask: {proc.communicate()[1]}")


def test_sigterm_cleans_up_like_ctrl_c(clip, tmp_path):
    proc, staging = _start_slow_run(clip, tmp_path)
    assert staging.name.startswith(f".out.tmp-{proc.pid}@")  # the owner, in the name
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err == "sfcprop: error: terminated\n"
    assert not (tmp_path / "res").exists()  # made for --out: removed with all it held


def test_what_a_killed_run_left_is_removed_by_the_next(clip, tmp_path, capsys):
    proc, staging = _start_slow_run(clip, tmp_path)
    proc.kill()
    proc.communicate(timeout=60)
    assert staging.is_dir() and (tmp_path / "res" / ".out.lock").exists()  # SIGKILL: a mess
    foreign = tmp_path / "res" / ".out.tmp-1@elsewhere.abcdefgh"  # another machine's
    foreign.mkdir()
    out = tmp_path / "res" / "out"
    argv = ["propagate", tmp_path / "long", tmp_path / "m.png", "--out", out]
    rc, _, err = run(capsys, *argv, "--backbone", TOY, "--quiet")
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == [foreign.name, "out"]
    assert len(list(out.glob("*.png"))) == 40


def test_truncated_video_warns_with_both_counts(clip, tmp_path, capsys):
    from test_io import truncated_video

    video, n = truncated_video(tmp_path / "cut.mp4", clip.frames[:5])
    io.write_mask(tmp_path / "m.png", clip.masks[0])
    out = tmp_path / "out"
    argv = ["propagate", video, tmp_path / "m.png", "--out", out, "--backbone", TOY, "--quiet"]
    rc, _, err = run(capsys, *argv)
    assert rc == 0, err
    assert (
        err
        == f"warning: the header of cut.mp4 says 5 frames, {n} were decoded (a truncated file?)\n"
    )
    assert len(list(out.glob("*.png"))) == n


def test_frames_folder_with_junk_entries(inputs, tmp_path, capsys):
    folder, first, _ = inputs
    (folder / "x.jpg").mkdir()
    (folder / "._f0.png").write_bytes(b"\x00\x05\x16\x07")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    out = tmp_path / "out"
    rc, _, err = run(capsys, "propagate", folder, first, "--out", out, "--backbone", TOY, "--quiet")
    assert rc == 0, err
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"f{t * 3}.png" for t in range(5))


# --------------------------------------------------------------------------- --out and inputs


def test_every_input_of_a_command_is_checked_against_out(tmp_path, monkeypatch):
    """`check_out` takes every input path of the parsed arguments (`input_paths`), so
    propagate, track and demo need not list them; a registry name is no path, even where
    a folder of that name exists."""
    from sfcprop.apps.common import input_paths

    monkeypatch.chdir(tmp_path)
    (tmp_path / "fc").mkdir()  # a folder named like the registry's "fc"
    (tmp_path / "net.pth").write_bytes(b"weights")
    parse = cli._parser().parse_args
    args = parse(["propagate", "f/", "m.png", "--out", "o", "--backbone", "imagenet-r18"])
    assert input_paths(args) == ["f/", "m.png"]
    args = parse(["propagate", "f/", "k/", "--out", "o", "--weights", "w.pth", "--semantic", "fc"])
    assert input_paths(args) == ["f/", "k/", "w.pth"]
    args = parse(
        ["track", "v.mp4", "p.json", "--out", "o", "--gt", "g.mat", "--backbone", "net.pth"]
    )
    assert input_paths(args) == ["v.mp4", "p.json", "g.mat", "net.pth"]
    args = parse(["demo", "--backbone", "net.pth", "--frames", "3"])
    assert input_paths(args) == ["net.pth"]  # (--frames is a number, not a path)
    args = parse(["propagate", "f/", "m.png", "--out", "o", "--backbone", TOY])
    assert input_paths(args) == ["f/", "m.png"]  # module:callable


def test_force_replaces_an_out_beside_its_inputs(inputs, tmp_path, capsys):
    """--force replaces --out as a whole; inputs beside it (a --weights file whose name
    starts like it) stay, and are read."""
    import torchvision

    folder, first, _ = inputs
    weights = tmp_path / "out.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.png").write_bytes(b"an earlier result")
    argv = ["propagate", folder, first, "--out", out, "--backbone", "imagenet-r18"]
    rc, _, err = run(capsys, *argv, "--weights", weights, "--force", "--quiet")
    assert rc == 0, err
    assert not (out / "old.png").exists() and len(list(out.glob("f*.png"))) == 5
    assert weights.is_file() and len(list(folder.iterdir())) == 5


# --------------------------------------------------------------------------- numbers


def test_the_slowest_fps_a_gif_can_store_works(inputs, tmp_path, capsys):
    """--fps 0.002: 500 s a frame, within the 655.35 s a GIF frame can last."""
    from sfcprop.apps.common import FPS_RANGE, gif_fps

    folder, first, _ = inputs
    out = tmp_path / "out"
    argv = ["track", folder, tmp_path / "p.json", "--out", out, "--backbone", TOY, "--quiet"]
    (tmp_path / "p.json").write_text("[[10, 10], [40, 20]]")
    rc, _, err = run(capsys, *argv, "--gif", "--fps", FPS_RANGE[0])
    assert rc == 0, err
    with Image.open(out / "overlay.gif") as gif:
        assert gif.info["duration"] == 500_000
    # a video's own rate, whatever its header says, is brought within what a GIF stores
    assert gif_fps(1e-9) == 0.002 and gif_fps(1e9) == 1000 and gif_fps(25.0) == 25.0
    assert gif_fps(float("nan")) == gif_fps(0.0) == gif_fps(float("inf")) == 10.0


def test_track_names_with_commas_quotes_and_line_breaks_stay_one_row(tmp_path, inputs, capsys):
    """tracks.csv is written with the csv module's quoting: a name (or a frame name,
    through the API) holding `,` `"` or a line break stays one cell of one row."""
    import csv

    folder, _, _ = inputs
    (tmp_path / "p.csv").write_text('name,x,y\n"left, hand",10,10\n"say ""hi""",40,20\n')
    out = tmp_path / "out"
    argv = ["track", folder, tmp_path / "p.csv", "--out", out, "--backbone", TOY, "--quiet"]
    rc, _, err = run(capsys, *argv)
    assert rc == 0, err
    with open(out / "tracks.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows[:2]] == ["left, hand", 'say "hi"'] and len(rows) == 10
    names, frames = ["a\rb", "c\nd"], ["f\r0", "f,1"]
    csv_path, _ = io.write_tracks(tmp_path, np.zeros((2, 2, 2)), np.ones((2, 2)), names, frames)
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    assert [r[:2] for r in rows[1:]] == [[t, n] for t in frames for n in names]


# --------------------------------------------------------------------------- interrupts


def _swallowed_ctrl_c() -> None:
    """A real SIGINT to this process whose KeyboardInterrupt is caught and dropped, as a
    library's bare `except:` does during start-up (mpmath's, imported with torch._dynamo)."""
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the handler raises here, at once
    except BaseException:  # noqa: BLE001 - the library's fault, imitated
        pass


@pytest.mark.parametrize("command", ["propagate", "track"])
def test_a_ctrl_c_that_a_library_swallows_still_interrupts(
    command, inputs, tmp_path, capsys, monkeypatch
):
    """Ctrl-C while the frames are opened (start-up), its exception dropped on the way:
    exit 130, one line, and no output folder (nor staging, lock or parent)."""
    import sfcprop.io

    folder, first, _ = inputs
    (tmp_path / "p.json").write_text("[[10, 10], [40, 20]]")
    real = sfcprop.io.open_frames

    def open_frames(*args, **kwargs):
        _swallowed_ctrl_c()
        return real(*args, **kwargs)

    monkeypatch.setattr(sfcprop.io, "open_frames", open_frames)
    given = first if command == "propagate" else tmp_path / "p.json"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    out = tmp_path / "res" / "out"
    rc, stdout, err = run(capsys, command, folder, given, "--out", out, "--backbone", TOY)
    assert rc == 130 and err == "sfcprop: error: interrupted\n" and stdout == ""
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    monkeypatch.setattr(sfcprop.io, "open_frames", real)  # the next run is not interrupted
    rc, _, err = run(capsys, command, folder, given, "--out", out, "--backbone", TOY, "--quiet")
    assert rc == 0 and out.is_dir(), err


SWALLOWING_TOY = """
import os, signal, time
from toys import PooledColour

class Swallowing(PooledColour):
    def __init__(self):
        super().__init__()
        try:  # Ctrl-C while the backbone is built, dropped as a bare `except:` drops it
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except BaseException:
            pass
"""


def test_a_swallowed_ctrl_c_ends_a_real_process_with_130(clip, tmp_path):
    (tmp_path / "frames").mkdir()
    for t in range(3):
        Image.fromarray(clip.frames[t].permute(1, 2, 0).numpy()).save(tmp_path / f"frames/{t}.png")
    io.write_mask(tmp_path / "m.png", clip.masks[0])
    (tmp_path / "swallowtoy.py").write_text(SWALLOWING_TOY)
    path = os.pathsep.join([str(REPO), str(REPO / "tests"), str(tmp_path)])
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "sfcprop.apps.cli", "propagate", "frames", "m.png"]
    cmd += ["--out", "res/out", "--backbone", "swallowtoy:Swallowing", "--gif", "--quiet"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 130 and done.stderr == "sfcprop: error: interrupted\n", done.stderr
    assert done.stdout == "" and not (tmp_path / "res").exists()


def test_the_command_loads_numpy_under_the_error_policy():
    """`sfcprop` imports numpy and torch only once the error policy is in place, so that a
    Ctrl-C while they load ends as any other (130, one line), not with a traceback."""
    code = "import sys, sfcprop.apps.cli; print(sorted({'numpy', 'torch'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout == "[]\n"


def _has_av() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- examples

EXAMPLES = sorted((REPO / "examples").glob("*.py"))
WEIGHTS = REPO / "weights" / "fc-r18-sfcprop.safetensors"


def _run_example(path: Path, tmp_path: Path, monkeypatch, toy: bool, data: bool) -> None:
    import runpy

    import sfcprop.bench.datasets
    import sfcprop.models

    if toy:  # the scripts ask for "fc"; stand the toy in for it
        real = sfcprop.models.backbone
        monkeypatch.setattr(
            sfcprop.models,
            "backbone",
            lambda name, *a, **k: PooledColour().eval() if name == "fc" else real(name, *a, **k),
        )
    if not data:
        monkeypatch.setattr(sfcprop.bench.datasets, "data_root", lambda *a: None)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(path), run_name="__main__")
    assert list((tmp_path / "example-output").rglob("*.gif"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_run_top_to_bottom(path, tmp_path, monkeypatch):
    """The toy stands in for "fc" so that the test stays fast; the keypoint example on the
    JHMDB sample where present, the masks example on the generated clip (at 480p its DAVIS
    branch takes a while)."""
    _run_example(path, tmp_path, monkeypatch, toy=True, data=path.stem == "keypoint_tracking")


@pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"{WEIGHTS.name} is not there yet")
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_run_with_the_shipped_model(path, tmp_path, monkeypatch):
    _run_example(path, tmp_path, monkeypatch, toy=False, data=False)


@pytest.mark.parametrize("swallowed", [True, False])
def test_ctrl_c_in_a_command_run_by_sfcprop_is_reported_once(swallowed, capsys, monkeypatch):
    """`sfcprop eval` runs under `sfcprop`'s error policy and its own: one line, 130."""
    import sfcprop.apps.eval

    def run(args):
        if swallowed:
            _swallowed_ctrl_c()
            return 0
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)

    monkeypatch.setattr(sfcprop.apps.eval, "_run", run)
    assert cli.main(["eval", "davis", "--root", "r", "--backbone", "fc", "--out", "o"]) == 130
    assert capsys.readouterr().err == "sfcprop: error: interrupted\n"
