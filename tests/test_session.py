"""A model built once, a session per video; one Config from the first call to the kernel;
the names of the flat 0.1 layout kept as deprecated aliases."""

import importlib
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from toys import PooledColour

import sfcprop
from sfcprop.bench.synthetic import generate_clip
from sfcprop.config import Config

PARAMS = dict(topk=5, context=3, radius=4)


@pytest.fixture(scope="module")
def clips():
    return [generate_clip(num_frames=8, height=48, width=64, seed=s) for s in (3, 4)]


@pytest.fixture(scope="module")
def net():
    return PooledColour().eval()


def keyframes(clip):
    return {0: clip.masks[0].long(), 6: clip.masks[6].long()}


def test_one_model_serves_many_sessions_as_separate_ones_would(clips, net, one_thread):
    """Two videos over one built model, interleaved, give what two fresh sessions give."""
    model = sfcprop.load_model(net, **PARAMS)
    shared = [sfcprop.Session(model, c.frames) for c in clips]
    for s, c in zip(shared, clips, strict=True):
        for t, m in keyframes(c).items():
            s.annotate(t, m)
    results = [s.result(return_soft=True) for s in reversed(shared)][::-1]
    for c, got in zip(clips, results, strict=True):
        alone = sfcprop.Session(c.frames, net, **PARAMS)  # the 0.1 form: its own model
        for t, m in keyframes(c).items():
            alone.annotate(t, m)
        want = alone.result(return_soft=True)
        assert torch.equal(got.ids, want.ids)
        torch.testing.assert_close(got.soft, want.soft, rtol=0, atol=0)
    assert model.stream is None  # sessions open their own passes: the model keeps none


def test_the_config_is_built_once_and_passed_whole(clips, net):
    model = sfcprop.load_model(net, **PARAMS)
    session = sfcprop.Session(model, clips[0].frames)
    assert session.config is model.config
    assert Config.preset(model.config) is model.config  # no overrides: the same object
    assert sfcprop.load_model(model) is model  # a built model passes through the factory


def test_settings_beside_a_built_model_are_an_error(clips, net):
    model = sfcprop.load_model(net)
    with pytest.raises(TypeError, match=r"built model carries its own settings.*'radius'"):
        sfcprop.Session(model, clips[0].frames, radius=3)
    with pytest.raises(TypeError, match=r"\['preset'\]"):
        sfcprop.propagate(clips[0].frames, clips[0].masks[0].long(), model, preset="davis")


def test_propagate_takes_a_built_model(clips, net, one_thread):
    clip = clips[0]
    model = sfcprop.load_model(net, **PARAMS)
    by_model = sfcprop.propagate(clip.frames, keyframes(clip), model)
    by_name = sfcprop.propagate(clip.frames, keyframes(clip), net, **PARAMS)
    assert torch.equal(by_model.ids, by_name.ids)
    assert torch.equal(by_model.confidence, by_name.confidence)


def test_fused_return_soft_uses_the_fused_config(clips, one_thread):
    """propagate() sized its soft results with the "davis" preset even when two backbones
    were fused; the session's own Config (davis-sfc, resized here) is used now."""
    clip = clips[0]
    out = sfcprop.propagate(
        clip.frames,
        clip.masks[0].long(),
        PooledColour(seed=1).eval(),
        PooledColour(seed=2).eval(),
        return_soft=True,
        size=(32, 40),
        context=2,
    )
    assert out.soft.shape == (8, 3, 4, 5)  # the 32x40 grid, not 48x64's 6x8


def test_track_keypoints_iter_yields_typed_results(clips, net, one_thread):
    clip = clips[0]
    points = np.array([[10.0, 12.0], [40.0, 30.0]])
    results = list(sfcprop.track_keypoints_iter(clip.frames, points, net, context=2))
    assert [r.t for r in results] == list(range(8))
    assert isinstance(results[0], sfcprop.TrackResult)
    t, found, confidence = results[0]  # still a tuple for 0.1's callers
    np.testing.assert_array_equal(found, points)
    assert results[0].confidence.tolist() == [1.0, 1.0]
    tracks = sfcprop.track_keypoints(clip.frames, points, net, context=2, progress=False)
    np.testing.assert_array_equal(tracks.points.numpy(), np.stack([r.points for r in results]))


@pytest.mark.parametrize(
    "old, new",
    [("Preset", sfcprop.Config), ("get_preset", None)],
)
def test_old_preset_names_warn_and_still_work(old, new):
    with pytest.warns(DeprecationWarning, match=f"sfcprop.{old} is deprecated"):
        value = getattr(sfcprop, old)
    if new is not None:
        assert value is new
    else:
        assert value("davis", radius=3) == Config.preset("davis", radius=3)
    with pytest.warns(DeprecationWarning, match=f"sfcprop.config.{old} is deprecated"):
        getattr(importlib.import_module("sfcprop.config"), old)


def test_propagator_preset_is_a_deprecated_name_for_config(net):
    model = sfcprop.load_model(net)
    with pytest.warns(DeprecationWarning, match="use .config"):
        assert model.preset is model.config


@pytest.mark.parametrize(
    "old, new",
    [
        ("sfcprop.codecs", "sfcprop.labels.codecs"),
        ("sfcprop.propagation", "sfcprop.session"),
        ("sfcprop.backbones", "sfcprop.models"),
        ("sfcprop.evaluate", "sfcprop.apps.eval"),
        ("sfcprop.backbones.bn_warmup", "sfcprop.models.bn_warmup"),  # a submodule of one
    ],
)
def test_module_paths_of_the_flat_layout_warn_and_give_the_new_module(old, new):
    """In a fresh interpreter (an import is cached per process): the old path imports, warns
    once naming the new one, and is the very same module object."""
    code = (
        "import importlib, warnings\n"
        "warnings.simplefilter('error')\n"
        f"new = importlib.import_module({new!r})\n"
        "try:\n"
        f"    importlib.import_module({old!r})\n"
        "except DeprecationWarning as e:\n"
        "    print(e)\n"
        "warnings.simplefilter('ignore')\n"
        f"print(importlib.import_module({old!r}) is new)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # a submodule of an old package: the package's own path warns first
    warned = ("sfcprop.backbones", "sfcprop.models") if old.count(".") > 1 else (old, new)
    assert out.stdout.splitlines() == [
        "{} moved to {} (sfcprop 0.2); the old path goes in the next release".format(*warned),
        "True",
    ]


def test_track_keypoints_takes_a_built_model(clips, net, one_thread):
    clip = clips[0]
    points = np.array([[10.0, 12.0], [40.0, 30.0]])
    at_own_size = replace(sfcprop.PRESETS["jhmdb"], size=None, resize="antialias", context=2)
    model = sfcprop.load_model(net, preset=at_own_size)  # track_keypoints' default, context 2
    by_model = sfcprop.track_keypoints(clip.frames, points, model, progress=False)
    by_name = sfcprop.track_keypoints(clip.frames, points, net, context=2, progress=False)
    torch.testing.assert_close(by_model.points, by_name.points, rtol=0, atol=0)
    with pytest.raises(TypeError, match=r"\['short_side'\]"):
        sfcprop.track_keypoints(clip.frames, points, model, short_side=32)


def test_a_keyframe_result_scores_what_the_codec_says(clips, net, one_thread):
    """A point left out of a keyframe (NaN) has confidence 0 in the frame's result, as its
    labels say (it was reported 1: the per-object ones of a mask keyframe)."""
    from sfcprop.labels import KeypointCodec

    clip = clips[0]
    session = sfcprop.Session(
        sfcprop.load_model(net, context=2), clip.frames, codec=KeypointCodec()
    )
    session.annotate(0, np.array([[10.0, 12.0], [np.nan, np.nan]]))
    first = next(iter(session.run()))
    assert first.labels[1].tolist() == [1.0, 0.0]
    assert first.confidence.tolist() == [1.0, 0.0]


def test_labels_as_mask_tensor_is_a_deprecated_name_for_io_s():
    from sfcprop import io, labels

    with pytest.warns(DeprecationWarning, match="moved to sfcprop.io.as_mask_tensor"):
        assert labels.as_mask_tensor is io.as_mask_tensor


def test_a_50_frame_result_has_a_short_repr():
    from sfcprop.session.confidence import Flag

    flags = [Flag(t, "lost", 2, 0.05) for t in (30, 31, 32, 45)] + [Flag(40, "cut", None, 0.3)]
    result = sfcprop.Propagation(
        torch.zeros(50, 120, 160, dtype=torch.uint8),
        [0, 1, 2],
        torch.zeros(50, 3, 15, 20),
        torch.ones(50, 2),
        flags,
        [0, 20],
    )
    text = repr(result)
    assert text == (
        "Propagation(ids [50, 120, 160] uint8, objects [1, 2], keyframes [0, 20], "
        "soft [50, 3, 15, 20] float32, 2 lost runs, 5 flags)"
    )
    assert str(result) == text and len(text) < 300
    many = sfcprop.Propagation(result.ids, list(range(40)), keyframes=list(range(0, 50, 5)))
    assert "objects [1, 2, 3, 4, 5, ..., 39] (39), keyframes [0, 5, 10, 15, 20, ..., 45] (10)" in (
        repr(many)
    )
    assert len(repr(many)) < 300


def test_frame_results_and_tracks_have_a_short_repr(clips, net, one_thread):
    clip = clips[0]
    first = next(sfcprop.propagate_iter(clip.frames, keyframes(clip), net, progress=False))
    assert repr(first) == (
        "FrameResult(t=0, labels [48, 64] uint8, soft [3, 6, 8] float32, "
        "confidence [1.0, 1.0], 0 flags)"
    )
    points = np.array([[10.0, 12.0], [np.nan, np.nan]])
    tracks = sfcprop.track_keypoints(clip.frames, points, net, context=2, progress=False)
    assert repr(tracks) == (
        "Tracks(points [8, 2, 2] float64, confidence [8, 2] float64: 2 points on 8 frames, "
        f"{int(tracks.points.isnan().any(-1).sum())} not found)"
    )
    assert "not found)" in repr(tracks) and "tensor(" not in repr(tracks)
    step = next(sfcprop.track_keypoints_iter(clip.frames, points, net, context=2))
    assert (
        repr(step) == "TrackResult(t=0, points [2, 2] float64, found 1 of 2, mean confidence 0.50)"
    )
