"""A MATLAB v5/v7 `.mat` reader for numeric arrays (JHMDB's joint positions), bounded in
size: no scipy needed, and no crafted file inflates past `MAT_MAX_BYTES`."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

# MAT-v5 data types (miINT8 ...) and array classes (mxDOUBLE_CLASS ...) as numpy dtypes
# fmt: off
_MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8",
              13: "u8"}
_MX_DTYPES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4", 14: "i8",
              15: "u8"}
# fmt: on
_MI_MATRIX, _MI_COMPRESSED = 14, 15


MAT_MAX_BYTES = 16 << 20
"""The most a `.mat` file may hold, on disk and each compressed variable once inflated. A
JHMDB `joint_positions.mat` is about 10 kB (2 x 15 x T doubles, twice), so 16 MiB is room
for clips of over 10,000 frames, while a few kB of crafted zlib data, which could inflate
to gigabytes, is refused after inflating 16 MiB at most."""


def read_mat(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The numeric arrays of a MATLAB v5/v7 `.mat` file (compressed or not) by name.

    Real and complex numeric and logical arrays are read (column-major, as MATLAB stores
    them); structs, cells, strings, sparse and object arrays are skipped. v7.3 (HDF5) and v4
    files are refused with a ValueError, and so are files (or compressed variables, once
    inflated) larger than `MAT_MAX_BYTES`.
    """
    limit = f"{MAT_MAX_BYTES >> 20} MiB"
    size = Path(path).stat().st_size
    if size > MAT_MAX_BYTES:
        raise ValueError(f"{path} is {size / 2**20:.0f} MiB; a .mat file is read up to {limit}")
    data = Path(path).read_bytes()
    if len(data) < 128 or data[:10] == b"MATLAB 7.3" or data[126:128] not in (b"IM", b"MI"):
        raise ValueError(f"{path} is not a MATLAB v5/v7 .mat file (v4 and v7.3 are not supported)")
    order = "<" if data[126:128] == b"IM" else ">"
    arrays: dict[str, np.ndarray] = {}
    pos = 128
    while pos + 8 <= len(data):
        mtype, body, nxt = _element(data, pos, order, pad=False)
        pos = nxt
        if mtype == _MI_COMPRESSED:
            inflate = zlib.decompressobj()
            inner = inflate.decompress(body, MAT_MAX_BYTES + 1)
            if len(inner) > MAT_MAX_BYTES:
                raise ValueError(
                    f"{path}: a compressed variable inflates to more than {limit}; refused"
                )
            mtype, body, _ = _element(inner, 0, order, pad=False)
        if mtype == _MI_MATRIX and body:
            named = _matrix(body, order)
            if named is not None:
                arrays[named[0]] = named[1]
    return arrays


def _element(buf: bytes, pos: int, order: str, pad: bool = True) -> tuple[int, bytes, int]:
    """(type, body, next position) of the data element at `pos`."""
    (word,) = struct.unpack_from(order + "I", buf, pos)
    if word >> 16:  # small element: type and size share the first word, data in 4 bytes
        size = word >> 16
        return word & 0xFFFF, buf[pos + 4 : pos + 4 + size], pos + 8
    (size,) = struct.unpack_from(order + "I", buf, pos + 4)
    end = pos + 8 + size
    return word, buf[pos + 8 : end], (pos + 8 + -(-size // 8) * 8) if pad else end


def _matrix(body: bytes, order: str) -> tuple[str, np.ndarray] | None:
    _, flags, pos = _element(body, 0, order)
    flag_word = struct.unpack_from(order + "I", flags)[0]
    mx_class, is_complex, is_logical = flag_word & 0xFF, flag_word & 0x800, flag_word & 0x200
    _, dims_raw, pos = _element(body, pos, order)
    dims = np.frombuffer(dims_raw, dtype=order + "i4").tolist()
    _, name_raw, pos = _element(body, pos, order)
    if mx_class not in _MX_DTYPES:
        return None
    parts = []
    for _ in range(2 if is_complex else 1):
        mtype, raw, pos = _element(body, pos, order)
        parts.append(np.frombuffer(raw, dtype=order + _MI_DTYPES[mtype]))
    values = parts[0] + 1j * parts[1] if is_complex else parts[0]
    dtype = bool if is_logical else ("c16" if is_complex else _MX_DTYPES[mx_class])
    array = values.astype(dtype).reshape(dims, order="F")
    return name_raw.decode("latin-1"), array
