"""Command line of FC pre-training (`python -m sfcprop.train`, or `sfcprop train-fc`)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields

import torch

from sfcprop import errors
from sfcprop.io.runs import refuse_overlap
from sfcprop.train.batchnorm import pick_images
from sfcprop.train.config import TrainConfig
from sfcprop.train.export import ENCODERS, check_export_path, export_trunk

MODULE_PROG = "python -m sfcprop.train"
COMMAND_PROG = "sfcprop train-fc"  # the subcommand of the `sfcprop` command

EPILOG = """\
examples:
  # train (every option of TrainConfig is a flag; defaults are the paper's recipe)
  %(prog)s --image-root data/frames --out-dir runs/fc \\
      --img-size 128 --batch-size 32 --iterations 2000 --preload-short-side 320
  # the shipped model's contrastive variant (not the paper's loss; see weights/MODEL_CARD.md)
  %(prog)s --image-root data/frames --out-dir runs/fc2 --img-size 128 \\
      --batch-size 16 --iterations 700 --amp --preload-short-side 320 \\
      --dense-objective infonce --dense-on trunk --batch-negatives
  # continue exactly where a run stopped
  %(prog)s --image-root data/frames --out-dir runs/fc --resume runs/fc/last.pt
  # multi-GPU (DDP): the global batch is split over the ranks
  torchrun --nproc-per-node 4 -m sfcprop.train --image-root data/frames --amp
  # export the inference trunk (online encoder up to layer3, float16 safetensors)
  %(prog)s --export runs/fc/last.pt weights/fc.safetensors --meta data=my-frames
  # as the shipped model: the EMA encoder, BN statistics of 150 whole frames at 480 px
  %(prog)s --export runs/fc/last.pt weights/fc.safetensors --export-encoder target \\
      --bn-root data/frames --bn-count 150
"""


def called_as() -> str:
    """The name this command was called by, for its usage line: `sfcprop train-fc` when the
    `sfcprop` command runs it, else `python -m sfcprop.train`."""
    return COMMAND_PROG if sys.argv[1:2] == ["train-fc"] else MODULE_PROG


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """One `--flag` per `TrainConfig` field, plus `--stop-at`, `--export` and `--meta`;
    `prog`: the name in the usage line (default: `called_as()`)."""
    p = argparse.ArgumentParser(
        prog=prog or called_as(),
        description="Pre-train the FC network of SFC (fine-grained correspondence, seed A.1) on "
        "a folder of images, or export its stride-8 ResNet-18 trunk. Inputs are normalised with "
        "ImageNet mean/std.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        hlp = f"{f.metadata.get('help', '')} (default: {default!r})"
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=hlp)
        else:
            p.add_argument(flag, type=type(default), default=default, help=hlp)
    p.add_argument("--stop-at", type=int, default=None, help="stop after this many total steps")
    p.add_argument(
        "--export",
        nargs=2,
        metavar=("CHECKPOINT", "OUT"),
        help="export the trunk of CHECKPOINT to OUT (.safetensors) and exit",
    )
    p.add_argument(
        "--meta", action="append", default=[], metavar="KEY=VALUE", help="export metadata"
    )
    p.add_argument(
        "--export-encoder",
        choices=ENCODERS,
        default="online",
        help="which encoder --export writes: the trained one or its EMA (default: %(default)s)",
    )
    p.add_argument(
        "--bn-root",
        default=None,
        metavar="FOLDER",
        help="with --export: recompute BN statistics on whole images from FOLDER (recursive)",
    )
    p.add_argument(
        "--bn-count", type=int, default=150, help="images for --bn-root (default: %(default)s)"
    )
    p.add_argument(
        "--bn-short-side",
        type=int,
        default=480,
        help="short side the --bn-root images are resized to (default: %(default)s)",
    )
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse `argv`, then train or export; returns the exit status (`sfcprop.errors`'
    policy). `prog`: as `build_parser`."""
    return errors.run_command(lambda: _main(argv, prog))


def check_training(args: argparse.Namespace) -> None:
    """Refuse an --out-dir that is, holds or lies inside an input (the images, the clips,
    the --init weights: last.pt would replace a checkpoint of that name). --resume may lie
    in it: a resumed run continues in its own folder."""
    refuse_overlap(
        args.out_dir, [args.image_root, args.cycle_root or None, args.init or None], "--out-dir"
    )


def _main(argv: list[str] | None, prog: str | None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.export:
        meta = {}
        for item in args.meta:
            key, sep, value = item.partition("=")
            if not sep:
                parser.error(f"--meta expects KEY=VALUE, got {item!r}")
            meta[key] = value
        if args.bn_count <= 0 or args.bn_short_side <= 0:
            parser.error("--bn-count and --bn-short-side must be positive")
        check_export_path(*args.export, [args.bn_root])  # before the BN images are found
        if args.threads > 0:  # the BN pass is the slow part of an export
            torch.set_num_threads(args.threads)
        images = pick_images(args.bn_root, args.bn_count) if args.bn_root else []
        path = export_trunk(
            args.export[0], args.export[1], meta, args.export_encoder, images, args.bn_short_side
        )
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
        return 0
    if not args.image_root:
        parser.error("--image-root is required for training")
    check_training(args)
    from sfcprop.train.trainer import train

    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    train(cfg, stop_at=args.stop_at)
    return 0
