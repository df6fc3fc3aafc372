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
