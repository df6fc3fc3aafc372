"""Bad inputs only the command line has: folders of sparse masks, `--gt`, `--device`,
`--weights`, `--backbone module:Class`, `--out`, and `sfcprop eval`; each row through the
command (and the API where there is one, `bad_inputs.check`). Last, a check over the
tables of every layer together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bad_inputs import TOY, Case, Inputs, Run, case_id, check, no_cuda

import sfcprop
from sfcprop import io
from sfcprop.bench import datasets
from sfcprop.io import runs
from sfcprop.models import hub

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


def _out_not_empty(w: Inputs) -> Run:
    (w.tmp / "done").mkdir()
    (w.tmp / "done" / "f0.png").write_bytes(b"an earlier result")
    return w.command("propagate", w.frames, w.mask, "--out", w.tmp / "done", "--backbone", TOY)


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
        "is an input; write the results elsewhere",
        lambda w: w.command("propagate", w.frames, w.mask, "--out", w.frames, "--backbone", TOY),
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
