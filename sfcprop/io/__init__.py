"""Files in and out: frames and video (random access), masks, points and tracks, the one
atomic write and the staging of output folders, overlays and GIFs, the progress bar.

Everything is read lazily: a folder or a video file is decoded one frame at a time, so a
long video never sits in memory. Video files need PyAV (`pip install 'sfcprop[video]'`).
"""

from sfcprop.io.atomic import atomic_path, publish
from sfcprop.io.frames import (
    IMAGE_SUFFIXES,
    VIDEO_EXTRA,
    VIDEO_SUFFIXES,
    Frames,
    FrameSource,
    VideoReader,
    iter_frames,
    list_files,
    list_images,
    natural_key,
    open_frames,
    require_av,
)
from sfcprop.io.framestore import FrameStore
from sfcprop.io.images import read_image
from sfcprop.io.masks import (
    DAVIS_PALETTE,
    MaskSource,
    RawMask,
    as_mask_tensor,
    read_raw,
    write_mask,
)
from sfcprop.io.objects import ObjectTable, colour_table, load_first_mask, read_mask
from sfcprop.io.points import read_joint_positions, read_points, write_tracks
from sfcprop.io.video import VideoWriter

__all__ = [
    "DAVIS_PALETTE",
    "IMAGE_SUFFIXES",
    "VIDEO_EXTRA",
    "VIDEO_SUFFIXES",
    "FrameSource",
    "FrameStore",
    "Frames",
    "MaskSource",
    "ObjectTable",
    "RawMask",
    "VideoReader",
    "VideoWriter",
    "as_mask_tensor",
    "atomic_path",
    "colour_table",
    "iter_frames",
    "list_files",
    "list_images",
    "load_first_mask",
    "natural_key",
    "open_frames",
    "publish",
    "read_image",
    "read_joint_positions",
    "read_mask",
    "read_points",
    "read_raw",
    "require_av",
    "write_mask",
    "write_tracks",
]
