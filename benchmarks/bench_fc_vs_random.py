"""The shipped FC model against a randomly initialised ResNet-18 trunk on DAVIS-2016.

Both are evaluated with `sfcprop eval davis` (DAVIS preset, the 8 sequences of the shared
`davis2016` folder, a ground-truth mask on every frame) and the J&F table is printed.
Results folders are kept under --work, so an interrupted run resumes.

    python benchmarks/bench_fc_vs_random.py [--work runs/fc-vs-random] [--max-frames N]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def random_trunk(path: Path, seed: int = 0) -> Path:
    """A torchvision-layout ResNet-18 trunk with torchvision's default (random) init."""
    from sfcprop.models import resnet18

    torch.manual_seed(seed)
    torch.save(resnet18().state_dict(), path)
    return path


def evaluate(name: str, backbone: str, root: Path, work: Path, extra: list[str]) -> dict:
    from sfcprop.apps.eval import main as eval_main

    out = work / name
    status = eval_main(
        ["davis", "--root", str(root), "--backbone", backbone, "--out", str(out), "--quiet", *extra]
    )
    if status != 0:
        raise SystemExit(f"sfcprop eval failed for {name} (exit {status})")
    with open(out / "global_results-val.csv") as f:
        table = next(iter(csv.DictReader(f)))
    return {k: float(v) for k, v in table.items()}


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    data = Path(os.environ.get("SFCPROP_DATA", ROOT.parent / "shared" / "data"))
    p.add_argument("--root", default=str(data / "davis2016"))
    p.add_argument("--work", default=str(ROOT / "runs" / "fc-vs-random"))
    p.add_argument("--max-frames", type=int, help="only the first N frames of each sequence")
    p.add_argument("--only", choices=("fc", "random"), help="evaluate one of the two")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    extra = ["--max-frames", str(args.max_frames)] if args.max_frames else []
    runs = {"shipped fc": "fc", "random R18": str(random_trunk(work / "random_r18.pth"))}
    if args.only:
        runs = {k: v for k, v in runs.items() if (v == "fc") == (args.only == "fc")}
    rows = {
        name: evaluate(name.replace(" ", "_"), bb, Path(args.root), work, extra)
        for name, bb in runs.items()
    }
    print(f"\n{'backbone':12} {'J&F-Mean':>9} {'J-Mean':>7} {'F-Mean':>7}")
    for name, t in rows.items():
        jf, j, f = (100 * t[k] for k in ("J&F-Mean", "J-Mean", "F-Mean"))
        print(f"{name:12} {jf:9.1f} {j:7.1f} {f:7.1f}")
    if len(rows) == 2:
        gap = 100 * (rows["shipped fc"]["J&F-Mean"] - rows["random R18"]["J&F-Mean"])
        print(f"\nshipped fc - random R18: {gap:+.1f} J&F points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
