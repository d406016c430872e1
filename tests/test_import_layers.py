"""sr_lib's imports run one way, down the layers below, with no circle; no module grows past about 400 lines."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sr_lib"
# The layer order, written once: a module may import its own layer and the layers above it in this list (lower
# layers), never one further down. Within a layer, modules may import each other, but not in a circle.
LAYERS = [
    ("sr_lib.console", "sr_lib.core"),
    ("sr_lib.data",),
    ("sr_lib.nets",),
    ("sr_lib.losses",),
    ("sr_lib.config", "sr_lib.runtime"),
    ("sr_lib.inference",),
    ("sr_lib.evaluation",),
    ("sr_lib.mos",),
    ("sr_lib.training",),
    ("sr_lib.cli", "sr_lib.__main__"),
]
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    for index, prefixes in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return index
    raise AssertionError(f"{module} is in no layer of tests/test_import_layers.py")


def _imports(path: Path) -> set:
    """Every sr_lib module ``path`` imports, at the top or inside a function (``from sr_lib.x import y`` counts as
    ``sr_lib.x.y`` when that is a module)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names if alias.name.startswith("sr_lib.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("sr_lib"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                modules.add(candidate if candidate in GRAPH_MODULES else node.module)
    return {module for module in modules if module != "sr_lib"}  # The package itself: its __init__ registers layers.


FILES = sorted(PACKAGE.rglob("*.py"))
GRAPH_MODULES = {_module_name(path) for path in FILES}
# sr_lib/__init__.py only registers the custom layers (and quiets `python -m`); every module runs it first anyway.
GRAPH = {_module_name(path): _imports(path) for path in FILES if path != PACKAGE / "__init__.py"}


def test_every_import_runs_down_the_layers():
    upward = [f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
              for module, targets in GRAPH.items() for target in targets if _layer(target) > _layer(module)]
    assert upward == []


def test_no_import_circle():
    state, path = {}, []

    def visit(module):
        state[module] = "open"
        path.append(module)
        for target in sorted(GRAPH.get(module, ())):
            target = target if target in GRAPH else target.rsplit(".", 1)[0]
            if state.get(target) == "open":
                pytest.fail("import circle: " + " -> ".join(path[path.index(target):] + [target]))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_the_layer_test_sees_an_upward_import(tmp_path):
    """The check is not vacuous: a data module importing training is caught."""
    fake = tmp_path / "x.py"
    fake.write_text("def f():\n    from sr_lib.training.phases import pretrain\n")
    assert _imports(fake) == {"sr_lib.training.phases"}
    assert _layer("sr_lib.training.phases") > _layer("sr_lib.data.files")


@pytest.mark.parametrize("path", FILES, ids=lambda path: _module_name(path))
def test_modules_stay_short(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES, f"{path} has grown past {MAX_LINES} lines: split it"
