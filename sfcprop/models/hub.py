"""Download, verify and cache released weight files; work offline from the cache.

A `Source` names one release file: a release URL (fetched with urllib into
`cache_path(source)` = `cache_dir() / <name> / <filename>`) and/or a Hugging Face Hub copy
(`hf_repo`/`hf_filename`): a copy already in the HF cache is used where it is; a new one
is fetched with `huggingface_hub.hf_hub_download` into `hub_cache_path(source)` =
`cache_dir() / <name> / hub / <hf_filename>`.

Verification: every file is checked when it enters the cache and every time it is loaded
from it (`fetch`, `cached`). Where the registry has a full published hash, against that;
otherwise the file's full sha256 is pinned on first use (its first download, or the first
load of a file put in the cache by hand) in a sidecar `<file>.sha256` (JSON, written
atomically; `pin_path`), and a later load or download with another sha256 is a
`HashMismatchError`. A published prefix (the 8 digits in a file name) is checked too. HF
cache copies keep their sidecar at `pin_path(hub_cache_path(source))`. The sidecar also
records the file's (size, mtime_ns, ctime_ns, inode) when it last passed: an unchanged
stamp skips the rehash. Writing to a file changes its ctime, which cannot be set back by
hand, so a changed file is always hashed again; as file times are coarse, a stamp checked
less than `_RACY_NS` after the file's ctime is not trusted (git's "racy clean" rule).

Downloads: one fetch has one overall deadline, `download_timeout()` seconds for the hub
attempt and the URL together (`SFCPROP_DOWNLOAD_TIMEOUT`, default `DOWNLOAD_TIMEOUT`);
past it, `WeightsUnavailableError`. A download streams into a temporary file (a temporary
folder for the hub) beside its destination, named with the process id, and is moved into
place with `os.replace` only once verified. Any failure removes it and the folders made
for it; temporaries of a killed earlier download (its process is gone) are removed when
the next download of that file starts.

Environment: `SFCPROP_CACHE` (cache folder; else `$HF_HOME/sfcprop`, else
`~/.cache/sfcprop`), `HF_HUB_OFFLINE=1` (no network: cache only), `HF_HOME` /
`HF_HUB_CACHE` (where existing hub copies are looked for), `SFCPROP_DOWNLOAD_TIMEOUT`.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

_CHUNK = 1 << 20
_TRUE = {"1", "true", "yes", "on"}
_FULL_LENGTH = {"sha256": 64, "md5": 32, "gitsha1": 40}
_STALE_AGE_S = 24 * 3600.0  # temporaries older than this are stale whoever made them
_RACY_NS = 2_000_000_000  # a stamp taken this soon after the file's ctime is not trusted

DOWNLOAD_TIMEOUT = 120.0
"""Seconds one weight fetch may take overall (`SFCPROP_DOWNLOAD_TIMEOUT` overrides)."""

T = TypeVar("T")


class WeightsUnavailableError(RuntimeError):
    """A weight file that is neither cached nor downloadable right now."""


class HashMismatchError(ValueError):
    """A file whose hash differs from the published or the pinned one."""


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


def download_timeout() -> float:
    """Seconds one fetch may take: `SFCPROP_DOWNLOAD_TIMEOUT`, else `DOWNLOAD_TIMEOUT`."""
    raw = os.environ.get("SFCPROP_DOWNLOAD_TIMEOUT", "").strip()
    if not raw:
        return DOWNLOAD_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(
            f"SFCPROP_DOWNLOAD_TIMEOUT must be a positive number of seconds, got {raw!r}"
        )
    return value


def cache_path(source: Source) -> Path:
    """Where a URL download of `source` is (or would be) cached."""
    return cache_dir() / source.name / source.filename


def hub_cache_path(source: Source) -> Path:
    """Where a hub download of `source` is (or would be) cached."""
    return cache_dir() / source.name / "hub" / (source.hf_filename or source.filename)


def pin_path(path: str | os.PathLike) -> Path:
    """The sidecar that records the sha256 of the cached file `path`."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


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


# ---------------------------------------------------------------- hashes and pins


def _parse_hash(expected: str) -> tuple[str, str]:
    algo, _, want = expected.partition(":")
    if algo not in _FULL_LENGTH or not re.fullmatch(f"[0-9a-fA-F]{{1,{_FULL_LENGTH[algo]}}}", want):
        raise ValueError(
            f"bad published hash {expected!r}; expected '<sha256|md5|gitsha1>:<hex digits>'"
        )
    return algo, want.lower()


def is_full_hash(expected: str | None) -> bool:
    """True for a complete `"<algo>:<hex>"` hash, False for None or a prefix."""
    if not expected:
        return False
    algo, want = _parse_hash(expected)
    return len(want) == _FULL_LENGTH[algo]


def _digests(path: Path, algos: set[str]) -> dict[str, str]:
    """The hex digests `algos` (sha256, md5, gitsha1) of `path`, in one read."""
    size = path.stat().st_size
    makers: dict[str, Callable[[], Any]] = {
        "sha256": hashlib.sha256,
        "md5": lambda: hashlib.md5(usedforsecurity=False),
        "gitsha1": lambda: hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False),
    }
    hashes = {a: makers[a]() for a in algos}
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            for h in hashes.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashes.items()}


def _stamp(path: Path) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _read_record(pin: Path, path: Path) -> dict[str, Any]:
    """The sidecar `pin` of `path` ({} when there is none)."""
    if not pin.is_file():
        return {}
    try:
        record = json.loads(pin.read_text())
        if not isinstance(record, dict) or not re.fullmatch(r"[0-9a-f]{64}", record["sha256"]):
            raise ValueError("no sha256 field")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise HashMismatchError(
            f"{pin}: unreadable sha256 record of {path} ({e}); delete both to download the "
            "file again"
        ) from e
    return record


def _write_record(pin: Path, sha256: str, published: str | None, path: Path) -> None:
    """Record (atomically) that `path` has `sha256` and passed `published` as it is now."""
    record = {
        "sha256": sha256,
        "published": published,
        "stamp": _stamp(path),
        "checked_ns": time.time_ns(),
    }
    fd, tmp = tempfile.mkstemp(dir=pin.parent, prefix=f".{pin.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, pin)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check(
    path: Path, published: str | None, pinned: str | None, pin: Path, name: str, fix: str
) -> str:
    """The sha256 of `path` once it matches `published` and `pinned`; else the error
    (naming the file as `name`, ending with `fix`)."""
    algos = {"sha256"} | ({_parse_hash(published)[0]} if published else set())
    digests = _digests(path, algos)
    if published:
        algo, want = _parse_hash(published)
        if not digests[algo].startswith(want):
            raise HashMismatchError(
                f"{name}: {algo} {digests[algo]} does not match the published {published}. " + fix
            )
    got = digests["sha256"]
    if pinned and got != pinned and not is_full_hash(published):
        raise HashMismatchError(
            f"{name}: sha256 {got} does not match sha256:{pinned}, pinned on first use in "
            f"{pin}: the file changed since. " + fix + f" If the release itself changed, "
            f"delete {pin} too."
        )
    return got


def _unchanged(record: dict[str, Any], path: Path, published: str | None) -> bool:
    """True when `record` verified `path`, as it is now, against `published`."""
    stamp = _stamp(path)
    if record.get("stamp") != stamp or record.get("published") != published:
        return False
    checked = record.get("checked_ns")
    return isinstance(checked, int) and checked - stamp[2] >= _RACY_NS


def verify_file(path: str | os.PathLike, published: str | None, pin: str | os.PathLike) -> str:
    """Check a cached file against `published` and its pin (pinned here on first use).

    Returns its sha256. A mismatch is a `HashMismatchError` naming the file, both hashes
    and what to do. A sidecar that cannot be written (a read-only cache) is a warning.
    """
    path, pin = Path(path), Path(pin)
    record = _read_record(pin, path)
    if _unchanged(record, path, published):
        return record["sha256"]
    fix = f"Delete {path} to download it again."
    sha256 = _check(path, published, record.get("sha256"), pin, str(path), fix)
    try:
        pin.parent.mkdir(parents=True, exist_ok=True)
        _write_record(pin, sha256, published, path)
    except OSError as e:
        warnings.warn(f"could not record the sha256 of {path} in {pin} ({e})", stacklevel=2)
    return sha256


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

    With `verify` (the default) the file is checked first (`verify_file`); `verify=False`
    only says whether a file is there.
    """
    for path, published, pin in _candidates(source):
        if path is not None and path.is_file():
            if verify:
                verify_file(path, published, pin)
            return path
    return None


# ---------------------------------------------------------------- fetching


def fetch(source: Source, timeout: float | None = None) -> Path:
    """The local path of `source`: from the cache, else downloaded (hub copy, then URL).

    `timeout`: seconds for the whole download (default `download_timeout()`). Offline
    (`HF_HUB_OFFLINE=1`), past the deadline or when the network fails, raises
    `WeightsUnavailableError` naming the file, its URL and the exact path to put it at.
    A file whose hash differs raises `HashMismatchError` and is not cached.
    """
    path = cached(source)
    if path is not None:
        return path
    if is_offline():
        raise WeightsUnavailableError(_unavailable(source, "offline (HF_HUB_OFFLINE=1)"))
    seconds = download_timeout() if timeout is None else timeout
    deadline = time.monotonic() + seconds
    try:
        return _download_source(source, deadline)
    except _NETWORK_ERRORS as e:
        if _timed_out(e, deadline):
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
            return _hub_download(source, deadline)
        except HashMismatchError:
            raise
        except Exception as e:
            if _timed_out(e, deadline):
                raise
            hub_error = e  # not on the hub, hub unreachable: try the URL next
    if not source.url:
        if hub_error is None:
            raise WeightsUnavailableError("no URL to download from")
        first = str(hub_error).splitlines()[0] if str(hub_error) else type(hub_error).__name__
        raise WeightsUnavailableError(f"hub copy: {first}") from hub_error
    print(f"sfcprop: downloading {source.url} to {cache_path(source)}", file=sys.stderr)
    left = _left(deadline)
    return download(source.url, cache_path(source), source.hash, timeout=left)


def _timed_out(error: BaseException, deadline: float) -> bool:
    reason = getattr(error, "reason", None)
    return (
        isinstance(error, TimeoutError)
        or isinstance(reason, TimeoutError)
        or time.monotonic() >= deadline
    )


def _left(deadline: float) -> float:
    """Seconds left before `deadline` (`TimeoutError` when none)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the download deadline passed")
    return left


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


# ---------------------------------------------------------------- temporaries


@contextlib.contextmanager
def _folder(folder: Path) -> Iterator[list[Path]]:
    """Create `folder`; on an error, remove the (empty) folders created for it.

    Yields those folders, deepest first.
    """
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield created
    except BaseException:
        _prune(created)
        raise


def _prune(folders: list[Path]) -> None:
    """Remove `folders` (deepest first) where empty."""
    for p in folders:
        with contextlib.suppress(OSError):
            p.rmdir()


_TEMP = re.compile(r"(?:sha256\.)?(?:(?P<pid>\d+)\.)?\w+\.(?:part|tmp|hub)")


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False  # an older sfcprop's temporary, without a pid
    if pid == os.getpid() or os.name == "nt":  # os.kill(pid, 0) is not a probe on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists (another user's process)
    return True


def _clean_stale(folder: Path, filename: str) -> None:
    """Remove temporaries of earlier downloads of `filename` whose process is gone."""
    prefix = f".{filename}."
    with contextlib.suppress(FileNotFoundError):
        for p in folder.iterdir():
            found = p.name.startswith(prefix) and _TEMP.fullmatch(p.name[len(prefix) :])
            if not found:
                continue
            pid = int(found["pid"]) if found["pid"] else None
            with contextlib.suppress(OSError):
                if _alive(pid) and time.time() - p.lstat().st_mtime < _STALE_AGE_S:
                    continue
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink()


def _install(tmp: Path, dest: Path, published: str | None, what: str) -> Path:
    """Verify `tmp`, the download of `what`, against `published` and the pin of `dest`,
    then move it to `dest`."""
    pin = pin_path(dest)
    record = _read_record(pin, dest)
    fix = f"It was not kept (a corrupt transfer, or a different file at {what})."
    sha256 = _check(tmp, published, record.get("sha256"), pin, what, fix)
    os.replace(tmp, dest)
    try:
        _write_record(pin, sha256, published, dest)
    except OSError as e:  # checked now; pinned at the next load instead
        warnings.warn(f"could not record the sha256 of {dest} in {pin} ({e})", stacklevel=3)
    return dest


def download(
    url: str,
    dest: str | os.PathLike,
    expected_hash: str | None = None,
    *,
    timeout: float | None = None,
) -> Path:
    """Download `url` to `dest` atomically, verified, within `timeout` seconds overall.

    Streams into a temporary file beside `dest`; only a complete file that matches
    `expected_hash` (`"sha256:..."` etc.) and the sha256 pinned in `pin_path(dest)` (if
    any) is moved to `dest`, and its sha256 is pinned. Any failure (network, deadline:
    `TimeoutError`, truncated transfer, hash) deletes the temporary file and the folders
    made for it.
    """
    dest = Path(dest)
    deadline = time.monotonic() + (download_timeout() if timeout is None else timeout)
    with _folder(dest.parent):
        _clean_stale(dest.parent, dest.name)
        fd, tmp = tempfile.mkstemp(
            dir=dest.parent, prefix=f".{dest.name}.{os.getpid()}.", suffix=".part"
        )
        try:
            with os.fdopen(fd, "wb") as out:
                _stream(url, out, deadline)
            return _install(Path(tmp), dest, expected_hash, url)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _stream(url: str, out: BinaryIO, deadline: float) -> None:
    """Write the body of `url` to `out`, giving up at `deadline` (`TimeoutError`)."""
    request = urllib.request.Request(url, headers={"User-Agent": "sfcprop"})
    size = 0
    with urllib.request.urlopen(request, timeout=_left(deadline)) as resp:
        length = resp.headers.get("Content-Length")
        while True:
            _set_timeout(resp, _left(deadline))
            chunk = resp.read1(_CHUNK)
            if not chunk:
                break
            out.write(chunk)
            size += len(chunk)
    if length is not None and size != int(length):
        raise WeightsUnavailableError(
            f"{url}: transfer truncated ({size} of {length} bytes); nothing was cached"
        )


def _set_timeout(resp: http.client.HTTPResponse, seconds: float) -> None:
    """Bound the next socket read by the time left (best effort: http.client internals)."""
    sock = getattr(getattr(resp.fp, "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def _hub_download(source: Source, deadline: float) -> Path:
    """A new hub copy of `source` at `hub_cache_path(source)`, verified, before `deadline`.

    `hf_hub_download` writes into a temporary folder beside the destination; it runs in a
    worker thread so that the deadline holds whatever it retries. A worker still running
    at the deadline is abandoned and removes its folder when it ends.
    """
    from huggingface_hub import hf_hub_download

    dest = hub_cache_path(source)
    filename = source.hf_filename or source.filename
    with _folder(dest.parent) as created:
        _clean_stale(dest.parent, dest.name)
        tmp = Path(
            tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.{os.getpid()}.", suffix=".hub")
        )
        abandoned = threading.Event()

        def work() -> Path:
            try:
                got = hf_hub_download(
                    source.hf_repo,
                    filename,
                    local_dir=tmp,
                    etag_timeout=min(10.0, _left(deadline)),
                )
                return Path(got)
            finally:
                if abandoned.is_set():  # the caller gave up: clean up after it
                    shutil.rmtree(tmp, ignore_errors=True)
                    _prune(created)

        try:
            got = _within(deadline, work, abandoned)
            if not got.resolve().is_relative_to(tmp.resolve()):
                shutil.copyfile(got, tmp / ".copy")
                got = tmp / ".copy"
            return _install(got, dest, source.hf_hash, f"the hub's {source.hf_repo}/{filename}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _within(deadline: float, work: Callable[[], T], abandoned: threading.Event) -> T:
    """`work()` run in a daemon thread; `TimeoutError` (and `abandoned` set) at `deadline`."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work()
        except BaseException as e:  # handed to the caller
            result["error"] = e

    thread = threading.Thread(target=run, name="sfcprop-hub-download", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        abandoned.set()
        raise TimeoutError("the hub download did not finish before the deadline")
    if "error" in result:
        raise result["error"]
    return result["value"]
