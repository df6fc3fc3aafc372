"""The `sfcprop` command: thin wrappers around the library.

Exit codes: 0 success, 1 bad input or a failed run (one line on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

EXAMPLES = """examples:
  sfcprop demo                                   # generated clip, shipped model, no network
  sfcprop propagate frames/ first.png --out out/ # your own video (folder of frames)
  sfcprop backbones                              # the registry: names, sources, cached?
  sfcprop eval davis --root DAVIS --backbone fc --out results/
  sfcprop train-fc --image-root images/ --out-dir runs/fc
"""

# subcommands implemented elsewhere, each a `main(argv) -> int`
DELEGATED = {
    "backbones": ("sfcprop.backbones.registry", "cli_main", "list the backbone registry"),
    "eval": ("sfcprop.evaluate", "main", "benchmark on DAVIS / JHMDB / VIP"),
    "train-fc": ("sfcprop.train.cli", "main", "train the fine-grained network (FC)"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sfcprop",
        description="Propagate labels through video (SFC).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = sub.add_parser(
        "demo",
        help="propagate on a generated clip with the shipped model",
        description="Generate a clip with moving textured objects, propagate its first mask "
        "with the shipped FC model, write masks and an overlay GIF, print J&F.",
        epilog="example: sfcprop demo --out demo-out",
    )
    d.add_argument("--out", default="sfcprop-demo", help="output folder (default: %(default)s)")
    d.add_argument("--backbone", default="fc", help="registry name or checkpoint path")
    d.add_argument("--frames", type=int, default=24, help="clip length (default: %(default)s)")
    d.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cpu)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    for name, (_, _, help_) in DELEGATED.items():
        sub.add_parser(name, help=help_, add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        module, func, _ = DELEGATED[argv[0]]
        import importlib

        return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            return _demo(args)
    except (ValueError, FileNotFoundError, KeyError, TypeError) as e:
        print(f"sfcprop: error: {e}", file=sys.stderr)
        return 1
    return 2


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    summary = run_demo(args.out, args.backbone, args.device, args.frames, args.quiet)
    print(f"wrote {args.out}/masks/*.png and {args.out}/overlay.gif")
    print(f"{'J&F-Mean':>9} {'J-Mean':>7} {'F-Mean':>7} {'seconds':>8}")
    print(
        f"{summary['J&F-Mean']:9.3f} {summary['J-Mean']:7.3f} {summary['F-Mean']:7.3f} "
        f"{summary['seconds']:8.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
