"""Installing sfcprop: no upper cap on torch for users (the project's own pin lives in a
constraints file), and an install that works from the folder holding a clone named
`sfcprop` and ships the model.

The install tests build the repository's wheels through the build hooks that pip calls
(PEP 517 `build_wheel`, PEP 660 `build_editable`, with this environment's setuptools, no
network) and unpack them into fresh virtualenvs as pip would (about 15 s). Set
`SFCPROP_TEST_PIP=1` to also run real `pip install -e` / `pip install .` into fresh
virtualenvs (pip builds in isolation, so it needs setuptools from an index).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
MODEL = "fc-r18-sfcprop.safetensors"
SOURCES = ("pyproject.toml", "setup.py", "README.md", "sfcprop", "weights")

# Run in a fresh interpreter from the folder that holds the clone: where the package and
# the shipped model come from.
CHECK = f"""
import json, sfcprop
from sfcprop.models.registry import shipped_weights
print(json.dumps({{"file": sfcprop.__file__, "propagate": callable(sfcprop.propagate),
                  "weights": str(shipped_weights({MODEL!r}))}}))
"""


# --------------------------------------------------------------------------- requirements


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
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


# --------------------------------------------------------------------------- installs


def _copy_clone(tmp_path: Path) -> Path:
    """The sources a build needs, in `tmp_path/sfcprop` (the usual name of a clone)."""
    clone = tmp_path / "sfcprop"
    clone.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        src = REPO / name
        if not src.exists():
            continue
        if src.is_dir():
            shutil.copytree(src, clone / name, ignore=ignore)
        else:
            shutil.copy2(src, clone / name)
    return clone


def _build(clone: Path, hook: str, out: Path) -> Path:
    """Run a setuptools build hook (what pip runs) in `clone`; the file it writes."""
    pytest.importorskip("setuptools", "68", reason="the build hooks need setuptools >= 68")
    out.mkdir(exist_ok=True)
    code = f"from setuptools import build_meta; print(build_meta.{hook}({str(out)!r}))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=clone, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out / done.stdout.strip().splitlines()[-1]


def _venv(path: Path, pip: bool = False) -> tuple[Path, Path]:
    """A fresh virtualenv (without pip unless asked): (its python, its site-packages)."""
    flags = [] if pip else ["--without-pip"]
    subprocess.run([sys.executable, "-m", "venv", *flags, str(path)], check=True)
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return python, Path(site)


def _add_dependencies(site: Path) -> None:
    """torch, numpy ... from this environment, after what the venv itself holds."""
    outer = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    (site / "zz-dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(outer)))


def _check(python: Path, cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [str(python), "-c", CHECK], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_editable_install_imports_from_the_folder_holding_the_clone(tmp_path):
    clone = _copy_clone(tmp_path)
    wheel = _build(clone, "build_editable", tmp_path / "dist")
    python, site = _venv(tmp_path / "venv")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)  # what pip does with an editable wheel
    _add_dependencies(site)
    found = _check(python, cwd=tmp_path)  # where `./sfcprop` is the clone, not the package
    assert found["file"] == str(clone / "sfcprop" / "__init__.py") and found["propagate"]
    assert found["weights"] == str(clone / "weights" / MODEL)


def test_wheel_and_sdist_ship_the_model(tmp_path):
    clone = _copy_clone(tmp_path)
    wheel = _build(clone, "build_wheel", tmp_path / "dist")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert {f"sfcprop/weights/{n}" for n in ("__init__.py", MODEL, "MODEL_CARD.md")} <= names
        assert not [n for n in names if n.startswith("weights/")]  # no top-level package
        python, site = _venv(tmp_path / "venv")
        z.extractall(site)
    _add_dependencies(site)
    found = _check(python, cwd=tmp_path)
    assert found["file"] == str(site / "sfcprop" / "__init__.py") and found["propagate"]
    assert found["weights"] == str(site / "sfcprop" / "weights" / MODEL)
    shipped = Path(found["weights"]).read_bytes()
    assert shipped == (REPO / "weights" / MODEL).read_bytes()
    sdist = _build(clone, "build_sdist", tmp_path / "sdist")
    with tarfile.open(sdist) as tar:
        assert any(n.endswith(f"/weights/{MODEL}") for n in tar.getnames())


@pytest.mark.skipif(
    os.environ.get("SFCPROP_TEST_PIP") != "1", reason="real pip installs: set SFCPROP_TEST_PIP=1"
)
@pytest.mark.parametrize("editable", [True, False], ids=["editable", "regular"])
def test_pip_install(tmp_path, editable):
    clone = _copy_clone(tmp_path)
    python, site = _venv(tmp_path / "venv", pip=True)
    target = ["-e", str(clone)] if editable else [str(clone)]
    pip = [str(python), "-m", "pip", "install", "-q", "--no-deps", *target]
    subprocess.run(pip, check=True, timeout=600)
    _add_dependencies(site)  # after pip, so that it never sees this environment's packages
    found = _check(python, cwd=tmp_path)
    root = clone if editable else site / "sfcprop"
    assert found["file"] == str((clone if editable else site) / "sfcprop" / "__init__.py")
    assert found["weights"] == str(root / "weights" / MODEL) and found["propagate"]
