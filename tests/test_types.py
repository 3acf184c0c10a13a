"""The package type-checks: ``python -m mypy fastconv`` under pyproject.toml's ``[tool.mypy]``.

mypy comes with the ``test`` extra, which CI installs. Without it the tests
skip, saying so, unless ``FASTCONV_REQUIRE_TYPES=1``, where that fails.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastconv

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(fastconv.__file__).resolve().parent


def _require_mypy():
    if importlib.util.find_spec("mypy") is None:
        if os.environ.get("FASTCONV_REQUIRE_TYPES") == "1":
            pytest.fail("FASTCONV_REQUIRE_TYPES=1 but mypy is not installed: "
                        "the type check would vanish")
        pytest.skip("mypy is not installed (it comes with the test extra: "
                    "pip install -e '.[test]')")


@pytest.fixture(scope="module")
def mypy(tmp_path_factory):
    """Run mypy from the repository root (so it reads pyproject.toml), its cache in a temp dir."""
    _require_mypy()
    cache = tmp_path_factory.mktemp("mypy-cache")

    def run(*targets):
        return subprocess.run(
            [sys.executable, "-m", "mypy", "--cache-dir", str(cache), "--no-error-summary",
             "--hide-error-context", *targets],
            cwd=ROOT, capture_output=True, text=True, timeout=600)
    return run


def test_package_type_checks(mypy):
    result = mypy("fastconv")
    assert result.returncode == 0, f"mypy found errors:\n{result.stdout}{result.stderr}"


def test_annotations_reach_callers(mypy, tmp_path):
    """A caller passing wrong types is flagged: the checks above are not vacuous."""
    caller = tmp_path / "caller.py"
    caller.write_text(
        "import fastconv\n"
        "from fastconv.backend import to_device\n"
        "fastconv.set_workspace_limit('a lot')\n"
        "to_device([1.0], 3)\n", encoding="utf-8")
    result = mypy(str(caller))
    flagged = [line.split(":")[1] for line in result.stdout.splitlines()
               if line.startswith(f"{caller}:") and ": error:" in line]
    assert flagged == ["3", "4"], result.stdout + result.stderr


def test_package_ships_its_py_typed_marker():
    assert (PACKAGE / "py.typed").is_file()
    tomllib = pytest.importorskip("tomllib",
                                  reason="pyproject.toml is read with tomllib (Python 3.11+)")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["fastconv"]
