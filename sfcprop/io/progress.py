"""One progress bar for every loop over frames: shown where a person is watching.

`progress=None` (the default of `propagate`, `propagate_soft`, `track_keypoints`) means
"auto": a bar on a terminal (stderr is a TTY) or in a Jupyter notebook, none in scripts
whose output goes to a file or a pipe. In a notebook the widget bar needs ipywidgets;
without it a text bar is used instead of tqdm's "IProgress not found" warning.
"""

from __future__ import annotations

import sys
import time
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


MEASURED = 3  # frames timed (after the first, a keyframe) for the time estimate


def bfloat16_units() -> bool:
    """Whether this CPU has bfloat16 units (Linux: AVX512-BF16 or AMX in /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read(1 << 16)
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def estimate_line(
    total: int, size: tuple[int, int], per_frame: float, precision: str | None = None
) -> str:
    """The line said before a long run: frames, size, the expected time; how to go faster
    (a smaller short side; bfloat16 where the CPU has units for it and `precision` is not
    already a half one)."""
    h, w = size
    minutes = total * per_frame / 60
    took = f"{minutes:.0f} min" if minutes >= 2 else f"{total * per_frame:.0f} s"
    line = (
        f"{total} frames of {w}x{h}: about {took} at {per_frame:.2f} s/frame (timed on the "
        f"first {MEASURED})"
    )
    if min(h, w) > 300:
        line += "; a short side of 240 (--short-side 240, short_side=240) runs several times faster"
    if precision in (None, "float32") and bfloat16_units():
        line += "; this CPU has bfloat16 units: --precision bfloat16 is faster (not exact)"
    return line


def bar(
    items: Iterable,
    enabled: bool | None = None,
    total: int | None = None,
    desc: str | None = None,
    unit: str = "frame",
    size: tuple[int, int] | None = None,
    precision: str | None = None,
) -> Iterator:
    """Yield `items`, with a tqdm bar when `enabled` (None: `watched()`), started only once
    the first item is there (so an error at start-up prints no empty bar). The bar's total
    settles on the count seen when `total` was off (a video header's count can be). With
    `size` (H, W) and a known total, one line estimates the time once `MEASURED` frames
    after the first are done (`estimate_line`)."""
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
        start = time.perf_counter()
        for item in it:
            yield item
            b.update()
            if size and total and b.n == 1 + MEASURED and total > b.n:
                took = (time.perf_counter() - start) / MEASURED
                b.write(estimate_line(total, size, took, precision), file=sys.stderr)
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


def frames_bar(
    items: Iterable,
    enabled: bool | None,
    frames=None,
    size: tuple[int, int] | None = None,
    precision: str | None = None,
) -> Iterable:
    """`bar` over a loop on `frames`, its total their count where known without decoding;
    `size` (H, W) and `precision`: for the time estimate."""
    from sfcprop.io.frames import count_frames

    total = count_frames(frames) if enabled is not False else None
    return bar(items, enabled, total=total, size=size, precision=precision)
