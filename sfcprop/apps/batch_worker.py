"""One worker of `sfcprop batch`: the model built once, then one video after another, each
written into a staging folder and moved into place when complete; the summary file.

`DIR/<video>/` holds what `sfcprop propagate --out DIR/<video>` writes (masks) or what
`sfcprop track` writes (keypoints). `DIR/summary.jsonl` holds one row per video, the
latest attempt's (`VideoRow`); every writer (shards on several machines included) replaces
it whole, under a lock (`DIR/.summary.lock`, flock) and by an atomic rename, so a reader
never sees half of it. A video is finished when its folder exists: the row of a video
killed between the two says ok and the next run redoes the video. `DIR/batch.json` records
the settings; a run with other settings into the same DIR is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sfcprop import errors
from sfcprop.apps.sources import VideoJob

try:
    import fcntl
except ImportError:  # Windows: one writer at a time is the user's to ensure
    fcntl = None

SUMMARY = "summary.jsonl"
RECORD = "batch.json"
# settings that change where or how fast a run goes, not its results
NOT_RECORDED = ("device", "max_memory")

Progress = Callable[[Iterable, "int | None", str], Iterable]


@dataclass(frozen=True)
class BatchSettings:
    """How every video of a batch is propagated: the backbone(s) (a registry name, a
    checkpoint file, `module:callable` or a `Correspondence` module; `weights` a checkpoint
    for a registry name), `preset` and `config` (`Config` fields) over it, the keyframe
    `rule`, `forward_only`, and the frames to `suggest` in each `flags.json`."""

    backbone: Any = "fc"
    weights: str | None = None
    semantic: Any = None
    preset: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    rule: str | None = None  # None: the session's default (`sfcprop.session.combine`)
    forward_only: bool = False
    suggest: int = 3

    def record(self) -> dict:
        """What `batch.json` keeps of these settings (JSON; modules by their class)."""

        def spec(x):
            return x if x is None or isinstance(x, str) else type(x).__qualname__

        d = asdict(replace(self, backbone=spec(self.backbone), semantic=spec(self.semantic)))
        d["config"] = {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in sorted(self.config.items())
            if v is not None and k not in NOT_RECORDED
        }
        return d


@dataclass(frozen=True)
class VideoRow:
    """A row of `summary.jsonl`: the video's `name`, `status` (ok or failed), `task`,
    `frames` written, `seconds` taken, `objects` (masks: objects; keypoints: points),
    `mean_confidence` over frames and objects, `lost_runs` (runs of frames where an object
    was lost; None for keypoints) and, when it failed, the one-line `error`."""

    name: str
    status: str
    task: str = "masks"
    frames: int | None = None
    seconds: float | None = None
    objects: int | None = None
    mean_confidence: float | None = None
    lost_runs: int | None = None
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))


class Worker:
    """Builds the model of each task once (on first use) and runs videos into `out`."""

    def __init__(self, settings: BatchSettings, out: str | os.PathLike) -> None:
        self.settings, self.out = settings, Path(out)
        self._models: dict[str, Any] = {}

    def model(self, task: str):
        """The `Propagator` of `task` (masks: the preset, default davis; keypoints: JHMDB's
        parameters at the frames' own size), built on first use."""
        if task not in self._models:
            from sfcprop.config import PRESETS, Config
            from sfcprop.core.propagator import load_model

            s = self.settings
            net, sem = _net(s.backbone, s.weights), _net(s.semantic)
            given = {k: v for k, v in s.config.items() if v is not None}
            if task == "keypoints":
                name = "jhmdb" if sem is None else "jhmdb-sfc"
                base = s.preset or replace(PRESETS[name], size=None, resize="antialias")
                config = Config.preset(base, **given)
            else:
                config = Config.for_run(sem is not None, s.preset, **given)
            self._models[task] = load_model(net, sem, preset=config)
        return self._models[task]

    def prepare(self, tasks: Iterable[str]) -> None:
        """Build the models of `tasks` now (a bad backbone fails before any video)."""
        for task in sorted(tasks):
            self.model(task)

    def run(self, job: VideoJob, progress: Progress | None = None) -> VideoRow | None:
        """Write video `job` into `out/<name>` (through a staging folder) and record its
        row; a failure is recorded, not raised (Ctrl-C and SIGTERM are). None when the
        video is finished already or another run holds it."""
        from sfcprop.io import runs

        final = self.out / job.name
        start = time.perf_counter()
        try:
            with runs.locked(final):
                if final.exists():
                    return None
                with runs.staging(final) as tmp:
                    stats = self._write(job, tmp, progress)
                    row = VideoRow(job.name, "ok", job.task, seconds=_since(start), **stats)
                    record(self.out, row)  # before the move: a folder always has its row
        except runs.OutputBusyError:
            return None
        except Exception as e:  # noqa: BLE001 - recorded in the summary, the batch goes on
            row = VideoRow(job.name, "failed", job.task, seconds=_since(start), error=_line(e))
            record(self.out, row)
        return row

    def _write(self, job: VideoJob, folder: Path, progress: Progress | None) -> dict:
        from sfcprop import io

        if not Path(job.annotations).exists():
            raise FileNotFoundError(
                f"no annotations: {job.annotations} does not exist (expected a mask, a folder "
                "of keyframe masks named like the frames, or a points file)"
            )
        frames = io.open_frames(job.frames)
        wrap = progress or (lambda it, total, name: it)
        if job.task == "keypoints":
            return self._track(job, frames, folder, wrap)
        return self._propagate(job, frames, folder, wrap)

    def _propagate(self, job: VideoJob, frames, folder: Path, wrap: Progress) -> dict:
        from sfcprop.apps.propagate import annotation_files, write_propagation
        from sfcprop.io import FrameStore
        from sfcprop.session import Session
        from sfcprop.session.confidence import lost_runs

        keys = annotation_files(Path(job.annotations), frames)
        if job.keyframes == "first":
            keys = {min(keys): keys[min(keys)]}
        s = self.settings
        session = Session(
            self.model("masks"),
            FrameStore(frames, keep=list(keys) != [0]),
            **({"rule": s.rule} if s.rule else {}),
            forward_only=s.forward_only,
            keep_results=False,
        )
        for t, mask in sorted(keys.items()):
            session.annotate(t, mask)
        results = wrap(session.run(), frames.count, job.name)
        objects, rows, flags, _ = write_propagation(session, folder, results, s.suggest)
        values = [c for *_, c in rows]
        return {
            "frames": len(rows) // len(objects) if objects else len({r[0] for r in rows}),
            "objects": len(objects),
            "mean_confidence": round(sum(values) / len(values), 4) if values else None,
            "lost_runs": len(lost_runs([f for _, f in flags])),
        }

    def _track(self, job: VideoJob, frames, folder: Path, wrap: Progress) -> dict:
        import numpy as np

        from sfcprop import io
        from sfcprop.session import track_keypoints_iter
        from sfcprop.session.tracking import JHMDB_JOINTS

        points, names = io.read_points(job.annotations)
        if names is None and len(points) == len(JHMDB_JOINTS):
            names = list(JHMDB_JOINTS)
        stream = track_keypoints_iter(frames, points, self.model("keypoints"))
        tracked, confidence, stems = [], [], []
        for t, p, c in wrap(stream, frames.count, job.name):
            tracked.append(p)
            confidence.append(c)
            stems.append(frames.name(t))
        io.write_tracks(folder, np.stack(tracked), np.stack(confidence), names, stems)
        return {
            "frames": len(stems),
            "objects": len(points),
            "mean_confidence": round(float(np.mean(confidence)), 4),
            "lost_runs": None,
        }


def check_settings(settings: BatchSettings) -> None:
    """The settings' `Config` fields and rule, checked before anything is written."""
    from sfcprop.config import Config
    from sfcprop.session import RULES

    if settings.rule is not None and settings.rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {settings.rule!r}")
    given = {k: v for k, v in settings.config.items() if v is not None}
    Config.for_run(settings.semantic is not None, settings.preset, **given)


def check_backbones(settings: BatchSettings) -> None:
    """Fail now, with the registry's message, on a backbone name that is neither registered
    nor a file, and on a `module:callable` that does not import (the Ray engine builds the
    models in its actors, where an error would come back wrapped in Ray's)."""
    from sfcprop.models.registry import REGISTRY

    for spec in (settings.backbone, settings.semantic):
        if not isinstance(spec, str) or spec in REGISTRY or Path(spec).expanduser().exists():
            continue
        if ":" in spec:
            _net(spec)
            continue
        raise KeyError(
            f"{spec!r} is neither a registered backbone ({', '.join(REGISTRY)}) nor an "
            "existing checkpoint file"
        )
    if settings.weights is not None and not Path(settings.weights).expanduser().is_file():
        raise FileNotFoundError(f"no such weights file: {settings.weights}")


def _net(spec, weights: str | None = None):
    from sfcprop.apps.common import backbone_arg

    return backbone_arg(spec, weights) if isinstance(spec, str) or spec is None else spec


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def _line(e: BaseException) -> str:
    """The one line of a failure, as the command would print it."""
    return errors.message(e)


# ------------------------------------------------------------------ summary and record


@contextlib.contextmanager
def _summary_lock(out: Path) -> Iterator[None]:
    """Hold `out/.summary.lock` (flock, exclusive; waits for other writers)."""
    fd = os.open(out / ".summary.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as e:  # a file system without locks (some NFS, Lustre mounts)
                raise OSError(
                    f"cannot lock {out / '.summary.lock'} ({e.strerror}): this file system "
                    "has no flock; give each shard its own --out"
                ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def read_summary(out: str | os.PathLike) -> dict[str, dict]:
    """The rows of `out/summary.jsonl` by video name (empty when there is none)."""
    path = Path(out) / SUMMARY
    if not path.is_file():
        return {}
    rows = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
                rows[row["name"]] = row
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"{path} line {n} is not a summary row") from None
    return rows


def record(out: Path, row: VideoRow) -> None:
    """Put `row` in `out/summary.jsonl` (replacing the video's earlier row): under the lock,
    rewritten whole by an atomic rename."""
    from sfcprop.io import atomic_path

    with _summary_lock(out):
        rows = read_summary(out)
        rows[row.name] = asdict(row)
        with atomic_path(out / SUMMARY) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rows.values()))


def check_record(out: Path, settings: BatchSettings, extra: Mapping[str, Any]) -> None:
    """Write `out/batch.json` (the settings) on the first run into `out`; a later run with
    other settings is a ValueError (their results would mix). A folder that holds other
    things and no record is refused: it is not a batch's output."""
    mine = {**settings.record(), **extra}
    path = out / RECORD
    if not path.exists():
        # (batch.json itself may appear meanwhile: another shard starting at once)
        others = [p.name for p in out.iterdir() if p.name[0] != "." and p.name != RECORD]
        if others:
            raise ValueError(
                f"--out {out} holds files ({', '.join(sorted(others)[:3])} ...) but no "
                f"{RECORD}: it is not a batch's output folder; write elsewhere"
            )
        fd, tmp = tempfile.mkstemp(prefix=f".{RECORD}.", dir=out)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps({"settings": mine}, indent=1) + "\n")
            os.chmod(tmp, 0o666 & ~_umask())
            with contextlib.suppress(FileExistsError):  # the first of several shards wins
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    try:
        theirs = json.loads(path.read_text())["settings"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"{path} is not a batch record; write elsewhere") from None
    if theirs != mine:
        diff = sorted(k for k in {*theirs, *mine} if theirs.get(k) != mine.get(k))
        raise ValueError(
            f"--out {out} was written with other settings ({', '.join(diff)}: "
            f"{', '.join(f'{theirs.get(k)!r}' for k in diff)}; this run: "
            f"{', '.join(f'{mine.get(k)!r}' for k in diff)}); use the same settings to "
            "resume, or write elsewhere"
        )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
