"""A `Session` per video over a built model: keyframes, passes both ways, corrections,
confidence and flags; `propagate*` and `track_keypoints*`, a session plus one loop."""

from sfcprop.session.api import propagate, propagate_iter, propagate_soft
from sfcprop.session.combine import DEFAULT_RULE, RULES, combine
from sfcprop.session.results import FrameResult, Propagation
from sfcprop.session.session import Session
from sfcprop.session.tracking import TrackResult, Tracks, track_keypoints, track_keypoints_iter

__all__ = [
    "DEFAULT_RULE",
    "RULES",
    "FrameResult",
    "Propagation",
    "Session",
    "TrackResult",
    "Tracks",
    "combine",
    "propagate",
    "propagate_iter",
    "propagate_soft",
    "track_keypoints",
    "track_keypoints_iter",
]
