"""Downloads without internet: a local HTTP server, a fake Hugging Face cache, offline mode."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision

from sfcprop import hub
from sfcprop.backbones import backbone
from sfcprop.backbones.registry import REGISTRY, Release


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SFCPROP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("HF_HUB_OFFLINE", "SFCPROP_OFFLINE", "HF_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)


pytestmark = pytest.mark.usefixtures("one_thread")


def _r18_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save(torchvision.models.resnet18().state_dict(), buf)
    return buf.getvalue()


PAYLOAD = _r18_bytes()
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class _Server:
    """A bounded local HTTP server: `/good.pth`, and `/truncated.pth` (closes half-way)."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                hits[self.path] += 1
                if self.path not in ("/good.pth", "/truncated.pth"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.end_headers()
                body = PAYLOAD if self.path == "/good.pth" else PAYLOAD[: len(PAYLOAD) // 2]
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.close()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_good_download_is_cached_and_not_fetched_twice(server: _Server):
    source = hub.Source("good", "good.pth", url=server.url + "/good.pth", hash=f"sha256:{SHA256}")
    path = hub.fetch(source, timeout=10)
    assert path == hub.cache_path(source) and path.read_bytes() == PAYLOAD
    assert hub.fetch(source, timeout=10) == path
    assert server.hits["/good.pth"] == 1
    assert _files(hub.cache_dir()) == [path]


def test_cached_file_works_offline(server: _Server, monkeypatch: pytest.MonkeyPatch):
    source = hub.Source(
        "good", "good.pth", url=server.url + "/good.pth", hash="sha256:" + SHA256[:8]
    )
    path = hub.fetch(source, timeout=10)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.fetch(source) == path
    assert server.hits["/good.pth"] == 1


def test_wrong_hash_is_an_error_and_leaves_the_cache_clean(server: _Server):
    source = hub.Source("bad", "good.pth", url=server.url + "/good.pth", hash="sha256:" + "0" * 64)
    with pytest.raises(hub.HashMismatchError, match="does not match"):
        hub.fetch(source, timeout=10)
    assert _files(hub.cache_dir()) == []


def test_truncated_transfer_is_an_error_and_leaves_the_cache_clean(server: _Server):
    source = hub.Source("cut", "truncated.pth", url=server.url + "/truncated.pth")
    with pytest.raises(hub.WeightsUnavailableError, match="truncated"):
        hub.fetch(source, timeout=10)
    assert _files(hub.cache_dir()) == []


def test_http_error_gives_the_clear_message(server: _Server):
    source = hub.Source("gone", "gone.pth", url=server.url + "/gone.pth")
    with pytest.raises(hub.WeightsUnavailableError) as err:
        hub.fetch(source, timeout=10)
    assert str(hub.cache_path(source)) in str(err.value) and "/gone.pth" in str(err.value)
    assert _files(hub.cache_dir()) == []


def test_offline_without_cache_names_file_url_and_path(
    server: _Server, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    url = server.url + "/good.pth"
    source = hub.Source("good", "good.pth", url=url, hf_repo="nobody/nothing")
    with pytest.raises(hub.WeightsUnavailableError) as err:
        hub.fetch(source)
    message = str(err.value)
    assert "good.pth" in message and url in message and str(hub.cache_path(source)) in message
    assert server.hits["/good.pth"] == 0


def _fake_hf_cache(root: Path, repo: str, filename: str, data: bytes) -> Path:
    """The huggingface_hub cache layout: refs/main -> snapshots/<commit>/<file>."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = root / "hub" / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    path = folder / "snapshots" / commit / filename
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return path


def test_hub_copy_loads_offline_from_the_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    expected = _fake_hf_cache(tmp_path / "hf", "someone/weights", "model.pth", PAYLOAD)
    source = hub.Source("x", "x.pth", url="http://127.0.0.1:9/x.pth", hf_repo="someone/weights",
                        hf_filename="model.pth")  # fmt: skip
    assert hub.fetch(source).read_bytes() == expected.read_bytes()


def test_registry_default_weights_from_the_hf_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from safetensors.torch import save_file

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    state = torchvision.models.resnet18().state_dict()
    src = REGISTRY["imagenet-r18"].releases["imagenet1k_v1"].source
    path = _fake_hf_cache(tmp_path / "hf", src.hf_repo, src.hf_filename, b"")
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    model = backbone("imagenet-r18")
    assert model.load_report.ok and str(path) in model.load_report.source
    torch.testing.assert_close(model.layer3[1].bn2.running_var, state["layer3.1.bn2.running_var"])


def test_registry_release_download_end_to_end(server: _Server, monkeypatch: pytest.MonkeyPatch):
    source = hub.Source("r18", "good.pth", url=server.url + "/good.pth", hash=f"sha256:{SHA256}")
    monkeypatch.setitem(
        REGISTRY["imagenet-r18"].releases, "imagenet1k_v1", Release(source, "torchvision")
    )
    model = backbone("imagenet-r18", weights="imagenet1k_v1")
    assert model.load_report.ok and not model.training
    backbone("imagenet-r18")  # default release, now cached
    assert server.hits["/good.pth"] == 1


def test_registry_offline_error_is_clear(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.WeightsUnavailableError) as err:
        backbone("crw")
    message = str(err.value)
    assert "pretrained.pth" in message and "github.com/ajabri/videowalk" in message
    assert str(Path(hub.cache_dir()) / "crw" / "pretrained.pth") in message
