"""Labels as users give them, onto the feature grid and back: a `Codec` per kind (masks,
soft / part maps, keypoints), the ids of a mask, and all resizing (frames, ids, soft maps).
"""

from sfcprop.labels.codecs import KeypointCodec, MaskCodec, SoftCodec, check_points
from sfcprop.labels.ids import (
    MAX_ID,
    MAX_LABELS,
    decode,
    keep_objects,
    label_ids,
    one_hot,
    to_grid,
)
from sfcprop.labels.keypoints import decode_keypoints, encode_keypoints, grid_size
from sfcprop.labels.resize import resize_frame, resize_ids, resize_soft

__all__ = [
    "MAX_ID",
    "MAX_LABELS",
    "KeypointCodec",
    "MaskCodec",
    "SoftCodec",
    "check_points",
    "decode",
    "decode_keypoints",
    "encode_keypoints",
    "grid_size",
    "keep_objects",
    "label_ids",
    "one_hot",
    "resize_frame",
    "resize_ids",
    "resize_soft",
    "to_grid",
]


def __getattr__(name: str):
    if name == "as_mask_tensor":  # sfcprop.labels.as_mask_tensor in 0.1: reading is io's job
        import warnings

        from sfcprop.io import as_mask_tensor

        warnings.warn(
            "sfcprop.labels.as_mask_tensor moved to sfcprop.io.as_mask_tensor (sfcprop 0.2)",
            DeprecationWarning,
            stacklevel=2,
        )
        return as_mask_tensor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
