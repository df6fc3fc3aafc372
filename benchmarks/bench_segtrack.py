"""SegTrack v2 bmx (36 frames, one object): mean J over the clip and the last frame whose J
is above 0.5, per model: the shipped model, random weights, and any checkpoints given.

The first mask is the clip's annotation thresholded at 128 (its RGB masks have a few
anti-aliased edge pixels); DAVIS preset; frames at their native 640x360.

    python benchmarks/bench_segtrack.py [CHECKPOINT ...] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    data = Path(os.environ.get("SFCPROP_DATA", ROOT.parent / "shared" / "data"))
    p.add_argument("checkpoints", nargs="*", help="more models: registry names or files")
    p.add_argument("--root", default=str(data / "segtrackv2-bmx"))
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()

    import sfcprop
    from sfcprop.bench.metrics import jaccard
    from sfcprop.io.frames import list_images
    from sfcprop.models import resnet18

    torch.set_num_threads(args.threads)
    root = Path(args.root)
    frames = list_images(root / "Images" / "bmx")
    masks = [
        np.asarray(Image.open(m).convert("L")) >= 128
        for m in list_images(root / "Annotations" / "bmx")
    ]
    torch.manual_seed(0)
    models = {"shipped fc": "fc", "random R18": None, **{c: c for c in args.checkpoints}}
    print(f"SegTrack v2 bmx, {len(frames)} frames; J per frame against the thresholded masks")
    print(f"{'model':>40} {'mean J':>7} {'last frame with J > 0.5':>24}")
    for name, spec in models.items():
        net = (
            sfcprop.backbone("imagenet-r18", weights=resnet18().state_dict())
            if spec is None
            else sfcprop.backbone(spec)
        )
        ids = sfcprop.propagate(frames, masks[0].astype(np.uint8), net, progress=False).ids
        j = [jaccard(ids[t].numpy() > 0, masks[t]) for t in range(1, len(frames))]
        above = [t for t, v in enumerate(j, start=1) if v > 0.5]
        print(f"{Path(name).name:>40} {np.mean(j):7.3f} {max(above) if above else '-':>24}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
