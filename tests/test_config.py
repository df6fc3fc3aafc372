"""`Config`: presets, validation of every field, CLI flags from fields, the resize policy."""

import argparse
import math

import pytest
import torch
import torch.nn.functional as F
from toys import PooledColour

from sfcprop.bench.synthetic import generate_clip
from sfcprop.config import PRESETS, Config, add_arguments, from_args, parse_bytes
from sfcprop.core.propagator import Propagator
from sfcprop.session.api import propagate, propagate_iter, propagate_soft


def test_presets_are_the_papers_tables():
    assert Config.preset("davis").protocol() == dict(
        topk=10, context=20, radius=12, temperature=0.05, lam=None
    )
    assert Config.preset("davis-sfc").protocol() == dict(
        topk=15, context=20, radius=15, temperature=0.1, lam=1.75
    )
    # CRW's benchmark frames: squares, resized as float images
    assert PRESETS["jhmdb"].size == (320, 320) and PRESETS["jhmdb"].resize == "float"
    assert PRESETS["vip"].size == (560, 560) and PRESETS["vip"].encoded_size(720, 1280) == (
        560,
        560,
    )


def test_overrides_and_the_last_resize_asked_for():
    cfg = Config.preset("jhmdb", radius=4, short_side=200)
    assert cfg.radius == 4 and cfg.size is None and cfg.encoded_size(240, 320) == (200, 267)
    assert Config.preset("davis", topk=None).topk == 10  # None keeps the preset's
    with pytest.raises(TypeError, match="unknown parameter"):
        Config.preset("davis", radious=3)
    with pytest.raises(ValueError, match="unknown preset"):
        Config.preset("kinetics")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("topk", 2.5, "topk must be an integer >= 1"),
        ("topk", 0, "topk must be an integer >= 1"),
        ("topk", True, "topk must be an integer"),
        ("context", -1, "context must be an integer >= 0"),
        ("radius", math.nan, "radius must be a finite number > 0"),
        ("radius", math.inf, "radius must be a finite number > 0"),
        ("temperature", math.nan, "temperature must be a finite number > 0"),
        ("temperature", 0, "temperature must be a finite number > 0"),
        ("lam", -1.0, "lam must be a finite number > 0"),
        ("size", (320, 0), "size must be"),
        ("short_side", 0, "short_side must be an integer >= 1"),
        ("resize", "nearest", "resize must be one of"),
        ("precision", "int8", "precision must be one of"),
        ("max_memory", "lots", "max_memory"),
    ],
)
def test_every_field_is_validated(field, value, message):
    with pytest.raises(ValueError, match=message):
        Config.preset("davis", **{field: value})


@pytest.mark.parametrize(
    "given, size",
    [(4e9, 4 * 10**9), ("4GB", 4 * 10**9), ("4GiB", 4 << 30), (" 512 MiB ", 512 << 20)]
    + [("800M", 800 * 10**6), ("1e3", 1000), (10**40, 10**40), ("1e30T", int(1e30 * 1e12))],
)
def test_sizes_in_bytes(given, size):
    assert parse_bytes(given) == size


@pytest.mark.parametrize(
    "given", ["1e400", "1e400k", math.inf, -math.inf, math.nan, ".", "1.2.3", "lots", True, None]
)
def test_a_size_that_is_no_finite_number_is_a_value_error(given):
    """Not an OverflowError (int(inf)) or float()'s words: what was wrong, what is expected."""
    with pytest.raises(ValueError, match="max_memory must be a finite positive number of bytes"):
        parse_bytes(given)


def test_max_memory_flag_says_what_it_expects(capsys):
    p = argparse.ArgumentParser(prog="sfcprop propagate")
    add_arguments(p)
    with pytest.raises(SystemExit) as done:
        p.parse_args(["--max-memory", "1e400"])
    assert done.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "sfcprop propagate: error: argument --max-memory: max_memory must be a finite positive "
        "number of bytes or a size like '4GiB', '512MB', got '1e400'"
    )


def test_lam_with_one_backbone_is_refused():
    net = PooledColour().eval()
    with pytest.raises(ValueError, match="with one backbone it has no effect"):
        Propagator(net, lam=1.0)
    with pytest.raises(ValueError, match="with one backbone it has no effect"):
        Propagator(net, preset="davis-sfc")


def test_bad_values_fail_before_any_work():
    clip = generate_clip(num_frames=3, height=32, width=48)
    calls = []

    class Counting(PooledColour):
        def forward(self, x):
            calls.append(1)
            return super().forward(x)

    net = Counting().eval()
    with pytest.raises(ValueError, match="temperature"):
        propagate(clip.frames, clip.masks[0].long(), net, temperature=float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        propagate_soft(clip.frames, torch.full((2, 4, 6), float("nan")), net)
    mask = clip.masks[0].long()
    mask[0, 0] = 300
    with pytest.raises(ValueError, match="at most 255"):
        propagate(clip.frames, mask, net)
    assert not calls


def test_cli_flags_are_generated_from_the_fields():
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--radius", "4", "--size", "32x48", "--precision", "bfloat16"])
    cfg = from_args(args, "jhmdb")
    assert (cfg.radius, cfg.size, cfg.precision, cfg.topk) == (4.0, (32, 48), "bfloat16", 10)
    assert from_args(p.parse_args(["--max-memory", "1GiB"]), "davis").max_memory == 1 << 30
    assert from_args(p.parse_args(["--size", "40"]), "davis").size == (40, 40)  # N: a square
    with pytest.raises(SystemExit):
        p.parse_args(["--size", "40x"])


def test_float_resize_matches_a_float64_computation():
    """CRW's policy: the float image resized (bilinear, half-pixel, no antialiasing, no
    rounding), then normalised: features as a float64 resize gives them."""
    torch.manual_seed(0)
    frame = torch.randint(0, 256, (3, 60, 90), dtype=torch.uint8)
    net = PooledColour(stride=8).eval()
    size = (40, 56)
    p = Propagator(net, size=size, resize="float")
    got = p.encode(frame)
    x = F.interpolate(frame[None].double() / 255, size=size, mode="bilinear", align_corners=False)
    with torch.no_grad():
        want = net(net.normalize(x.float()))[0]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    # the uint8 path rounds and antialiases: a test that can tell them apart
    other = Propagator(net, size=size, resize="antialias").encode(frame)
    assert (other - want).abs().max() > 1e-3


def test_labels_are_checked_before_any_weights_are_read():
    clip = generate_clip(num_frames=2, height=32, width=48)
    mask = clip.masks[0].long()
    mask[0, 0] = 300
    # a backbone that cannot load: the mask's error comes first
    with pytest.raises(ValueError, match="at most 255"):
        propagate(clip.frames, mask, "no-such-backbone")
    it = iter(propagate_iter(clip.frames, mask, "no-such-backbone"))
    with pytest.raises(ValueError, match="at most 255"):  # no frame 0 with a wrapped id
        next(it)
