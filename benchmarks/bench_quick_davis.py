"""A one-minute J&F check of a backbone, for comparing training runs (not a benchmark result).

Every `--step`-th frame (default 3) of the 8 DAVIS-2016 sequences, the first `--frames` of
them (default 12), at full resolution, DAVIS preset: the first mask is propagated through
the subsampled clip and J and F are averaged over its later frames. Subsampling makes the
motion between frames larger, so short clips still separate good features from bad.

    python benchmarks/bench_quick_davis.py weights/fc-r18-sfcprop.safetensors
    python benchmarks/bench_quick_davis.py imagenet-r18 --threads 2
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    data = Path(os.environ.get("SFCPROP_DATA", ROOT.parent / "shared" / "data"))
    p.add_argument("backbone", help="registry name or checkpoint file")
    p.add_argument("--root", default=str(data / "davis2016"))
    p.add_argument("--frames", type=int, default=12, help="frames per clip after subsampling")
    p.add_argument("--step", type=int, default=3, help="keep every step-th frame")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    args = p.parse_args()

    import sfcprop
    from sfcprop.bench.datasets import read_ids
    from sfcprop.bench.metrics import f_measure, jaccard
    from sfcprop.io.frames import list_images

    torch.set_num_threads(args.threads)
    root = Path(args.root)
    net = sfcprop.backbone(args.backbone)
    js, fs = [], []
    for seq in sorted(p.name for p in (root / "JPEGImages" / "480p").iterdir()):
        frames = list_images(root / "JPEGImages" / "480p" / seq)[:: args.step][: args.frames]
        masks = list_images(root / "Annotations" / "480p" / seq)[:: args.step][: args.frames]
        gt = [read_ids(m, binary=True) for m in masks]
        out = sfcprop.propagate(frames, gt[0], net, preset="davis", device=args.device)
        out = out.ids.numpy()
        j = np.mean([jaccard(out[t] > 0, gt[t] > 0) for t in range(1, len(frames))])
        f = np.mean([f_measure(out[t] > 0, gt[t] > 0) for t in range(1, len(frames))])
        js.append(j)
        fs.append(f)
        print(f"{seq:12} J {j:.3f} F {f:.3f}", flush=True)
    jf = 100 * (np.mean(js) + np.mean(fs)) / 2
    print(f"{args.backbone}: J&F {jf:.1f} (J {100 * np.mean(js):.1f}, F {100 * np.mean(fs):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
