"""`sfcprop eval vip`: frames resized to 560x560 (the preset), soft labels upsampled to
the annotation's size and arg-maxed, mIoU over 20 classes (background included) from one
confusion matrix over every annotated frame, the first included (as CRW's eval_vip.py);
results as palette PNGs `<out>/<video>/<frame>.png`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sfcprop.apps.eval import common
from sfcprop.bench import datasets, metrics


def _propagate(seq: datasets.MaskSequence, out: Path, n: int, model: common._Model, args) -> None:
    from sfcprop.io import DAVIS_PALETTE, read_image, write_mask
    from sfcprop.session import propagate

    ids0, palette = seq.read_first()
    hw = ids0.shape
    config = common.protocol(model)
    frames = [read_image(p) for p in seq.frames[:n]]  # resized by the propagator (CRW's policy)
    if args.vip_label_quirk:  # the label image resized bilinearly (CRW's cv2.resize quirk)
        from sfcprop.labels import MaskCodec
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

    common.write_atomically(out / seq.name, write)


def score_vip_sequence(
    seq: datasets.MaskSequence, results: Path, n_classes: int = 20, max_frames: int | None = None
) -> np.ndarray:
    """Confusion matrix `[n, n]` of `results/<seq>/*.png` over the annotated frames, frame 0
    included (CRW's eval_vip.py scores every written PNG; frame 0 is written as the
    original writes it, see `_propagate`)."""
    conf = np.zeros((n_classes, n_classes), dtype=np.int64)
    for t in range(common.frame_count(seq, max_frames)):
        if seq.annotations[t] is None:
            continue
        path = results / seq.name / f"{seq.frame_names[t]}.png"
        if not path.is_file():
            raise FileNotFoundError(f"missing result mask: {path}")
        conf += metrics.confusion_matrix(seq.read_annotation(t), datasets.read_ids(path), n_classes)
    return conf


def run(
    args, reader, dist: common.Dist, results: Path, model: common._Model | None, report: Path
) -> int:
    """Propagate this rank's missing videos (unless only scoring), count its share's
    confusion; rank 0 sums them all and writes the tables."""
    mine = dist.share(reader.names)
    confs: dict[str, np.ndarray] = {}
    for name in common.bar(mine, args.quiet or dist.rank != 0, desc="videos", unit="video"):
        seq = reader[name]
        n = common.frame_count(seq, args.max_frames)
        if model is not None and not common.complete(
            results / name, [f"{s}.png" for s in seq.frame_names[:n]]
        ):
            _propagate(seq, results, n, model, args)
        confs[name] = score_vip_sequence(seq, results, args.classes, args.max_frames)
    gathered = dist.gather(confs)
    if dist.rank != 0:
        return 0
    merged = {k: v for part in gathered for k, v in part.items()}
    total = sum(merged.values())
    miou = metrics.mean_iou(total)
    common.write_csv(report / "global_results-miou.csv", ("mIoU",), [(miou,)])
    common.write_csv(
        report / "per-class_results-miou.csv",
        ("Class", "IoU"),
        enumerate(metrics.class_iou(total).tolist()),
    )
    common.write_csv(
        report / "per-video_results-miou.csv",
        ("Video", "mIoU"),
        [(k, metrics.mean_iou(merged[k])) for k in reader.names if k in merged],
    )
    common.print_table("VIP", ("mIoU",), [(miou,)])
    return 0
