"""Gather what `benchmarks/run_gpu_training.sh` reads into one ignored folder of the repository,
small enough to travel to a borrowed GPU machine (its limit: 64 MiB with the repository).

- `pretrain/`: every image of the shared `pretrain-frames` (BSDS500 + DAVIS-2016 train frames),
  resized to a short side of 320 (the size training preloads them at anyway), JPEG quality 80.
- `davis2016/`: the proxy's frames of the 8 development sequences (every 3rd of the first 34
  frames, the frames `bench_quick_davis.py` uses) with their masks, so the proxy runs there with
  `--step 1` on exactly the frames it uses here.

    python benchmarks/prepare_gpu_training.py [--out .gpu-train]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 52 * 2**20  # the repository (about 8 MiB) travels too, under the device's 64 MiB


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    data = Path(os.environ.get("SFCPROP_DATA", ROOT.parent / "shared" / "data"))
    p.add_argument("--data", default=str(data), help="the shared data folder")
    p.add_argument("--out", default=str(ROOT / ".gpu-train"))
    p.add_argument("--short-side", type=int, default=320)
    p.add_argument("--quality", type=int, default=80)
    args = p.parse_args()
    src, out = Path(args.data), Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    for path in sorted((src / "pretrain-frames").rglob("*.jpg")):
        img = Image.open(path).convert("RGB")
        s = args.short_side / min(img.size)
        img = img.resize((round(img.width * s), round(img.height * s)), Image.BILINEAR)
        dest = out / "pretrain" / path.relative_to(src / "pretrain-frames")
        dest.parent.mkdir(parents=True, exist_ok=True)
        img.save(dest, quality=args.quality)
    davis = src / "davis2016"
    for seq in (davis / "ImageSets" / "480p" / "val.txt").read_text().split():
        frames = sorted((davis / "JPEGImages" / "480p" / seq).glob("*.jpg"))[::3][:12]
        for f in frames:
            for kind, suffix in (("JPEGImages", ".jpg"), ("Annotations", ".png")):
                name = f.with_suffix(suffix).name
                dest = out / "davis2016" / kind / "480p" / seq / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(davis / kind / "480p" / seq / name, dest)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{out}: {size / 2**20:.1f} MiB")
    if size > LIMIT:
        print(f"over {LIMIT / 2**20:.0f} MiB: lower --short-side or --quality", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
