"""Every Python code block of the README runs, top to bottom, on a generated clip standing
in for the user's own files, with the shipped model: the README cannot drift from the API."""

import re
from pathlib import Path

import pytest
from PIL import Image

from sfcprop import io
from sfcprop.bench.synthetic import generate_clip

README = Path(__file__).resolve().parents[1] / "README.md"
# illustrative values that a 96x64 clip cannot show: (README text, value used here)
SMALLER = {'max_memory="300MB"': 'max_memory="1MB"'}


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.fixture
def my_video(tmp_path, monkeypatch):
    """`my_video/frames/*.png`, `first_mask.png`, `mask_10.png`, `mask_20.png`."""
    clip = generate_clip(num_frames=24, height=64, width=96, seed=2)
    frames = tmp_path / "my_video" / "frames"
    frames.mkdir(parents=True)
    (tmp_path / "my_video" / "out").mkdir()
    for t, frame in enumerate(clip.frames):
        Image.fromarray(frame.permute(1, 2, 0).numpy()).save(frames / f"{t:05d}.png")
    io.write_mask(tmp_path / "my_video" / "first_mask.png", clip.masks[0])
    for t in (10, 20):
        io.write_mask(tmp_path / "my_video" / f"mask_{t}.png", clip.masks[t])
    monkeypatch.chdir(tmp_path)
    return clip


def test_readme_python_blocks_run(my_video, capsys, one_thread):
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 5, "the README lost its examples"
    namespace: dict = {}
    for i, block in enumerate(blocks):
        for old, new in SMALLER.items():
            block = block.replace(old, new)
        try:
            exec(compile(block, f"README block {i + 1}", "exec"), namespace)
        except Exception as e:  # noqa: BLE001 - name the block that failed
            pytest.fail(f"README block {i + 1} failed: {type(e).__name__}: {e}\n{block}")
    assert "max_memory" in capsys.readouterr().out  # the budget example raised and said so
    assert len(list(Path("my_video/out").glob("*.png"))) == 24  # the saving example wrote
    assert Path("my_video/overlay.gif").stat().st_size > 0
