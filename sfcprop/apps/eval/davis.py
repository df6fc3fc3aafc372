"""`sfcprop eval davis`: the official davis2017-evaluation semi-supervised mode (first and
last frame not scored); results as palette PNGs `<out>/<seq>/<frame>.png`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from sfcprop.apps.eval import common
from sfcprop.bench import datasets, metrics


def _propagate(seq: datasets.MaskSequence, out: Path, n: int, model: common._Model) -> None:
    from sfcprop.io import DAVIS_PALETTE, write_mask
    from sfcprop.session import propagate

    ids0, palette = seq.read_first()
    result = propagate(
        list(seq.frames[:n]),
        ids0,
        model.backbone,
        model.semantic,
        preset=common.protocol(model),
        progress=not model.quiet,
    )

    def write(folder: Path) -> None:
        for name, ids in zip(seq.frame_names[:n], result.ids, strict=True):
            write_mask(folder / f"{name}.png", ids.numpy(), palette or DAVIS_PALETTE)

    common.write_atomically(out / seq.name, write)


def score_davis_sequence(
    seq: datasets.MaskSequence, results: Path, max_frames: int | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-object per-frame `{"<seq>_<k>": (J [T'], F [T'])}` of `results/<seq>/*.png`
    over the annotated frames but the first and the last (official semi-supervised)."""
    n = common.frame_count(seq, max_frames)
    gt0 = seq.read_annotation(0)
    objects = gt0[gt0 != 255]  # 255: void, background for scoring (as the official tool)
    n_objects = int(objects.max()) if objects.size else 0
    if n_objects == 0:
        raise ValueError(f"{seq.name}: the first annotation {seq.annotations[0]} has no object")
    scored = [t for t in range(1, n - 1) if seq.annotations[t] is not None]
    j = np.zeros((n_objects, len(scored)))
    f = np.zeros((n_objects, len(scored)))
    for i, t in enumerate(scored):
        path = results / seq.name / f"{seq.frame_names[t]}.png"
        if not path.is_file():
            raise FileNotFoundError(f"missing result mask: {path}")
        pred = datasets.read_ids(path, binary=seq.binary)
        j[:, i], f[:, i] = metrics.frame_scores(pred, seq.read_annotation(t), n_objects)
    return {f"{seq.name}_{k + 1}": (j[k], f[k]) for k in range(n_objects)}


def _report(per_object: dict, split: str, out: Path) -> dict[str, float]:
    table = metrics.davis_summary(per_object)
    common.write_csv(out / f"global_results-{split}.csv", metrics.DAVIS_MEASURES, [table.values()])
    stats = {
        k: (metrics.statistics(j), metrics.statistics(fv)) for k, (j, fv) in per_object.items()
    }
    common.write_csv(
        out / f"per-sequence_results-{split}.csv",
        ("Sequence", "J-Mean", "F-Mean"),
        [(k, js[0], fs[0]) for k, (js, fs) in stats.items()],
    )
    common.write_csv(
        out / f"per-object_metrics-{split}.csv",
        ("Object", "Frames", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"),
        [(k, len(per_object[k][0]), *js, *fs) for k, (js, fs) in stats.items()],
    )
    by_seq: dict[str, list[str]] = {}
    for k in per_object:
        by_seq.setdefault(k.rsplit("_", 1)[0], []).append(k)
    seq_rows = []
    for s, objs in by_seq.items():
        jm = float(np.mean([stats[k][0][0] for k in objs]))
        fm = float(np.mean([stats[k][1][0] for k in objs]))
        seq_rows.append((s, len(objs), (jm + fm) / 2, jm, fm))
    common.write_csv(
        out / f"sequence_metrics-{split}.csv",
        ("Sequence", "Objects", "J&F-Mean", "J-Mean", "F-Mean"),
        seq_rows,
    )
    common.print_table(f"Global results for {split}", metrics.DAVIS_MEASURES, [table.values()])
    common.print_table(
        f"Per sequence results for {split}",
        ("Sequence", "J-Mean", "F-Mean"),
        [(k, js[0], fs[0]) for k, (js, fs) in stats.items()],
    )
    return table


def run(
    args, reader, dist: common.Dist, results: Path, model: common._Model | None, report: Path
) -> int:
    """Propagate this rank's missing sequences (unless only scoring), score its share;
    rank 0 writes the tables of all."""
    mine = dist.share(reader.names)
    if model is not None:
        for name in common.bar(mine, args.quiet or dist.rank != 0, desc="sequences", unit="seq"):
            seq = reader[name]
            n = common.frame_count(seq, args.max_frames)
            if not common.complete(results / name, [f"{s}.png" for s in seq.frame_names[:n]]):
                _propagate(seq, results, n, model)
    scores: dict = {}
    for name in common.bar(mine, args.quiet or dist.rank != 0, desc="scoring", unit="seq"):
        scores.update(score_davis_sequence(reader[name], results, args.max_frames))
    gathered = dist.gather(scores)
    if dist.rank == 0:
        merged = {k: v for part in gathered for k, v in part.items()}
        ordered = {k: merged[k] for k in sorted(merged, key=_object_key(reader.names))}
        _report(ordered, args.split or "val", report)
    return 0


def _object_key(names: Sequence[str]) -> Callable[[str], tuple[int, int]]:
    order = {n: i for i, n in enumerate(names)}

    def key(obj: str) -> tuple[int, int]:
        seq, k = obj.rsplit("_", 1)
        return order[seq], int(k)

    return key
