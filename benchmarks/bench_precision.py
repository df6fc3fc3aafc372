"""Agreement with the golden fixtures, and speed, at each precision on one device.

For every golden case (shared/golden, SFC's BatchNorm warm-up on), propagates at float32,
float16 and bfloat16 and prints: the share of soft values within 1e-4 of the original
implementation's (the golden tests ask for 99.9% at float32), the largest difference,
the share of pixels whose id agrees with the original masks (frames 1..T), and seconds per
frame (after an untimed first run of the case). Writes the rows to a JSON file.

With `--davis`, it scores instead what half precision costs on real video: `sfcprop eval
davis` with the shipped model at each of `--precisions` (the 8 DAVIS-2016 sequences, every
frame; results kept under --work so a run resumes).

With `--float32-scores`, the affinity products of half-precision features are computed in
float32 from the half-rounded features (what CUDA's `torch.bmm(..., out_dtype=float32)`
would give, emulated on any device): it measures how much of half precision's difference
comes from rounding the scores rather than the features.

    python benchmarks/bench_precision.py                    # CPU
    python benchmarks/bench_precision.py --device cuda
    python benchmarks/bench_precision.py --davis --precisions float32 bfloat16
    python benchmarks/bench_precision.py --precisions float16 bfloat16 --float32-scores
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_golden import CASES, _backbones, propagation_params  # noqa: E402  (the golden tests' own loader)

from sfcprop.core import affinity  # noqa: E402
from sfcprop.io.frames import list_images  # noqa: E402
from sfcprop.io.masks import read_mask  # noqa: E402
from sfcprop.session.api import propagate  # noqa: E402

PRECISIONS = ("float32", "float16", "bfloat16")


def run_case(case_dir: Path, precision: str, device: str) -> dict:
    params = json.loads((case_dir / "params.json").read_text())
    fine, semantic = _backbones(case_dir, params, warmup=True)
    kw = dict(propagation_params(params), return_soft=True, device=device, precision=precision)
    frames, first = case_dir / "frames", case_dir / "first_mask.png"
    propagate(frames, first, fine, semantic, **kw)  # untimed: start-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = propagate(frames, first, fine, semantic, **kw)
    seconds = time.perf_counter() - start
    golden = np.load(case_dir / "expected_soft.npz")
    order = [result.label_ids.index(int(i)) for i in golden["label_ids"]]
    diff = np.abs(result.soft[:, order].numpy() - golden["soft"])
    pngs = list_images(case_dir / "expected")[1:]
    agree = np.mean(
        [(result.ids[t].numpy() == read_mask(png)[0]).mean() for t, png in enumerate(pngs, start=1)]
    )
    return {
        "case": case_dir.name,
        "precision": precision,
        "device": device,
        "frames": len(result.ids),
        "soft_within_1e-4": float((diff <= 1e-4).mean()),
        "max_soft_diff": float(diff.max()),
        "pixels_agree": float(agree),
        "s_per_frame": seconds / len(result.ids),
    }


def float32_scores() -> None:
    """Make the affinity take its inputs in float32 (after any half rounding upstream)."""
    for name in ("global_topk", "local_topk"):
        func = getattr(affinity, name)

        def upcast(query, keys, *args, _func=func, **kwargs):
            return _func(query.float(), keys.float(), *args, **kwargs)

        setattr(affinity, name, upcast)


def davis(args: argparse.Namespace) -> int:
    from sfcprop.apps.eval import main as eval_main

    shared = Path(os.environ.get("SFCPROP_SHARED", ROOT.parent / "shared"))
    root = Path(os.environ.get("SFCPROP_DATA", shared / "data")) / "davis2016"
    print(f"{'precision':9} {'J&F-Mean':>9} {'J-Mean':>7} {'F-Mean':>7} {'minutes':>8}")
    rows = []
    for precision in args.precisions:
        out = Path(args.work) / precision
        start = time.perf_counter()
        argv = ["davis", "--root", str(root), "--backbone", "fc", "--out", str(out)]
        argv += ["--device", args.device, "--precision", precision, "--quiet"]
        if eval_main(argv) != 0:
            raise SystemExit(f"sfcprop eval failed at {precision}")
        minutes = (time.perf_counter() - start) / 60  # 0 for a folder already complete
        with open(out / "global_results-val.csv") as f:
            table = {k: 100 * float(v) for k, v in next(iter(csv.DictReader(f))).items()}
        rows.append({"precision": precision, "minutes": minutes, **table})
        print(
            f"{precision:9} {table['J&F-Mean']:9.1f} {table['J-Mean']:7.1f} "
            f"{table['F-Mean']:7.1f} {minutes:8.1f}",
            flush=True,
        )
    Path(args.json).write_text(json.dumps({"davis2016": rows}, indent=1))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--cases", nargs="+", default=CASES, choices=CASES, metavar="CASE")
    p.add_argument("--precisions", nargs="+", default=PRECISIONS, choices=PRECISIONS)
    p.add_argument("--davis", action="store_true", help="J&F on DAVIS-2016 per precision")
    p.add_argument(
        "--float32-scores",
        action="store_true",
        help="affinity products in float32 from the half-rounded features (an experiment)",
    )
    p.add_argument("--work", default=str(ROOT / "runs" / "precision-davis"))
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results-precision.json"))
    args = p.parse_args()
    if args.float32_scores:
        float32_scores()
    if args.davis:
        return davis(args)
    shared = Path(os.environ.get("SFCPROP_SHARED", ROOT.parent / "shared"))
    golden = shared / "golden"
    if not golden.is_dir():
        print(f"golden fixtures not found at {golden} (set SFCPROP_SHARED)", file=sys.stderr)
        return 2
    print(
        f"{'case':14} {'precision':9} {'frames':>6} {'soft<=1e-4':>10} {'max diff':>9} "
        f"{'px agree':>9} {'s/frame':>8}"
    )
    rows = []
    for case in args.cases:
        for precision in args.precisions:
            row = run_case(golden / case, precision, args.device)
            rows.append(row)
            print(
                f"{case:14} {precision:9} {row['frames']:6d} {row['soft_within_1e-4']:10.5f} "
                f"{row['max_soft_diff']:9.5f} {row['pixels_agree']:9.5f} "
                f"{row['s_per_frame']:8.4f}",
                flush=True,
            )
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    machine = {"torch": torch.__version__, "device": device, "threads": torch.get_num_threads()}
    machine["float32_scores"] = args.float32_scores
    Path(args.json).write_text(json.dumps({"machine": machine, "runs": rows}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
