"""`sfcprop train-fc --help` names the command it was called by."""

import subprocess
import sys
from pathlib import Path

import pytest

from sfcprop.apps import cli

REPO = Path(__file__).resolve().parents[1]


def _usage(text: str) -> str:
    return text.strip().splitlines()[0]


def test_train_fc_help_through_the_sfcprop_command(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/sfcprop", "train-fc", "--help"])
    with pytest.raises(SystemExit) as done:
        cli.main()
    out = capsys.readouterr().out
    assert done.value.code == 0
    assert _usage(out).startswith("usage: sfcprop train-fc ")
    assert "\n  sfcprop train-fc --image-root data/frames" in out  # the examples too
    assert "python -m sfcprop.train" not in out
    assert "--preload-short-side 320 \\\n      --dense-objective infonce" in out  # one per line


def test_python_m_sfcprop_train_help_keeps_its_name():
    done = subprocess.run(
        [sys.executable, "-m", "sfcprop.train", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert _usage(done.stdout).startswith("usage: python -m sfcprop.train ")
    assert "\n  python -m sfcprop.train --export runs/fc/last.pt" in done.stdout


def test_an_explicit_prog_wins(capsys):
    from sfcprop.train.cli import main

    with pytest.raises(SystemExit):
        main(["--help"], prog="mytool train")
    assert _usage(capsys.readouterr().out).startswith("usage: mytool train ")


def test_export_onto_its_checkpoint_is_one_error_line_of_python_m(tmp_path):
    """`python -m sfcprop.train` follows the error policy too: one line, exit 1, and the
    checkpoint as it was."""
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(b"a training checkpoint")
    done = subprocess.run(
        [sys.executable, "-m", "sfcprop.train", "--export", str(ckpt), str(tmp_path / "last.pt")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and done.stderr == (
        f"sfcprop: error: the export path {ckpt} is the input {ckpt}; write the results elsewhere\n"
    )
    assert ckpt.read_bytes() == b"a training checkpoint"


def test_export_to_a_folder_is_refused_before_any_work(tmp_path, capsys):
    from sfcprop.train.cli import main

    (tmp_path / "trunks").mkdir()
    assert main(["--export", str(tmp_path / "missing.pt"), str(tmp_path / "trunks")]) == 1
    assert capsys.readouterr().err == (
        f"sfcprop: error: the export path {tmp_path / 'trunks'} is a folder; give a file "
        "(.safetensors)\n"
    )  # not "no such checkpoint": refused before the checkpoint is read


def test_a_resumed_run_may_write_where_its_checkpoint_lies(tmp_path):
    """--resume runs/fc/last.pt --out-dir runs/fc is how a run continues; --init there is
    refused (last.pt would replace it), as are --out-dir folders of the images."""
    from sfcprop.train.cli import build_parser, check_training

    images, run = tmp_path / "images", tmp_path / "runs" / "fc"
    args = ["--image-root", str(images), "--out-dir", str(run)]
    check_training(build_parser().parse_args([*args, "--resume", str(run / "last.pt")]))
    with pytest.raises(ValueError, match=r"--out-dir .* holds the input .*last\.pt"):
        check_training(build_parser().parse_args([*args, "--init", str(run / "last.pt")]))
    for out in (images, images / "runs", tmp_path):
        with pytest.raises(ValueError, match="--out-dir"):
            check_training(
                build_parser().parse_args(["--image-root", str(images), "--out-dir", str(out)])
            )
