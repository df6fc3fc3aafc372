"""`sfcprop backbones [NAME]`: the backbone registry as a table, or one backbone's details
(paper, licence, release URLs, cache paths, how each release is verified)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sfcprop.models import hub
from sfcprop.models.registry import REGISTRY, REPORTED, Entry, shipped_weights


def _sources(entry: Entry) -> str:
    kinds = []
    for release in entry.releases.values():
        src = release.source
        kind = "+".join(k for k, v in (("hf", src.hf_repo), ("url", src.url)) if v) or "manual"
        kinds.append(f"{kind}:{release.source.name}")
    if entry.shipped:
        kinds.append("shipped")
    return ", ".join(kinds) or "bring your own"


def _cached(entry: Entry) -> str:
    have = [n for n, r in entry.releases.items() if hub.cached(r.source, verify=False)]
    if entry.shipped:
        try:
            shipped_weights(entry.shipped)
            have.append("shipped")
        except FileNotFoundError:
            pass
    return ", ".join(have) or "no"


def _table(entries: Sequence[Entry]) -> str:
    rows = [("name", "arch", "dim", "sources", "cached", f"J&F ({REPORTED})")]
    for e in entries:
        jf = f"{e.reported.jf:.1f} ({e.reported.source})" if e.reported else "-"
        rows.append((e.name, e.arch, str(e.dim), _sources(e), _cached(e), jf))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _verification(entries: Sequence[Entry]) -> str:
    """One line per release: a full hash in the registry, or pinned on first use."""
    rows = [
        (f"{e.name}/{n}", hub.verification(r.source))
        for e in entries
        for n, r in e.releases.items()
    ]
    width = max((len(r[0]) for r in rows), default=0)
    return "\n".join(f"  {name.ljust(width)}  {how}" for name, how in rows)


CLI_EXAMPLES = """examples:
  sfcprop backbones                  # every backbone: sources, cached?, verification
  sfcprop backbones crw              # one backbone: paper, licence, release URLs, cache paths
  HF_HUB_OFFLINE=1 sfcprop backbones # the same without touching the network

In Python: sfcprop.backbone("fc") (the shipped model), sfcprop.backbone("fc", weights="sfc")
(SFC's release, downloaded once and verified), sfcprop.backbone("mocov2", weights="file.pth").
"""


def main(argv: Sequence[str] | None = None) -> int:
    """`sfcprop backbones [NAME]`: the registry table, or one entry's details."""
    parser = argparse.ArgumentParser(
        prog="sfcprop backbones",
        description="List the backbone registry, or show one backbone's details.",
        epilog=CLI_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", help="show one backbone's details")
    args = parser.parse_args(argv)
    if args.name is None:
        entries = list(REGISTRY.values())
        print(_table(entries))
        print(f"\nverification (checked on download and on every load):\n{_verification(entries)}")
        print(f"\ncache: {hub.cache_dir()}  (SFCPROP_CACHE; HF_HUB_OFFLINE=1 for no network)")
        return 0
    if args.name not in REGISTRY:
        print(
            f"sfcprop: error: unknown backbone {args.name!r}; known: {', '.join(REGISTRY)}",
            file=sys.stderr,
        )
        return 1
    e = REGISTRY[args.name]
    print(_table([e]))
    for label, value in (("paper", e.paper), ("licence", e.licence), ("notes", e.notes)):
        if value:
            print(f"{label}: {value}")
    if e.reported:
        print(f"DAVIS J&F {e.reported.jf} ({REPORTED}: {e.reported.source}; {e.reported.protocol})")
    for name, release in e.releases.items():
        src = release.source
        print(f"release {name}: {src.url or src.manual or src.hf_repo} -> {hub.cache_path(src)}")
        print(f"  verified: {hub.verification(src)}")
    return 0
