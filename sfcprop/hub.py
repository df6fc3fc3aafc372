"""Download, verify and cache released weight files; work offline from the cache.

A `Source` names one release file: a Hugging Face Hub copy (`hf_repo`/`hf_filename`,
fetched with `huggingface_hub.hf_hub_download` into the HF cache) and/or a release URL
(fetched with urllib into `cache_dir() / <name> / <filename>`). A URL download streams to a
temporary file in the cache folder, checks the published hash and is moved into place with
`os.replace` only when it matches; on any failure the temporary file is deleted, so the
cache never holds a partial or unverified file.

Environment: `SFCPROP_CACHE` (cache folder; else `$HF_HOME/sfcprop`, else
`~/.cache/sfcprop`), `HF_HUB_OFFLINE=1` (no network: cache only), `HF_HOME` /
`HF_HUB_CACHE` (where hub copies live).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20
_TRUE = {"1", "true", "yes", "on"}


class WeightsUnavailableError(RuntimeError):
    """A weight file that is neither cached nor downloadable right now."""


class HashMismatchError(ValueError):
    """A downloaded file whose hash differs from the published one (it was not cached)."""


@dataclass(frozen=True)
class Source:
    """One released weight file.

    `name`: cache sub-folder (unique per release). `hash`: `"<algo>:<hex>"` with algo one
    of `sha256`, `md5` (a published prefix such as the 8 digits in a file name is accepted)
    or `gitsha1` (git blob SHA-1, as GitHub trees show); None when nothing is published.
    `manual`: how to obtain the file when there is no direct URL (Google Drive, TF zips...).
    """

    name: str
    filename: str
    url: str | None = None
    hash: str | None = None
    hf_repo: str | None = None
    hf_filename: str | None = None
    manual: str | None = None


def cache_dir() -> Path:
    """The folder that holds URL downloads (not created here)."""
    if os.environ.get("SFCPROP_CACHE"):
        return Path(os.environ["SFCPROP_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "sfcprop"
    return Path("~/.cache/sfcprop").expanduser()


def is_offline() -> bool:
    """True when `HF_HUB_OFFLINE` (or `SFCPROP_OFFLINE`) asks for no network access."""
    return any(
        os.environ.get(v, "").strip().lower() in _TRUE
        for v in ("HF_HUB_OFFLINE", "SFCPROP_OFFLINE")
    )


def cache_path(source: Source) -> Path:
    """Where a URL download of `source` is (or would be) cached."""
    return cache_dir() / source.name / source.filename


def _hf_cache_dir() -> Path | None:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return None  # huggingface_hub's own default


def _hf_download(source: Source, local_only: bool) -> Path | None:
    """The hub copy of `source` (from the HF cache when `local_only`), or None."""
    if not source.hf_repo:
        return None
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(
            source.hf_repo,
            source.hf_filename or source.filename,
            cache_dir=_hf_cache_dir(),
            local_files_only=local_only,
        )
    except Exception:  # not cached / no network / gone from the hub: try the URL next
        return None
    return Path(path)


def cached(source: Source) -> Path | None:
    """The cached file of `source` (URL cache or HF cache), without any network access."""
    path = cache_path(source)
    if path.is_file():
        return path
    return _hf_download(source, local_only=True)


def fetch(source: Source, timeout: float = 60.0) -> Path:
    """The local path of `source`: from the cache, else downloaded (hub copy, then URL).

    Offline (`HF_HUB_OFFLINE=1`) or when the network fails, raises
    `WeightsUnavailableError` naming the file, its URL and the exact path to put it at.
    A download whose hash differs raises `HashMismatchError` and leaves the cache clean.
    """
    path = cached(source)
    if path is not None:
        return path
    if not is_offline():
        path = _hf_download(source, local_only=False)
        if path is not None:
            return path
    if is_offline() or not source.url:
        raise WeightsUnavailableError(_unavailable(source, "offline" if is_offline() else None))
    print(f"sfcprop: downloading {source.url} to {cache_path(source)}", file=sys.stderr)
    try:
        return download(source.url, cache_path(source), source.hash, timeout=timeout)
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as e:
        raise WeightsUnavailableError(_unavailable(source, str(e))) from e


def _unavailable(source: Source, reason: str | None) -> str:
    where = cache_path(source)
    lines = [f"weights {source.name!r} ({source.filename}) are not available"]
    if reason:
        lines[0] += f": {reason}"
    if source.url:
        lines.append(f"download {source.url}")
    if source.hf_repo:
        lines.append(f"or the hub copy {source.hf_repo}/{source.hf_filename or source.filename}")
    if source.manual:
        lines.append(source.manual)
    lines.append(f"and put the file at {where}")
    if source.hash:
        lines.append(f"(expected {source.hash})")
    return "\n  ".join(lines)


def _check_hash(expected: str, digests: dict[str, str], where: str) -> None:
    algo, _, want = expected.partition(":")
    if algo not in digests:
        raise ValueError(f"unknown hash algorithm {algo!r} in {expected!r}")
    got = digests[algo]
    if not want or not got.startswith(want.lower()):
        raise HashMismatchError(
            f"{where}: {algo} {got} does not match the published {want}; the file was not kept "
            "(a corrupt or truncated download, or a different file at that URL)"
        )


def download(
    url: str, dest: str | os.PathLike, expected_hash: str | None = None, *, timeout: float = 60.0
) -> Path:
    """Download `url` to `dest` atomically, verifying `expected_hash` (`"sha256:..."` etc.).

    Streams into a temporary file beside `dest`; only a complete file whose hash matches
    is moved to `dest`. Any failure (network, truncated transfer, hash) deletes it.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digests = {"sha256": hashlib.sha256(), "md5": hashlib.md5(usedforsecurity=False)}
        size = 0
        request = urllib.request.Request(url, headers={"User-Agent": "sfcprop"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                size += len(chunk)
                for h in digests.values():
                    h.update(chunk)
        if length is not None and size != int(length):
            raise WeightsUnavailableError(
                f"{url}: transfer truncated ({size} of {length} bytes); nothing was cached"
            )
        if expected_hash:
            hexes = {k: h.hexdigest() for k, h in digests.items()}
            if expected_hash.startswith("gitsha1:"):
                hexes["gitsha1"] = _git_blob_sha1(Path(tmp), size)
            _check_hash(expected_hash, hexes, url)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _git_blob_sha1(path: Path, size: int) -> str:
    h = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
