"""The CUDA kernel sources ship inside the wheel and load from the installed package.

Builds the wheel (offline, with this environment's setuptools), installs it
into a fresh virtual environment (no pip dependencies resolved: NumPy is
borrowed from this environment through a directory holding only NumPy), and,
from outside the source tree, reads the kernels through fastconv._cuda and
runs an emulated im2col compiled from the installed sources.
"""

import os
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import numpy
import pytest

from cuda_emu.emu import require_kernel_tools

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def run(*args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_wheel_installs_and_loads_the_kernels(tmp_path):
    pytest.importorskip("setuptools", minversion="70.1")  # builds wheels without 'wheel'
    require_kernel_tools("g++")
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "--no-index", "-q", "-w", str(dist), str(ROOT))
    (wheel,) = dist.glob("fastconv-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    kernels = sorted(p.name for p in (ROOT / "kernels").iterdir() if p.suffix in (".cu", ".cuh"))
    assert {f"fastconv/_kernels/{name}" for name in kernels} <= shipped

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
        "--no-index", "-q", str(wheel))
    borrowed = tmp_path / "numpy-only"
    borrowed.mkdir()
    numpy_dir = Path(numpy.__file__).parent
    for name in ("numpy", "numpy.libs"):
        if (numpy_dir.parent / name).exists():
            (borrowed / name).symlink_to(numpy_dir.parent / name)
    site = Path(run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
                .strip())
    (site / "borrowed_numpy.pth").write_text(f"{borrowed}\n")

    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import fastconv
        from fastconv import _cuda
        from fastconv.im2col import im2col_into, window_geometry
        print(fastconv.__file__)
        print(_cuda.kernel_dir())
        assert all(_cuda.kernel_source(f) for f in _cuda.kernel_files())
        sys.path.append({str(TESTS)!r})  # the emulator only; fastconv stays the installed one
        from cuda_emu.emu import emu_launcher
        x = np.arange(2 * 3 * 5 * 4, dtype=np.float32).reshape(2, 3, 5, 4)
        geometry = window_geometry(x.shape, 3, 2, 1, 1)
        shape = x.shape[:2] + geometry.kernel + geometry.out
        cols = _cuda.im2col_into(x, geometry, np.empty(shape, np.float32), emu_launcher())
        assert np.array_equal(cols, im2col_into(x, geometry, np.empty(shape, np.float32)))
        print("emulated im2col from the installed sources: ok")
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    out = run(str(python), "-c", script, cwd=tmp_path, env=env).splitlines()
    package_file, kernel_dir = Path(out[0]), Path(out[1])
    assert site in package_file.parents and site in kernel_dir.parents, out
    assert ROOT not in kernel_dir.resolve().parents, out
    assert out[2] == "emulated im2col from the installed sources: ok"
