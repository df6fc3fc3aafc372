"""Output folders of a run: locked while a run writes them, written in a staging folder
beside them and moved into place when complete, with a new folder's usual permissions.

Beside an output folder `<out>` a run keeps, for its duration only:

- `.<out>.lock`: held (`flock`, exclusive) while a run writes `<out>`; a second run into
  the same folder fails at once (no lock where `fcntl` is missing, e.g. Windows);
- `.<out>.tmp-<pid>@<host>.<random>`: the staging folder of process `pid` on `host`;
- `.<out>.old-<pid>@<host>.<random>`: the folder being replaced, for a moment.

A killed run (SIGKILL, a power cut) leaves them behind; the next run into the same folder
removes those of processes that no longer exist (and, of folders naming no process,
those older than a day).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from sfcprop import errors

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

STALE_AGE_S = 24 * 3600.0  # a staging folder that names no process is stale after this
_OWNED = re.compile(r"\.(?:tmp|old)-(?P<pid>\d+)(?:@(?P<host>.*)\.[A-Za-z0-9_]{8})?$")


class OutputBusyError(RuntimeError):
    """Another run is writing the same output folder."""


def refuse_overlap(
    out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], flag: str = "--out"
) -> None:
    """A ValueError when the output path `out` (given by `flag`) is one of `inputs`, holds
    one or lies inside one (None skipped; paths compared resolved, and as files where both
    exist): a run writes or replaces `out`, its inputs must stay as they were. Every
    command calls this with all its input paths before it deletes or writes anything."""
    target = Path(out).expanduser().resolve()
    for given in inputs:
        if given is None:
            continue
        path = Path(given).expanduser().resolve()
        if path == target or _same_file(path, target):
            how = "is the input"
        elif path.is_relative_to(target):
            how = "holds the input"
        elif target.is_relative_to(path):
            how = "is inside the input"
        else:
            continue
        raise ValueError(f"{flag} {out} {how} {given}; write the results elsewhere")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def _owner() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


@contextlib.contextmanager
def locked(out: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of output folder `out` while the block runs (OutputBusyError at
    once when another run holds it); yields `out` as an absolute Path. Parent folders
    made for it are removed again when the block fails before `out` exists (a run that
    wrote part of `out`, to resume, keeps it); what killed runs left beside it is
    removed first."""
    out = Path(out).resolve()
    made = next((p for p in reversed(out.parents) if not p.exists()), None)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.parent / f".{out.name}.lock"
    try:
        fd = _acquire(lock, out)
        try:
            remove_stale(out)
            yield out
        finally:
            lock.unlink(missing_ok=True)
            os.close(fd)
    except BaseException:
        if made is not None and not out.exists():
            shutil.rmtree(made, ignore_errors=True)
        raise


def _acquire(lock: Path, out: Path) -> int:
    """An open descriptor of `lock`, locked; the file holds `<pid>@<host>`."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputBusyError(
                f"{out} is being written by another sfcprop run (process {holder}); wait for "
                "it to finish or write elsewhere"
            ) from None
        try:  # its last holder may have removed it between our open and flock
            current = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            os.ftruncate(fd, 0)
            os.write(fd, f"{_owner()}\n".encode())
            return fd
        os.close(fd)


@contextlib.contextmanager
def staging(final: str | os.PathLike) -> Iterator[Path]:
    """A new folder beside `final`, owned by this process; when the block succeeds it
    replaces `final` (an existing folder is replaced as a whole) with the permissions a
    new folder gets under the umask; when it fails, or Ctrl-C was pressed during the
    command even where a library swallowed it (`errors.check_interrupted`), it is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)
    tmp = _mkdtemp(final, "tmp")
    try:
        yield tmp
        errors.check_interrupted()
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it owner-only
        _replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace(new: Path, final: Path) -> None:
    """Move folder `new` to `final`; an existing `final` is put back if that fails."""
    if not final.exists():
        os.replace(new, final)
        return
    old = _mkdtemp(final, "old")
    try:
        os.replace(final, old / final.name)
        try:
            os.replace(new, final)
        except BaseException:
            os.replace(old / final.name, final)
            raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _mkdtemp(final: Path, kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.{kind}-{_owner()}.", dir=final.parent))


def remove_stale(final: str | os.PathLike) -> list[Path]:
    """Remove the staging folders of `final` left by processes that no longer exist;
    returns them."""
    final = Path(final)
    removed = []
    for path in final.parent.glob(f".{glob.escape(final.name)}.*-*"):
        if path.is_dir() and _is_stale(path, final.name):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _is_stale(path: Path, name: str) -> bool:
    rest = path.name[len(name) + 1 :]
    if not (rest.startswith(".tmp-") or rest.startswith(".old-")):
        return False
    owned = _OWNED.match(rest)
    if owned is None:  # named by an older version: no process recorded
        try:
            return time.time() - path.stat().st_mtime > STALE_AGE_S
        except FileNotFoundError:
            return False
    host = owned["host"]
    if host is not None and host != socket.gethostname():
        return False  # another machine's (a shared file system): not ours to judge
    return not _alive(int(owned["pid"]))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
