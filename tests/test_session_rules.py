"""What a `Session` refuses or says rather than a result that looks right and is not: changes
during a run, threads, empty keyframes, removed keyframes, frames with no result, objects
smaller than a grid cell, backbones that give NaN."""

from __future__ import annotations

import threading

import pytest
import torch
from bad_inputs import PROPERTY
from hypothesis import given
from hypothesis import strategies as st
from toys import PooledColour

import sfcprop
from sfcprop import Session
from sfcprop.bench.synthetic import generate_clip
from sfcprop.core.features import FeatureError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip():
    return generate_clip(num_frames=10, height=48, width=80, seed=5)


def _model():
    return sfcprop.load_model(PooledColour().eval())


def _fresh(clip, keys: dict) -> sfcprop.Propagation:
    session = Session(_model(), clip.frames)
    for t, m in sorted(keys.items()):
        session.annotate(t, m)
    return session.result()


# --------------------------------------------------------------------------- runs


def test_a_change_inside_a_run_loop_is_refused_and_the_next_run_sees_it(clip):
    session = Session(_model(), clip.frames)
    session.annotate(0, clip.masks[0])
    for r in session.run():
        if r.t == 3:
            with pytest.raises(RuntimeError, match="while this session's run\\(\\) is being"):
                session.annotate(6, clip.masks[6])
            with pytest.raises(RuntimeError, match="cannot call result\\(\\) while"):
                session.result()
            break
    session.annotate(6, clip.masks[6])  # the loop is over: allowed
    got = session.result()
    want = _fresh(clip, {0: clip.masks[0], 6: clip.masks[6]})
    assert torch.equal(got.ids, want.ids) and torch.allclose(got.confidence, want.confidence)


def test_two_threads_calling_result_wait_for_one_run(clip):
    session = Session(_model(), clip.frames)
    session.annotate(0, clip.masks[0])
    session.annotate(7, clip.masks[7])
    results, errors = [], []

    def call():
        try:
            results.append(session.result())
        except Exception as e:  # noqa: BLE001 - the test reports any
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    want = _fresh(clip, {0: clip.masks[0], 7: clip.masks[7]})
    for got in results:
        assert torch.equal(got.ids, want.ids)
    assert session.steps == len(clip.frames) - 2 + 6  # each frame once per pass: no rerun


# --------------------------------------------------------------------------- keyframes


def test_an_empty_keyframe_is_allowed_anywhere_in_session_and_propagate_alike(clip):
    empty = torch.zeros_like(clip.masks[0])
    keys = {0: empty, 5: clip.masks[5]}
    got = sfcprop.propagate(clip.frames, keys, PooledColour().eval())
    want = _fresh(clip, keys)
    assert torch.equal(got.ids, want.ids) and got.label_ids == want.label_ids
    assert not got.ids[0].any() and torch.equal(got.ids[5], clip.masks[5].to(torch.uint8))


@pytest.mark.parametrize("n", [1, 2])
def test_keyframes_without_any_object_are_refused_by_both(clip, n):
    keys = {t: torch.zeros_like(clip.masks[0]) for t in (0, 4)[:n]}
    words = "the first mask holds no object" if n == 1 else "no keyframe holds an object"
    with pytest.raises(ValueError, match=words):
        sfcprop.propagate(clip.frames, keys, PooledColour().eval())
    with pytest.raises(ValueError, match=words):
        _fresh(clip, keys)


def test_a_removed_keyframes_objects_leave_the_result(clip):
    extra = clip.masks[6].clone()
    extra[:4, :4] = 9  # an object only this keyframe shows
    session = Session(_model(), clip.frames)
    session.annotate(0, clip.masks[0])
    session.annotate(6, extra)
    assert 9 in session.result().label_ids
    session.remove(6)
    got = session.result()
    want = _fresh(clip, {0: clip.masks[0]})
    assert got.label_ids == want.label_ids and 9 not in got.ids.unique()
    assert got.confidence.shape == want.confidence.shape
    assert torch.equal(got.ids, want.ids)


def test_forward_only_says_the_frames_before_the_first_keyframe_have_no_result(clip):
    got = sfcprop.propagate(clip.frames, {4: clip.masks[4]}, PooledColour(), forward_only=True)
    assert not got.ids[:4].any()
    assert (got.confidence[:4] == 0).all() and (got.confidence[4] == 1).all()
    unpropagated = [f.frame for f in got.flags if f.kind == "unpropagated"]
    assert unpropagated == [0, 1, 2, 3]


# --------------------------------------------------------------------------- small objects


@PROPERTY
@given(
    size=st.tuples(st.integers(1, 10), st.integers(1, 10)),
    at=st.tuples(st.integers(0, 30), st.integers(0, 60)),
    short_side=st.sampled_from([None, 24]),
)
def test_a_small_object_is_kept_or_flagged_on_every_frame(size, at, short_side):
    """An object of any size at any offset to the 8-pixel grid (and on frames shrunk before
    encoding): on every propagated frame it is there, or a "lost" flag says it is not."""
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (4, 3, 40, 72), generator=g, dtype=torch.uint8)
    mask = torch.zeros(40, 72, dtype=torch.long)
    mask[at[0] : at[0] + size[0], at[1] : at[1] + size[1]] = 3
    settings = {} if short_side is None else {"short_side": short_side}
    result = sfcprop.propagate(frames, mask, PooledColour().eval(), **settings)
    lost = {f.frame for f in result.flags if f.kind == "lost" and f.object == 3}
    for t in range(1, 4):
        assert (result.ids[t] == 3).any() or t in lost, t


def test_a_still_video_keeps_a_sub_cell_object(clip):
    frames = clip.frames[:1].repeat(4, 1, 1, 1)
    mask = torch.zeros(48, 80, dtype=torch.long)
    mask[20:26, 36:42] = 1  # 6 x 6, off the grid's sample points
    result = sfcprop.propagate(frames, mask, PooledColour().eval())
    assert all((result.ids[t] == 1).any() for t in range(4))
    assert not result.flags


# --------------------------------------------------------------------------- NaN features


class _BatchNormed(PooledColour):
    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm2d(self.dim)

    def forward(self, x):
        return torch.nn.functional.normalize(
            self.bn(self.proj(torch.nn.functional.avg_pool2d(x, 8, ceil_mode=True))), dim=1
        )


def test_finite_weights_that_give_nan_features_are_refused_naming_the_key(clip):
    net = _BatchNormed().eval()
    with torch.no_grad():
        net.bn.running_var[3] = -1.0
    with pytest.raises(FeatureError, match=r"bn\.running_var holds 1 negative variance"):
        sfcprop.propagate(clip.frames, clip.masks[0], net)


def test_a_module_that_makes_nan_is_named():
    net = _BatchNormed().eval()
    with torch.no_grad():
        net.proj.bias.fill_(1e38)
        net.proj.weight.fill_(1e38)  # finite, overflows to inf
    frames = torch.full((2, 3, 16, 16), 255, dtype=torch.uint8)
    mask = torch.ones(16, 16, dtype=torch.long)
    with pytest.raises(FeatureError, match="module proj is the first to give them"):
        sfcprop.propagate(frames, mask, net)
    assert torch.isfinite(net.proj.weight).all()
