"""`sfcprop eval`: propagate a benchmark's sequences, write the results, score them.

    sfcprop eval davis --root DAVIS --backbone fc --out runs/davis-fc
    sfcprop eval davis --root DAVIS --results runs/davis-fc        # score existing results
    sfcprop eval jhmdb --root JHMDB --split test.txt --backbone crw --out runs/jhmdb
    torchrun --nproc_per_node 4 -m sfcprop.apps.eval davis --root DAVIS --backbone fc --out o

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
first, joints not found dropped (as CRW). VIP: frames resized to 560x560, soft labels
upsampled to the annotation's size and arg-maxed, mIoU over 20 classes (background
included) from one confusion matrix over every annotated frame, each video's first
included (as CRW's eval_vip.py).

This package: the command line and the driver here; `common` (ranks, the resumable output
folder, tables, the model), one module per benchmark (`davis`, `jhmdb`, `vip`).
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import torch

from sfcprop import errors
from sfcprop.apps.eval import common, davis, jhmdb, vip
from sfcprop.apps.eval.common import CONFIG_FILE, Dist, _setup, write_atomically
from sfcprop.apps.eval.davis import score_davis_sequence
from sfcprop.apps.eval.jhmdb import read_keypoint_results
from sfcprop.apps.eval.vip import score_vip_sequence
from sfcprop.bench import datasets
from sfcprop.config import add_arguments
from sfcprop.io import runs

__all__ = [
    "CONFIG_FILE",
    "TASKS",
    "Dist",
    "build_parser",
    "main",
    "read_keypoint_results",
    "score_davis_sequence",
    "score_vip_sequence",
    "write_atomically",
]

TASKS = ("davis", "jhmdb", "vip")

EPILOG = """examples:
  sfcprop eval davis --root DAVIS --backbone fc --out runs/davis-fc
  sfcprop eval davis --root DAVIS --backbone fc --out runs/davis-fc --device cuda
  sfcprop eval davis --root DAVIS --results runs/davis-fc     # score existing results
  sfcprop eval davis --root DAVIS --backbone fc --out smoke --sequences dog --max-frames 5
  sfcprop eval jhmdb --root JHMDB --split test.txt --backbone crw --out runs/jhmdb
  sfcprop eval vip --root VIP --backbone fc --semantic imagenet-r50 --out runs/vip
  torchrun --nproc_per_node 4 -m sfcprop.apps.eval davis --root DAVIS --backbone fc \\
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


# --------------------------------------------------------------------------- driver


def _reader(args: argparse.Namespace) -> datasets.Reader:
    """The task's dataset, its split and `--sequences` checked, its sequence names plain
    folder names (`common.check_names`)."""
    subset = args.sequences.split(",") if args.sequences else None
    if args.task == "davis":
        split = args.split or "val"
        reader = datasets.davis(args.root, split, args.year, args.first_mask, sequences=subset)
    elif args.task == "jhmdb":
        reader = datasets.JHMDB(args.root, args.split, sequences=subset)
    else:
        reader = datasets.VIP(args.root, args.split or "val", sequences=subset)
    common.check_names(reader, common.split_file(reader, args.split), args.task == "jhmdb")
    return reader


def _check_apart(args: argparse.Namespace) -> None:
    """Refuse an output folder (--out, or the --results folder the tables go into) that
    is, holds or lies inside an input: the dataset, the results scored, a split list, a
    backbone file."""
    from sfcprop.apps.common import model_paths

    out, flag = (args.out, "--out") if args.out is not None else (args.results, "--results")
    inputs = [args.root, *model_paths(args)]
    if args.split is not None and Path(args.split).is_file():
        inputs.append(args.split)
    if args.out is not None:
        inputs.append(args.results)
    runs.refuse_overlap(out, inputs, flag)


def _run(args: argparse.Namespace) -> int:
    """Check everything a run needs (settings, dataset, backbones), record the settings,
    then propagate what is missing and score."""
    _check_apart(args)
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
        results, config = Path(args.out), common.run_settings(args)
        common.check_config(results, config)
        reader = _reader(args)
        model = common._model(args, device)  # (looked up here: tests replace it)
        common.record_config(results, config, dist)
    report = Path(args.out) if args.out else results
    run = {"davis": davis.run, "jhmdb": jhmdb.run, "vip": vip.run}[args.task]
    return run(args, reader, dist, results, model, report)
