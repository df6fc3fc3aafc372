"""Installing sfcprop: no upper cap on torch for users (the project's own pin lives in a
constraints file)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- requirements


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_torch_is_not_capped_for_users():
    reqs = {r.name: r for r in map(Requirement, _pyproject()["project"]["dependencies"])}
    for name in ("torch", "torchvision"):
        caps = [s for s in reqs[name].specifier if s.operator in ("<", "<=", "==", "~=", "===")]
        assert not caps, f"{name} is capped for every user: {reqs[name]}"


def test_the_project_pins_torch_through_a_constraints_file():
    pins = {}
    for line in (REPO / ".ci" / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            pins[req.name] = str(req.specifier)
    assert set(pins) >= {"torch", "torchvision"}
    assert all(p.startswith("==") for p in pins.values()), pins
    run = (REPO / ".ci" / "run").read_text()
    assert 'PIP_CONSTRAINT="$PWD/.ci/constraints.txt"' in run
    assert run.index("PIP_CONSTRAINT") < run.index("pip install")


def test_ci_runs_the_readme_commands_as_they_are():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"## Install.*?```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert commands == ['pip install -e ".[test]" && sfcprop demo', "python -m pytest -q"]
    run = (REPO / ".ci" / "run").read_text()
    assert 'pip install -q -e ".[test]" && sfcprop demo' in run
    assert "\npython -m pytest -q\n" in run


def test_readme_says_how_to_get_the_cpu_build_and_the_pinned_one():
    install = (REPO / "README.md").read_text().split("## Install")[1].split("\n## ")[0]
    assert "--index-url https://download.pytorch.org/whl/cpu" in install
    assert 'pip install -c .ci/constraints.txt -e ".[test]"' in install
