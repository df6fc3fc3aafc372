"""Every code block of the README runs here, as a new user would run it.

Each test works in a fresh, empty folder that holds only the user's own files the README
names (`USER_FILES`: small generated stand-ins made under those very paths): every other
folder a block writes into must be made by the README's code, so a missing `mkdir` fails.

- python blocks: top to bottom in one namespace, with the shipped model;
- bash blocks: every command, in order (`&&` chains split, `export` kept for the commands
  after it, a command met again run once), by `run_command`'s rules: `sfcprop ...` runs as
  it is written (the training and the BN export with `SMALLER_RUNS` appended: one step on
  tiny crops); `jupyter execute` runs the notebooks of a copy of examples/; the commands
  that read the clone run in it without changing it, offline: `pip install` as a dry run
  (`--no-index`: every requirement met by what is installed), `pip download` until it
  needs the network (its options accepted), `python -m pytest` collecting the suite; a
  line with `...` is a pattern, its module run with `--help`. A command that no rule
  knows fails the test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sfcprop import io
from sfcprop.apps import cli
from sfcprop.bench.synthetic import generate_clip

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
# illustrative values that a 96x64 clip cannot show: (README text, value used here)
SMALLER = {'max_memory="300MB"': 'max_memory="1MB"'}
# flags appended to commands that would run long (a training: one step on tiny crops)
SMALLER_RUNS = {
    ("train-fc", "--image-root"): ["--stop-at", "1", "--batch-size", "2", "--img-size", "64"],
    ("train-fc", "--export"): ["--bn-count", "2", "--bn-short-side", "64"],
}
USER_FILES = (  # the user's own files and folders that the README's blocks name
    "my_video/frames/",
    "my_video/first_mask.png",
    "my_video/mask_10.png",
    "my_video/mask_20.png",
    "frames/",
    "first.png",
    "keyframes/",
    "clip.mp4",
    "points.json",
    "my_crw.pth",
    "--root DAVIS",
    "images/",
)


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def bash_commands(block: str) -> list[list[str]]:
    """The commands of a bash block: continuation lines joined, comments dropped, `&&`
    chains split into their commands."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        command: list[str] = []
        for word in shlex.split(line, comments=True) + ["&&"]:
            if word != "&&":
                command.append(word)
            elif command:
                commands.append(command)
                command = []
    return commands


# ------------------------------------------------------------------- the user's files


def make_user_files(root: Path) -> None:
    """Small stand-ins for `USER_FILES` under `root`, and nothing else."""
    clip = generate_clip(num_frames=24, height=64, width=96, seed=2)
    for folder in ("my_video/frames", "frames"):
        save_frames(root / folder, clip.frames)
    for name, t in (("my_video/first_mask", 0), ("my_video/mask_10", 10), ("first", 0)):
        io.write_mask(root / f"{name}.png", clip.masks[t])
    io.write_mask(root / "my_video" / "mask_20.png", clip.masks[20])
    for t in (0, 12):
        io.write_mask(root / "keyframes" / f"{t:05d}.png", clip.masks[t])
    with io.VideoWriter(root / "clip.mp4", 10) as writer:
        for frame in clip.frames:
            writer.write(frame)
    (root / "points.json").write_text(json.dumps([[30, 20], [60, 40]]))
    save_crw_checkpoint(root / "my_crw.pth")
    save_frames(root / "images", clip.frames[::6], suffix=".jpg")
    tiny_davis(root / "DAVIS")


def save_frames(folder: Path, frames: torch.Tensor, suffix: str = ".png") -> None:
    folder.mkdir(parents=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame.permute(1, 2, 0).numpy()).save(folder / f"{t:05d}{suffix}")


def save_crw_checkpoint(path: Path) -> None:
    """A ResNet-18 (random weights) in the layout of CRW's released `pretrained.pth`."""
    from sfcprop.models import resnet18

    state = {f"encoder.model.{k}": v for k, v in resnet18().state_dict().items()}
    torch.save({"model": state, "args": None}, path)


def tiny_davis(root: Path, sequences=("bear", "car")) -> None:
    """DAVIS-2017's layout: val.txt, 480p frames and palette annotations, 4 frames each."""
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(sequences) + "\n")
    for seed, name in enumerate(sequences):
        clip = generate_clip(num_frames=4, height=48, width=64, seed=seed)
        save_frames(root / "JPEGImages" / "480p" / name, clip.frames, suffix=".jpg")
        for t, ids in enumerate(clip.masks):
            io.write_mask(root / "Annotations" / "480p" / name / f"{t:05d}.png", ids)


@pytest.fixture
def fresh(tmp_path, monkeypatch) -> Path:
    """A fresh working folder holding the user's files only; no shared data, one thread."""
    make_user_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SFCPROP_DATA", str(tmp_path / "no-shared-data"))
    monkeypatch.setenv("SFCPROP_CACHE", str(tmp_path.parent / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path


def test_the_user_files_are_the_readmes():
    text = README.read_text()
    missing = [name for name in USER_FILES if name not in text]
    assert not missing, f"the README no longer names {missing}: update USER_FILES"


# ------------------------------------------------------------------- python blocks


def test_readme_python_blocks_run(fresh, capsys, one_thread):
    blocks = code_blocks(README.read_text(), "python")
    assert len(blocks) >= 7, "the README lost its examples"
    before = sorted(p.name for p in (fresh / "my_video").iterdir())
    assert before == ["first_mask.png", "frames", "mask_10.png", "mask_20.png"]  # no out/
    namespace: dict = {}
    for i, block in enumerate(blocks):
        for old, new in SMALLER.items():
            block = block.replace(old, new)
        try:
            exec(compile(block, f"README block {i + 1}", "exec"), namespace)
        except Exception as e:  # noqa: BLE001 - name the block that failed
            pytest.fail(f"README block {i + 1} failed: {type(e).__name__}: {e}\n{block}")
    out = capsys.readouterr().out
    assert "Propagation(ids [24, 64, 96] uint8, objects [1, 2], keyframes [0]" in out
    assert "max_memory" in out  # the budget example raised and said so
    assert len(list(Path("my_video/out").glob("*.png"))) == 24  # the saving example wrote
    with Image.open("my_video/overlay.gif") as gif:
        assert gif.n_frames == 24
    assert namespace["config"].radius == 15 and namespace["config"].short_side == 240
    assert namespace["parts"].shape == (24, 3, 64, 96)  # propagate_soft(full_size=True)
    end = namespace["tracks"].points[-1].numpy()
    assert np.isfinite(end).all() and np.linalg.norm(end[0] - end[1]) > 8  # two points


# ------------------------------------------------------------------- bash blocks


def test_readme_bash_blocks_run(fresh, capsys, one_thread):
    blocks = code_blocks(README.read_text(), "bash")
    assert len(blocks) >= 5, "the README lost its commands"
    (fresh / "examples").mkdir()
    for notebook in (REPO / "examples").glob("*.ipynb"):  # the clone's files jupyter reads
        shutil.copy(notebook, fresh / "examples")
    exports: dict[str, str] = {}
    done: set = set()
    for block in blocks:
        for argv in bash_commands(block):
            # a command met again runs once (`sfcprop demo` refuses to write its folder
            # twice), pip again where an `export` changed what it reads
            key = (tuple(argv), tuple(sorted(exports.items())) if argv[0] == "pip" else ())
            if key not in done:
                done.add(key)
                run_command(argv, fresh, exports, capsys)
    for output in (
        "sfcprop-demo/overlay.gif",
        "masks/00023.png",
        "keyframed/00023.png",
        "fast/00023.png",
        "out/confidence.csv",
        "tracks/overlay.gif",
        "results/bear/00003.png",
        "exports/coco/instances.json",
        "labelled-davis/summary.jsonl",
        "exports/ytvis/results.json",
        "exports/mots/clip.txt",
        "runs/fc/last.pt",
        "fc.safetensors",
        "examples/example-output/masks/overlay.gif",
        "examples/example-output/keypoints/tracks.gif",
    ):
        assert (fresh / output).is_file(), f"the README's commands did not write {output}"


def run_command(argv: list[str], cwd: Path, exports: dict[str, str], capsys) -> None:
    """Run one README command by the module docstring's rules; fail naming it otherwise."""
    line = shlex.join(argv)
    if argv[0] == "export":
        for assignment in argv[1:]:
            name, _, value = assignment.partition("=")
            exports[name] = value.replace("$PWD", str(cwd))
    elif argv[0] == "sfcprop":
        extra = next((v for k, v in SMALLER_RUNS.items() if list(k) == argv[1:3]), [])
        rc = run_sfcprop(argv[1:] + extra)
        assert rc == 0, f"`{line}` exited {rc}: {capsys.readouterr().err[-2000:]}"
    elif argv[0] == "pip":
        run_pip(argv, exports)
    elif argv[:3] == ["python", "-m", "pytest"]:
        done = subprocess_run([*argv[1:], "--collect-only", "-p", "no:cacheprovider"], REPO)
        assert done.returncode == 0 and " tests collected" in done.stdout, done.stdout[-2000:]
    elif argv[:2] == ["jupyter", "execute"]:
        jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent))
        assert jupyter, "no jupyter beside this python: the test extra installs it"
        done = subprocess_run(argv[1:], cwd, program=jupyter)
        assert done.returncode == 0, f"`{line}` failed:\n{done.stderr[-3000:]}"
    elif argv[0] == "cvat-cli":
        load_cvat_function(argv)
    elif "..." in argv and "-m" in argv:  # a pattern: its module, with --help
        module = argv[argv.index("-m") + 1]
        assert shutil.which(argv[0], path=str(Path(sys.executable).parent)), f"no {argv[0]}"
        done = subprocess_run(["-m", module, argv[argv.index("-m") + 2], "--help"], REPO)
        assert done.returncode == 0, f"`{line}`: {done.stderr[-2000:]}"
    else:
        pytest.fail(f"a README command that test_readme.py does not know how to run: {line}")


def load_cvat_function(argv: list[str]) -> None:
    """`cvat-cli ... function create-native NAME | run-agent ID --function-module M -p ...`
    offline: the function loaded by cvat-cli's own option parser and loader, as both
    commands load it, with the command's `-p` parameters; it must be a tracking function."""
    import argparse

    pytest.importorskip("cvat_cli", reason="the cvat extra needs Python >= 3.11")
    from cvat_cli._internal.common import configure_function_implementation_arguments
    from cvat_sdk import auto_annotation as cvataa

    assert argv[argv.index("function") + 1] in ("create-native", "run-agent"), argv
    options = argv[argv.index("--function-module") :]
    parser = argparse.ArgumentParser()
    got: dict = {}
    parser.set_defaults(_executor=lambda client, **kw: got.update(kw))
    configure_function_implementation_arguments(parser)
    args = vars(parser.parse_args(options))
    args.pop("_executor")(None, **args)
    function = got["function_loader"].load()
    assert isinstance(function.spec, cvataa.TrackingFunctionSpec), function.spec


def run_sfcprop(args: list[str]) -> int:
    """`sfcprop ARGS` in this process: its exit status."""
    try:
        return cli.main(args)
    except SystemExit as e:  # argparse's --version and --help
        return 0 if e.code is None else e.code


def run_pip(argv: list[str], exports: dict[str, str]) -> None:
    """`pip install` as an offline dry run in the clone (every requirement must be met by
    what is installed); `pip download` until it needs the network (its options accepted)."""
    offline = ["--no-index", "--no-build-isolation"]
    if argv[1] == "install":
        done = subprocess_run(["-m", *argv[:2], "--dry-run", *offline, *argv[2:]], REPO, exports)
        assert done.returncode == 0, f"`{shlex.join(argv)}`:\n{done.stderr[-3000:]}"
        assert "Would install" in done.stdout or "already satisfied" in done.stdout
    elif argv[1] == "download":
        done = subprocess_run(["-m", *argv[:2], *offline, *argv[2:]], REPO, exports)
        assert done.returncode == 1, f"`{shlex.join(argv)}`:\n{done.stderr[-3000:]}"
        assert "No matching distribution found" in done.stderr, done.stderr[-3000:]
    else:
        pytest.fail(f"a pip command that test_readme.py does not know: {shlex.join(argv)}")


def subprocess_run(args, cwd: Path, exports=None, program: str = sys.executable):
    """`program ARGS` (this python) in `cwd`, with `exports` in its environment."""
    env = {**os.environ, **(exports or {}), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [program, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


# ------------------------------------------------------------------- what the README says


def test_the_speed_tables_steady_state_is_that_of_the_benchmark():
    """The column "from frame 21 on" is the cost of frames 41-80 in the recorded runs."""
    runs = json.loads((REPO / "benchmarks" / "results-cpu-2threads.json").read_text())["runs"]
    text = README.read_text()
    for config, label in (("davis", "ResNet-18, `davis`, 480p"), ("sfc", "fused, `davis-sfc`")):
        seconds = {
            r["frames"]: r["s_per_frame"]
            for r in runs
            if r["config"] == config
            and r["size"] == "480p"
            and r["precision"] == "float32"
            and r["radius"] == (15.0 if config == "sfc" else 12.0)
        }
        steady = (80 * seconds[80] - 40 * seconds[40]) / 40
        row = next(line for line in text.splitlines() if label in line and "80 frames" in line)
        assert row.split("|")[4].strip() == f"{steady:.2f}", row


def test_the_example_outputs_are_ignored_by_git():
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    for path in ("examples/example-output/masks/overlay.gif", "example-output/keypoints/a.csv"):
        done = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert done.returncode == 0, f"{path} would show as untracked"
