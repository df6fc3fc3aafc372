"""Download, verify and cache released weight files; work offline from the cache.

A `Source` names one release file: a release URL (fetched with urllib into
`cache_path(source)` = `cache_dir() / <name> / <filename>`) and/or a Hugging Face Hub copy
(`hf_repo`/`hf_filename`): a copy already in the HF cache is used where it is; a new one
is fetched with `huggingface_hub.hf_hub_download` into `hub_cache_path(source)` =
`cache_dir() / <name> / hub / <hf_filename>`.

Verification (`pins`): every file is checked when it enters the cache and every time it is
loaded from it (`fetch`, `cached`). Where the registry has a full published hash, against
that, at every load (a sidecar never stands in for it); otherwise the file's full sha256
is pinned on first use in a sidecar `<file>.sha256` (`pin_path`), and a later load or
download with another sha256 is a `HashMismatchError`. HF cache copies keep their sidecar
at `pin_path(hub_cache_path(source))`.

Only checkpoints are cached and pinned (`transfer.check_checkpoint`): without a full
published hash, a download (and a file met in the cache without a pin) must load safely
first, so an HTML page, a JSON error body or a cut body served with status 200 is a
`NotACheckpointError` naming the URL and what arrived, and nothing is cached. A file an
older sfcprop cached and pinned that is not a checkpoint is removed by `fetch` with its
sidecar and downloaded again (`cached` names both files to delete).

Downloads (`transfer`): one fetch has one overall deadline, `download_timeout()` seconds for
the hub attempt and the URL together (`SFCPROP_DOWNLOAD_TIMEOUT`, default
`DOWNLOAD_TIMEOUT`); past it, `WeightsUnavailableError`. A download streams into a
temporary beside its destination and is moved into place only once verified; any failure
removes it, and temporaries of a killed earlier download are removed by the next one.

Environment: `SFCPROP_CACHE` (cache folder; else `$HF_HOME/sfcprop`, else
`~/.cache/sfcprop`), `HF_HUB_OFFLINE=1` (no network: cache only), `HF_HOME` /
`HF_HUB_CACHE` (where existing hub copies are looked for), `SFCPROP_DOWNLOAD_TIMEOUT`.
"""

from __future__ import annotations

import http.client
import os
import sys
import time
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sfcprop.models.pins import HashMismatchError, is_full_hash, pin_path, verify_file
from sfcprop.models.transfer import (
    DOWNLOAD_TIMEOUT,
    NotACheckpointError,
    WeightsUnavailableError,
    check_checkpoint,
    download,
    download_timeout,
    hub_download,
    time_left,
    timed_out,
)

__all__ = ["DOWNLOAD_TIMEOUT", "HashMismatchError", "NotACheckpointError", "Source"]
__all__ += ["WeightsUnavailableError"]
__all__ += ["cache_dir", "cache_path", "cached", "download", "download_timeout", "fetch"]
__all__ += ["hub_cache_path", "is_full_hash", "is_offline", "pin_path", "verification"]
__all__ += ["verify_file"]

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Source:
    """One released weight file.

    `name`: cache sub-folder (unique per release). `hash`: the URL file's published hash,
    `"<algo>:<hex>"` with algo one of `sha256`, `md5` or `gitsha1` (git blob SHA-1, as
    GitHub trees show); a prefix such as the 8 digits in a file name is accepted. None
    when nothing is published. `hf_hash`: the same for the hub copy. Without a full hash
    the file is pinned on first use. `manual`: how to obtain the file when there is no
    direct URL (Google Drive, TF zips...).
    """

    name: str
    filename: str
    url: str | None = None
    hash: str | None = None
    hf_repo: str | None = None
    hf_filename: str | None = None
    manual: str | None = None
    hf_hash: str | None = None


def cache_dir() -> Path:
    """The folder that holds downloads (not created here)."""
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


def hub_cache_path(source: Source) -> Path:
    """Where a hub download of `source` is (or would be) cached."""
    return cache_dir() / source.name / "hub" / (source.hf_filename or source.filename)


def verification(source: Source) -> str:
    """How `source` is checked: a full hash in the registry, or pinned on first use."""
    parts = []
    for what, published, present in (
        ("url", source.hash, source.url or source.manual),
        ("hub", source.hf_hash, source.hf_repo),
    ):
        if not present:
            continue
        if is_full_hash(published):
            parts.append(f"{what}: full {published.partition(':')[0]} in the registry")
        elif published:
            parts.append(f"{what}: pinned on first use (published prefix {published} checked)")
        else:
            parts.append(f"{what}: pinned on first use (no hash published)")
    return "; ".join(parts)


# ---------------------------------------------------------------- the cache


def _hf_cache_dir() -> Path | None:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return None  # huggingface_hub's own default


def _hf_cached(source: Source) -> Path | None:
    """The copy of `source` in the HF cache (no network), or None."""
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(
            source.hf_repo,
            source.hf_filename or source.filename,
            cache_dir=_hf_cache_dir(),
            local_files_only=True,
        )
    except Exception:  # not cached (or a broken HF cache): not there
        return None
    return Path(path)


def _candidates(source: Source) -> Iterator[tuple[Path | None, str | None, Path]]:
    """(file or None, published hash, sidecar) for each place `source` may be cached."""
    yield cache_path(source), source.hash, pin_path(cache_path(source))
    if source.hf_repo:
        pin = pin_path(hub_cache_path(source))
        yield hub_cache_path(source), source.hf_hash, pin
        yield _hf_cached(source), source.hf_hash, pin


def cached(source: Source, *, verify: bool = True) -> Path | None:
    """The cached file of `source` (URL cache, hub copy, HF cache), without network access.

    With `verify` (the default) the file is checked first (`verify_file`; before it is
    pinned, that it is a checkpoint that loads): a file that is none is a
    `NotACheckpointError` naming it and its sidecar to delete. `verify=False` only says
    whether a file is there.
    """
    for path, published, pin in _candidates(source):
        if path is not None and path.is_file():
            if verify:
                _verify_cached(path, published, pin)
            return path
    return None


def _verify_cached(path: Path, published: str | None, pin: Path) -> None:
    try:
        verify_file(path, published, pin, check=check_checkpoint)
    except NotACheckpointError as e:
        raise NotACheckpointError(
            f"{e}. It is not the release (an HTML page or a cut download cached by an older "
            f"sfcprop?): delete {path} and {pin}, and it is downloaded again",
            path=path,
        ) from e


def _usable_cached(source: Source) -> Path | None:
    """`cached(source)`, after removing the files of sfcprop's own cache that are not a
    checkpoint (an HTML page or a cut body an older sfcprop cached and pinned) with their
    sidecars, so that they are downloaded again instead of locking the user out."""
    own = {cache_path(source), hub_cache_path(source)}
    while True:
        try:
            return cached(source)
        except NotACheckpointError as e:
            if e.path not in own:
                raise  # the HF cache is not ours to clean
            own.discard(e.path)
            reason = str(e.__cause__ or e)
            e.path.unlink()
            pin_path(e.path).unlink(missing_ok=True)
            print(f"sfcprop: removed {e.path} and its sidecar: {reason}", file=sys.stderr)


# ---------------------------------------------------------------- fetching


def fetch(source: Source, timeout: float | None = None) -> Path:
    """The local path of `source`: from the cache, else downloaded (hub copy, then URL).

    `timeout`: seconds for the whole download (default `download_timeout()`). Offline
    (`HF_HUB_OFFLINE=1`), past the deadline or when the network fails, raises
    `WeightsUnavailableError` naming the file, its URL and the exact path to put it at.
    A file whose hash differs raises `HashMismatchError` and is not cached; a download that
    is not a checkpoint (an HTML page, a cut body) raises `WeightsUnavailableError` saying
    what arrived, and is neither cached nor pinned. A cached file that is not a checkpoint
    (cached by an older sfcprop) is removed with its sidecar and downloaded again.
    """
    path = _usable_cached(source)
    if path is not None:
        return path
    if is_offline():
        raise WeightsUnavailableError(_unavailable(source, "offline (HF_HUB_OFFLINE=1)"))
    seconds = download_timeout() if timeout is None else timeout
    deadline = time.monotonic() + seconds
    try:
        return _download_source(source, deadline)
    except _NETWORK_ERRORS as e:
        if timed_out(e, deadline):
            reason = (
                f"no complete download within {seconds:g} s (the overall deadline; "
                "SFCPROP_DOWNLOAD_TIMEOUT sets it)"
            )
        else:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise WeightsUnavailableError(_unavailable(source, reason)) from e


_NETWORK_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    OSError,
    WeightsUnavailableError,
)


def _download_source(source: Source, deadline: float) -> Path:
    """The hub copy, else the URL file of `source`, downloaded before `deadline`."""
    hub_error: Exception | None = None
    if source.hf_repo:
        try:
            filename = source.hf_filename or source.filename
            dest, repo = hub_cache_path(source), source.hf_repo
            return hub_download(repo, filename, dest, source.hf_hash, deadline)
        except HashMismatchError:
            raise
        except Exception as e:
            if timed_out(e, deadline):
                raise
            hub_error = e  # not on the hub, hub unreachable: try the URL next
    if not source.url:
        if hub_error is None:
            raise WeightsUnavailableError("no URL to download from")
        first = str(hub_error).splitlines()[0] if str(hub_error) else type(hub_error).__name__
        raise WeightsUnavailableError(f"hub copy: {first}") from hub_error
    print(f"sfcprop: downloading {source.url} to {cache_path(source)}", file=sys.stderr)
    left = time_left(deadline)
    return download(source.url, cache_path(source), source.hash, timeout=left)


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
