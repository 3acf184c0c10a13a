"""Every ```python block of README.md and docs/*.md runs.

The blocks of one page run in order in one fresh Python process, in an empty
temporary directory, sharing one namespace as if typed in order (a later
block may use the names an earlier one made). A separate process per
page keeps the examples' global state (a workspace limit, NumPy's global seed,
a data-parallel communicator) out of the test run. A failure names the page
and the line: the code is compiled with the page as its file name and its own
line numbers.

A block whose first line is ``# needs: gpu`` runs only where a GPU is usable;
elsewhere it is left out of its page's run and reported as a skipped test of
its own. No later block may depend on it.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastconv.backend import gpu_status

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
NEEDS = re.compile(r"#\s*needs:\s*(\w+)")
KNOWN_NEEDS = {"gpu"}

# Runs in the child: the blocks from a JSON file, in order, in one namespace.
RUNNER = textwrap.dedent("""
    import json, sys
    page, blocks = json.load(open(sys.argv[1]))
    namespace = {"__name__": "__main__"}
    for line, code in blocks:
        # Pad to the block's first line so a traceback shows the page's own line numbers.
        exec(compile("\\n" * (line - 1) + code, page, "exec"), namespace)
""")


def python_blocks(path):
    """[(first code line, code, need or None)] of every ```python block in ``path``."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        code = match.group(1)
        first_line = text.count("\n", 0, match.start(1)) + 1
        head = code.lstrip().splitlines()[0] if code.strip() else ""
        need = NEEDS.match(head)
        blocks.append((first_line, code, need.group(1) if need else None))
    return blocks


def _page_id(path):
    return str(path.relative_to(ROOT))


def _skipped(need):
    """Why a block that needs ``need`` cannot run here, or None when it can."""
    if need == "gpu":
        usable, reason = gpu_status()
        return None if usable else f"needs a GPU: {reason}"
    return f"unknown need {need!r}"


SKIPPED_BLOCKS = [pytest.param(path, line, reason, id=f"{_page_id(path)}:{line}")
                  for path in PAGES for line, _, need in python_blocks(path)
                  if need and (reason := _skipped(need))]


def test_pages_have_examples():
    """The extraction finds blocks (a changed fence syntax would silently test nothing)."""
    assert len(python_blocks(ROOT / "README.md")) >= 2
    assert sum(len(python_blocks(page)) for page in PAGES) >= 20


@pytest.mark.parametrize("path", PAGES, ids=_page_id)
def test_needs_markers_are_known(path):
    """A misspelt marker would run a GPU block on every machine or skip one forever."""
    for line, _, need in python_blocks(path):
        assert need is None or need in KNOWN_NEEDS, f"{_page_id(path)}:{line}: {need!r}"


@pytest.mark.parametrize("path", [p for p in PAGES if python_blocks(p)], ids=_page_id)
def test_page_examples_run(path, tmp_path):
    blocks = [(line, code) for line, code, need in python_blocks(path)
              if need is None or _skipped(need) is None]
    if not blocks:
        pytest.skip(f"every block of {_page_id(path)} needs something missing here")
    spec = tmp_path / "blocks.json"
    spec.write_text(json.dumps([str(path), blocks]))
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(spec)], cwd=work,
                          capture_output=True, text=True, timeout=900,
                          env=_child_environment())
    assert proc.returncode == 0, (f"an example of {_page_id(path)} failed:\n"
                                  f"{proc.stderr[-4000:]}")


@pytest.mark.parametrize("path, line, reason", SKIPPED_BLOCKS)
def test_skipped_block(path, line, reason):
    """One item per block left out of its page's run, so that -ra lists each with why."""
    pytest.skip(f"{_page_id(path)}:{line} {reason}")


def _child_environment():
    env = dict(os.environ, MPLBACKEND="Agg")
    env.pop("FASTCONV_DEVICE", None)  # the examples say where their arrays go
    return env
