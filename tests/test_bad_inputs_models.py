"""Bad backbones and weights (the models layer: registry, checkpoints, verified downloads);
each row through `sfcprop.backbone` / `sfcprop.propagate` and `sfcprop propagate
--backbone` (`bad_inputs.check`)."""

from __future__ import annotations

import gzip
import hashlib
import json
import zipfile
from pathlib import Path

import pytest
import torch
from bad_inputs import Case, Inputs, Run, case_id, check

from sfcprop.models import hub
from sfcprop.models.formats import CheckpointError
from sfcprop.models.registry import REGISTRY, Release

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


def _trunk_bytes(w: Inputs, scale: float = 1.0) -> bytes:
    """A valid trunk checkpoint (its conv1 scaled by `scale`: another file, as valid)."""
    state = w.trunk_state()
    state["conv1.weight"] *= scale
    torch.save(state, w.tmp / "trunk.pth")
    return (w.tmp / "trunk.pth").read_bytes()


def _safetensors_bytes(w: Inputs) -> bytes:
    from safetensors.torch import save

    return save(w.trunk_state())


def _release(w: Inputs, body: bytes, published: str | None = None) -> Run:
    """`imagenet-r18` whose default release is `body`, served from a local file (no
    published hash unless `published`), its cache under the row's folder."""
    served = w.file("served.bin", body)
    w.monkeypatch.setenv("SFCPROP_CACHE", str(w.tmp / "cache"))
    for var in ("HF_HUB_OFFLINE", "SFCPROP_OFFLINE", "SFCPROP_DOWNLOAD_TIMEOUT"):
        w.monkeypatch.delenv(var, raising=False)
    source = hub.Source("r18-test", "resnet18.pth", url=served.as_uri(), hash=published)
    release = Release(source, "torchvision")
    w.monkeypatch.setitem(REGISTRY["imagenet-r18"].releases, "imagenet1k_v1", release)
    return w.backbone("imagenet-r18")


def _forged_sidecar(w: Inputs) -> Run:
    """The release has a full published sha256; the cache holds another valid checkpoint
    with a sidecar that says it passed that hash."""
    genuine = _trunk_bytes(w)
    run = _release(w, genuine, "sha256:" + hashlib.sha256(genuine).hexdigest())
    source = REGISTRY["imagenet-r18"].releases["imagenet1k_v1"].source
    path = hub.cache_path(source)
    path.parent.mkdir(parents=True)
    path.write_bytes(_trunk_bytes(w, scale=2.0))
    st = path.stat()
    record = {
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "published": source.hash,
        "stamp": [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino],
        "checked_ns": st.st_ctime_ns + 10**12,
        "loads": True,
    }
    hub.pin_path(path).write_text(json.dumps(record))
    return run


def _zip_of_other_files(w: Inputs) -> bytes:
    with zipfile.ZipFile(w.tmp / "release.zip", "w") as archive:
        archive.writestr("model/resnet18.pth", b"x")
    return (w.tmp / "release.zip").read_bytes()


HTML = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head></html>"

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
        "release URL serves an HTML page",
        hub.WeightsUnavailableError,
        "served.bin: an HTML page (starts '<!DOCTYPE html> <html>",
        lambda w: _release(w, HTML),
    ),
    Case(
        "release URL serves a JSON error body",
        hub.WeightsUnavailableError,
        'a JSON document (starts \'{"error": "rate limited"}\'), not a checkpoint',
        lambda w: _release(w, b'{"error": "rate limited"}'),
    ),
    Case(
        "release URL serves an empty body",
        hub.WeightsUnavailableError,
        "served.bin: an empty file, not a checkpoint",
        lambda w: _release(w, b""),
    ),
    Case(
        "release URL serves plain text",
        hub.WeightsUnavailableError,
        "text (starts 'Bandwidth limit exceeded'), not a checkpoint",
        lambda w: _release(w, b"Bandwidth limit exceeded\n"),
    ),
    Case(
        "release download cut short without a Content-Length",
        hub.WeightsUnavailableError,
        "a zip archive cut short (no central directory)",
        lambda w: _release(w, _trunk_bytes(w)[:20000]),
    ),
    Case(
        "release safetensors download cut short",
        hub.WeightsUnavailableError,
        "a safetensors file cut short",
        lambda w: _release(w, _safetensors_bytes(w)[:-100]),
    ),
    Case(
        "release URL serves a gzip",
        hub.WeightsUnavailableError,
        "a gzip file (decompress it first), not a checkpoint",
        lambda w: _release(w, gzip.compress(_trunk_bytes(w))),
    ),
    Case(
        "release URL serves a zip of other files",
        hub.WeightsUnavailableError,
        "a zip archive of other files (model/resnet18.pth)",
        lambda w: _release(w, _zip_of_other_files(w)),
    ),
    Case(
        "release URL serves a pickle that would run code",
        hub.WeightsUnavailableError,
        "refused, loading it would unpickle",
        lambda w: _release(w, _pickle_bomb(w).read_bytes()),
    ),
    Case(
        "forged sidecar beside a full published hash",
        hub.HashMismatchError,
        "does not match the published sha256:",
        _forged_sidecar,
    ),
    Case(
        "weights file that is an HTML page",
        CheckpointError,
        "weights.pth: an HTML page",
        lambda w: w.backbone("imagenet-r18", w.file("weights.pth", HTML)),
    ),
    Case(
        "empty weights file",
        CheckpointError,
        "weights.pth: an empty file, not a checkpoint",
        lambda w: w.backbone("imagenet-r18", w.file("weights.pth")),
    ),
    Case(
        "safetensors weights (upper-case suffix) cut short",
        CheckpointError,
        "W.SAFETENSORS: a safetensors file cut short",
        lambda w: w.backbone("imagenet-r18", w.file("W.SAFETENSORS", _safetensors_bytes(w)[:-9])),
    ),
    Case(
        "weights that are a gzip of a checkpoint",
        CheckpointError,
        "weights.pth.gz: a gzip file (decompress it first)",
        lambda w: w.backbone("imagenet-r18", w.file("weights.pth.gz", gzip.compress(b"x"))),
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
