"""Shared fixtures: where the read-only `shared/` folder (golden cases, data) lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    """`$SFCPROP_SHARED`, else `<repo>/../shared`."""
    return Path(os.environ.get("SFCPROP_SHARED", REPO.parent / "shared"))


def data_root() -> Path:
    """`$SFCPROP_DATA`, else `<shared>/data`."""
    return Path(os.environ.get("SFCPROP_DATA", shared_root() / "data"))


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    path = shared_root() / "golden"
    if not path.is_dir():
        pytest.skip(f"golden fixtures not found at {path} (set SFCPROP_SHARED)")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = data_root()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set SFCPROP_DATA)")
    return path


@pytest.fixture(scope="session")
def device() -> str:
    """Where device-aware tests run: `$SFCPROP_TEST_DEVICE` (e.g. cuda), else cpu."""
    import torch

    name = os.environ.get("SFCPROP_TEST_DEVICE", "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.fail(f"SFCPROP_TEST_DEVICE={name} but torch sees no CUDA device")
    return name


@pytest.fixture(scope="module")
def one_thread():
    """Small tensors: one torch thread is faster (no spin-waiting on a busy machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
