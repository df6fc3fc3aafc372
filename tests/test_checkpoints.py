"""Checkpoint layouts: every released layout (from the shared manifests) loads strictly and
gives the features of a plain torchvision-layout model; bad files give clear errors."""

from __future__ import annotations

import argparse
import ast
import collections
import gzip
import io
import json
import os
import re
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from sfcprop.models import backbone, vit_small8
from sfcprop.models.checkpoints import detect_layout, load_encoder_state, read_checkpoint
from sfcprop.models.formats import CheckpointError, checkpoint_format

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SFCPROP_SHARED", REPO.parent / "shared"))
FORMATS = SHARED / "checkpoint-formats"
GOLDEN = SHARED / "golden"
needs_shared = pytest.mark.skipif(not FORMATS.is_dir(), reason=f"{FORMATS} not available")

# manifest name -> registry backbone that must load it
BACKBONE_OF = {
    "sfc_fc_pretrained_fc": "fc",
    "crw_pretrained": "crw",
    "moco_v1": "mocov1",
    "moco_v2": "mocov2",
    "simsiam_100ep_256bs": "simsiam",
    "pixpro_base_r50_400ep": "pixpro",
    "insdis_resnet50": "instdis",
    "vince_resnet50": "vince",
    "simclr_v1_resnet50_1x": "simclr",
    "byol_resnet50_1x": "byol",
    "vfs_r18_nc_sgd_cos_100e_r2_1xNx8_k400": "vfs",
    "vfs_r50_nc_sgd_cos_100e_r5_1xNx2_k400": "vfs-r50",
    "torchvision_resnet18_imagenet1k_v1": "imagenet-r18",
    "torchvision_resnet50_imagenet1k_v1": "imagenet-r50",
    "dino_deitsmall8_pretrain": "dino-vits8",
    "dino_deitsmall8_pretrain_full_checkpoint": "dino-vits8",
}
_TRUNK = re.compile(r"^(conv1|bn1|layer[123])\.")


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- synthesis from manifests


def _manifests() -> list[Path]:
    return sorted(FORMATS.glob("*.json")) if FORMATS.is_dir() else []


def _value(key: str, shape: list[int], dtype: str, real: bool) -> torch.Tensor:
    """A deterministic tensor for `key` (a function of the key only) or a cheap zero view."""
    dt = getattr(torch, dtype)
    if not real or not dt.is_floating_point:
        return torch.zeros((), dtype=dt).expand(shape) if shape else torch.zeros((), dtype=dt)
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    x = torch.randn(shape, generator=g)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        x = x.abs() * 0.2 + 0.6
    elif leaf == "running_mean" or leaf == "bias":
        x = x * 0.1
    elif len(shape) == 1:  # norm weights
        x = 1 + 0.1 * x
    elif len(shape) == 4:  # convolutions: He init keeps activations in range
        x = x * (2.0 / (shape[1] * shape[2] * shape[3])) ** 0.5
    else:
        x = x * 0.02
    return x.to(dt)


def _extraction(manifest: dict) -> tuple[list[str], str]:
    """(path to the encoder dict, prefix) as the manifest's `encoder_extraction` says."""
    ex = manifest["encoder_extraction"]
    path = [p for p in ex.get("state_dict_path", []) if not p.startswith("(")]
    prefix = ex.get("keep_keys_with_prefix", ex.get("strip_prefix", "")).split(" ")[0]
    return path, prefix


def _tensor_dict(tensors: list[dict], real_prefix: str | None, vit: bool) -> dict:
    out = collections.OrderedDict()
    for t in tensors:
        key = t["key"]
        short = key[len(real_prefix) :] if real_prefix is not None else None
        real = (
            real_prefix is not None
            and key.startswith(real_prefix)
            and (vit or bool(_TRUNK.match(short)))
        )
        out[key] = _value(short if real else key, t["shape"], t["dtype"], real)
    return out


def _literal(spec: dict):
    value = spec.get("value_in_derivation")
    if spec["type"] in ("builtins.list", "builtins.tuple") and isinstance(value, str):
        return ast.literal_eval(value)
    return value


def _optimizer(spec: dict, tensors: dict) -> dict:
    index_to_key = {int(i): k for i, k in spec.get("param_index_to_model_key", {}).items()}
    state = {}
    for i, key in list(index_to_key.items())[: spec["state"]["num_entries"]]:
        entry = {}
        for name, desc in spec["state"]["entry_fields"].items():
            entry[name] = torch.tensor(1.0) if desc.startswith("tensor scalar") else tensors[key]
        state[i] = entry
    groups, start = [], 0
    for group in spec["param_groups"]:
        n = int(re.search(r"\d+", group["params"]).group())
        groups.append({**group, "params": list(range(start, start + n))})
        start += n
    return {"state": state, "param_groups": groups}


def _scheduler(spec: dict) -> dict:
    out = {}
    for name, e in spec["entries"].items():
        if e["type"] == "collections.Counter":
            out[name] = collections.Counter(
                {int(k): v["value_in_derivation"] for k, v in e["entries"].items()}
            )
        elif e["type"] == "builtins.list":
            out[name] = [1e-4] * e["len"]
        else:
            out[name] = e["value_in_derivation"]
    return out


def synthesize(manifest: dict, variant: str) -> object:
    """A checkpoint object with the manifest's exact layout (keys, shapes, dtypes, extras)."""
    path, prefix = _extraction(manifest)
    vit = "dino" in manifest["name"]
    if variant == "prepared":  # ssl-transfer's plain fc-less torchvision dict
        return _tensor_dict(manifest["ssl_transfer_prepared_file"]["tensors"], "", vit)
    if "state_dicts" not in manifest:  # INFERRED release route: torchvision keys under path/prefix
        base = (
            manifest.get("ssl_transfer_prepared_file")
            or json.loads((FORMATS / "torchvision_resnet50_imagenet1k_v1.json").read_text())[
                "state_dicts"
            ]["<root>"]
        )
        tensors = [{**t, "key": prefix + t["key"]} for t in base["tensors"]]
        node = _tensor_dict(tensors, prefix, vit)
        for key in reversed(path):
            node = {key: node}
        return node
    dicts = {
        name: _tensor_dict(
            sd["tensors"], prefix if [name] == path or name == "<root>" else None, vit
        )
        for name, sd in manifest["state_dicts"].items()
    }
    if "<root>" in dicts:
        return dicts["<root>"]
    top: dict = {}
    flat = {k: v for d in dicts.values() for k, v in d.items()}
    for entry in manifest["top_level"]:
        key, kind = entry["key"], entry["type"]
        if key in dicts:
            top[key] = dicts[key]
        elif kind == "argparse.Namespace":
            top[key] = argparse.Namespace(**{f: _literal(s) for f, s in entry["fields"].items()})
        elif key == "optimizer":
            top[key] = _optimizer(manifest["optimizer"], flat)
        elif key == "lr_scheduler":
            top[key] = _scheduler(manifest["lr_scheduler"])
        elif key == "fp16_scaler":
            top[key] = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                        "growth_interval": 2000, "_growth_tracker": 0}  # fmt: skip
        elif kind == "builtins.dict":
            top[key] = {}
        else:
            top[key] = entry["value_in_derivation"]
    return top


def _cases() -> list:
    cases = []
    for f in _manifests():
        m = json.loads(f.read_text())
        cases.append(pytest.param(f, "release", id=m["name"]))
        if m.get("ssl_transfer_prepared_file"):
            cases.append(pytest.param(f, "prepared", id=m["name"] + "-prepared"))
    return cases


# ---------------------------------------------------------------- reference models


def _trunk_tensors(obj, manifest: dict) -> dict[str, torch.Tensor]:
    """The encoder tensors, found independently of sfcprop: manifest path + prefix."""
    path, prefix = _extraction(manifest)
    node = obj
    for key in path:
        node = node[key]
    return {k[len(prefix) :]: v.float() for k, v in node.items() if k.startswith(prefix)}


def _torchvision_features(tensors: dict, arch: str, reflect: bool, x: torch.Tensor):
    with torch.device("meta"):  # no random init: every used tensor is loaded below
        net = getattr(torchvision.models, arch)()
    net = net.to_empty(device="cpu")
    wanted = {k: v for k, v in tensors.items() if _TRUNK.match(k)}
    missing, _ = net.load_state_dict(wanted, strict=False)
    assert all(k.startswith(("layer4", "fc")) or "num_batches" in k for k in missing)
    for m in net.layer3.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.stride = (1, 1)
    if reflect:
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d) and max(m.padding) > 0:
                m.padding_mode = "reflect"
    net.eval()
    with torch.no_grad():
        y = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        y = net.layer3(net.layer2(net.layer1(y)))
    return F.normalize(y, dim=1)


@needs_shared
@pytest.mark.parametrize(("manifest_path", "variant"), _cases())
def test_manifest_layout_loads_strictly(manifest_path: Path, variant: str, tmp_path: Path):
    manifest = json.loads(manifest_path.read_text())
    name = BACKBONE_OF[manifest["name"]]
    obj = synthesize(manifest, variant)
    path = tmp_path / "checkpoint.pth"
    torch.save(obj, path)

    model = backbone(name, weights=path)  # strict by default
    assert model.load_report is not None and model.load_report.ok
    assert not model.training
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = model(x)
    if variant == "prepared":
        tensors = {k: v.float() for k, v in obj.items()}
    else:
        tensors = _trunk_tensors(obj, manifest)
    if "dino" in manifest["name"]:
        with torch.device("meta"):
            ref_model = vit_small8()
        ref_model = ref_model.to_empty(device="cpu")
        ref_model.load_state_dict(tensors, strict=True)
        with torch.no_grad():
            want = ref_model.eval()(x)
    else:
        arch = "resnet50" if "layer1.0.conv3.weight" in tensors else "resnet18"
        want = _torchvision_features(tensors, arch, name == "crw", x)
    assert got.shape == want.shape == (1, model.dim, 8, 8)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)

    # the layout is also recognised from the file alone
    detected = backbone(path)
    with torch.no_grad():
        torch.testing.assert_close(detected(x), want, atol=1e-5, rtol=1e-4)


@needs_shared
@pytest.mark.parametrize(
    ("case", "filename", "layout", "arch"),
    [
        ("fc-bmx-trees", "pretrained_fc.pth", "fc", "resnet18"),
        ("crw-dog", "pretrained.pth", "crw", "resnet18"),
        ("sfc-kite-surf", "moco_v1_200ep_pretrain.pth.tar", "mocov1", "resnet50"),
    ],
)
def test_golden_files_load_strictly(case: str, filename: str, layout: str, arch: str):
    path = GOLDEN / case / filename
    if not path.is_file():
        pytest.skip(f"{path} not available")
    assert detect_layout(path) == layout
    state, report = load_encoder_state(path)
    assert report.ok and report.arch == arch and report.layout == layout
    assert report.upcast and all(v.dtype != torch.float16 for v in state.values())


# ---------------------------------------------------------------- errors


def _r18_state() -> dict[str, torch.Tensor]:
    return torchvision.models.resnet18().state_dict()


def _fc_file(tmp_path: Path, state: dict) -> Path:
    path = tmp_path / "pretrained_fc.pth"
    model = {"online_encoder." + k: v for k, v in state.items() if not k.startswith("fc.")}
    torch.save({"model": model, "epoch": 3, "args": argparse.Namespace(arch="resnet18")}, path)
    return path


def test_missing_key_is_an_error_naming_key_and_file(tmp_path: Path):
    state = _r18_state()
    del state["layer2.1.bn1.running_var"]
    path = _fc_file(tmp_path, state)
    with pytest.raises(CheckpointError, match=r"layer2\.1\.bn1\.running_var") as err:
        load_encoder_state(path)
    assert str(path) in str(err.value)
    with pytest.warns(UserWarning, match="running_var"):
        loaded, report = load_encoder_state(path, strict=False)
    assert report.missing == ["layer2.1.bn1.running_var"] and not report.ok


def test_unexpected_key_is_an_error_naming_key_and_file(tmp_path: Path):
    state = _r18_state()
    state["layer3.0.extra.weight"] = torch.zeros(3)
    path = _fc_file(tmp_path, state)
    with pytest.raises(CheckpointError, match=r"online_encoder\.layer3\.0\.extra\.weight") as err:
        load_encoder_state(path)
    assert str(path) in str(err.value)
    with pytest.warns(UserWarning):
        model = backbone("fc", weights=path, strict=False)
    assert model.load_report.unexpected == ["online_encoder.layer3.0.extra.weight"]


def test_wrong_architecture_is_an_error(tmp_path: Path):
    path = _fc_file(tmp_path, _r18_state())
    with pytest.raises(ValueError, match="resnet18"):
        backbone("mocov1", weights=path)


def test_legacy_files_without_num_batches_tracked_load(tmp_path: Path):
    state = {k: v for k, v in _r18_state().items() if "num_batches" not in k}
    path = tmp_path / "resnet18-legacy.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)  # pre-1.6 file format
    loaded, report = load_encoder_state(path)
    assert report.ok and report.filled and "layer3.1.bn2.num_batches_tracked" in loaded


def test_crw_legacy_conv_names_are_renamed(tmp_path: Path):
    state = {k: v for k, v in _r18_state().items() if not k.startswith("fc.")}
    legacy = {
        "encoder.model." + re.sub(r"(conv\d)\.weight$", r"\1.1.weight", k): v
        for k, v in state.items()
    }
    legacy["selfsim_fc.0.weight"] = torch.zeros(128, 512)
    loaded, report = load_encoder_state({"model": legacy, "args": None}, layout="crw")
    assert (
        report.ok and report.renamed and torch.equal(loaded["conv1.weight"], state["conv1.weight"])
    )


def test_unknown_layout_names_the_file(tmp_path: Path):
    path = tmp_path / "mystery.pth"
    torch.save({"weights": {"backbone.stem.weight": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="mystery.pth.*not one of the known"):
        load_encoder_state(path)
    with pytest.raises(CheckpointError, match="mystery.pth"):
        backbone(path)


def test_corrupt_file_names_the_file(tmp_path: Path):
    path = tmp_path / "broken.pth"
    torch.save(_r18_state(), path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="broken.pth.*corrupt"):
        load_encoder_state(path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_encoder_state(junk)


class Payload:
    """Unpickling this would create a file: a stand-in for code execution."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_arbitrary_pickled_class_is_refused(tmp_path: Path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    state = {"online_encoder." + k: v for k, v in _r18_state().items()}
    torch.save({"model": state, "args": Payload(str(marker))}, path)
    with pytest.raises(CheckpointError, match=r"evil.pth.*refused.*io\.open"):
        load_encoder_state(path)
    with pytest.raises(CheckpointError, match="refused"):
        load_encoder_state(path, layout="fc")
    assert not marker.exists()


def test_safetensors_float16_file_loads(tmp_path: Path):
    from safetensors.torch import save_file

    state = {k: v for k, v in _r18_state().items() if _TRUNK.match(k)}
    path = tmp_path / "fc-r18.safetensors"
    save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, path)
    loaded, report = load_encoder_state(path)
    assert (
        report.ok
        and report.layout == "torchvision"
        and loaded["conv1.weight"].dtype == torch.float32
    )


def _trunk_state() -> dict[str, torch.Tensor]:
    return {k: v for k, v in _r18_state().items() if _TRUNK.match(k)}


@pytest.mark.parametrize("dtype", [torch.int64, torch.int8, torch.bool])
@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_integer_or_bool_weights_are_refused(tmp_path: Path, dtype: torch.dtype, fmt: str):
    from safetensors.torch import save_file

    state = _trunk_state()
    state["conv1.weight"] = state["conv1.weight"].to(dtype)  # truncated: (nearly) all zeros
    if fmt == "safetensors":
        path, key = tmp_path / "broken.safetensors", "conv1.weight"
        save_file(state, path)
    else:
        path, key = _fc_file(tmp_path, state), "online_encoder.conv1.weight"
    name = str(dtype).removeprefix("torch.")
    for strict in (True, False):
        with pytest.raises(CheckpointError, match=rf"'{key}' is {name}.*expected floating-point"):
            load_encoder_state(path, strict=strict)
    with pytest.raises(CheckpointError, match=str(path)):
        backbone("fc", weights=path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused(tmp_path: Path, bad: float):
    state = _trunk_state()
    state["layer2.0.bn1.running_var"][3] = bad
    path = _fc_file(tmp_path, state)
    with pytest.raises(CheckpointError, match=r"layer2\.0\.bn1\.running_var' has 1 NaN/inf"):
        load_encoder_state(path)


def test_integer_num_batches_tracked_is_accepted(tmp_path: Path):
    state = _trunk_state()
    assert state["bn1.num_batches_tracked"].dtype == torch.int64
    loaded, report = load_encoder_state(_fc_file(tmp_path, state))
    assert report.ok and not report.warnings
    assert loaded["layer1.0.bn2.num_batches_tracked"].dtype == torch.int64


# ---------------------------------------------------------------- the format, from the content


def _safetensors_bytes(state: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in state.items()})


def _torch_bytes(obj: object, legacy: bool = False) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


@pytest.mark.parametrize("name", ["w.SAFETENSORS", "w.SafeTensors", "w.pth", "w.bin", "weights"])
def test_safetensors_loads_whatever_its_name(tmp_path: Path, name: str):
    state = _trunk_state()
    path = tmp_path / name
    path.write_bytes(_safetensors_bytes(state))
    loaded, report = load_encoder_state(path)
    assert report.ok and report.layout == "torchvision"
    key = "layer3.1.bn2.running_var"
    torch.testing.assert_close(loaded[key], state[key])
    model = backbone("imagenet-r18", weights=path)
    torch.testing.assert_close(model.conv1.weight, state["conv1.weight"])


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
def test_torch_file_loads_whatever_its_name(tmp_path: Path, legacy: bool):
    state = _trunk_state()
    path = tmp_path / "mislabelled.safetensors"  # a torch.save file named as safetensors
    path.write_bytes(_torch_bytes(state, legacy))
    assert checkpoint_format(path) == ("pickle" if legacy else "zip")
    loaded, report = load_encoder_state(path)
    assert report.ok
    torch.testing.assert_close(loaded["layer2.0.conv1.weight"], state["layer2.0.conv1.weight"])


def _tar(member: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("model.pth")
        info.size = len(member)
        tar.addfile(info, io.BytesIO(member))
    return buf.getvalue()


def _zip_of(name: str, member: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(name, member)
    return buf.getvalue()


def _bad_safetensors(kind: str) -> bytes:
    good = _safetensors_bytes({"conv1.weight": torch.ones(4, 3)})
    length = int.from_bytes(good[:8], "little")
    if kind == "data cut":
        return good[:-7]
    if kind == "header cut":
        return good[: 8 + length // 2]
    header = json.loads(good[8 : 8 + length])
    if kind == "offsets past the end":
        header["conv1.weight"]["data_offsets"] = [0, 4096]
    else:  # a header that is not a tensor table
        header["conv1.weight"] = "oops"
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + good[8 + length :]


NOT_CHECKPOINTS = {
    "empty": (b"", "an empty file, not a checkpoint"),
    "HTML page": (b"\n<!DOCTYPE html>\n<html><body>Sign in</body></html>", "an HTML page"),
    "HTML without doctype": (b"<html><head><title>404</title>", "an HTML page"),
    "XML error": (b"<?xml version='1.0'?><Error>AccessDenied</Error>", "an XML/HTML document"),
    "JSON error body": (b'{"message": "Not Found", "status": 404}', "a JSON document"),
    "text": (b"Not Found\n", "text (starts 'Not Found')"),
    "gzip": (gzip.compress(b"x" * 100), "a gzip file (decompress it first)"),
    "tar": (_tar(b"x" * 100), "a tar archive"),
    "zip of other files": (_zip_of("model.pth", b"x"), "a zip archive of other files (model.pth)"),
    "zip cut short": (_torch_bytes({"a": torch.ones(99)})[:300], "a zip archive cut short"),
    "safetensors data cut": (_bad_safetensors("data cut"), "safetensors file cut short"),
    "safetensors header cut": (_bad_safetensors("header cut"), "safetensors file cut short"),
    "safetensors offsets": (_bad_safetensors("offsets past the end"), "need 4096 bytes of data"),
    "safetensors bad entry": (_bad_safetensors("bad entry"), "safetensors file with a corrupt"),
    "zeros": (bytes(64), "unknown binary data"),
}


@pytest.mark.parametrize("name", NOT_CHECKPOINTS)
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_file_that_is_no_checkpoint_says_what_it_is(tmp_path: Path, name: str, suffix: str):
    data, what = NOT_CHECKPOINTS[name]
    path = tmp_path / ("file" + suffix)
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as err:
        load_encoder_state(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and what in message, message
    assert "arbitrary code" not in message  # not the pickle refusal of issue 23


@pytest.mark.parametrize("cut", [50, 3000])
def test_legacy_pickle_cut_short_is_corrupt(tmp_path: Path, cut: int):
    path = tmp_path / "cut.pth"
    path.write_bytes(_torch_bytes(_trunk_state(), legacy=True)[:cut])
    with pytest.raises(CheckpointError, match=r"cut.pth: corrupt or not a PyTorch checkpoint \(."):
        load_encoder_state(path)


def test_errors_can_name_the_file_by_its_origin(tmp_path: Path):
    path = tmp_path / ".x.pth.1234.part"
    path.write_bytes(b"<!doctype html><html></html>")
    with pytest.raises(CheckpointError, match=r"^https://example.org/x.pth: an HTML page"):
        read_checkpoint(path, name="https://example.org/x.pth")
