"""`sfcprop eval`: propagate a benchmark's sequences, write the results, score them.

    sfcprop eval davis --root DAVIS --backbone fc --out runs/davis-fc
    sfcprop eval davis --root DAVIS --results runs/davis-fc        # score existing results
    sfcprop eval jhmdb --root JHMDB --split test.txt --backbone crw --out runs/jhmdb
    torchrun --nproc_per_node 4 -m sfcprop.apps.evaluate davis --root DAVIS --backbone fc --out o

Results are written in the official layouts: DAVIS and VIP as palette PNGs
`<out>/<seq>/<frame>.png` (the first annotation's palette), JHMDB as
`<out>/<action>/<clip>/keypoints.npz` (`points` [T, K, 2] (x, y) pixels, NaN = not found,
`confidence` [T, K]). A sequence is written to a temporary folder and renamed into place
when complete, so a rerun skips finished sequences and redoes any other. Under torchrun
each rank propagates and scores a share of the sequences; rank 0 gathers the scores and
writes the tables (`--out`, or the `--results` folder).

Protocols: DAVIS as the official davis2017-evaluation semi-supervised mode (first and
last frame not scored); a DAVIS-2016 folder scores its one (union) object, propagating the
binary first mask (`--first-mask multi` propagates `Annotations2017first` instead and
scores the union of the predicted objects). JHMDB: frames resized to 320x320, joints
encoded on the grid, propagated as soft maps, PCK@0.1/0.2 over all frames but each clip's
first, joints not found dropped (as CRW). VIP: frames resized to a 560 short side, soft
labels upsampled to the annotation's size and arg-maxed, mIoU over 20 classes (background
included) from one confusion matrix over every annotated frame but each video's first.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sfcprop import errors
from sfcprop.bench import datasets, metrics
from sfcprop.config import Config, add_arguments
from sfcprop.io import runs
from sfcprop.labels import keypoints

TASKS = ("davis", "jhmdb", "vip")
CONFIG_FILE = "sfcprop-eval.json"

EPILOG = """examples:
  sfcprop eval davis --root DAVIS --backbone fc --out runs/davis-fc
  sfcprop eval davis --root DAVIS --backbone fc --out runs/davis-fc --device cuda
  sfcprop eval davis --root DAVIS --results runs/davis-fc     # score existing results
  sfcprop eval davis --root DAVIS --backbone fc --out smoke --sequences dog --max-frames 5
  sfcprop eval jhmdb --root JHMDB --split test.txt --backbone crw --out runs/jhmdb
  sfcprop eval vip --root VIP --backbone fc --semantic imagenet-r50 --out runs/vip
  torchrun --nproc_per_node 4 -m sfcprop.apps.evaluate davis --root DAVIS --backbone fc \\
      --out runs/davis-fc --device cuda

Runs on the CPU unless --device says otherwise. A second run into an --out that another
is writing fails at once. A rerun into the same --out skips the
finished sequences (its settings must match those of sfcprop-eval.json there, written
once the backbone, the root and the sequences were found). Exit codes: 0 ok, 1 bad input
or failed run, 2 usage."""


# --------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sfcprop eval",
        description="Propagate a benchmark's first-frame labels, write results, score them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("task", choices=TASKS)
    p.add_argument("--root", required=True, help="the dataset folder")
    p.add_argument("--backbone", help="registry name or checkpoint file")
    p.add_argument("--semantic", help="second (semantic) backbone to fuse, SFC")
    p.add_argument("--preset", help="parameter preset (default: <task>, or <task>-sfc fused)")
    p.add_argument("--out", help="output folder (results, tables)")
    p.add_argument("--results", help="score this results folder instead of propagating")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--sequences", help="comma-separated subset of the split")
    p.add_argument("--split", help="davis/vip: split name (val); jhmdb: a split list file")
    p.add_argument("--max-frames", type=int, help="only the first N frames (smoke tests)")
    p.add_argument("--bn-warmup", action="store_true", help="SFC's BatchNorm warm-up quirk")
    add_arguments(p, skip=("device", "max_memory"))
    g = p.add_argument_group("davis")
    g.add_argument("--year", choices=("auto", "2016", "2017"), default="auto")
    g.add_argument(
        "--first-mask",
        choices=("binary", "multi"),
        default="binary",
        help="DAVIS-2016 folders: propagate the binary mask or Annotations2017first",
    )
    g = p.add_argument_group("vip")
    g.add_argument("--classes", type=int, default=20, help="vip: classes incl. background")
    g.add_argument(
        "--vip-label-quirk",
        action="store_true",
        help="vip: resize the first label image bilinearly, as CRW's loader does by accident "
        "(blended boundary values become extra classes; needed to match CRW exactly)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of `sfcprop eval`; returns the exit status (see `sfcprop.errors`)."""
    return errors.run_command(lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.results is None and (args.backbone is None or args.out is None):
        raise errors.UsageError("eval needs --backbone and --out (or --results to score results)")
    errors.require_device(args.device)
    return _run(args)


# --------------------------------------------------------------------------- distribution


@dataclass
class Dist:
    """This process's place among torchrun's ranks (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1

    def share(self, names: Sequence[str]) -> list[str]:
        return list(names[self.rank :: self.world])

    def gather(self, obj: Any) -> list[Any]:
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self, together: bool = True) -> None:
        """End the process group; `together`: wait for every rank first (a rank that tears
        gloo down while a peer is still sending can abort), skipped after an error."""
        if self.world > 1:
            import torch.distributed as dist

            if together:
                dist.barrier()
            dist.destroy_process_group()


def _setup(device: str | None) -> tuple[Dist, torch.device]:
    """This process's rank and device (the CPU unless `device` names another)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = device is not None and device.startswith("cuda")
    if world == 1:
        return Dist(), torch.device(device or "cpu")
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size()), torch.device(
        f"cuda:{local}" if cuda else "cpu"
    )


# --------------------------------------------------------------------------- shared steps


def _bar(iterable: Iterable, quiet: bool, desc: str, unit: str) -> Iterable:
    from sfcprop.io.progress import bar

    return bar(iterable, enabled=not quiet, desc=desc, unit=unit)


def write_atomically(final: Path, write: Callable[[Path], None]) -> None:
    """Run `write(tmp_dir)`, then move the folder to `final` (replacing a leftover); the
    staging folders of killed runs are removed (see `sfcprop.io.runs`)."""
    with runs.staging(final) as tmp:
        write(tmp)


def _frames(seq, max_frames: int | None) -> int:
    n = len(seq.frames)
    return n if max_frames is None else max(1, min(n, max_frames))


def _complete(folder: Path, files: Iterable[str]) -> bool:
    return folder.is_dir() and all((folder / f).is_file() for f in files)


def _check_config(out: Path, config: dict) -> None:
    """Refuse to resume into a folder written with other settings."""
    path = out / CONFIG_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        if old != config:
            diff = {k: (old.get(k), v) for k, v in config.items() if old.get(k) != v}
            raise ValueError(
                f"{out} holds results of other settings {diff} (was, now); use another --out"
            )


def _record_config(out: Path, config: dict, dist: Dist) -> None:
    """Write the settings of a run that is about to start work (rank 0)."""
    if dist.rank == 0 and not (out / CONFIG_FILE).is_file():
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n")
    dist.barrier()


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    def fmt(v: Any) -> Any:
        return f"{v:.6f}" if isinstance(v, (float, np.floating)) else v

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows([fmt(v) for v in row] for row in rows)


def _print_table(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    rows = [
        [f"{v:.3f}" if isinstance(v, (float, np.floating)) else str(v) for v in r] for r in rows
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"{'-' * 12} {title} {'-' * 12}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for r in rows:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))
    print()


@dataclass
class _Model:
    """What propagation needs: the networks, the preset and the overrides."""

    backbone: Any
    semantic: Any
    preset: str
    params: dict
    device: torch.device
    quiet: bool


def _model(args: argparse.Namespace, device: torch.device) -> _Model:
    from sfcprop.models import backbone as load

    def get(name: str | None):
        return None if name is None else load(name, sfc_bn_warmup=args.bn_warmup, device=device)

    quiet = args.quiet or int(os.environ.get("RANK", "0")) != 0
    preset, params = _settings(args)
    return _Model(get(args.backbone), get(args.semantic), preset, params, device, quiet)


def _settings(args: argparse.Namespace) -> tuple[str, dict]:
    """The preset's name and the `Config` overrides the flags give."""
    preset = args.preset or (args.task if args.semantic is None else f"{args.task}-sfc")
    names = ("topk", "context", "radius", "temperature", "lam", "resize", "size", "short_side")
    params = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    params["precision"] = args.precision or "float32"
    return preset, params


def _protocol(model: _Model) -> Config:
    """The run's `Config`: the model's preset and overrides (jhmdb / vip presets: square
    frames of 320 / 560 unless --size or --short-side say otherwise), on its device; frames
    resized as CRW does (float, no antialiasing) unless --resize says otherwise."""
    params = {"resize": "float", **model.params}
    return Config.preset(model.preset, device=str(model.device), **params)


def _config(args: argparse.Namespace) -> dict:
    keys = ("task", "backbone", "semantic", "preset", "bn_warmup", "topk", "context", "radius")
    keys += ("temperature", "lam", "year", "first_mask", "size", "short_side")
    config = {k: getattr(args, k) for k in keys}
    config["size"] = None if args.size is None else list(args.size)  # as JSON reads it back
    if args.resize is not None:  # (folders written before this option have none)
        config["resize"] = args.resize
    if getattr(args, "vip_label_quirk", False):
        config["vip_label_quirk"] = True
    if args.precision not in (None, "float32"):  # (folders written before this option are float32)
        config["precision"] = args.precision
    return config


# --------------------------------------------------------------------------- DAVIS


def _propagate_davis(seq: datasets.MaskSequence, out: Path, n: int, model: _Model) -> None:
    from sfcprop.io import DAVIS_PALETTE, write_mask
    from sfcprop.session import propagate

    ids0, palette = seq.read_first()
    result = propagate(
        list(seq.frames[:n]),
        ids0,
        model.backbone,
        model.semantic,
        preset=_protocol(model),
        progress=not model.quiet,
    )

    def write(folder: Path) -> None:
        for name, ids in zip(seq.frame_names[:n], result.ids, strict=True):
            write_mask(folder / f"{name}.png", ids.numpy(), palette or DAVIS_PALETTE)

    write_atomically(out / seq.name, write)


def score_davis_sequence(
    seq: datasets.MaskSequence, results: Path, max_frames: int | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-object per-frame `{"<seq>_<k>": (J [T'], F [T'])}` of `results/<seq>/*.png`
    over the annotated frames but the first and the last (official semi-supervised)."""
    n = _frames(seq, max_frames)
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


def _report_davis(per_object: dict, split: str, out: Path) -> dict[str, float]:
    table = metrics.davis_summary(per_object)
    _write_csv(out / f"global_results-{split}.csv", metrics.DAVIS_MEASURES, [table.values()])
    stats = {
        k: (metrics.statistics(j), metrics.statistics(fv)) for k, (j, fv) in per_object.items()
    }
    _write_csv(
        out / f"per-sequence_results-{split}.csv",
        ("Sequence", "J-Mean", "F-Mean"),
        [(k, js[0], fs[0]) for k, (js, fs) in stats.items()],
    )
    _write_csv(
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
    _write_csv(
        out / f"sequence_metrics-{split}.csv",
        ("Sequence", "Objects", "J&F-Mean", "J-Mean", "F-Mean"),
        seq_rows,
    )
    _print_table(f"Global results for {split}", metrics.DAVIS_MEASURES, [table.values()])
    _print_table(
        f"Per sequence results for {split}",
        ("Sequence", "J-Mean", "F-Mean"),
        [(k, js[0], fs[0]) for k, (js, fs) in stats.items()],
    )
    return table


def _run_davis(args, reader, dist: Dist, results: Path, model: _Model | None, report: Path) -> int:
    mine = dist.share(reader.names)
    if model is not None:
        for name in _bar(mine, args.quiet or dist.rank != 0, desc="sequences", unit="seq"):
            seq = reader[name]
            n = _frames(seq, args.max_frames)
            if not _complete(results / name, [f"{s}.png" for s in seq.frame_names[:n]]):
                _propagate_davis(seq, results, n, model)
    scores: dict = {}
    for name in _bar(mine, args.quiet or dist.rank != 0, desc="scoring", unit="seq"):
        scores.update(score_davis_sequence(reader[name], results, args.max_frames))
    gathered = dist.gather(scores)
    if dist.rank == 0:
        merged = {k: v for part in gathered for k, v in part.items()}
        ordered = {k: merged[k] for k in sorted(merged, key=_object_key(reader.names))}
        _report_davis(ordered, args.split or "val", report)
    return 0


def _object_key(names: Sequence[str]) -> Callable[[str], tuple[int, int]]:
    order = {n: i for i, n in enumerate(names)}

    def key(obj: str) -> tuple[int, int]:
        seq, k = obj.rsplit("_", 1)
        return order[seq], int(k)

    return key


# --------------------------------------------------------------------------- JHMDB


def _propagate_jhmdb(seq: datasets.KeypointSequence, out: Path, n: int, model: _Model):
    from sfcprop.io import read_image
    from sfcprop.session import propagate_soft

    first = read_image(seq.frames[0])
    hw = tuple(first.shape[1:])
    config = _protocol(model)
    grid = keypoints.grid_size(config.encoded_size(*hw))
    first_soft = keypoints.encode_keypoints(seq.first_keypoints, hw, grid)
    soft = propagate_soft(
        [read_image(p) for p in seq.frames[:n]],  # resized by the propagator (CRW's policy)
        first_soft,
        model.backbone,
        model.semantic,
        preset=config,
        progress=not model.quiet,
    )
    decoded = [keypoints.decode_keypoints(s, hw) for s in soft]
    points = np.stack([p for p, _ in decoded])
    confidence = np.stack([c for _, c in decoded])

    def write(folder: Path) -> None:
        np.savez(folder / "keypoints.npz", points=points, confidence=confidence)

    write_atomically(out / seq.name, write)


def read_keypoint_results(results: Path, seq: datasets.KeypointSequence, n: int) -> np.ndarray:
    """Predicted points `[n, K, 2]` of `results/<seq>/keypoints.npz`."""
    path = results / seq.name / "keypoints.npz"
    if not path.is_file():
        raise FileNotFoundError(f"missing keypoint results: {path}")
    with np.load(path) as z:
        points = z["points"]
    if len(points) < n or points.shape[1:] != seq.keypoints.shape[1:]:
        raise ValueError(
            f"{path}: points {points.shape}, expected [{n}, *{seq.keypoints.shape[1:]}]"
        )
    return points[:n]


def _run_jhmdb(args, reader, dist: Dist, results: Path, model: _Model | None, report: Path) -> int:
    mine = dist.share(reader.names)
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in _bar(mine, args.quiet or dist.rank != 0, desc="clips", unit="clip"):
        seq = reader[name]
        n = _frames(seq, args.max_frames)
        if model is not None and not _complete(results / name, ["keypoints.npz"]):
            _propagate_jhmdb(seq, results, n, model)
        pred = read_keypoint_results(results, seq, n)
        pairs[name] = (pred[1:n], seq.keypoints[1:n])
    gathered = dist.gather(pairs)
    if dist.rank != 0:
        return 0
    merged = {k: v for part in gathered for k, v in part.items()}
    merged = {k: merged[k] for k in reader.names if k in merged}
    pred = np.concatenate([p for p, _ in merged.values()])
    gt = np.concatenate([g for _, g in merged.values()])
    alphas = (0.1, 0.2)
    table = {f"PCK@{a}": metrics.pck(pred, gt, a) for a in alphas}
    header = ("Clip", *table)
    rows = [(k, *(metrics.pck(p, g, a) for a in alphas)) for k, (p, g) in merged.items()]
    _write_csv(report / "global_results-pck.csv", list(table), [table.values()])
    _write_csv(report / "per-clip_results-pck.csv", header, rows)
    joints = np.stack([metrics.pck_per_joint(pred, gt, a) for a in alphas], axis=1)
    _write_csv(
        report / "per-joint_results-pck.csv",
        ("Joint", *table),
        [(j, *r) for j, r in enumerate(joints)],
    )
    counted = int((~np.isnan(metrics.pck_distances(pred, gt))).sum())
    print(
        f"{len(merged)} clips, {len(pred)} frames scored; {counted} of {gt.shape[0] * gt.shape[1]}"
        " joints counted (the others were not found, as CRW drops them); PCK in percent"
    )
    _print_table("JHMDB PCK", list(table), [table.values()])
    return 0


# --------------------------------------------------------------------------- VIP


def _propagate_vip(seq: datasets.MaskSequence, out: Path, n: int, model: _Model, args) -> None:
    from sfcprop.io import DAVIS_PALETTE, read_image, write_mask
    from sfcprop.session import propagate

    ids0, palette = seq.read_first()
    hw = ids0.shape
    config = _protocol(model)
    frames = [read_image(p) for p in seq.frames[:n]]  # resized by the propagator (CRW's policy)
    if args.vip_label_quirk:  # the label image resized bilinearly (CRW's cv2.resize quirk)
        from sfcprop.labels.codecs import MaskCodec
        from sfcprop.session import Session

        codec = MaskCodec(bilinear_ids_at=config.encoded_size(*hw))
        session = Session(frames, model.backbone, model.semantic, preset=config, codec=codec)
        session.annotate(0, ids0)
        result = session.result(return_soft=True)
    else:  # ids0 resized to the frames' grid: nearest, then bilinear to the grid
        result = propagate(
            frames,
            ids0,
            model.backbone,
            model.semantic,
            preset=config,
            return_soft=True,
            progress=not model.quiet,
        )
    lut = torch.tensor(result.label_ids, dtype=torch.uint8)

    def write(folder: Path) -> None:
        # every frame, frame 0 included, as the original writes it: argmax of the soft
        # labels upsampled (frame 0: its given labels down to the grid and back up)
        for t, name in enumerate(seq.frame_names[:n]):
            up = F.interpolate(result.soft[t][None], size=hw, mode="bilinear", align_corners=False)
            ids = lut[up[0].argmax(0)].numpy()
            write_mask(folder / f"{name}.png", ids, palette or DAVIS_PALETTE)

    write_atomically(out / seq.name, write)


def score_vip_sequence(
    seq: datasets.MaskSequence, results: Path, n_classes: int = 20, max_frames: int | None = None
) -> np.ndarray:
    """Confusion matrix `[n, n]` of `results/<seq>/*.png` over the annotated frames, frame 0
    included (CRW's eval_vip.py scores every written PNG; frame 0 is written as the
    original writes it, see `_propagate_vip`)."""
    conf = np.zeros((n_classes, n_classes), dtype=np.int64)
    for t in range(_frames(seq, max_frames)):
        if seq.annotations[t] is None:
            continue
        path = results / seq.name / f"{seq.frame_names[t]}.png"
        if not path.is_file():
            raise FileNotFoundError(f"missing result mask: {path}")
        conf += metrics.confusion_matrix(seq.read_annotation(t), datasets.read_ids(path), n_classes)
    return conf


def _run_vip(args, reader, dist: Dist, results: Path, model: _Model | None, report: Path) -> int:
    mine = dist.share(reader.names)
    confs: dict[str, np.ndarray] = {}
    for name in _bar(mine, args.quiet or dist.rank != 0, desc="videos", unit="video"):
        seq = reader[name]
        n = _frames(seq, args.max_frames)
        if model is not None and not _complete(
            results / name, [f"{s}.png" for s in seq.frame_names[:n]]
        ):
            _propagate_vip(seq, results, n, model, args)
        confs[name] = score_vip_sequence(seq, results, args.classes, args.max_frames)
    gathered = dist.gather(confs)
    if dist.rank != 0:
        return 0
    merged = {k: v for part in gathered for k, v in part.items()}
    total = sum(merged.values())
    miou = metrics.mean_iou(total)
    _write_csv(report / "global_results-miou.csv", ("mIoU",), [(miou,)])
    _write_csv(
        report / "per-class_results-miou.csv",
        ("Class", "IoU"),
        enumerate(metrics.class_iou(total).tolist()),
    )
    _write_csv(
        report / "per-video_results-miou.csv",
        ("Video", "mIoU"),
        [(k, metrics.mean_iou(merged[k])) for k in reader.names if k in merged],
    )
    _print_table("VIP", ("mIoU",), [(miou,)])
    return 0


# --------------------------------------------------------------------------- driver


def _reader(args: argparse.Namespace) -> datasets.Reader:
    """The task's dataset, its split and `--sequences` checked."""
    subset = args.sequences.split(",") if args.sequences else None
    if args.task == "davis":
        split = args.split or "val"
        return datasets.davis(args.root, split, args.year, args.first_mask, sequences=subset)
    if args.task == "jhmdb":
        return datasets.JHMDB(args.root, args.split, sequences=subset)
    return datasets.VIP(args.root, args.split or "val", sequences=subset)


def _run(args: argparse.Namespace) -> int:
    """Check everything a run needs (settings, dataset, backbones), record the settings,
    then propagate what is missing and score."""
    dist, device = _setup(args.device)
    ok = False
    one_writer = args.out is not None and dist.rank == 0  # one run at a time into --out
    with runs.locked(args.out) if one_writer else contextlib.nullcontext():
        try:
            status = _run_locked(args, dist, device)
            ok = True
            return status
        finally:
            dist.close(together=ok)


def _run_locked(args: argparse.Namespace, dist: Dist, device: torch.device) -> int:
    """`_run`'s work, with --out locked."""
    if args.results is not None:
        results = Path(args.results)
        if not results.is_dir():
            raise FileNotFoundError(f"missing results folder: {results}")
        reader, model = _reader(args), None
    else:
        results, config = Path(args.out), _config(args)
        _check_config(results, config)
        reader = _reader(args)
        model = _model(args, device)
        _record_config(results, config, dist)
    report = Path(args.out) if args.out else results
    run = {"davis": _run_davis, "jhmdb": _run_jhmdb, "vip": _run_vip}[args.task]
    return run(args, reader, dist, results, model, report)


if __name__ == "__main__":
    sys.exit(main())
