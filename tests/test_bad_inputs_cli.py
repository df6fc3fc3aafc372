"""Bad inputs only the command line has: folders of sparse masks, `--gt`, `--device`,
`--weights`, `--backbone module:Class`, `--out` (of every command: is, holds or lies inside
an input), `--fps`, `--max-memory`, point names, `sfcprop demo`, `sfcprop eval` (split
lists) and `sfcprop train-fc`; each row through the command (and the API where there is
one, `bad_inputs.check`). Last, a check over the tables of every layer together."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bad_inputs import TOY, Case, Inputs, Run, case_id, check, no_cuda

import sfcprop
from sfcprop import io
from sfcprop.apps.demo import run_demo
from sfcprop.bench import datasets
from sfcprop.io import runs
from sfcprop.models import hub
from sfcprop.train import export_trunk

pytestmark = pytest.mark.usefixtures("one_thread")


def _mask_folder(w: Inputs, names: list[str]) -> Path:
    folder = w.tmp / "masks"
    folder.mkdir()
    for name in names:
        io.write_mask(folder / name, w.clip.masks[0])
    return folder


def _gt(w: Inputs) -> Path:
    scipy_io = pytest.importorskip("scipy.io")
    pos = np.full((2, 15, 5), 5.0)
    scipy_io.savemat(w.tmp / "gt.mat", {"pos_img": pos})
    return w.tmp / "gt.mat"


def _locked(w: Inputs) -> Run:
    """--out locked by another run (here: by the test, while the command runs)."""

    def api():
        with runs.locked(w.out), runs.locked(w.out):
            pass

    return Run(api, w.propagate().argv, during=lambda: runs.locked(w.out))


def _out_file(w: Inputs) -> Run:
    w.file("out.txt", "results")
    return w.command("propagate", w.frames, w.mask, "--out", w.tmp / "out.txt", "--backbone", TOY)


def _earlier_result(w: Inputs) -> Path:
    (w.tmp / "done").mkdir()
    (w.tmp / "done" / "f0.png").write_bytes(b"an earlier result")
    return w.tmp / "done"


def _out_not_empty(w: Inputs) -> Run:
    return w.command("propagate", w.frames, w.mask, "--out", _earlier_result(w), "--backbone", TOY)


def _in_out(w: Inputs, name: str, data: bytes = b"an input") -> Path:
    """A file `name` inside --out (made, with an earlier result beside it: --force is
    needed to replace it)."""
    w.out.mkdir(parents=True)
    (w.out / "f0.png").write_bytes(b"an earlier result")
    return w.file(str((w.out / name).relative_to(w.tmp)), data)


def _split(w: Inputs, task: str, *lines: str) -> Run:
    """`sfcprop eval <task>` of a dataset whose split list holds `lines`."""
    root = w.tmp / task.upper()
    if task == "davis":
        w.davis()
        (w.tmp / "DAVIS" / "ImageSets" / "2017" / "val.txt").write_text("\n".join(lines) + "\n")
        return w.command("eval", "davis", "--root", w.tmp / "DAVIS", "--backbone", "fc")
    for folder in ("Images", "Annotations/Category_ids", "lists"):
        (root / folder).mkdir(parents=True)
    split = w.file(f"{task}.txt", "\n".join(lines) + "\n")
    return w.command("eval", task, "--root", root, "--split", split, "--backbone", "fc")


def _points_named(w: Inputs, names: list) -> Run:
    points = w.file("named.json", json.dumps({"points": [[10, 10], [40, 20]], "names": names}))
    return w.track(points=points)


CASES = [
    # ------------------------------------------------------------------ inputs
    Case(
        "sparse masks: a name that matches no frame",
        ValueError,
        "the mask f7.png names no frame of the video: masks are named like the frames they "
        "annotate (f0, f1 ...)",
        lambda w: w.command(
            "propagate", w.frames, _mask_folder(w, ["f0.png", "f7.png"]), "--backbone", TOY
        ),
    ),
    Case(
        "sparse masks: a folder without masks",
        ValueError,
        "holds no masks (.png or .npy named like the frames)",
        lambda w: w.command("propagate", w.frames, _mask_folder(w, []), "--backbone", TOY),
    ),
    Case(
        "--gt of another joint count",
        ValueError,
        "--gt has 15 joints but",
        lambda w: w.command("track", w.frames, w.points, "--gt", _gt(w), "--backbone", TOY),
    ),
    Case(
        "no CUDA device",
        ValueError,
        "--device cuda: torch sees no CUDA device",
        lambda w: no_cuda(lambda: w.command("propagate", w.frames, w.mask, "--device", "cuda")),
    ),
    Case(
        "--weights with a checkpoint file as --backbone",
        ValueError,
        "--weights goes with a registry name as --backbone",
        lambda w: w.command(
            "propagate",
            w.frames,
            w.mask,
            "--backbone",
            w.corrupt_checkpoint(),
            "--weights",
            w.tmp / "broken.pth",
        ),
    ),
    Case(
        "backbone module that does not import",
        ValueError,
        "cannot import backbone 'nosuchmodule:Net'",
        lambda w: w.command("propagate", w.frames, w.mask, "--backbone", "nosuchmodule:Net"),
    ),
    # ------------------------------------------------------------------ --out
    Case(
        "--out is the input folder",
        ValueError,
        "is the input",
        lambda w: w.command("propagate", w.frames, w.mask, "--out", w.frames, "--backbone", TOY),
        cli_message="frames is the input",
    ),
    Case(
        "--out inside the frames folder",
        ValueError,
        "is inside the input",
        lambda w: w.command(
            "propagate", w.frames, w.mask, "--out", w.frames / "masks", "--backbone", TOY
        ),
        cli_message="masks is inside the input",
    ),
    Case(
        "--force --out holds the --weights file",
        ValueError,
        "holds the input",
        lambda w: w.command(
            "propagate",
            w.frames,
            w.mask,
            "--backbone",
            "imagenet-r18",
            "--weights",
            _in_out(w, "w.pth"),
            "--force",
        ),
        cli_message="w.pth; write the results elsewhere",
    ),
    Case(
        "--force --out holds the --backbone file",
        ValueError,
        "holds the input",
        lambda w: w.command(
            "propagate", w.frames, w.mask, "--backbone", _in_out(w, "net.pth"), "--force"
        ),
        cli_message="net.pth; write the results elsewhere",
    ),
    Case(
        "track: --force --out holds the --gt file",
        ValueError,
        "holds the input",
        lambda w: w.command(
            "track", w.frames, w.points, "--gt", _in_out(w, "gt.mat"), "--backbone", TOY, "--force"
        ),
        cli_message="gt.mat; write the results elsewhere",
    ),
    Case(
        "track: --out is the points file",
        ValueError,
        "is the input",
        lambda w: w.command("track", w.frames, w.points, "--out", w.points, "--backbone", TOY),
        cli_message="points.json is the input",
    ),
    Case(
        "--out is a file",
        ValueError,
        "exists and is not a folder",
        _out_file,
    ),
    Case(
        "--out holds results, no --force",
        ValueError,
        "exists and is not empty; pass --force to replace it",
        _out_not_empty,
    ),
    Case(
        "--out being written by another run",
        runs.OutputBusyError,
        "is being written by another sfcprop run",
        _locked,
    ),
    # ------------------------------------------------------------------ demo
    Case(
        "demo: --out holds results, no --force",
        ValueError,
        "exists and is not empty; pass --force to replace it",
        lambda w: w.command("demo", "--out", _earlier_result(w), "--frames", "3"),
    ),
    Case(
        "demo: --force --out holds the --backbone file",
        ValueError,
        "holds the input",
        lambda w: w.command("demo", "--backbone", _in_out(w, "fc.pth"), "--force"),
        cli_message="fc.pth; write the results elsewhere",
    ),
    Case(
        "demo: too few frames to score",
        ValueError,
        "the demo needs num_frames >= 3 (the first and last frames are not scored), got 1",
        lambda w: Run(lambda: run_demo(w.out, num_frames=1), ["demo", "--frames", "1"]),
        cli_message="argument --frames: expected a whole number of frames >= 3",
        code=2,
    ),
    # ------------------------------------------------------------------ numbers
    Case(
        "--max-memory 1e400 (infinite)",
        ValueError,
        "max_memory must be a finite positive number of bytes or a size like '4GiB'",
        lambda w: w.propagate(max_memory="1e400"),
        code=2,
    ),
    Case(
        "--fps inf",
        ValueError,
        "argument --fps: expected a frame rate from 0.002 to 1000",
        lambda w: w.command("propagate", w.frames, w.mask, "--backbone", TOY, "--fps", "inf"),
        code=2,
    ),
    Case(
        "--fps 1e-9 --gif (longer than a GIF frame can last)",
        ValueError,
        "argument --fps: expected a frame rate from 0.002 to 1000 (a GIF frame lasts 1 ms to "
        "655 s), got '1e-9'",
        lambda w: w.command(
            "track", w.frames, w.points, "--backbone", TOY, "--gif", "--fps", "1e-9"
        ),
        code=2,
    ),
    # ------------------------------------------------------------------ point names
    Case(
        "points: a carriage return in a name",
        ValueError,
        "the name of point 1, 'wr\\rist', holds the control character '\\r'; names are one "
        "line of printable text",
        lambda w: _points_named(w, ["head", "wr\rist"]),
    ),
    Case(
        "points: a name that is not text",
        ValueError,
        "the name of point 0 must be text, got 7",
        lambda w: _points_named(w, [7, "hand"]),
    ),
    # ------------------------------------------------------------------ eval
    Case(
        "eval: unknown backbone",
        KeyError,
        "'fcc' is neither a registered backbone",
        lambda w: w.eval(lambda root: sfcprop.backbone("fcc"), "--backbone", "fcc"),
    ),
    Case(
        "eval: bad --root",
        FileNotFoundError,
        "missing DAVIS root folder",
        lambda w: w.eval(datasets.davis, "--backbone", "fc", root=w.tmp / "none"),
    ),
    Case(
        "eval: unknown sequence",
        KeyError,
        "unknown sequence(s) zz in Davis2017",
        lambda w: w.eval(
            lambda root: datasets.davis(root, sequences=["zz"]),
            "--backbone",
            "fc",
            "--sequences",
            "zz",
        ),
    ),
    Case(
        "eval: weights unavailable",
        hub.WeightsUnavailableError,
        "is not cached and cannot be downloaded (offline)",
        lambda w: w.offline() or w.eval(lambda root: sfcprop.backbone("crw"), "--backbone", "crw"),
    ),
    Case(
        "eval: --out inside --root",
        ValueError,
        "is inside the input",
        lambda w: w.command(
            "eval", "davis", "--root", w.davis(), "--backbone", "fc", "--out", w.tmp / "DAVIS" / "r"
        ),
        cli_message="DAVIS/r is inside the input",
    ),
    Case(
        "eval: --out is the --results folder",
        ValueError,
        "is the input",
        lambda w: w.command(
            "eval", "davis", "--root", w.davis(), "--results", w.tmp / "res", "--out", w.tmp / "res"
        ),
        cli_message="res is the input",
    ),
    Case(
        "eval: an absolute path in a DAVIS split list",
        ValueError,
        "is not a sequence name",
        lambda w: _split(w, "davis", "a", str(w.tmp / "DAVIS" / "Annotations" / "480p" / "a")),
        cli_message="val.txt line 2: '/",
    ),
    Case(
        "eval: '..' in a DAVIS split list",
        ValueError,
        "is not a sequence name",
        lambda w: _split(w, "davis", "# sequences", "", "a", "../../x"),
        cli_message="val.txt line 4: '../../x' is not a sequence name (expected a plain folder "
        "name, no '/'; not absolute, no '\\', not '.' or '..')",
    ),
    Case(
        "eval: '..' in a JHMDB split list",
        ValueError,
        "is not a sequence name",
        lambda w: _split(w, "jhmdb", "catch/clip1", "catch/.."),
        cli_message="jhmdb.txt line 2: 'catch/..' is not a sequence name (expected "
        "<action>/<clip>, two plain folder names",
    ),
    Case(
        "eval: a VIP split line that names '..'",
        ValueError,
        "is not a sequence name",
        lambda w: _split(w, "vip", "videos/v1", "videos/v2/.."),
        cli_message="vip.txt line 2: '..' is not a sequence name",
    ),
    # ------------------------------------------------------------------ train-fc
    Case(
        "train-fc: --export to the checkpoint itself",
        ValueError,
        "is the input",
        lambda w: Run(
            lambda: export_trunk(w.tmp / "last.pt", w.tmp / "last.pt"),
            ["train-fc", "--export", w.file("last.pt", b"a checkpoint"), w.tmp / "last.pt"],
        ),
        cli_message="the export path",
    ),
    Case(
        "train-fc: --export into the --bn-root images",
        ValueError,
        "is inside the input",
        lambda w: w.command(
            "train-fc",
            "--export",
            w.file("last.pt", b"a checkpoint"),
            w.frames / "fc.safetensors",
            "--bn-root",
            w.frames,
        ),
        cli_message="fc.safetensors is inside the input",
    ),
    Case(
        "train-fc: --out-dir is the --image-root",
        ValueError,
        "is the input",
        lambda w: w.command("train-fc", "--image-root", w.frames, "--out", w.frames),
        cli_message="--out-dir",
    ),
    Case(
        "train-fc: --init inside --out-dir",
        ValueError,
        "holds the input",
        lambda w: w.command(
            "train-fc", "--image-root", w.frames, "--init", _in_out(w, "last.pt"), "--out", w.out
        ),
        cli_message="last.pt; write the results elsewhere",
    ),
    Case(
        "eval: no CUDA device",
        ValueError,
        "--device cuda: torch sees no CUDA device",
        lambda w: no_cuda(lambda: w.eval(None, "--backbone", "fc", "--device", "cuda")),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_bad_input(case: Case, tmp_path, monkeypatch, capsys):
    check(case, Inputs(tmp_path, monkeypatch), capsys)


def test_the_table_covers_api_and_command():
    """The tables of every layer together: at least 50 rows, no name twice."""
    import test_bad_inputs_io
    import test_bad_inputs_labels
    import test_bad_inputs_models
    import test_bad_inputs_session

    layers = [test_bad_inputs_io, test_bad_inputs_labels, test_bad_inputs_session]
    cases = [c for m in [*layers, test_bad_inputs_models] for c in m.CASES] + CASES
    assert len(cases) >= 50 and len({c.name for c in cases}) == len(cases)
