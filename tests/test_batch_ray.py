"""`sfcprop batch --engine ray`: a local Ray (2 CPUs) with two actors gives the ids of the
serial run; without Ray the error names the extra. Ray is in the test extra, so CI runs
this (a local cluster starts in some seconds)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from test_batch import NAMES, TOY, make_dataset, read_out, summary

import sfcprop
from sfcprop.apps import cli

TESTS = Path(__file__).resolve().parent


def test_two_ray_actors_give_the_ids_of_the_serial_run(tmp_path):
    ray = pytest.importorskip("ray", reason='the Ray engine needs pip install "sfcprop[ray]"')
    data = make_dataset(tmp_path / "DAVIS", frames=4)
    serial = sfcprop.batch(data, tmp_path / "serial", TOY, progress=False)
    assert serial.ok and len(serial.rows) == 3
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    env = {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}  # toys.py for the actors
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env})
    try:
        report = sfcprop.batch(data, tmp_path / "ray", TOY, engine="ray", workers=2, progress=False)
    finally:
        ray.shutdown()
    assert report.ok and sorted(r.name for r in report.rows) == list(NAMES)
    got, want = read_out(tmp_path / "ray"), read_out(tmp_path / "serial")
    assert sorted(got) == list(NAMES)
    for name in NAMES:
        assert sorted(got[name]) == sorted(want[name])
        for stem, ids in want[name].items():
            assert np.array_equal(got[name][stem], ids), (name, stem)
    rows = summary(tmp_path / "ray")
    assert all(rows[n]["status"] == "ok" and rows[n]["frames"] == 4 for n in NAMES)


def test_without_ray_the_error_names_the_extra(tmp_path, monkeypatch, capsys):
    data = make_dataset(tmp_path / "DAVIS", frames=4)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    argv = ["batch", str(data), "--out", str(tmp_path / "out"), "--backbone", TOY]
    rc = cli.main([*argv, "--engine", "ray", "--workers", "2"])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert 'pip install "sfcprop[ray]"' in err
    assert not (tmp_path / "out").exists()  # refused before anything was written
