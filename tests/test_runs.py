"""`sfcprop.io.atomic` (the one atomic write) and `sfcprop.io.runs` (output folders locked
while a run writes them, staged beside them and moved into place when complete, never
when Ctrl-C came; an output that is, holds or lies inside an input refused)."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from sfcprop import errors
from sfcprop.io import runs
from sfcprop.io.atomic import atomic_path
from sfcprop.io.masks import write_mask


def listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- atomic_path


def test_the_file_appears_only_when_the_block_succeeds(tmp_path):
    path = tmp_path / "tracks.csv"
    with atomic_path(path) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".tracks.") and tmp.suffix == ".csv"
        tmp.write_text("half")
        assert not path.exists()  # nothing under the final name yet
    assert path.read_text() == "half" and listing(tmp_path) == ["tracks.csv"]


def test_an_existing_file_is_replaced_only_on_success(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    with atomic_path(path) as tmp:
        tmp.write_text("new")
        assert path.read_text() == "old"
    assert path.read_text() == "new"


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_a_failed_write_leaves_nothing_and_the_old_file_as_it_was(tmp_path, error):
    (tmp_path / "kept.txt").write_text("old")
    with pytest.raises(error), atomic_path(tmp_path / "kept.txt") as tmp:
        tmp.write_text("half written")
        raise error("stop")
    with pytest.raises(error), atomic_path(tmp_path / "new.txt") as tmp:
        tmp.write_text("half written")
        raise error("stop")
    assert listing(tmp_path) == ["kept.txt"] and (tmp_path / "kept.txt").read_text() == "old"


def test_written_files_get_the_usual_permissions(tmp_path):
    """Atomic writes go through mkstemp (owner-only); the final file follows the umask."""
    umask = os.umask(0o022)
    try:
        write_mask(tmp_path / "m.png", np.zeros((4, 4), np.uint8))
        assert (tmp_path / "m.png").stat().st_mode & 0o777 == 0o644
        assert [p.name for p in tmp_path.iterdir()] == ["m.png"]  # no temporary left behind
    finally:
        os.umask(umask)


# --------------------------------------------------------------------------- locked


def test_a_second_lock_fails_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    with runs.locked(out) as held:
        assert held == out and held.is_absolute()
        assert (tmp_path / ".out.lock").read_text() == f"{os.getpid()}@{socket.gethostname()}\n"
        start = time.monotonic()
        words = f"is being written by another sfcprop run (process {os.getpid()}@"
        with pytest.raises(runs.OutputBusyError, match=re.escape(words)), runs.locked(out):
            pass
        assert time.monotonic() - start < 1  # no waiting
    assert listing(tmp_path) == []  # the lock file goes with the lock
    with runs.locked(out):  # free again
        pass


@pytest.mark.skipif(runs.fcntl is None, reason="no flock here (Windows)")
def test_another_process_cannot_take_the_lock(tmp_path):
    code = (
        "import sys\nfrom sfcprop.io import runs\n"
        "try:\n    with runs.locked(sys.argv[1]):\n        print('got it')\n"
        "except runs.OutputBusyError as e:\n    print('busy', e)\n"
    )
    argv = [sys.executable, "-c", code, str(tmp_path / "out")]
    with runs.locked(tmp_path / "out"):
        busy = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    free = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    assert busy.stdout.startswith("busy") and f"process {os.getpid()}@" in busy.stdout
    assert free.stdout == "got it\n"


def test_a_failed_run_removes_the_parents_it_made_unless_it_wrote_out(tmp_path):
    with pytest.raises(RuntimeError), runs.locked(tmp_path / "a" / "b" / "out"):
        assert (tmp_path / "a" / "b").is_dir()
        raise RuntimeError("failed before writing")
    assert listing(tmp_path) == []
    with pytest.raises(RuntimeError), runs.locked(tmp_path / "a" / "b" / "out") as out:
        out.mkdir()
        (out / "f0.png").write_bytes(b"part of a run")
        raise RuntimeError("failed after writing part")
    assert listing(tmp_path / "a" / "b") == ["out"]  # kept, to resume from


# --------------------------------------------------------------------------- staging


def test_staging_moves_the_folder_into_place_only_when_complete(tmp_path):
    final = tmp_path / "results"
    with runs.staging(final) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".results.tmp-")
        (tmp / "f0.png").write_bytes(b"a mask")
        assert not final.exists()
    assert listing(tmp_path) == ["results"] and listing(final) == ["f0.png"]


def test_a_failed_staging_leaves_no_output_and_the_old_folder_whole(tmp_path):
    final = tmp_path / "results"
    with pytest.raises(ValueError), runs.staging(final) as tmp:
        (tmp / "f0.png").write_bytes(b"half")
        raise ValueError("failed")
    assert listing(tmp_path) == []
    final.mkdir()
    (final / "old.png").write_bytes(b"earlier")
    with pytest.raises(KeyboardInterrupt), runs.staging(final) as tmp:
        (tmp / "f0.png").write_bytes(b"half")
        raise KeyboardInterrupt
    assert listing(tmp_path) == ["results"] and listing(final) == ["old.png"]
    with runs.staging(final) as tmp:  # success replaces the folder as a whole
        (tmp / "f0.png").write_bytes(b"new")
    assert listing(tmp_path) == ["results"] and listing(final) == ["f0.png"]


def test_staging_left_by_dead_processes_is_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    names = {
        "dead": f".out.tmp-{dead.pid}@{host}.abcd1234",
        "mine": f".out.tmp-{os.getpid()}@{host}.abcd1234",
        "elsewhere": f".out.old-{dead.pid}@another-host.abcd1234",
        "other folder": f".outer.tmp-{dead.pid}@{host}.abcd1234",
    }
    for name in names.values():
        (tmp_path / name).mkdir()
    removed = runs.remove_stale(tmp_path / "out")
    assert removed == [tmp_path / names["dead"]]
    assert listing(tmp_path) == sorted(v for k, v in names.items() if k != "dead")


def _swallowed_ctrl_c() -> None:
    """A real SIGINT to this process, its KeyboardInterrupt caught and dropped, as a
    library's bare `except:` does (mpmath's, while torch imports sympy)."""
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the handler raises here, at once
    except BaseException:  # noqa: BLE001 - the library's fault, imitated
        pass


def test_staging_is_not_moved_into_place_after_a_swallowed_ctrl_c(tmp_path):
    final = tmp_path / "results"
    written = []

    def command() -> int:
        with runs.staging(final) as tmp:
            (tmp / "f0.png").write_bytes(b"a mask")
            _swallowed_ctrl_c()
            written.append(tmp)
        return 0

    assert errors.run_command(command) == errors.INTERRUPTED
    assert written and listing(tmp_path) == []  # the run went on, its folder did not stay
    with runs.staging(final) as tmp:  # the next command is not interrupted
        (tmp / "f0.png").write_bytes(b"a mask")
    assert listing(final) == ["f0.png"]


# --------------------------------------------------------------------------- overlap


@pytest.mark.parametrize(
    "out, given, words",
    [
        ("frames", "frames", "is the input"),
        ("frames/../frames/", "frames", "is the input"),
        ("results", "results/w.pth", "holds the input"),
        ("results", "results/deep/down/first.png", "holds the input"),
        ("frames/masks", "frames", "is inside the input"),
        ("link", "frames", "is the input"),  # a symbolic link to the input folder
        ("link/out", "frames", "is inside the input"),
    ],
)
def test_an_output_that_is_holds_or_lies_in_an_input_is_refused(tmp_path, out, given, words):
    (tmp_path / "frames").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "frames")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(ValueError) as e:
        runs.refuse_overlap(tmp_path / out, [None, tmp_path / "elsewhere", tmp_path / given])
    assert str(e.value) == (
        f"--out {tmp_path / out} {words} {tmp_path / given}; write the results elsewhere"
    )
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing made


def test_outputs_beside_their_inputs_pass(tmp_path):
    (tmp_path / "out.pth").write_bytes(b"weights")
    hard = tmp_path / "hard.png"
    (tmp_path / "first.png").write_bytes(b"a mask")
    os.link(tmp_path / "first.png", hard)
    inputs = [tmp_path / "frames", tmp_path / "out.pth", tmp_path / "out2", None]
    runs.refuse_overlap(tmp_path / "out", inputs)  # a shared prefix is not a folder
    runs.refuse_overlap(tmp_path / "results" / "out", inputs)
    with pytest.raises(ValueError, match="hard.png is the input .*first.png"):
        runs.refuse_overlap(hard, [tmp_path / "first.png"], "the export path")  # one file
