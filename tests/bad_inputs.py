"""The bad-input tables' machinery; the tables are `tests/test_bad_inputs_*.py`, one per
layer (io, labels, session, models, cli).

Each row runs through the API and through the `sfcprop` command. The API raises the row's
error type with a message saying what was wrong (and what is expected); the command prints
exactly one `sfcprop: error:` line holding the same words (or its own, `cli_message`),
exits 1 (2 for usage errors, argparse's line) and leaves nothing behind: no output folder,
no parent folder made for it, no staging folder, no lock file, the inputs untouched."""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from toys import PooledColour

import sfcprop
from sfcprop import io
from sfcprop.apps import cli
from sfcprop.bench.synthetic import generate_clip
from sfcprop.models import hub

TOY = "toys:PooledColour"  # tests/toys.py, importable while pytest runs
NO_CUDA = not torch.cuda.is_available()

try:  # the test extra brings hypothesis; without it only the property tests skip
    from hypothesis import HealthCheck, settings

    PROPERTY = settings(
        max_examples=150,
        deadline=None,
        database=None,  # no .hypothesis folder in the working tree
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
except ImportError:
    PROPERTY = None


@dataclass
class Run:
    """What a row runs: `api()` (None: no API for it) and the command's argv (None: the
    command has no such input); `--out` is added unless argv gives one; `during`: a
    context the command runs in."""

    api: Callable[[], object] | None
    argv: list | None
    during: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext


@dataclass(frozen=True)
class Case:
    name: str
    error: type[BaseException]
    message: str
    build: Callable[[Inputs], Run]
    cli_message: str | None = None
    code: int = 1


def case_id(case: Case) -> str:
    return case.name


@functools.cache
def good_clip():
    """The good video of every row (5 frames of 48 x 80, two objects)."""
    return generate_clip(num_frames=5, height=48, width=80, seed=3)


@dataclass
class Inputs:
    """Good inputs in a temporary folder, and the bad ones rows make from them."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    clip: object = field(default_factory=good_clip)
    out: Path = field(init=False)

    def __post_init__(self) -> None:
        self.out = self.tmp / "results" / "out"
        self.frames = self.folder("frames", list(self.clip.frames))
        self.mask = self.tmp / "first.png"
        io.write_mask(self.mask, self.clip.masks[0])
        self.points = self.tmp / "points.json"
        self.points.write_text("[[10, 10], [40, 20]]")

    # ------------------------------------------------------------------ inputs

    def folder(self, name: str, frames: list, names: list[str] | None = None) -> Path:
        folder = self.tmp / name
        folder.mkdir()
        for i, f in enumerate(frames):
            stem = names[i] if names else f"f{i}.png"
            Image.fromarray(f.permute(1, 2, 0).numpy()).save(folder / stem)
        return folder

    def file(self, name: str, data: bytes | str = b"") -> Path:
        path = self.tmp / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def npy(self, name: str, array: np.ndarray) -> Path:
        np.save(self.tmp / name, array)
        return self.tmp / name

    def png(self, name: str, array: np.ndarray, mode: str | None = None, **kw) -> Path:
        Image.fromarray(array, mode).save(self.tmp / name, **kw)
        return self.tmp / name

    def mat(self, name: str, *elements: tuple[int, bytes]) -> Path:
        """A MATLAB v5 file of raw `(type, body)` data elements."""
        head = b"MATLAB 5.0 MAT-file, test_bad_inputs".ljust(116) + bytes(8) + b"\x00\x01IM"
        body = b"".join(
            t.to_bytes(4, "little") + len(b).to_bytes(4, "little") + b for t, b in elements
        )
        return self.file(name, head + body)

    def trunk_state(self, dtype=None) -> dict[str, torch.Tensor]:
        import torchvision

        state = torchvision.models.resnet18().state_dict()
        state = {k: v for k, v in state.items() if re.match(r"(conv1|bn1|layer[123])\.", k)}
        if dtype is not None:
            state["conv1.weight"] = state["conv1.weight"].to(dtype)
        return state

    def corrupt_checkpoint(self) -> Path:
        """`broken.pth`: a trunk's checkpoint cut after 5000 bytes."""
        torch.save(self.trunk_state(), self.tmp / "broken.pth")
        return self.file("broken.pth", (self.tmp / "broken.pth").read_bytes()[:5000])

    def offline(self) -> None:
        """Weights that are not cached and cannot be downloaded."""

        def unavailable(source, *args, **kwargs):
            raise hub.WeightsUnavailableError(
                f"{source.filename} is not cached and cannot be downloaded (offline)"
            )

        self.monkeypatch.setattr(hub, "fetch", unavailable)

    def davis(self) -> Path:
        from test_evaluate import tiny_davis

        return tiny_davis(self.tmp / "DAVIS", seqs=("a",))

    # ------------------------------------------------------------------ runs

    def propagate(self, frames=None, mask=None, backbone=TOY, flags=(), **params) -> Run:
        frames = self.frames if frames is None else frames
        mask = self.mask if mask is None else mask
        net = PooledColour().eval() if backbone == TOY else backbone
        argv = None
        if isinstance(frames, Path) and isinstance(mask, Path) and isinstance(backbone, str):
            argv = ["propagate", frames, mask, "--backbone", backbone, *_flags(params), *flags]
        return Run(lambda: sfcprop.propagate(frames, mask, net, **params), argv)

    def track(self, points=None, frames=None, flags=(), **params) -> Run:
        frames = self.frames if frames is None else frames
        points = self.points if points is None else points

        def api():
            given = io.read_points(points)[0] if isinstance(points, Path) else points
            return sfcprop.track_keypoints(frames, given, PooledColour().eval(), **params)

        argv = None
        if isinstance(points, Path):
            argv = ["track", frames, points, "--backbone", TOY, *_flags(params), *flags]
        return Run(api, argv)

    def backbone(self, name, weights=None) -> Run:
        """`sfcprop.backbone(name, weights=...)`, and propagate with that --backbone."""
        api_weights = "default" if weights is None else weights
        flags = [] if weights is None else ["--weights", weights]
        run = self.propagate(backbone=str(name), flags=flags)
        return Run(lambda: sfcprop.backbone(name, weights=api_weights), run.argv)

    def command(self, *argv) -> Run:
        return Run(None, list(argv))

    def eval(self, api: Callable[[Path], object] | None, *argv, root: Path | None = None) -> Run:
        """`sfcprop eval davis` of a tiny DAVIS folder (or `root`); `api(root)`."""
        root = self.davis() if root is None else root
        call = None if api is None else (lambda: api(root))
        return Run(call, ["eval", "davis", "--root", root, *argv, "--out", self.out, "--quiet"])


def _flags(params: dict) -> list[str]:
    out = []
    for k, v in params.items():
        value = "x".join(map(str, v)) if isinstance(v, tuple) else str(v)
        out += [f"--{k.replace('_', '-')}", value]
    return out


def no_cuda(run: Callable[[], Run]) -> Run:
    """A row about a missing CUDA device: skipped where torch sees one."""
    if not NO_CUDA:
        pytest.skip("torch sees a CUDA device here")
    return run()


def _tree(root: Path) -> list[tuple[str, int]]:
    """Every path under `root` with its size (-1: a folder)."""
    return sorted(
        (str(p.relative_to(root)), -1 if p.is_dir() else p.stat().st_size) for p in root.rglob("*")
    )


def check(case: Case, w: Inputs, capsys: pytest.CaptureFixture) -> None:
    """Run a row through the API and the command; the policy of the module docstring."""
    run = case.build(w)
    assert run.api is not None or run.argv is not None
    if run.api is not None:
        with pytest.raises(case.error, match=re.escape(case.message)):
            run.api()
    if run.argv is None:
        return
    argv = [str(a) for a in run.argv]
    if "--out" not in argv:
        argv += ["--out", str(w.out)]
    with run.during():
        before = _tree(w.tmp)
        try:
            rc = cli.main(argv)
        except SystemExit as e:  # argparse's usage errors
            rc = e.code
        err = capsys.readouterr().err
        after = _tree(w.tmp)
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert rc == case.code and len(lines) == 1 and "Traceback" not in err, err
    prefix = "sfcprop: error: " if case.code == 1 else f"sfcprop {argv[0]}: error: "
    assert lines[0].startswith(prefix), lines[0]
    assert (case.cli_message or case.message) in lines[0], lines[0]
    assert after == before  # nothing made, nothing removed, the inputs untouched
    assert not (w.tmp / "pwned").exists()
