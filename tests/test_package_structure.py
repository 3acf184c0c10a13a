"""The package's shape: every module imports on its own, no import cycle, no module over 450 lines.

The import graph is read statically (``ast``) from every ``import`` and ``from``
statement, function-level ones included, so a cycle hidden behind a lazy
import is found too. Importing ``fastconv.a.b`` also runs ``fastconv/a/__init__.py``
first, so a module outside package ``fastconv.a`` that imports from it depends on
that ``__init__`` as well. The root package, which every module shares, is left
out.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import fastconv

PACKAGE = Path(fastconv.__file__).parent
MAX_LINES = 450


def _module_names():
    """{dotted name: path} of every module of the package."""
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("fastconv",) + path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


MODULES = _module_names()


def _is_package(name):
    return MODULES.get(name, Path()).name == "__init__.py"


def _imported(name, path):
    """The fastconv modules that module ``name`` imports, as dotted names."""
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in MODULES and m != "fastconv"}


def _graph():
    """{module: the modules importing it runs}, with the package __init__ rule of the module doc."""
    graph = {}
    for name, path in MODULES.items():
        edges = set()
        for target in _imported(name, path) - {name}:
            edges.add(target)
            parts = target.split(".")
            for depth in range(2, len(parts)):
                parent = ".".join(parts[:depth])
                if not (name == parent or name.startswith(parent + ".")):
                    edges.add(parent)
        graph[name] = edges
    return graph


def _cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def test_the_graph_reader_sees_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    graph = _graph()  # a relative import, and a sibling inside the importer's own package
    assert "fastconv._backends" in graph["fastconv.functional.conv"]
    assert "fastconv._cpu.im2col" in graph["fastconv._cpu.conv"]
    assert "fastconv._cpu" not in graph["fastconv._cpu.conv"]


def test_no_import_cycle_among_fastconv_modules():
    assert _cycle(_graph()) is None, f"import cycle: {' -> '.join(_cycle(_graph()))}"


def test_no_module_is_longer_than_450_lines():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.endswith(".__main__")))
def test_every_module_imports_on_its_own(module):
    """In a fresh interpreter each (``__main__`` modules run the command, so they are left out).

    The torch bridge needs the optional torch; everything else needs NumPy only.
    """
    if module == "fastconv.interop.torch":
        pytest.importorskip("torch", reason="fastconv.interop.torch needs the torch extra")
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
