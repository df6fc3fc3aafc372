"""`FrameStore`: frames by index; a sequential source decoded once into a bounded cache,
spilled to a folder that a killed run's successor removes."""

import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import torch

from sfcprop.bench.synthetic import generate_clip
from sfcprop.io.framestore import FrameStore

HOST = socket.gethostname()


@pytest.fixture(scope="module")
def clip():
    return generate_clip(num_frames=6, height=32, width=48)


def test_an_iterator_is_decoded_once_and_spills_to_disk(clip):
    pulled = []

    def frames():
        for t, f in enumerate(clip.frames):
            pulled.append(t)
            yield f

    one = clip.frames[0].numel()
    store = FrameStore(frames(), keep=True, memory=2 * one)  # two frames in memory
    assert store.known_length is None
    for t in (4, 0, 5, 2, 1, 3):  # out of order
        assert torch.equal(store[t], clip.frames[t])
    assert pulled == list(range(6))  # each frame decoded once
    assert len(store) == 6 and not store.has(6)
    folder = store._disk
    assert folder is not None and len(list(folder.glob("*.npy"))) == 4  # the rest on disk
    assert folder.name.startswith(f"sfcprop-frames-{os.getpid()}@{HOST}.")
    store.close()
    assert not folder.exists()
    with pytest.raises(IndexError, match="past the end"):
        store[6]


def test_without_keep_only_the_last_frame_is_there(clip):
    store = FrameStore(iter(list(clip.frames)), keep=False)
    assert torch.equal(store[0], clip.frames[0])
    assert torch.equal(store[3], clip.frames[3])
    with pytest.raises(RuntimeError, match="keep=True"):
        store[1]


def test_indexable_sources_are_read_directly(clip, tmp_path):
    from PIL import Image

    for t, f in enumerate(clip.frames):
        Image.fromarray(f.permute(1, 2, 0).numpy()).save(tmp_path / f"{t:03d}.png")
    for source in (clip.frames, clip.frames.permute(0, 2, 3, 1).numpy(), tmp_path):
        store = FrameStore(source)
        assert len(store) == 6 and torch.equal(store[5], clip.frames[5])
    assert FrameStore(tmp_path).name(2) == "002"
    for source in (
        clip.frames / 255.0,
        clip.frames.permute(0, 2, 3, 1).numpy().astype(np.uint16) << 8,
    ):
        assert torch.equal(FrameStore(source)[4], clip.frames[4])  # floats in [0, 1], 16 bits
    with pytest.raises(ValueError, match=r"must be uint8 \[T, 3, H, W\], got torch.int64"):
        FrameStore(clip.frames.long())
    store = FrameStore(clip.frames.float())  # floats of 0-255: which scale? refused
    with pytest.raises(ValueError, match="frame 3 has float values from 0 to 2"):
        store[3]


def test_a_bad_frame_in_a_list_is_named(clip):
    frames = [f.permute(1, 2, 0).numpy() for f in clip.frames]
    frames[2] = frames[2].astype(np.float32)
    frames[4] = frames[4].astype(np.int64)
    store = FrameStore(frames)
    assert torch.equal(store[1], clip.frames[1])
    with pytest.raises(ValueError, match="frame 2 has float values from 0 to 2"):
        store[2]
    with pytest.raises(TypeError, match="cannot read frame 4 from ndarray int64"):
        store[4]


# --------------------------------------------------------------------------- spill folders

SPILL = """
import os, signal, sys
from sfcprop.bench.synthetic import generate_clip
from sfcprop.io.framestore import FrameStore
store = FrameStore(iter(generate_clip(num_frames=3, height=8, width=8).frames), memory=0)
store[2]
print(store._disk, flush=True)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _spill_in_child(tmp_path, how: str):
    """The spill folder of a FrameStore in a child process that is killed (`kill`) or
    ends without closing the store (`exit`)."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    child = subprocess.run(
        [sys.executable, "-c", SPILL, how], env=env, capture_output=True, text=True, timeout=120
    )
    assert child.returncode == (-9 if how == "kill" else 0), child.stderr
    return tmp_path / os.path.basename(child.stdout.strip())


def test_a_killed_runs_spill_folder_is_removed_by_the_next_spill(clip, tmp_path, monkeypatch):
    killed = _spill_in_child(tmp_path, "kill")
    assert killed.is_dir() and len(list(killed.glob("*.npy"))) == 3  # SIGKILL: left behind
    assert not _spill_in_child(tmp_path, "exit").exists()  # no close(): removed at exit
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        kept = {
            "mine": _folder(tmp_path, f"sfcprop-frames-{os.getpid()}@{HOST}.live1234"),
            "a live process's": _folder(tmp_path, f"sfcprop-frames-{sleeper.pid}@{HOST}.aB3_x9z0"),
            "another host's": _folder(tmp_path, f"sfcprop-frames-{_dead_pid()}@elsewhere.k2k2k2k2"),
            "an old version's, fresh": _folder(tmp_path, "sfcprop-frames-q8w7e6r5"),
            "another program's": _folder(
                tmp_path, f"othertool-frames-{_dead_pid()}@{HOST}.abcdefgh"
            ),
        }
        old = _folder(tmp_path, "sfcprop-frames-oldold12")
        os.utime(old, (time.time() - 2 * 86400,) * 2)
        target = _folder(tmp_path, "not-a-spill")
        link = tmp_path / f"sfcprop-frames-{_dead_pid()}@{HOST}.link0000"
        link.symlink_to(target)
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        store = FrameStore(iter(list(clip.frames)), memory=0)
        assert torch.equal(store[5], clip.frames[5])  # spilled: the folder was made
        assert store._disk.parent == tmp_path and store._disk.is_dir()
        assert not killed.exists() and not old.exists()
        for what, folder in kept.items():
            assert (folder / "0.npy").is_file(), what
        assert link.is_symlink() and (target / "0.npy").is_file()
        assert sleeper.poll() is None  # asking whether it lives did not harm it
        spill = store._disk
        store.close()
        assert not spill.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def _folder(root, name: str):
    """A folder `root/name` holding one file, as a spill folder does."""
    (root / name).mkdir()
    np.save(root / name / "0.npy", np.zeros(3, np.uint8))
    return root / name


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid
