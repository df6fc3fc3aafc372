"""Downloads without internet: a local HTTP server, a fake Hugging Face cache, offline mode,
hash pinning, the overall download deadline and a monkeypatched `hf_hub_download`."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision

from sfcprop.models import backbone, hub, pins
from sfcprop.models.registry import REGISTRY, Release


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SFCPROP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("HF_HUB_OFFLINE", "SFCPROP_OFFLINE", "HF_HUB_CACHE", "SFCPROP_DOWNLOAD_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)


pytestmark = pytest.mark.usefixtures("one_thread")


def _r18_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save(torchvision.models.resnet18().state_dict(), buf)
    return buf.getvalue()


PAYLOAD = _r18_bytes()
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


HANG_S = 10.0  # the longest a hanging test server (or fake hub) holds on


class _Server:
    """A bounded local HTTP server: `/good.pth` and any other path in `bodies` (served
    whole, with status 200 and the Content-Length in `lengths`, else the body's; None: no
    Content-Length, the end of the body is the connection's close), `/truncated.pth`
    (closes half-way), `/chunked-cut.pth` (a chunked body that stops mid-chunk),
    `/hang.pth` (never answers) and `/trickle.pth` (a byte every 50 ms); the last two stop
    at `close()` or after `HANG_S`."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.bodies = {"/good.pth": PAYLOAD}
        self.lengths: dict[str, str | None] = {}
        self.release = threading.Event()
        hits, bodies, lengths, release = self.hits, self.bodies, self.lengths, self.release

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                hits[self.path] += 1
                if self.path == "/hang.pth":
                    release.wait(HANG_S)
                    return
                if self.path == "/chunked-cut.pth":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(b"%x\r\n" % len(PAYLOAD) + PAYLOAD[:1000])
                    self.close_connection = True
                    return
                if self.path not in ({"/truncated.pth", "/trickle.pth"} | set(bodies)):
                    self.send_error(404)
                    return
                body = bodies.get(self.path, PAYLOAD)
                self.send_response(200)
                length = lengths.get(self.path, str(len(body)))
                if length is not None:
                    self.send_header("Content-Length", length)
                self.end_headers()
                if self.path == "/trickle.pth":
                    for i in range(len(body)):
                        if release.wait(0.05):
                            return
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                cut = self.path in ("/truncated.pth", "/trickle.pth")
                self.wfile.write(body[: len(body) // 2] if cut else body)
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
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
    assert _files(hub.cache_dir()) == [path, hub.pin_path(path)]


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


# ---------------------------------------------------------------- verification and pins


def _pinned(path: Path) -> str:
    return json.loads(hub.pin_path(path).read_text())["sha256"]


def _tamper(path: Path) -> None:
    """Change one byte, keeping the size and the modification time."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_download_pins_the_full_sha256_where_only_a_prefix_is_published(server: _Server):
    source = hub.Source(
        "pfx", "good.pth", url=server.url + "/good.pth", hash="sha256:" + SHA256[:8]
    )
    assert "pinned on first use" in hub.verification(source)
    path = hub.fetch(source, timeout=10)
    assert _pinned(path) == SHA256


def test_tampered_cached_file_is_refused_on_load(server: _Server):
    source = hub.Source("sfc-like", "good.pth", url=server.url + "/good.pth")  # no hash published
    path = hub.fetch(source, timeout=10)
    _tamper(path)  # same size, same mtime: only the ctime tells
    with pytest.raises(hub.HashMismatchError) as err:
        hub.fetch(source, timeout=10)
    message = str(err.value)
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    assert str(path) in message and SHA256 in message and actual in message
    assert "pinned on first use" in message and f"Delete {path}" in message
    assert server.hits["/good.pth"] == 1
    path.unlink()  # what the message says to do: the next fetch downloads it again
    assert hub.fetch(source, timeout=10).read_bytes() == PAYLOAD


@pytest.mark.parametrize("published", ["sha256:" + "0" * 64, "sha256:00000000", None])
def test_file_put_in_the_cache_by_hand_is_checked(published: str | None):
    source = hub.Source("byhand", "good.pth", url="http://127.0.0.1:9/good.pth", hash=published)
    path = hub.cache_path(source)
    path.parent.mkdir(parents=True)
    path.write_bytes(PAYLOAD)
    if published is not None:  # the published hash (full or prefix) is checked at once
        with pytest.raises(hub.HashMismatchError, match=f"{SHA256}.*{published}"):
            hub.fetch(source)
        return
    assert hub.fetch(source) == path and _pinned(path) == SHA256  # pinned on first use
    _tamper(path)
    with pytest.raises(hub.HashMismatchError, match="pinned on first use"):
        hub.cached(source)
    assert hub.cached(source, verify=False) == path


def test_download_that_differs_from_the_pin_is_not_kept(server: _Server):
    source = hub.Source("changed", "good.pth", url=server.url + "/good.pth")
    path = hub.fetch(source, timeout=10)
    path.unlink()
    server.bodies["/good.pth"] = PAYLOAD[:-1] + b"x"  # the release changed upstream
    with pytest.raises(
        hub.HashMismatchError, match="/good.pth: sha256 .* pinned on first use.*not kept"
    ):
        hub.fetch(source, timeout=10)
    assert _files(hub.cache_dir()) == [hub.pin_path(path)]


def test_unchanged_file_is_not_hashed_again(server: _Server, monkeypatch: pytest.MonkeyPatch):
    calls = []
    digests = pins._digests
    monkeypatch.setattr(pins, "_digests", lambda p, a: calls.append(p) or digests(p, a))
    source = hub.Source("stamp", "good.pth", url=server.url + "/good.pth")
    path = hub.fetch(source, timeout=10)
    assert len(calls) == 1  # the download
    assert hub.fetch(source) == path and len(calls) == 2  # checked just after its ctime: racy
    monkeypatch.setattr(pins, "_RACY_NS", 0)  # as if checked long after the file was written
    assert hub.fetch(source) == path and len(calls) == 2  # same (size, mtime, ctime, inode)
    os.utime(path)
    assert hub.fetch(source) == path and len(calls) == 3


def _full_hash(algo: str, data: bytes) -> str:
    if algo == "gitsha1":
        return "gitsha1:" + hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    return f"{algo}:" + hashlib.new(algo, data).hexdigest()


def _forge_sidecar(path: Path, published: str) -> None:
    """A sidecar saying `path`, as it is now, passed `published` long after it was written."""
    st = path.stat()
    record = {
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "published": published,
        "stamp": [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino],
        "checked_ns": st.st_ctime_ns + 10**12,
        "loads": True,
    }
    hub.pin_path(path).write_text(json.dumps(record))


@pytest.mark.parametrize("algo", ["sha256", "md5", "gitsha1"])
def test_forged_sidecar_does_not_bypass_a_full_published_hash(server: _Server, algo: str):
    published = _full_hash(algo, PAYLOAD)
    source = hub.Source("full", "good.pth", url=server.url + "/good.pth", hash=published)
    path = hub.fetch(source, timeout=10)
    other = _r18_bytes()  # another (valid) checkpoint in its place
    assert other != PAYLOAD
    path.write_bytes(other)
    _forge_sidecar(path, published)
    with pytest.raises(hub.HashMismatchError, match=f"does not match the published {published}"):
        hub.fetch(source, timeout=10)
    with pytest.raises(hub.HashMismatchError, match=f"Delete {path}"):
        hub.cached(source)
    assert server.hits["/good.pth"] == 1


def test_full_published_hash_is_checked_at_every_load(
    server: _Server, monkeypatch: pytest.MonkeyPatch
):
    calls = []
    digests = pins._digests
    monkeypatch.setattr(pins, "_digests", lambda p, a: calls.append(p) or digests(p, a))
    monkeypatch.setattr(pins, "_RACY_NS", 0)
    source = hub.Source("full", "good.pth", url=server.url + "/good.pth", hash=f"sha256:{SHA256}")
    path = hub.fetch(source, timeout=10)
    assert hub.fetch(source) == path and hub.fetch(source) == path
    assert calls == [calls[0], path, path]  # the download, then each load


def test_hub_copy_in_the_hf_cache_is_pinned_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hf_file = _fake_hf_cache(tmp_path / "hf", "someone/weights", "model.pth", PAYLOAD)
    source = hub.Source("x", "x.pth", hf_repo="someone/weights", hf_filename="model.pth")
    assert hub.fetch(source) == hf_file
    assert _pinned(hub.hub_cache_path(source)) == SHA256
    _tamper(hf_file)
    with pytest.raises(hub.HashMismatchError, match=str(hf_file)):
        hub.fetch(source)


# ---------------------------------------------------------------- deadline and litter


def _no_litter() -> None:
    root = hub.cache_dir()
    assert not root.exists() or not list(root.rglob("*")), list(root.rglob("*"))


@pytest.mark.parametrize("path", ["/hang.pth", "/trickle.pth"])
def test_hanging_server_gives_up_at_the_deadline_without_litter(
    server: _Server, monkeypatch: pytest.MonkeyPatch, path: str
):
    monkeypatch.setenv("SFCPROP_DOWNLOAD_TIMEOUT", "1")
    source = hub.Source("slow", "slow.pth", url=server.url + path)
    start = time.monotonic()
    with pytest.raises(hub.WeightsUnavailableError, match="within 1 s.*SFCPROP_DOWNLOAD_TIMEOUT"):
        hub.fetch(source)
    assert time.monotonic() - start < 3
    _no_litter()


def test_download_timeout_setting(monkeypatch: pytest.MonkeyPatch):
    assert hub.download_timeout() == hub.DOWNLOAD_TIMEOUT == 120
    monkeypatch.setenv("SFCPROP_DOWNLOAD_TIMEOUT", "2.5")
    assert hub.download_timeout() == 2.5
    monkeypatch.setenv("SFCPROP_DOWNLOAD_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="SFCPROP_DOWNLOAD_TIMEOUT.*positive"):
        hub.download_timeout()


def _dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    return int(child.stdout)


def test_stale_temporaries_of_a_killed_download_are_removed(server: _Server):
    source = hub.Source("stale", "good.pth", url=server.url + "/good.pth")
    folder = hub.cache_path(source).parent
    folder.mkdir(parents=True)
    dead = _dead_pid()
    stale = [f".good.pth.{dead}.abcd1234.part", ".good.pth.zz9xk2ab.part",
             f".good.pth.sha256.{dead}.q1w2e3r4.tmp"]  # fmt: skip
    live = f".good.pth.{os.getpid()}.live1234.part"  # a download still running
    for name in [*stale, live, "unrelated.part"]:
        (folder / name).write_bytes(b"half")
    path = hub.fetch(source, timeout=10)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [path.name, hub.pin_path(path).name, live, "unrelated.part"]
    )


# ---------------------------------------------------------------- hub downloads (faked)


class _FakeHub:
    """Stands in for `huggingface_hub.hf_hub_download`: nothing in the HF cache; a download
    writes `data` into `local_dir` (after a partial file), or hangs until `release`."""

    def __init__(self, data: bytes | None = PAYLOAD, hang: bool = False) -> None:
        self.data, self.hang, self.calls = data, hang, 0
        self.release = threading.Event()

    def __call__(self, repo_id: str, filename: str, **kw: object) -> str:
        if kw.get("local_files_only"):
            raise FileNotFoundError("not in the HF cache")
        self.calls += 1
        partial = Path(str(kw["local_dir"])) / ".cache" / "huggingface" / f"{filename}.incomplete"
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(b"half")
        if self.hang:
            self.release.wait(HANG_S)
        if self.data is None:
            raise OSError("the hub is unreachable")
        path = Path(str(kw["local_dir"])) / filename
        path.write_bytes(self.data)
        partial.unlink()
        return str(path)


def _hub_source(url: str | None = None) -> hub.Source:
    return hub.Source("hubbed", "x.pth", url=url, hf_repo="someone/weights",
                      hf_filename="model.safetensors")  # fmt: skip


def test_hub_download_is_verified_and_cached(monkeypatch: pytest.MonkeyPatch):
    import huggingface_hub

    fake = _FakeHub()
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    source = _hub_source()
    path = hub.fetch(source, timeout=5)
    assert path == hub.hub_cache_path(source) and path.read_bytes() == PAYLOAD
    assert _files(hub.cache_dir()) == [path, hub.pin_path(path)]
    assert hub.fetch(source) == path and fake.calls == 1
    _tamper(path)
    with pytest.raises(hub.HashMismatchError, match="pinned on first use"):
        hub.fetch(source)


def test_hub_that_hangs_gives_up_at_the_deadline_without_litter(
    server: _Server, monkeypatch: pytest.MonkeyPatch
):
    import huggingface_hub

    fake = _FakeHub(hang=True)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    monkeypatch.setenv("SFCPROP_DOWNLOAD_TIMEOUT", "1")
    start = time.monotonic()
    with pytest.raises(hub.WeightsUnavailableError, match="within 1 s"):
        hub.fetch(_hub_source(server.url + "/good.pth"))
    assert time.monotonic() - start < 3 and server.hits["/good.pth"] == 0
    _no_litter()
    fake.release.set()  # the abandoned worker finishes late and cleans up after itself
    for thread in threading.enumerate():
        if thread.name == "sfcprop-hub-download":
            thread.join(HANG_S)
    _no_litter()


def test_hub_failure_falls_back_to_the_url(server: _Server, monkeypatch: pytest.MonkeyPatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _FakeHub(data=None))
    source = _hub_source(server.url + "/good.pth")
    assert hub.fetch(source, timeout=10) == hub.cache_path(source)
    assert not hub.hub_cache_path(source).parent.exists()


# ---------------------------------------------------------------- only checkpoints are cached


def _safetensors_bytes() -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in torchvision.models.resnet18().state_dict().items()})


def _zip_of_other_files() -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("weights/model.pth", PAYLOAD[:100])
    return buf.getvalue()


HTML = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>...</body></html>"

CUT = "corrupt, a zip archive cut short"
CUT_ST = "a safetensors file cut short"
# what a server sends with status 200 -> (body, sent with its Content-Length?, the error says)
NOT_CHECKPOINTS = {
    "HTML page": (HTML, True, "an HTML page (starts '<!DOCTYPE html> <html>"),
    "HTML page, no Content-Length": (HTML, False, "an HTML page"),
    "JSON error body": (b'{"error": "rate limited"}', True, "a JSON document"),
    "empty body": (b"", True, "an empty file"),
    "empty body, no Content-Length": (b"", False, "an empty file"),
    "text": (b"Access denied\n", True, "text (starts 'Access denied')"),
    "gzip": (gzip.compress(PAYLOAD), True, "a gzip file"),
    "zip of other files": (_zip_of_other_files(), True, "a zip archive of other files"),
    "zip cut, no Content-Length": (PAYLOAD[: len(PAYLOAD) // 2], False, CUT),
    "safetensors cut, no Content-Length": (_safetensors_bytes()[:-999], False, CUT_ST),
    "legacy pickle cut, no Content-Length": (b"\x80\x02\x8a\x0al\xfc", False, "corrupt"),
}


@pytest.mark.parametrize("name", NOT_CHECKPOINTS)
def test_a_download_that_is_no_checkpoint_is_neither_cached_nor_pinned(server: _Server, name: str):
    body, with_length, what = NOT_CHECKPOINTS[name]
    server.bodies["/release.pth"] = body
    server.lengths["/release.pth"] = str(len(body)) if with_length else None
    url = server.url + "/release.pth"
    source = hub.Source("tofu", "release.pth", url=url)  # no published hash: pinned on first use
    with pytest.raises(hub.WeightsUnavailableError) as err:
        hub.fetch(source, timeout=10)
    first = str(err.value).splitlines()[0]
    assert f"{url}: {what}" in first and "nothing was cached" in first, first
    assert "arbitrary code" not in first
    _no_litter()
    server.bodies["/release.pth"] = PAYLOAD  # the server sends the real file now
    server.lengths.pop("/release.pth")
    path = hub.fetch(source, timeout=10)
    assert path.read_bytes() == PAYLOAD and _pinned(path) == SHA256


def test_a_content_length_longer_than_the_body_is_a_truncated_transfer(server: _Server):
    server.bodies["/long.pth"] = PAYLOAD[:5000]
    server.lengths["/long.pth"] = str(len(PAYLOAD))
    source = hub.Source("long", "long.pth", url=server.url + "/long.pth")
    with pytest.raises(hub.WeightsUnavailableError, match=f"truncated \\(5000 of {len(PAYLOAD)}"):
        hub.fetch(source, timeout=10)
    _no_litter()


@pytest.mark.parametrize("declared", ["lots", "-5", "1e6"])
def test_an_unreadable_content_length_is_an_error(server: _Server, declared: str):
    server.bodies["/odd.pth"] = PAYLOAD
    server.lengths["/odd.pth"] = declared
    source = hub.Source("odd", "odd.pth", url=server.url + "/odd.pth")
    expected = f"unreadable Content-Length '{declared}'"
    with pytest.raises(hub.WeightsUnavailableError, match=expected):
        hub.fetch(source, timeout=10)
    _no_litter()


def test_a_chunked_body_cut_short_is_a_truncated_transfer(server: _Server):
    source = hub.Source("chunks", "c.pth", url=server.url + "/chunked-cut.pth")
    with pytest.raises(hub.WeightsUnavailableError, match="truncated.*1000 bytes"):
        hub.fetch(source, timeout=10)
    _no_litter()


def test_a_safetensors_release_loads_whatever_its_name(server: _Server):
    data = _safetensors_bytes()
    server.bodies["/model.PTH"] = data
    source = hub.Source("st", "model.PTH", url=server.url + "/model.PTH")
    path = hub.fetch(source, timeout=10)
    assert path.read_bytes() == data and json.loads(hub.pin_path(path).read_text())["loads"]


class _Payload:
    """Unpickling this would create a file: a stand-in for code execution."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_download_that_would_run_code_is_refused_and_not_cached(server: _Server, tmp_path: Path):
    buf = io.BytesIO()
    torch.save({"state_dict": {}, "x": _Payload(str(tmp_path / "pwned"))}, buf)
    server.bodies["/evil.pth"] = buf.getvalue()
    source = hub.Source("evil", "evil.pth", url=server.url + "/evil.pth")
    with pytest.raises(hub.WeightsUnavailableError, match="evil.pth: refused.*nothing was cached"):
        hub.fetch(source, timeout=10)
    assert not (tmp_path / "pwned").exists()
    _no_litter()


def _old_pin(path: Path, data: bytes) -> None:
    """`data` at `path`, pinned as sfcprop 0.2 did: whatever arrived, no "loads" field."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    st = path.stat()
    record = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "published": None,
        "stamp": [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino],
        "checked_ns": st.st_ctime_ns + 10**12,
    }
    hub.pin_path(path).write_text(json.dumps(record))


@pytest.mark.parametrize("bad", [HTML, PAYLOAD[:3000], b""], ids=["html", "cut", "empty"])
def test_a_bad_file_pinned_by_an_older_sfcprop_is_replaced(
    server: _Server, capsys: pytest.CaptureFixture, bad: bytes
):
    source = hub.Source("old", "good.pth", url=server.url + "/good.pth")
    path, pin = hub.cache_path(source), hub.pin_path(hub.cache_path(source))
    _old_pin(path, bad)
    with pytest.raises(hub.NotACheckpointError) as err:  # looking only: it says what to do
        hub.cached(source)
    assert f"delete {path} and {pin}" in str(err.value) and err.value.path == path
    assert path.read_bytes() == bad
    assert hub.fetch(source, timeout=10) == path  # fetching: removed and downloaded again
    assert path.read_bytes() == PAYLOAD and _pinned(path) == SHA256
    assert f"sfcprop: removed {path} and its sidecar: {path}: " in capsys.readouterr().err
    assert server.hits["/good.pth"] == 1


def test_a_pin_of_an_older_sfcprop_whose_file_was_deleted_says_what_to_do(server: _Server):
    source = hub.Source("old", "good.pth", url=server.url + "/good.pth")
    path, pin = hub.cache_path(source), hub.pin_path(hub.cache_path(source))
    _old_pin(path, HTML)
    path.unlink()  # what the older sfcprop said to do
    with pytest.raises(hub.HashMismatchError, match=f"pinned whatever arrived.*delete {pin}"):
        hub.fetch(source, timeout=10)
    pin.unlink()
    assert hub.fetch(source, timeout=10).read_bytes() == PAYLOAD


def test_a_good_file_pinned_by_an_older_sfcprop_is_checked_once(
    server: _Server, monkeypatch: pytest.MonkeyPatch
):
    from sfcprop.models import checkpoints

    loads = []
    read = checkpoints.read_checkpoint
    monkeypatch.setattr(checkpoints, "read_checkpoint", lambda p, **k: loads.append(p) or read(p))
    source = hub.Source("old", "good.pth", url=server.url + "/good.pth")
    path = hub.cache_path(source)
    _old_pin(path, PAYLOAD)
    assert hub.fetch(source) == path and hub.fetch(source) == path
    assert loads == [path] and json.loads(hub.pin_path(path).read_text())["loads"] is True
    assert server.hits["/good.pth"] == 0


def test_a_file_put_in_the_cache_by_hand_is_pinned_only_if_it_loads():
    source = hub.Source("byhand", "x.pth", url="http://127.0.0.1:9/x.pth")
    path = hub.cache_path(source)
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"detail": "Not Found"}')
    with pytest.raises(hub.NotACheckpointError, match=f"{path}: a JSON document"):
        hub.cached(source)
    assert not hub.pin_path(path).exists()
    path.write_bytes(PAYLOAD)
    assert hub.cached(source) == path and _pinned(path) == SHA256


def test_a_hub_copy_that_is_no_checkpoint_falls_back_to_the_url(
    server: _Server, monkeypatch: pytest.MonkeyPatch
):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _FakeHub(data=HTML))
    source = _hub_source(server.url + "/good.pth")
    assert hub.fetch(source, timeout=10) == hub.cache_path(source)
    assert not hub.hub_cache_path(source).parent.exists()
    assert hub.cache_path(source).read_bytes() == PAYLOAD


def test_a_hub_copy_that_is_no_checkpoint_is_the_error_without_a_url(
    monkeypatch: pytest.MonkeyPatch,
):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _FakeHub(data=HTML))
    with pytest.raises(
        hub.WeightsUnavailableError,
        match="hub copy: the hub's someone/weights/model.safetensors: an HTML page",
    ):
        hub.fetch(_hub_source(), timeout=10)
    _no_litter()
