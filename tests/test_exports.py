"""`sfcprop export` and `sfcprop.io.exports`: results of real runs (generated clips, a toy
backbone) and written masks exported as DAVIS, COCO, YouTube-VIS and MOTS files, read
back with pycocotools and scored with trackeval; on a DAVIS sequence trackeval's J equals
`sfcprop eval davis`'s. Written results and bad inputs: tests/test_exports_inputs.py."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sfcprop import io
from sfcprop.apps import cli
from sfcprop.bench.synthetic import generate_clip
from sfcprop.io import exports

pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402

TOY = "toys:PooledColour"  # tests/toys.py, importable while pytest runs
FORMATS = ["--format", "davis", "--format", "coco", "--format", "ytvis", "--format", "mots"]
pytestmark = pytest.mark.usefixtures("one_thread")


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _frames(clip, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i, f in enumerate(clip.frames):
        Image.fromarray(f.permute(1, 2, 0).numpy()).save(folder / f"{i:05d}.png")
    return folder


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results root: two videos propagated by `sfcprop propagate` (toy backbone) and one
    folder of written masks (the clip's own, object 1 gone from frame 2 on; no
    confidence.csv), plus a summary.jsonl that export ignores."""
    base = tmp_path_factory.mktemp("exports")
    root = base / "results"
    for seed in (1, 2):
        clip = generate_clip(num_frames=5, height=48, width=80, seed=seed)
        frames = _frames(clip, base / f"frames{seed}")
        io.write_mask(base / f"first{seed}.png", clip.masks[0])
        out = root / f"video{seed}"
        argv = ["propagate", frames, base / f"first{seed}.png", "--out", out, "--backbone", TOY]
        assert cli.main([str(a) for a in [*argv, "--quiet"]]) == 0
    clip = generate_clip(num_frames=4, height=40, width=64, seed=5, leaves_at=2)
    for t, m in enumerate(clip.masks):
        io.write_mask(root / "written" / f"f{t}.png", m.numpy())
    (root / "summary.jsonl").write_text('{"video": "video1", "status": "done"}\n')
    return root


@pytest.fixture(scope="module")
def exported(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "exported"
    rc = cli.main([str(a) for a in ["export", results, *FORMATS, "--out", out, "--quiet"]])
    assert rc == 0
    return out


def ids_of(folder: Path) -> dict[str, np.ndarray]:
    """`{frame: ids}` of a video results folder, in frame order."""
    files = io.list_files(folder, (".png",))
    return {p.stem: np.array(Image.open(p)) for p in files}


def confidence_of(folder: Path) -> dict[tuple[str, int], float]:
    with open(folder / "confidence.csv", newline="") as f:
        return {(r["name"], int(r["object"])): float(r["confidence"]) for r in csv.DictReader(f)}


VIDEOS = ["video1", "video2", "written"]


def test_davis_copies_the_masks_as_they_are(results, exported):
    for video in VIDEOS:
        got = sorted(p.name for p in (exported / "davis" / video).iterdir())
        assert got == sorted(p.name for p in (results / video).glob("*.png"))
        for name in got:
            a, b = (exported / "davis" / video / name), (results / video / name)
            assert a.read_bytes() == b.read_bytes()


def test_coco_reads_back_with_pycocotools(results, exported):
    coco = COCO(str(exported / "coco" / "instances.json"))
    assert coco.loadCats(coco.getCatIds()) == [{"id": 1, "name": "object"}]
    images = sorted(coco.imgs.values(), key=lambda i: i["id"])
    expected = [(v, f) for v in VIDEOS for f in ids_of(results / v)]
    assert [i["file_name"] for i in images] == [f"{v}/{f}.jpg" for v, f in expected]
    n_annotations = 0
    for image, (video, frame) in zip(images, expected, strict=True):
        want = ids_of(results / video)[frame]
        got = np.zeros_like(want)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        for a in anns:
            m = coco.annToMask(a).astype(bool)
            assert not got[m].any()  # objects do not overlap
            got[m] = a["object"]
            assert a["area"] == m.sum() and a["category_id"] == 1
            ys, xs = np.nonzero(m)
            assert a["bbox"] == [
                xs.min(),
                ys.min(),
                xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1,
            ]
            if video != "written":
                assert a["score"] == pytest.approx(
                    confidence_of(results / video)[frame, a["object"]]
                )
            else:
                assert a["score"] == 1.0
        assert np.array_equal(got, want), (video, frame)
        assert (image["height"], image["width"]) == want.shape
        n_annotations += len(anns)
    assert n_annotations == sum(
        len(np.unique(ids)) - 1 for v in VIDEOS for ids in ids_of(results / v).values()
    )


def test_cocoeval_scores_the_coco_file_against_itself_as_perfect(exported, capsys):
    """The annotations (with their scores) as detections: COCO mask AP 1."""
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(exported / "coco" / "instances.json"))
    dt = gt.loadRes([dict(a) for a in gt.dataset["annotations"]])
    e = COCOeval(gt, dt, "segm")
    e.evaluate()
    e.accumulate()
    e.summarize()
    capsys.readouterr()
    assert e.stats[0] == pytest.approx(1.0) and e.stats[8] == pytest.approx(1.0)  # AP, AR@100


def test_ytvis_results_and_instances_give_back_the_ids(results, exported):
    entries = json.loads((exported / "ytvis" / "results.json").read_text())
    data = json.loads((exported / "ytvis" / "instances.json").read_text())
    assert [v["file_names"][0].split("/")[0] for v in data["videos"]] == VIDEOS
    by_video: dict[int, list] = {}
    for e in entries:
        by_video.setdefault(e["video_id"], []).append(e)
    for v, video in enumerate(VIDEOS, start=1):
        frames = ids_of(results / video)
        objects = sorted(set(np.unique(np.stack(list(frames.values())))) - {0})
        mine = sorted(by_video[v], key=lambda e: e["object"])
        assert [e["object"] for e in mine] == objects
        gt = [a for a in data["annotations"] if a["video_id"] == v]
        for e, a in zip(mine, sorted(gt, key=lambda a: a["object"]), strict=True):
            for t, ids in enumerate(frames.values()):
                want = ids == e["object"]
                if not want.any():
                    assert e["segmentations"][t] is None and a["segmentations"][t] is None
                    continue
                assert np.array_equal(mask_utils.decode(e["segmentations"][t]), want)
                rle = mask_utils.frPyObjects(a["segmentations"][t], *ids.shape)
                assert np.array_equal(mask_utils.decode(rle), want)
                assert a["areas"][t] == want.sum()
            if video != "written":
                c = [x for (_, o), x in confidence_of(results / video).items() if o == e["object"]]
                assert e["score"] == pytest.approx(np.mean(c), abs=1e-4)
    written = by_video[VIDEOS.index("written") + 1]
    assert [s is None for s in written[0]["segmentations"]] == [False, False, True, True]


def test_mots_txt_decodes_back(results, exported):
    for video in VIDEOS:
        frames = list(ids_of(results / video).values())
        got = [np.zeros_like(f) for f in frames]
        for line in (exported / "mots" / f"{video}.txt").read_text().splitlines():
            t, track, cls, h, w, counts = line.split(" ")
            m = mask_utils.decode({"size": [int(h), int(w)], "counts": counts.encode()})
            assert int(cls) == 1 and int(track) // 1000 == 1 and (int(h), int(w)) == m.shape
            assert not got[int(t) - 1][m > 0].any()
            got[int(t) - 1][m > 0] = int(track) % 1000
        for a, b in zip(got, frames, strict=True):
            assert np.array_equal(a, b)


def _trackeval():
    trackeval = pytest.importorskip("trackeval")
    quiet = {"PRINT_RESULTS": False, "PRINT_CONFIG": False, "TIME_PROGRESS": False}
    quiet |= {"OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False}
    return trackeval, trackeval.Evaluator({"USE_PARALLEL": False, **quiet})


def test_trackeval_scores_ytvis_against_itself_as_perfect(exported, tmp_path):
    """trackeval's YouTubeVIS layout: `<gt>/youtube_vis_<split>/<one>.json` and
    `<trackers>/youtube_vis_<split>/<tracker>/data/<one>.json` (GT_FOLDER is joined by
    string concatenation: it ends with a slash). TrackMAP without time ranges, as
    trackeval's own run_youtube_vis.py configures it (the dataset gives no track lengths)."""
    trackeval, evaluator = _trackeval()
    gt = tmp_path / "gt" / "youtube_vis_export"
    data = tmp_path / "trackers" / "youtube_vis_export" / "sfcprop" / "data"
    gt.mkdir(parents=True)
    data.mkdir(parents=True)
    shutil.copy(exported / "ytvis" / "instances.json", gt)
    shutil.copy(exported / "ytvis" / "results.json", data)
    dataset = trackeval.datasets.YouTubeVIS(
        {
            "GT_FOLDER": f"{tmp_path / 'gt'}/",
            "TRACKERS_FOLDER": f"{tmp_path / 'trackers'}/",
            "OUTPUT_FOLDER": str(tmp_path / "scores"),
            "SPLIT_TO_EVAL": "export",
            "PRINT_CONFIG": False,
        }
    )
    m = trackeval.metrics
    metrics = [m.TrackMAP({"USE_TIME_RANGES": False, "PRINT_CONFIG": False}), m.HOTA(), m.CLEAR()]
    res, messages = evaluator.evaluate([dataset], [*metrics, m.Identity()])
    assert messages == {"YouTubeVIS": {"sfcprop": "Success"}}
    scores = res["YouTubeVIS"]["sfcprop"]["COMBINED_SEQ"]["object"]
    assert np.all(scores["TrackMAP"]["AP_all"] == 1.0)
    assert np.all(scores["HOTA"]["HOTA"] == 1.0)
    assert scores["CLEAR"]["MOTA"] == 1.0 and scores["Identity"]["IDF1"] == 1.0
    assert scores["CLEAR"]["CLR_TP"] == 2 * 5 * 2 + 2 + 4  # every object of every frame


def test_trackeval_scores_mots_against_itself_as_perfect(results, tmp_path, capsys):
    """MOTSChallenge evaluates class 2 (pedestrian) only: the objects are mapped there by a
    categories file. The export is read where it lies (GT_LOC_FORMAT, SKIP_SPLIT_FOL)."""
    trackeval, evaluator = _trackeval()
    cats = tmp_path / "cats.json"
    cats.write_text(
        '{"categories": [{"id": 2, "name": "pedestrian"}], "objects": {"*": "pedestrian"}}'
    )
    out = tmp_path / "out"
    argv = ["export", results, "--format", "mots", "--categories", cats, "--out", out]
    rc, stdout, err = run(capsys, *argv)
    assert rc == 0 and stdout == f"wrote {out / 'mots'}\n", err
    assert (out / "mots" / "video1.txt").read_text().startswith("1 2001 2 48 80 ")
    dataset = trackeval.datasets.MOTSChallenge(
        {
            "GT_FOLDER": str(out / "mots"),
            "GT_LOC_FORMAT": "{gt_folder}/{seq}.txt",
            "TRACKERS_FOLDER": str(out),
            "TRACKERS_TO_EVAL": ["mots"],
            "TRACKER_SUB_FOLDER": "",
            "OUTPUT_FOLDER": str(tmp_path / "scores"),
            "SKIP_SPLIT_FOL": True,
            "SEQ_INFO": {"video1": 5, "video2": 5, "written": 4},
            "PRINT_CONFIG": False,
        }
    )
    m = trackeval.metrics
    res, messages = evaluator.evaluate([dataset], [m.HOTA(), m.CLEAR(), m.Identity()])
    assert messages == {"MOTSChallenge": {"mots": "Success"}}
    assert [p.name for p in out.iterdir()] == ["mots"]  # trackeval wrote elsewhere
    scores = res["MOTSChallenge"]["mots"]["COMBINED_SEQ"]["pedestrian"]
    assert np.all(scores["HOTA"]["HOTA"] == 1.0) and scores["CLEAR"]["MOTA"] == 1.0
    assert scores["Identity"]["IDF1"] == 1.0 and scores["CLEAR"]["IDSW"] == 0


def test_trackeval_j_on_davis_equals_sfcprop_eval_davis(data_dir, tmp_path, capsys):
    """A DAVIS-2016 sequence (8 frames, encoded at short side 240, the shipped model):
    propagated, exported as davis, scored by trackeval's DAVIS reader and J (its
    `JAndF._compute_j`: the full `JAndF.eval_sequence` imports scikit-image for F) against
    the ground truth; per frame equal to sfcprop.bench's J, and over the frames `sfcprop
    eval davis` scores (all but the first and last) equal to its J."""
    from sfcprop.apps.eval.davis import score_davis_sequence
    from sfcprop.bench import datasets, metrics

    trackeval, _ = _trackeval()
    root, name, n = data_dir / "davis2016", "blackswan", 8
    if not (root / "JPEGImages" / "480p" / name).is_dir():
        pytest.skip(f"DAVIS-2016 {name} not found under {root}")
    seq = datasets.davis(root, sequences=[name])[name]
    frames = tmp_path / "frames"
    frames.mkdir()
    for p in seq.frames[:n]:
        (frames / p.name).symlink_to(p)
    results = tmp_path / "results" / name
    argv = ["propagate", frames, seq.annotations[0], "--out", results, "--short-side", 240]
    assert run(capsys, *argv, "--quiet")[0] == 0
    out = tmp_path / "exported"
    assert run(capsys, "export", results, "--format", "davis", "--out", out)[0] == 0
    gt = tmp_path / "gt" / name  # trackeval reads 255 as void: DAVIS-2016's 0/255 as 0/1
    gt.mkdir(parents=True)
    for t in range(n):
        Image.fromarray(seq.read_annotation(t)).save(gt / f"{t:05d}.png")
    dataset = trackeval.datasets.DAVIS(
        {
            "GT_FOLDER": str(tmp_path / "gt"),
            "TRACKERS_FOLDER": str(out),
            "TRACKERS_TO_EVAL": ["davis"],
            "TRACKER_SUB_FOLDER": "",
            "OUTPUT_FOLDER": str(tmp_path / "scores"),
            "PRINT_CONFIG": False,
        }
    )
    data = dataset.get_preprocessed_seq_data(dataset.get_raw_seq_data("davis", name), "general")
    assert data["num_gt_ids"] == data["num_tracker_ids"] == 1
    j = trackeval.metrics.JAndF._compute_j(
        data["gt_dets"], data["tracker_dets"], 1, 1, data["num_timesteps"]
    )[0, 0]
    ours = [
        metrics.frame_scores(
            datasets.read_ids(out / "davis" / name / f"{seq.frame_names[t]}.png"),
            seq.read_annotation(t),
            1,
        )[0][0]
        for t in range(n)
    ]
    np.testing.assert_allclose(j, ours, atol=1e-9)
    scored = score_davis_sequence(seq, out / "davis", n)[f"{name}_1"][0]
    assert abs(j[1 : n - 1].mean() - scored.mean()) < 1e-6
    assert 0.5 < scored.mean() < 1.0  # a real result, not an empty or a copied mask


def test_keypoints_export_as_coco_keypoints(tmp_path, capsys):
    """A `sfcprop track` result and written tracks (a point not found) as one COCO
    keypoints file: [x, y, confidence] per point, 0 0 0 where not found."""
    clip = generate_clip(num_frames=4, height=48, width=80, seed=2)
    frames = _frames(clip, tmp_path / "frames")
    (tmp_path / "points.json").write_text('{"head": [20, 12], "tail": [50.5, 30]}')
    root = tmp_path / "results"
    argv = ["track", frames, tmp_path / "points.json", "--out", root / "tracked", "--backbone", TOY]
    assert run(capsys, *argv, "--quiet")[0] == 0
    points = np.array([[[1.0, 2.0], [np.nan, np.nan]], [[3.0, 4.0], [5.0, 6.0]]])
    (root / "written").mkdir()
    io.write_tracks(root / "written", points, np.array([[1.0, 0.0], [0.5, 0.25]]), ["a", "b"])
    rc, _, err = run(capsys, "export", root, "--format", "coco", "--out", tmp_path / "out")
    assert rc == 0, err
    coco = COCO(str(tmp_path / "out" / "coco" / "keypoints.json"))
    assert [c["keypoints"] for c in coco.loadCats(coco.getCatIds())] == [
        ["head", "tail"],
        ["a", "b"],
    ]
    tracks = json.loads((root / "tracked" / "tracks.json").read_text())
    anns = [coco.imgToAnns[i][0] for i in sorted(coco.imgs)]
    assert len(anns) == 4 + 2
    for ann, pts, conf in zip(anns[:4], tracks["points"], tracks["confidence"], strict=True):
        want = [v for p, c in zip(pts, conf, strict=True) for v in (*p, c)]
        assert ann["keypoints"] == pytest.approx(want, abs=1e-3) and ann["num_keypoints"] == 2
    assert anns[4]["keypoints"] == [1.0, 2.0, 1.0, 0.0, 0.0, 0.0] and anns[4]["num_keypoints"] == 1
    assert anns[5]["score"] == pytest.approx(0.375) and anns[5]["bbox"] == [3.0, 4.0, 2.0, 2.0]
    rc, _, err = run(capsys, "export", root, "--format", "ytvis", "--out", tmp_path / "o2")
    assert rc == 1 and "export as --format coco only" in err and not (tmp_path / "o2").exists()


def test_uncompressed_rle_round_trips_through_pycocotools():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (3, 5), (17, 9)]:
        for _ in range(5):
            ids = (rng.random(shape) < 0.5).astype(np.uint8)
            ids[0, 0] = rng.integers(0, 2)
            for obj, rle in exports.encode_objects(ids).items():
                raw = exports.uncompressed(rle)
                back = mask_utils.decode(mask_utils.frPyObjects(raw, *shape))
                assert np.array_equal(back, ids == obj) and sum(raw["counts"]) == ids.size
