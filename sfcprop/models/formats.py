"""What a checkpoint file is, read from its content, never its suffix.

`checkpoint_format`: the zip of torch.save (a whole archive holding a `data.pkl`), a legacy
torch.save pickle, or a safetensors file whose JSON header is valid and whose tensors'
offsets fit the file. Anything else (an HTML page, a JSON error body, an empty or cut
file, a gzip, a tar...) is a `CheckpointError` saying what the file is. Only the first
bytes are read (the safetensors header, the zip directory), never the tensors.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["CheckpointError", "checkpoint_format"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match its layout."""


_HEAD = 512  # bytes read to recognise a file
_SAFETENSORS_MAX_HEADER = 100_000_000  # safetensors' own limit on its JSON header
_EXPECTED = "expected a torch.save file or safetensors"


def checkpoint_format(path: str | os.PathLike, name: str | None = None) -> str:
    """What `path` holds, from its content (never its suffix): `"safetensors"`, `"zip"`
    (torch.save) or `"pickle"` (legacy torch.save, protocol 2 to 5).

    Anything else is a `CheckpointError` naming the file (as `name`, default the path) and
    saying what arrived instead: an empty file, an HTML page, a JSON document, a gzip or tar
    archive, a zip of other files or cut short, a safetensors file cut short, text...
    Reads the first bytes (the safetensors header, the zip directory), not the tensors.
    """
    path = Path(path)
    name = str(path) if name is None else name
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(_HEAD)
    if not head:
        raise CheckpointError(f"{name}: an empty file, not a checkpoint ({_EXPECTED})")
    if head.startswith(b"PK\x03\x04"):
        _check_torch_zip(path, name)
        return "zip"
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if _safetensors_like(head, size):
        _check_safetensors(path, name, size)
        return "safetensors"
    raise CheckpointError(f"{name}: {_describe_bytes(head)}, not a checkpoint ({_EXPECTED})")


def _check_torch_zip(path: Path, name: str) -> None:
    """A `CheckpointError` unless `path` is a whole zip holding a torch.save `data.pkl`."""
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{name}: corrupt, a zip archive cut short (no central directory), not a whole "
            "torch.save checkpoint; download it again"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"{name}: corrupt zip archive ({e}); {_EXPECTED}") from e
    if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise CheckpointError(
            f"{name}: a zip archive of other files ({shown or 'empty'}), not a torch.save "
            f"checkpoint; extract the checkpoint from it ({_EXPECTED})"
        )


def _safetensors_like(head: bytes, size: int) -> bool:
    """True when `head` starts as safetensors does: a little-endian u64 length, then `{`."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    length = int.from_bytes(head[:8], "little")
    return 2 <= length <= _SAFETENSORS_MAX_HEADER


def _check_safetensors(path: Path, name: str, size: int) -> None:
    """A `CheckpointError` unless the JSON header of `path` is valid and its tensors'
    offsets fit in the file."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        if 8 + length > size:
            raise CheckpointError(
                f"{name}: a safetensors file cut short (its header needs {8 + length} bytes, "
                f"the file has {size}); download it again"
            )
        raw = f.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        end = max((_tensor_end(k, v) for k, v in header.items() if k != "__metadata__"), default=0)
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{name}: a safetensors file with a corrupt header ({e})") from e
    data = size - 8 - length
    if end > data:
        raise CheckpointError(
            f"{name}: a safetensors file cut short (its tensors need {end} bytes of data, the "
            f"file holds {data}); download it again"
        )


def _tensor_end(key: str, entry: Any) -> int:
    """Where the data of tensor `key` ends (`ValueError` for a malformed entry)."""
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) and o >= 0 for o in offsets)
        and offsets[0] <= offsets[1]
        and isinstance(entry.get("dtype"), str)
        and isinstance(entry.get("shape"), list)
    ):
        raise ValueError(f"bad entry for tensor {key!r}: {str(entry)[:80]}")
    return offsets[1]


_MAGIC = (
    (b"\x1f\x8b", "a gzip file (decompress it first)"),
    (b"BZh", "a bzip2 file (decompress it first)"),
    (b"\xfd7zXZ\x00", "an xz file (decompress it first)"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (Keras/TensorFlow weights?)"),
    (b"\x93NUMPY", "a NumPy .npy array"),
    (b"PK\x05\x06", "an empty zip archive"),
)


def _describe_bytes(head: bytes) -> str:
    """What a file that starts with `head` is, in words (for errors)."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if len(head) > 262 and head[257:262] == b"ustar":
        return "a tar archive (extract the checkpoint from it)"
    text = head.decode("utf-8", errors="replace")
    stripped = text.lstrip("\ufeff \t\r\n")
    lowered = stripped[:_HEAD].lower()
    start = " ".join(stripped.split())[:60]
    if lowered.startswith(("<!doctype html", "<html", "<head", "<body")) or "<html" in lowered:
        return f"an HTML page (starts {start!r})"
    if stripped.startswith("<"):
        return f"an XML/HTML document (starts {start!r})"
    if stripped.startswith(("{", "[")):
        return f"a JSON document (starts {start!r})"
    clean = "\ufffd" not in text[:-3]  # a character cut at the end of `head` is fine
    if clean and all(c.isprintable() or c.isspace() for c in text[:-3]):
        return f"text (starts {start!r})"
    return f"unknown binary data (starts {head[:16]!r})"
