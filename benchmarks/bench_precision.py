"""Agreement with the golden fixtures, and speed, at each precision on one device.

For every golden case (shared/golden, SFC's BatchNorm warm-up on), propagates at float32,
float16 and bfloat16 and prints: the share of soft values within 1e-4 of the original
implementation's (the golden tests ask for 99.9% at float32), the largest difference,
the share of pixels whose id agrees with the original masks (frames 1..T), and seconds per
frame (after an untimed first run of the case). Writes the rows to a JSON file.

    python benchmarks/bench_precision.py                    # CPU
    python benchmarks/bench_precision.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_golden import CASES, _backbones  # noqa: E402  (the golden tests' own loader)

from sfcprop.io import list_images, read_mask  # noqa: E402
from sfcprop.propagation import propagate  # noqa: E402

PRECISIONS = ("float32", "float16", "bfloat16")


def run_case(case_dir: Path, precision: str, device: str) -> dict:
    params = json.loads((case_dir / "params.json").read_text())
    fine, semantic = _backbones(case_dir, params, warmup=True)
    kw = dict(
        topk=params["topk"],
        context=params["videoLen"],
        radius=params["radius"],
        temperature=params["temperature"],
        lam=params["lambd"],
        return_soft=True,
        device=device,
        precision=precision,
    )
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


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--cases", nargs="+", default=CASES, choices=CASES, metavar="CASE")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results-precision.json"))
    args = p.parse_args()
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
        for precision in PRECISIONS:
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
    Path(args.json).write_text(json.dumps({"machine": machine, "runs": rows}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
