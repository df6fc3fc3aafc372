"""Hash checks and pins: a weight file is checked against its published hash and the sha256
pinned on first use, when it enters the cache (`install`) and when it is loaded (`verify_file`).

Where the registry has a full published hash, the file is checked against that; otherwise
its full sha256 is pinned on first use (its first download, or the first load of a file put
in the cache by hand) in a sidecar `<file>.sha256` (JSON, written atomically; `pin_path`),
and a later load or download with another sha256 is a `HashMismatchError`. A published
prefix (the 8 digits in a file name) is checked too. The sidecar also records the file's
(size, mtime_ns, ctime_ns, inode) when it last passed: where no full hash is published, an
unchanged stamp skips the rehash (a full published hash is checked at every load, whatever
the sidecar says).

Nothing is pinned that does not load: before a file is pinned on first use, `check` (given
by the caller: `transfer.check_checkpoint`) must pass, so an HTML page or a cut body served
as the release never becomes the pin. The sidecar records that (`"loads": true`); a pin
without it (written by an older sfcprop, which pinned whatever arrived) has its file
checked again at the next load.

Writing to a file changes its ctime, which cannot be set back by hand, so a changed file is
always hashed again; as file times are coarse, a stamp checked less than `_RACY_NS` after
the file's ctime is not trusted (git's "racy clean" rule).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20
_FULL_LENGTH = {"sha256": 64, "md5": 32, "gitsha1": 40}
_RACY_NS = 2_000_000_000  # a stamp taken this soon after the file's ctime is not trusted


class HashMismatchError(ValueError):
    """A file whose hash differs from the published or the pinned one."""


Check = Callable[[Path, str], None]
"""Raises unless the file (named in errors by the string) may be pinned: it loads."""


def pin_path(path: str | os.PathLike) -> Path:
    """The sidecar that records the sha256 of the cached file `path`."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


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


def _write_record(pin: Path, sha256: str, published: str | None, path: Path, loads: bool) -> None:
    """Record (atomically) that `path` has `sha256` and passed `published` as it is now, and
    whether it passed the load check."""
    record = {
        "sha256": sha256,
        "published": published,
        "stamp": _stamp(path),
        "checked_ns": time.time_ns(),
        "loads": loads,
    }
    # not io.atomic_path: transfer._clean_stale finds a dead process's temporary by its pid
    fd, tmp = tempfile.mkstemp(dir=pin.parent, prefix=f".{pin.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, pin)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check(
    path: Path, published: str | None, record: dict[str, Any], pin: Path, name: str, fix: str
) -> str:
    """The sha256 of `path` once it matches `published` and the sha256 pinned in `record`;
    else the error (naming the file as `name`, ending with `fix`)."""
    pinned = record.get("sha256")
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
            f"{pin}: the file changed since. " + fix + _stale_pin_hint(record, pin)
        )
    return got


def _stale_pin_hint(record: dict[str, Any], pin: Path) -> str:
    """What to do when the pin itself may be wrong."""
    if not record.get("loads"):
        return (
            f" The pin was written by an older sfcprop, which pinned whatever arrived: if that "
            f"was an HTML page or a cut download, or the release itself changed, delete {pin}."
        )
    return f" If the release itself changed, delete {pin} too."


def _unchanged(record: dict[str, Any], path: Path, published: str | None) -> bool:
    """True when `record` verified `path`, as it is now, against `published`.

    Never for a full published hash: that is checked at every load, as a sidecar (a file
    anyone who can write the cache can forge) must not stand in for the registry's hash.
    """
    if is_full_hash(published):
        return False
    stamp = _stamp(path)
    if record.get("stamp") != stamp or record.get("published") != published:
        return False
    checked = record.get("checked_ns")
    return isinstance(checked, int) and checked - stamp[2] >= _RACY_NS


def verify_file(
    path: str | os.PathLike,
    published: str | None,
    pin: str | os.PathLike,
    check: Check | None = None,
) -> str:
    """Check a cached file against `published` and its pin (pinned here on first use).

    Returns its sha256. A mismatch is a `HashMismatchError` naming the file, both hashes
    and what to do. Without a full published hash, `check(path, name)` must pass before
    the file is pinned (and once for a pin that does not record it); its error propagates.
    A sidecar that cannot be written (a read-only cache) is a warning.
    """
    path, pin = Path(path), Path(pin)
    record = _read_record(pin, path)
    must_load = check is not None and not is_full_hash(published) and not record.get("loads")
    if not must_load and _unchanged(record, path, published):
        return record["sha256"]
    fix = f"Delete {path} to download it again."
    sha256 = _check(path, published, record, pin, str(path), fix)
    if must_load:
        check(path, str(path))
    loads = must_load or (bool(record.get("loads")) and record.get("sha256") == sha256)
    try:
        pin.parent.mkdir(parents=True, exist_ok=True)
        _write_record(pin, sha256, published, path, loads)
    except OSError as e:
        warnings.warn(f"could not record the sha256 of {path} in {pin} ({e})", stacklevel=2)
    return sha256


def install(
    tmp: Path, dest: Path, published: str | None, what: str, check: Check | None = None
) -> Path:
    """Verify `tmp`, the download of `what`, against `published` and the pin of `dest`,
    then move it to `dest`.

    Without a full published hash, `check(tmp, what)` must pass first (nothing is pinned
    that does not load); its error propagates and `tmp` is left for the caller to remove.
    """
    pin = pin_path(dest)
    record = _read_record(pin, dest)
    fix = f"It was not kept (a corrupt transfer, or a different file at {what})."
    sha256 = _check(tmp, published, record, pin, what, fix)
    loads = check is not None and not is_full_hash(published)
    if loads:
        check(tmp, what)
    os.replace(tmp, dest)
    try:
        _write_record(pin, sha256, published, dest, loads)
    except OSError as e:  # checked now; pinned at the next load instead
        warnings.warn(f"could not record the sha256 of {dest} in {pin} ({e})", stacklevel=3)
    return dest
