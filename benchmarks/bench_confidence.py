"""Does the confidence predict the error, within one video? And do the suggested keyframes
help more than evenly spaced or random ones?

On the 8 DAVIS-2016 development sequences (ground truth on every frame):

    # 1. every propagated frame's measures and true J (frame 0 alone, keyframes every 20);
    #    written after each run: the same command again resumes an interrupted dump
    python benchmarks/bench_confidence.py dump --short-side 240 \\
        --out benchmarks/results-confidence-signals-240.json
    # 2. leave-one-sequence-out: fit on 7, score on the 8th; per-video Spearman, MAE,
    #    lost-flag precision / recall / lead; --write ships the fit on all 8
    python benchmarks/bench_confidence.py score benchmarks/results-confidence-signals-*.json
    # 3. a simulated annotator: three keyframes added, suggested / uniform / random
    python benchmarks/bench_confidence.py loop --short-side 240 \\
        --signals benchmarks/results-confidence-signals-240.json \\
        --out benchmarks/results-confidence-loop-240.json
    # (in parallel: --sequences a,b,... into several --out files, then
    #  python benchmarks/bench_confidence.py table FILE... --short-side 240)

Every number is per video, then averaged over the videos (never pooled over videos: easy
videos have high J and high confidence, which says nothing about which frame to open).
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
DATA = Path(os.environ.get("SFCPROP_DATA", ROOT.parent / "shared" / "data")) / "davis2016"
MEASURES = ("certainty", "area", "agreement", "growth", "similarity", "distance")
BAD_J = 0.2


def sequences(root: Path, only: str | None):
    from sfcprop.bench.datasets import read_ids
    from sfcprop.io.frames import list_images

    names = sorted(q.name for q in (root / "JPEGImages" / "480p").iterdir())
    for q in only.split(",") if only else names:
        frames = list_images(root / "JPEGImages" / "480p" / q)
        gt = [read_ids(m, binary=True) for m in list_images(root / "Annotations/480p" / q)]
        yield q, frames, gt


def jaccard(ids, gt) -> float:
    from sfcprop.bench.metrics import jaccard as j

    return float(j(np.asarray(ids) > 0, np.asarray(gt) > 0))


def session(model, frames, gt, keys, method="calibrated"):
    from sfcprop.session.session import Session

    s = Session(model, frames, confidence=method)
    for k in keys:
        s.annotate(k, gt[k])
    return s


# --------------------------------------------------------------------------- 1. dump


def dump(args) -> int:
    import sfcprop

    model = sfcprop.load_model(args.backbone, short_side=args.short_side)
    path = Path(args.out)
    out = json.loads(path.read_text())["runs"] if path.exists() else []  # resumes
    done = {(r["sequence"], r["spacing"]) for r in out}
    for q, frames, gt in sequences(Path(args.root), args.sequences):
        for spacing in (None, 20):
            if (q, spacing) in done:
                continue
            keys = [0] if spacing is None else list(range(0, len(gt), spacing))
            s = session(model, frames, gt, keys, "certainty-area")
            start = time.perf_counter()
            result = s.result()
            seconds = time.perf_counter() - start
            rows = []
            for t in range(len(gt)):
                if t in keys:
                    continue
                st = s.results[t].stats
                rows.append(
                    {
                        "t": t,
                        "J": jaccard(result.ids[t], gt[t]),
                        **{m: float(getattr(st, m)[0]) for m in MEASURES},
                    }
                )
            out.append({"sequence": q, "spacing": spacing, "seconds": seconds, "frames": rows})
            path.write_text(json.dumps({"short_side": args.short_side, "runs": out}) + "\n")
            label = "frame 0" if spacing is None else f"every {spacing}"
            print(f"{q} {label}: {len(rows)} frames, {seconds:.0f} s", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- 2. score


def stats_of(rows: list[dict]):
    from sfcprop.session.confidence import FrameStats

    cols = {m: np.array([r[m] for r in rows], np.float64) for m in MEASURES}
    drop = np.array([r.get("drop", 0.0) for r in rows], np.float64)
    return FrameStats(np.zeros(len(rows)), **cols, drop=drop)


def add_drops(run: dict) -> None:
    """Each frame's similarity `drop` of a dumped run, as the session computes it: stretch
    by stretch (a stretch starts after each keyframe), in time order."""
    from sfcprop.session.confidence import SimilarityTrend

    trend, last = None, None
    for r in sorted(run["frames"], key=lambda r: r["t"]):
        t, spacing = r["t"], run["spacing"]
        if last != t - 1 or t - 1 == 0 or (spacing and (t - 1) % spacing == 0):
            trend = SimilarityTrend()
        r["drop"] = float(trend.drop(np.array([r["similarity"]]))[0])
        last = t


def fit(rows: list[dict]) -> np.ndarray:
    """Weights of `sigmoid(w . signals)` by least squares against J (scipy)."""
    from scipy.optimize import least_squares

    from sfcprop.session.estimate import sigmoid, signals

    x, j = signals(stats_of(rows)), np.array([r["J"] for r in rows])
    w0 = np.zeros(x.shape[1])
    ridge = 0.1  # weights stay small: 7 sequences are few (of 1e-3 .. 1, leave-one-out)

    def residual(w):
        return np.concatenate([sigmoid(x @ w) - j, ridge * w[1:]])

    return least_squares(residual, w0).x


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


def lead(rows: list[dict], flagged: np.ndarray) -> float | None:
    """Frames by which the first flag precedes (> 0) or follows (< 0) the first frame
    whose J is below `BAD_J`, in the propagation's direction (None: no bad frame)."""
    j = np.array([r["J"] for r in rows])
    if not (j < BAD_J).any():
        return None
    first_bad = int(np.flatnonzero(j < BAD_J)[0])
    if not flagged.any():
        return float("-inf")
    return float(first_bad - int(np.flatnonzero(flagged)[0]))


def score(args) -> int:
    from sfcprop.session.estimate import SIGNALS, estimate

    merged: dict = {}  # dumps of one size (e.g. --sequences split in parallel) scored as one
    for p in args.signals:
        block = json.loads(Path(p).read_text())
        merged.setdefault(block["short_side"], []).extend(block["runs"])
    blocks = [{"short_side": k, "runs": v} for k, v in merged.items()]
    for run in (r for b in blocks for r in b["runs"]):
        add_drops(run)
    table = []
    for block in blocks:
        runs = block["runs"]
        names = sorted({r["sequence"] for r in runs})
        for spacing in (None, 20):
            per = {"calibrated": [], "certainty-area": []}
            for q in names:  # leave q out
                train = [f for r in runs if r["sequence"] != q for f in r["frames"]]
                test = next(r for r in runs if r["sequence"] == q and r["spacing"] == spacing)
                w = fit(train)
                rows = test["frames"]
                j = np.array([r["J"] for r in rows])
                for method in per:
                    c = estimate(stats_of(rows), method, w if method == "calibrated" else None)
                    flagged = c < BAD_J
                    bad = j < BAD_J
                    per[method].append(
                        {
                            "rho": spearman(c, j),
                            "mae": float(np.abs(c - j).mean()),
                            "tp": int((flagged & bad).sum()),
                            "flags": int(flagged.sum()),
                            "bad": int(bad.sum()),
                            "lead": lead(rows, flagged),
                        }
                    )
            for method, rows in per.items():
                table.append(_row(block["short_side"], spacing, method, rows))
    _print(table)
    if args.write:
        every = [f for b in blocks for r in b["runs"] for f in r["frames"]]
        w = fit(every)
        shipped = {
            "signals": list(SIGNALS),
            "weights": [round(float(v), 6) for v in w],
            "fitted_on": f"{len(every)} frames: DAVIS-2016 development sequences "
            f"({', '.join(sorted({r['sequence'] for b in blocks for r in b['runs']}))}), "
            "frame 0 alone and keyframes every 20, short side "
            + ", ".join(str(b["short_side"] or 480) for b in blocks),
            "command": "python benchmarks/bench_confidence.py score "
            + " ".join(Path(p).name for p in args.signals)
            + " --write",
        }
        path = ROOT / "sfcprop" / "session" / "confidence.json"
        path.write_text(json.dumps(shipped, indent=1) + "\n")
        print(f"wrote {path}")
    return 0


def _row(short_side, spacing, method, rows) -> dict:
    rho = [r["rho"] for r in rows if not np.isnan(r["rho"])]
    tp, flags, bad = (sum(r[k] for r in rows) for k in ("tp", "flags", "bad"))
    leads = [r["lead"] for r in rows if r["lead"] is not None]
    return {
        "size": f"{short_side or 480}p",
        "keyframes": "frame 0" if spacing is None else f"every {spacing}",
        "method": method,
        "rho": float(np.mean(rho)) if rho else float("nan"),
        "mae": float(np.mean([r["mae"] for r in rows])),
        "precision": tp / flags if flags else float("nan"),
        "recall": tp / bad if bad else float("nan"),
        "bad": bad,
        "leads": leads,
    }


def _print(table: list[dict]) -> None:
    print("per-video Spearman (mean over videos), MAE, lost flag (estimate < 0.2) against J < 0.2")
    print("| size | keyframes | confidence | Spearman | MAE | lost P / R (frames J<0.2) | lead |")
    print("|---|---|---|---|---|---|---|")
    for r in table:
        leads = ", ".join("never" if v == float("-inf") else f"{v:+.0f}" for v in r["leads"])
        print(
            f"| {r['size']} | {r['keyframes']} | {r['method']} | {r['rho']:.2f} | "
            f"{r['mae']:.3f} | {r['precision']:.2f} / {r['recall']:.2f} ({r['bad']}) | "
            f"{leads or '-'} |"
        )


# --------------------------------------------------------------------------- 3. loop


def jf(result, gt) -> float:
    """Mean (J + F) / 2 of frames 1.. (frame 0 is the given keyframe)."""
    from sfcprop.bench.metrics import f_measure
    from sfcprop.bench.metrics import jaccard as jac

    ids = result.ids.numpy()
    pairs = [(ids[t] > 0, gt[t] > 0) for t in range(1, len(gt))]
    return float(np.mean([(jac(a, b) + f_measure(a, b)) / 2 for a, b in pairs]))


def cached_session(model, frames, gt, keys, cache):
    """A session over `cache`, a `FeatureCache` filled with every frame's features once."""
    s = session(model, frames, gt, keys)
    s.features, s._cache_limit = cache, cache.limit
    for t in range(len(gt)):
        cache.get(t, lambda t=t: model.encode(s.store[t]))
    return s


def loop(args) -> int:
    """From frame 0's ground truth, three keyframes added one at a time: the suggested
    frame (its confidence from weights fitted on the other 7 sequences), uniformly spaced
    frames, random frames (3 seeds); J&F of all frames after each. Features are computed
    once per sequence and shared by every session (so the times are propagation only)."""
    import sfcprop
    from sfcprop.session import estimate
    from sfcprop.session.cache import FeatureCache

    model = sfcprop.load_model(args.backbone, short_side=args.short_side)
    runs = json.loads(Path(args.signals).read_text())["runs"]
    path = Path(args.out)
    done = json.loads(path.read_text()) if path.exists() else {}  # resumes: q -> its runs
    for q, frames, gt in sequences(Path(args.root), args.sequences):
        if q in done:
            continue
        w = fit([f for r in runs if r["sequence"] != q for f in r["frames"]])
        estimate.calibration = lambda w=w: {"weights": list(w)}  # leave q out
        n, cache = len(gt), FeatureCache(8 << 30)

        results: dict[str, list[list[float]]] = {}
        seconds: list[float] = []
        strategies = {"suggested": None, "uniform": None}
        strategies.update({f"random {seed}": seed for seed in range(3)})
        for name, seed in strategies.items():
            s = cached_session(model, frames, gt, [0], cache)
            scores = [jf(s.result(), gt)]
            rng = np.random.default_rng(seed)
            for k in range(1, 4):
                start = time.perf_counter()
                if name == "uniform":  # k keyframes evenly spaced after frame 0
                    uniform = [0, *(round(i * n / (k + 1)) for i in range(1, k + 1))]
                    s = cached_session(model, frames, gt, uniform, cache)
                else:
                    if name == "suggested":
                        t = s.suggest_keyframes(1)[0]
                    else:
                        t = int(rng.choice([f for f in range(1, n) if f not in s.keyframes]))
                    s.annotate(t, gt[t])
                scores.append(jf(s.result(), gt))
                if name == "suggested":
                    seconds.append(time.perf_counter() - start)
            results.setdefault(name.split()[0], []).append(scores)
        done[q] = {"scores": results, "seconds": seconds}
        path.write_text(json.dumps(done) + "\n")
        print(f"{q}: " + ", ".join(f"{k} {np.mean(v, 0)[-1]:.3f}" for k, v in results.items()))
    return loop_table(done, args.short_side)


def loop_table(done: dict, short_side: int | None) -> int:
    """The annotator loop's table: each strategy's J&F per video (random: the mean of its
    seeds), then the mean over the videos."""
    names = list(next(iter(done.values()))["scores"])
    size = f"{short_side}p" if short_side else "480p"
    print(f"J&F (x100) of frames 1.., mean over {len(done)} videos ({size}), after 0-3 keyframes")
    print("| strategy | +0 | +1 | +2 | +3 |")
    print("|---|---|---|---|---|")
    for name in names:
        per_video = [np.mean(np.array(d["scores"][name]), axis=0) for d in done.values()]
        mean = 100 * np.mean(per_video, axis=0)
        label = "random (3 seeds)" if name == "random" else name
        print(f"| {label} | " + " | ".join(f"{v:.1f}" for v in mean) + " |")
    seconds = [s for d in done.values() for s in d["seconds"]]
    print(
        f"one correction (suggest, annotate, result; features cached): "
        f"{np.mean(seconds):.1f} s mean, {np.max(seconds):.1f} s at most"
    )
    return 0


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="mode", required=True)
    for mode in ("dump", "loop"):
        m = sub.add_parser(mode)
        m.add_argument("--root", default=str(DATA))
        m.add_argument("--backbone", default="fc")
        m.add_argument("--short-side", type=int, help="default: native 480p")
        m.add_argument("--sequences", help="comma-separated subset")
        m.add_argument("--threads", type=int, default=1)
        if mode == "dump":
            m.add_argument("--out", required=True)
        else:
            m.add_argument("--signals", required=True, help="the dump to fit the weights on")
            m.add_argument("--out", required=True, help="per-video results (resumes from it)")
    m = sub.add_parser("table", help="the loop's table from one or more of its --out files")
    m.add_argument("loops", nargs="+")
    m.add_argument("--short-side", type=int)
    m = sub.add_parser("score")
    m.add_argument("signals", nargs="+")
    m.add_argument("--write", action="store_true", help="ship the fit on every sequence")
    args = p.parse_args()
    if args.mode == "table":
        merged = {q: d for f in args.loops for q, d in json.loads(Path(f).read_text()).items()}
        return loop_table(merged, args.short_side)
    if args.mode != "score":
        torch.set_num_threads(args.threads)
    return {"dump": dump, "score": score, "loop": loop}[args.mode](args)


if __name__ == "__main__":
    raise SystemExit(main())
