"""The progress bar: shown where a person is watching, never an empty bar before an error."""

import io
import sys

import pytest

from sfcprop.io import progress


def test_auto_follows_the_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a pipe or a file: no bar
    assert not progress.watched()
    assert list(progress.bar(range(3))) == [0, 1, 2]
    assert sys.stderr.getvalue() == ""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert progress.watched()
    assert list(progress.bar(range(3), total=5)) == [0, 1, 2]
    assert "3/3" in sys.stderr.getvalue()  # the total settles on what was seen


def test_no_bar_before_the_first_item(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())

    def failing():
        raise ValueError("unknown backbone")
        yield

    with pytest.raises(ValueError, match="unknown backbone"):
        list(progress.bar(failing(), enabled=True, total=10))
    assert sys.stderr.getvalue() == ""  # no "0%" line


def test_not_in_a_notebook_here():
    assert not progress.in_notebook()
