"""Keyframes on DAVIS-2016: J&F by spacing, direction and combination rule; confidence.

On the 8 DAVIS-2016 sequences of the shared data (a ground-truth mask on every frame),
with ground-truth keyframes every S frames (frame 0 included) and with frame 0 alone:
- J&F on the frames that are not keyframes, forward-only against both directions, for
  each combination rule (`sfcprop.session.RULES`; all rules from the same two passes);
- the Spearman rank correlation of per-frame confidence (and of its parts) with the true
  per-frame J, pooled over the sequences' non-keyframe frames;
- precision and recall of the "lost" flag against frames with J < 0.2; cut flags raised
  (none of these sequences has a cut); stretch by stretch (which rule loses what a pass
  knows): benchmarks/bench_stretches.py;
- the time of one correction (a keyframe added mid-way, S = 20) against a full rerun.

    python benchmarks/bench_keyframes.py [--backbone fc] [--random] [--short-side 240]
        [--threads 1] [--json benchmarks/results-keyframes.json]
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
SPACINGS = (10, 20, 40)


def score(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    from sfcprop.bench.metrics import f_measure, jaccard

    return jaccard(pred > 0, gt > 0), f_measure(pred > 0, gt > 0)


def decode(soft: torch.Tensor, size) -> np.ndarray:
    from sfcprop import labels

    return labels.decode(soft, [0, 1], size).numpy()


def spearman(x, y) -> float:
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.all(x == x[0]):
        return float("nan")
    return float(spearmanr(x, y).statistic)


def run_sequence(net, frames, gt, spacing, args) -> dict:
    """Every measurement of one sequence at one keyframe spacing (None: frame 0 alone)."""
    from sfcprop.session import confidence
    from sfcprop.session.combine import RULES, combine
    from sfcprop.session.session import Session

    n, size = len(frames), gt[0].shape
    keys = [0] if spacing is None else list(range(0, n, spacing))
    s = Session(frames, net, keep_passes=True, short_side=args.short_side)
    for k in keys:
        s.annotate(k, gt[k])
    start = time.perf_counter()
    s.result()
    seconds = time.perf_counter() - start
    targets = [t for t in range(n) if t not in keys]
    out = {"frames": len(targets), "seconds": seconds, "rules": {}}
    variants = {"forward": None} if spacing is None else {"forward": None, **dict.fromkeys(RULES)}
    key_areas = {k: confidence.areas(s._key_soft(k)) for k in keys}  # for rule "guard"
    for name in variants:
        js, fs = [], []
        for t in targets:
            if spacing is None or t < keys[-1]:
                if name == "forward" or spacing is None:
                    soft = s.passes[t][0] if t in s.passes else s.results[t].soft
                else:
                    fw, bw, df, db = s.passes[t]
                    soft = combine(fw, bw, df, db, name, (key_areas[t - df], key_areas[t + db]))
            else:  # after the last keyframe: forward only, whatever the rule
                soft = s.results[t].soft
            j, f = score(decode(soft, size), gt[t])
            js.append(j)
            fs.append(f)
        out["rules"][name] = {"J": float(np.mean(js)), "F": float(np.mean(fs))}
        if name == s.rule or spacing is None:
            out["J_per_frame"] = js
    stats = [s.results[t].stats for t in targets]
    out["measures"] = {
        m: [float(getattr(st, m)[0]) for st in stats]
        for m in ("confidence", "certainty", "area", "agreement")
    }
    out["lost"] = [bool(st.area[0] < confidence.LOST_AREA) for st in stats]
    out["cuts"] = len(confidence.cut_flags([s.similarities.get(t) for t in range(n)]))
    if spacing == 20 and n > 30:  # one correction: a keyframe at 10, against a full rerun
        start = time.perf_counter()
        s.annotate(10, gt[10])
        s.result()
        out["correction_s"] = time.perf_counter() - start
        fresh = Session(frames, net, short_side=args.short_side)
        for k in sorted({*keys, 10}):
            fresh.annotate(k, gt[k])
        start = time.perf_counter()
        fresh.result()
        out["rerun_s"] = time.perf_counter() - start
    return out


def summarise(model: str, per_seq: dict, spacing) -> dict:
    label = "frame 0 only" if spacing is None else f"every {spacing}"
    seqs = list(per_seq)
    rules = per_seq[seqs[0]]["rules"]
    row = {"model": model, "keyframes": label}
    for name in rules:
        j = np.mean([per_seq[q]["rules"][name]["J"] for q in seqs])
        f = np.mean([per_seq[q]["rules"][name]["F"] for q in seqs])
        row[name] = 100 * (j + f) / 2
    pooled_j = [v for q in seqs for v in per_seq[q]["J_per_frame"]]
    for m in ("confidence", "certainty", "area", "agreement"):
        row[f"rho_{m}"] = spearman([v for q in seqs for v in per_seq[q]["measures"][m]], pooled_j)
    lost = np.array([v for q in seqs for v in per_seq[q]["lost"]])
    bad = np.array(pooled_j) < 0.2
    row["lost_precision"] = float((lost & bad).sum() / lost.sum()) if lost.sum() else float("nan")
    row["lost_recall"] = float((lost & bad).sum() / bad.sum()) if bad.sum() else float("nan")
    row["bad_frames"] = int(bad.sum())
    row["cuts"] = int(sum(per_seq[q]["cuts"] for q in seqs))
    row["seconds"] = float(sum(per_seq[q]["seconds"] for q in seqs))
    corr = [q for q in seqs if "correction_s" in per_seq[q]]
    if corr:
        row["correction_s"] = float(sum(per_seq[q]["correction_s"] for q in corr))
        row["rerun_s"] = float(sum(per_seq[q]["rerun_s"] for q in corr))
    return row


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    data = Path(os.environ.get("SFCPROP_DATA", ROOT.parent / "shared" / "data"))
    p.add_argument("--root", default=str(data / "davis2016"))
    p.add_argument("--backbone", default="fc", help="registry name or checkpoint (shipped fc)")
    p.add_argument("--random", action="store_true", help="also random ResNet-18 weights (floor)")
    p.add_argument("--random-only", action="store_true", help="only the random weights")
    p.add_argument(
        "--spacings", default=",".join(map(str, SPACINGS)), help="keyframe spacings, e.g. 10,20"
    )
    p.add_argument("--short-side", type=int, help="resize frames (default: native 480p)")
    p.add_argument("--sequences", help="comma-separated subset")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results-keyframes.json"))
    args = p.parse_args()

    import sfcprop
    from sfcprop.bench.datasets import read_ids
    from sfcprop.io.frames import list_images
    from sfcprop.models import resnet18

    torch.set_num_threads(args.threads)
    root = Path(args.root)
    names = sorted(q.name for q in (root / "JPEGImages" / "480p").iterdir())
    if args.sequences:
        names = args.sequences.split(",")
    models = {} if args.random_only else {f"{args.backbone}": sfcprop.backbone(args.backbone)}
    if args.random or args.random_only:
        torch.manual_seed(0)
        models["random R18"] = sfcprop.backbone("imagenet-r18", weights=resnet18().state_dict())
    rows, frames_out = [], []  # the summary table; every frame's measures (for studies)
    for model, net in models.items():
        for spacing in (None, *(int(v) for v in args.spacings.split(","))):
            per_seq = {}
            for q in names:
                frames = list_images(root / "JPEGImages" / "480p" / q)
                gt = [read_ids(m, binary=True) for m in list_images(root / "Annotations/480p" / q)]
                per_seq[q] = run_sequence(net, frames, gt, spacing, args)
                print(f"{model} {spacing} {q}: {per_seq[q]['rules']}", flush=True)
            rows.append(summarise(model, per_seq, spacing))
            frames_out.append({"model": model, "spacing": spacing, "sequences": per_seq})
            print(json.dumps(rows[-1]), flush=True)
            Path(args.json).write_text(
                json.dumps({"short_side": args.short_side, "rows": rows}, indent=1) + "\n"
            )
            Path(args.json).with_suffix(".frames.json").write_text(json.dumps(frames_out) + "\n")
    print_table(rows, args.short_side)
    return 0


def print_table(rows: list[dict], short_side) -> None:
    from sfcprop.session.combine import RULES

    size = f"short side {short_side}" if short_side else "480p"
    print(f"\nDAVIS-2016, 8 sequences, {size}; J&F (x100) on frames that are not keyframes")
    head = ["model", "keyframes", "forward", *RULES, "rho conf", "lost P/R", "cuts"]
    print(" | ".join(head))
    for r in rows:
        cells = [r["model"], r["keyframes"]] + [
            f"{r[k]:.1f}" if k in r else "-" for k in ("forward", *RULES)
        ]
        cells += [f"{r['rho_confidence']:.2f}"]
        cells += [f"{r['lost_precision']:.2f}/{r['lost_recall']:.2f} ({r['bad_frames']})"]
        cells += [str(r["cuts"])]
        print(" | ".join(cells))
    for r in rows:
        if "correction_s" in r:
            print(
                f"{r['model']}: one correction {r['correction_s']:.1f} s against a full rerun "
                f"{r['rerun_s']:.1f} s (8 sequences, keyframes every 20, one added at frame 10)"
            )
        print(
            f"{r['model']} {r['keyframes']}: rho certainty {r['rho_certainty']:.2f}, area "
            f"{r['rho_area']:.2f}, agreement {r['rho_agreement']:.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())
