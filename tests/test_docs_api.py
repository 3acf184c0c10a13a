"""The API reference (docs/api/*.rst) documents every public name of the modules it covers.

A module's public names are its ``__all__``; without one, what it defines at
top level (functions, classes, assignments) and, for a package, what its
``__init__`` imports from its own submodules; never names starting with ``_``.
A name counts as documented when an ``auto*`` directive documents it or the
same object under another name (the ops that ``fastconv`` re-exports are
documented once, in :mod:`fastconv.functional`).
"""

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

API = Path(__file__).resolve().parent.parent / "docs" / "api"
COVERED = ["fastconv", "fastconv.functional", "fastconv.nn", "fastconv.nn.models",
           "fastconv.optim", "fastconv.train", "fastconv.data", "fastconv.gradcheck",
           "fastconv.workspace", "fastconv.distributed", "fastconv.compat.cs231n",
           "fastconv.compat.dlfs", "fastconv.compat.im2col_cython", "fastconv.interop.torch"]
DIRECTIVE = re.compile(r"^\.\. (auto\w+|module|currentmodule)::\s*(\S+)", re.MULTILINE)
MODULE_DIRECTIVES = {"automodule", "module", "currentmodule"}


def public_names(module):
    """The public names of ``module`` (see the module docstring)."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    is_package = hasattr(module, "__path__")
    names = []
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
        elif isinstance(node, ast.ImportFrom) and node.level == 1 and is_package:
            names += [alias.asname or alias.name for alias in node.names]
    return [name for name in dict.fromkeys(names) if not name.startswith("_")]


def _resolve(dotted):
    """The object a dotted name refers to: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def documented():
    """{full name: object} of everything an auto* directive of docs/api documents."""
    found = {}
    for page in sorted(API.glob("*.rst")):
        current = None
        for kind, target in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            if kind in MODULE_DIRECTIVES:
                current = target
                continue
            if kind == "autosummary":
                continue
            name = target if current is None or target.startswith("fastconv.") else \
                f"{current}.{target}"
            found[name] = _resolve(name)
    return found


@pytest.fixture(scope="module")
def reference():
    return documented()


def test_reference_directives_resolve(reference):
    assert len(reference) > 100  # the pages were read


@pytest.mark.parametrize("module_name", COVERED)
def test_every_public_name_documented(module_name, reference):
    module = importlib.import_module(module_name)
    objects = list(reference.values())
    missing = []
    for name in public_names(module):
        obj = getattr(module, name)
        full = f"{module_name}.{name}"
        if full in reference:
            continue
        # Identity says nothing for a str or a number (equal values may be one object).
        shared = not isinstance(obj, (str, bytes, int, float, type(None)))
        if shared and any(obj is o for o in objects):
            continue
        missing.append(name)
    assert not missing, (f"{module_name}: not in the API reference (docs/api/*.rst): "
                         f"{', '.join(missing)}")
