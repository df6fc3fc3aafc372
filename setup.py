"""The one build step that pyproject.toml cannot declare: ship the top-level `weights/`
folder inside the wheel as the package `sfcprop.weights`.

A `package-dir` mapping (`sfcprop.weights` -> `weights`) would do it too, but it makes an
editable install use an import hook that a folder named `sfcprop` in the working directory
(the clone itself, seen from the folder above it) shadows. Without it an editable install
is a plain path entry, and `sfcprop.backbones.registry.shipped_weights` finds `weights/`
beside the package.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("__init__.py", "*.safetensors", "*.md", "*.csv")  # what weights/ ships


def weight_files() -> list[Path]:
    """The files of `weights/` that go into the wheel, in a fixed order."""
    return sorted({p for pattern in SHIPPED for p in (ROOT / "weights").glob(pattern)})


class BuildPyWithWeights(build_py):
    """`build_py`, then `weights/*` copied into the build as `sfcprop/weights/*` (not for an
    editable install, which reads `weights/` in place)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        self.mkpath(str(Path(self.build_lib, "sfcprop", "weights")))
        for src, dst in zip(weight_files(), self._weight_outputs(), strict=True):
            self.copy_file(str(src), dst)

    def _weight_outputs(self) -> list[str]:
        return [str(Path(self.build_lib, "sfcprop", "weights", p.name)) for p in weight_files()]

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        extra = [] if self.editable_mode else self._weight_outputs()
        return [*super().get_outputs(include_bytecode), *extra]

    def get_source_files(self) -> list[str]:  # what an sdist takes
        return [*super().get_source_files(), *(str(p.relative_to(ROOT)) for p in weight_files())]


setup(cmdclass={"build_py": BuildPyWithWeights})
