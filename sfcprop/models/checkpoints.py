"""Released checkpoint layouts -> encoder state dicts, loaded safely and checked strictly.

A file's format is read from its content, never its suffix (`formats.checkpoint_format`);
anything else is a `CheckpointError` saying what the file is. Files are read with
`torch.load(weights_only=True)` (only `argparse.Namespace` is allowed beyond torch's own
safe set, for the FC / CRW / DINO-full files that pickle their `args`) or with
safetensors. Never with `weights_only=False`: a pickle from the internet can run code.

Each released layout (`layouts.LAYOUTS`) says where its encoder tensors live, which prefix
to strip, what to rename and which keys are known to be unused (heads, target / key
networks, `layer4`, `fc`). Strict loading (the default) makes every key the test-time
trunk needs a requirement and every other key an error unless the layout lists it as
droppable, so a prefix mistake can never give a quietly half-random network. Every
tensor that loads must be floating-point and finite (only BatchNorm's integer
`num_batches_tracked` is exempt): integer, bool or NaN/inf weights are a broken file,
refused whatever `strict` says. The trunk's key shapes come from the builders the
architectures register (`TRUNKS`, filled through the registry).
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import os
import pickle
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sfcprop.models.formats import CheckpointError, checkpoint_format
from sfcprop.models.layouts import ALIASES, LAYOUTS, Layout, resolve_layout

__all__ = ["ALIASES", "LAYOUTS", "TRUNKS", "CheckpointError", "Layout", "LoadReport"]
__all__ += ["detect_layout", "load_encoder_state", "read_checkpoint", "resolve_layout"]
__all__ += ["checkpoint_format", "target_shapes"]

StateDict = dict[str, torch.Tensor]

# arch ("resnet18", "resnet50", "vit_small8") -> a builder of its test-time trunk. Filled by
# `registry.register` as the architecture modules register their backbones, so that this
# module reads checkpoints without importing any architecture.
TRUNKS: dict[str, Callable[[], torch.nn.Module]] = {}


@dataclass
class LoadReport:
    """What `load_encoder_state` did with each key of a checkpoint."""

    source: str
    layout: str
    arch: str
    loaded: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # known unused parts (raw key names)
    renamed: dict[str, str] = field(default_factory=dict)
    filled: list[str] = field(default_factory=list)  # num_batches_tracked absent in old files
    upcast: list[str] = field(default_factory=list)  # float16/bfloat16 -> float32
    unexpected: list[str] = field(default_factory=list)  # skipped (strict=False only)
    missing: list[str] = field(default_factory=list)  # left at init (strict=False only)
    mismatched: list[str] = field(default_factory=list)  # wrong shape (strict=False only)
    warnings: list[str] = field(default_factory=list)  # loaded, but likely not what was meant

    @property
    def ok(self) -> bool:
        """True when nothing was skipped or left missing (`warnings` do not count)."""
        return not (self.unexpected or self.missing or self.mismatched)

    def summary(self) -> str:
        """One line per category that is not empty."""
        lines = [f"{self.source}: layout {self.layout!r} ({self.arch}), {len(self.loaded)} loaded"]
        for name in ("dropped", "filled", "upcast", "unexpected", "missing", "mismatched"):
            keys = getattr(self, name)
            if keys:
                shown = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
                lines.append(f"  {name} ({len(keys)}): {shown}")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


# ---------------------------------------------------------------- reading files


def read_checkpoint(
    path: str | os.PathLike, namespace: bool = True, *, name: str | None = None
) -> Any:
    """The object stored in `path`, without running arbitrary pickled code.

    The format is read from the content (`checkpoint_format`), whatever the suffix:
    safetensors files are read with safetensors; torch.save files (zip or legacy pickle)
    with `torch.load(weights_only=True, map_location="cpu")`, allowing `argparse.Namespace`
    (a plain attribute bag) when `namespace` is true. Errors name the file (as `name`,
    default the path) and say what it holds when that is not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    name = str(path) if name is None else name
    if checkpoint_format(path, name) == "safetensors":
        return _read_safetensors(path, name)
    allowed = [argparse.Namespace] if namespace else []
    try:
        # an open file, not the path: torch.load reads a path ending in .safetensors as one
        with torch.serialization.safe_globals(allowed), open(path, "rb") as f:
            return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        found = re.search(r"Unsupported global: GLOBAL (\S+)", msg)
        if found or "weights_only" in msg.lower():
            what = found.group(1) if found else "an object outside the safe set"
            raise CheckpointError(
                f"{name}: refused, loading it would unpickle {what}, which could run "
                "arbitrary code (sfcprop only reads tensors, containers and argparse.Namespace)"
            ) from e
        raise CheckpointError(f"{name}: corrupt or not a PyTorch checkpoint ({msg})") from e
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        reason = str(e).strip() or type(e).__name__  # EOFError: a pickle cut short
        raise CheckpointError(f"{name}: corrupt or not a PyTorch checkpoint ({reason})") from e


def _read_safetensors(path: Path, name: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{name}: not a readable safetensors file ({e})") from e


# ---------------------------------------------------------------- target trunks


@functools.cache
def target_shapes(arch: str) -> dict[str, torch.Size]:
    """Key -> shape of the test-time trunk of `arch` (built on the meta device, no memory)."""
    if arch not in TRUNKS:
        raise ValueError(f"no registered trunk of arch {arch!r}; known: {', '.join(TRUNKS)}")
    with torch.device("meta"):
        model = TRUNKS[arch]()
    return {k: v.shape for k, v in model.state_dict().items()}


def _is_tensor_dict(obj: Any) -> bool:
    if not isinstance(obj, Mapping) or not obj:
        return False
    return all(torch.is_tensor(v) for v in obj.values())


def _container(top: Any, layout: Layout) -> tuple[Mapping[str, torch.Tensor], str] | None:
    """The tensor dict of `layout` inside `top` and its path, or None."""
    for path in layout.containers:
        node = top
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if _is_tensor_dict(node):
            return node, "/".join(path) or "<root>"
    return None


def _strip(key: str, prefixes: tuple[str, ...]) -> str | None:
    for prefix in prefixes:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return None


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def _detect(top: Any) -> Layout | None:
    """The first layout whose container holds its signature key (and marker, if any)."""
    for layout in LAYOUTS.values():
        found = _container(top, layout)
        if found is None:
            continue
        tensors = found[0]
        signature = "cls_token" if layout.arch == "vit_small8" else "conv1.weight"
        if not any(p + signature in tensors for p in layout.prefixes):
            continue
        if layout.marker and not any(k.startswith(layout.marker) for k in tensors):
            continue
        return layout
    return None


def detect_layout(obj: str | os.PathLike | Mapping[str, Any]) -> str:
    """The layout name of a checkpoint file or loaded object (`CheckpointError` if none)."""
    top = read_checkpoint(obj) if isinstance(obj, (str, os.PathLike)) else obj
    layout = _detect(top)
    if layout is None:
        raise CheckpointError(f"{_describe(obj)}: {_unknown_message(top)}")
    return layout.name


def _describe(obj: Any) -> str:
    return str(obj) if isinstance(obj, (str, os.PathLike)) else "<state dict>"


def _unknown_message(top: Any) -> str:
    if isinstance(top, Mapping):
        keys = list(top)[:8]
        inside = ""
        for k in keys:
            if isinstance(top[k], Mapping) and top[k]:
                inside += f"; {k!r} starts with {list(top[k])[:3]}"
        return (
            f"not one of the known checkpoint layouts ({', '.join(LAYOUTS)}); "
            f"top-level keys {keys}{inside}. Pass layout=... if it is one of them."
        )
    return f"not a checkpoint dict (found {type(top).__name__})"


# ---------------------------------------------------------------- conversion


def load_encoder_state(
    source: str | os.PathLike | Mapping[str, Any],
    layout: str | None = None,
    strict: bool = True,
) -> tuple[StateDict, LoadReport]:
    """A released checkpoint (path or loaded dict) -> the test-time trunk's state dict.

    Prefixes are stripped, renames applied, unused parts dropped, float16 upcast to
    float32 and absent `num_batches_tracked` buffers filled with 0. A tensor to load that
    is not floating-point (integer, bool: a truncated or mis-converted file) or holds
    NaN/inf is always a `CheckpointError` naming the key. With `strict` (the
    default) a missing needed key, an unknown key or a wrong shape is a `CheckpointError`
    naming the key and the file; with `strict=False` these are skipped, warned about and
    listed in the returned `LoadReport`. `layout=None` detects the layout from the contents.
    """
    name = _describe(source)
    if isinstance(source, (str, os.PathLike)):
        needs_ns = layout is None or resolve_layout(layout).pickled_namespace
        top = read_checkpoint(source, namespace=needs_ns)
    else:
        top = source
    spec = resolve_layout(layout) if layout is not None else _detect(top)
    if spec is None:
        raise CheckpointError(f"{name}: {_unknown_message(top)}")
    found = _container(top, spec)
    if found is None:
        where = " or ".join("/".join(p) or "<root>" for p in spec.containers)
        raise CheckpointError(f"{name}: no tensor dict at {where} as layout {spec.name!r} expects")
    raw, where = found
    return _convert(raw, spec, name, where, strict)


def _convert(
    raw: Mapping[str, torch.Tensor], spec: Layout, name: str, where: str, strict: bool
) -> tuple[StateDict, LoadReport]:
    report = LoadReport(source=name, layout=spec.name, arch=spec.arch)
    stripped: StateDict = {}
    origin: dict[str, str] = {}  # converted key -> raw key
    unexpected: list[str] = []
    for key, value in raw.items():
        short = _strip(key, spec.prefixes)
        if short is None:
            if _matches(key, spec.drop_raw):
                report.dropped.append(key)
            else:
                unexpected.append(key)
            continue
        new = short
        for pattern, repl in spec.renames:
            new = re.sub(pattern, repl, new)
        if new != short:
            report.renamed[key] = new
        stripped[new], origin[new] = value, key

    arch = spec.arch
    if arch == "resnet":
        arch = "resnet50" if "layer1.0.conv3.weight" in stripped else "resnet18"
    report.arch = arch
    shapes = target_shapes(arch)

    state: StateDict = {}
    mismatched: list[str] = []
    broken: list[str] = []
    for key, value in stripped.items():
        raw_key = origin[key]
        if key not in shapes:
            if _matches(key, spec.drop) or _matches(raw_key, spec.drop_raw):
                report.dropped.append(raw_key)
            else:
                unexpected.append(raw_key)
            continue
        if value.shape != shapes[key]:
            mismatched.append(f"{key} {tuple(value.shape)} != {tuple(shapes[key])}")
            continue
        if bad := _bad_values(key, value):
            broken.append(f"{raw_key!r} {bad}")
            continue
        if value.is_floating_point() and value.dtype != torch.float32:
            value = value.float()
            report.upcast.append(key)
        state[key] = value
    missing = []
    for key in shapes:
        if key in state:
            continue
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0, dtype=torch.long)
            report.filled.append(key)
        else:
            missing.append(key)
    report.loaded = [k for k in state if k not in report.filled]
    if broken:
        raise CheckpointError(
            f"{name} [{where}, layout {spec.name!r}]: {_list(broken, quote=False)}; expected "
            "floating-point tensors with finite values (only num_batches_tracked may be an "
            "integer). The file is truncated, corrupt or converted wrongly."
        )

    problems = []
    if missing:
        problems.append(f"missing keys the {arch} trunk needs: {_list(missing)}")
    if unexpected:
        problems.append(f"unexpected keys (not part of layout {spec.name!r}): {_list(unexpected)}")
    if mismatched:
        problems.append(f"wrong shapes: {_list(mismatched)}")
    if problems and strict:
        raise CheckpointError(
            f"{name} [{where}, layout {spec.name!r}]: "
            + "; ".join(problems)
            + ". Pass strict=False to load anyway (the report lists what was skipped)."
        )
    report.missing, report.unexpected, report.mismatched = missing, unexpected, mismatched
    if problems:
        warnings.warn(f"{name}: " + "; ".join(problems), stacklevel=3)
    return state, report


def _bad_values(key: str, value: torch.Tensor) -> str | None:
    """Why `value` cannot be the weights of `key` (integer, bool, NaN/inf), or None."""
    if key.endswith("num_batches_tracked"):
        return None  # BatchNorm's step counter is an integer
    if not value.is_floating_point():
        return f"is {str(value.dtype).removeprefix('torch.')}"
    finite = torch.isfinite(value)
    if not bool(finite.all()):
        return f"has {int((~finite).sum())} NaN/inf values of {value.numel()}"
    return None


def _list(keys: list[str], limit: int = 10, quote: bool = True) -> str:
    shown = ", ".join(repr(k) if quote else k for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
