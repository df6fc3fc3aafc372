"""The local affinity against the dense reference, and the pieces of the protocol."""

from collections import deque

import pytest
import torch
import torch.nn.functional as F

from sfcprop.config import Config
from sfcprop.core import affinity
from sfcprop.core.propagator import Memory, step_soft


def unit(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-3)


def soft_labels(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g).softmax(dim=-3)


@pytest.mark.parametrize("radius, count", [(1, 1), (1.5, 9), (2, 9), (12, 437), (15, 697)])
def test_disk_is_strict(radius, count):
    offsets = affinity.disk_offsets(radius)
    assert len(offsets) == count
    assert (offsets.float().pow(2).sum(1) < radius**2).all()


# (h, w, C, L, m, radius, k, tau, frames seen before the target)
CASES = [
    (7, 9, 16, 3, 4, 3, 10, 0.05, 2),  # start of a video: frame-0 copies fill slots
    (12, 15, 32, 2, 20, 12, 10, 0.05, 1),  # every short-term slot is frame 0
    (12, 15, 32, 2, 5, 4, 50, 0.1, 7),  # k larger than the disk
    (6, 5, 8, 4, 3, 100, 200, 0.07, 3),  # radius beyond the grid, k beyond every key
    (10, 13, 16, 3, 2, 1.5, 5, 0.05, 6),  # tiny disk, full ring buffer
    (9, 9, 8, 2, 0, 3, 5, 0.05, 3),  # no short-term memory
    (17, 19, 8, 2, 3, 2, 3, 0.05, 3),  # grid not a multiple of the tile
]


@pytest.mark.parametrize("h, w, c, n_labels, m, radius, k, tau, seen", CASES)
def test_local_equals_dense(h, w, c, n_labels, m, radius, k, tau, seen):
    feats = [unit(c, h, w, seed=i) for i in range(seen)]
    labs = [soft_labels(n_labels, h, w, seed=100 + i) for i in range(seen)]
    query = unit(c, h, w, seed=999)
    recent = deque(list(zip(feats, labs, strict=True))[-m:] if m else [], maxlen=m)
    memory = Memory((feats[0], labs[0]), recent)
    preset = Config.preset("davis", topk=k, context=m, radius=radius, temperature=tau)
    local = step_soft(query, memory, preset)

    # Dense: frame 0 global, then m slots t-m..t-1 padded at the front with frame 0.
    slots = ([0] * (m - len(recent)) + list(range(seen - len(recent), seen))) if m else []
    keys = torch.stack([feats[0]] + [feats[i] for i in slots])
    bank = torch.stack([labs[0]] + [labs[i] for i in slots])
    dense = affinity.dense_propagation(query, keys, bank, 1, radius, k, tau)
    assert local.shape == (n_labels, h, w)
    torch.testing.assert_close(local, dense, atol=1e-5, rtol=0)
    torch.testing.assert_close(local.sum(0), torch.ones(h, w), atol=1e-5, rtol=0)


def test_local_topk_only_reaches_the_disk():
    h, w = 11, 13
    q, keys = unit(8, h, w, seed=1), unit(8, h, w, seed=2)
    vals, idx = affinity.local_topk(q, keys, radius=2.5, k=50, temperature=1.0)
    ys, xs = idx // w, idx % w
    py = torch.arange(h * w)[:, None] // w
    px = torch.arange(h * w)[:, None] % w
    valid = vals > float("-inf")
    dist2 = (ys - py) ** 2 + (xs - px) ** 2
    assert (dist2[valid] < 2.5**2).all()
    # interior cells see the whole disk (21 cells for r = 2.5), corners fewer
    assert valid[6 * w + 6].sum() == len(affinity.disk_offsets(2.5)) == 21
    assert valid[0].sum() == 8  # (0,0) (0,1) (1,0) (1,1) (0,2) (2,0) (1,2) (2,1)
    # scores are the cosines / temperature of the cells they name
    qf, kf = q.flatten(1).T, keys.flatten(1).T
    expect = (qf[:, None, :] * kf[idx]).sum(-1)
    torch.testing.assert_close(vals[valid], expect[valid], atol=1e-5, rtol=0)


def test_duplicated_frame0_slots_count_as_separate_keys():
    """With every key equal to frame 0, k copies of the best cell share the weight."""
    h, w = 5, 6
    f0 = unit(4, h, w, seed=3)
    labels0 = soft_labels(2, h, w, seed=4)
    recent = deque([(f0, labels0)], maxlen=4)
    preset = Config.preset("davis", topk=5, context=4, radius=3, temperature=0.01)
    out = step_soft(f0, Memory((f0, labels0), recent), preset)
    # query == frame 0: the best key of every cell is itself, in 1 + 4 slots -> top-5 are
    # the five copies, so the label is copied exactly
    torch.testing.assert_close(out, labels0, atol=1e-6, rtol=0)


def test_merge_topk_is_joint():
    a = (torch.tensor([[5.0, 1.0]]), torch.tensor([[0, 1]]))
    b = (torch.tensor([[4.0, 3.0]]), torch.tensor([[10, 11]]))
    weights, index = affinity.merge_topk([a, b], k=3)
    assert index.tolist() == [[0, 10, 11]]
    torch.testing.assert_close(weights, torch.tensor([[5.0, 4.0, 3.0]]).softmax(1))


def test_query_key_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        affinity.local_topk(unit(4, 5, 5, seed=0), unit(4, 5, 6, seed=0), 3, 5, 0.1)


@pytest.mark.parametrize("radius", [2, 4.5, 12])
def test_tile_size_does_not_change_the_result(radius):
    q, keys = unit(16, 19, 23, seed=5), unit(16, 19, 23, seed=6)
    ref_vals, ref_idx = affinity.local_topk(q, keys, radius, 7, 0.1, tile=1)
    for tile in (3, 8, 16, None):
        vals, idx = affinity.local_topk(q, keys, radius, 7, 0.1, tile=tile)
        k = min(vals.shape[1], ref_vals.shape[1])
        torch.testing.assert_close(vals[:, :k], ref_vals[:, :k], atol=1e-5, rtol=0)
        # same keys, wherever the ranking is not a near-tie
        v = ref_vals[:, :k]
        gap = torch.minimum(
            torch.cat([v[:, :1] - v[:, 1:2] + 1, v[:, :-1] - v[:, 1:]], 1),
            torch.cat([v[:, :-1] - v[:, 1:], torch.ones_like(v[:, :1])], 1),
        )
        clear = (gap > 1e-4) & (v > float("-inf"))
        assert torch.equal(idx[:, :k][clear], ref_idx[:, :k][clear])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    h, w, c, m = 30, 41, 64, 4
    feats = [unit(c, h, w, seed=i) for i in range(m + 1)]
    labs = [soft_labels(3, h, w, seed=50 + i) for i in range(m + 1)]
    query = unit(c, h, w, seed=77)
    preset = Config.preset("davis", context=m, radius=6)
    outs = []
    for device in ("cpu", "cuda"):
        pairs = [(f.to(device), s.to(device)) for f, s in zip(feats, labs, strict=True)]
        recent = deque(pairs[-m:], maxlen=m)
        memory = Memory((feats[0].to(device), labs[0].to(device)), recent)
        outs.append(step_soft(query.to(device), memory, preset).cpu())
    torch.testing.assert_close(outs[1], outs[0], atol=1e-4, rtol=0)
