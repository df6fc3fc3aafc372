"""`RunGuard`: no change to a session while one of its runs is being iterated."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RunGuard:
    """Holds a session for a run or a change: a change inside a `run()` loop (the holding
    thread) is an error, since the loop would not see it; other threads wait their turn."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None

    @contextmanager
    def hold(self, what: str) -> Iterator[None]:
        if self._owner == threading.get_ident():
            raise RuntimeError(
                f"cannot {what} while this session's run() is being iterated: finish the "
                "loop (break out of it, or close() the iterator) first, then run again "
                "(only the stretches next to a change are recomputed)"
            )
        with self._lock:
            self._owner = threading.get_ident()
            try:
                yield
            finally:
                self._owner = None
