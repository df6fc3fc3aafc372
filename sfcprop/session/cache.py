"""`FeatureCache`: a session's feature maps kept for the second pass and for corrections."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch


class FeatureCache:
    """Feature maps `[C, h, w]` by frame index, least recently used dropped first, at most
    `limit` bytes in all (0: keep none)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._maps: OrderedDict[int, torch.Tensor] = OrderedDict()

    def get(self, t: int, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The map of frame `t`, from the cache or `compute()` (then kept if it fits)."""
        if t in self._maps:
            self._maps.move_to_end(t)
            return self._maps[t]
        feats = compute()
        size = feats.numel() * feats.element_size()
        if size <= self.limit:
            while self._maps and (len(self._maps) + 1) * size > self.limit:
                self._maps.popitem(last=False)
            self._maps[t] = feats
        return feats
