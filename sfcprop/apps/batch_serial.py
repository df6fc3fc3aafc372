"""The serial engine of `sfcprop batch`: one `Worker` in this process, the models built
first, one video after another under one progress bar (frames of every video, with an
ETA); the next video's files are read ahead in a background thread."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from pathlib import Path

from sfcprop import errors
from sfcprop.apps.batch_worker import BatchSettings, VideoRow, Worker
from sfcprop.apps.sources import VideoJob

PREFETCH_BYTES = 1 << 30  # the most of the next video's files read ahead


def run_serial(s: BatchSettings, out: Path, todo: list[VideoJob], progress: bool) -> list[VideoRow]:
    """One worker in this process: the models built first (a bad backbone fails before
    any video), then one video after another; the next one's files are read ahead."""
    worker = Worker(s, out)
    rows: list[VideoRow] = []
    if not todo:
        return rows
    worker.prepare({j.task for j in todo})
    with BatchBar(todo, progress) as bar:
        for i, job in enumerate(todo):
            if i + 1 < len(todo):
                _prefetch(todo[i + 1])
            row = worker.run(job, bar.frames)
            bar.video_done(job, row)
            if row is not None:
                rows.append(row)
    return rows


class BatchBar:
    """One bar over the frames of every video to run (videos done in its description, ETA
    from the frames); Ctrl-C swallowed by a library stops at the next frame."""

    def __init__(self, todo: list[VideoJob], enabled: bool) -> None:
        from sfcprop.io.frames import count_frames

        self.n, self.done, self.bar = len(todo), 0, None
        self.seen: dict[str, int] = {}
        self.counts = {j.name: count_frames(j.frames) or 0 for j in todo} if enabled else {}
        if enabled:
            from sfcprop.io.progress import _tqdm

            total = sum(self.counts.values()) or None
            self.bar = _tqdm()(
                total=total, unit="frame", desc=self._desc(), file=sys.stderr, dynamic_ncols=True
            )

    def _desc(self) -> str:
        return f"batch {self.done}/{self.n} videos"

    def __enter__(self) -> BatchBar:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def frames(self, items: Iterable, total: int | None, name: str) -> Iterable:
        """`items`, the frames of video `name`, counted on the bar."""
        self.seen[name] = 0
        if self.bar is not None:
            self.bar.set_postfix_str(name, refresh=False)
        for item in items:
            errors.check_interrupted()
            yield item
            self.seen[name] += 1
            if self.bar is not None:
                self.bar.update()

    def video_done(self, job: VideoJob, row: VideoRow | None) -> None:
        self.done += 1
        if self.bar is None:
            return
        missed = self.counts.get(job.name, 0) - self.seen.get(job.name, 0)
        if missed:  # a video that failed, or had fewer frames: off the total
            self.bar.total = max(self.bar.n, (self.bar.total or 0) - missed)
        if row is not None and row.status == "failed":
            self.bar.write(f"failed: {job.name}: {row.error}", file=sys.stderr)
        self.bar.set_description_str(self._desc())


_reading: list[threading.Thread] = []


def _prefetch(job: VideoJob) -> None:
    """Read the next video's files in a background thread, into the OS's cache, while this
    one propagates (decoding is left to the run: decoded frames are large)."""
    if _reading and _reading[-1].is_alive():
        return
    _reading[:] = [threading.Thread(target=_read_ahead, args=(job,), daemon=True)]
    _reading[0].start()


def _read_ahead(job: VideoJob, limit: int = PREFETCH_BYTES) -> None:
    from sfcprop.io.frames import IMAGE_SUFFIXES, list_files

    try:
        paths: list[Path] = []
        for p in (Path(job.frames), Path(job.annotations)):
            paths += list_files(p, (*IMAGE_SUFFIXES, ".npy")) if p.is_dir() else [p]
        for p in paths:
            with open(p, "rb") as f:
                while limit > 0 and (chunk := f.read(1 << 20)):
                    limit -= len(chunk)
    except (OSError, ValueError):
        pass  # the run reports it
