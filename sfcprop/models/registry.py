"""The backbone registry: names -> architecture, weight sources, converter and metadata.

`backbone("fc")` gives the fine-grained ResNet-18 with the model shipped in sfcprop's
`weights/` folder (always that one, cached downloads or not), `backbone("fc",
weights="sfc")` SFC's released FC (downloaded and verified, see `hub`),
`backbone("mocov1", weights="path/to/file.pth.tar")` a MoCo ResNet-50 from a local file,
`backbone("some_checkpoint.pth")` whatever that file's layout says, and `weights=None` a
randomly initialised network. Every model comes back in eval mode as a `Correspondence`
that says which weights it runs:

- `model.weights_path`: the file the weights were read from (`Path`), None for a state
  dict or random init;
- `model.weights_description`: one line for logs, e.g. `"fc: shipped weights
  .../fc-r18-sfcprop.safetensors"` or `"fc: release 'sfc' .../pretrained_fc.pth"`;
- `model.load_report`: what happened to each key (`checkpoints.LoadReport`), None for
  random init; `load_report.warnings` holds doubts such as a padding mismatch.

Padding rule: CRW trained with reflect padding, every other released ResNet with zeros.
The trained padding is read from the layout the weights came in (`Layout.padding`: the
`crw` layout, prefix `encoder.model.`, is reflect; `fc` (`online_encoder.`), MoCo,
SimSiam, PixPro, InstDis and VINCE are zeros); loading them into a network with the other
padding (CRW weights into `fc`, FC weights into `crw`) adds a warning to the report and
warns. Plain torchvision names (`torchvision` layout, state dicts) do not tell their
origin, so they are not checked.

Entries live beside their architecture (as timm's `register_model`): `resnet` registers the
ResNet backbones, `vit` the DINO ViT; `sfcprop.models` imports both, so `REGISTRY` is full
whichever module is imported first. This module is the mechanism only and imports no
architecture; `register` also hands `checkpoints` the trunk each architecture's files are
checked against. `sfcprop backbones` (`sfcprop.apps.backbones`) prints the registry.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sfcprop.models import hub
from sfcprop.models.base import Correspondence
from sfcprop.models.bn_warmup import sfc_bn_warmup as _sfc_bn_warmup
from sfcprop.models.checkpoints import TRUNKS, LoadReport, load_encoder_state
from sfcprop.models.layouts import LAYOUTS

REPORTED = "reported by the authors"


@dataclass(frozen=True)
class Reported:
    """A DAVIS-2017 val J&F-Mean as published by a backbone's own authors (not re-measured)."""

    jf: float
    protocol: str
    source: str
    note: str = REPORTED


@dataclass(frozen=True)
class Release:
    """A released weight file of a backbone and the layout its converter reads."""

    source: hub.Source
    layout: str


@dataclass(frozen=True)
class Entry:
    """One registered backbone."""

    name: str
    arch: str
    factory: Callable[[], Correspondence]
    dim: int
    releases: dict[str, Release] = field(default_factory=dict)
    default: str | None = None  # a release name, or "shipped"
    shipped: str | None = None  # file name inside sfcprop.weights
    mean: tuple[float, float, float] | None = None  # None: the Correspondence default
    std: tuple[float, float, float] | None = None
    paper: str = ""
    licence: str | None = None
    reported: Reported | None = None
    notes: str = ""

    @property
    def trunk_arch(self) -> str:
        """The architecture without its variant (`"resnet18-reflect"` -> `"resnet18"`)."""
        return self.arch.split("-")[0]


REGISTRY: dict[str, Entry] = {}


def register(*entries: Entry) -> None:
    """Add `entries` to `REGISTRY` (in order; a name once); the first entry of each
    architecture also gives `checkpoints` the trunk that files of that arch load into."""
    for entry in entries:
        if entry.name in REGISTRY:
            raise ValueError(f"backbone {entry.name!r} is registered twice")
        REGISTRY[entry.name] = entry
        TRUNKS.setdefault(entry.trunk_arch, entry.factory)


# The registry network for weights trained with each padding (in `_check_padding` advice).
_PADDED_BY = {"reflect": "crw", "zeros": "fc"}

# Which registry entry a detected file layout builds (torchvision files: by arch).
_BY_LAYOUT = {
    "fc": "fc",
    "crw": "crw",
    "mocov1": "mocov1",
    "mocov2": "mocov2",
    "simsiam": "simsiam",
    "pixpro": "pixpro",
    "insdis": "instdis",
    "vince": "vince",
    "dino": "dino-vits8",
    "dino-full": "dino-vits8",
}


def list_backbones() -> list[str]:
    """The registered backbone names."""
    return list(REGISTRY)


def get_entry(name: str) -> Entry:
    """The registry entry of `name` (`KeyError` listing the known names)."""
    if name not in REGISTRY:
        raise KeyError(f"unknown backbone {name!r}; registered: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def shipped_weights(filename: str) -> Path:
    """A weight file shipped with sfcprop (`sfcprop.weights`, else `<repo>/weights/`)."""
    candidates: list[Path] = []
    with contextlib.suppress(ModuleNotFoundError, TypeError):
        candidates.append(Path(str(importlib.resources.files("sfcprop.weights") / filename)))
    candidates.append(Path(__file__).resolve().parents[2] / "weights" / filename)
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"the shipped weight file {filename} is missing (looked in "
        f"{', '.join(str(p) for p in candidates)}); reinstall sfcprop or pass weights=<file>"
    )


def _entry_for(report: LoadReport) -> Entry:
    """The registry entry that a detected layout builds (torchvision files: by arch)."""
    if report.layout in _BY_LAYOUT:
        return REGISTRY[_BY_LAYOUT[report.layout]]
    return REGISTRY["imagenet-r50" if report.arch == "resnet50" else "imagenet-r18"]


def _build(entry: Entry, state: dict[str, torch.Tensor] | None, complete: bool) -> Correspondence:
    """`entry`'s network with `state` loaded; skips the random init when `state` is complete."""
    if state is None or not complete:
        model = entry.factory()
    else:
        with torch.device("meta"):
            model = entry.factory()
        model = model.to_empty(device="cpu")
    if state is not None:
        model.load_state_dict(state, strict=complete)
    if entry.mean is not None:
        model.mean, model.std = entry.mean, entry.std
    return model


def _check_padding(model: Correspondence, report: LoadReport) -> None:
    """Warn (and note in `report`) when the weights were trained with the other padding."""
    trained = LAYOUTS[report.layout].padding
    padding = getattr(model, "padding", None)
    if trained is None or padding is None or trained == padding:
        return
    message = (
        f"{report.source}: {report.layout!r} weights were trained with {trained} padding but "
        f"this network pads with {padding}; features will differ from the original "
        f"(use {_PADDED_BY[trained]!r} for these weights)"
    )
    report.warnings.append(message)
    warnings.warn(message, stacklevel=3)


def _resolve_weights(entry: Entry, weights: Any) -> tuple[Any, str | None, str]:
    """`weights` -> (path or dict to load, layout or None to detect, description)."""
    if isinstance(weights, Mapping):
        return weights, None, "a state dict"
    if isinstance(weights, os.PathLike):
        return weights, None, f"file {weights}"
    if not isinstance(weights, str):
        raise TypeError(f"weights must be a name, a path, a state dict or None, not {weights!r}")
    if weights == "default":
        if entry.default is None:
            raise ValueError(
                f"backbone {entry.name!r} has no downloadable default weights: {entry.notes}. "
                "Pass weights=<file> (or weights=None for random init)."
            )
        weights = entry.default
    if weights == "shipped" and entry.shipped:
        try:
            path = shipped_weights(entry.shipped)
        except FileNotFoundError as e:
            hint = "".join(f" or weights={r!r} to download a release" for r in entry.releases)
            raise FileNotFoundError(f"{e}{hint}") from None
        return path, None, f"shipped weights {path}"
    if weights in entry.releases:
        release = entry.releases[weights]
        path = hub.fetch(release.source)
        return path, release.layout, f"release {weights!r} {path}"
    if Path(weights).expanduser().exists():
        return Path(weights).expanduser(), None, f"file {Path(weights).expanduser()}"
    names = ", ".join(["default", *entry.releases, *(["shipped"] if entry.shipped else [])])
    raise ValueError(
        f"weights {weights!r} for {entry.name!r} is neither a release ({names}) nor an "
        "existing file"
    )


def backbone(
    name_or_path: str | os.PathLike,
    weights: Any = "default",
    *,
    strict: bool = True,
    sfc_bn_warmup: bool = False,
    device: str | torch.device | None = None,
) -> Correspondence:
    """A registered backbone (or the one a checkpoint file describes), in eval mode.

    `weights`: `"default"`, a release name, a local path, a loaded state dict (or whole
    checkpoint dict), or None for random init. `strict=False` loads what matches and
    reports the rest (`model.load_report`). `sfc_bn_warmup=True` applies SFC's BatchNorm
    warm-up quirk after loading (ResNets only; see `bn_warmup`). The model maps normalised
    `[B, 3, H, W]` to unit features `[B, dim, ceil(H/8), ceil(W/8)]`; `model.weights_path`
    and `model.weights_description` say which weights it runs (see the module docstring).
    """
    state: dict[str, torch.Tensor] | None = None
    report: LoadReport | None = None
    source: Any = None
    description = "random init (weights=None)"
    if str(name_or_path) in REGISTRY:
        entry = REGISTRY[str(name_or_path)]
        if weights is not None:
            source, layout, description = _resolve_weights(entry, weights)
            state, report = load_encoder_state(source, layout=layout, strict=strict)
            expected = entry.trunk_arch
            if report.arch != expected:
                raise ValueError(
                    f"{report.source}: holds a {report.arch} ({report.layout} layout), but "
                    f"{entry.name!r} is a {expected}"
                )
    elif Path(name_or_path).expanduser().is_file():
        if not (isinstance(weights, str) and weights == "default"):
            raise ValueError("backbone(<file>) takes its weights from the file; omit weights=")
        source = Path(name_or_path).expanduser()
        state, report = load_encoder_state(source, strict=strict)
        entry = _entry_for(report)
        description = f"file {source}"
    else:
        raise KeyError(
            f"{str(name_or_path)!r} is neither a registered backbone ({', '.join(REGISTRY)}) "
            "nor an existing checkpoint file"
        )
    model = _build(entry, state, complete=report is not None and report.ok)
    if report is not None:
        _check_padding(model, report)
    model.load_report = report
    model.backbone_name = entry.name
    model.weights_path = Path(source) if isinstance(source, (str, os.PathLike)) else None
    model.weights_description = f"{entry.name}: {description}"
    if sfc_bn_warmup:
        if not entry.arch.startswith("resnet"):
            raise ValueError(f"sfc_bn_warmup applies to ResNet trunks, not {entry.name!r}")
        _sfc_bn_warmup(model)
    return model.to(device).eval()
