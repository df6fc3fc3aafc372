"""Bad backbones and weights (the models layer: registry, checkpoints, verified downloads);
each row through `sfcprop.backbone` / `sfcprop.propagate` and `sfcprop propagate
--backbone` (`bad_inputs.check`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from bad_inputs import Case, Inputs, case_id, check

from sfcprop.models import hub
from sfcprop.models.checkpoints import CheckpointError

pytestmark = pytest.mark.usefixtures("one_thread")


class Payload:
    """Unpickling this would create a file: a stand-in for code execution."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickle_bomb(w: Inputs) -> Path:
    import torchvision

    state = {
        "online_encoder." + k: v for k, v in torchvision.models.resnet18().state_dict().items()
    }
    path = w.tmp / "evil.pth"
    torch.save({"model": state, "args": Payload(str(w.tmp / "pwned"))}, path)
    return path


def _integer_weights(w: Inputs) -> Path:
    from safetensors.torch import save_file

    save_file(w.trunk_state(torch.int64), w.tmp / "int.safetensors")
    return w.tmp / "int.safetensors"


def _r50_weights(w: Inputs) -> Path:
    import torchvision

    torch.save(torchvision.models.resnet50().state_dict(), w.tmp / "r50.pth")
    return w.tmp / "r50.pth"


CASES = [
    Case(
        "unknown backbone",
        KeyError,
        "'fcc' is neither a registered backbone (fc, crw",
        lambda w: w.backbone("fcc"),
    ),
    Case(
        "malicious pickle checkpoint",
        CheckpointError,
        "refused",
        lambda w: w.backbone(_pickle_bomb(w)),
    ),
    Case(
        "integer-tensor weights",
        CheckpointError,
        "'conv1.weight' is int64",
        lambda w: w.backbone("imagenet-r18", _integer_weights(w)),
    ),
    Case(
        "weights of another architecture",
        ValueError,
        "holds a resnet50",
        lambda w: w.backbone("imagenet-r18", _r50_weights(w)),
    ),
    Case(
        "corrupt checkpoint",
        CheckpointError,
        "corrupt",
        lambda w: w.backbone(w.corrupt_checkpoint()),
    ),
    Case(
        "missing weights file",
        FileNotFoundError,
        "checkpoint not found",
        lambda w: w.backbone("imagenet-r18", w.tmp / "none.pth"),
        cli_message="no such weights file",
    ),
    Case(
        "weights unavailable (offline, not cached)",
        hub.WeightsUnavailableError,
        "is not cached and cannot be downloaded (offline)",
        lambda w: w.offline() or w.backbone("crw"),
    ),
    Case(
        "backbone of another type",
        TypeError,
        "a backbone must be a Correspondence module or a registry name/path",
        lambda w: w.propagate(backbone=42),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_bad_input(case: Case, tmp_path, monkeypatch, capsys):
    check(case, Inputs(tmp_path, monkeypatch), capsys)
