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
