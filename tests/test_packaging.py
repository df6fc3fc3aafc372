"""The wheel ships every subpackage and the shipped model."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_and_the_weights_are_packaged():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "sfcprop").rglob("__init__.py")
    }
    assert found <= listed, f"missing from pyproject packages: {sorted(found - listed)}"
    assert config["package-dir"]["sfcprop.weights"] == "weights"
    patterns = config["package-data"]["sfcprop.weights"]
    assert "*.safetensors" in patterns and "*.md" in patterns
