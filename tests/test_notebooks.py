"""The example notebooks (`examples/*.ipynb`): made from the percent-format scripts
(`examples/*.py`, the source), in step with them, small, and running top to bottom in a
real Jupyter kernel (nbclient + ipykernel, offline) with the toy backbone standing in for
"fc", as the scripts' tests do.

Regenerate the notebooks, with their outputs, after editing a script:

    python tests/test_notebooks.py    # the shipped model, the generated clip (~1 min)
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need the [test] extra")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need the [test] extra")

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "examples").glob("*.py"))
MAX_BYTES = 1_000_000

# The first cell of a test run: this checkout's sfcprop, one thread, the toy for "fc".
TOY_CELL = f"""
import sys
sys.path[:0] = [{str(REPO)!r}, {str(REPO / "tests")!r}]
import torch
torch.set_num_threads(1)
import sfcprop.models, sfcprop.bench.datasets
from toys import PooledColour
_real = sfcprop.models.backbone
sfcprop.models.backbone = (
    lambda name, *a, **k: PooledColour().eval() if name == "fc" else _real(name, *a, **k)
)
"""
NO_DATA_CELL = "sfcprop.bench.datasets.data_root = lambda *a: None"


def notebook_from_script(path: Path):
    """A notebook from a percent-format script: `# %% [markdown]` cells (their `# `
    prefixes dropped) and code cells (a `# %% title` kept as the cell's first comment)."""
    cells = []
    for chunk in re.split(r"^# %%", path.read_text(), flags=re.M)[1:]:
        header, _, body = chunk.partition("\n")
        if header.strip() == "[markdown]":
            lines = [re.sub(r"^# ?", "", line) for line in body.strip().splitlines()]
            cells.append(nbformat.v4.new_markdown_cell("\n".join(lines)))
        else:
            title = f"# {header.strip()}\n" if header.strip() else ""
            cells.append(nbformat.v4.new_code_cell(title + body.strip()))
    nb = nbformat.v4.new_notebook(cells=cells)
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["kernelspec"] = kernel
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def _sources(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


def _execute(nb, cwd: Path, extra: list[str]):
    """`nb` run in a fresh kernel in `cwd`, after the cells `extra` (dropped afterwards)."""
    nb = nbformat.from_dict(nb)
    setup = [nbformat.v4.new_code_cell(code) for code in extra]
    nb.cells = setup + nb.cells
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    nb.cells = nb.cells[len(setup) :]
    return nb


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_notebook_is_made_from_its_script(script):
    shipped = script.with_suffix(".ipynb")
    assert shipped.is_file(), f"no {shipped.name}: run `python tests/test_notebooks.py`"
    nb = nbformat.read(shipped, as_version=4)
    assert _sources(nb) == _sources(notebook_from_script(script)), (
        f"{shipped.name} is out of step with {script.name}: run `python tests/test_notebooks.py`"
    )
    assert shipped.stat().st_size < MAX_BYTES
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/gif" in o.get("data", {}) for o in outputs), "outputs not saved"
    assert not [o for o in outputs if o.output_type == "error"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(script, tmp_path):
    """The keypoint notebook on the JHMDB sample where present, the masks one on the
    generated clip (as tests/test_cli.py runs the scripts)."""
    nb = nbformat.read(script.with_suffix(".ipynb"), as_version=4)
    extra = [TOY_CELL] if script.stem == "keypoint_tracking" else [TOY_CELL, NO_DATA_CELL]
    done = _execute(nb, tmp_path, extra)
    assert list((tmp_path / "example-output").rglob("*.gif"))
    last = done.cells[-1].outputs
    assert last and "image/gif" in last[-1].get("data", {}), "the inline preview is missing"


def _coalesce_streams(outputs: list) -> list:
    """Consecutive stream outputs joined, and text overwritten by a carriage return (a
    progress bar's earlier states) dropped: what Jupyter shows."""
    merged: list = []
    for out in outputs:
        if out.output_type == "stream" and merged and merged[-1].get("name") == out.name:
            merged[-1].text += out.text
        else:
            merged.append(out)
    for out in merged:
        if out.output_type == "stream":
            out.text = "\n".join(line.rsplit("\r", 1)[-1] for line in out.text.split("\n"))
    return merged


def write_notebooks() -> None:
    """Make every notebook from its script and save it with the outputs of a run with the
    shipped model on the generated clip (small images); execution timings dropped."""
    import tempfile

    os.environ["SFCPROP_DATA"] = str(REPO / "no-shared-data")  # the generated clip
    sys.path.insert(0, str(REPO))
    setup = (  # this checkout's sfcprop; tqdm's text bar without its warning (no ipywidgets)
        f"import sys, warnings; sys.path.insert(0, {str(REPO)!r})\n"
        "warnings.filterwarnings('ignore', message='IProgress not found')"
    )
    for script in SCRIPTS:
        with tempfile.TemporaryDirectory() as tmp:
            nb = _execute(notebook_from_script(script), Path(tmp), [setup])
        for cell in nb.cells:
            cell.metadata.pop("execution", None)
            if cell.cell_type == "code":
                cell.outputs = _coalesce_streams(cell.outputs)
        path = script.with_suffix(".ipynb")
        nbformat.write(nb, path)
        print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    write_notebooks()
