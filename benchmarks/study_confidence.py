"""Which per-frame confidence ranks frames by their true J best: a study of the measures
`benchmarks/bench_keyframes.py` writes for every frame (its `<json>.frames.json`).

For each model and keyframe spacing, the Spearman rank correlation with the true per-frame
J (pooled over the sequences' non-keyframe frames) of candidate combinations of the
measures of `sfcprop.session.confidence` (certainty, area ratio, forward/backward agreement), and
the precision / recall of the "lost" flag (area ratio below a threshold) against frames
with J < 0.2.

    python benchmarks/study_confidence.py benchmarks/results-keyframes.frames.json
"""

from __future__ import annotations

import json
import sys

import numpy as np
from scipy.stats import spearmanr

CANDIDATES = {
    "certainty": lambda c, a, g: c,
    "area": lambda c, a, g: a,
    "certainty*agreement": lambda c, a, g: c * g,
    "certainty*area*agreement": lambda c, a, g: c * a * g,
    "certainty*min(1,area/0.25)": lambda c, a, g: c * np.minimum(1, a / 0.25),  # shipped
    "certainty*min(1,area/0.5)": lambda c, a, g: c * np.minimum(1, a / 0.5),
    "certainty*min(1,area/0.25)*agreement": lambda c, a, g: c * np.minimum(1, a / 0.25) * g,
}
LOST_AREAS = (0.05, 0.1, 0.2)


def main(path: str) -> int:
    with open(path) as f:
        blocks = json.load(f)
    print("rank correlation with the true per-frame J (Spearman), pooled over the sequences")
    print(" | ".join(["model", "keyframes", *CANDIDATES]))
    for b in blocks:
        seqs = b["sequences"].values()
        j = np.concatenate([s["J_per_frame"] for s in seqs])
        c, a, g = (np.concatenate([s["measures"][m] for s in seqs]) for m in MEASURES)
        rho = [spearmanr(f(c, a, g), j).statistic for f in CANDIDATES.values()]
        label = "frame 0 only" if b["spacing"] is None else f"every {b['spacing']}"
        print(" | ".join([b["model"], label, *(f"{r:.2f}" for r in rho)]))
    print("\nlost flag (area ratio below the threshold) against frames with J < 0.2: P / R")
    for b in blocks:
        seqs = b["sequences"].values()
        bad = np.concatenate([s["J_per_frame"] for s in seqs]) < 0.2
        a = np.concatenate([s["measures"]["area"] for s in seqs])
        cells = []
        for t in LOST_AREAS:
            lost = a < t
            p = (lost & bad).sum() / lost.sum() if lost.sum() else float("nan")
            r = (lost & bad).sum() / bad.sum() if bad.sum() else float("nan")
            cells.append(f"<{t}: {p:.2f} / {r:.2f}")
        label = "frame 0 only" if b["spacing"] is None else f"every {b['spacing']}"
        print(f"{b['model']} {label} ({int(bad.sum())} frames with J < 0.2): " + ", ".join(cells))
    return 0


MEASURES = ("certainty", "area", "agreement")

if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results-keyframes.frames.json"))
