"""Keyframes in both directions, corrections, confidence and flags (`Session`)."""

import numpy as np
import pytest
import torch
from toys import PooledColour

from sfcprop import labels
from sfcprop.bench.synthetic import generate_clip
from sfcprop.core.propagator import Propagator
from sfcprop.session.api import propagate, propagate_soft
from sfcprop.session.combine import RULES, combine
from sfcprop.session.session import Session

PARAMS = dict(topk=5, context=3, radius=4)


@pytest.fixture(scope="module")
def clip():
    return generate_clip(num_frames=12, height=64, width=96, seed=1)


@pytest.fixture(scope="module")
def net():
    return PooledColour().eval()


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def test_frame_0_alone_is_the_streaming_propagator(clip, net, one_thread):
    """One keyframe at frame 0: the published protocol, computed step by step directly."""
    mask = clip.masks[0].long()
    out = propagate(clip.frames, mask, net, return_soft=True, **PARAMS)
    p = Propagator(net, **PARAMS)
    ids = labels.label_ids(mask)
    p.start(clip.frames[0], labels.to_grid(mask, ids, (8, 12)))
    for t in range(1, len(clip.frames)):
        soft = p.step(clip.frames[t])
        torch.testing.assert_close(out.soft[t], soft, rtol=0, atol=0)
        assert torch.equal(out.ids[t], labels.decode(soft, ids, (64, 96)))
    assert out.keyframes == [0] and out.confidence.shape == (12, 2)


def test_keyframes_come_back_as_given(clip, net, one_thread):
    keys = {0: clip.masks[0], 5: clip.masks[5], 11: clip.masks[11]}
    out = propagate(clip.frames, {t: m.long() for t, m in keys.items()}, net, **PARAMS)
    for t, m in keys.items():
        assert torch.equal(out.ids[t], m)
    assert out.keyframes == [0, 5, 11]
    assert (out.confidence[[0, 5, 11]] == 1).all()


def test_an_object_of_a_later_keyframe_is_tracked_both_ways(clip, net, one_thread):
    first = clip.masks[0].long().clone()
    first[first == 2] = 0  # object 2 is not annotated on frame 0
    out = propagate(clip.frames, {0: first, 6: clip.masks[6].long()}, net, **PARAMS)
    assert out.label_ids == [0, 1, 2]
    truth = clip.masks == 2
    # tracked backwards from frame 6 (an object missing from a keyframe is absent there:
    # the forward pass from frame 0 says background, so it wins far from frame 6)
    backward = [iou(out.ids[t] == 2, truth[t]) for t in (4, 5)]
    assert min(backward) > 0.5, backward
    assert not (out.ids[0] == 2).any()  # as given
    # forwards from frame 6: a pass of its own, as if the video started there
    tail = propagate(clip.frames[6:], clip.masks[6].long(), net, **PARAMS)
    assert torch.equal(out.ids[6:], tail.ids)


def test_more_keyframes_give_better_masks(clip, net, one_thread):
    one = propagate(clip.frames, clip.masks[0].long(), net, **PARAMS)
    two = propagate(clip.frames, {0: clip.masks[0].long(), 11: clip.masks[11].long()}, net)
    late = range(7, 11)
    score = {
        name: np.mean([iou(r.ids[t] == o, clip.masks[t] == o) for t in late for o in (1, 2)])
        for name, r in (("one", one), ("two", two))
    }
    assert score["two"] > score["one"], score


@pytest.mark.parametrize("rule", ["distance", "certainty"])
def test_reversing_the_video_and_its_keyframes_reverses_the_result(clip, net, rule, one_thread):
    t_max = len(clip.frames) - 1
    keys = {0: clip.masks[0].long(), 4: clip.masks[4].long(), t_max: clip.masks[t_max].long()}
    out = propagate(clip.frames, keys, net, rule=rule, return_soft=True, **PARAMS)
    rev_keys = {t_max - t: m for t, m in keys.items()}
    rev = propagate(clip.frames.flip(0), rev_keys, net, rule=rule, return_soft=True, **PARAMS)
    torch.testing.assert_close(rev.soft.flip(0), out.soft, rtol=0, atol=1e-5)
    assert (rev.ids.flip(0) == out.ids).float().mean() > 0.999


def test_combination_rules():
    fw = torch.tensor([[[0.9]], [[0.1]]])
    bw = torch.tensor([[[0.4]], [[0.6]]])
    torch.testing.assert_close(combine(fw, bw, 1, 3, "distance"), 0.75 * fw + 0.25 * bw)
    assert torch.equal(combine(fw, bw, 3, 1, "nearest"), bw)
    assert torch.equal(combine(fw, bw, 2, 2, "nearest"), fw)
    a, b = 0.5 * 0.9, 0.5 * 0.6  # equal distances: weights by each pass's certainty
    torch.testing.assert_close(combine(fw, bw, 2, 2, "certainty"), (a * fw + b * bw) / (a + b))
    for rule in RULES:
        areas = (np.array([0.0, 1.0]), np.array([0.0, 1.0]))
        assert torch.allclose(combine(fw, bw, 1, 2, rule, areas).sum(0), torch.ones(1, 1))
    with pytest.raises(ValueError, match="rule must be one of"):
        combine(fw, bw, 1, 1, "vote")


def test_the_guard_keeps_the_pass_that_trusts_itself_where_the_passes_disagree():
    """Agreeing passes: "distance". Disagreeing ones (IoU < 0.5): the pass whose own
    estimate (certainty, area against its keyframe, distance) is higher, whole."""
    obj = torch.zeros(2, 4, 4)
    obj[1, :2, :2] = 1  # the object in the top-left corner, certain
    obj[0] = 1 - obj[1]
    moved = obj.roll(2, dims=2)  # the same object elsewhere: IoU 0
    area = np.array([12.0, 4.0])  # its keyframe: 4 cells
    same = combine(obj, obj * 0.9 + 0.05, 1, 3, "guard", (area, area))
    torch.testing.assert_close(same, 0.75 * obj + 0.25 * (obj * 0.9 + 0.05))
    unsure = 0.55 * moved + 0.45 * moved.flip(0)  # backward: the object at 0.55 only
    assert torch.equal(combine(obj, unsure, 3, 1, "guard", (area, area)), obj)
    assert torch.equal(combine(unsure, obj, 1, 3, "guard", (area, area)), obj)
    small = np.array([15.0, 1.0])  # forward's keyframe had 1 cell: equal areas ...
    shrunk = np.array([0.0, 40.0])  # ... backward's 40: its object shrank to a tenth
    assert torch.equal(combine(obj, moved, 3, 1, "guard", (small, shrunk)), obj)
    with pytest.raises(ValueError, match="needs the keyframes' areas"):
        combine(obj, moved, 1, 1, "guard")


def test_keyframe_memory_keeps_other_keyframes_and_a_correction_equals_a_fresh_run(
    clip, net, one_thread
):
    """`keyframe_memory=2`: each pass also keeps the two nearest other keyframes as global
    keys. A keyframe added later gives what a fresh run with all of them gives (every
    stretch is recomputed); the extra keys change the result; one keyframe alone is the
    published protocol, whatever the setting."""
    keys = {t: clip.masks[t].long() for t in (0, 6, 11)}
    s = Session(clip.frames, net, keyframe_memory=2, **PARAMS)
    for t in (0, 11):
        s.annotate(t, keys[t])
    s.result()
    s.annotate(6, keys[6])
    corrected = s.result(return_soft=True)
    fresh = propagate(clip.frames, keys, net, keyframe_memory=2, return_soft=True, **PARAMS)
    torch.testing.assert_close(corrected.soft, fresh.soft, rtol=0, atol=1e-6)
    plain = propagate(clip.frames, keys, net, return_soft=True, **PARAMS)
    assert (plain.soft - fresh.soft).abs().max() > 1e-3
    alone = [
        propagate(clip.frames, keys[0], net, keyframe_memory=m, return_soft=True, **PARAMS)
        for m in (0, 2)
    ]
    assert torch.equal(alone[0].soft, alone[1].soft)
    with pytest.raises(ValueError, match="keyframe_memory"):
        Session(clip.frames, net, keyframe_memory=-1)


def look_alike_at_the_end(seed: int, frames: int = 11):
    """The generated clip whose last frame shows, in object 1's place, another object
    (another texture and colour; the annotator's mask is the same region): a backward
    pass from it finds nothing like it in the frames before."""
    from sfcprop.bench.synthetic import _texture

    clip = generate_clip(num_frames=frames, height=240, width=320, seed=seed)
    rng = np.random.default_rng(100 + seed)
    other = _texture(rng, 240, 320, 3) * torch.tensor([0.5, 0.6, 0.35])[:, None, None]
    video = clip.frames.clone()
    region = clip.masks[-1] == 1
    video[-1][:, region] = (other * 255).round().to(torch.uint8)[:, region]
    return video, clip.masks


@pytest.mark.parametrize("seed", [0, 1])
def test_a_keyframe_with_a_look_alike_does_not_make_the_stretch_worse(seed, one_thread):
    """With the shipped model, the backward pass from the last keyframe loses object 1 (J
    near 0); the default rule stays at least as good as the forward pass alone."""
    video, masks = look_alike_at_the_end(seed)
    last = len(video) - 1
    keys = {0: masks[0], last: masks[last]}
    s = Session(video, "fc", keep_passes=True)
    for t, m in keys.items():
        s.annotate(t, m)
    both = s.result()
    forward = propagate(video[:last], masks[0], "fc")
    j = {"both": [], "forward": [], "backward": []}
    for t in range(1, last):
        truth = masks[t] == 1
        backward = labels.decode(s.passes[t][1], [0, 1, 2], truth.shape) == 1
        j["both"].append(iou(both.ids[t] == 1, truth))
        j["forward"].append(iou(forward.ids[t] == 1, truth))
        j["backward"].append(iou(backward, truth))
    mean = {k: float(np.mean(v)) for k, v in j.items()}
    assert mean["backward"] < 0.3 < mean["forward"], mean  # the case: one pass clearly wrong
    assert mean["both"] >= mean["forward"] - 1e-6, mean


def test_a_correction_recomputes_only_the_neighbouring_frames(clip, net, one_thread):
    s = Session(clip.frames, net, feature_cache=0, **PARAMS)  # no feature reuse: count calls
    s.annotate(0, clip.masks[0].long())
    s.annotate(8, clip.masks[8].long())
    before = s.result()
    kept = {t: s.results[t].soft for t in range(9, 12)}
    encoded, steps = s.model.encoded, s.steps
    s.annotate(4, clip.masks[4].long())  # a correction between the keyframes 0 and 8
    after = s.result()
    # passes 0->4, 4->0, 4->8, 8->4: each encodes its keyframe and the 3 frames between
    assert s.model.encoded - encoded == 4 * 4
    assert s.steps - steps == 4 * 3
    for t in range(9, 12):  # beyond the next keyframe: untouched
        assert s.results[t].soft is kept[t]
        assert torch.equal(after.ids[t], before.ids[t])
    assert torch.equal(after.ids[4], clip.masks[4])
    fresh = propagate(clip.frames, {t: clip.masks[t].long() for t in (0, 4, 8)}, net, **PARAMS)
    assert torch.equal(after.ids, fresh.ids)
    torch.testing.assert_close(after.confidence, fresh.confidence)


def test_a_correction_reuses_the_features_it_kept(clip, net, one_thread):
    s = Session(clip.frames, net, **PARAMS)
    s.annotate(0, clip.masks[0].long())
    s.annotate(11, clip.masks[11].long())
    s.result()
    encoded = s.model.encoded
    assert encoded == 12  # each frame once, although two passes read most of them
    s.annotate(6, clip.masks[6].long())
    s.result()
    assert s.model.encoded == encoded  # every feature map was in the cache
    s.remove(6)
    assert torch.equal(
        s.result().ids[6],
        propagate(
            clip.frames, {0: clip.masks[0].long(), 11: clip.masks[11].long()}, net, **PARAMS
        ).ids[6],
    )


def test_confidence_is_in_0_1_and_drops_when_an_object_leaves(net, one_thread):
    """With the colour-pooling test model, which lets a vanished object go: object 1's
    estimate falls below 0.2 (and it is flagged) on the frame it leaves; object 2's stays
    near its true J."""
    from sfcprop.bench.metrics import jaccard

    clip = generate_clip(num_frames=12, height=120, width=160, seed=1, leaves_at=6)
    out = propagate(clip.frames, clip.masks[0].long(), net, **PARAMS)
    c = out.confidence.numpy()
    assert c.shape == (12, 2) and (c >= 0).all() and (c <= 1).all()
    gone = min(t for t in range(12) if not (clip.masks[t] == 1).any())
    assert (c[gone:, 0] < 0.2).all() and (c[1:gone, 0] > 0.5).all()
    lost = [f.frame for f in out.flags if f.kind == "lost" and f.object == 1]
    assert lost and lost[0] == gone
    j2 = [jaccard(out.ids[t].numpy() == 2, clip.masks[t].numpy() == 2) for t in range(1, 12)]
    assert abs(c[1:, 1].mean() - np.mean(j2)) < 0.25


def test_a_scene_cut_is_flagged(net, one_thread):
    a = generate_clip(num_frames=6, height=64, width=96, seed=1)
    b = generate_clip(num_frames=6, height=64, width=96, seed=7)
    frames = torch.cat([a.frames, 255 - b.frames.flip(-1)])  # another scene
    out = propagate(frames, a.masks[0].long(), net, **PARAMS)
    cuts = [f.frame for f in out.flags if f.kind == "cut"]
    assert cuts == [6], out.flags


def test_soft_keyframes(clip, net, one_thread):
    mask = clip.masks[0].long()
    grid = labels.to_grid(mask, [0, 1, 2], (8, 12))
    one = propagate_soft(clip.frames, grid, net, **PARAMS)
    ref = propagate(clip.frames, mask, net, return_soft=True, **PARAMS)
    torch.testing.assert_close(one, ref.soft, rtol=0, atol=0)
    last = labels.to_grid(clip.masks[11].long(), [0, 1, 2], (8, 12))
    two = propagate_soft(clip.frames, {0: grid, 11: last}, net, **PARAMS)
    assert two.shape == (12, 3, 8, 12) and torch.equal(two[11], last)


@pytest.mark.parametrize(
    "keys, message",
    [
        ({}, "no annotations"),
        ({-1: None}, "integer >= 0"),
        ({40: None}, "past the end"),
    ],
)
def test_bad_keyframes(clip, net, keys, message):
    keys = {t: clip.masks[0].long() if m is None else m for t, m in keys.items()}
    with pytest.raises(ValueError, match=message):
        propagate(clip.frames, keys, net, **PARAMS)


def test_bad_rule(clip, net):
    with pytest.raises(ValueError, match="rule must be one of"):
        Session(clip.frames, net, rule="vote")


def test_keypoint_keyframes(clip, net, one_thread):
    from sfcprop.session.tracking import track_keypoints

    p0 = [[20.0, 30.0], [70.0, 40.0]]
    p6 = [[30.0, 32.0], [60.0, 38.0]]
    tracks = track_keypoints(clip.frames, {0: p0, 6: p6}, net, context=3)
    assert tracks.points.shape == (12, 2, 2)
    np.testing.assert_array_equal(tracks.points[6].numpy(), p6)  # as given
    assert (tracks.confidence[[0, 6]] == 1).all()
    with pytest.raises(ValueError, match="same 2 points"):
        track_keypoints(clip.frames, {0: p0, 6: p6[:1]}, net, context=3)


def test_crw_vip_label_quirk_blends_ids_into_extra_channels():
    """Spec section 5: a grey map with ids {0, 2, 13, 14} resized bilinearly holds
    blended values that become extra label channels."""
    from sfcprop.labels.codecs import MaskCodec

    mask = torch.zeros(40, 40, dtype=torch.long)
    mask[8:30, 5:20], mask[8:30, 20:35], mask[30:, :] = 2, 13, 14
    plain = MaskCodec()
    plain.check(0, mask, (40, 40))
    assert plain.ids == [0, 2, 13, 14]
    quirk = MaskCodec(bilinear_ids_at=(28, 28))
    quirk.check(0, mask, (40, 40))
    assert set(plain.ids) < set(quirk.ids)  # blended boundary values are channels too
    soft = quirk.encode(mask, (40, 40), (28, 28), (4, 4))
    assert soft.shape == (len(quirk.ids), 4, 4)
    torch.testing.assert_close(soft.sum(0), torch.ones(4, 4))
    with pytest.raises(ValueError, match="bilinear_ids_at"):
        quirk.encode(mask, (40, 40), (40, 40), (5, 5))
