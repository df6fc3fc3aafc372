"""Videos per hour of `sfcprop batch` on the DAVIS development sequences, against a Python
loop over `sfcprop.propagate` in the same run; peak memory (RSS) per worker.

    python benchmarks/bench_batch.py                       # the 8 sequences, short side 240
    python benchmarks/bench_batch.py --sequences blackswan,dog --modes x1,ray --ray

Modes, each in its own processes of one torch thread (OMP_NUM_THREADS=1), one after the
other (`--modes`): `loop` (a Python loop over `sfcprop.propagate(frames, first_mask, "fc", ...)`,
writing each mask as a PNG, what a user writes by hand), `batch x1` (`sfcprop batch`, one
process), `batch x2` (two processes, `--shard 0/2` and `--shard 1/2`, at once), and with
`--ray` `ray x2` (`--engine ray --workers 2 --num-cpus 1`; its RSS is not measured). The
first-frame masks are DAVIS-2017's (`Annotations2017first`), frames from JPEGImages/480p.
Every mode's masks are checked equal to the loop's. Besides wall time (videos per hour),
the table gives the CPU seconds of each mode (user + system of its processes) and videos
per CPU hour: on a machine shared with other work the wall time depends on the load, the
CPU time much less. Data: `$SFCPROP_DATA/davis2016` (default ../shared/data/davis2016).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SFCPROP_DATA", REPO.parent / "shared" / "data")) / "davis2016"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=DATA, help="the davis2016 folder")
    p.add_argument("--short-side", type=int, default=240)
    p.add_argument("--sequences", help="comma-separated (default: ImageSets/480p/val.txt)")
    p.add_argument("--ray", action="store_true", help="also two Ray actors of one CPU")
    p.add_argument(
        "--modes", default="loop,x1,x2,ray", help="of loop,x1,x2,ray (default: all; ray: --ray)"
    )
    p.add_argument("--keep", type=Path, help="keep the outputs in this folder")
    p.add_argument("--loop-into", type=Path, help=argparse.SUPPRESS)  # the loop's process
    args = p.parse_args()
    seqs = (
        args.sequences.split(",")
        if args.sequences
        else (args.root / "ImageSets" / "480p" / "val.txt").read_text().split()
    )
    if args.loop_into:
        return _loop(args.root, seqs, args.short_side, args.loop_into)
    if args.keep and args.keep.exists() and any(args.keep.iterdir()):
        raise SystemExit(f"--keep {args.keep} is not empty (a batch there would resume)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-batch-"))
    work.mkdir(parents=True, exist_ok=True)
    image_set = work / "sequences.txt"
    image_set.write_text("\n".join(seqs) + "\n")
    frames = sum(len(list((args.root / "JPEGImages" / "480p" / s).glob("*.jpg"))) for s in seqs)
    batch = [sys.executable, "-m", "sfcprop.apps.cli", "batch", str(args.root)]
    batch += ["--annotations", "Annotations2017first", "--image-set", str(image_set)]
    batch += ["--short-side", str(args.short_side), "--quiet"]
    me = [sys.executable, __file__, "--root", str(args.root), "--sequences", ",".join(seqs)]
    me += ["--short-side", str(args.short_side)]
    x2 = [[*batch, "--out", str(work / "x2"), "--shard", f"{i}/2"] for i in (0, 1)]
    ray = [*batch, "--out", str(work / "ray"), "--engine", "ray", "--workers", "2"]
    modes = {  # key -> (name, workers, commands); each writes into work / key
        "loop": ("loop over sfcprop.propagate", 1, [[*me, "--loop-into", str(work / "loop")]]),
        "x1": ("sfcprop batch", 1, [[*batch, "--out", str(work / "x1")]]),
        "x2": ("sfcprop batch --shard i/2", 2, x2),
        "ray": ("sfcprop batch --engine ray", 2, [[*ray, "--num-cpus", "1"]]),
    }
    chosen = [k for k in args.modes.split(",") if k != "ray" or args.ray]
    header = [
        f"bench_batch: {len(seqs)} DAVIS sequences ({frames} frames), short side "
        f"{args.short_side}, backbone fc, float32, one torch thread per worker; "
        f"{os.cpu_count()} CPUs (shared with other work: numbers are indicative)",
        f"sequences: {' '.join(seqs)}",
        "",
        f"{'mode':<30} {'workers':>7} {'wall s':>8} {'videos/h':>9} {'frames/s':>9} "
        f"{'CPU s':>6} {'videos/CPU-h':>15} {'peak RSS MiB/worker':>20}  same masks as first",
    ]
    print("\n".join(header), flush=True)
    first = None  # the output of the first mode: the others' masks must equal its
    for key in chosen:
        name, workers, commands = modes[key]
        wall, cpu, rss = _run(commands)
        same = "-" if first is None else _same(work / key, first, seqs)
        first = first or work / key
        ray = "ray" in name  # its actors are not children of the command: not measured
        rss_text = "-" if ray else "/".join(f"{r / 1024:.0f}" for r in rss)
        per_core = "-" if ray else f"{len(seqs) * 3600 / cpu:.1f}"
        line = (
            f"{name:<30} {workers:>7} {wall:>8.1f} {len(seqs) * 3600 / wall:>9.1f} "
            f"{frames / wall:>9.2f} {'-' if ray else f'{cpu:.0f}':>6} {per_core:>15} "
            f"{rss_text:>20}  {same}"
        )
        print(line, flush=True)


def _run(commands: list[list[str]]) -> tuple[float, float, list[int]]:
    """Start `commands` at once (one torch thread each); wall seconds until all ended, CPU
    seconds (user + system, all of them) and each one's peak RSS (KiB), from `wait4`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    start = time.perf_counter()
    procs = [subprocess.Popen(c, env=env) for c in commands]
    rss, cpu = [], 0.0
    for proc in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(proc.args)} exited with {proc.returncode}")
        rss.append(usage.ru_maxrss)
        cpu += usage.ru_utime + usage.ru_stime
    return time.perf_counter() - start, cpu, rss


def _loop(root: Path, seqs: list[str], short_side: int, dest: Path) -> None:
    """What a user writes by hand: one `sfcprop.propagate` per video, masks as PNGs."""
    import sfcprop
    from sfcprop import io

    for seq in seqs:
        first = root / "Annotations2017first" / seq / "00000.png"
        frames = root / "JPEGImages" / "480p" / seq
        result = sfcprop.propagate(frames, first, "fc", short_side=short_side, progress=False)
        (dest / seq).mkdir(parents=True, exist_ok=True)
        _, palette = io.read_mask(first)
        for t, ids in enumerate(result.ids):
            io.write_mask(dest / seq / f"{t:05d}.png", ids, palette)


def _same(out: Path, loop: Path, seqs: list[str]) -> str:
    from sfcprop import io

    for seq in seqs:
        for png in sorted((loop / seq).glob("*.png")):
            if not np.array_equal(io.read_mask(png)[0], io.read_mask(out / seq / png.name)[0]):
                return f"no ({seq}/{png.name})"
    return "yes"


if __name__ == "__main__":
    main()
