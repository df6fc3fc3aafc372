"""The wheel ships every subpackage (the shipped model: tests/test_install.py builds a wheel)."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_packaged():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "sfcprop").rglob("__init__.py")
    }
    assert found <= listed, f"missing from pyproject packages: {sorted(found - listed)}"


def test_the_command_starts_without_torch_so_its_error_policy_covers_start_up():
    """`import sfcprop` (and `sfcprop.apps.cli`) load torch only when a name needs it: Ctrl-C
    while torch loads then lands in the command's error policy (exit 130, one line)."""
    import subprocess
    import sys

    code = (
        "import sys, sfcprop, sfcprop.apps.cli; assert 'torch' not in sys.modules; "
        "sfcprop.Config; assert 'torch' not in sys.modules; sfcprop.propagate; "
        "assert 'torch' in sys.modules; "
        "print([n for n in sfcprop.__all__ if getattr(sfcprop, n, None) is None])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # every exported name loads
