"""Downloads into the cache, within one overall deadline, through temporaries beside the file.

One fetch has one overall deadline, `download_timeout()` seconds for the hub attempt and the
URL together (`SFCPROP_DOWNLOAD_TIMEOUT`, default `DOWNLOAD_TIMEOUT`). A download streams
into a temporary file (a temporary folder for the hub) beside its destination, named with
the process id, and is moved into place with `os.replace` only once verified
(`pins.install`). Any failure removes it and the folders made for it; temporaries of a
killed earlier download (its process is gone) are removed when the next download of that
file starts.

Only a checkpoint is cached: a body shorter than its Content-Length is refused, and
without a full published hash the file must load safely (`check_checkpoint`: read by its
content, `torch.load(weights_only=True)` or safetensors) before it is cached and pinned. An
HTML page, a JSON error body or a body cut short without a Content-Length is a
`NotACheckpointError` naming the URL and what arrived; nothing is cached or pinned, so a
later correct download just works.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from sfcprop.models.pins import Check, install

_CHUNK = 1 << 20
_STALE_AGE_S = 24 * 3600.0  # temporaries older than this are stale whoever made them

DOWNLOAD_TIMEOUT = 120.0
"""Seconds one weight fetch may take overall (`SFCPROP_DOWNLOAD_TIMEOUT` overrides)."""

T = TypeVar("T")


class WeightsUnavailableError(RuntimeError):
    """A weight file that is neither cached nor downloadable right now."""


class NotACheckpointError(WeightsUnavailableError):
    """A download or cached file that is not a checkpoint that loads: an HTML page, a JSON
    error body, an empty or cut file, a pickle refused as unsafe. `path`: the cached file
    it is about (None for a download, which is never cached)."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


def check_checkpoint(path: Path, name: str) -> None:
    """`NotACheckpointError` (naming the file as `name`) unless `path` is a checkpoint
    that loads safely (`checkpoints.read_checkpoint`: by content, never unsafe pickles)."""
    from sfcprop.models.checkpoints import read_checkpoint
    from sfcprop.models.formats import CheckpointError

    try:
        read_checkpoint(path, name=name)
    except CheckpointError as e:
        raise NotACheckpointError(str(e)) from None


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


def timed_out(error: BaseException, deadline: float) -> bool:
    """True when `error` is (or wraps) a timeout, or `deadline` has passed."""
    reason = getattr(error, "reason", None)
    return (
        isinstance(error, TimeoutError)
        or isinstance(reason, TimeoutError)
        or time.monotonic() >= deadline
    )


def time_left(deadline: float) -> float:
    """Seconds left before `deadline` (`TimeoutError` when none)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the download deadline passed")
    return left


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


# ---------------------------------------------------------------- transfers


def download(
    url: str,
    dest: str | os.PathLike,
    expected_hash: str | None = None,
    *,
    timeout: float | None = None,
    check: Check | None = check_checkpoint,
) -> Path:
    """Download `url` to `dest` atomically, verified, within `timeout` seconds overall.

    Streams into a temporary file beside `dest`; only a complete file that matches
    `expected_hash` (`"sha256:..."` etc.) and the sha256 pinned in `pin_path(dest)` (if
    any), and, without a full `expected_hash`, passes `check` (default: it is a checkpoint
    that loads; None: any file), is moved to `dest`, and its sha256 is pinned. Any failure
    (network, deadline: `TimeoutError`, truncated transfer, hash, `NotACheckpointError`)
    deletes the temporary file and the folders made for it.
    """
    dest = Path(dest)
    deadline = time.monotonic() + (download_timeout() if timeout is None else timeout)
    with _folder(dest.parent):
        _clean_stale(dest.parent, dest.name)
        # not io.atomic_path: _clean_stale finds a dead process's temporary by its pid
        fd, tmp = tempfile.mkstemp(
            dir=dest.parent, prefix=f".{dest.name}.{os.getpid()}.", suffix=".part"
        )
        try:
            with os.fdopen(fd, "wb") as out:
                _stream(url, out, deadline)
            return _install(Path(tmp), dest, expected_hash, url, check)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _install(tmp: Path, dest: Path, published: str | None, what: str, check: Check | None) -> Path:
    """`pins.install`, saying in a failed check's error that nothing was cached."""
    try:
        return install(tmp, dest, published, what, check)
    except NotACheckpointError as e:
        raise NotACheckpointError(f"{e}; nothing was cached") from None


def _declared_length(url: str, resp: http.client.HTTPResponse) -> int | None:
    """The Content-Length of `resp` (None when absent); an unreadable one is an error."""
    raw = resp.headers.get("Content-Length")
    if raw is None:
        return None
    if not re.fullmatch(r"[0-9]+", raw.strip()):
        raise WeightsUnavailableError(
            f"{url}: unreadable Content-Length {raw!r} (expected a number of bytes); "
            "nothing was cached"
        )
    return int(raw)


def _stream(url: str, out: BinaryIO, deadline: float) -> None:
    """Write the body of `url` to `out`, giving up at `deadline` (`TimeoutError`); a body
    shorter than its Content-Length is a `WeightsUnavailableError`."""
    request = urllib.request.Request(url, headers={"User-Agent": "sfcprop"})
    size = 0
    with urllib.request.urlopen(request, timeout=time_left(deadline)) as resp:
        length = _declared_length(url, resp)
        while True:
            _set_timeout(resp, time_left(deadline))
            try:
                chunk = resp.read1(_CHUNK)
            except http.client.IncompleteRead as e:  # a chunked body cut short
                raise WeightsUnavailableError(
                    f"{url}: transfer truncated (the connection closed after "
                    f"{size + len(e.partial)} bytes, mid-chunk); nothing was cached"
                ) from None
            if not chunk:
                break
            out.write(chunk)
            size += len(chunk)
    if length is not None and size != length:
        raise WeightsUnavailableError(
            f"{url}: transfer truncated ({size} of {length} bytes); nothing was cached"
        )


def _set_timeout(resp: http.client.HTTPResponse, seconds: float) -> None:
    """Bound the next socket read by the time left (best effort: http.client internals)."""
    sock = getattr(getattr(resp.fp, "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def hub_download(
    repo: str,
    filename: str,
    dest: Path,
    published: str | None,
    deadline: float,
    check: Check | None = check_checkpoint,
) -> Path:
    """A new copy of the hub's `repo`/`filename` at `dest`, verified against `published`
    and the pin of `dest` (and `check`, as `download` does), before `deadline`.

    `hf_hub_download` writes into a temporary folder beside the destination; it runs in a
    worker thread so that the deadline holds whatever it retries. A worker still running
    at the deadline is abandoned and removes its folder when it ends.
    """
    from huggingface_hub import hf_hub_download

    with _folder(dest.parent) as created:
        _clean_stale(dest.parent, dest.name)
        tmp = Path(
            tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.{os.getpid()}.", suffix=".hub")
        )
        abandoned = threading.Event()

        def work() -> Path:
            try:
                got = hf_hub_download(
                    repo,
                    filename,
                    local_dir=tmp,
                    etag_timeout=min(10.0, time_left(deadline)),
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
            return _install(got, dest, published, f"the hub's {repo}/{filename}", check)
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
