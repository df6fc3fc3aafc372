"""Bad settings of a propagation (the `Config` fields a `Session` is built with, and the
memory budget); each row through `sfcprop.propagate` and `sfcprop propagate`
(`bad_inputs.check`)."""

from __future__ import annotations

import math

import pytest
import torch
from bad_inputs import Case, Inputs, Run, case_id, check

import sfcprop
from sfcprop.core.budget import MemoryBudgetError
from sfcprop.core.features import FeatureError

pytestmark = pytest.mark.usefixtures("one_thread")


def _negative_variance(w: Inputs) -> Run:
    """ImageNet ResNet-18 weights, finite, one BatchNorm variance negative: NaN features."""
    state = w.trunk_state()
    state["layer1.0.bn2.running_var"][5] = -0.5
    torch.save(state, w.tmp / "nan.pth")
    run = w.backbone("imagenet-r18", w.tmp / "nan.pth")
    net = sfcprop.backbone("imagenet-r18", weights=w.tmp / "nan.pth")
    return Run(lambda: sfcprop.propagate(w.frames, w.mask, net), run.argv)


CASES = [
    Case(
        "temperature=nan",
        ValueError,
        "temperature must be a finite number > 0, got nan",
        lambda w: w.propagate(temperature=math.nan),
    ),
    Case(
        "radius=inf",
        ValueError,
        "radius must be a finite number > 0, got inf",
        lambda w: w.propagate(radius=math.inf),
    ),
    Case(
        "float topk",
        ValueError,
        "topk must be an integer >= 1, got 2.5",
        lambda w: w.propagate(topk=2.5),
        cli_message="argument --topk: invalid int value: '2.5'",
        code=2,
    ),
    Case(
        "negative context",
        ValueError,
        "context must be an integer >= 0, got -1",
        lambda w: w.propagate(context=-1),
    ),
    Case(
        "lam with one backbone",
        ValueError,
        "lam = 1.5 weighs the fine backbone against a semantic one; with one backbone it has "
        "no effect",
        lambda w: w.propagate(lam=1.5),
    ),
    Case(
        "unknown preset",
        ValueError,
        "unknown preset 'davos'; expected one of ['davis'",
        lambda w: w.propagate(preset="davos"),
        cli_message="argument --preset: invalid choice: 'davos'",
        code=2,
    ),
    Case(
        "size and short_side both",
        ValueError,
        "give size or short_side, not both",
        lambda w: w.propagate(size=(32, 32), short_side=20),
    ),
    Case(
        "a size of 0",
        ValueError,
        "size must be (H, W) of positive integers, got (0, 32)",
        lambda w: w.propagate(size=(0, 32)),
        cli_message="argument --size: sizes must be positive, got '0x32'",
        code=2,
    ),
    Case(
        "weights that give NaN features",
        FeatureError,
        "layer1.0.bn2.running_var holds 1 negative variance(s)",
        _negative_variance,
    ),
    Case(
        "over max_memory",
        MemoryBudgetError,
        "max_memory = 97.7 KiB",
        lambda w: w.propagate(max_memory="100KB"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_bad_input(case: Case, tmp_path, monkeypatch, capsys):
    check(case, Inputs(tmp_path, monkeypatch), capsys)
