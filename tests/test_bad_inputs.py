"""Bad inputs, one table: each row through the API and through the `sfcprop` command.

The API raises the row's error type with a message saying what was wrong (and what is
expected); the command prints exactly one `sfcprop: error:` line holding the same words
(or its own, `cli_message`), exits 1 (2 for usage errors, argparse's line) and leaves
nothing behind: no output folder, no parent folder made for it, no staging folder, no
lock file, the inputs untouched. Then property-based tests (hypothesis) draw masks and
frames that a table would not think of."""

from __future__ import annotations

import contextlib
import math
import re
import zlib
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
from sfcprop.bench import datasets
from sfcprop.bench.synthetic import generate_clip
from sfcprop.core.budget import MemoryBudgetError
from sfcprop.io import runs
from sfcprop.models import hub
from sfcprop.models.checkpoints import CheckpointError

TOY = "toys:PooledColour"  # tests/toys.py, importable while pytest runs
NO_CUDA = not torch.cuda.is_available()

pytestmark = pytest.mark.usefixtures("one_thread")


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


class Payload:
    """Unpickling this would create a file: a stand-in for code execution."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@dataclass
class Inputs:
    """Good inputs in a temporary folder, and the bad ones rows make from them."""

    tmp: Path
    clip: object
    monkeypatch: pytest.MonkeyPatch
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


def _two_sizes(w: Inputs) -> Path:
    frames = list(w.clip.frames)
    frames[3] = frames[3][:, :40]
    return w.folder("mixed", frames)


def _junk_only(w: Inputs) -> Path:
    folder = w.tmp / "junk"
    (folder / "x.jpg").mkdir(parents=True)
    (folder / "._f0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (folder / ".f1.png").write_bytes(b"hidden")
    return folder


def _corrupt_frame(w: Inputs) -> Path:
    (w.frames / "f9.png").write_bytes(b"\x89PNG broken")  # the last frame: after 5 masks
    return w.frames


def _mask_folder(w: Inputs, names: list[str]) -> Path:
    folder = w.tmp / "masks"
    folder.mkdir()
    for name in names:
        io.write_mask(folder / name, w.clip.masks[0])
    return folder


def _pickle_bomb(w: Inputs) -> Path:
    import torchvision

    state = {
        "online_encoder." + k: v for k, v in torchvision.models.resnet18().state_dict().items()
    }
    path = w.tmp / "evil.pth"
    torch.save({"model": state, "args": Payload(str(w.tmp / "pwned"))}, path)
    return path


def _integer_weights(w: Inputs) -> Path:
    from safetensors.torch import save_file

    save_file(w.trunk_state(torch.int64), w.tmp / "int.safetensors")
    return w.tmp / "int.safetensors"


def _r50_weights(w: Inputs) -> Path:
    import torchvision

    torch.save(torchvision.models.resnet50().state_dict(), w.tmp / "r50.pth")
    return w.tmp / "r50.pth"


def _corrupt_checkpoint(w: Inputs) -> Path:
    torch.save(w.trunk_state(), w.tmp / "broken.pth")
    return w.file("broken.pth", (w.tmp / "broken.pth").read_bytes()[:5000])


def _zip_bomb(w: Inputs) -> Path:
    z = zlib.compressobj(9)
    data = b"".join(z.compress(bytes(1 << 20)) for _ in range(64)) + z.flush()
    return w.mat("bomb.mat", (15, data))


def _needs_av(w: Inputs) -> None:
    pytest.importorskip("av")


def _no_cuda(run: Callable[[], Run]) -> Run:
    if not NO_CUDA:
        pytest.skip("torch sees a CUDA device here")
    return run()


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


RNG = np.random.default_rng(0)
PHOTO = RNG.integers(0, 256, (48, 80, 3), dtype=np.uint8)

CASES = [
    # ------------------------------------------------------------------ frames
    Case(
        "missing frames folder",
        FileNotFoundError,
        "no such folder of frames or video file",
        lambda w: w.propagate(frames=w.tmp / "nowhere"),
    ),
    Case(
        "empty folder",
        ValueError,
        "no image files (.jpg, .jpeg, .png",
        lambda w: w.propagate(frames=w.folder("empty", [])),
    ),
    Case(
        "folder of junk only (a folder x.jpg, ._ and dot files)",
        ValueError,
        "no image files",
        lambda w: w.propagate(frames=_junk_only(w)),
    ),
    Case(
        "a single image as frames",
        ValueError,
        "is a single image; give a folder of frames or a video file",
        lambda w: w.propagate(frames=w.frames / "f0.png"),
    ),
    Case(
        "corrupt image file",
        ValueError,
        "cannot read image",
        lambda w: w.propagate(frames=_corrupt_frame(w)),
    ),
    Case(
        "mixed frame sizes",
        ValueError,
        "frame 3 is (40, 80) (H, W) but the keyframes",
        lambda w: w.propagate(frames=_two_sizes(w)),
    ),
    Case(
        "two frames share a name",
        ValueError,
        "two frames share the name 'f0'",
        lambda w: w.propagate(
            frames=w.folder("dup", list(w.clip.frames[:2]), ["f0.png", "f0.jpg"])
        ),
    ),
    Case(
        "video the decoder rejects",
        ValueError,
        "cannot decode video",
        lambda w: (
            _needs_av(w)
            or w.propagate(frames=w.file("clip.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(500)))
        ),
    ),
    Case(
        "float frames in a list",
        TypeError,
        "cannot read a frame from ndarray float64 (48, 80, 3): a frame is a PIL image",
        lambda w: w.propagate(frames=[f.permute(1, 2, 0).numpy() / 255.0 for f in w.clip.frames]),
    ),
    Case(
        "frames tensor with 4 channels",
        ValueError,
        "frames as a tensor must be uint8 [T, 3, H, W], got torch.uint8",
        lambda w: w.propagate(frames=torch.cat([w.clip.frames, w.clip.frames[:, :1]], 1)),
    ),
    # ------------------------------------------------------------------ masks
    Case(
        "mask of another size",
        ValueError,
        "frame 0 is (48, 80) (H, W) but its mask is (40, 80)",
        lambda w: w.propagate(mask=w.npy("small.npy", w.clip.masks[0][:40].numpy())),
    ),
    Case(
        "JPEG mask",
        ValueError,
        "is a JPEG: its lossy compression gives every edge new values",
        lambda w: w.propagate(
            mask=w.png("m.jpg", (w.clip.masks[0].numpy() * 100).astype(np.uint8), quality=70)
        ),
    ),
    Case(
        "ids above 255",
        ValueError,
        "mask ids must be at most 255 (they are written as 8-bit palette PNGs), got 300",
        lambda w: w.propagate(mask=w.npy("m.npy", w.clip.masks[0].numpy().astype(np.int32) * 150)),
    ),
    Case(
        "negative ids",
        ValueError,
        "mask ids must be >= 0, got -",
        lambda w: w.propagate(mask=w.npy("m.npy", -w.clip.masks[0].numpy().astype(np.int16))),
    ),
    Case(
        "float mask",
        ValueError,
        "mask ids must be integers (or bool), got dtype float32",
        lambda w: w.propagate(mask=w.npy("m.npy", w.clip.masks[0].numpy().astype(np.float32))),
    ),
    Case(
        "mask without an object",
        ValueError,
        "the first mask holds no object: every pixel is background (id 0)",
        lambda w: w.propagate(mask=w.png("m.png", np.zeros((48, 80), np.uint8))),
    ),
    Case(
        "a photo as the mask",
        ValueError,
        "more than the 255 objects a mask can have: is it a photo",
        lambda w: w.propagate(mask=w.png("photo.png", PHOTO)),
    ),
    Case(
        "CMYK mask",
        ValueError,
        "is a CMYK image; a mask must be a palette (P), greyscale (L) or colour (RGB) PNG",
        lambda w: w.propagate(mask=_cmyk(w)),
    ),
    Case(
        "mask of 3 dimensions",
        ValueError,
        "a mask must be [H, W] ids or [H, W, 3] colours, got shape (2, 48, 80)",
        lambda w: w.propagate(mask=w.npy("m.npy", np.ones((2, 48, 80), np.int64))),
    ),
    Case(
        "unreadable mask",
        ValueError,
        "cannot read mask",
        lambda w: w.propagate(mask=w.file("bad.png", b"garbage")),
    ),
    Case(
        "missing mask file",
        FileNotFoundError,
        "no such mask file",
        lambda w: w.propagate(mask=w.tmp / "none.png"),
    ),
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
    # ------------------------------------------------------------------ parameters
    Case(
        "temperature=nan",
        ValueError,
        "temperature must be a finite number > 0, got nan",
        lambda w: w.propagate(temperature=math.nan),
    ),
    Case(
        "radius=inf",
        ValueError,
        "radius must be a finite number > 0, got inf",
        lambda w: w.propagate(radius=math.inf),
    ),
    Case(
        "float topk",
        ValueError,
        "topk must be an integer >= 1, got 2.5",
        lambda w: w.propagate(topk=2.5),
        cli_message="argument --topk: invalid int value: '2.5'",
        code=2,
    ),
    Case(
        "negative context",
        ValueError,
        "context must be an integer >= 0, got -1",
        lambda w: w.propagate(context=-1),
    ),
    Case(
        "lam with one backbone",
        ValueError,
        "lam = 1.5 weighs the fine backbone against a semantic one; with one backbone it has "
        "no effect",
        lambda w: w.propagate(lam=1.5),
    ),
    Case(
        "unknown preset",
        ValueError,
        "unknown preset 'davos'; expected one of ['davis'",
        lambda w: w.propagate(preset="davos"),
        cli_message="argument --preset: invalid choice: 'davos'",
        code=2,
    ),
    Case(
        "size and short_side both",
        ValueError,
        "give size or short_side, not both",
        lambda w: w.propagate(size=(32, 32), short_side=20),
    ),
    Case(
        "a size of 0",
        ValueError,
        "size must be (H, W) of positive integers, got (0, 32)",
        lambda w: w.propagate(size=(0, 32)),
        cli_message="argument --size: sizes must be positive, got '0x32'",
        code=2,
    ),
    Case(
        "over max_memory",
        MemoryBudgetError,
        "max_memory = 97.7 KiB",
        lambda w: w.propagate(max_memory="100KB"),
    ),
    Case(
        "no CUDA device",
        ValueError,
        "--device cuda: torch sees no CUDA device",
        lambda w: _no_cuda(lambda: w.command("propagate", w.frames, w.mask, "--device", "cuda")),
    ),
    # ------------------------------------------------------------------ backbones
    Case(
        "unknown backbone",
        KeyError,
        "'fcc' is neither a registered backbone (fc, crw",
        lambda w: w.backbone("fcc"),
    ),
    Case(
        "malicious pickle checkpoint",
        CheckpointError,
        "refused",
        lambda w: w.backbone(_pickle_bomb(w)),
    ),
    Case(
        "integer-tensor weights",
        CheckpointError,
        "'conv1.weight' is int64",
        lambda w: w.backbone("imagenet-r18", _integer_weights(w)),
    ),
    Case(
        "weights of another architecture",
        ValueError,
        "holds a resnet50",
        lambda w: w.backbone("imagenet-r18", _r50_weights(w)),
    ),
    Case(
        "corrupt checkpoint",
        CheckpointError,
        "corrupt",
        lambda w: w.backbone(_corrupt_checkpoint(w)),
    ),
    Case(
        "missing weights file",
        FileNotFoundError,
        "checkpoint not found",
        lambda w: w.backbone("imagenet-r18", w.tmp / "none.pth"),
        cli_message="no such weights file",
    ),
    Case(
        "weights unavailable (offline, not cached)",
        hub.WeightsUnavailableError,
        "is not cached and cannot be downloaded (offline)",
        lambda w: w.offline() or w.backbone("crw"),
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
            _corrupt_checkpoint(w),
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
    Case(
        "backbone of another type",
        TypeError,
        "a backbone must be a Correspondence module or a registry name/path",
        lambda w: w.propagate(backbone=42),
    ),
    # ------------------------------------------------------------------ points
    Case(
        "points outside the frame",
        ValueError,
        "point 1 (x=500, y=20) is outside the 80x48 frame",
        lambda w: w.track(w.file("p.json", "[[10, 10], [500, 20]]")),
    ),
    Case(
        "missing points file",
        FileNotFoundError,
        "no such points file",
        lambda w: w.track(w.tmp / "none.json"),
    ),
    Case(
        "a point of three numbers",
        ValueError,
        "a point must be [x, y], got [1, 2, 3]",
        lambda w: w.track(w.file("p.json", "[[1, 2, 3]]")),
    ),
    Case(
        "malformed .mat of points",
        ValueError,
        "cannot read",
        lambda w: w.track(w.mat("cut.mat", (14, bytes(8)))),
    ),
    Case(
        ".mat inflating without limit",
        ValueError,
        "bomb.mat: a compressed variable inflates to more than 16 MiB",
        lambda w: w.track(_zip_bomb(w)),
    ),
    Case(
        "--gt of another joint count",
        ValueError,
        "--gt has 15 joints but",
        lambda w: w.command("track", w.frames, w.points, "--gt", _gt(w), "--backbone", TOY),
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
        lambda w: _no_cuda(lambda: w.eval(None, "--backbone", "fc", "--device", "cuda")),
    ),
]


def _cmyk(w: Inputs) -> Path:
    Image.fromarray(w.clip.masks[0].numpy() * 100).convert("CMYK").save(w.tmp / "m.tif")
    return w.tmp / "m.tif"


def _gt(w: Inputs) -> Path:
    scipy_io = pytest.importorskip("scipy.io")
    pos = np.full((2, 15, 5), 5.0)
    scipy_io.savemat(w.tmp / "gt.mat", {"pos_img": pos})
    return w.tmp / "gt.mat"


@pytest.fixture(scope="module")
def clip():
    return generate_clip(num_frames=5, height=48, width=80, seed=3)


def _tree(root: Path) -> list[tuple[str, int]]:
    """Every path under `root` with its size (-1: a folder)."""
    return sorted(
        (str(p.relative_to(root)), -1 if p.is_dir() else p.stat().st_size) for p in root.rglob("*")
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input(case: Case, clip, tmp_path, monkeypatch, capsys):
    w = Inputs(tmp_path, clip, monkeypatch)
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
    assert not (tmp_path / "pwned").exists()


def test_the_table_covers_api_and_command():
    assert len(CASES) >= 50 and len({c.name for c in CASES}) == len(CASES)


# --------------------------------------------------------------------------- properties


def test_uint64_ids_above_int64():
    mask = np.array([[0, 2**63]], dtype=np.uint64)
    frames = torch.zeros(2, 3, 1, 2, dtype=torch.uint8)
    with pytest.raises(ValueError, match="mask ids must be at most 255"):
        sfcprop.propagate(frames, mask, PooledColour().eval())


try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:  # the test extra brings it; without it only the properties skip
    st = None

if st is None:

    @pytest.mark.skip(reason="the property tests need hypothesis (pip install -e '.[test]')")
    def test_properties():
        pass

else:
    PROPERTY = settings(
        max_examples=150,
        deadline=None,
        database=None,  # no .hypothesis folder in the working tree
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    MASK_DTYPES = [bool, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64]
    MASK_DTYPES += [np.uint64, np.float32, np.float64]

    def _mask_values(dtype) -> st.SearchStrategy:
        """Mostly small ids (where the interesting cases are), sometimes any the dtype holds."""
        if np.dtype(dtype).kind == "b":
            return st.booleans()
        if np.dtype(dtype).kind == "f":
            return st.sampled_from([0.0, 1.0, 2.0, 0.5, math.nan])
        info = np.iinfo(dtype)
        small = st.integers(max(info.min, -2), min(info.max, 300))
        top = info.max
        return st.one_of(small, small, small, st.integers(info.min, top))

    @st.composite
    def masks(draw) -> np.ndarray:
        dtype = draw(st.sampled_from(MASK_DTYPES))
        shape = draw(st.tuples(st.integers(1, 12), st.integers(1, 12)))
        return draw(hnp.arrays(dtype, shape, elements=_mask_values(dtype)))

    def _expected(mask: np.ndarray) -> list[int] | str:
        """The ids a mask propagates with (0 included), or the words its error must say."""
        if mask.dtype.kind == "f":
            return "mask ids must be integers (or bool)"
        values = {int(v) for v in np.unique(mask)}
        if values - {0} == {255}:
            return [0, 1]  # 0/255: one object
        if min(values) < 0:
            return "mask ids must be >= 0"
        if max(values) > 255:
            return "mask ids must be at most 255"
        if values == {0}:
            return "the first mask holds no object"
        return sorted(values | {0})

    @PROPERTY
    @given(mask=masks())
    def test_random_masks_propagate_with_their_ids_or_say_why_not(mask):
        """Any small mask of any dtype: it propagates with the union of its ids (a binary one
        as id 1), and frame 0 comes back as given; or a ValueError says what is wrong; never
        another exception."""
        frames = torch.from_numpy(RNG.integers(0, 256, (2, 3, *mask.shape), dtype=np.uint8))
        want = _expected(mask)
        if isinstance(want, str):
            with pytest.raises(ValueError, match=re.escape(want)):
                sfcprop.propagate(frames, mask, PooledColour().eval())
            return
        result = sfcprop.propagate(frames, mask, PooledColour().eval())
        assert list(result.label_ids) == want
        first = mask.astype(np.int64) if want != [0, 1] else (mask > 0).astype(np.int64)
        assert np.array_equal(result.ids[0].numpy(), first)
        assert set(np.unique(result.ids.numpy())) <= set(want)

    FRAME_KINDS = ["hwc uint8", "chw tensor", "hwc float", "hw uint8", "hwc4 uint8", "chw array"]
    FRAME_KINDS += ["chw float tensor"]

    @st.composite
    def frame_lists(draw) -> tuple[list, tuple[int, int]]:
        """2-4 frames, each of a random kind and (mostly) the same size."""
        hw = draw(st.tuples(st.integers(1, 20), st.integers(1, 20)))
        frames = []
        for _ in range(draw(st.integers(2, 4))):
            kind = draw(st.sampled_from(FRAME_KINDS[:2] * 3 + FRAME_KINDS[2:]))
            h, w = draw(st.sampled_from([hw] * 4 + [(hw[0] + 1, hw[1])]))
            pixels = RNG.integers(0, 256, (h, w, 4), dtype=np.uint8)
            frames.append(
                {
                    "hwc uint8": pixels[..., :3],
                    "chw tensor": torch.from_numpy(pixels[..., :3]).permute(2, 0, 1),
                    "hwc float": pixels[..., :3] / 255.0,
                    "hw uint8": pixels[..., 0],
                    "hwc4 uint8": pixels,
                    "chw array": pixels[..., :3].transpose(2, 0, 1),
                    "chw float tensor": torch.from_numpy(pixels[..., :3] / 255.0).permute(2, 0, 1),
                }[kind]
            )
        return frames, hw

    def _frame_error(frames: list, hw: tuple[int, int]) -> str | None:
        """The words the error of a list of frames must hold (the first bad frame's), or None."""
        for t, f in enumerate(frames):
            good = (
                isinstance(f, np.ndarray)
                and f.ndim == 3
                and f.shape[2] == 3
                and f.dtype == np.uint8
            ) or (isinstance(f, torch.Tensor) and f.dtype == torch.uint8 and f.shape[0] == 3)
            if not good:
                return "uint8"  # what a frame must be
            size = tuple(f.shape[:2] if isinstance(f, np.ndarray) else f.shape[1:])
            if size != hw:
                return f"frame {t} is {size} (H, W) but"
        return None

    @PROPERTY
    @given(case=frame_lists())
    def test_random_frame_lists_propagate_or_name_the_bad_frame(case):
        """A list of frames of mixed kinds: uint8 [H, W, 3] arrays and [3, H, W] tensors
        propagate; anything else is refused (TypeError or ValueError) saying what a frame must
        be, or which frame has another size."""
        frames, hw = case
        mask = np.zeros(hw, np.uint8)
        mask[: max(1, hw[0] // 2)] = 2
        words = _frame_error(frames, hw)
        if words is None:
            result = sfcprop.propagate(frames, mask, PooledColour().eval())
            assert result.ids.shape == (len(frames), *hw)
            return
        with pytest.raises((TypeError, ValueError), match=re.escape(words)):
            sfcprop.propagate(frames, mask, PooledColour().eval())
