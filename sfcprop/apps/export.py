"""`sfcprop export`: not built yet (a placeholder so the command is listed)."""

from __future__ import annotations


def main(argv: list[str]) -> int:
    """Entry point of `sfcprop export`."""
    raise NotImplementedError("sfcprop export is being built")
