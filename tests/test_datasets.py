"""Dataset readers on the shared data (skipped when absent) and on tiny layouts built here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sfcprop.bench import datasets
from sfcprop.io import matfile

DATA = datasets.data_root()
JHMDB_CLIP = "catch/Goal_Keeping_Tips_catch_f_cm_np1_fr_med_2"


def need(sub: str) -> Path:
    if DATA is None or not (DATA / sub).is_dir():
        pytest.skip(f"shared data {sub} not found (set {datasets.DATA_ENV} or ../shared/data)")
    return DATA / sub


def palette_png(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(ids.astype(np.uint8), mode="P")
    img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
    img.save(path)


def jpg(path: Path, hw=(16, 24)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", hw[::-1], (90, 120, 30)).save(path)


def make_davis2017(root: Path, seqs=("a", "b"), frames=4, annotate_all=True) -> Path:
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(seqs) + "\n")
    for s in seqs:
        for t in range(frames):
            jpg(root / "JPEGImages" / "480p" / s / f"{t:05d}.jpg")
            if t == 0 or annotate_all:
                ids = np.zeros((16, 24), np.uint8)
                ids[2:6, 2 + t : 6 + t] = 1
                ids[8:12, 10:20] = 2
                palette_png(root / "Annotations" / "480p" / s / f"{t:05d}.png", ids)
    return root


# ----------------------------------------------------------------------------- real data


def test_davis2016_layout_on_shared_data():
    root = need("davis2016")
    reader = datasets.davis(root)
    assert isinstance(reader, datasets.Davis2016)
    assert reader.names == [
        "blackswan", "bmx-trees", "breakdance", "car-shadow", "dog", "kite-surf", "parkour",
        "soapbox",
    ]  # fmt: skip
    seq = reader["bmx-trees"]
    assert len(seq.frames) == 80 and all(a is not None for a in seq.annotations)
    assert seq.frame_names[:2] == ["00000", "00001"] and seq.binary
    ids, palette = seq.read_first()
    assert ids.shape == (480, 854) and set(np.unique(ids)) == {0, 1} and palette is None
    assert set(np.unique(seq.read_annotation(40))) == {0, 1}
    multi = datasets.davis(root, first="multi", sequences=["kite-surf", "bmx-trees"])
    assert multi.names == ["bmx-trees", "kite-surf"]
    ids, palette = multi["kite-surf"].read_first()
    assert set(np.unique(ids)) == {0, 1, 2, 3} and palette[:6] == [0, 0, 0, 128, 0, 0]
    assert set(np.unique(multi["kite-surf"].read_annotation(0))) == {0, 1}  # scored: binary
    assert sum(len(s.frames) for s in reader) == 563


def test_jhmdb_sample_on_shared_data():
    scipy_io = pytest.importorskip("scipy.io")
    root = need("jhmdb-sample")
    reader = datasets.JHMDB(root)
    assert reader.names == [JHMDB_CLIP]
    seq = reader[JHMDB_CLIP]
    assert len(seq.frames) == 40 and seq.frames[0].name == "00001.png"
    mat = root / "joint_positions" / JHMDB_CLIP / "joint_positions.mat"
    pos = scipy_io.loadmat(mat)["pos_img"]
    assert seq.keypoints.shape == (40, 15, 2)
    assert np.array_equal(seq.keypoints, pos.transpose(2, 1, 0) - 1)
    assert seq.first_keypoints.tolist()[0] == [285.5, 105.5]


def test_mat_reader_matches_scipy_on_the_shared_file():
    scipy_io = pytest.importorskip("scipy.io")
    mat = need("jhmdb-sample") / "joint_positions" / JHMDB_CLIP / "joint_positions.mat"
    ours, theirs = matfile.read_mat(mat), scipy_io.loadmat(mat)
    assert set(ours) == {"pos_img", "pos_world"}
    for k in ours:
        assert ours[k].dtype == theirs[k].dtype and np.array_equal(ours[k], theirs[k])


# ----------------------------------------------------------------------------- MAT-v5


@pytest.mark.parametrize("compress", [False, True])
def test_mat_reader_round_trips_scipy_files(tmp_path, compress):
    scipy_io = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(0)
    arrays = {
        "pos_img": rng.normal(size=(2, 15, 7)) * 100,
        "small": np.array([[3.0]]),
        "ints": rng.integers(-300, 300, (3, 4)).astype(np.int16),
        "bytes": rng.integers(0, 255, (5, 2)).astype(np.uint8),
        "single": rng.normal(size=(4, 1)).astype(np.float32),
        "flags": rng.random((2, 3)) > 0.5,
        "cplx": rng.normal(size=(2, 2)) + 1j * rng.normal(size=(2, 2)),
        "empty": np.zeros((0, 3)),
    }
    path = tmp_path / "t.mat"
    skipped = {"name": "a string", "s": {"field": np.ones(3)}}
    scipy_io.savemat(path, {**arrays, **skipped}, do_compression=compress)
    got = matfile.read_mat(path)
    assert set(got) == set(arrays)
    loaded = scipy_io.loadmat(path)
    for k in arrays:
        ref = loaded[k]
        assert got[k].shape == ref.shape and np.array_equal(got[k], ref), k
        assert got[k].dtype == (bool if k == "flags" else ref.dtype), k


def test_mat_reader_refuses_other_files(tmp_path):
    bad = tmp_path / "x.mat"
    bad.write_bytes(b"MATLAB 7.3 MAT-file" + b"\0" * 200)
    with pytest.raises(ValueError, match="not a MATLAB v5"):
        matfile.read_mat(bad)
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a MATLAB v5"):
        matfile.read_mat(bad)


# ----------------------------------------------------------------------------- tiny layouts


def test_davis2017_tiny_layout(tmp_path):
    root = make_davis2017(tmp_path / "DAVIS", annotate_all=False)
    reader = datasets.davis(root)
    assert isinstance(reader, datasets.Davis2017) and len(reader) == 2
    seq = reader["b"]
    assert len(seq.frames) == 4 and not seq.binary
    assert seq.annotations[0] is not None and seq.annotations[1:] == (None, None, None)
    ids, palette = seq.read_first()
    assert set(np.unique(ids)) == {0, 1, 2} and palette[3:6] == [128, 0, 0]
    assert seq.read_annotation(2) is None
    assert [s.name for s in reader] == ["a", "b"]
    with pytest.raises(KeyError, match="no sequence 'c'"):
        reader["c"]
    with pytest.raises(KeyError, match="unknown sequence"):
        datasets.davis(root, sequences=["a", "zz"])


def test_davis_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing DAVIS root folder"):
        datasets.davis(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="neither ImageSets/2017 nor ImageSets/480p"):
        datasets.davis(tmp_path)
    root = make_davis2017(tmp_path / "D")
    with pytest.raises(FileNotFoundError, match=r"missing split list: .*test-dev\.txt"):
        datasets.Davis2017(root, split="test-dev")
    (root / "ImageSets" / "2017" / "val.txt").write_text("a\nb\nghost\n")
    reader = datasets.Davis2017(root)
    with pytest.raises(FileNotFoundError, match=r"missing frames of ghost folder: .*ghost"):
        reader["ghost"]
    (root / "Annotations" / "480p" / "a" / "00000.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"first-frame annotation of a: .*00000\.png"):
        reader["a"]
    with pytest.raises(FileNotFoundError, match=r"missing split list: .*ImageSets/480p/val\.txt"):
        datasets.Davis2016(root)


def test_davis2016_multi_first_mask_missing(tmp_path):
    root = tmp_path / "D16"
    (root / "ImageSets" / "480p").mkdir(parents=True)
    (root / "ImageSets" / "480p" / "val.txt").write_text("s\n")
    jpg(root / "JPEGImages" / "480p" / "s" / "00000.jpg")
    (root / "Annotations" / "480p" / "s").mkdir(parents=True)
    Image.fromarray(np.full((16, 24), 255, np.uint8)).save(
        root / "Annotations" / "480p" / "s" / "00000.png"
    )
    assert datasets.davis(root)["s"].read_first()[0].max() == 1
    with pytest.raises(FileNotFoundError, match="DAVIS-2017 first-frame mask of s"):
        datasets.davis(root, first="multi")["s"]


def make_jhmdb(root: Path, clips=("run/c1", "jump/c2"), frames=3) -> Path:
    scipy_io = pytest.importorskip("scipy.io")
    for i, clip in enumerate(clips):
        for t in range(frames):
            jpg(root / "Rename_Images" / clip / f"{t + 1:05d}.png")
        pos = np.arange(2 * 15 * frames, dtype=float).reshape(2, 15, frames, order="F") + i
        (root / "joint_positions" / clip).mkdir(parents=True)
        scipy_io.savemat(root / "joint_positions" / clip / "joint_positions.mat", {"pos_img": pos})
    return root


def test_jhmdb_tiny_layout_and_split_files(tmp_path):
    root = make_jhmdb(tmp_path / "J")
    reader = datasets.JHMDB(root)
    assert reader.names == ["jump/c2", "run/c1"]
    seq = reader["run/c1"]
    assert seq.keypoints.shape == (3, 15, 2)
    assert seq.keypoints[0, 0].tolist() == [-1.0, 0.0]  # 1-based -> 0-based
    split = tmp_path / "split.txt"
    split.write_text("run/c1\n# comment\n\n")
    assert datasets.JHMDB(root, split).names == ["run/c1"]
    split.write_text(
        f"{root}/Rename_Images/jump/c2 {root}/joint_positions/jump/c2/joint_positions.mat\n"
    )
    seq = datasets.JHMDB(root, split)["jump/c2"]
    assert seq.keypoints[0, 0].tolist() == [0.0, 1.0]
    split.write_text("run/ghost\n")
    with pytest.raises(FileNotFoundError, match=r"missing frames of run/ghost folder"):
        datasets.JHMDB(root, split)["run/ghost"]
    split.write_text("just-a-clip\n")
    with pytest.raises(ValueError, match="cannot read JHMDB split line"):
        datasets.JHMDB(root, split)
    with pytest.raises(FileNotFoundError, match="missing JHMDB split list"):
        datasets.JHMDB(root, tmp_path / "none.txt")
    (root / "joint_positions" / "run" / "c1" / "joint_positions.mat").unlink()
    split.write_text("run/c1\n")
    with pytest.raises(FileNotFoundError, match=r"missing joint positions of run/c1"):
        datasets.JHMDB(root, split)["run/c1"]


def test_jhmdb_frame_count_mismatch_warns_and_truncates(tmp_path):
    root = make_jhmdb(tmp_path / "J", clips=("a/b",), frames=3)
    jpg(root / "Rename_Images" / "a" / "b" / "00004.png")
    with pytest.warns(UserWarning, match="4 frames but 3 annotated"):
        seq = datasets.JHMDB(root)["a/b"]
    assert len(seq.frames) == 3


def make_vip(root: Path, videos=("v1", "v2"), frames=3) -> Path:
    (root / "lists").mkdir(parents=True)
    (root / "lists" / "val_videos.txt").write_text("\n".join(f"Images/{v}" for v in videos))
    for v in videos:
        for t in range(frames):
            jpg(root / "Images" / v / f"{t:06d}.jpg")
            ids = np.zeros((16, 24), np.uint8)
            ids[3:9, 4:12] = 5 + t
            ids[10:14, 4:12] = 13
            if t != 1:  # frame 1 not annotated
                palette_png(root / "Annotations" / "Category_ids" / v / f"{t:06d}.png", ids)
    return root


def test_vip_tiny_layout(tmp_path):
    root = make_vip(tmp_path / "VIP_Fine")
    reader = datasets.VIP(root)
    assert reader.names == ["v1", "v2"]
    seq = reader["v2"]
    assert seq.annotations[1] is None and seq.annotations[2] is not None
    assert set(np.unique(seq.read_first()[0])) == {0, 5, 13}
    other = tmp_path / "mine.txt"
    other.write_text("v2\n")
    assert datasets.VIP(root, other).names == ["v2"]
    with pytest.raises(FileNotFoundError, match=r"missing split list: .*test_videos\.txt"):
        datasets.VIP(root, "test")


def test_read_ids_refuses_rgb(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="RGB image"):
        datasets.read_ids(tmp_path / "rgb.png")
    with pytest.raises(FileNotFoundError, match="missing mask file"):
        datasets.read_ids(tmp_path / "none.png")
