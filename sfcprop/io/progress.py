"""One progress bar for every loop over frames: shown where a person is watching.

`progress=None` (the default of `propagate`, `propagate_soft`, `track_keypoints`) means
"auto": a bar on a terminal (stderr is a TTY) or in a Jupyter notebook, none in scripts
whose output goes to a file or a pipe. In a notebook the widget bar needs ipywidgets;
without it a text bar is used instead of tqdm's "IProgress not found" warning.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel."""
    shell = sys.modules.get("IPython")
    try:
        return shell is not None and "IPKernelApp" in shell.get_ipython().config
    except AttributeError:
        return False


def watched() -> bool:
    """Whether a person is likely watching: a notebook, or stderr on a terminal."""
    return in_notebook() or bool(getattr(sys.stderr, "isatty", lambda: False)())


def bar(
    items: Iterable,
    enabled: bool | None = None,
    total: int | None = None,
    desc: str | None = None,
    unit: str = "frame",
) -> Iterator:
    """Yield `items`, with a tqdm bar when `enabled` (None: `watched()`), started only once
    the first item is there (so an error at start-up prints no empty bar). The bar's total
    settles on the count seen when `total` was off (a video header's count can be)."""
    if enabled is None:
        enabled = watched()
    if not enabled:
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    it = iter(items)
    try:
        first = next(it)
    except StopIteration:
        return
    tqdm = _tqdm()
    with tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True) as b:
        yield first
        b.update()
        for item in it:
            yield item
            b.update()
        if b.total != b.n:
            b.total = b.n
            b.refresh()


def _tqdm():
    if in_notebook():
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm

            return tqdm
        except ImportError:
            pass
    from tqdm import tqdm

    return tqdm


def frames_bar(items: Iterable, enabled: bool | None, frames=None) -> Iterable:
    """`bar` over a loop on `frames`, its total their count where known without decoding."""
    from sfcprop.io.frames import count_frames

    return bar(items, enabled, total=count_frames(frames) if enabled is not False else None)
