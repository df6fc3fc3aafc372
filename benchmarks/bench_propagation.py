"""Speed and memory of propagation: a table and a JSON file.

Each configuration runs in its own process (so peak RSS is its own) on a 480p / 720p
clip: DAVIS-2016 frames from the shared data when present (looped to the clip length),
else the generated clip at that size. Times are split into backbone (feature
extraction), affinity (scores + top-k) and propagation (merge, softmax, label gather,
decoding). `est GiB` is `Propagator.plan_memory`'s estimate (what `max_memory` is
checked against) for the context this clip fills; `RSS-base` the measured peak above the
process's RSS before propagation (torch and the weights); `read` the rest of the wall time
(reading and decoding frames, Python). `dense` is sfcprop's dense reference path (the
original computation) on the same inputs, for the speed-up ratio measured side by side.
On CUDA, each configuration first propagates 3 frames untimed (weights to the GPU, cuDNN
and kernel start-up), and rows for half precision and for the CPU's block sizes are added.

    python benchmarks/bench_propagation.py                 # the README table
    python benchmarks/bench_propagation.py --quick         # a short smoke run
    python benchmarks/bench_propagation.py --scale         # 1080p only
    python benchmarks/bench_propagation.py --half          # float32 against half precision
    python benchmarks/bench_propagation.py --budget        # without and with max_memory
    python benchmarks/bench_propagation.py --device cuda   # the GPU table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"480p": (480, 854), "720p": (720, 1280), "1080p": (1080, 1920)}


def load_clip(n: int, size: tuple[int, int]):
    """`n` frames streamed one at a time (uint8 `[3, H, W]`), a first mask, and their source.

    DAVIS-2016 frames are read from disk as they are needed (looped to `n`), so the
    clip itself takes no memory; without the shared data the generated clip is used."""
    data = Path(os.environ.get("SFCPROP_DATA", ROOT.parent / "shared" / "data"))
    seq = data / "davis2016" / "JPEGImages" / "480p" / "bmx-trees"
    if seq.is_dir():
        from sfcprop.io.frames import list_images, read_image
        from sfcprop.io.masks import read_mask

        paths = list_images(seq)
        mask = torch.from_numpy(
            read_mask(data / "davis2016/Annotations/480p/bmx-trees/00000.png")[0]
        )
        mask = F.interpolate(mask[None, None].float(), size=size)[0, 0].long()

        def frames():
            for i in range(n):
                frame = read_image(paths[i % len(paths)])
                if frame.shape[-2:] != size:
                    frame = F.interpolate(frame[None].float(), size=size, mode="bilinear")[0]
                    frame = frame.round().clamp(0, 255).to(torch.uint8)
                yield frame

        return frames(), mask, "DAVIS-2016 bmx-trees (streamed, looped)"
    from sfcprop.bench.synthetic import generate_clip

    clip = generate_clip(num_frames=n, height=size[0], width=size[1])
    return clip.frames, clip.masks[0].long(), "generated clip (in memory)"


def peak_rss_gib() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class Timer:
    """Accumulates wall time of wrapped functions by category."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {"backbone": 0.0, "affinity": 0.0, "propagation": 0.0}

    def wrap(self, owner, name: str, category: str) -> None:
        func = getattr(owner, name)

        def timed(*args, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = func(*args, **kwargs)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.total[category] += time.perf_counter() - start
            return out

        setattr(owner, name, timed)


def dense_step(query, memory, preset, *_blocks, scores=None):
    """The dense reference path: stack the m + 1 slots and build the full affinity (the
    local path's block sizes, if given, do not apply)."""
    from sfcprop.core import affinity

    slots = [memory.first] + [
        item for mult, item in memory.short_term(preset.context) for _ in range(mult)
    ]
    keys = torch.stack([f for f, _ in slots])
    labels = torch.stack([s for _, s in slots])
    return affinity.dense_propagation(
        query, keys, labels, 1, preset.radius, preset.topk, preset.temperature
    )


def child(args: argparse.Namespace) -> dict:
    """Run one configuration in this process and return its measurements."""
    import sfcprop
    from sfcprop.config import Config
    from sfcprop.core import affinity, budget, propagator
    from sfcprop.labels import ids as labels
    from sfcprop.models import resnet18, resnet50

    torch.set_num_threads(args.threads)
    frames, mask, source = load_clip(args.frames, SIZES[args.size])
    fine = resnet18().eval()
    semantic = resnet50().eval() if args.config == "sfc" else None
    preset = "davis-sfc" if args.config == "sfc" else "davis"
    n_labels = len(labels.label_ids(mask))
    h, w = SIZES[args.size]
    held = min(Config.preset(preset).context, args.frames - 1)  # frames the ring buffer reaches
    if args.blocks == "cpu":  # the CPU's block sizes on any device
        budget.default_blocks = lambda device: (budget.GLOBAL_ROWS, budget.WINDOW_ELEMS)
    kw = dict(preset=preset, radius=args.radius, device=args.device, precision=args.precision)
    kw["max_memory"] = args.max_memory
    planner = propagator.Propagator(fine, semantic, context=held, **kw)
    plan = planner.plan_memory(h, w, n_labels, outputs=args.frames * h * w)
    if args.config == "dense":
        propagator.step_soft = dense_step
    if args.device.startswith("cuda"):  # start-up (weights, cuDNN, kernels) left untimed
        warm, _, _ = load_clip(3, SIZES[args.size])
        sfcprop.propagate(warm, mask, fine, semantic, **kw)
    base_rss = peak_rss_gib()  # torch + weights
    timer = Timer()
    timer.wrap(propagator.Propagator, "encode", "backbone")
    timer.wrap(affinity, "global_topk", "affinity")
    timer.wrap(affinity, "local_topk", "affinity")
    timer.wrap(propagator, "step_soft", "propagation")  # includes affinity: subtracted below
    timer.wrap(labels, "decode", "propagation")
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    sfcprop.propagate(frames, mask, fine, semantic, **kw)
    wall = time.perf_counter() - start
    t = timer.total
    t["propagation"] -= t["affinity"]
    if args.config == "dense":  # the dense path computes affinity inside step_soft
        t["affinity"], t["propagation"] = t["propagation"], 0.0
    n = args.frames
    return {
        "config": args.config,
        "precision": args.precision,
        "blocks": args.blocks,
        "max_memory": args.max_memory,
        "size": args.size,
        "frames": n,
        "radius": args.radius,
        "device": args.device,
        "source": source,
        "fps": n / wall,
        "s_per_frame": wall / n,
        "backbone_s": t["backbone"] / n,
        "affinity_s": t["affinity"] / n,
        "propagation_s": t["propagation"] / n,
        "read_s": (wall - sum(t.values())) / n,
        "peak_rss_gib": peak_rss_gib(),
        "base_rss_gib": base_rss,
        "estimate_gib": plan.total / 2**30,
        "peak_gpu_gib": (
            torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else None
        ),
    }


VARIANT = ("float32", "default", None)  # precision, blocks, max_memory of a run by default
RUNS_FULL = [  # (config, size, frames, radius[, precision, blocks[, max_memory]])
    ("davis", "480p", 20, 12),
    ("davis", "480p", 40, 12),
    ("davis", "480p", 80, 12),
    ("davis", "480p", 20, 15),
    ("davis", "720p", 20, 12),
    ("sfc", "480p", 20, 15),
    ("sfc", "480p", 40, 15),
    ("sfc", "480p", 80, 15),
    ("dense", "480p", 20, 12),
]
RUNS_SCALE = [("davis", "1080p", 10, 12), ("sfc", "1080p", 6, 15)]
RUNS_QUICK = [("davis", "480p", 4, 12), ("dense", "480p", 4, 12)]
RUNS_HALF = [
    (config, "480p", 20, radius, precision, "default")
    for config, radius in (("davis", 12), ("sfc", 15))
    for precision in ("float32", "bfloat16", "float16")
]
RUNS_BUDGET = [  # a max_memory large enough to keep the default blocks: only the trimming
    (config, "480p", 40, radius, "float32", "default", budget)
    for config, radius in (("davis", 12), ("sfc", 15))
    for budget in (None, "8GiB")
]
RUNS_GPU = [  # what a GPU adds: half precision, and the CPU's smaller blocks for comparison
    ("davis", "480p", 80, 12, "float16", "default"),
    ("davis", "480p", 80, 12, "bfloat16", "default"),
    ("sfc", "480p", 40, 15, "float16", "default"),
    ("davis", "480p", 80, 12, "float32", "cpu"),
    ("davis", "1080p", 40, 12, "float32", "default"),
    ("sfc", "1080p", 20, 15, "float32", "default"),
]


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="two short runs only")
    p.add_argument("--scale", action="store_true", help="only the 1080p runs")
    p.add_argument(
        "--half", action="store_true", help="only float32 against float16 and bfloat16 (480p)"
    )
    p.add_argument("--budget", action="store_true", help="only without and with max_memory")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results.json"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--config", default="davis", help=argparse.SUPPRESS)
    p.add_argument("--size", default="480p", help=argparse.SUPPRESS)
    p.add_argument("--frames", type=int, default=20, help=argparse.SUPPRESS)
    p.add_argument("--radius", type=float, default=12, help=argparse.SUPPRESS)
    p.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    p.add_argument("--blocks", default="default", help=argparse.SUPPRESS)
    p.add_argument("--max-memory", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0
    rows = []
    header = (
        f"{'config':7} {'variant':17} {'size':5} {'frames':>6} {'r':>3} {'fps':>7} "
        f"{'s/frame':>8} {'backbone':>8} {'affinity':>8} {'prop':>6} {'read':>6} "
        f"{'RSS GiB':>8} {'GPU GiB':>8} {'est GiB':>8} {'RSS-base':>8}"
    )
    print(header)
    runs = RUNS_FULL + (RUNS_GPU if args.device.startswith("cuda") else []) + RUNS_SCALE
    runs = RUNS_QUICK if args.quick else RUNS_SCALE if args.scale else runs
    runs = RUNS_HALF if args.half else RUNS_BUDGET if args.budget else runs
    machine = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "device": args.device,
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
    }
    for config, size, frames, radius, *variant in runs:
        precision, blocks, max_memory = (*variant, *VARIANT[len(variant) :])
        name = precision if blocks == "default" else f"{precision},{blocks}-blk"
        name += f",max {max_memory}" if max_memory else ""
        cmd = [
            sys.executable,
            __file__,
            "--child",
            "--config",
            config,
            "--size",
            size,
            "--frames",
            str(frames),
            "--radius",
            str(radius),
            "--device",
            args.device,
            "--threads",
            str(args.threads),
            "--precision",
            precision,
            "--blocks",
            blocks,
        ] + (["--max-memory", max_memory] if max_memory else [])
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:  # report it and go on with the other configurations
            last = (out.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{config:7} {name:17} {size:5} {frames:6d} failed: {last}", flush=True)
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        Path(args.json).write_text(json.dumps({"machine": machine, "runs": rows}, indent=1))
        gpu = "-" if row["peak_gpu_gib"] is None else f"{row['peak_gpu_gib']:.2f}"
        digits = 4 if row["s_per_frame"] < 0.1 else 2
        print(
            f"{config:7} {name:17} {size:5} {frames:6d} {radius:3.0f} {row['fps']:7.2f} "
            + " ".join(
                f"{row[k]:{width}.{digits}f}"
                for k, width in [
                    ("s_per_frame", 8),
                    ("backbone_s", 8),
                    ("affinity_s", 8),
                    ("propagation_s", 6),
                    ("read_s", 6),
                ]
            )
            + f" {row['peak_rss_gib']:8.2f} {gpu:>8} {row['estimate_gib']:8.2f} "
            f"{row['peak_rss_gib'] - row['base_rss_gib']:8.2f}",
            flush=True,
        )
    local = [
        r
        for r in rows
        if (r["config"], r["size"], r["precision"], r["blocks"])
        == ("davis", "480p", "float32", "default")
    ]
    dense = [r for r in rows if r["config"] == "dense"]
    if local and dense:
        same = [
            r
            for r in local
            if r["frames"] == dense[0]["frames"] and r["radius"] == dense[0]["radius"]
        ]
        if same:
            print(
                f"\nlocal vs dense (DAVIS preset, 480p, {dense[0]['frames']} frames): "
                f"{dense[0]['s_per_frame'] / same[0]['s_per_frame']:.1f}x faster"
            )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
