"""`Keyframes`: a session's annotated frames and the stretches between them made stale."""

from __future__ import annotations

from typing import Any

Stretch = tuple[int | None, int | None]  # (earlier keyframe or None, later keyframe or None)


class Keyframes(dict):
    """Frame index -> labels as the codec checked them, plus what changed since the last
    run: the stretches next to an added, replaced or removed keyframe, and the keyframes
    set since. Before the first run everything is stale (`fresh`); so after any change when
    passes keep other keyframes in memory (`shared`: `Config.keyframe_memory` > 0)."""

    def __init__(self, shared: bool = False) -> None:
        super().__init__()
        self.fresh = True
        self.shared = shared
        self._stale: set[Stretch] = set()
        self._stale_keys: set[int] = set()

    def set(self, t: int, value: Any) -> None:
        prev, nxt = self.neighbours(t)
        self._stale |= {(prev, t), (t, nxt)}
        self._stale_keys.add(t)
        self[t] = value
        self.fresh = self.fresh or self.shared

    def remove(self, t: int) -> None:
        prev, nxt = self.neighbours(t)
        del self[t]
        self._stale.add((prev, nxt))
        self.fresh = self.fresh or self.shared

    def neighbours(self, t: int) -> Stretch:
        """The nearest keyframes before and after `t` (None where there is none)."""
        before = [k for k in self if k < t]
        after = [k for k in self if k > t]
        return (max(before) if before else None), (min(after) if after else None)

    def stretches(self) -> list[Stretch]:
        """`(None, k0)`, `(k0, k1)`, ..., `(kn, None)`."""
        keys = sorted(self)
        return list(zip([None, *keys], [*keys, None], strict=True))

    def is_stale(self, stretch: Stretch) -> bool:
        return self.fresh or stretch in self._stale

    def is_new(self, t: int) -> bool:
        """Whether keyframe `t` was set since the last run."""
        return self.fresh or t in self._stale_keys

    def done(self) -> None:
        """A run recomputed everything stale."""
        self.fresh = False
        self._stale.clear()
        self._stale_keys.clear()
