"""`sfcprop export` on written results (masks and confidence.csv as `sfcprop propagate`
writes them): categories, a single video folder, greyscale masks, the inputs left as they
were, and bad inputs (one error line, exit code 1 or 2, no output)."""

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sfcprop import io
from sfcprop.apps import cli
from sfcprop.apps.export import export_results
from sfcprop.bench.synthetic import generate_clip

pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results root of written masks (the generated clip's, object 1 gone from frame 2
    on): `video1` and `video2` with a confidence.csv as propagate writes it, `written`
    without one."""
    root = tmp_path_factory.mktemp("written") / "results"
    clip = generate_clip(num_frames=4, height=40, width=64, seed=5, leaves_at=2)
    for video in ("video1", "video2", "written"):
        rows = ["frame,name,object,confidence"]
        for t, m in enumerate(clip.masks):
            io.write_mask(root / video / f"{t:05d}.png", m.numpy())
            rows += [f"{t},{t:05d},{o},{1 - 0.1 * t:.4f}" for o in (1, 2)]
        if video != "written":
            (root / video / "confidence.csv").write_text("\n".join(rows) + "\n")
    return root


def test_categories_name_each_object(results, tmp_path):
    """A YouTube-VOS meta.json names objects per video; "*" any other object."""
    meta = {
        "videos": {"video1": {"objects": {"1": {"category": "duck"}, "2": {"category": "box"}}}},
        "objects": {"*": "thing", "2": "box"},
    }
    written = export_results(results, ["coco", "mots", "ytvis"], tmp_path / "o", categories=meta)
    assert written == [
        tmp_path / "o" / p
        for p in ("mots", "coco/instances.json", "ytvis/results.json", "ytvis/instances.json")
    ]
    coco = json.loads((tmp_path / "o" / "coco" / "instances.json").read_text())
    table = {c["name"]: c["id"] for c in coco["categories"]}
    assert table == {"box": 1, "duck": 2, "thing": 3}
    video_of = {i["id"]: i["file_name"].split("/")[0] for i in coco["images"]}
    pairs = {(video_of[a["image_id"]], a["object"], a["category_id"]) for a in coco["annotations"]}
    assert pairs == {
        ("video1", 1, 2), ("video1", 2, 1), ("video2", 1, 3), ("video2", 2, 1),
        ("written", 1, 3), ("written", 2, 1),
    }  # fmt: skip
    assert (tmp_path / "o" / "mots" / "video1.txt").read_text().startswith("1 2001 2 ")
    with pytest.raises(ValueError, match="object 1 of video 'video1' has no category"):
        export_results(results, ["coco"], tmp_path / "o2", categories={"objects": {"2": "box"}})
    assert not (tmp_path / "o2").exists()
    with pytest.raises(ValueError, match=r"categories \['box'\] are not in"):
        bad = {"objects": {"*": "box"}, "categories": [{"id": 2, "name": "car"}]}
        export_results(results, ["coco"], tmp_path / "o2", categories=bad)


def test_a_single_video_folder_exports_as_one_video_and_inputs_stay(results, tmp_path):
    def digest(folder: Path) -> dict:
        return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
                if p.is_file()}  # fmt: skip

    before = digest(results)
    out = tmp_path / "one"
    assert export_results(results / "video2", ["ytvis"], out)[0] == out / "ytvis" / "results.json"
    data = json.loads((out / "ytvis" / "instances.json").read_text())
    assert [v["file_names"][0] for v in data["videos"]] == ["video2/00000.jpg"]
    with pytest.raises(ValueError, match="not empty; pass --force"):
        export_results(results / "video2", ["mots"], out)
    assert export_results(results / "video2", ["mots"], out, force=True) == [out / "mots"]
    assert sorted(p.name for p in out.iterdir()) == ["mots"]  # replaced as a whole
    assert digest(results) == before
    assert [p.name for p in tmp_path.iterdir()] == ["one"]  # no staging folder left


def test_greyscale_masks_export_as_palette_pngs(tmp_path):
    """Masks written elsewhere as greyscale ids (no confidence.csv): davis gets palette
    PNGs of the same ids, coco scores 1."""
    ids = np.zeros((2, 6, 8), np.uint8)
    ids[0, 1:3, 2:5], ids[1, 4:, :3], ids[1, 0, 7] = 3, 3, 7
    (tmp_path / "v").mkdir()
    for t, a in enumerate(ids):
        Image.fromarray(a, mode="L").save(tmp_path / "v" / f"{t}.png")
    out = tmp_path / "out"
    export_results(tmp_path / "v", ["davis", "coco"], out)
    for t, a in enumerate(ids):
        with Image.open(out / "davis" / "v" / f"{t}.png") as img:
            assert img.mode == "P" and np.array_equal(np.array(img), a)
    coco = COCO(str(out / "coco" / "instances.json"))
    anns = coco.loadAnns(coco.getAnnIds())
    assert [(a["image_id"], a["object"], a["area"], a["score"]) for a in anns] == [
        (1, 3, 6.0, 1.0), (2, 3, 6.0, 1.0), (2, 7, 1.0, 1.0)
    ]  # fmt: skip
    with pytest.raises(ValueError, match="exists and is not a folder"):
        (tmp_path / "file").write_text("")
        export_results(tmp_path / "v", ["coco"], tmp_path / "file", force=True)


# --------------------------------------------------------------------------- bad inputs


def assert_one_error(rc, err, code, message, out: Path):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == code, err
    assert "Traceback" not in err and message in lines[-1], err
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("sfcprop: error: ")
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such results folder"),
        ("empty", "holds no results: expected <frame>.png masks"),
        ("file", "is not a folder of results"),
        ("rgb", "is a RGB image; masks must be palette (P) or greyscale (L)"),
        ("header", "expected the header frame,name,object,confidence"),
        ("row", "line 3: expected frame,name,object,confidence"),
        ("missing-mask", "missing mask"),
        ("extra-mask", "99999.png is not a frame of"),
        ("inside", "is inside the input"),
        ("categories", "is not a JSON file"),
    ],
)
def test_bad_inputs_give_one_error_line(case, message, results, tmp_path, capsys):
    root, out, extra = tmp_path / "in", tmp_path / "out", []
    root.mkdir()
    if case == "missing":
        root = tmp_path / "nowhere"
    elif case == "file":
        root = tmp_path / "x.png"
        root.write_bytes(b"")
    elif case == "rgb":
        Image.new("RGB", (4, 4)).save(root / "00000.png")
    elif case in ("header", "row", "missing-mask", "extra-mask"):
        shutil.copytree(results / "video1", root, dirs_exist_ok=True)
        lines = (root / "confidence.csv").read_text().splitlines()
        if case == "header":
            lines[0] = "t,name,object,confidence"
        elif case == "row":
            lines[2] = "1,00000,x,1.0"
        elif case == "missing-mask":
            (root / "00003.png").unlink()
        else:
            shutil.copy(root / "00003.png", root / "99999.png")
        (root / "confidence.csv").write_text("\n".join(lines) + "\n")
    elif case == "inside":
        shutil.copytree(results / "video1", root, dirs_exist_ok=True)
        out = root / "exports"
    elif case == "categories":
        shutil.copytree(results / "video1", root, dirs_exist_ok=True)
        (tmp_path / "c.json").write_text("{oops")
        extra = ["--categories", tmp_path / "c.json"]
    rc, _, err = run(capsys, "export", root, "--format", "coco", "--out", out, *extra)
    assert_one_error(rc, err, 1, message, out)


def test_usage_errors_exit_2(results, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        cli.main(["export", str(results), "--format", "cvat", "--out", str(out)])
    assert e.value.code == 2 and "invalid choice: 'cvat'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["export", str(results), "--out", str(out)])
    assert e.value.code == 2 and "--format" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"unknown export format \['tiff'\]"):
        export_results(results, ["coco", "tiff"], out)
    assert not out.exists()


def test_without_pycocotools_the_error_names_the_extra(results, tmp_path, monkeypatch, capsys):
    """pycocotools made unimportable (None in sys.modules): the one line says what to
    install; DAVIS export needs no pycocotools."""
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    monkeypatch.setitem(sys.modules, "pycocotools.mask", None)
    rc, _, err = run(capsys, "export", results, "--format", "ytvis", "--out", tmp_path / "o")
    assert_one_error(rc, err, 1, 'pip install "sfcprop[coco]"', tmp_path / "o")
    rc, _, err = run(capsys, "export", results, "--format", "davis", "--out", tmp_path / "d")
    assert rc == 0 and len(list((tmp_path / "d" / "davis").iterdir())) == 3
