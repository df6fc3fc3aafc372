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
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sfcprop.models import hub
from sfcprop.models.base import Correspondence
from sfcprop.models.bn_warmup import sfc_bn_warmup as _sfc_bn_warmup
from sfcprop.models.checkpoints import LAYOUTS, LoadReport, load_encoder_state
from sfcprop.models.resnet import ResNetTrunk, resnet18, resnet50
from sfcprop.models.vit import vit_small8

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


_TV = "https://download.pytorch.org/models/"
_FB = "https://dl.fbaipublicfiles.com/"
_VFS = "https://github.com/xvjiarui/VFS/releases/download/v0.1-rc1/"
_LABEL_PROP = "CRW label propagation, DAVIS-2017 val 480p (topk 10, m 20, radius 12, tau 0.05)"

_ENTRIES: list[Entry] = [
    Entry(
        "fc",
        "resnet18",
        resnet18,
        256,
        releases={
            "sfc": Release(
                hub.Source(
                    "sfc",
                    "pretrained_fc.pth",
                    url="https://github.com/Alxead/SFC/releases/download/v0.1/pretrained_fc.pth",
                ),
                "fc",
            )
        },
        default="shipped",
        shipped="fc-r18-sfcprop.safetensors",
        paper="Hu et al., Semantic-Aware Fine-Grained Correspondence, ECCV 2022",
        notes="default: the shipped sfcprop-trained file (weights/); SFC's released FC "
        "with weights='sfc'",
    ),
    Entry(
        "crw",
        "resnet18-reflect",
        lambda: resnet18(padding="reflect"),
        256,
        releases={
            "crw": Release(
                hub.Source(
                    "crw",
                    "pretrained.pth",
                    url="https://github.com/ajabri/videowalk/raw/master/pretrained.pth",
                    hash="gitsha1:7d3a446fc45567471ca98d5d43bce4810b3a5759",
                ),
                "crw",
            )
        },
        default="crw",
        paper="Jabri et al., Space-Time Correspondence as a Contrastive Random Walk, NeurIPS 2020",
        licence="MIT",
        reported=Reported(67.6, _LABEL_PROP, "Jabri et al. 2020, Table 1"),
    ),
    Entry(
        "mocov1",
        "resnet50",
        resnet50,
        1024,
        releases={
            "moco_v1_200ep": Release(
                hub.Source(
                    "moco_v1_200ep",
                    "moco_v1_200ep_pretrain.pth.tar",
                    url=_FB + "moco/moco_checkpoints/moco_v1_200ep/moco_v1_200ep_pretrain.pth.tar",
                    hash="md5:b251726a",
                ),
                "mocov1",
            )
        },
        default="moco_v1_200ep",
        paper="He et al., Momentum Contrast for Unsupervised Visual Representation Learning, "
        "CVPR 2020",
        licence="CC-BY-NC-4.0",
    ),
    Entry(
        "mocov2",
        "resnet50",
        resnet50,
        1024,
        releases={
            "moco_v2_800ep": Release(
                hub.Source(
                    "moco_v2_800ep",
                    "moco_v2_800ep_pretrain.pth.tar",
                    url=_FB + "moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar",
                    hash="md5:a04e12f8",
                ),
                "mocov2",
            ),
            "moco_v2_200ep": Release(
                hub.Source(
                    "moco_v2_200ep",
                    "moco_v2_200ep_pretrain.pth.tar",
                    url=_FB + "moco/moco_checkpoints/moco_v2_200ep/moco_v2_200ep_pretrain.pth.tar",
                    hash="md5:59fd9945",
                ),
                "mocov2",
            ),
        },
        default="moco_v2_800ep",
        paper="Chen et al., Improved Baselines with Momentum Contrastive Learning, 2020",
        licence="CC-BY-NC-4.0",
    ),
    Entry(
        "simclr",
        "resnet50",
        resnet50,
        1024,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        paper="Chen et al., A Simple Framework for Contrastive Learning, ICML 2020",
        licence="Apache-2.0",
        notes="input in [0, 1] without mean/std; the release is TensorFlow "
        "(https://storage.cloud.google.com/simclr-gcs/checkpoints/ResNet50_1x.zip): convert it "
        "to torchvision names (e.g. tonylins/simclr-converter) and pass weights=<file>",
    ),
    Entry(
        "byol",
        "resnet50",
        resnet50,
        1024,
        paper="Grill et al., Bootstrap Your Own Latent, NeurIPS 2020",
        licence="Apache-2.0",
        notes="the release is a JAX/Haiku pickle "
        "(https://storage.googleapis.com/deepmind-byol/checkpoints/pretrain_res50x1.pkl): convert "
        "it to torchvision names (ssl-transfer convert_byol) and pass weights=<file>",
    ),
    Entry(
        "instdis",
        "resnet50",
        resnet50,
        1024,
        releases={
            "insdis": Release(
                hub.Source(
                    "insdis",
                    "InsDis.pth",
                    url="https://www.dropbox.com/sh/87d24jqsl6ra7t2/AACcsSIt1_Njv7GsmsuzZ6Sta/"
                    "InsDis.pth?dl=1",
                ),
                "insdis",
            )
        },
        default="insdis",
        paper="Wu et al., Unsupervised Feature Learning via Non-Parametric Instance "
        "Discrimination, CVPR 2018 (PyContrast re-release)",
        notes="layout INFERRED (model/module.encoder.), unverified against the real file",
    ),
    Entry(
        "simsiam",
        "resnet50",
        resnet50,
        1024,
        releases={
            "simsiam_100ep_256bs": Release(
                hub.Source(
                    "simsiam_100ep_256bs",
                    "checkpoint_0099.pth.tar",
                    url=_FB + "simsiam/models/100ep-256bs/pretrain/checkpoint_0099.pth.tar",
                ),
                "simsiam",
            )
        },
        default="simsiam_100ep_256bs",
        paper="Chen & He, Exploring Simple Siamese Representation Learning, CVPR 2021",
        licence="CC-BY-NC-4.0",
    ),
    Entry(
        "vince",
        "resnet50",
        resnet50,
        1024,
        releases={
            "vince_r50": Release(
                hub.Source(
                    "vince_r50",
                    "vince_resnet50.pt",
                    manual="the release is a Google Drive tar "
                    "(https://drive.google.com/uc?id=11TfKfZLLx2FYCATjkll5nUIOxSgSBWGi); "
                    "extract <method>/<NNNNNNNNN>.pt",
                ),
                "vince",
            )
        },
        default="vince_r50",
        paper="Gordon et al., Watching the World Go By: Representation Learning from "
        "Unlabeled Videos, 2020",
        notes="layout INFERRED (feature_extractor.module.model.), unverified",
    ),
    Entry(
        "vfs",
        "resnet18",
        resnet18,
        256,
        releases={
            "vfs_r18": Release(
                hub.Source(
                    "vfs_r18",
                    "r18_nc_sgd_cos_100e_r2_1xNx8_k400-db1a4c0d.pth",
                    url=_VFS + "r18_nc_sgd_cos_100e_r2_1xNx8_k400-db1a4c0d.pth",
                    hash="sha256:db1a4c0d",
                ),
                "torchvision",
            )
        },
        default="vfs_r18",
        paper="Xu & Wang, Rethinking Self-supervised Correspondence Learning: A Video "
        "Frame-level Similarity Perspective, ICCV 2021",
    ),
    Entry(
        "vfs-r50",
        "resnet50",
        resnet50,
        1024,
        releases={
            "vfs_r50": Release(
                hub.Source(
                    "vfs_r50",
                    "r50_nc_sgd_cos_100e_r5_1xNx2_k400-d7ce3ad0.pth",
                    url=_VFS + "r50_nc_sgd_cos_100e_r5_1xNx2_k400-d7ce3ad0.pth",
                    hash="sha256:d7ce3ad0",
                ),
                "torchvision",
            )
        },
        default="vfs_r50",
        paper="Xu & Wang, ICCV 2021 (see vfs)",
    ),
    Entry(
        "pixpro",
        "resnet50",
        resnet50,
        1024,
        releases={
            "pixpro_base_r50_400ep": Release(
                hub.Source(
                    "pixpro_base_r50_400ep",
                    "pixpro_base_r50_400ep_md5_919c6612.pth",
                    hash="md5:919c6612",
                    manual="the release is on Google Drive "
                    "(https://drive.google.com/file/d/1Ox2RoFbTrrllbwvITdZvwkNnKUQSUPmV/view)",
                ),
                "pixpro",
            )
        },
        default="pixpro_base_r50_400ep",
        paper="Xie et al., Propagate Yourself (PixPro), CVPR 2021",
        licence="MIT",
    ),
    Entry(
        "imagenet-r18",
        "resnet18",
        resnet18,
        256,
        releases={
            "imagenet1k_v1": Release(
                hub.Source(
                    "imagenet1k_v1_r18",
                    "resnet18-5c106cde.pth",
                    url=_TV + "resnet18-5c106cde.pth",
                    hash="sha256:5c106cde",
                    hf_repo="timm/resnet18.tv_in1k",
                    hf_filename="model.safetensors",
                ),
                "torchvision",
            )
        },
        default="imagenet1k_v1",
        paper="He et al., Deep Residual Learning, CVPR 2016 (torchvision ImageNet-1k V1 weights)",
        licence="BSD-3-Clause (torchvision)",
    ),
    Entry(
        "imagenet-r50",
        "resnet50",
        resnet50,
        1024,
        releases={
            "imagenet1k_v1": Release(
                hub.Source(
                    "imagenet1k_v1_r50",
                    "resnet50-19c8e357.pth",
                    url=_TV + "resnet50-19c8e357.pth",
                    hash="sha256:19c8e357",
                    hf_repo="timm/resnet50.tv_in1k",
                    hf_filename="model.safetensors",
                ),
                "torchvision",
            )
        },
        default="imagenet1k_v1",
        paper="He et al., Deep Residual Learning, CVPR 2016 (torchvision ImageNet-1k V1 weights)",
        licence="BSD-3-Clause (torchvision)",
    ),
    Entry(
        "dino-vits8",
        "vit_small8",
        vit_small8,
        384,
        releases={
            "dino": Release(
                hub.Source(
                    "dino_vits8",
                    "dino_deitsmall8_pretrain.pth",
                    url=_FB + "dino/dino_deitsmall8_pretrain/dino_deitsmall8_pretrain.pth",
                    hf_repo="timm/vit_small_patch8_224.dino",
                    hf_filename="model.safetensors",
                ),
                "dino",
            ),
            "dino-full": Release(
                hub.Source(
                    "dino_vits8_full",
                    "dino_deitsmall8_pretrain_full_checkpoint.pth",
                    url=_FB + "dino/dino_deitsmall8_pretrain/"
                    "dino_deitsmall8_pretrain_full_checkpoint.pth",
                ),
                "dino-full",
            ),
        },
        default="dino",
        paper="Caron et al., Emerging Properties in Self-Supervised Vision Transformers, ICCV 2021",
        licence="Apache-2.0",
        reported=Reported(
            69.9,
            "DINO eval_video_segmentation, DAVIS-2017 val 480p (n_last_frames 7, "
            "size_mask_neighborhood 12, topk 5)",
            "Caron et al. 2021, Table 5",
        ),
        notes="384-d patch tokens at stride 8 after the final norm (DINO's video segmentation)",
    ),
]

REGISTRY: dict[str, Entry] = {e.name: e for e in _ENTRIES}

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
            expected = entry.arch.split("-")[0]
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
        if not isinstance(model, ResNetTrunk):
            raise ValueError(f"sfc_bn_warmup applies to ResNet trunks, not {entry.name!r}")
        _sfc_bn_warmup(model)
    return model.to(device).eval()


# ---------------------------------------------------------------- CLI


def _sources(entry: Entry) -> str:
    kinds = []
    for release in entry.releases.values():
        src = release.source
        kind = "+".join(k for k, v in (("hf", src.hf_repo), ("url", src.url)) if v) or "manual"
        kinds.append(f"{kind}:{release.source.name}")
    if entry.shipped:
        kinds.append("shipped")
    return ", ".join(kinds) or "bring your own"


def _cached(entry: Entry) -> str:
    have = [n for n, r in entry.releases.items() if hub.cached(r.source, verify=False)]
    if entry.shipped:
        try:
            shipped_weights(entry.shipped)
            have.append("shipped")
        except FileNotFoundError:
            pass
    return ", ".join(have) or "no"


def _table(entries: Sequence[Entry]) -> str:
    rows = [("name", "arch", "dim", "sources", "cached", f"J&F ({REPORTED})")]
    for e in entries:
        jf = f"{e.reported.jf:.1f} ({e.reported.source})" if e.reported else "-"
        rows.append((e.name, e.arch, str(e.dim), _sources(e), _cached(e), jf))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _verification(entries: Sequence[Entry]) -> str:
    """One line per release: a full hash in the registry, or pinned on first use."""
    rows = [
        (f"{e.name}/{n}", hub.verification(r.source))
        for e in entries
        for n, r in e.releases.items()
    ]
    width = max((len(r[0]) for r in rows), default=0)
    return "\n".join(f"  {name.ljust(width)}  {how}" for name, how in rows)


CLI_EXAMPLES = """examples:
  sfcprop backbones                  # every backbone: sources, cached?, verification
  sfcprop backbones crw              # one backbone: paper, licence, release URLs, cache paths
  HF_HUB_OFFLINE=1 sfcprop backbones # the same without touching the network

In Python: sfcprop.backbone("fc") (the shipped model), sfcprop.backbone("fc", weights="sfc")
(SFC's release, downloaded once and verified), sfcprop.backbone("mocov2", weights="file.pth").
"""


def cli_main(argv: Sequence[str] | None = None) -> int:
    """`sfcprop backbones [NAME]`: the registry table, or one entry's details."""
    parser = argparse.ArgumentParser(
        prog="sfcprop backbones",
        description="List the backbone registry, or show one backbone's details.",
        epilog=CLI_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", help="show one backbone's details")
    args = parser.parse_args(argv)
    if args.name is None:
        print(_table(_ENTRIES))
        print(f"\nverification (checked on download and on every load):\n{_verification(_ENTRIES)}")
        print(f"\ncache: {hub.cache_dir()}  (SFCPROP_CACHE; HF_HUB_OFFLINE=1 for no network)")
        return 0
    if args.name not in REGISTRY:
        print(
            f"sfcprop: error: unknown backbone {args.name!r}; known: {', '.join(REGISTRY)}",
            file=sys.stderr,
        )
        return 1
    e = REGISTRY[args.name]
    print(_table([e]))
    for label, value in (("paper", e.paper), ("licence", e.licence), ("notes", e.notes)):
        if value:
            print(f"{label}: {value}")
    if e.reported:
        print(f"DAVIS J&F {e.reported.jf} ({REPORTED}: {e.reported.source}; {e.reported.protocol})")
    for name, release in e.releases.items():
        src = release.source
        print(f"release {name}: {src.url or src.manual or src.hf_repo} -> {hub.cache_path(src)}")
        print(f"  verified: {hub.verification(src)}")
    return 0
