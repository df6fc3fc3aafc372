"""Frames by index, for passes that read a video out of order (keyframes, corrections).

Folders, lists and arrays are indexed directly (a folder's files are read when asked
for). A video file or an iterator is decoded once, in order, as far as asked; with `keep`
its decoded frames are held in a bounded cache: in memory up to `memory` bytes, then as
raw files in a temporary folder (removed by `close`, or at exit), so a long video is never
held whole in memory and never decoded twice.

The spill folder, `<tmp>/sfcprop-frames-<pid>@<host>.<random>`, names its process, as the
staging folders of `sfcprop.io.runs` do: a run killed outright (SIGKILL, a power cut)
leaves it behind, and the next FrameStore that spills removes those of processes on this
host that no longer exist (and, of folders naming no process, those older than a day).
A live run's folder is never removed.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import tempfile
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from sfcprop.io.frames import (
    Frames,
    FrameSource,
    array_frame,
    as_frame,
    check_frames_array,
    open_frames,
)
from sfcprop.io.runs import STALE_AGE_S, _alive, _owner

DEFAULT_MEMORY = 512 << 20

SPILL_PREFIX = "sfcprop-frames-"
_SPILL_OWNER = re.compile(r"(?P<pid>\d+)@(?P<host>.*)\.[A-Za-z0-9_]{8}")


class FrameStore:
    """`store[t]`: uint8 `[3, H, W]` frame t of `source` (see `sfcprop.io.iter_frames`).

    `len(store)` is known for indexable sources; for a video or an iterator it is known
    once the end was reached (`known_length`), and `store.has(t)` decodes as far as `t`."""

    def __init__(self, source: FrameSource, keep: bool = True, memory: int = DEFAULT_MEMORY):
        self.frames: Frames = open_frames(source)
        self.keep, self.memory = keep, memory
        src = self.frames.source
        self._index = None
        if isinstance(src, torch.Tensor | np.ndarray) or (
            isinstance(src, list | tuple) and len(src) > 0
        ):
            self._index = src
            if isinstance(src, torch.Tensor | np.ndarray):
                check_frames_array(src)  # the source's type and shape, checked now
            else:
                as_frame(src[0], "frame 0")
        self._iter: Iterator[torch.Tensor] | None = None
        self._decoded = 0
        self._end: int | None = len(src) if self._index is not None else None
        self._ram: dict[int, torch.Tensor] = {}
        self._ram_bytes = 0
        self._disk: Path | None = None
        self._remove_disk: weakref.finalize | None = None
        self._last: tuple[int, torch.Tensor] | None = None

    def name(self, t: int) -> str:
        return self.frames.name(t)

    @property
    def known_length(self) -> int | None:
        return self._end

    def __len__(self) -> int:
        while self._end is None:
            self._decode_next()
        return self._end

    def has(self, t: int) -> bool:
        """Whether frame `t` exists (decoding as far as it for a sequential source)."""
        if self._end is not None:
            return 0 <= t < self._end
        while self._decoded <= t and self._end is None:
            self._decode_next()
        return t < self._decoded

    def __getitem__(self, t: int) -> torch.Tensor:
        if not self.has(t):
            raise IndexError(f"frame {t} is past the end of the video ({self._end} frames)")
        if self._index is not None:
            if isinstance(self._index, torch.Tensor | np.ndarray):  # [T, ...]: checked whole
                return array_frame(self._index, t)
            return as_frame(self._index[t], f"frame {t}")
        if self._last is not None and self._last[0] == t:
            return self._last[1]
        if t in self._ram:
            return self._ram[t]
        path = self._disk / f"{t}.npy" if self._disk is not None else None
        if path is None or not path.is_file():
            raise RuntimeError(
                f"frame {t} was decoded and not kept; open the FrameStore with keep=True "
                "to read a video out of order"
            )
        return torch.from_numpy(np.load(path))

    def _decode_next(self) -> None:
        if self._iter is None:
            self._iter = iter(self.frames)
        try:
            frame = next(self._iter)
        except StopIteration:
            self._end = self._decoded
            return
        t = self._decoded
        self._decoded += 1
        self._last = (t, frame)
        if not self.keep:
            return
        size = frame.numel()
        if self._ram_bytes + size <= self.memory:
            self._ram[t] = frame
            self._ram_bytes += size
            return
        if self._disk is None:
            self._disk = new_spill_folder()
            self._remove_disk = weakref.finalize(self, shutil.rmtree, self._disk, True)
        np.save(self._disk / f"{t}.npy", frame.numpy())

    def close(self) -> None:
        """Drop the cache (and its temporary folder)."""
        self._ram.clear()
        if self._remove_disk is not None:
            self._remove_disk()  # also run when the store is collected, or at exit
            self._disk = self._remove_disk = None


def new_spill_folder() -> Path:
    """A new spill folder in the temporary folder, named by this process; the ones that
    killed runs left there are removed first (`remove_stale_spills`)."""
    remove_stale_spills()
    return Path(tempfile.mkdtemp(prefix=f"{SPILL_PREFIX}{_owner()}."))


def remove_stale_spills(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove the spill folders in `root` (the temporary folder) of processes on this host
    that no longer exist, and those naming no process that are older than a day; only
    this user's folders, never a link. Returns the folders removed."""
    if os.name != "posix":  # on Windows, os.kill(pid, 0) would end the process it asks about
        return []
    root = Path(tempfile.gettempdir() if root is None else root)
    removed = []
    for path in root.glob(f"{SPILL_PREFIX}*"):
        if _stale_spill(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _stale_spill(path: Path) -> bool:
    """Whether `path` is a spill folder of this user that no live process owns."""
    try:
        info = path.lstat()
    except FileNotFoundError:  # removed meanwhile, by its owner or another run
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return False
    owned = _SPILL_OWNER.fullmatch(path.name[len(SPILL_PREFIX) :])
    if owned is None:  # named by an older version: no process recorded
        return time.time() - info.st_mtime > STALE_AGE_S
    if owned["host"] != socket.gethostname():
        return False  # another machine's (a shared temporary folder): not ours to judge
    return not _alive(int(owned["pid"]))
