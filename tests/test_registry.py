"""The backbone registry, fusing registered backbones, and the layer adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from sfcprop import hub
from sfcprop.backbones import LayerAdapter, ResNetTrunk, backbone, list_backbones
from sfcprop.backbones import registry as reg

REQUIRED = [
    "fc", "crw", "mocov1", "mocov2", "simclr", "byol", "instdis", "simsiam", "vince", "vfs",
    "pixpro", "imagenet-r18", "imagenet-r50", "dino-vits8",
]  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SFCPROP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


def _r18_trunk_state(seed: int) -> dict[str, torch.Tensor]:
    """ResNet-18 conv1..layer3 tensors with non-trivial BatchNorm parameters."""
    torch.manual_seed(seed)
    state = {}
    for k, v in torchvision.models.resnet18().state_dict().items():
        if k.startswith(("layer4", "fc")):
            continue
        if k.endswith(("bias", "running_mean")):
            v = 0.1 * torch.randn_like(v)
        state[k] = v
    return state


def test_every_required_backbone_is_registered():
    names = list_backbones()
    assert set(REQUIRED) <= set(names)
    for name in names:
        entry = reg.get_entry(name)
        assert entry.dim in (256, 384, 1024)
        if entry.reported is not None:
            assert entry.reported.note == "reported by the authors" and entry.reported.protocol


def test_unknown_name_lists_the_registry():
    with pytest.raises(KeyError, match="imagenet-r50"):
        backbone("resnet-9000")


@pytest.mark.parametrize(
    ("fine", "semantic"),
    [("fc", "dino-vits8"), ("fc", "mocov1"), ("crw", "imagenet-r50"), ("vfs", "simclr")],
)
def test_fusing_two_registered_backbones(fine: str, semantic: str):
    torch.manual_seed(0)
    frames = torch.randint(0, 256, (1, 3, 64, 96), dtype=torch.uint8)
    a, b = backbone(fine, weights=None), backbone(semantic, weights=None)
    assert not a.training and not b.training
    f1, f2 = a.encode(frames), b.encode(frames)
    assert f1.shape[-2:] == f2.shape[-2:] == (8, 12) == a.grid(64, 96)
    assert (f1.shape[1], f2.shape[1]) == (a.dim, b.dim)
    fused = F.normalize(torch.cat([1.75 * f1, f2], dim=1), dim=1)
    torch.testing.assert_close(fused.norm(dim=1), torch.ones(1, 8, 12))


def test_simclr_takes_unnormalised_input():
    model = backbone("simclr", weights=None)
    assert model.mean == (0.0, 0.0, 0.0) and model.std == (1.0, 1.0, 1.0)
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(model.normalize(x), x)
    assert backbone("imagenet-r50", weights=None).mean != model.mean


def test_simclr_has_no_download_and_says_so():
    with pytest.raises(ValueError, match="simclr.*weights=<file>"):
        backbone("simclr")


def test_state_dict_weights_and_bn_warmup():
    state = _r18_trunk_state(1)
    clean = backbone("fc", weights=state)
    torch.testing.assert_close(clean.layer2[0].bn1.running_mean, state["layer2.0.bn1.running_mean"])
    warmed = backbone("fc", weights=state, sfc_bn_warmup=True)
    assert isinstance(warmed, ResNetTrunk) and not warmed.training
    assert not torch.equal(warmed.layer2[0].bn1.running_mean, clean.layer2[0].bn1.running_mean)
    assert torch.equal(warmed.conv1.weight, clean.conv1.weight)
    assert torch.equal(state["layer2.0.bn1.running_mean"], clean.layer2[0].bn1.running_mean)
    with pytest.raises(ValueError, match="ResNet"):
        backbone("dino-vits8", weights=None, sfc_bn_warmup=True)


def test_fc_default_prefers_a_cached_release_over_the_shipped_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from safetensors.torch import save_file

    shipped = tmp_path / "fc-r18-sfcprop.safetensors"
    ship_state = _r18_trunk_state(2)
    save_file({k: v.half() if v.is_floating_point() else v for k, v in ship_state.items()}, shipped)
    monkeypatch.setattr(reg, "shipped_weights", lambda filename: shipped)
    model = backbone("fc")
    assert model.load_report.source == str(shipped) and model.load_report.ok
    torch.testing.assert_close(model.conv1.weight, ship_state["conv1.weight"].half().float())

    release = reg.REGISTRY["fc"].releases["sfc"].source
    rel_state = _r18_trunk_state(3)
    hub.cache_path(release).parent.mkdir(parents=True)
    model_dict = {"online_encoder." + k: v for k, v in rel_state.items()}
    torch.save({"model": model_dict, "epoch": 19}, hub.cache_path(release))
    model = backbone("fc")
    assert model.load_report.layout == "fc"
    torch.testing.assert_close(model.conv1.weight, rel_state["conv1.weight"])


def test_missing_shipped_file_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="no-such-file.safetensors"):
        reg.shipped_weights("no-such-file.safetensors")


def test_cli_table_lists_every_backbone(capsys: pytest.CaptureFixture[str]):
    assert reg.cli_main([]) == 0
    out = capsys.readouterr().out
    assert "reported by the authors" in out
    for name in REQUIRED:
        assert f"\n{name} " in out
    assert reg.cli_main(["crw"]) == 0
    assert "pretrained.pth" in capsys.readouterr().out


@pytest.mark.parametrize(("layer", "dim"), [("layer2", 128), ("layer3", 256)])
def test_adapter_on_torchvision_resnet(layer: str, dim: int):
    net = torchvision.models.resnet18().eval()
    adapter = LayerAdapter(net, layer).eval()
    assert adapter.dim == dim
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        feats = adapter(x)
        assert feats.shape == (1, dim, 8, 12)
        torch.testing.assert_close(feats.norm(dim=1), torch.ones(1, 8, 12))
        if layer == "layer2":  # already stride 8: the hooked map itself, normalised
            y = net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x))))))
            torch.testing.assert_close(feats, F.normalize(y, dim=1))


def test_adapter_on_vit_tokens():
    vit = backbone("dino-vits8", weights=None)
    adapter = LayerAdapter(vit, "blocks.11", patch=8, dim=384)
    with torch.no_grad():
        feats = adapter(torch.randn(1, 3, 64, 96))
    assert feats.shape == (1, 384, 8, 12)
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(1, 8, 12))
    with pytest.raises(KeyError, match="no layer"):
        LayerAdapter(vit, "blocks.99", patch=8, dim=384)


def test_vit_pads_to_the_ceil_grid():
    vit = backbone("dino-vits8", weights=None)
    with torch.no_grad():
        assert vit(torch.randn(1, 3, 61, 90)).shape == (1, 384, 8, 12)
