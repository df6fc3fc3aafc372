"""The confidence as an estimate of J (`sfcprop.session.estimate`), lost flags from it, and
the frames to annotate next (`sfcprop.session.suggest`)."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
import torch
from bad_inputs import PROPERTY
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from toys import PooledColour

import sfcprop
from sfcprop import Session
from sfcprop.bench.synthetic import _texture, generate_clip
from sfcprop.session.confidence import FrameStats, SimilarityTrend
from sfcprop.session.estimate import DROP_SCALE, SIGNALS, calibration, estimate, signals
from sfcprop.session.suggest import reach, suggest_keyframes

pytestmark = pytest.mark.usefixtures("one_thread")

unit = st.floats(0, 1)


@st.composite
def frame_stats(draw) -> FrameStats:
    n = draw(st.integers(1, 5))

    def column(elements):
        return draw(hnp.arrays(np.float64, n, elements=elements))

    return FrameStats(
        np.zeros(n),
        column(unit),
        column(unit),
        column(unit),
        column(st.floats(0, 1e6)),
        column(st.floats(-1, 1)),
        np.full(n, float(draw(st.integers(0, 10_000)))),
    )


@PROPERTY
@given(frame_stats(), st.sampled_from(["calibrated", "certainty-area"]))
def test_the_confidence_is_in_0_1_for_any_measures(stats, method):
    c = estimate(stats, method)
    assert c.shape == stats.certainty.shape and np.isfinite(c).all()
    assert ((c >= 0) & (c <= 1)).all()


def test_the_old_formula_by_name_is_certainty_times_the_area_floor():
    stats = FrameStats(
        *[np.array([0.9, 0.5, 0.2])] * 2, np.array([1.0, 0.1, 0.0]), *[np.ones(3)] * 4
    )
    want = np.array([0.9, 0.5 * 0.1 / 0.25, 0.0])
    np.testing.assert_allclose(estimate(stats, "certainty-area"), want)


def test_the_shipped_weights_say_where_they_came_from():
    table = json.loads(resources.files("sfcprop.session").joinpath("confidence.json").read_text())
    assert tuple(table["signals"]) == SIGNALS and len(table["weights"]) == len(SIGNALS)
    assert "bench_confidence.py" in table["command"] and "DAVIS" in table["fitted_on"]
    assert calibration()["weights"] == table["weights"]


def test_signals_are_one_column_each():
    stats = FrameStats(*[np.array([0.5, 1.0])] * 6, np.array([0.0, 100.0]))
    x = signals(stats)
    assert x.shape == (2, len(SIGNALS)) and (x[:, 0] == 1).all()
    assert x[:, SIGNALS.index("log-distance")].tolist() == pytest.approx([0.0, 1.0])


def test_a_session_by_the_old_name_reports_the_old_numbers():
    clip = generate_clip(num_frames=6, height=48, width=80, seed=2)
    s = Session(sfcprop.load_model(PooledColour().eval()), clip.frames, confidence="certainty-area")
    s.annotate(0, clip.masks[0])
    got = s.result().confidence.numpy()
    for t in range(1, 6):
        st_ = s.results[t].stats
        want = np.where(st_.certainty == 1, 1, st_.certainty * np.minimum(1, st_.area / 0.25))
        np.testing.assert_allclose(got[t], want, rtol=1e-6)
    with pytest.raises(ValueError, match="confidence must be one of"):
        Session(PooledColour().eval(), clip.frames, confidence="vibes")


def test_a_lost_flag_comes_on_or_before_the_object_is_gone():
    """Generated clips whose object 1 leaves at frame 6, with the colour-pooling test model
    (which lets a vanished object go): wherever its estimate goes below 0.2, the first
    "lost" flag is on or before the first frame without the object, never after."""
    for seed in (1, 2, 3):
        clip = generate_clip(num_frames=12, height=120, width=160, seed=seed, leaves_at=6)
        net = PooledColour().eval()
        result = sfcprop.propagate(clip.frames, clip.masks[0], net, topk=5, context=3, radius=4)
        gone = min(t for t in range(12) if not (clip.masks[t] == 1).any())
        flagged = [f.frame for f in result.flags if f.kind == "lost" and f.object == 1]
        assert flagged and flagged[0] <= gone, (seed, flagged, gone)


def look_alike_clip(seed: int, at: int, frames: int = 10):
    """The generated clip with object 1 replaced, on frame `at` only, by a look-alike: the
    same shape in the same place, reddish like it, another texture."""
    clip = generate_clip(num_frames=frames, height=240, width=320, seed=seed)
    rng = np.random.default_rng(100 + seed)
    other = _texture(rng, 240, 320, 12) * torch.tensor([0.85, 0.5, 0.3])[:, None, None]
    video = clip.frames.clone()
    region = clip.masks[at] == 1
    video[at][:, region] = (other * 255).round().to(torch.uint8)[:, region]
    return video, clip.masks


@pytest.mark.parametrize("seed", [0, 1])
def test_a_look_alike_in_the_objects_place_lowers_its_estimate(seed):
    """The shipped model follows the look-alike (same place, similar colour); the estimate
    of that frame is below both neighbours' (the similarity drop, `identity`), and below
    what the same frame gets without the guard."""
    at = 6
    video, masks = look_alike_clip(seed, at)
    result = sfcprop.propagate(video, masks[0], "fc")
    c = result.confidence[:, 0]
    assert c[at] < c[at - 1] and c[at] < c[at + 1], c.tolist()
    plain = sfcprop.propagate(generate_clip(10, 240, 320, seed).frames, masks[0], "fc")
    assert plain.confidence[at, 0] > c[at], (plain.confidence[:, 0].tolist(), c.tolist())


def test_the_similarity_drop_follows_its_recent_median():
    trend = SimilarityTrend()
    drops = [float(trend.drop(np.array([s]))[0]) for s in (0.98, 0.97, 0.8, 0.97, 0.96)]
    assert drops[0] == pytest.approx(0.02) and drops[1] == pytest.approx(0.02)
    assert drops[2] == pytest.approx(0.98 - 0.8)  # the median of 1, 0.98, 0.97
    assert drops[3] == pytest.approx(0.975 - 0.97)  # the dip moves the median little
    assert drops[4] == pytest.approx(0.97 - 0.96)  # the median of 1, 0.98, 0.97, 0.8, 0.97
    stats = FrameStats(*[np.ones(2)] * 6, np.zeros(2), np.array([0.0, DROP_SCALE / 2]))
    assert estimate(stats)[1] == pytest.approx(estimate(stats)[0] / 2)
    assert estimate(stats, "certainty-area")[1] == estimate(stats, "certainty-area")[0]


# --------------------------------------------------------------------------- suggestions


def test_reach_is_one_at_the_frame_and_zero_at_the_neighbouring_keyframes():
    r = reach(10, [0, 20], 30)
    assert r[10] == 1 and r[0] == 0 and r[20] == 0 and r[25] == 0
    assert r[5] == pytest.approx(0.5) and r[15] == pytest.approx(0.5)
    np.testing.assert_allclose(reach(25, [0, 20], 30)[25:], [1, 0.8, 0.6, 0.4, 0.2])


def test_suggestions_spread_over_the_troughs_and_skip_keyframes():
    c = np.ones((100, 1))
    c[10:30] = 0.2  # two bad stretches, the first worse
    c[60:80] = 0.4
    picks = suggest_keyframes(c, [0], 2)
    assert len(set(picks)) == 2 and 0 not in picks
    assert any(10 <= t < 30 for t in picks) and any(60 <= t < 80 for t in picks)
    assert suggest_keyframes(c, [0], 0) == []


@PROPERTY
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 40), st.integers(1, 3)), elements=unit),
    st.data(),
)
def test_suggestions_are_distinct_frames_that_are_not_keyframes(confidence, data):
    length = len(confidence)
    keys = data.draw(st.sets(st.integers(0, length - 1), min_size=1))
    n = data.draw(st.integers(0, 6))
    picks = suggest_keyframes(confidence, keys, n)
    assert len(picks) == min(n, length - len(keys)) and len(set(picks)) == len(picks)
    assert not set(picks) & keys and all(0 <= t < length for t in picks)


def test_a_session_suggests_again_after_each_correction():
    clip = generate_clip(num_frames=16, height=48, width=80, seed=4)
    s = Session(sfcprop.load_model(PooledColour().eval()), clip.frames)
    s.annotate(0, clip.masks[0])
    first = s.suggest_keyframes(2)
    assert len(first) == 2 and 0 not in first
    s.annotate(first[0], clip.masks[first[0]])
    again = s.suggest_keyframes(2)
    assert first[0] not in again and 0 not in again
    assert again == s.result().suggest_keyframes(2)


def test_propagate_result_suggests_too():
    clip = generate_clip(num_frames=10, height=48, width=80, seed=4)
    result = sfcprop.propagate(clip.frames, {0: clip.masks[0], 9: clip.masks[9]}, PooledColour())
    picks = result.suggest_keyframes(3)
    assert len(picks) == 3 and not {0, 9} & set(picks)
    torch.testing.assert_close(
        torch.tensor(picks), torch.tensor(suggest_keyframes(result.confidence.numpy(), [0, 9], 3))
    )
