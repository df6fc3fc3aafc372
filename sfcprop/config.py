"""`Config`: every choice of a propagation run, in one frozen object; the presets.

A `Config` holds the protocol (topk, context, radius, temperature, lam) and the run-time
choices (how frames are resized, precision, memory limit, device). It is built once, from a
preset plus overrides (`Config.preset("davis", radius=15)`), validated here and only here,
and passed whole. The command line's flags are generated from its fields
(`add_arguments` / `from_args`), so each field is written once.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, NoReturn

RESIZE_POLICIES = ("antialias", "float")
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
PRECISIONS = ("float32", "float16", "bfloat16")
# other keyframes a pass keeps as global keys (benchmarks/bench_stretches.py, README "Keyframes")
KEYFRAME_MEMORY = 0


def _f(default: Any, help: str, *, cli: bool = True) -> Any:
    return field(default=default, metadata={"help": help, "cli": cli})


@dataclass(frozen=True)
class Config:
    """The parameters of one propagation run (see `PRESETS` for the published sets).

    Protocol (spec sections 4-5): `topk` keys kept per query cell; `context` m, the
    preceding frames in memory besides the keyframe; `radius` of the short-term
    neighbourhood in feature cells (strict); softmax `temperature`; `lam`, the weight of
    the fine-grained backbone when two are fused (None with one backbone).

    Run-time: frames are encoded at their size, or resized to `size` `(H, W)` exactly or
    to `short_side` (aspect kept) with the `resize` policy: "antialias" (uint8, bilinear,
    antialiased when shrinking: best for a user's large frames) or "float" (CRW's
    benchmark protocol: the float image in [0, 1], bilinear, half-pixel centres, no
    antialiasing, no rounding). Labels come back at the frame's own size. `precision`
    "float32" (the reference results) or "float16" / "bfloat16" (faster, not exact);
    `max_memory` bytes (or "4GiB") the estimated peak must fit; `device` "cpu", "cuda" ...
    """

    topk: int = _f(10, "keys kept per query cell")
    context: int = _f(20, "preceding frames in memory (m), besides the keyframe")
    radius: float = _f(12.0, "short-term neighbourhood, feature cells (strict)")
    temperature: float = _f(0.05, "softmax temperature")
    lam: float | None = _f(None, "weight of the fine-grained backbone when two are fused")
    size: tuple[int, int] | None = _f(
        None, "resize frames to exactly HxW (or N: NxN) before the backbone"
    )
    short_side: int | None = _f(
        None, "resize frames to this shorter side before the backbone (aspect kept)"
    )
    resize: str = _f(
        "antialias",
        "how frames are resized: antialias (uint8, antialiased) or float (CRW's benchmark "
        "protocol: float image, bilinear, no antialiasing, no rounding)",
    )
    precision: str = _f(
        "float32",
        "float32 gives the reference results; float16/bfloat16 keep features in half "
        "precision: faster where the hardware has units for them, but the top-k differs in "
        "some cells",
    )
    max_memory: int | None = _f(
        None,
        "peak memory to stay under, e.g. 4GiB or 800MB: the affinity works in smaller blocks "
        "to fit, or the run stops before any work saying what would fit",
    )
    device: str = _f("cpu", "cpu, cuda, cuda:1 ...")
    keyframe_memory: int = _f(
        KEYFRAME_MEMORY,
        "other keyframes (the nearest) each pass keeps as global keys besides its own; 0: "
        "each pass sees its own keyframe only (sfcprop 0.3)",
    )
    note: str = field(default="", compare=False, metadata={"cli": False})

    def __post_init__(self) -> None:
        _check_int("topk", self.topk, 1)
        _check_int("context", self.context, 0)
        _check_int("keyframe_memory", self.keyframe_memory, 0)
        _check_positive("radius", self.radius)
        _check_positive("temperature", self.temperature)
        if self.lam is not None:
            _check_positive("lam", self.lam)
        if self.size is not None:
            size = tuple(self.size)
            if len(size) != 2 or any(not _is_int(v) or v < 1 for v in size):
                raise ValueError(f"size must be (H, W) of positive integers, got {self.size!r}")
            object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        if self.short_side is not None:
            _check_int("short_side", self.short_side, 1)
        if self.size is not None and self.short_side is not None:
            raise ValueError("give size or short_side, not both")
        if self.resize not in RESIZE_POLICIES:
            raise ValueError(f"resize must be one of {RESIZE_POLICIES}, got {self.resize!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.max_memory is not None:
            object.__setattr__(self, "max_memory", parse_bytes(self.max_memory))
        if not isinstance(self.device, str):
            object.__setattr__(self, "device", str(self.device))

    @classmethod
    def preset(cls, name: str | Config, **overrides: Any) -> Config:
        """The preset `name` (see `PRESETS`, or a `Config`) with every non-None keyword
        overriding a field (unknown names are an error)."""
        if isinstance(name, Config):
            if not any(v is not None for v in overrides.values()):
                return name  # built once, passed whole
            base = name
        elif name in PRESETS:
            base = PRESETS[name]
        else:
            raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown parameter(s) {unknown}; a Config has {sorted(known)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        if "short_side" in given and "size" not in given:
            given["size"] = None  # the last resize asked for wins over the preset's
        if "size" in given and "short_side" not in given:
            given["short_side"] = None
        return replace(base, **given)

    @classmethod
    def for_run(cls, fused: bool, preset: str | Config | None = None, **settings: Any) -> Config:
        """The `Config` of a run with one backbone or two (`fused`): `preset` (default
        "davis", "davis-sfc" when fused) with `settings` overriding its fields; `lam` must be
        set exactly when two backbones are fused (the one place of that rule)."""
        cfg = cls.preset(preset or ("davis-sfc" if fused else "davis"), **settings)
        if not fused and cfg.lam is not None:
            raise ValueError(
                f"lam = {cfg.lam} weighs the fine backbone against a semantic one; with one "
                "backbone it has no effect: drop lam (or the fused preset), or pass semantic"
            )
        if fused and cfg.lam is None:
            raise ValueError(f"fusing two backbones needs lam; {cfg} has none")
        return cfg

    def encoded_size(self, height: int, width: int) -> tuple[int, int]:
        """The `(H, W)` a `height x width` frame is encoded at."""
        if self.size is not None:
            return self.size
        if self.short_side is None:
            return int(height), int(width)
        scale = self.short_side / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))

    def protocol(self) -> dict[str, Any]:
        """The five protocol fields, as a dict (for reports and settings files)."""
        return {k: getattr(self, k) for k in ("topk", "context", "radius", "temperature", "lam")}


def parse_bytes(value: int | float | str) -> int:
    """Bytes from `4e9`, `"4GB"` (10^9), `"4GiB"` (2^30), `"512 MiB"`, `"800M"` (10^6); a
    ValueError for anything but a finite positive size."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, float):
        size = _whole(value, value)
    else:
        match = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([kmgt]?)(i?)b?\s*", str(value).lower())
        if not match:
            _not_a_size(value)
        number, unit, binary = match.groups()
        scale = 1024 ** "_kmgt".index(unit) if binary and unit else _UNITS[unit]
        try:
            size = _whole(float(number) * scale, value)
        except ValueError:  # "1.2.3"
            _not_a_size(value)
    if size <= 0:
        raise ValueError(f"max_memory must be positive, got {value!r}")
    return size


def _whole(number: float, value: Any) -> int:
    if not math.isfinite(number):  # 1e400 is inf: no number of bytes
        _not_a_size(value)
    return int(number)


def _not_a_size(value: Any) -> NoReturn:
    raise ValueError(
        "max_memory must be a finite positive number of bytes or a size like '4GiB', '512MB', "
        f"got {value!r}"
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_int(name: str, value: Any, low: int) -> None:
    if not _is_int(value) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_positive(name: str, value: Any) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


PRESETS: dict[str, Config] = {
    "davis": Config(10, 20, 12, 0.05, note="SFC Table A.1, one backbone"),
    "davis-sfc": Config(15, 20, 15, 0.1, 1.75, note="SFC Table A.2, fused (released command)"),
    "jhmdb": Config(
        10,
        8,
        3,
        0.05,
        size=(320, 320),
        resize="float",
        note="temperature assumed (not stated in the paper); frames 320x320 as CRW",
    ),
    "jhmdb-sfc": Config(
        20, 8, 5, 0.1, 1.0, size=(320, 320), resize="float", note="temperature assumed"
    ),
    "vip": Config(
        10,
        8,
        15,
        0.05,
        size=(560, 560),
        resize="float",
        note="temperature assumed (not stated); frames 560x560 as CRW's loader",
    ),
    "vip-sfc": Config(
        10, 8, 15, 0.1, 1.0, size=(560, 560), resize="float", note="temperature assumed"
    ),
}

_Preset = Config  # 0.1's name, deprecated (`sfcprop.Preset`)


def _get_preset(name: str | Config, **overrides: Any) -> Config:
    """`Config.preset(name, **overrides)` (0.1's name, deprecated)."""
    return Config.preset(name, **overrides)


def __getattr__(name: str) -> Any:
    if name in ("Preset", "get_preset"):
        import warnings

        new = "Config" if name == "Preset" else "Config.preset"
        warnings.warn(
            f"sfcprop.config.{name} is deprecated: use {new}", DeprecationWarning, stacklevel=2
        )
        return globals()[f"_{name}"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- command line


def _size(text: str) -> tuple[int, int]:
    """`HxW`, or `N` for a square."""
    try:
        parts = [int(v) for v in text.lower().split("x")]
        h, w = parts * 2 if len(parts) == 1 else parts
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected HxW such as 320x320 (or N for NxN), got {text!r}"
        ) from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return h, w


def _bytes(text: str) -> int:
    try:
        return parse_bytes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


_TYPES = {"size": _size, "max_memory": _bytes, "short_side": int}
_TYPES |= dict.fromkeys(("topk", "context", "keyframe_memory"), int)
_CHOICES = {"resize": RESIZE_POLICIES, "precision": PRECISIONS}
_METAVARS = {"size": "HxW", "max_memory": "SIZE", "short_side": "N", "keyframe_memory": "N"}


def add_arguments(
    parser: argparse.ArgumentParser, skip: tuple[str, ...] = (), defaults: str = "the preset's"
) -> None:
    """One `--flag` per `Config` field (but `skip`), all defaulting to None (= `defaults`)."""
    group = parser.add_argument_group(f"propagation settings (default: {defaults})")
    for f in fields(Config):
        if not f.metadata.get("cli", True) or f.name in skip:
            continue
        kind = _TYPES.get(f.name, float if f.name in ("radius", "temperature", "lam") else str)
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            type=kind,
            default=None,
            choices=_CHOICES.get(f.name),
            metavar=_METAVARS.get(f.name),
            help=f"{f.metadata['help']} (default: {_default(f)})",
        )


def _default(f) -> str:
    return (
        "preset"
        if f.name in ("topk", "context", "radius", "temperature", "lam")
        else (repr(f.default) if f.default is not MISSING else "-")
    )


def from_args(args: argparse.Namespace, preset: str | Config, **extra: Any) -> Config:
    """The `Config` of parsed flags (those `add_arguments` made) over `preset`; `extra`
    (non-None) wins over both."""
    given = {f.name: getattr(args, f.name, None) for f in fields(Config) if f.metadata.get("cli")}
    given.update({k: v for k, v in extra.items() if v is not None})
    return Config.preset(preset, **given)
