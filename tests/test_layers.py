"""The layers of docs/architecture.md: imports run one way, from apps down to config and
errors. The imports of every module of sfcprop (at any depth, lazy ones included) are read
from its source; an import of a higher layer, or of a sibling folder of the same layer, fails."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sfcprop"
# layer of each room; a room may import its own layer's modules only inside its own folder
LAYERS = {
    "config": 0,
    "errors": 0,
    "io": 1,
    "labels": 2,
    "models": 2,
    "bench": 2,
    "core": 3,
    "session": 4,
    "train": 5,
    "integrations": 6,
    "apps": 7,
}
TOP = {"__init__", "_aliases"}  # the public face: lazy names of every layer


def room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "sfcprop" else None


def imports(path: Path) -> list[tuple[int, str]]:
    """`(line, module)` of each sfcprop module that `path` imports."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "sfcprop":
                out += [(node.lineno, f"sfcprop.{a.name}") for a in node.names]
            elif node.module.startswith("sfcprop."):
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level:
            out.append((node.lineno, "relative"))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("sfcprop.")]
    return out


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.stem not in TOP or p.parent != PACKAGE)


def test_every_room_has_a_layer():
    rooms = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in modules()}
    assert rooms - {"py.typed"} <= set(LAYERS), rooms - set(LAYERS)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way(path):
    mine = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    bad = []
    for line, target in imports(path):
        if target == "relative":
            bad.append(f"line {line}: a relative import (write sfcprop.<room>.<module>)")
            continue
        theirs = room(target)
        if theirs not in LAYERS or theirs == mine:
            continue
        if LAYERS[theirs] > LAYERS[mine] or (LAYERS[theirs] == LAYERS[mine] and mine != theirs):
            bad.append(f"line {line}: {mine} (layer {LAYERS[mine]}) imports {target}")
    assert not bad, "\n".join(bad)


def test_the_checker_catches_an_upward_import(tmp_path):
    """The rule itself, on a module written here: core importing session is upward."""
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from sfcprop.session import Session\n")
    assert imports(source) == [(2, "sfcprop.session")]
    assert LAYERS[room("sfcprop.session")] > LAYERS["core"]
