"""The shape of the package, as docs/architecture.md draws it: small functions, small modules,
the runtime boundary on folders (lint-imports checks the imports themselves)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cifar_pack"
MAX_FUNCTION_BODY = 60  # lines, docstring included
MAX_MODULE = 450  # lines


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_function_body_over_60_lines():
    long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.body[0].lineno + 1
                if lines > MAX_FUNCTION_BODY:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_no_module_over_450_lines():
    big = [f"{p.relative_to(ROOT)} ({n})" for p in _sources() if (n := len(p.read_text().splitlines())) > MAX_MODULE]
    assert not big, big


def test_every_folder_is_placed_and_the_boundary_is_declared_on_folders():
    """A new top-level module or folder must be placed in a layer; forbidden contracts name folders."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in config if c["type"] == "layers")
    placed = {name.strip() for layer in layers["layers"] for name in layer.split("|")}
    placed |= set(layers["exhaustive_ignores"])
    children = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    children |= {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert children <= placed, children - placed
    for contract in (c for c in config if c["type"] == "forbidden"):
        assert len(contract["source_modules"]) <= 3, contract["name"]


@pytest.mark.parametrize("side", ["runtime", "serve"])
def test_runtime_and_server_folders_import_no_tensorflow_even_lazily(side):
    """The same rule lint-imports enforces, read straight from the source (so it cannot be configured away)."""
    offenders = []
    for path in (PACKAGE / side).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("tensorflow", "keras", "tf2onnx")
            ]
    assert not offenders, offenders
