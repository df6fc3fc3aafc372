"""The error policy of every `sfcprop` command: one line on stderr and an exit code.

    0    success
    1    bad input or a failed run: `sfcprop: error: <what was wrong>` (no traceback)
    2    bad usage (argparse's message, or a `UsageError`)
    130  interrupted (Ctrl-C)
    143  terminated (SIGTERM, handled like Ctrl-C: `finally` blocks and the cleanup of
         staging folders run)

While a command runs, the signals are remembered as well as raised: a library that
swallows the KeyboardInterrupt (a bare `except:`, a `__del__`; torch's import of sympy
does, through mpmath) cannot make the run go on to write its output and exit 0.
`check_interrupted()` raises it again (the staging of output folders and the progress
bars call it), and a command that returns after one ends with 130 (143) all the same.

`SFCPROP_TRACEBACK=1` shows the traceback of a failure instead of its one line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

FAILED, USAGE, INTERRUPTED, TERMINATED = 1, 2, 130, 128 + signal.SIGTERM
TRACEBACK_ENV = "SFCPROP_TRACEBACK"
# a message of these says what was wrong by itself; others get their type's name
USER_ERRORS = (ValueError, TypeError, LookupError, OSError, ImportError, RuntimeError, MemoryError)


def check_shape(x, dims: str, what: str, dtype=None) -> None:
    """`KORNIA_CHECK_SHAPE` in one line: a ValueError `"<what> must be [uint8 ][3, H, W], got
    <dtype> <shape>"` unless `x` (a tensor or array) has one dimension per name of `dims`
    (`"3 H W"`: a 3, then any two sizes) and, when given, the `dtype`."""
    names = dims.split()
    shape = tuple(x.shape)
    ok = len(shape) == len(names) and all(
        not n.isdigit() or s == int(n) for n, s in zip(names, shape, strict=True)
    )
    if ok and (dtype is None or x.dtype == dtype):
        return
    name = getattr(dtype, "__name__", None) or str(dtype).removeprefix("torch.")
    kind = "" if dtype is None else f"{name} "
    got = f"shape {shape}" if dtype is None else f"{x.dtype} {shape}"
    raise ValueError(f"{what} must be {kind}[{', '.join(names)}], got {got}")


class UsageError(ValueError):
    """Bad usage found after the arguments were parsed (exit code 2)."""


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so that a run unwinds as on Ctrl-C."""


_received: list[type[BaseException]] = []  # signals of the running command, as exceptions
_active = False  # whether a command runs under `_signals_raise`


def check_interrupted() -> None:
    """Raise KeyboardInterrupt (Terminated) if Ctrl-C (SIGTERM) came while the command
    runs, even where the exception was caught and dropped on its way."""
    if _received:
        raise _received[0]


def run_command(command: Callable[[], int | None]) -> int:
    """Run `command()` under the policy; its return value (None: 0) or the failure's
    exit code. SystemExit (argparse's usage errors, --help) passes through."""
    try:
        with _signals_raise():
            status = int(command() or 0)
            check_interrupted()  # one that something swallowed
            return status
    except KeyboardInterrupt:
        _received.clear()  # reported: a command that ran this one does not report it again
        report("interrupted")
        return INTERRUPTED
    except Terminated:
        _received.clear()
        report("terminated")
        return TERMINATED
    except UsageError as e:
        report(message(e))
        return USAGE
    except Exception as e:  # noqa: BLE001 - a failed run is reported, not traced
        if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            raise
        report(message(e))
        return FAILED


def report(text: str) -> None:
    """Print `sfcprop: error: <text>` on stderr."""
    print(f"sfcprop: error: {text}", file=sys.stderr, flush=True)


def message(e: BaseException) -> str:
    """The one-line message of an exception (a KeyError's without its quotes)."""
    text = e.args[0] if isinstance(e, KeyError) and e.args else e
    text = " ".join(str(text).split())
    if not isinstance(e, USER_ERRORS):
        return f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text or type(e).__name__


def require_device(device: str | None) -> None:
    """A ValueError for a CUDA device that torch cannot use (rather than torch's
    assertion, deep in the first `.to(device)`)."""
    if device is None or not str(device).startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise ValueError(
            f"--device {device}: torch sees no CUDA device (a CPU-only build of torch, or no "
            "driver); use --device cpu"
        )
    index = str(device).partition(":")[2]
    if index.isdigit() and int(index) >= torch.cuda.device_count():
        raise ValueError(
            f"--device {device}: torch sees {torch.cuda.device_count()} CUDA device(s)"
        )


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """While the block runs, SIGINT raises KeyboardInterrupt (each time, as Python's own
    handler) and the first SIGTERM `Terminated` (later ones are ignored, so that cleanup
    finishes); both are remembered for `check_interrupted`. Only in the main thread, and
    once: a command run by another (`sfcprop eval`) runs under the handlers of the first."""
    global _active
    if threading.current_thread() is not threading.main_thread() or _active:
        yield
        return

    def on_sigint(signum, frame) -> None:
        _received.append(KeyboardInterrupt)
        raise KeyboardInterrupt

    def on_sigterm(signum, frame) -> None:
        if Terminated not in _received:
            _received.append(Terminated)
            raise Terminated

    # SIGINT is left alone where Python's own handler is not in place (ignored in a job
    # started in the background, or handled by the program that runs this command)
    sigint = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    if sigint:
        signal.signal(signal.SIGINT, on_sigint)
    _active = True
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        _active = False
        _received.clear()
