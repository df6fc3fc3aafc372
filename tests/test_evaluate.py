"""`sfcprop eval`: scoring existing results, resuming, sharding, and end-to-end runs."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sfcprop.apps import eval as evaluate
from sfcprop.apps.eval import common
from sfcprop.bench import datasets
from sfcprop.config import Config
from sfcprop.labels import keypoints

DATA = datasets.data_root()
GOLDEN = DATA.parent / "golden" if DATA is not None else None
JHMDB_CLIP = "catch/Goal_Keeping_Tips_catch_f_cm_np1_fr_med_2"


def need(path: Path | None, what: str) -> Path:
    if path is None or not path.exists():
        pytest.skip(f"{what} not found (set {datasets.DATA_ENV} or provide ../shared)")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def palette_png(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(ids.astype(np.uint8), mode="P")
    img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
    img.save(path)


def tiny_davis(root: Path, seqs=("a", "b"), frames=4) -> Path:
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(seqs) + "\n")
    for s in seqs:
        for t in range(frames):
            (root / "JPEGImages" / "480p" / s).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (24, 16), (90, 120, 30)).save(
                root / "JPEGImages" / "480p" / s / f"{t:05d}.jpg"
            )
            ids = np.zeros((16, 24), np.uint8)
            ids[2:6, 2 + t : 6 + t] = 1
            ids[8:12, 10:20] = 2
            palette_png(root / "Annotations" / "480p" / s / f"{t:05d}.png", ids)
    return root


def gt_as_results(root: Path, out: Path, seqs, frames=None) -> Path:
    for s in seqs:
        src = sorted((root / "Annotations" / "480p" / s).glob("*.png"))[:frames]
        (out / s).mkdir(parents=True)
        for p in src:
            shutil.copyfile(p, out / s / p.name)
    return out


# ----------------------------------------------------------------------------- --results


def test_ground_truth_as_results_scores_exactly_one_on_davis2016(tmp_path, capsys):
    root = need(DATA and DATA / "davis2016", "shared DAVIS-2016 data")
    seqs = ["car-shadow", "bmx-trees"]
    results = gt_as_results(root, tmp_path / "res", seqs, frames=12)
    argv = ["davis", "--root", str(root), "--results", str(results), "--quiet"]
    assert evaluate.main([*argv, "--sequences", ",".join(seqs), "--max-frames", "12"]) == 0
    table = read_csv(results / "global_results-val.csv")[0]
    assert table["J&F-Mean"] == table["J-Mean"] == table["F-Mean"] == "1.000000"
    assert table["J-Decay"] == table["F-Decay"] == "0.000000"
    objects = read_csv(results / "per-object_metrics-val.csv")
    assert [o["Object"] for o in objects] == ["bmx-trees_1", "car-shadow_1"]  # split order
    assert {o["Frames"] for o in objects} == {"10"}  # 12 frames but the first and the last
    out = capsys.readouterr().out
    assert "J&F-Mean" in out and "bmx-trees_1" in out
    # in memory: exactly one, not merely rounded
    seq = datasets.davis(root)["car-shadow"]
    j, f = evaluate.score_davis_sequence(seq, results, max_frames=12)["car-shadow_1"]
    assert (j == 1.0).all() and (f == 1.0).all()


def test_multi_object_scores_by_hand(tmp_path):
    root = tiny_davis(tmp_path / "D")
    results = gt_as_results(root, tmp_path / "res", ["a", "b"])
    assert evaluate.main(["davis", "--root", str(root), "--results", str(results), "--quiet"]) == 0
    assert read_csv(results / "global_results-val.csv")[0]["J&F-Mean"] == "1.000000"
    # sequence b loses object 2 on frame 2: scored frames 1, 2 -> J = F = [1, 0] for b_2
    ids = np.array(Image.open(results / "b" / "00002.png"))
    ids[ids == 2] = 0
    palette_png(results / "b" / "00002.png", ids)
    out = tmp_path / "tables"
    argv = ["davis", "--root", str(root), "--results", str(results), "--out", str(out)]
    assert evaluate.main([*argv, "--quiet"]) == 0
    rows = {r["Object"]: r for r in read_csv(out / "per-object_metrics-val.csv")}
    assert rows["b_2"]["J-Mean"] == rows["b_2"]["F-Mean"] == "0.500000"
    assert rows["b_2"]["J-Recall"] == "0.500000" and rows["b_2"]["J-Decay"] == "1.000000"
    table = read_csv(out / "global_results-val.csv")[0]
    assert table["J-Mean"] == "0.875000" and table["J&F-Mean"] == "0.875000"
    seqs = {r["Sequence"]: r for r in read_csv(out / "sequence_metrics-val.csv")}
    assert seqs["b"]["J&F-Mean"] == "0.750000" and seqs["a"]["Objects"] == "2"
    official = read_csv(out / "per-sequence_results-val.csv")
    assert [r["Sequence"] for r in official] == ["a_1", "a_2", "b_1", "b_2"]


def test_bad_results_are_reported(tmp_path, capsys):
    root = tiny_davis(tmp_path / "D")
    results = gt_as_results(root, tmp_path / "res", ["a", "b"])
    (results / "a" / "00001.png").unlink()
    argv = ["davis", "--root", str(root), "--results", str(results), "--quiet"]
    assert evaluate.main(argv) == 1
    assert "missing result mask" in capsys.readouterr().err
    palette_png(results / "a" / "00001.png", np.full((16, 24), 3))
    assert evaluate.main(argv) == 1
    assert "id 3" in capsys.readouterr().err
    assert evaluate.main(["davis", "--root", str(root), "--quiet"]) == 2  # nothing to do
    assert evaluate.main([*argv[:-2], str(tmp_path / "none")]) == 1


def test_void_pixels_are_not_an_object(tmp_path):
    root = tiny_davis(tmp_path / "D", seqs=("a",))
    for t in range(4):  # void (255) pixels on every annotation, frame 0 included
        path = root / "Annotations" / "480p" / "a" / f"{t:05d}.png"
        ids = np.array(Image.open(path))
        ids[0, :5] = 255
        palette_png(path, ids)
    results = gt_as_results(root, tmp_path / "res", ["a"])
    for p in (results / "a").glob("*.png"):  # a method predicts background there
        ids = np.array(Image.open(p))
        palette_png(p, np.where(ids == 255, 0, ids))
    assert evaluate.main(["davis", "--root", str(root), "--results", str(results), "--quiet"]) == 0
    objects = [r["Object"] for r in read_csv(results / "per-object_metrics-val.csv")]
    assert objects == ["a_1", "a_2"]
    assert read_csv(results / "global_results-val.csv")[0]["J&F-Mean"] == "1.000000"


def test_vip_results_ground_truth_gives_miou_one(tmp_path):
    root = tmp_path / "VIP"
    (root / "lists").mkdir(parents=True)
    (root / "lists" / "val_videos.txt").write_text("v1\n")
    for t in range(3):
        (root / "Images" / "v1").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 16)).save(root / "Images" / "v1" / f"{t:06d}.jpg")
        ids = np.zeros((16, 24), np.uint8)
        ids[2:8, 3:9], ids[9:14, 3:20] = 4, 13 + t
        palette_png(root / "Annotations" / "Category_ids" / "v1" / f"{t:06d}.png", ids)
    results = tmp_path / "res"
    shutil.copytree(root / "Annotations" / "Category_ids", results)
    assert evaluate.main(["vip", "--root", str(root), "--results", str(results), "--quiet"]) == 0
    assert read_csv(results / "global_results-miou.csv")[0]["mIoU"] == "1.000000"


def test_results_inside_the_dataset_are_not_scored_or_written_into(tmp_path, capsys):
    """--results (where the tables go without --out) may not be, hold or lie inside --root:
    its annotations would be scored as results and the tables written among them."""
    root = tiny_davis(tmp_path / "D")
    before = sorted(p.name for p in root.rglob("*"))
    for results in (root / "Annotations" / "480p", root, tmp_path):
        argv = ["davis", "--root", str(root), "--results", str(results), "--quiet"]
        assert evaluate.main(argv) == 1
        assert f"--results {results} " in capsys.readouterr().err
    assert sorted(p.name for p in root.rglob("*")) == before


def test_sequence_names_from_paths_in_split_lists_are_plain(tmp_path):
    """A split line may be a path where the reader takes its last part(s) as the name:
    absolute frame folders (JHMDB, CRW's lists) and video paths (VIP) pass."""
    root = tmp_path / "JHMDB"
    frames = root / "Rename_Images" / "catch" / "clip.1"
    split = tmp_path / "test.txt"
    split.write_text(f"{frames} {root / 'clip.mat'}\ncatch/clip.2\n")
    root.mkdir()
    reader = datasets.JHMDB(root, split)
    common.check_names(reader, split, jhmdb=True)
    assert reader.names == ["catch/clip.1", "catch/clip.2"]
    vip = tmp_path / "VIP"
    for folder in ("Images", "Annotations/Category_ids"):
        (vip / folder).mkdir(parents=True)
    (tmp_path / "val.txt").write_text("/data/VIP/Images/v.1/\nv2\n")
    reader = datasets.VIP(vip, tmp_path / "val.txt")
    assert common.split_file(reader, str(tmp_path / "val.txt")) == tmp_path / "val.txt"
    common.check_names(reader, tmp_path / "val.txt")
    assert reader.names == ["v.1", "v2"]
    reader.names = ["v.1", ".."]  # a name that no line gives: the error names the file
    with pytest.raises(ValueError, match=r"val\.txt: '\.\.' is not a sequence name"):
        common.check_names(reader, tmp_path / "val.txt")


# ----------------------------------------------------------------------------- resuming


class Calls:
    def __init__(self):
        self.names: list[str] = []


@pytest.fixture
def stub_model(monkeypatch):
    """No networks: `_model` returns placeholders; propagation is stubbed per test."""
    pytest.importorskip("sfcprop.session")

    def fake_model(args, device):
        return common._Model("net", None, *common._settings(args), torch.device("cpu"), True)

    monkeypatch.setattr(common, "_model", fake_model)


def stub_propagate(calls: Calls):
    from sfcprop.session.results import Propagation

    def propagate(frames, first_mask, backbone, semantic=None, **kw):
        frames = list(frames)
        calls.names.append(Path(frames[0]).parent.name)
        ids = torch.as_tensor(np.asarray(first_mask)).to(torch.uint8)
        return Propagation(ids[None].repeat(len(frames), 1, 1), [0, 1, 2])

    return propagate


def test_resume_skips_complete_sequences_and_never_keeps_half_written_ones(
    tmp_path, monkeypatch, stub_model
):
    import sfcprop.io
    import sfcprop.session

    root = tiny_davis(tmp_path / "D", seqs=("a", "b", "c"))
    out = tmp_path / "out"
    argv = ["davis", "--root", str(root), "--backbone", "net", "--out", str(out), "--quiet"]
    calls = Calls()
    monkeypatch.setattr(sfcprop.session, "propagate", stub_propagate(calls))
    real_write = sfcprop.io.write_mask
    written: list[Path] = []

    def interrupted_write(path, ids, palette=None):
        written.append(Path(path))
        if Path(path).parent.name.startswith(".b") and len(written) > 5:
            raise KeyboardInterrupt  # killed while writing sequence b
        real_write(path, ids, palette)

    monkeypatch.setattr(sfcprop.io, "write_mask", interrupted_write)
    assert evaluate.main(argv) == 130  # one error line, the half-written b cleaned up
    assert calls.names == ["a", "b"]
    assert sorted(p.name for p in out.iterdir()) == ["a", "sfcprop-eval.json"]  # no b, no temp
    assert len(list((out / "a").glob("*.png"))) == 4

    monkeypatch.setattr(sfcprop.io, "write_mask", real_write)
    (out / ".b.tmp-99999999").mkdir()  # left by a killed run: cleaned when b is redone
    assert evaluate.main(argv) == 0
    assert not (out / ".b.tmp-99999999").exists()
    assert calls.names == ["a", "b", "b", "c"]  # a was complete
    table = read_csv(out / "global_results-val.csv")[0]
    assert 0 < float(table["J&F-Mean"]) < 1  # object 1 moves, the stub does not
    first = np.array(Image.open(out / "c" / "00003.png"))
    assert np.array_equal(first, np.array(Image.open(root / "Annotations/480p/c/00000.png")))
    assert Image.open(out / "c" / "00003.png").getpalette()[3:6] == [128, 0, 0]

    assert evaluate.main(argv) == 0
    assert calls.names == ["a", "b", "b", "c"]  # all complete: nothing propagated
    (out / "b" / "00002.png").unlink()
    assert evaluate.main([*argv, "--sequences", "b"]) == 0
    assert calls.names[-1] == "b" and len(list((out / "b").glob("*.png"))) == 4


def test_resume_refuses_other_settings(tmp_path, monkeypatch, stub_model, capsys):
    import sfcprop.session

    root = tiny_davis(tmp_path / "D", seqs=("a",))
    calls = Calls()
    monkeypatch.setattr(sfcprop.session, "propagate", stub_propagate(calls))
    argv = ["davis", "--root", str(root), "--out", str(tmp_path / "o"), "--quiet"]
    assert evaluate.main([*argv, "--backbone", "one"]) == 0
    assert evaluate.main([*argv, "--backbone", "two"]) == 1
    assert "other settings" in capsys.readouterr().err
    assert evaluate.main([*argv, "--backbone", "one", "--precision", "bfloat16"]) == 1
    assert "'precision': (None, 'bfloat16')" in capsys.readouterr().err
    assert evaluate.main([*argv, "--backbone", "one", "--max-frames", "3"]) == 0  # same setup


def test_a_second_run_into_the_same_out_fails_at_once(tmp_path, monkeypatch, stub_model, capsys):
    import sfcprop.session
    from sfcprop.io import runs

    root = tiny_davis(tmp_path / "D", seqs=("a",))
    out = tmp_path / "res" / "o"
    argv = ["davis", "--root", str(root), "--backbone", "net", "--out", str(out), "--quiet"]
    calls = Calls()
    monkeypatch.setattr(sfcprop.session, "propagate", stub_propagate(calls))
    with runs.locked(out):
        assert evaluate.main(argv) == 1
        err = capsys.readouterr().err
        assert err.splitlines() == [err.strip()] and "is being written by another" in err
        assert calls.names == [] and not out.exists()
    assert os.listdir(tmp_path / "res") == []  # the refused run left nothing, not even a lock
    assert evaluate.main(argv) == 0 and calls.names == ["a"]
    assert sorted(os.listdir(tmp_path / "res")) == ["o"]


def test_resize_flags_reach_every_task(tmp_path, monkeypatch, stub_model):
    """--size (HxW or N) and --short-side are the Config's flags for every task; the
    jhmdb / vip presets keep their squares when neither is given."""
    import sfcprop.session

    seen = []

    def propagate(frames, first_mask, backbone, semantic=None, **kw):
        seen.append(kw["preset"])
        return stub_propagate(Calls())(frames, first_mask, backbone, **kw)

    monkeypatch.setattr(sfcprop.session, "propagate", propagate)
    root = tiny_davis(tmp_path / "D", seqs=("a",))
    for i, flags in enumerate(([], ["--short-side", "8"], ["--size", "8"], ["--size", "8x4"])):
        argv = ["davis", "--root", str(root), "--backbone", "n", "--out", str(tmp_path / str(i))]
        assert evaluate.main([*argv, "--quiet", *flags]) == 0
    assert [c.encoded_size(16, 24) for c in seen] == [(16, 24), (8, 12), (8, 8), (8, 4)]
    saved = json.loads((tmp_path / "3" / evaluate.CONFIG_FILE).read_text())
    assert saved["size"] == [8, 4] and saved["short_side"] is None
    argv = ["davis", "--root", str(root), "--backbone", "n", "--out", str(tmp_path / "3")]
    assert evaluate.main([*argv, "--quiet", "--size", "8x4"]) == 0  # the same settings: resumes
    assert evaluate.main([*argv, "--quiet", "--size", "8"]) == 1  # other settings: refused

    def config(*argv):
        preset, params = common._settings(evaluate.build_parser().parse_args(argv))
        return Config.preset(preset, **params)

    assert config("vip", "--root", "r").size == (560, 560)
    assert config("jhmdb", "--root", "r").size == (320, 320)
    cfg = config("jhmdb", "--root", "r", "--short-side", "100")
    assert cfg.size is None and cfg.encoded_size(240, 320) == (100, 133)


def test_a_failed_run_records_no_settings(tmp_path, monkeypatch, capsys):
    """A typo in --backbone, a bad --root or an unknown sequence fails before anything is
    written, so that the corrected rerun into the same --out is not refused."""
    import sfcprop.session

    root = tiny_davis(tmp_path / "D", seqs=("a",))
    out = tmp_path / "res" / "o"
    argv = ["davis", "--root", str(root), "--out", str(out), "--quiet", "--backbone"]
    bad = [
        ([*argv, "fcc"], "'fcc' is neither a registered backbone"),
        ([*argv[:2], str(tmp_path / "none"), *argv[3:], "net"], "missing DAVIS root folder"),
        ([*argv, "net", "--sequences", "a,zz"], "unknown sequence(s) zz"),
    ]
    for args, message in bad:
        assert evaluate.main(args) == 1
        err = capsys.readouterr().err
        assert err.splitlines() == [err.strip()] and err.startswith("sfcprop: error: ")
        assert message in err and not (tmp_path / "res").exists()
    calls = Calls()
    monkeypatch.setattr(sfcprop.session, "propagate", stub_propagate(calls))
    monkeypatch.setattr(
        common,
        "_model",
        lambda args, device: common._Model(args.backbone, None, "davis", {}, device, True),
    )
    assert evaluate.main([*argv, "fc"]) == 0  # the corrected run
    assert calls.names == ["a"] and (out / evaluate.CONFIG_FILE).is_file()


def test_user_errors_are_one_line(tmp_path, monkeypatch, capsys):
    from sfcprop.models.hub import WeightsUnavailableError

    root = tiny_davis(tmp_path / "D", seqs=("a",))
    argv = ["davis", "--root", str(root), "--out", str(tmp_path / "o"), "--backbone", "crw"]

    def unavailable(*args, **kwargs):
        raise WeightsUnavailableError("crw: not cached and HF_HUB_OFFLINE=1")

    monkeypatch.setattr(common, "_model", unavailable)
    assert evaluate.main(argv) == 1
    assert capsys.readouterr().err == "sfcprop: error: crw: not cached and HF_HUB_OFFLINE=1\n"
    assert not (tmp_path / "o").exists()
    assert evaluate.main(["davis", "--root", str(root)]) == 2  # neither --out nor --results
    assert capsys.readouterr().err.startswith("sfcprop: error: eval needs --backbone and --out")
    if not torch.cuda.is_available():
        assert evaluate.main([*argv, "--device", "cuda"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("sfcprop: error: --device cuda: torch sees no CUDA device")
        assert err.count("\n") == 1


def test_the_cpu_is_the_default_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert evaluate._setup(None)[1] == torch.device("cpu")
    assert evaluate._setup("cuda:1")[1] == torch.device("cuda:1")
    text = evaluate.build_parser().format_help()
    assert "(default: cpu)" in text and "examples:\n  sfcprop eval davis --root DAVIS" in text
    assert "--device cuda" in text.split("examples:")[1]


def test_staging_folders_of_live_processes_are_kept(tmp_path):
    """A rerun removes what killed runs left, not the staging folder of a run at work
    (another torchrun job, say): the pid is in the name."""
    import socket

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = socket.gethostname()
        kept = tmp_path / f".seq.tmp-{live.pid}@{host}.abcdefgh"
        dead = [tmp_path / ".seq.tmp-99999999", tmp_path / f".seq.old-99999999@{host}.abcd_fgh"]
        other = tmp_path / ".seq2.tmp-99999999"  # another folder's
        for p in (kept, *dead, other):
            p.mkdir()
        evaluate.write_atomically(tmp_path / "seq", lambda d: (d / "x").write_text("1"))
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == sorted([kept.name, other.name, "seq"])
    finally:
        live.kill()
        live.wait()


def test_precision_reaches_propagation(monkeypatch):
    import sfcprop.models

    monkeypatch.setattr(sfcprop.models, "backbone", lambda name, **kw: name)
    argv = ["davis", "--root", "r", "--backbone", "fc", "--out", "o"]
    args = evaluate.build_parser().parse_args([*argv, "--precision", "float16"])
    assert common._model(args, torch.device("cpu")).params["precision"] == "float16"
    args = evaluate.build_parser().parse_args(argv)
    assert common._model(args, torch.device("cpu")).params["precision"] == "float32"


def test_vip_propagation_path_resizes_and_restores_size(tmp_path, monkeypatch, stub_model):
    import sfcprop.session
    from sfcprop.session.results import Propagation

    root = tmp_path / "VIP"
    (root / "lists").mkdir(parents=True)
    (root / "lists" / "val_videos.txt").write_text("v\n")
    ids = np.zeros((40, 64), np.uint8)
    ids[8:30, 16:40], ids[30:40, 0:64] = 7, 2
    for t in range(3):
        (root / "Images" / "v").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 40)).save(root / "Images" / "v" / f"{t:06d}.jpg")
        palette_png(root / "Annotations" / "Category_ids" / "v" / f"{t:06d}.png", ids)
    seen = {}

    def propagate(frames, first_mask, backbone, semantic=None, **kw):
        frames = list(frames)
        seen["size"], seen["mask"] = tuple(frames[0].shape[1:]), first_mask.shape
        seen["config"] = kw["preset"]
        grid = keypoints.grid_size(kw["preset"].encoded_size(*first_mask.shape))
        one_hot = torch.stack([torch.as_tensor(first_mask == i) for i in (0, 2, 7)]).float()
        soft = torch.nn.functional.interpolate(one_hot[None], size=grid, mode="bilinear")[0]
        return Propagation(torch.zeros(0), [0, 2, 7], soft[None].repeat(len(frames), 1, 1, 1))

    monkeypatch.setattr(sfcprop.session, "propagate", propagate)
    out = tmp_path / "out"
    argv = ["vip", "--root", str(root), "--backbone", "n", "--out", str(out), "--quiet"]
    assert evaluate.main([*argv, "--short-side", "20"]) == 0
    # native frames and mask; the propagator resizes them (CRW's float policy)
    assert (seen["size"], seen["mask"]) == ((40, 64), (40, 64))
    assert seen["config"].encoded_size(40, 64) == (20, 32) and seen["config"].resize == "float"
    pred = np.array(Image.open(out / "v" / "000002.png"))
    assert pred.shape == (40, 64) and set(np.unique(pred)) == {0, 2, 7}
    assert (pred == ids).mean() > 0.75  # frame 0's labels through a 3x4 grid and back
    assert float(read_csv(out / "global_results-miou.csv")[0]["mIoU"]) > 0.5


def test_jhmdb_results_and_propagation_path(tmp_path, monkeypatch, stub_model):
    import sfcprop.session

    root = need(DATA and DATA / "jhmdb-sample", "shared JHMDB sample")
    seen = {}

    def propagate_soft(frames, first_soft, backbone, semantic=None, **kw):
        frames = list(frames)
        seen["size"], seen["soft"] = tuple(frames[0].shape), tuple(first_soft.shape)
        seen["encoded"] = kw["preset"].encoded_size(*frames[0].shape[1:])
        seen["resize"] = kw["preset"].resize
        return first_soft[None].repeat(len(frames), 1, 1, 1)

    monkeypatch.setattr(sfcprop.session, "propagate_soft", propagate_soft)
    out = tmp_path / "out"
    argv = ["jhmdb", "--root", str(root), "--backbone", "n", "--out", str(out), "--quiet"]
    assert evaluate.main([*argv, "--max-frames", "5"]) == 0
    # native frames, encoded at 320x320 by the propagator with CRW's float resize
    assert seen == {
        "size": (3, 240, 320),
        "soft": (16, 40, 40),
        "encoded": (320, 320),
        "resize": "float",
    }
    with np.load(out / JHMDB_CLIP / "keypoints.npz") as z:
        points, conf = z["points"], z["confidence"]
    assert points.shape == (5, 15, 2) and conf.shape == (5, 15)
    gt = datasets.JHMDB(root)[JHMDB_CLIP].keypoints
    assert np.abs(points[0] - gt[0]).max() < 0.61 * 8  # frame 0: within a cell of the truth
    # the ground truth as results: PCK 100
    results = tmp_path / "res"
    (results / JHMDB_CLIP).mkdir(parents=True)
    np.savez(results / JHMDB_CLIP / "keypoints.npz", points=gt, confidence=np.ones(gt.shape[:2]))
    assert evaluate.main(["jhmdb", "--root", str(root), "--results", str(results), "--quiet"]) == 0
    table = read_csv(results / "global_results-pck.csv")[0]
    assert table == {"PCK@0.1": "100.000000", "PCK@0.2": "100.000000"}
    assert len(read_csv(results / "per-joint_results-pck.csv")) == 15


# ----------------------------------------------------------------------------- distribution


def test_sharing_sequences_among_ranks():
    names = [f"s{i}" for i in range(7)]
    shares = [evaluate.Dist(r, 3).share(names) for r in range(3)]
    assert sorted(sum(shares, [])) == names and [len(s) for s in shares] == [3, 2, 2]


def test_torchrun_two_ranks_score_and_gather(tmp_path):
    if shutil.which("torchrun") is None:
        pytest.skip("torchrun not on PATH")
    root = tiny_davis(tmp_path / "D", seqs=("a", "b", "c"))
    results = gt_as_results(root, tmp_path / "res", ["a", "b", "c"])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = ["torchrun", "--standalone", "--nproc_per_node", "2", "-m"]
    cmd += ["sfcprop.apps.eval", "davis", "--root", str(root), "--results", str(results)]
    proc = subprocess.run([*cmd, "--quiet"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("Global results") == 1  # rank 0 only
    objects = [r["Object"] for r in read_csv(results / "per-object_metrics-val.csv")]
    assert objects == ["a_1", "a_2", "b_1", "b_2", "c_1", "c_2"]


# ----------------------------------------------------------------------------- end to end


def needs_core():
    if importlib.util.find_spec("sfcprop.session") is None:
        pytest.skip("sfcprop.session is not there yet")


def test_end_to_end_davis_matches_the_golden_sfc_run(tmp_path):
    """`eval davis` with the golden FC checkpoint (random weights in the released layout)
    on the first frames of bmx-trees reproduces the official SFC code's masks."""
    needs_core()
    root = need(DATA and DATA / "davis2016", "shared DAVIS-2016 data")
    golden = need(GOLDEN and GOLDEN / "fc-bmx-trees", "golden case fc-bmx-trees")
    out = tmp_path / "out"
    argv = ["davis", "--root", str(root), "--backbone", str(golden / "pretrained_fc.pth")]
    argv += ["--sequences", "bmx-trees", "--first-mask", "multi", "--bn-warmup"]
    argv += ["--max-frames", "3", "--out", str(out), "--device", "cpu", "--quiet"]
    assert evaluate.main(argv) == 0
    for t in (1, 2):
        ours = np.array(Image.open(out / "bmx-trees" / f"{t:05d}.png"))
        ref = np.array(Image.open(golden / "expected" / f"{t:05d}.png"))
        assert (ours == ref).mean() >= 0.9999, t
    row = read_csv(out / "per-object_metrics-val.csv")[0]
    assert row["Object"] == "bmx-trees_1" and row["Frames"] == "1"  # the union, frame 1
    assert 0.3 < float(row["J-Mean"]) < 1


def test_end_to_end_jhmdb(tmp_path):
    needs_core()
    root = need(DATA and DATA / "jhmdb-sample", "shared JHMDB sample")
    golden = need(GOLDEN and GOLDEN / "fc-bmx-trees", "golden case fc-bmx-trees")
    out = tmp_path / "out"
    argv = ["jhmdb", "--root", str(root), "--backbone", str(golden / "pretrained_fc.pth")]
    argv += ["--max-frames", "3", "--out", str(out), "--device", "cpu", "--quiet"]
    assert evaluate.main(argv) == 0
    table = read_csv(out / "global_results-pck.csv")[0]
    assert 0 <= float(table["PCK@0.1"]) <= float(table["PCK@0.2"]) <= 100


def test_end_to_end_with_the_shipped_weights(tmp_path):
    needs_core()
    from sfcprop.models.registry import shipped_weights

    try:
        shipped_weights("fc-r18-sfcprop.safetensors")
    except FileNotFoundError:
        pytest.skip("the shipped FC weights are not there yet")
    root = need(DATA and DATA / "davis2016", "shared DAVIS-2016 data")
    out = tmp_path / "out"
    argv = ["davis", "--root", str(root), "--backbone", "fc", "--sequences", "dog"]
    argv += ["--max-frames", "3", "--out", str(out), "--device", "cpu", "--quiet"]
    assert evaluate.main(argv) == 0
    assert float(read_csv(out / "global_results-val.csv")[0]["J&F-Mean"]) > 0.5


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_torchrun_propagation_equals_one_process(tmp_path):
    """Two ranks share the sequences; the gathered table and every mask equal one process."""
    if shutil.which("torchrun") is None:
        pytest.skip("torchrun not on PATH")
    root = need(DATA and DATA / "davis2016", "shared DAVIS-2016 data")
    from sfcprop.models import resnet18

    torch.manual_seed(0)
    ckpt = tmp_path / "r18.pth"
    torch.save(resnet18().state_dict(), ckpt)
    args = ["davis", "--root", str(root), "--backbone", str(ckpt), "--max-frames", "3"]
    args += ["--sequences", "blackswan,dog,car-shadow", "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, "-m", "sfcprop.apps.eval", *args, "--out", str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    cmd = ["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "sfcprop.apps.eval"]
    two = subprocess.run(
        [*cmd, *args, "--out", str(tmp_path / "two")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    for name in ("global_results-val.csv", "per-object_metrics-val.csv"):
        assert read_csv(tmp_path / "one" / name) == read_csv(tmp_path / "two" / name)
    for seq in ("blackswan", "dog", "car-shadow"):
        for png in sorted((tmp_path / "one" / seq).glob("*.png")):
            assert png.read_bytes() == (tmp_path / "two" / seq / png.name).read_bytes()


def test_vip_scores_frame_0_too(tmp_path):
    """CRW's eval_vip.py counts every written PNG, frame 0 included (spec section 7)."""
    root = tmp_path / "VIP"
    (root / "lists").mkdir(parents=True)
    (root / "lists" / "val_videos.txt").write_text("v\n")
    ids = np.zeros((8, 8), np.uint8)
    ids[2:6, 2:6] = 3
    results = tmp_path / "res" / "v"
    results.mkdir(parents=True)
    for t in range(3):
        (root / "Images" / "v").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(root / "Images" / "v" / f"{t:06d}.jpg")
        palette_png(root / "Annotations" / "Category_ids" / "v" / f"{t:06d}.png", ids)
        palette_png(results / f"{t:06d}.png", ids if t else np.zeros_like(ids))  # 0 wrong
    seq = datasets.VIP(root)["v"]
    conf = evaluate.score_vip_sequence(seq, tmp_path / "res")
    assert conf.sum() == 3 * 64  # three frames counted
    assert conf[3, 0] == 16  # frame 0's missed part


def test_vip_label_quirk_reaches_the_propagation(tmp_path, monkeypatch, stub_model):
    import sfcprop.session

    root = tmp_path / "VIP"
    (root / "lists").mkdir(parents=True)
    (root / "lists" / "val_videos.txt").write_text("v\n")
    ids = np.zeros((16, 16), np.uint8)
    ids[4:12, 4:12], ids[12:, :] = 13, 2
    for t in range(2):
        (root / "Images" / "v").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16)).save(root / "Images" / "v" / f"{t:06d}.jpg")
        palette_png(root / "Annotations" / "Category_ids" / "v" / f"{t:06d}.png", ids)
    seen = {}

    class FakeSession:
        def __init__(self, frames, *a, codec=None, **kw):
            seen["codec"] = codec

        def annotate(self, t, mask):
            seen["codec"].check(t, mask, mask.shape)

        def result(self, return_soft=False):
            from sfcprop.session.results import Propagation

            n = len(seen["codec"].ids)
            soft = torch.zeros(2, n, 2, 2)
            soft[:, 0] = 1
            return Propagation(torch.zeros(0), seen["codec"].ids, soft)

    monkeypatch.setattr(sfcprop.session, "Session", FakeSession)
    out = tmp_path / "out"
    argv = ["vip", "--root", str(root), "--backbone", "n", "--out", str(out), "--quiet"]
    assert evaluate.main([*argv, "--size", "10", "--vip-label-quirk"]) == 0
    assert seen["codec"].bilinear_ids_at == (10, 10)
    assert set(seen["codec"].ids) > {0, 2, 13}  # blended values are classes too
