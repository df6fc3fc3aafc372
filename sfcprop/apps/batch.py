"""`sfcprop batch`: not built yet (a placeholder so the command is listed)."""

from __future__ import annotations


def main(argv: list[str]) -> int:
    """Entry point of `sfcprop batch`."""
    raise NotImplementedError("sfcprop batch is being built")
