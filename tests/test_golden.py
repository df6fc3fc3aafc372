"""Every golden case of the original implementation, reproduced from its own files.

Each case (shared/golden/<case>/) holds frames, the first mask, checkpoint(s) in the
released layouts, params.json, the original outputs (`expected/`, `expected_soft.npz`)
with SFC's BatchNorm warm-up quirk on, and `variant-bn-untouched/` with it off. The
propagation runs on `$SFCPROP_TEST_DEVICE` (default cpu; `cuda` on a GPU machine).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sfcprop import labels
from sfcprop.io import read_mask
from sfcprop.io.frames import list_images
from sfcprop.models import backbone
from sfcprop.session.api import propagate

CASES = ["fc-bmx-trees", "crw-dog", "sfc-kite-surf"]
CHECKPOINT = {"fine-grained": "pretrained_fc.pth", "crw": "pretrained.pth"}
SEMANTIC = {"mocov1": "moco_v1_200ep_pretrain.pth.tar"}


def _backbones(case_dir, params, warmup):
    model = params["model"]
    fine = backbone(str(case_dir / CHECKPOINT[model["fc_model"]]), sfc_bn_warmup=warmup)
    sem = model["semantic_model"]
    semantic = backbone(str(case_dir / SEMANTIC[sem]), sfc_bn_warmup=warmup) if sem else None
    return fine, semantic


def propagation_params(params: dict) -> dict:
    """`propagate`'s parameters from a case's params.json (the original's names)."""
    names = {
        "topk": "topk",
        "context": "videoLen",
        "radius": "radius",
        "temperature": "temperature",
        "lam": "lambd",
    }
    return {ours: params[theirs] for ours, theirs in names.items()}


@pytest.mark.parametrize("variant", ["sfc-bn-warmup", "bn-untouched"])
@pytest.mark.parametrize("case", CASES)
def test_golden_case(golden_dir, case, variant, device):
    case_dir = golden_dir / case
    params = json.loads((case_dir / "params.json").read_text())
    fine, semantic = _backbones(case_dir, params, warmup=variant == "sfc-bn-warmup")
    result = propagate(
        case_dir / "frames",
        case_dir / "first_mask.png",
        fine,
        semantic,
        return_soft=True,
        device=device,
        **propagation_params(params),
    )
    expected_dir = case_dir if variant == "sfc-bn-warmup" else case_dir / "variant-bn-untouched"
    golden = np.load(expected_dir / "expected_soft.npz")
    order = [result.label_ids.index(int(i)) for i in golden["label_ids"]]
    soft = result.soft[:, order].numpy()
    assert soft.shape == golden["soft"].shape
    close = np.abs(soft - golden["soft"]) <= 1e-4
    assert close.mean() >= 0.999, f"only {close.mean():.5f} of soft values within 1e-4"

    pngs = list_images(expected_dir / "expected")
    assert len(pngs) == len(result.ids) == params["num_frames"]
    for t, png in enumerate(pngs):
        expected = torch.from_numpy(read_mask(png)[0])
        # frame 0 of the original output is the decoded, downsampled first mask
        ours = (
            labels.decode(result.soft[0], result.label_ids, expected.shape)
            if t == 0
            else result.ids[t]
        )
        agreement = (ours == expected).float().mean().item()
        assert agreement >= 0.999, f"frame {t}: {agreement:.5f} of pixels agree"


@pytest.mark.parametrize("case", CASES)
def test_sfc_bn_warmup_matches_effective_stats(golden_dir, case):
    """The warm-up quirk recomputed (exactly, for CRW's reflect padding) gives the
    statistics the original run used."""
    case_dir = golden_dir / case
    params = json.loads((case_dir / "params.json").read_text())
    stats = np.load(case_dir / "effective_bn_stats.npz")
    model = params["model"]
    nets = {model["fc_model"]: _backbones(case_dir, params, warmup=True)[0]}
    if model["semantic_model"]:
        nets[model["semantic_model"]] = _backbones(case_dir, params, warmup=True)[1]
    for key in stats.files:
        tag, name = key.split(":", 1)
        ours = nets[tag].state_dict()[name].double().numpy()
        ref = stats[key].astype(np.float64)
        if name.endswith("num_batches_tracked"):
            assert ours == ref, key
        else:
            np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6, err_msg=key)
