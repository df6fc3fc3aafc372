"""The released checkpoint layouts: where each file keeps its encoder and how its keys become
the test-time trunk's (`LAYOUTS`, looked up by name or release alias with `resolve_layout`)."""

from __future__ import annotations

from dataclasses import dataclass


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


def resolve_layout(name: str) -> Layout:
    """A layout by name or release alias (`"moco"`, `"imagenet-r50"`, ...)."""
    key = ALIASES.get(name, name)
    if key not in LAYOUTS:
        known = sorted({*LAYOUTS, *ALIASES})
        raise ValueError(f"unknown checkpoint layout {name!r}; known: {', '.join(known)}")
    return LAYOUTS[key]
