"""`precision`: exact float32 (TensorFloat-32 off) and the opt-in half-precision path,
run on `$SFCPROP_TEST_DEVICE` (cpu by default: the same code path as on a GPU)."""

import pytest
import torch
from toys import PooledColour

from sfcprop import propagate
from sfcprop.bench.synthetic import generate_clip
from sfcprop.core import affinity
from sfcprop.core.precision import no_tf32
from sfcprop.core.propagator import Propagator


@pytest.fixture(scope="module")
def clip():
    return generate_clip(num_frames=8, height=64, width=96, seed=3)


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of .*'float16'.*got 'float64'"):
        Propagator(PooledColour(), precision="float64")


def test_no_tf32_turns_it_off_and_restores():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        with pytest.raises(RuntimeError), no_tf32():
            assert not torch.backends.cudnn.allow_tf32
            assert not torch.backends.cuda.matmul.allow_tf32
            raise RuntimeError("restored even on an error")
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _unit(c, h, w, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(c, h, w, generator=g), dim=0).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_features_give_float32_scores(device, dtype):
    """Scores of half features are float32 and equal the float32 products of the same
    (rounded) features up to the rounding of the product."""
    q, k = _unit(32, 11, 14, 0, dtype).to(device), _unit(32, 11, 14, 1, dtype).to(device)
    for half, exact in [
        (affinity.global_topk(q, k, 6, 1.0), affinity.global_topk(q.float(), k.float(), 6, 1.0)),
        (
            affinity.local_topk(q, k, 3, 6, 1.0),
            affinity.local_topk(q.float(), k.float(), 3, 6, 1.0),
        ),
    ]:
        assert half[0].dtype == torch.float32
        finite = exact[0] > float("-inf")
        err = (half[0][finite] - exact[0][finite]).abs().max().item()
        assert err <= (4e-3 if dtype == torch.float16 else 2e-2), err


def test_query_and_keys_must_share_a_dtype():
    q = _unit(8, 5, 5, 0, torch.float16)
    with pytest.raises(ValueError, match="one dtype.*float16.*float32"):
        affinity.global_topk(q, q.float(), 3, 1.0)


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_half_precision_propagation_stays_close(clip, device, precision):
    """Half features: memory holds them in half, and the masks stay close to float32's."""
    net = PooledColour(dim=16).eval()
    mask = clip.masks[0].long()
    kw = dict(topk=5, context=3, radius=4, device=device, return_soft=True)
    ref = propagate(clip.frames, mask, net, **kw)
    half = propagate(clip.frames, mask, net, precision=precision, **kw)
    agree = (half.ids == ref.ids).float().mean().item()
    assert agree >= 0.98, agree
    assert (half.soft - ref.soft).abs().mean().item() < 0.02
    p = Propagator(net, topk=5, context=3, radius=4, device=device, precision=precision)
    p.start(clip.frames[0], torch.ones(1, 8, 12))
    assert p.memory.first[0].dtype == getattr(torch, precision)
