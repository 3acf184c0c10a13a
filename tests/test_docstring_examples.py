"""The ``>>>`` examples of every docstring in the package run and print what they show.

One test per module that has examples. They all run in one child process (one
import of fastconv, torch and the rest), in an empty temporary directory, so
that an example that sets a global (a workspace limit, TF32, NumPy's global
seed) cannot change the state of this test run. Each module's examples run
with the module's own globals, as ``python -m doctest`` would, with
``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``. An example that needs a GPU
carries ``# doctest: +SKIP``.
"""

import doctest
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import textwrap

import pytest

import fastconv

# ``__main__`` modules run a command when imported: they hold no examples to run.
ALL_MODULES = sorted(["fastconv"] + [info.name for info in
                                     pkgutil.walk_packages(fastconv.__path__, "fastconv.")
                                     if not info.name.endswith(".__main__")])


def _has_examples(name):
    """Whether module ``name`` has docstring examples; True when it cannot even be imported,
    so that its test runs and reports why."""
    try:
        module = importlib.import_module(name)
    except Exception:
        return True
    return any(test.examples for test in doctest.DocTestFinder().find(module, name))


MODULES = [name for name in ALL_MODULES if _has_examples(name)]

# Runs in the child: every module's doctests; prints one JSON object per module.
RUNNER = textwrap.dedent("""
    import doctest, importlib, io, json, sys, traceback

    FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    for name in sys.argv[1:]:
        result = {"module": name, "attempted": 0, "failed": 0, "report": ""}
        try:
            module = importlib.import_module(name)
            tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)
            out = io.StringIO()
            runner = doctest.DocTestRunner(optionflags=FLAGS)
            for test in sorted(tests, key=lambda t: t.name):
                runner.run(test, out=out.write)
            counts = runner.summarize(verbose=False)
            result.update(attempted=counts.attempted, failed=counts.failed,
                          report=out.getvalue())
        except BaseException:
            result.update(failed=1, report="could not run:\\n" + traceback.format_exc())
        print(json.dumps(result), flush=True)
""")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """{module: result} from one child process that ran every module's examples."""
    work = tmp_path_factory.mktemp("doctests")
    env = dict(os.environ, MPLBACKEND="Agg")
    env.pop("FASTCONV_DEVICE", None)
    proc = subprocess.run([sys.executable, "-c", RUNNER, *MODULES], cwd=work, env=env,
                          capture_output=True, text=True, timeout=1200)
    found = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            found[result["module"]] = result
    if proc.returncode != 0 or set(found) != set(MODULES):
        pytest.fail(f"the doctest process ended early (status {proc.returncode}):\n"
                    f"{proc.stderr[-4000:]}")
    return found


def test_modules_found():
    """The walk finds the package's modules (a broken walk would test nothing)."""
    assert {"fastconv.functional.conv", "fastconv.nn.module", "fastconv.workspace"} <= set(ALL_MODULES)
    assert len(MODULES) >= 10


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module, results):
    result = results[module]
    if result["failed"]:
        pytest.fail(f"{result['failed']} of {result['attempted']} examples in {module} "
                    f"failed:\n{result['report'][-6000:]}", pytrace=False)
    assert result["attempted"], f"{module}: its examples were found here but none ran there"
