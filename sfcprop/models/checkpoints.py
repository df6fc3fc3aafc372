"""Released checkpoint layouts -> encoder state dicts, loaded safely and checked strictly.

Files are read with `torch.load(weights_only=True)` (only `argparse.Namespace` is allowed
beyond torch's own safe set, for the FC / CRW / DINO-full files that pickle their `args`)
or with safetensors. Never with `weights_only=False`: a pickle from the internet can run
code. Each released layout (see `LAYOUTS`) says where its encoder tensors live, which
prefix to strip, what to rename and which keys are known to be unused (heads, target /
key networks, `layer4`, `fc`). Strict loading (the default) makes every key the test-time
trunk needs a requirement and every other key an error unless the layout lists it as
droppable, so a prefix mistake can never give a quietly half-random network. Every
tensor that loads must be floating-point and finite (only BatchNorm's integer
`num_batches_tracked` is exempt): integer, bool or NaN/inf weights are a broken file,
refused whatever `strict` says.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

StateDict = dict[str, torch.Tensor]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match its layout."""


@dataclass(frozen=True)
class Layout:
    """Where a released file keeps its encoder and how to turn it into trunk keys.

    `containers`: paths (tuples of keys) to the tensor dict, tried in order (`()` = the root).
    `prefixes`: the encoder keys start with one of these (stripped; `""` = no prefix).
    `drop_raw`: fnmatch patterns on the raw keys of known unused parts (heads, key networks).
    `drop`: fnmatch patterns on stripped keys the test-time trunk does not use (layer4, fc).
    `renames`: regex substitutions applied to stripped keys.
    `marker`: a raw key prefix that must occur for detection (tells apart look-alikes).
    `padding`: the conv padding the weights were trained with (`"reflect"`: CRW), None
    where the layout does not tell (plain torchvision names hold files of any origin).
    """

    name: str
    arch: str  # "resnet18", "resnet50", "resnet" (decided by the keys) or "vit_small8"
    containers: tuple[tuple[str, ...], ...]
    prefixes: tuple[str, ...] = ("",)
    drop_raw: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    renames: tuple[tuple[str, str], ...] = ()
    marker: str | None = None
    pickled_namespace: bool = False
    description: str = ""
    padding: str | None = "zeros"


_RESNET_UNUSED = ("layer4.*", "fc.*")
_CRW_RENAMES = ((r"(^|\.)(conv\d)\.1\.weight$", r"\1\2.weight"),)

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in [
        Layout(
            "fc",
            "resnet18",
            (("model",),),
            ("online_encoder.",),
            drop_raw=(
                "target_encoder.*",
                "online_projector.*",
                "target_projector.*",
                "predictor.*",
            ),
            drop=_RESNET_UNUSED,
            pickled_namespace=True,
            description="SFC pretrained_fc.pth: model/online_encoder.",
        ),
        Layout(
            "crw",
            "resnet18",
            (("model",),),
            ("encoder.model.",),
            drop_raw=("selfsim_fc.*",),
            drop=_RESNET_UNUSED,
            renames=_CRW_RENAMES,
            pickled_namespace=True,
            description="CRW pretrained.pth: model/encoder.model. (reflect padding)",
            padding="reflect",
        ),
        Layout(
            "mocov2",
            "resnet50",
            (("state_dict",),),
            ("module.encoder_q.",),
            drop_raw=("module.encoder_k.*", "module.queue", "module.queue_ptr"),
            drop=_RESNET_UNUSED,
            marker="module.encoder_q.fc.0.",
            description="MoCo v2: state_dict/module.encoder_q. (MLP head fc.0/fc.2 dropped)",
        ),
        Layout(
            "mocov1",
            "resnet50",
            (("state_dict",),),
            ("module.encoder_q.",),
            drop_raw=("module.encoder_k.*", "module.queue", "module.queue_ptr"),
            drop=_RESNET_UNUSED,
            description="MoCo v1: state_dict/module.encoder_q. (fc dropped)",
        ),
        Layout(
            "simsiam",
            "resnet50",
            (("state_dict",),),
            ("module.encoder.",),
            drop_raw=("module.predictor.*",),
            drop=_RESNET_UNUSED,
            description="SimSiam: state_dict/module.encoder. (projector fc.* dropped)",
        ),
        Layout(
            "pixpro",
            "resnet50",
            (("model",),),
            ("module.encoder.",),
            drop_raw=(
                "module.encoder_k.*",
                "module.projector.*",
                "module.projector_k.*",
                "module.value_transform.*",
            ),
            drop=_RESNET_UNUSED,
            marker="module.projector.",
            description="PixPro: model/module.encoder.",
        ),
        Layout(
            "insdis",
            "resnet50",
            (("model",), ("state_dict",)),
            ("module.encoder.",),
            drop_raw=("*head*", "*linear*", "*memory*", "*contrast*"),
            drop=(*_RESNET_UNUSED, "*head*", "*linear*"),
            description="InstDis (PyContrast): model/module.encoder. (INFERRED layout)",
        ),
        Layout(
            "vince",
            "resnet",
            ((),),
            ("feature_extractor.module.model.", "feature_extractor.model."),
            drop_raw=("embedding.*", "queue_network.*", "*.embedding.*", "*queue*"),
            drop=_RESNET_UNUSED,
            description="VINCE: bare dict, feature_extractor.module.model. (INFERRED layout)",
        ),
        Layout(
            "dino-full",
            "vit_small8",
            (("teacher",),),
            ("backbone.", "module.backbone."),
            drop_raw=("head.*", "module.head.*"),
            pickled_namespace=True,
            description="DINO full checkpoint: teacher/backbone. (head dropped)",
            padding=None,
        ),
        Layout(
            "dino",
            "vit_small8",
            ((),),
            description="DINO ViT-S/8 backbone: plain timm/DINO state dict",
            padding=None,
        ),
        Layout(
            "torchvision",
            "resnet",
            (("state_dict",), ()),
            drop=_RESNET_UNUSED,
            description="torchvision names, plain or under state_dict "
            "(ImageNet, VFS, converted SimCLR/BYOL, ssl-transfer files)",
            padding=None,
        ),
    ]
}

# Release names that share a layout (the registry uses these names too).
ALIASES: dict[str, str] = {
    "moco": "mocov1",
    "imagenet": "torchvision",
    "imagenet-r18": "torchvision",
    "imagenet-r50": "torchvision",
    "vfs": "torchvision",
    "vfs-r18": "torchvision",
    "vfs-r50": "torchvision",
    "simclr": "torchvision",
    "byol": "torchvision",
    "instdis": "insdis",
    "dino-vits8": "dino",
}


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


def read_checkpoint(path: str | os.PathLike, namespace: bool = True) -> Any:
    """The object stored in `path`, without running arbitrary pickled code.

    `.safetensors` files are read with safetensors; anything else with
    `torch.load(weights_only=True, map_location="cpu")`, allowing `argparse.Namespace`
    (a plain attribute bag) when `namespace` is true. Errors name the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
    allowed = [argparse.Namespace] if namespace else []
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        found = re.search(r"Unsupported global: GLOBAL (\S+)", msg)
        if found or "weights_only" in msg.lower():
            what = found.group(1) if found else "an object outside the safe set"
            raise CheckpointError(
                f"{path}: refused, loading it would unpickle {what}, which could run "
                "arbitrary code (sfcprop only reads tensors, containers and argparse.Namespace)"
            ) from e
        raise CheckpointError(f"{path}: corrupt or not a PyTorch checkpoint ({msg})") from e
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        raise CheckpointError(f"{path}: corrupt or not a PyTorch checkpoint ({e})") from e


# ---------------------------------------------------------------- target trunks


@functools.cache
def target_shapes(arch: str) -> dict[str, torch.Size]:
    """Key -> shape of the test-time trunk of `arch` (built on the meta device, no memory)."""
    from sfcprop.models.resnet import ResNetTrunk
    from sfcprop.models.vit import vit_small8

    with torch.device("meta"):
        model = vit_small8() if arch == "vit_small8" else ResNetTrunk(arch)
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


def resolve_layout(name: str) -> Layout:
    """A layout by name or release alias (`"moco"`, `"imagenet-r50"`, ...)."""
    key = ALIASES.get(name, name)
    if key not in LAYOUTS:
        known = sorted({*LAYOUTS, *ALIASES})
        raise ValueError(f"unknown checkpoint layout {name!r}; known: {', '.join(known)}")
    return LAYOUTS[key]


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
