"""`sfcprop batch` and `sfcprop.batch`: every video of a dataset folder or a manifest,
resumable, in shards or on Ray.

`DIR/<video>/` is what `sfcprop propagate --out DIR/<video>` writes (`sfcprop track` for
keypoints), moved into place when complete; `DIR/summary.jsonl` one row per video (see
`sfcprop.apps.batch_worker`); `DIR/batch.json` the settings. A rerun skips the finished
videos and those that failed (`retry_failed` runs only those). Sources and shards:
`sfcprop.apps.sources`; the Ray engine: `sfcprop.apps.batch_ray`; docs/batch.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfcprop import errors
from sfcprop.apps.batch_worker import (
    BatchSettings,
    VideoRow,
    check_backbones,
    check_record,
    check_settings,
    read_summary,
)
from sfcprop.apps.sources import KEYFRAMES, Shard, VideoJob, parse_shard, read_source

ENGINES = ("serial", "ray")
FORMATS = ("davis", "coco", "ytvis", "mots")

EPILOG = """examples:
  sfcprop batch DAVIS --out results/ --image-set val --keyframes first --short-side 480
  sfcprop batch videos.csv --out results/ --format coco --format ytvis
  sfcprop batch DAVIS --out results/ --shard 0/4          # copy 0 of 4 (any launcher)
  sfcprop batch DAVIS --out results/ --retry-failed       # redo the videos that failed
  RAY_ADDRESS=auto sfcprop batch DAVIS --out /shared/results --engine ray --workers 8

SOURCE: a folder with JPEGImages/<video>/ and Annotations/<video>/ (DAVIS, YouTube-VOS;
also under one resolution level, JPEGImages/480p/), or a manifest: a .csv with a header or
a .jsonl, columns frames (folder or video file), annotations (mask, folder of keyframe
masks, or points file), optional name and task (masks or keypoints).
Writes DIR/<video>/ (as `sfcprop propagate --out DIR/<video>`), DIR/summary.jsonl (one
row per video: status, frames, seconds, objects, mean confidence, lost runs, error) and
DIR/batch.json (the settings). Exit codes: 0 every video ok, 1 a video failed or bad
input, 2 usage, 130 interrupted (finished videos stay; rerun to resume)."""


@dataclass(frozen=True)
class BatchReport:
    """What a batch did: its `out` folder and `shard`, the `videos` of the shard, those
    `skipped` (finished before), the `rows` of the videos run now, the names of the
    shard's videos that stand `failed`, and the `exports` written."""

    out: Path
    shard: Shard
    videos: int
    skipped: int
    rows: list[VideoRow] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    exports: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def batch(
    source: str | os.PathLike,
    out: str | os.PathLike,
    backbone: Any = "fc",
    semantic: Any = None,
    *,
    weights: str | None = None,
    preset: str | None = None,
    image_set: str | None = None,
    annotations: str = "Annotations",
    resolution: str | None = None,
    keyframes: str = "all",
    shard: str | Shard | None = None,
    retry_failed: bool = False,
    engine: str = "serial",
    workers: int = 1,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    formats: Sequence[str] = ("davis",),
    exports: str | os.PathLike | None = None,
    rule: str | None = None,
    forward_only: bool = False,
    suggest: int = 3,
    progress: bool | None = None,
    **settings: Any,
) -> BatchReport:
    """Propagate every video of `source` (a DAVIS / YouTube-VOS folder or a manifest) into
    `out/<video>/`, resumably: finished videos are skipped, a failing one is recorded in
    `out/summary.jsonl` and the batch goes on. `shard`: "i/N" or a `Shard` (None: from
    torchrun's / a SLURM array's environment, else the whole source). `engine="ray"`:
    `workers` Ray actors (`num_cpus` / `num_gpus` each; `RAY_ADDRESS` or a running
    `ray.init()` picks the cluster). `formats`: besides davis (the video folders), what
    `sfcprop export` writes (coco, ytvis, mots), into `exports` (default `<out>-exports`
    beside `out`) once no video of the source is left to run. Other keywords:
    `Config` fields (`short_side`, `precision`, `device` ...); `rule` (None: the default),
    `forward_only` and `suggest` as `sfcprop propagate`'s. Returns a `BatchReport`."""
    from sfcprop.apps.sources import shard_from_env
    from sfcprop.io import runs

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if not isinstance(workers, int) or workers < 1:
        raise errors.UsageError(f"--workers expects a whole number >= 1, got {workers!r}")
    if engine == "serial" and (workers != 1 or num_cpus or num_gpus):
        raise errors.UsageError(
            "--workers, --num-cpus and --num-gpus go with --engine ray; for several copies "
            "without Ray, run one per --shard i/N"
        )
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format(s) {unknown}; expected some of {', '.join(FORMATS)}")
    if keyframes not in KEYFRAMES:
        raise ValueError(f"keyframes must be one of {KEYFRAMES}, got {keyframes!r}")
    say = _Say(progress)
    if shard is None:
        shard, variable = shard_from_env()
        if variable is not None:
            say(f"shard {shard} (from {variable})")
    elif not isinstance(shard, Shard):
        try:
            shard = parse_shard(shard)
        except ValueError as e:
            raise errors.UsageError(str(e)) from None
    if engine == "ray":
        from sfcprop.apps.batch_ray import require_ray

        require_ray()  # before anything is written
    jobs = read_source(source, image_set, annotations, resolution, keyframes)
    out = Path(out).expanduser().resolve()
    inputs = [source, *(j.frames for j in jobs), *(j.annotations for j in jobs)]
    runs.refuse_overlap(out, inputs, "--out")
    default = out.parent / f"{out.name}-exports"
    exports = Path(exports).expanduser().resolve() if exports else default
    if any(f != "davis" for f in formats):
        runs.refuse_overlap(exports, [*inputs, out], "--exports")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    if rule is None:
        from sfcprop.session.combine import DEFAULT_RULE

        rule = DEFAULT_RULE
    s = BatchSettings(backbone, weights, semantic, preset, settings, rule, forward_only, suggest)
    check_settings(s)
    if engine == "ray":
        check_backbones(s)  # the serial engine builds the models before any video
    out.mkdir(parents=True, exist_ok=True)
    check_record(out, s, {"keyframes": keyframes})

    mine = shard.select(jobs)
    done, failed, pending = _states(out, mine)
    if done:
        say(f"{len(done)} of {len(mine)} videos finished before: skipped")
    if failed and not retry_failed:
        say(f"{len(failed)} videos failed before: skipped (--retry-failed runs them again)")
    todo = failed if retry_failed else pending
    if engine == "ray":
        from sfcprop.apps.batch_ray import run_ray

        def on_row(row: VideoRow) -> None:
            if row.status == "failed":
                say(f"failed: {row.name}: {row.error}")

        rows = run_ray(s, out, todo, workers, num_cpus, num_gpus, say.enabled, on_row)
    else:
        from sfcprop.apps.batch_serial import run_serial

        rows = run_serial(s, out, todo, say.enabled)
    _, failed_now, _ = _states(out, mine)
    written = _export(out, formats, jobs, exports, say)
    failed_names = [j.name for j in failed_now]
    return BatchReport(out, shard, len(mine), len(done), rows, failed_names, written)


def _states(out: Path, jobs: Sequence[VideoJob]):
    """The jobs finished (their folder exists), failed (a failed row, no folder) and pending."""
    summary = read_summary(out)
    done, failed, pending = [], [], []
    for j in jobs:
        if (out / j.name).is_dir():
            done.append(j)
        elif summary.get(j.name, {}).get("status") == "failed":
            failed.append(j)
        else:
            pending.append(j)
    return done, failed, pending


class _Say:
    """Lines for the person running the batch (stderr), when a bar would show."""

    def __init__(self, progress: bool | None) -> None:
        from sfcprop.io.progress import watched

        self.enabled = watched() if progress is None else bool(progress)

    def __call__(self, line: str) -> None:
        if self.enabled:
            print(line, file=sys.stderr, flush=True)


def _export(
    out: Path, formats: Sequence[str], jobs: list[VideoJob], folder: Path, say
) -> list[Path]:
    """`export_results` of `out` into `folder` for the formats besides davis, once no video
    of the source is left to run (other shards' included; else a line saying how to run
    it later). `folder` is replaced when it holds nothing but exports."""
    wanted = [f for f in dict.fromkeys(formats) if f != "davis"]
    if not wanted:
        return []
    _, failed, pending = _states(out, jobs)
    command = f"sfcprop export {out} --out {folder} --force --format {' --format '.join(wanted)}"
    if pending:
        print(
            f"{len(pending)} videos of the source are not finished (other shards?): no "
            f"exports yet; once they are, run `{command}`",
            file=sys.stderr,
        )
        return []
    if folder.exists() and not all(p.name in FORMATS for p in folder.iterdir()):
        raise ValueError(
            f"--exports {folder} holds files that are not exports; give another --exports"
        )
    from sfcprop.apps.export import export_results

    if failed:
        say(f"exports leave out the {len(failed)} failed videos")
    return export_results(out, wanted, folder, force=True)


# ------------------------------------------------------------------ the command


def _parser() -> argparse.ArgumentParser:
    from sfcprop.config import PRESETS, add_arguments
    from sfcprop.session import DEFAULT_RULE, RULES

    p = argparse.ArgumentParser(
        prog="sfcprop batch",
        description="Propagate every video of a dataset folder or a manifest into DIR: "
        "resumable (finished videos are skipped, failures recorded), in shards or on Ray.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="SOURCE", help="dataset folder or manifest (.csv, .jsonl)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (resumed)")
    d = p.add_argument_group("dataset folders")
    d.add_argument("--image-set", metavar="NAME", help="ImageSets/**/NAME.txt, or a .txt file")
    d.add_argument(
        "--annotations",
        default="Annotations",
        metavar="FOLDER",
        help="the keyframe masks' folder (default: %(default)s)",
    )
    d.add_argument("--resolution", metavar="LEVEL", help="JPEGImages/LEVEL (e.g. 480p)")
    d.add_argument(
        "--keyframes",
        choices=KEYFRAMES,
        default="all",
        help="every annotated frame is a keyframe, or the first only (DAVIS ground truth "
        "holds every frame; default: %(default)s)",
    )
    r = p.add_argument_group("running")
    r.add_argument("--shard", metavar="i/N", help="copy i of N (default: RANK / SLURM array)")
    r.add_argument("--retry-failed", action="store_true", help="run only the failed videos")
    r.add_argument("--engine", choices=ENGINES, default="serial", help="default: %(default)s")
    r.add_argument("--workers", type=int, default=1, metavar="K", help="Ray actors (default: 1)")
    r.add_argument("--num-cpus", type=float, metavar="N", help="CPUs per Ray actor (default: 1)")
    r.add_argument("--num-gpus", type=float, metavar="N", help="GPUs per Ray actor (default: 0)")
    r.add_argument(
        "--format",
        action="append",
        choices=FORMATS,
        help="output format, repeatable (default: davis, the palette PNGs)",
    )
    r.add_argument(
        "--exports",
        metavar="FOLDER",
        help="where --format coco / ytvis / mots go (default: DIR-exports beside DIR)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    m = p.add_argument_group("model")
    m.add_argument("--backbone", default="fc", help="as for `sfcprop propagate` (default: fc)")
    m.add_argument("--weights", metavar="FILE", help="a checkpoint file for --backbone")
    m.add_argument("--semantic", help="a second backbone to fuse with (SFC)")
    m.add_argument("--preset", choices=sorted(PRESETS), help="parameter set")
    m.add_argument("--rule", choices=RULES, default=DEFAULT_RULE, help="keyframe combination")
    m.add_argument("--forward-only", action="store_true", help="keyframes forward only")
    m.add_argument("--suggest", type=int, default=3, metavar="N", help="frames to suggest")
    add_arguments(p)
    return p


def main(argv: list[str]) -> int:
    """Entry point of `sfcprop batch`: 0 when every video of the shard is finished, 1 when
    one failed (or bad input)."""
    from dataclasses import fields

    from sfcprop.config import Config

    args = _parser().parse_args(argv)
    errors.require_device(args.device)
    config = {f.name: getattr(args, f.name, None) for f in fields(Config) if f.metadata.get("cli")}
    report = batch(
        args.source,
        args.out,
        args.backbone,
        args.semantic,
        weights=args.weights,
        preset=args.preset,
        image_set=args.image_set,
        annotations=args.annotations,
        resolution=args.resolution,
        keyframes=args.keyframes,
        shard=args.shard,
        retry_failed=args.retry_failed,
        engine=args.engine,
        workers=args.workers,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        formats=args.format or ("davis",),
        exports=args.exports,
        rule=args.rule,
        forward_only=args.forward_only,
        suggest=args.suggest,
        progress=not args.quiet,
        **config,
    )
    ok = sum(r.status == "ok" for r in report.rows)
    if not args.quiet:
        print(
            f"batch{f' shard {report.shard}' if report.shard.count > 1 else ''}: "
            f"{ok} videos written, {len(report.failed)} failed, "
            f"{report.skipped} finished before ({report.videos} in this shard) -> {report.out}"
        )
        for path in report.exports:
            print(f"wrote {path}")
    if report.failed:
        rows = read_summary(report.out)
        for name in report.failed[:10] if not args.quiet else ():
            print(f"failed: {name}: {rows.get(name, {}).get('error')}", file=sys.stderr)
        errors.report(
            f"{len(report.failed)} of {report.videos} videos failed (their errors: "
            f"{report.out / 'summary.jsonl'}); fix them and rerun with --retry-failed"
        )
        return errors.FAILED
    return 0
