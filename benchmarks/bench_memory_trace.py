"""Memory over a long clip: resident memory after every n-th frame, to show it stays flat.

Propagates a 480p clip (DAVIS-2016 bmx-trees streamed and looped, or the generated clip)
with `sfcprop.propagate_iter`, which keeps no results, and prints after every `--every`
frames: the process's RSS now, above its RSS before propagation (torch and the weights),
its peak RSS so far above the peak before propagation (as `bench_propagation.py`'s
RSS-base), and the mean seconds per frame so far. Memory holds frame 0 and
the m preceding frames, so it should level off once the context is full (frame m + 1).

    python benchmarks/bench_memory_trace.py --config davis --frames 200
    python benchmarks/bench_memory_trace.py --config sfc --frames 80
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_propagation import SIZES, load_clip, peak_rss_gib  # noqa: E402

import sfcprop  # noqa: E402
from sfcprop.models import resnet18, resnet50  # noqa: E402


def rss_gib() -> float:
    """Resident memory now (Linux /proc; the peak otherwise)."""
    statm = Path("/proc/self/statm")
    if statm.exists():
        return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30
    return peak_rss_gib()


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", choices=("davis", "sfc"), default="davis")
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--size", choices=tuple(SIZES), default="480p")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--json", default=None, help="also write the rows here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    frames, mask, source = load_clip(args.frames, SIZES[args.size])
    fine = resnet18().eval()
    semantic = resnet50().eval() if args.config == "sfc" else None
    preset = "davis-sfc" if args.config == "sfc" else "davis"
    base, base_peak = rss_gib(), peak_rss_gib()
    print(f"{args.config} ({preset}), {args.size}, {source}; RSS before: {base:.2f} GiB")
    print(f"{'frames':>6} {'RSS-base':>9} {'peak-base':>9} {'s/frame':>8}")
    rows = []
    start = time.perf_counter()
    stream = sfcprop.propagate_iter(frames, mask, fine, semantic, preset=preset)
    for t, _ in enumerate(stream, start=1):
        if t % args.every == 0 or t == args.frames:
            row = {
                "frames": t,
                "rss_above_base_gib": rss_gib() - base,
                "peak_above_base_gib": peak_rss_gib() - base_peak,
                "s_per_frame": (time.perf_counter() - start) / t,
            }
            rows.append(row)
            print(
                f"{t:6d} {row['rss_above_base_gib']:9.2f} {row['peak_above_base_gib']:9.2f} "
                f"{row['s_per_frame']:8.2f}",
                flush=True,
            )
    if args.json:
        meta = {"config": args.config, "size": args.size, "source": source, "threads": args.threads}
        Path(args.json).write_text(json.dumps({**meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
