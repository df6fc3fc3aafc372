"""`max_memory`: the estimate against what propagation really holds, block sizes that fit
(same results), and the error that says what would fit."""

import pytest
import torch
from toys import PooledColour

from sfcprop import MemoryBudgetError, labels, propagate, propagate_iter
from sfcprop.bench.synthetic import generate_clip
from sfcprop.config import Config, parse_bytes
from sfcprop.core.budget import (
    GLOBAL_ROWS,
    WINDOW_ELEMS,
    default_blocks,
    estimate,
    fit,
)
from sfcprop.core.propagator import Propagator


@pytest.fixture(scope="module")
def clip():
    return generate_clip(num_frames=6, height=64, width=96, seed=2)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("4GiB", 4 << 30),
        ("512 MiB", 512 << 20),
        ("800MB", 800_000_000),
        ("2.5G", 2_500_000_000),
        ("1e9", 1_000_000_000),
        (123456, 123456),
    ],
)
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("bad", ["lots", "4 GiBs", "-1GB", 0, -5, "0KB"])
def test_parse_bytes_rejects(bad):
    with pytest.raises(ValueError, match="max_memory"):
        parse_bytes(bad)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_features_and_labels_are_what_memory_holds(clip, precision):
    """Once the ring buffer is full, its tensors are exactly the plan's features + labels."""
    net = PooledColour(dim=16)
    p = Propagator(net, context=3, topk=5, radius=4, precision=precision)
    mask = clip.masks[0].long()
    ids = labels.label_ids(mask)
    p.start(clip.frames[0], labels.to_grid(mask, ids, (8, 12)))
    for frame in clip.frames[1:]:
        p.step(frame)
    held = [p.memory.first, *p.memory.recent]
    assert len(held) == 4  # frame 0 + m = 3
    feats = sum(f.numel() * f.element_size() for f, _ in held)
    soft = sum(s.numel() * s.element_size() for _, s in held)
    assert (p.plan.features, p.plan.labels) == (feats, soft)


def test_small_blocks_give_the_same_labels(clip):
    net = PooledColour(dim=16)
    mask = clip.masks[0].long()
    ref = propagate(clip.frames, mask, net, context=3, topk=5, radius=4, return_soft=True)
    p = Propagator(net, context=3, topk=5, radius=4)
    ids = labels.label_ids(mask)
    p.start(clip.frames[0], labels.to_grid(mask, ids, (8, 12)))
    p.plan = p.plan.__class__(**{**vars(p.plan), "global_rows": 7, "window_elems": 1000})
    for t in range(1, len(clip.frames)):
        torch.testing.assert_close(p.step(clip.frames[t]), ref.soft[t], rtol=0, atol=1e-6)


def test_cuda_starts_from_larger_blocks():
    assert default_blocks(torch.device("cuda")) > default_blocks(torch.device("cpu"))
    assert default_blocks(torch.device("cpu")) == (GLOBAL_ROWS, WINDOW_ELEMS)


def test_fit_halves_the_blocks_until_the_plan_fits():
    preset = Config.preset("davis")
    full = estimate((1080, 1920), (135, 240), 256, 2, preset, backbone=0)

    def rebuild(rows, elems):
        return estimate((1080, 1920), (135, 240), 256, 2, preset, 0, 0, rows, elems)

    smaller = fit(full, full.total - 1, rebuild)
    assert smaller.total <= full.total - 1
    assert smaller.global_rows < full.global_rows
    floor = fit(full, 1, rebuild)  # nothing fits: the smallest blocks come back
    assert (floor.global_rows, floor.window_elems) == (64, 1 << 16)
    assert floor.features == full.features  # only temporaries shrink


def test_too_small_a_budget_fails_before_any_work_and_says_what_fits(clip):
    calls = []
    net = PooledColour(dim=16)
    net.register_forward_hook(lambda *_: calls.append(1))
    big = torch.zeros(3, 720, 1280, dtype=torch.uint8)
    plan = Propagator(net).plan_memory(720, 1280, 2)
    calls.clear()
    limit = plan.total // 3  # more than smaller blocks can save
    p = Propagator(net, max_memory=limit)
    with pytest.raises(MemoryBudgetError, match="max_memory") as err:
        p.start(big, torch.zeros(2, 90, 160))
    assert calls == []  # no frame was encoded
    message = str(err.value)
    assert "1280x720" in message and "short_side=" in message
    side = int(message.split("short_side=")[1].split()[0])
    assert side < 720
    Propagator(net, max_memory=limit, short_side=side).plan_memory(720, 1280, 2)  # fits


def test_kept_results_count_and_streaming_is_suggested(clip):
    net = PooledColour(dim=16)
    mask = clip.masks[0].long()
    t, (h, w) = len(clip.frames), mask.shape
    working = Propagator(net, context=3).plan_memory(h, w, 3).total
    limit = working + (t * h * w) // 2  # the working set fits, all the ids do not
    with pytest.raises(MemoryBudgetError, match="propagate_iter"):
        propagate(clip.frames, mask, net, context=3, max_memory=limit)
    streamed = [r.ids for r in propagate_iter(clip.frames, mask, net, context=3, max_memory=limit)]
    ref = propagate(clip.frames, mask, net, context=3)
    assert torch.equal(torch.stack(streamed), ref.ids)


def test_unknown_length_stops_once_results_exceed_the_budget(clip):
    net = PooledColour(dim=16)
    mask = clip.masks[0].long()
    frames = (f for f in clip.frames)  # a generator: length unknown up front
    per_frame = mask.numel()
    working = Propagator(net, context=3).plan_memory(*mask.shape, 3).total
    with pytest.raises(MemoryBudgetError, match="results of 3 frames"):
        propagate(frames, mask, net, context=3, max_memory=working + int(2.5 * per_frame))


def test_a_budget_returns_freed_memory_after_every_frame(clip, monkeypatch):
    import sfcprop.core.budget

    calls = []
    monkeypatch.setattr(sfcprop.core.budget, "release_freed", lambda: calls.append(1) or True)
    mask = clip.masks[0].long()
    propagate(clip.frames, mask, PooledColour(), context=2, radius=4)
    assert calls == []  # no budget: the allocator is left alone
    propagate(clip.frames, mask, PooledColour(), context=2, radius=4, max_memory="4GiB")
    assert len(calls) == len(clip.frames) - 1


def test_release_freed_trims_the_heap_where_glibc_has_it():
    import platform

    from sfcprop.core.budget import release_freed

    assert release_freed() == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
