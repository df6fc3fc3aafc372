"""Named parameter sets of the SFC paper (Tables A.1, A.2) and the released commands."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Preset:
    """Propagation parameters.

    topk: keys kept per query cell; context: m, the preceding frames in memory (plus
    frame 0); radius: short-term neighbourhood in feature cells (strict); temperature:
    softmax temperature; lam: weight of the fine-grained backbone when two are fused;
    short_side: frames resized to this short side by the dataset protocol (None: native).
    """

    topk: int
    context: int
    radius: float
    temperature: float
    lam: float | None = None
    short_side: int | None = None
    note: str = ""


PRESETS: dict[str, Preset] = {
    "davis": Preset(10, 20, 12, 0.05, note="SFC Table A.1, one backbone"),
    "davis-sfc": Preset(15, 20, 15, 0.1, 1.75, note="SFC Table A.2, fused (released command)"),
    "jhmdb": Preset(10, 8, 3, 0.05, note="temperature assumed (not stated in the paper)"),
    "jhmdb-sfc": Preset(20, 8, 5, 0.1, 1.0, note="temperature assumed (not stated)"),
    "vip": Preset(10, 8, 15, 0.05, short_side=560, note="temperature assumed (not stated)"),
    "vip-sfc": Preset(10, 8, 15, 0.1, 1.0, short_side=560, note="temperature assumed (not stated)"),
}


def get_preset(name: str | Preset, **overrides) -> Preset:
    """A preset by name (see `PRESETS`), with any non-None keyword overriding a field."""
    if isinstance(name, Preset):
        preset = name
    elif name in PRESETS:
        preset = PRESETS[name]
    else:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    preset = replace(preset, **overrides)
    if preset.topk < 1 or preset.context < 0 or preset.radius <= 0 or preset.temperature <= 0:
        raise ValueError(
            f"invalid parameters {preset}: need topk >= 1, context >= 0, radius > 0, "
            "temperature > 0"
        )
    return preset
