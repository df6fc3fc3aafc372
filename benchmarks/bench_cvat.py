"""Per-frame latency of sfcprop's CVAT tracking function at 480p on CPU.

The function is loaded as `cvat-cli function run-agent` loads it (cvat-cli's
`FunctionLoader`, `-p` parameters, the agent worker's initialiser) and each frame goes
through the agent's own track job (`_worker_job_track`: `preprocess_image` once, then
`track` per shape). Rows: one mask shape, and five shapes on the frame (mask, polygon,
rectangle, points, a second mask); frames: DAVIS-2016 blackswan at 480p (480 x 854) when
found, else the generated clip at that size.

    python benchmarks/bench_cvat.py --threads 2 --out benchmarks/results-cvat-cpu.txt

`--boxes`: how a rectangle becomes labels (`-p box=str:refine` against `fill`): each
DAVIS-2016 development sequence's first frames tracked from the box of the true first
mask at short side 240; the mean IoU of the tracked box with the true box (a lost track
scores 0 from there), and of the first frame's labels with the true mask.

    python benchmarks/bench_cvat.py --boxes --frames 15 --out benchmarks/results-cvat-boxes-240.txt
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SFCPROP_DATA", ROOT.parent / "shared" / "data"))


def frames_480p(count: int) -> tuple[list[Image.Image], np.ndarray, str]:
    """`count + 1` RGB frames at 480 x 854, the first frame's object mask, the source."""
    folder = DATA / "davis2016" / "JPEGImages" / "480p" / "blackswan"
    names = sorted(folder.glob("*.jpg"))[: count + 1]
    if len(names) == count + 1:
        mask_path = DATA / "davis2016" / "Annotations" / "480p" / "blackswan" / "00000.png"
        mask = np.array(Image.open(mask_path)) > 0
        return [Image.open(p).convert("RGB") for p in names], mask, "DAVIS-2016 blackswan"
    from sfcprop.bench.synthetic import generate_clip

    clip = generate_clip(num_frames=count + 1, height=480, width=854)
    frames = [Image.fromarray(f.permute(1, 2, 0).numpy()) for f in clip.frames]
    return frames, (clip.masks[0] == 1).numpy(), "generated clip (sfcprop.bench.synthetic)"


def shape_list(mask: np.ndarray, count: int) -> list:
    from cvat_sdk import auto_annotation as cvataa

    from sfcprop.integrations import cvat_shapes as shapes

    x1, y1, x2, y2 = shapes.mask_box(mask)
    h, w = mask.shape
    other = shapes.box_to_mask([w * 0.05, h * 0.05, w * 0.3, h * 0.35], mask.shape)
    every = [
        ("mask", shapes.mask_to_shape("mask", mask)),
        ("polygon", shapes.mask_to_shape("polygon", mask, 40)),
        ("rectangle", [x1, y1, x2, y2]),
        ("points", [(x1 + x2) / 2, (y1 + y2) / 2, x1 + 4, (y1 + y2) / 2]),
        ("mask", shapes.mask_to_shape("mask", other)),
    ]
    return [cvataa.TrackableShape(type=t, points=p) for t, p in every[:count]]


def measure(params: list[str], frames, mask) -> dict[int, dict[str, float]]:
    """Per shape count (1, 5): the median and the least time per frame of the agent's
    track job, and of `preprocess_image` alone. The two jobs alternate frame by frame, so
    that both see the same load on a shared machine."""
    from cvat_cli._internal import agent
    from cvat_cli._internal import agent_driver_tracking as tracking
    from cvat_cli._internal.agent_driver import worker_current_function
    from cvat_cli._internal.common import FunctionLoader
    from cvat_cli._internal.parsers import parse_function_parameter

    loader = FunctionLoader(
        "sfcprop.integrations.cvat", None, dict(map(parse_function_parameter, params))
    )
    ids = itertools.count()
    agent._worker_init(loader, lambda: f"s{next(ids)}")
    fn = worker_current_function()
    counts = (1, 5)
    states = {
        n: tracking._worker_job_init_tracking(1, frames[0], shape_list(mask, n)) for n in counts
    }
    times: dict = {n: [] for n in counts}
    times["features"] = []
    for image in frames[1:]:
        for n in counts:
            start = time.perf_counter()
            tracking._worker_job_track(1, image, states[n])
            times[n].append(time.perf_counter() - start)
        start = time.perf_counter()
        fn.preprocess_image(None, image)
        times["features"].append(time.perf_counter() - start)
    return {k: (statistics.median(v) * 1e3, min(v) * 1e3) for k, v in times.items()}


def box_iou(a: list[float], b: tuple[int, int, int, int]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def boxes_table(frames: int, threads: int) -> str:
    """`--boxes`: refine against fill on every DAVIS-2016 development sequence."""
    from cvat_sdk import auto_annotation as cvataa

    from sfcprop.integrations import cvat_boxes, cvat_shapes
    from sfcprop.integrations.cvat import create

    root = DATA / "davis2016"
    names = sorted(p.name for p in (root / "JPEGImages" / "480p").iterdir() if p.is_dir())
    fns = {
        rule: create(backbone="fc", short_side=240, threads=threads, box=rule)
        for rule in cvat_boxes.BOX_RULES
    }
    rows, means = [], {rule: ([], []) for rule in cvat_boxes.BOX_RULES}
    for name in names:
        paths = sorted((root / "JPEGImages" / "480p" / name).glob("*.jpg"))[: frames + 1]
        images = [Image.open(p).convert("RGB") for p in paths]
        truth = [
            np.array(Image.open(root / "Annotations" / "480p" / name / f"{p.stem}.png")) > 0
            for p in paths
        ]
        box = cvat_shapes.mask_box(truth[0])
        cells = []
        for rule, fn in fns.items():
            frame = torch.from_numpy(np.array(images[0])).permute(2, 0, 1).contiguous()
            first = cvat_boxes.box_mask(fn.model, frame, box, rule)
            j0 = float((first & truth[0]).sum() / (first | truth[0]).sum())
            state = fn.init_tracking_state(
                None,
                fn.preprocess_image(None, images[0]),
                cvataa.TrackableShape(type="rectangle", points=box),
            )
            scores = []
            for image, mask in zip(images[1:], truth[1:], strict=True):
                out = fn.track(None, fn.preprocess_image(None, image), state)
                true_box = cvat_shapes.mask_box(mask) if mask.any() else (0, 0, 0, 0)
                scores.append(0.0 if out is None else box_iou(out.points, true_box))
            means[rule][0].append(j0)
            means[rule][1].append(float(np.mean(scores)))
            cells += [f"{j0:.3f}", f"{np.mean(scores):.3f}"]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
        print(f"done: {name}", file=sys.stderr, flush=True)
    mean = [f"{np.mean(means[r][k]):.3f}" for r in cvat_boxes.BOX_RULES for k in (0, 1)]
    head = " | ".join(f"{r}: first-frame J | {r}: box IoU" for r in cvat_boxes.BOX_RULES)
    return "\n".join(
        [
            f"sfcprop CVAT tracker, how a box becomes labels: DAVIS-2016 development sequences, "
            f"frames 0-{frames} at short side 240, fc backbone, preset davis, CPU, {threads} "
            f"thread(s)",
            "first-frame J: the box's labels (decoded at the frame's size, inside the box) "
            "against the true mask;",
            f"box IoU: mean over frames 1-{frames} of the tracked box against the true mask's box "
            "(0 once the track is lost)",
            "",
            f"| sequence | {head} |",
            "|---|---|---|---|---|",
            *rows,
            "| mean | " + " | ".join(mean) + " |",
        ]
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--frames", type=int, default=8, help="frames tracked (after the first)")
    p.add_argument("--short-sides", default="none,240", help="comma list; none: native 480p")
    p.add_argument("--out", type=Path, help="also write the table here")
    p.add_argument("--boxes", action="store_true", help="refine against fill (see above)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.boxes:
        text = boxes_table(args.frames, args.threads)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        return 0
    frames, mask, source = frames_480p(args.frames)
    load = os.getloadavg()
    rows = []
    for side in args.short_sides.split(","):
        params = ["backbone=str:fc", f"threads=int:{args.threads}"]
        if side != "none":
            params.append(f"short_side=int:{int(side)}")
        r = measure(params, frames, mask)
        for count in (1, 5):
            rows.append((side, count, r[count], r["features"]))
        print(f"done: short side {side}", file=sys.stderr, flush=True)
    lines = [
        f"sfcprop CVAT tracking function: per-frame latency of the agent's track job, {source},",
        f"{frames[0].size[0]}x{frames[0].size[1]} frames, {args.frames} frames, fc backbone, "
        "preset davis (topk 10, context 20, radius 12), float32, CPU, "
        f"{args.threads} torch thread(s)",
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores seen, "
        f"shared with other jobs (load average {load[0]:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end); torch {torch.__version__}",
        "",
        "| short side | shapes on the frame | frame total, median (ms) | least (ms) "
        "| features once, median (ms) | least (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for side, count, (total, least), (feats, feats_least) in rows:
        native = "native (480)" if side == "none" else side
        lines.append(
            f"| {native} | {count} | {total:.0f} | {least:.0f} | {feats:.0f} | {feats_least:.0f} |"
        )
    lines += [
        "",
        "frame total: `_worker_job_track` for all the shapes of the frame (preprocess_image",
        "once, then track per shape, the shapes' conversion included); the five shapes (mask,",
        "polygon, rectangle, points, mask) start on one frame and share each step's affinity;",
        "features once: preprocess_image alone. The 1- and 5-shape jobs alternate frame by",
        "frame; least: the fastest frame, the closest to an idle machine.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
