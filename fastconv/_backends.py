"""Which backend runs an op: :mod:`fastconv._cpu` for NumPy arrays, :mod:`fastconv._gpu` for CuPy.

The one device test of the op fronts. They call it through this module
(``_backends.backend_for(x)``), so a test can route NumPy arrays through the
GPU backend with emulated kernels.
"""

import numpy

from . import _cpu, _gpu
from .backend import get_array_module


def backend_for(*arrays):
    """The backend package for ``arrays`` (None entries ignored).

    Raises the ValueError of :func:`fastconv.backend.get_array_module` when
    the arrays live on two devices.
    """
    return _cpu if get_array_module(*arrays) is numpy else _gpu
