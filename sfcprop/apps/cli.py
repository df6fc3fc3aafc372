"""The `sfcprop` command: thin wrappers around the library.

Every command follows `sfcprop.errors`' policy: exit codes 0 success, 1 bad input or a
failed run (one `sfcprop: error: ...` line on stderr), 2 bad usage, 130 interrupted, 143
terminated. `propagate`, `track` and `demo` lock `--out`, refuse one that is, holds or
lies inside an input, write into a staging folder beside it and move that into place at
the end (`sfcprop.io.runs`), so a failed run leaves no output folder and a second run into
the same `--out` fails at once.

Here: the parser, the dispatch and `demo`; `propagate` and `track` live in their own
modules (`sfcprop.apps.propagate`, `sfcprop.apps.track`), `eval`, `train-fc` and
`backbones` are commands of their own. Each is imported only when called, under the error
policy (a Ctrl-C while numpy or torch load is an interrupt like any other), and the
command starts without torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sfcprop import __version__, errors

EXAMPLES = """examples:
  sfcprop --version
  sfcprop demo                                   # generated clip, shipped model, no network
  sfcprop propagate frames/ first.png --out out/ # your own video (folder of frames)
  sfcprop propagate clip.mp4 first.png --out out/ --short-side 480 --gif
  sfcprop track clip.mp4 points.json --out tracks/ --gif
  sfcprop backbones                              # the registry: names, sources, cached?
  sfcprop eval davis --root DAVIS --backbone fc --out results/ --device cuda
  sfcprop train-fc --image-root images/ --out-dir runs/fc
"""


def _backbones(argv: list[str]) -> int:
    from sfcprop.apps.backbones import main

    return main(argv)


def _eval(argv: list[str]) -> int:
    from sfcprop.apps.eval import main

    return main(argv)


def _batch(argv: list[str]) -> int:
    from sfcprop.apps.batch import main

    return main(argv)


def _export(argv: list[str]) -> int:
    from sfcprop.apps.export import main

    return main(argv)


def _cvat(argv: list[str]) -> int:
    from sfcprop.apps.cvat import main

    return main(argv)


def _train_fc(argv: list[str]) -> int:
    from sfcprop.train.cli import COMMAND_PROG, main

    return main(argv, prog=COMMAND_PROG)


# subcommands with a parser of their own: name -> (their `main(argv) -> int`, help)
DELEGATED: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "backbones": (_backbones, "list the backbone registry"),
    "eval": (_eval, "benchmark on DAVIS / JHMDB / VIP"),
    "batch": (_batch, "propagate a dataset of videos (resumable; shards; Ray)"),
    "export": (_export, "write results as COCO / YouTube-VIS / MOTS / DAVIS files"),
    "cvat": (_cvat, "keyframes from a CVAT task, propagated both ways, uploaded back"),
    "train-fc": (_train_fc, "train the fine-grained network (FC)"),
}


def _parser() -> argparse.ArgumentParser:
    from sfcprop.apps import propagate, track

    p = argparse.ArgumentParser(
        prog="sfcprop",
        description="Propagate labels through video (SFC).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"sfcprop {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = sub.add_parser(
        "demo",
        help="propagate on a clip made of photographs with the shipped model",
        description="Build a clip of photographed objects moving over a photographed "
        "background (camera motion, occlusion, scale change; exact masks), propagate its "
        "first mask with the shipped FC model, write masks and an overlay GIF, print J&F "
        "beside that of random weights.",
        epilog="example: sfcprop demo --out demo-out",
    )
    d.add_argument("--out", default="sfcprop-demo", help="output folder (default: %(default)s)")
    d.add_argument("--force", action="store_true", help="replace an existing --out folder")
    d.add_argument("--backbone", default="fc", help="registry name or checkpoint path")
    d.add_argument(
        "--frames",
        type=_clip_length,
        default=24,
        help="clip length, at least 3: the first and last frames are not scored "
        "(default: %(default)s)",
    )
    d.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cpu)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.add_argument(
        "--no-baseline", action="store_true", help="skip the random-weights run (half the time)"
    )
    propagate.add_parser(sub)
    track.add_parser(sub)
    for name, (_, help_) in DELEGATED.items():
        sub.add_parser(name, help=help_, add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `sfcprop`; returns the exit status (see `sfcprop.errors`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return errors.run_command(lambda: _dispatch(argv))


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in DELEGATED:
        command, _ = DELEGATED[argv[0]]
        return int(command(argv[1:]) or 0)
    args = _parser().parse_args(argv)
    from sfcprop.apps import propagate, track

    commands = {"demo": _demo, "propagate": propagate.run, "track": track.run}
    return commands[args.command](args)


def _clip_length(text: str) -> int:
    """`demo --frames`: an integer >= `demo.MIN_FRAMES`."""
    from sfcprop.apps.demo import MIN_FRAMES

    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < MIN_FRAMES:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of frames >= {MIN_FRAMES} (the first and last frames "
            f"are not scored), got {text!r}"
        )
    return value


def _demo(args: argparse.Namespace) -> int:
    """`sfcprop demo`: lock `--out`, write the demo into a staging folder, move it into
    place (as `propagate` does); print the table."""
    from sfcprop.apps.common import check_out
    from sfcprop.apps.demo import report, run_demo
    from sfcprop.io import runs

    errors.require_device(args.device)
    with runs.locked(args.out) as out:
        check_out(args, out)
        with runs.staging(out) as tmp:
            summary = run_demo(
                tmp, args.backbone, args.device, args.frames, args.quiet, not args.no_baseline
            )
    print(f"wrote {args.out}/masks/*.png and {args.out}/overlay.gif")
    print("\n".join(report(summary, Path(args.backbone).name, args.frames)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
