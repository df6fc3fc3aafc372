"""`sfcprop cvat`: a CVAT task's keyframes propagated both ways, uploaded back.

Downloads the task's annotations (masks, polygons, rectangles, points) and frames through
the SDK's high-level client, propagates them with a keyframe `Session`
(`sfcprop.integrations.cvat_tasks`), adds the result as shapes (source "semi-auto", the
confidence as `score` and in a "confidence" attribute where the label has one) and lists
the frames to check. `--dry-run FILE` writes the shapes it would upload to a JSON file
and changes nothing on the server. Server and login: cvat-cli's own options
(`--server-host`, `--auth`, `--profile`, `CVAT_ACCESS_TOKEN`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sfcprop.config import PRESETS
from sfcprop.errors import UsageError
from sfcprop.session.combine import DEFAULT_RULE, RULES


def parser() -> argparse.ArgumentParser:
    """The options of `sfcprop cvat`."""
    p = argparse.ArgumentParser(
        prog="sfcprop cvat",
        description="Propagate a CVAT task's keyframes both ways and upload the result.",
    )
    p.add_argument("task", type=int, help="the CVAT task id")
    p.add_argument("--backbone", default="fc", help="backbone name or checkpoint (default fc)")
    p.add_argument("--weights", help="the backbone's weights (default: the shipped ones)")
    p.add_argument("--preset", default="davis", choices=sorted(PRESETS), help="settings preset")
    p.add_argument("--short-side", type=int, help="resize frames to this short side first")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument(
        "--rule", choices=RULES, help=f"how two passes combine between keyframes ({DEFAULT_RULE})"
    )
    p.add_argument(
        "--box",
        choices=("refine", "fill"),
        default="refine",
        help="how a rectangle becomes its object's mask on its keyframe (default refine)",
    )
    p.add_argument("--suggest", type=int, default=3, help="frames to suggest annotating next")
    p.add_argument(
        "--dry-run",
        metavar="FILE",
        type=Path,
        help="write the annotations it would upload to this JSON file; upload nothing",
    )
    try:
        from cvat_sdk.core.auth import configure_client_auth_arguments
    except ImportError:  # the error is raised, with the fix, by main
        return p
    configure_client_auth_arguments(p.add_argument_group("CVAT server (as cvat-cli)"))
    return p


def main(argv: list[str]) -> int:
    """Entry point of `sfcprop cvat`."""
    try:
        import cvat_sdk  # noqa: F401
    except ImportError:
        raise UsageError(
            'sfcprop cvat needs the cvat extra: pip install "sfcprop[cvat]" (Python >= 3.11)'
        ) from None
    args = parser().parse_args(argv)
    if args.dry_run is not None and args.dry_run.is_dir():
        raise UsageError(f"--dry-run takes a file to write, got the folder {args.dry_run}")
    from cvat_sdk.core.auth import make_client_from_cli
    from cvat_sdk.core.proxies.annotations import AnnotationUpdateAction

    from sfcprop.integrations.cvat_tasks import propagate_task, write_dry_run

    client = make_client_from_cli(args)
    with client:
        task = client.tasks.retrieve(args.task)
        frames = download_frames(task)
        data = task.get_annotations()
        model = _model(args)
        upload = propagate_task(
            model,
            frames,
            data,
            task.get_labels(),
            rule=args.rule,
            suggest=args.suggest,
            box=args.box,
        )
        for line in upload.skipped:
            print(f"left out: {line}", file=sys.stderr)
        count = len(upload.request.shapes)
        if args.dry_run is not None:
            write_dry_run(args.dry_run, args.task, upload)
            print(f"{count} shapes written to {args.dry_run} (nothing uploaded)")
        else:
            task.update_annotations(upload.request, action=AnnotationUpdateAction.CREATE)
            print(f"{count} shapes added to task {args.task}")
    print(check_table(upload.checks))
    return 0


def download_frames(task) -> list:
    """The task's frames as RGB PIL images, in order (original quality)."""
    from PIL import Image

    out = []
    for t in range(task.size):
        with Image.open(task.get_frame(t, quality="original")) as im:
            out.append(im.convert("RGB"))
    return out


def _model(args: argparse.Namespace):
    from sfcprop.core.propagator import load_model

    net: object = args.backbone
    if args.weights:
        from sfcprop.models import backbone

        net = backbone(args.backbone, weights=args.weights)
    settings = {"short_side": args.short_side} if args.short_side else {}
    return load_model(net, preset=args.preset, device=args.device, **settings)


def check_table(checks) -> str:
    """The frames to check, one line each."""
    if not checks:
        return "frames to check: none"
    lines = ["frames to check:"]
    for c in checks:
        what = c.label if c.label is not None else "-"
        lines.append(f"  frame {c.frame:5d}  {c.kind:10s} {what}  ({c.value:.2f})")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
