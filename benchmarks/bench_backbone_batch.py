"""Backbone time per 480p frame when frames are encoded one at a time or in batches.

Propagation encodes one frame per step; encoding several frames ahead (their features do
not depend on the labels) would let a GPU run larger batches. This measures what that
would save, for the two backbones of the presets, at float32 and float16.

    python benchmarks/bench_backbone_batch.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def per_frame_ms(encoder, batch: int, device: str, repeats: int) -> float:
    frames = torch.randint(0, 256, (batch, 3, 480, 854), dtype=torch.uint8, device=device)
    for _ in range(2):
        encoder(frames)  # start-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        encoder(frames)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / (repeats * batch) * 1e3


def main() -> int:
    from sfcprop.core import precision as numeric
    from sfcprop.core.features import Encoder
    from sfcprop.models import resnet18, resnet50

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results-backbone-batch.json"))
    args = p.parse_args()
    print(f"{'backbone':9} {'precision':9} " + " ".join(f"{f'batch {b}':>9}" for b in args.batches))
    rows = []
    for name, factory in (("resnet18", resnet18), ("resnet50", resnet50)):
        net = factory().eval().to(args.device)
        for precision in ("float32", "float16", "bfloat16"):
            encoder = Encoder(net, dtype=numeric.feature_dtype(precision))
            with numeric.no_tf32():
                ms = [per_frame_ms(encoder, b, args.device, args.repeats) for b in args.batches]
            rows.append({"backbone": name, "precision": precision, "ms_per_frame": ms})
            print(f"{name:9} {precision:9} " + " ".join(f"{m:9.2f}" for m in ms), flush=True)
    machine = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    out = {"device": machine, "batches": args.batches, "runs": rows}
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"ms per frame; wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
