"""Does a ground-truth keyframe ever make the result worse? Stretch by stretch (issue 28).

On the 8 DAVIS-2016 sequences, with ground-truth keyframes every 10, 20 and 40 frames
(frame 0 included) and with frame 0 alone, for every stretch between two keyframes: J&F of
the forward pass alone, the backward pass alone, each combination rule
(`sfcprop.session.combine.RULES`) and frame 0 alone on the same frames.

    # 1. run the passes once, keep every frame's soft labels (resumable, per sequence)
    OMP_NUM_THREADS=1 python benchmarks/bench_stretches.py dump --short-side 240 \
        --cache /tmp/sfcprop-stretches
    # 2. score rules from the kept passes (no propagation; new rules cost seconds)
    python benchmarks/bench_stretches.py score --cache /tmp/sfcprop-stretches \
        [--json benchmarks/results-stretches-240.json]

A stretch "loses" where a rule's J&F is below the better single pass's on it; the table
gives the share of stretches that lose and the worst loss, per rule and spacing, and per
sequence the J&F with keyframes against frame 0 alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SFCPROP_DATA", ROOT.parent / "shared" / "data")) / "davis2016"
SPACINGS = (40, 20, 10)  # added in this order to one session: each a superset of the last


def dump(args) -> int:
    """Per sequence `<cache>/<q>.pt`: frame 0 alone's soft labels, and per spacing each
    frame's forward / backward soft labels (between keyframes) or its single pass."""
    from sfcprop.bench.datasets import read_ids
    from sfcprop.io.frames import list_images
    from sfcprop.session import confidence as conf
    from sfcprop.session.session import Session

    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    names = sorted(q.name for q in (DATA / "JPEGImages" / "480p").iterdir())
    for q in args.sequences.split(",") if args.sequences else names:
        path = cache / f"{q}.pt"
        if path.exists():
            continue
        frames = list_images(DATA / "JPEGImages" / "480p" / q)
        gt = [read_ids(m, binary=True) for m in list_images(DATA / "Annotations/480p" / q)]
        n = len(frames)
        s = Session(
            frames,
            args.backbone,
            keep_passes=True,
            short_side=args.short_side,
            feature_cache="8GiB",
            keyframe_memory=args.keyframe_memory,
        )
        s.annotate(0, gt[0])
        s.result()
        out = {"n": n, "frame0": {t: s.results[t].soft.half() for t in range(1, n)}}
        for spacing in SPACINGS:
            keys = list(range(0, n, spacing))
            for k in keys:
                if k not in s.keyframes:
                    s.annotate(k, gt[k])
            s.result()
            between = {t: s.passes[t] for t in range(1, keys[-1]) if t not in keys}
            out[spacing] = {
                "keys": keys,
                "passes": {
                    t: (f.half(), b.half(), df, db) for t, (f, b, df, db) in between.items()
                },
                "after": {t: s.results[t].soft.half() for t in range(keys[-1] + 1, n)},
                "areas": {k: conf.areas(s._key_soft(k)) for k in keys},
            }
        torch.save(out, path.with_suffix(".part"))
        path.with_suffix(".part").rename(path)
        print(f"{q}: {n} frames", file=sys.stderr, flush=True)
    return 0


def jf(soft: torch.Tensor, gt: np.ndarray) -> float:
    """(J + F) / 2 of soft labels `[2, h, w]` (background, object) against a binary mask."""
    from sfcprop import labels
    from sfcprop.bench.metrics import f_measure, jaccard

    pred = labels.decode(soft.float(), [0, 1], gt.shape).numpy() > 0
    return (jaccard(pred, gt > 0) + f_measure(pred, gt > 0)) / 2


NAMES = ("forward", "backward", "distance", "certainty", "nearest", "guard", "estimate")


def candidates(fw, bw, df, db, area_f, area_b) -> dict[str, torch.Tensor]:
    """Every rule scored: the library's (`RULES`) and "estimate", tried for issue 28: the
    distance weights times each pass's own estimate of its J."""
    from sfcprop.session.combine import RULES, combine, pass_estimates

    fw, bw = fw.float(), bw.float()
    out = {"forward": fw, "backward": bw}
    out.update({r: combine(fw, bw, df, db, r, (area_f, area_b)) for r in RULES})
    w = db / (df + db)
    ef, eb = pass_estimates(fw, bw, df, db, (area_f, area_b))
    a, b = w * float(ef.mean()), (1 - w) * float(eb.mean())
    out["estimate"] = (a * fw + b * bw) / max(a + b, 1e-12)
    return out


def score(args) -> int:
    from sfcprop.bench.datasets import read_ids
    from sfcprop.io.frames import list_images

    cache = Path(args.cache)
    per_seq, stretches = {}, []
    for path in sorted(cache.glob("*.pt")):
        q = path.stem
        d = torch.load(path, weights_only=False)
        gt = [read_ids(m, binary=True) for m in list_images(DATA / "Annotations/480p" / q)]
        base = {t: jf(s, gt[t]) for t, s in d["frame0"].items()}
        per_seq[q] = {"frame 0": base}
        for spacing in SPACINGS:
            sp = d[spacing]
            keys, areas = sp["keys"], sp["areas"]
            scores: dict[str, dict[int, float]] = {n: {} for n in NAMES}
            for t, (fw, bw, df, db) in sp["passes"].items():
                a, b = t - df, t + db
                for name, soft in candidates(fw, bw, df, db, areas[a], areas[b]).items():
                    scores[name][t] = jf(soft, gt[t])
            after = {t: jf(s, gt[t]) for t, s in sp["after"].items()}
            for name in scores:
                scores[name].update(after)
            per_seq[q][spacing] = scores
            for a, b in zip(keys, keys[1:], strict=False):
                frames = range(a + 1, b)
                row = {"sequence": q, "spacing": spacing, "stretch": [a, b]}
                row.update({n: float(np.mean([v[t] for t in frames])) for n, v in scores.items()})
                row["frame 0"] = float(np.mean([base[t] for t in frames]))
                stretches.append(row)
        print(f"{q} scored", file=sys.stderr, flush=True)
    report(per_seq, stretches)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "short_side": args.short_side,
                    "stretches": stretches,
                    "sequences": {
                        q: {str(k): _means(v) for k, v in s.items()} for q, s in per_seq.items()
                    },
                },
                indent=1,
            )
            + "\n"
        )
    return 0


def _means(v):
    if all(isinstance(x, float) for x in v.values()):
        return float(np.mean(list(v.values())))
    return {n: float(np.mean(list(x.values()))) for n, x in v.items()}


def report(per_seq: dict, stretches: list[dict]) -> None:
    names = list(NAMES)
    rules = [n for n in names if n not in ("forward", "backward")]
    print("J&F (x100) of the frames that are not keyframes, mean over the 8 sequences;")
    print("loses: share of stretches whose J&F is below the better single pass's; worst loss")
    print("| spacing | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for spacing in SPACINGS:
        cells = []
        for n in names:
            jfs = [100 * _mean(per_seq[q][spacing][n]) for q in per_seq]
            cells.append(f"{np.mean(jfs):.1f}")
        print(f"| every {spacing} | " + " | ".join(cells) + " |")
    print("\n| spacing | rule | stretches that lose | worst loss | below frame 0 alone |")
    print("|---|---|---|---|---|")
    for spacing in SPACINGS:
        rows = [r for r in stretches if r["spacing"] == spacing]
        for n in rules if rows else ():
            loss = [max(r["forward"], r["backward"]) - r[n] for r in rows]
            lose = [v for v in loss if v > 1e-9]
            below0 = sum(r[n] < r["frame 0"] - 1e-9 for r in rows)
            print(
                f"| every {spacing} | {n} | {len(lose)} / {len(rows)} | "
                f"{100 * max(loss):.1f} | {below0} |"
            )
    print("\nper sequence, keyframes every 20 against frame 0 alone (same frames), J&F x100")
    print("| sequence | frame 0 alone | " + " | ".join(rules) + " |")
    print("|---|---|" + "---|" * len(rules))
    for q, s in per_seq.items():
        frames = list(s[20]["forward"])
        base = 100 * np.mean([s["frame 0"][t] for t in frames])
        cells = [f"{100 * np.mean([s[20][n][t] for t in frames]):.1f}" for n in rules]
        print(f"| {q} | {base:.1f} | " + " | ".join(cells) + " |")


def _mean(v: dict) -> float:
    return float(np.mean(list(v.values())))


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("mode", choices=["dump", "score"])
    p.add_argument("--cache", default="/tmp/sfcprop-stretches")
    p.add_argument("--backbone", default="fc")
    p.add_argument("--short-side", type=int, default=240)
    p.add_argument("--sequences", help="comma-separated subset")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--keyframe-memory", type=int, default=0, help="Config.keyframe_memory of the passes"
    )
    p.add_argument("--json", help="write the table's numbers here")
    args = p.parse_args()
    return dump(args) if args.mode == "dump" else score(args)


if __name__ == "__main__":
    sys.exit(main())
