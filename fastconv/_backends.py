"""Which backend runs an op: :mod:`fastconv._cpu` for NumPy arrays, :mod:`fastconv._gpu` for CuPy.

The one device test of the op fronts. They call it through this module
(``_backends.backend_for(x)``), so a test can route NumPy arrays through the
GPU backend with emulated kernels.
"""

from __future__ import annotations

from types import ModuleType

import numpy

from . import _cpu, _gpu
from .backend import get_array_module


def backend_for(*arrays: object) -> ModuleType:
    """The backend package for the arrays of one op call.

    Parameters
    ----------
    *arrays : array or None
        The op's arrays; None entries are ignored.

    Returns
    -------
    module
        :mod:`fastconv._cpu` for NumPy arrays, :mod:`fastconv._gpu` for CuPy arrays.

    Raises
    ------
    ValueError
        When the arrays live on two devices (from
        :func:`fastconv.backend.get_array_module`).

    Examples
    --------
    >>> import numpy as np
    >>> backend_for(np.zeros(2), None).__name__
    'fastconv._cpu'
    """
    return _cpu if get_array_module(*arrays) is numpy else _gpu
