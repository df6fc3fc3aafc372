"""`sfcprop.errors`: the one shape check and the error policy of every command (one line on
stderr, an exit code)."""

import os
import re
import signal
import time

import numpy as np
import pytest
import torch

from sfcprop import errors
from sfcprop.errors import UsageError, check_shape, message, run_command

# --------------------------------------------------------------------------- check_shape


def test_check_shape_accepts_the_shape_and_dtype_asked_for():
    check_shape(torch.zeros(3, 4, 5, dtype=torch.uint8), "3 H W", "a frame", torch.uint8)
    check_shape(np.zeros((7, 2)), "H W", "a mask")  # any dtype when none is asked for
    check_shape(np.zeros((3, 1, 1), np.uint8), "3 H W", "a frame", np.uint8)


@pytest.mark.parametrize(
    "x, dims, dtype, want",
    [
        (torch.zeros(4, 5, 6), "3 H W", None, "a frame must be [3, H, W], got shape (4, 5, 6)"),
        (torch.zeros(5, 6), "3 H W", None, "a frame must be [3, H, W], got shape (5, 6)"),
        (
            torch.zeros(3, 5, 6),
            "3 H W",
            torch.uint8,
            "a frame must be uint8 [3, H, W], got torch.float32 (3, 5, 6)",
        ),
        (
            torch.zeros(2, 3, 5, 6, dtype=torch.uint8),
            "T 3 H W",
            torch.float16,
            "a frame must be float16 [T, 3, H, W], got torch.uint8 (2, 3, 5, 6)",
        ),
        (np.zeros((2, 3), np.int16), "3 H W", None, "a frame must be [3, H, W], got shape (2, 3)"),
        (
            np.zeros((3, 2, 2), np.float32),
            "3 H W",
            np.uint8,
            "a frame must be uint8 [3, H, W], got float32 (3, 2, 2)",
        ),
        (
            np.zeros((3, 2, 2), np.int64),
            "3 H W",
            np.dtype("uint8"),
            "a frame must be uint8 [3, H, W], got int64 (3, 2, 2)",
        ),
    ],
    ids=[
        "tensor, other first size",
        "tensor, too few dimensions",
        "tensor, other dtype",
        "tensor, four dimensions",
        "array, too few dimensions",
        "array, other dtype (a type)",
        "array, other dtype (a numpy dtype)",
    ],
)
def test_check_shape_messages(x, dims, dtype, want):
    with pytest.raises(ValueError) as caught:
        check_shape(x, dims, "a frame", dtype)
    assert str(caught.value) == want


# --------------------------------------------------------------------------- message


@pytest.mark.parametrize(
    "error, want",
    [
        (ValueError("frame 3 is\n   too small"), "frame 3 is too small"),  # one line
        (KeyError("unknown sequence(s) zz"), "unknown sequence(s) zz"),  # no quotes
        (FileNotFoundError("no such mask file"), "no such mask file"),
        (ValueError(), "ValueError"),
        (KeyError(), "KeyError"),
        (AssertionError("boom"), "AssertionError: boom"),  # not a user's error: named
        (ZeroDivisionError(), "ZeroDivisionError"),
    ],
)
def test_message_is_one_line_saying_what_was_wrong(error, want):
    assert message(error) == want


def test_a_keyerror_message_keeps_the_quotes_inside_it():
    assert str(KeyError("'fcc' is unknown")) == "\"'fcc' is unknown\""
    assert message(KeyError("'fcc' is unknown")) == "'fcc' is unknown"


# --------------------------------------------------------------------------- run_command


def fails(error: BaseException):
    def command():
        raise error

    return command


@pytest.mark.parametrize(
    "command, code, line",
    [
        (lambda: None, 0, None),
        (lambda: 3, 3, None),
        (fails(ValueError("bad\ninput")), errors.FAILED, "sfcprop: error: bad input"),
        (fails(KeyError("no such key")), 1, "sfcprop: error: no such key"),
        (fails(UsageError("give --out")), errors.USAGE, "sfcprop: error: give --out"),
        (fails(KeyboardInterrupt()), errors.INTERRUPTED, "sfcprop: error: interrupted"),
        (fails(errors.Terminated()), errors.TERMINATED, "sfcprop: error: terminated"),
        (fails(AssertionError("oops")), 1, "sfcprop: error: AssertionError: oops"),
    ],
    ids=["none", "a code", "ValueError", "KeyError", "UsageError", "Ctrl-C", "SIGTERM", "bug"],
)
def test_run_command_exit_codes(command, code, line, capsys, monkeypatch):
    monkeypatch.delenv(errors.TRACEBACK_ENV, raising=False)
    assert run_command(command) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("" if line is None else line + "\n")


def test_the_codes_of_the_policy():
    assert (errors.FAILED, errors.USAGE, errors.INTERRUPTED) == (1, 2, 130)
    assert errors.TERMINATED == 143 and issubclass(UsageError, ValueError)


def test_a_real_sigterm_unwinds_like_ctrl_c(capsys):
    before = signal.getsignal(signal.SIGTERM)
    cleaned = []

    def command():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # the handler raises here, at once
            raise AssertionError("SIGTERM did not stop the command")
        finally:
            cleaned.append(True)

    assert run_command(command) == 143
    assert cleaned == [True] and capsys.readouterr().err == "sfcprop: error: terminated\n"
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back


def test_system_exit_passes_through_and_traceback_env_raises(monkeypatch):
    with pytest.raises(SystemExit) as caught:
        run_command(fails(SystemExit(2)))
    assert caught.value.code == 2
    monkeypatch.setenv(errors.TRACEBACK_ENV, "1")
    with pytest.raises(ValueError, match="shown whole"):
        run_command(fails(ValueError("shown whole")))
    monkeypatch.setenv(errors.TRACEBACK_ENV, "0")  # 0: as if unset
    assert run_command(fails(ValueError("one line"))) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="torch sees a CUDA device here")
def test_require_device_without_cuda():
    errors.require_device(None)
    errors.require_device("cpu")
    with pytest.raises(ValueError, match=re.escape("--device cuda:1: torch sees no CUDA device")):
        errors.require_device("cuda:1")
