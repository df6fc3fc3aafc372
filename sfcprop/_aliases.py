"""The module paths of the flat layout (0.1), kept for one release: `import sfcprop.codecs`
gives `sfcprop.labels.codecs` with a DeprecationWarning naming the new path."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

MOVED = {
    "sfcprop.affinity": "sfcprop.core.affinity",
    "sfcprop.backbones": "sfcprop.models",
    "sfcprop.backbones.base": "sfcprop.models.base",
    "sfcprop.backbones.registry": "sfcprop.models.registry",
    "sfcprop.backbones.resnet": "sfcprop.models.resnet",
    "sfcprop.backbones.vit": "sfcprop.models.vit",
    "sfcprop.backbones.adapter": "sfcprop.models.adapter",
    "sfcprop.budget": "sfcprop.core.budget",
    "sfcprop.checkpoints": "sfcprop.models.checkpoints",
    "sfcprop.cli": "sfcprop.apps.cli",
    "sfcprop.codecs": "sfcprop.labels.codecs",
    "sfcprop.confidence": "sfcprop.session.confidence",
    "sfcprop.datasets": "sfcprop.bench.datasets",
    "sfcprop.demo": "sfcprop.apps.demo",
    "sfcprop.evaluate": "sfcprop.apps.eval",
    "sfcprop.features": "sfcprop.core.features",
    "sfcprop.framestore": "sfcprop.io.framestore",
    "sfcprop.hub": "sfcprop.models.hub",
    "sfcprop.keypoints": "sfcprop.labels.keypoints",
    "sfcprop.metrics": "sfcprop.bench.metrics",
    "sfcprop.precision": "sfcprop.core.precision",
    "sfcprop.progress": "sfcprop.io.progress",
    "sfcprop.propagation": "sfcprop.session",
    "sfcprop.propagator": "sfcprop.core.propagator",
    "sfcprop.runs": "sfcprop.io.atomic",
    "sfcprop.synthetic": "sfcprop.bench.synthetic",
    "sfcprop.tracking": "sfcprop.session.tracking",
    "sfcprop.viz": "sfcprop.io.viz",
}


def moved(name: str) -> str | None:
    """The new path of an old module name (a submodule of an old package included:
    `sfcprop.backbones.bn_warmup` -> `sfcprop.models.bn_warmup`), None if it did not move."""
    if name in MOVED:
        return MOVED[name]
    package, _, leaf = name.rpartition(".")
    return f"{MOVED[package]}.{leaf}" if package in MOVED else None


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if moved(fullname) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=False)

    def create_module(self, spec):
        new = moved(spec.name)
        warnings.warn(
            f"{spec.name} moved to {new} (sfcprop 0.2); the old path goes in the next release",
            DeprecationWarning,
            stacklevel=3,
        )
        return importlib.import_module(new)

    def exec_module(self, module) -> None:
        pass


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        # first: an old submodule path (sfcprop.backbones.registry) is then the moved module
        # itself, not a second copy loaded through the aliased package's __path__
        sys.meta_path.insert(0, _Alias())
