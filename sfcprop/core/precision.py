"""Numeric precision of propagation: the exact float32 default and opt-in half precision.

"float32" (default) reproduces the original implementation (the golden fixtures within
1e-4): on CUDA it also turns TensorFloat-32 off for the backbone's convolutions and the
affinity products while sfcprop computes (PyTorch enables it for cuDNN convolutions by
default, which changes the features by about 1e-3). "float16" / "bfloat16" run the
backbone under autocast and keep the features in that type (half the memory of the
context); affinity products take half-precision inputs and their scores are compared in
float32; labels stay float32. They select different top-k keys in some cells (measured in
`benchmarks/bench_precision.py`), so they are a speed mode, not the protocol.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def feature_dtype(precision: str) -> torch.dtype:
    """The dtype features are kept in for `precision` ("float32", "float16", "bfloat16")."""
    if precision not in DTYPES:
        raise ValueError(f"precision must be one of {sorted(DTYPES)}, got {precision!r}")
    return DTYPES[precision]


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """TensorFloat-32 off for cuDNN convolutions and CUDA matrix products, restored after
    (float32 stays float32 on GPUs from Ampere on; no effect on CPU)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def autocast(device: torch.device, dtype: torch.dtype):
    """Autocast of the backbone to a half `dtype`; a no-op context for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
