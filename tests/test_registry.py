"""The backbone registry, fusing registered backbones, and the layer adapter."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from sfcprop.apps.backbones import main as cli_main
from sfcprop.models import LayerAdapter, ResNetTrunk, backbone, hub, list_backbones
from sfcprop.models import registry as reg

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


def _fake_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict]:
    from safetensors.torch import save_file

    shipped = tmp_path / "fc-r18-sfcprop.safetensors"
    state = _r18_trunk_state(2)
    save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, shipped)
    monkeypatch.setattr(reg, "shipped_weights", lambda filename: shipped)
    return shipped, state


def _cache_sfc_release(seed: int) -> tuple[Path, dict]:
    """SFC's pretrained_fc.pth layout, put in the cache by hand."""
    path = hub.cache_path(reg.REGISTRY["fc"].releases["sfc"].source)
    state = _r18_trunk_state(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {"online_encoder." + k: v for k, v in state.items()}, "epoch": 19}, path)
    return path, state


def test_fc_default_is_the_shipped_model_even_with_the_release_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    shipped, ship_state = _fake_shipped(tmp_path, monkeypatch)
    release, rel_state = _cache_sfc_release(3)
    for model in (backbone("fc"), backbone("fc", weights="shipped")):
        assert model.load_report.source == str(shipped) and model.load_report.ok
        torch.testing.assert_close(model.conv1.weight, ship_state["conv1.weight"].half().float())
        assert model.weights_path == shipped
        assert model.weights_description == f"fc: shipped weights {shipped}"

    model = backbone("fc", weights="sfc")  # the released FC only when asked for
    assert model.load_report.layout == "fc" and model.weights_path == release
    assert model.weights_description == f"fc: release 'sfc' {release}"
    torch.testing.assert_close(model.conv1.weight, rel_state["conv1.weight"])


def test_weights_description_of_files_state_dicts_and_random_init(tmp_path: Path):
    state = _r18_trunk_state(4)
    path = tmp_path / "mine.pth"
    torch.save(state, path)
    for model in (backbone("fc", weights=str(path)), backbone(path)):
        assert model.weights_path == path and str(path) in model.weights_description
    from_dict = backbone("fc", weights=state)
    assert from_dict.weights_path is None and from_dict.weights_description == "fc: a state dict"
    random = backbone("crw", weights=None)
    assert random.weights_path is None and "random init" in random.weights_description


def test_sfc_release_is_verified_when_loaded_from_the_cache():
    path, _ = _cache_sfc_release(5)
    model = backbone("fc", weights="sfc")  # a file put by hand: pinned on first use
    assert model.weights_path == path and hub.pin_path(path).is_file()
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(hub.HashMismatchError, match=f"{path}.*pinned on first use.*Delete"):
        backbone("fc", weights="sfc")


def _layout_dict(layout: str, state: dict) -> dict:
    prefix = {"crw": "encoder.model.", "fc": "online_encoder."}[layout]
    return {"model": {prefix + k: v for k, v in state.items()}}


@pytest.mark.parametrize(("weights", "net"), [("crw", "fc"), ("fc", "crw")])
def test_weights_trained_with_the_other_padding_warn(weights: str, net: str):
    checkpoint = _layout_dict(weights, _r18_trunk_state(6))
    with pytest.warns(UserWarning, match="padding") as caught:
        model = backbone(net, weights=checkpoint)
    report = model.load_report
    assert report.ok and len(report.warnings) == 1 and str(caught[0].message) in report.warnings
    trained = "reflect" if weights == "crw" else "zeros"
    assert f"trained with {trained} padding" in report.warnings[0]
    assert f"use {weights!r}" in report.warnings[0] and "warning:" in report.summary()


@pytest.mark.parametrize("name", ["crw", "fc"])
def test_weights_with_their_own_padding_do_not_warn(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = backbone(name, weights=_layout_dict(name, _r18_trunk_state(7)))
        plain = backbone("crw", weights=_r18_trunk_state(7))  # plain names: origin unknown
    assert not model.load_report.warnings and not plain.load_report.warnings


def test_missing_shipped_file_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="no-such-file.safetensors"):
        reg.shipped_weights("no-such-file.safetensors")


def test_cli_table_lists_every_backbone(capsys: pytest.CaptureFixture[str]):
    assert cli_main([]) == 0
    out = capsys.readouterr().out
    assert "reported by the authors" in out
    for name in REQUIRED:
        assert f"\n{name} " in out
    assert cli_main(["crw"]) == 0
    assert "pretrained.pth" in capsys.readouterr().out


def test_cli_says_how_each_release_is_verified(capsys: pytest.CaptureFixture[str]):
    assert cli_main([]) == 0
    out = capsys.readouterr().out
    for entry in reg.REGISTRY.values():
        for name in entry.releases:
            assert f"{entry.name}/{name} " in out
    assert "crw/crw   " in out and "url: full gitsha1 in the registry" in out
    assert "pinned on first use (no hash published)" in out  # fc/sfc
    assert "pinned on first use (published prefix md5:b251726a checked)" in out
    assert cli_main(["fc"]) == 0
    assert "verified: url: pinned on first use" in capsys.readouterr().out


@pytest.mark.parametrize("run", ["registry", "sfcprop"])
def test_cli_unknown_name_is_one_line_error(run: str, capsys: pytest.CaptureFixture[str]):
    from sfcprop.apps.cli import main

    rc = cli_main(["nope"]) if run == "registry" else main(["backbones", "nope"])
    out, err = capsys.readouterr()
    assert rc == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("sfcprop: error: unknown backbone 'nope'")
    assert "fc, crw, mocov1" in err and "dino-vits8" in err


def test_cli_help_has_examples(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as done:
        cli_main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "examples:\n  sfcprop backbones " in out and "sfcprop backbones crw" in out


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
