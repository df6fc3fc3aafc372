"""`sfcprop.core.propagator`: the model built once (`Propagator`, `load_model`), the passes it
opens (`Pass`, `Memory`) and one step of the protocol (`step_soft`)."""

import re
from itertools import zip_longest

import pytest
import torch
from toys import PooledColour

from sfcprop import labels
from sfcprop.bench.synthetic import generate_clip
from sfcprop.core.propagator import Propagator, load_model
from sfcprop.labels.resize import resize_soft
from sfcprop.session.api import propagate, propagate_soft
from sfcprop.session.session import Session

pytestmark = pytest.mark.usefixtures("one_thread")
PARAMS = dict(topk=5, context=3, radius=4)
HW, GRID = (64, 96), (8, 12)  # the clip's frames and their stride-8 feature grid


@pytest.fixture(scope="module")
def clip():
    return generate_clip(num_frames=8, height=64, width=96, seed=1)


@pytest.fixture(scope="module")
def net():
    return PooledColour().eval()


def key_soft(clip, t: int = 0) -> torch.Tensor:
    """The soft labels of frame `t`'s mask on the grid (channels: ids 0, 1, 2)."""
    return labels.to_grid(clip.masks[t].long(), [0, 1, 2], GRID)


# --------------------------------------------------------------------------- load_model


def test_load_model_returns_a_built_model_as_it_is(net):
    model = load_model(net, context=2)
    assert isinstance(model, Propagator) and model.config.context == 2
    assert load_model(model) is model
    assert load_model(model, radius=None, max_memory=None) is model  # None: not given
    assert model.config.context == 2


@pytest.mark.parametrize(
    "extra, named",
    [
        (dict(radius=3), "['radius']"),
        (dict(preset="davis"), "['preset']"),
        (dict(semantic=PooledColour(seed=2)), "['semantic']"),
        (
            dict(topk=3, semantic=PooledColour(seed=2), preset="davis", context=1),
            "['semantic', 'preset', 'context', 'topk']",
        ),
    ],
)
def test_load_model_refuses_settings_beside_a_built_model(net, extra, named):
    model = load_model(net, context=2)
    before = model.config
    message = f"a built model carries its own settings; got {named} as well"
    with pytest.raises(TypeError, match=re.escape(message)):
        load_model(model, **extra)
    assert model.config is before  # untouched


def test_load_model_builds_from_a_module_with_settings_over_the_preset(net):
    model = load_model(net, preset="davis", radius=3)
    assert model.config.radius == 3 and model.config.topk == 10  # the rest: davis's
    assert model.grid(*HW) == GRID


# --------------------------------------------------------------------------- passes


def test_propagator_streams_like_propagate(clip, net):
    mask = clip.masks[0].long()
    batch = propagate(clip.frames, mask, net, context=3, return_soft=True)
    p = Propagator(net, context=3)
    ids = labels.label_ids(mask)
    p.start(clip.frames[0], labels.to_grid(mask, ids, (8, 12)))
    for t in range(1, len(clip.frames)):
        soft = p.step(clip.frames[t])
        torch.testing.assert_close(soft, batch.soft[t])
        assert len(p.memory.recent) <= 3  # memory bounded by the context length
    soft = propagate_soft(clip.frames, batch.soft[0], net, context=3)
    torch.testing.assert_close(soft, batch.soft)


def test_a_pass_opened_from_the_model_gives_what_start_and_step_give(clip, net):
    streaming = load_model(net, **PARAMS)
    streaming.start(clip.frames[0], key_soft(clip))
    model = load_model(net, **PARAMS)
    run = model.open_pass(model.encode(clip.frames[0]), key_soft(clip), HW)
    for frame in clip.frames[1:]:
        want = streaming.step(frame)
        got = run.step(model.encode(frame))
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        assert run.last_similarity == streaming.last_similarity
    assert model.stream is None and model.memory is None  # the pass is not the model's


def test_context_0_is_the_keyframes_top_k_softmax_computed_by_hand(clip, net):
    """With no short-term slot a step is the global top-k of `q . k / T` over the keyframe's
    cells, softmax over the k scores, labels averaged with those weights."""
    model = load_model(net, topk=4, context=0, temperature=0.07)
    keys, query = model.encode(clip.frames[0]), model.encode(clip.frames[3])
    soft0 = key_soft(clip)
    got = model.open_pass(keys, soft0, HW).step(query)
    scores = query.flatten(1).T.double() @ keys.flatten(1).double() / 0.07  # [n, n]
    top, index = scores.topk(4, dim=1)
    bank = soft0.flatten(1).T.double()  # [n, L]
    want = (top.softmax(dim=1)[..., None] * bank[index]).sum(1).T.reshape(3, *GRID)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5)
    torch.testing.assert_close(got.sum(0), torch.ones(GRID), rtol=0, atol=1e-5)


def test_keyframe_labels_at_the_frames_size_are_resized_to_the_grid(clip, net):
    model = load_model(net, **PARAMS)
    full = labels.one_hot(clip.masks[0].long(), [0, 1, 2])  # [3, 64, 96]
    run = model.open_pass(model.encode(clip.frames[0]), full, HW)
    want = resize_soft(full, GRID)
    torch.testing.assert_close(run.memory.first[1], want, rtol=0, atol=0)
    torch.testing.assert_close(want, key_soft(clip), rtol=0, atol=0)  # to_grid: the same rule


def test_bad_keyframe_labels_and_streaming_misuse(clip, net):
    model = load_model(net, **PARAMS)
    feats = model.encode(clip.frames[0])
    with pytest.raises(ValueError, match=re.escape("on the (8, 12) feature grid or [L, H, W]")):
        model.open_pass(feats, torch.zeros(3, 5, 5), HW)
    nan = key_soft(clip).clone()
    nan[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="keyframe labels hold NaN or infinite values"):
        model.open_pass(feats, nan, HW)
    with pytest.raises(RuntimeError, match=re.escape("call start(first_frame, first_labels)")):
        model.step(clip.frames[1])
    model.start(clip.frames[0], key_soft(clip))
    with pytest.raises(ValueError, match=re.escape("size of frame 0 (64, 96), got (40, 96)")):
        model.step(clip.frames[1][:, :40])


# --------------------------------------------------------------------------- no shared state


def test_passes_of_one_model_do_not_share_state(clip, net):
    """A forward pass from frame 0 and a backward one from frame 7, stepped in turn, give
    what each gives alone on a model of its own."""
    model = load_model(net, **PARAMS)
    feats = [model.encode(f) for f in clip.frames]
    starts = [(0, range(1, 8)), (7, range(6, -1, -1))]

    def alone(k, frames):
        fresh = load_model(net, **PARAMS)
        run = fresh.open_pass(feats[k], key_soft(clip, k), HW)
        return [run.step(feats[t]) for t in frames]

    wants = [alone(k, frames) for k, frames in starts]
    runs = [model.open_pass(feats[k], key_soft(clip, k), HW) for k, _ in starts]
    for i in range(7):
        for run, (_, frames), want in zip(runs, starts, wants, strict=True):
            torch.testing.assert_close(run.step(feats[frames[i]]), want[i], rtol=0, atol=0)


def test_two_sessions_over_one_model_do_not_share_state(net):
    """Two videos' sessions over one model, their runs advanced in turn, give what each
    gives on a model of its own."""
    clips = [generate_clip(num_frames=6, height=48, width=64, seed=s) for s in (3, 4)]
    keys = [{0: c.masks[0].long(), 4: c.masks[4].long()} for c in clips]

    def session(model, i):
        s = Session(model, clips[i].frames)
        for t, mask in keys[i].items():
            s.annotate(t, mask)
        return s

    model = load_model(net, **PARAMS)
    both = [session(model, i).run() for i in (0, 1)]
    got = [{}, {}]
    for pair in zip_longest(*both):
        for i, result in enumerate(pair):
            if result is not None:
                got[i][result.t] = result
    for i in (0, 1):
        want = {r.t: r for r in session(load_model(net, **PARAMS), i).run()}
        assert sorted(got[i]) == sorted(want) == list(range(6))
        for t, r in want.items():
            torch.testing.assert_close(got[i][t].soft, r.soft, rtol=0, atol=0)
            assert torch.equal(got[i][t].ids, r.ids)
    assert model.stream is None


# --------------------------------------------------------------------------- memory


@pytest.mark.parametrize("context", [0, 1, 3])
def test_the_memory_holds_the_keyframe_and_the_last_context_frames(clip, net, context):
    model = load_model(net, topk=5, radius=4, context=context)
    feats = [model.encode(f) for f in clip.frames]
    run = model.open_pass(feats[0], key_soft(clip), HW)
    for t in range(1, 8):
        run.step(feats[t])
        assert run.memory.first[0] is feats[0]  # the keyframe stays the global key
        recent = [f for f, _ in run.memory.recent]
        want = feats[: t + 1][-context:] if context else []  # the keyframe, then the steps
        assert len(recent) == len(want) == min(t + 1, context)
        assert all(a is b for a, b in zip(recent, want, strict=True))
        slots = run.memory.short_term(context)
        assert sum(mult for mult, _ in slots) == context  # missing slots: the oldest, again
