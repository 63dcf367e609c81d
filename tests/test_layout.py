"""The tree explains the system: small files and classes, a CLI that only uses the library's public names."""

import ast
import importlib
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "src" / "sparse_rcnn"


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_files_and_classes_fit_one_sitting():
    long_files = [str(p.relative_to(PACKAGE)) for p in _modules() if len(p.read_text().splitlines()) > 300]
    assert not long_files, f"files over 300 lines: {long_files}"
    big_classes = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 200:
                big_classes.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert not big_classes, f"classes over 200 lines: {big_classes}"


def test_cli_imports_only_public_names_of_the_library():
    private = []
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:  # from ..X import names
                module = importlib.import_module(f"sparse_rcnn.{node.module}")
                public = getattr(module, "__all__", None)
                for alias in node.names:
                    if (
                        "." in node.module
                        or alias.name.startswith("_")
                        or (public is not None and alias.name not in public)
                    ):
                        private.append(f"{path.name}: from ..{node.module} import {alias.name}")
    assert not private, private


# The layers, bottom first: a package imports only from packages of lower layers (and itself).
# docs/architecture.md draws the same order; change both together.
LAYERS = [
    ("common", "config"),
    ("ops", "data", "checkpoints"),
    ("models",),
    ("deploy", "inference"),
    ("evaluation",),
    ("visualize",),
    ("engine", "serve", "video"),
    ("cli",),
]
LAYER = {package: level for level, packages in enumerate(LAYERS) for package in packages}


def _imports():
    """(importing module, imported module, inside a function?) for every import of our package."""
    found = []
    for path in _modules():
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
        here = ".".join(parts)
        base = parts if rel.name == "__init__" else parts[:-1]
        tree = ast.parse(path.read_text())
        nested = {
            id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(f)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                target = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sparse_rcnn"):
                target = node.module
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("sparse_rcnn")]
                found += [(here, target, id(node) in nested) for target in targets]
                continue
            else:
                continue
            # `from . import module` imports that module, not the package's __init__
            targets = [
                f"{target}.{a.name}"
                for a in node.names
                if (PACKAGE.parent / f"{target}.{a.name}".replace(".", "/")).with_suffix(".py").exists()
            ]
            found += [(here, t, id(node) in nested) for t in targets or [target]]
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages - {"configs"} <= set(LAYER), f"packages without a layer: {sorted(packages - set(LAYER))}"


def test_imports_point_down_the_layers():
    wrong = []
    for here, target, _ in _imports():
        a, b = _package(here), _package(target)
        if a and b and a != b and not LAYER[b] < LAYER[a]:
            wrong.append(f"{here} -> {target}")
    assert not wrong, "imports that do not point down the layers:\n" + "\n".join(sorted(set(wrong)))


def test_no_imports_of_our_package_inside_functions():
    inside = sorted({f"{here} -> {target}" for here, target, nested in _imports() if nested})
    assert not inside, "imports inside functions (they hide import circles):\n" + "\n".join(inside)


def test_no_import_circles_between_modules():
    modules = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts) for p in _modules()}
    graph: dict[str, set[str]] = {}
    for here, target, _ in _imports():
        here = here if here in modules else here + ".__init__"
        # `from .x import name` may name a module of package x: count the package's __init__
        node = target if target in modules else target + ".__init__"
        if node in modules and node != here:
            graph.setdefault(here, set()).add(node)
    # A package's __init__ re-exports its modules; a module importing its own package's __init__
    # would be the circle, so those edges stay in.
    state: dict[str, int] = {}
    circles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not circles, "import circles:\n" + "\n".join(circles)
