"""TF32 on or off for one block of code, for fastconv and for PyTorch, restored afterwards.

fastconv's switch is :func:`fastconv.set_tf32` (its float32 GPU products on
TF32 tensor cores; see fastconv/_gpu/gemm.py). PyTorch has two: cuBLAS
products (``torch.backends.cuda.matmul.allow_tf32``, off by default) and
cuDNN convolutions (``torch.backends.cudnn.allow_tf32``, on by default). A
fair comparison sets both sides the same way, so the benchmark times each
float32 convolution twice, TF32 off and on, and sets the switches around
every pass of each side.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

# How far a TF32 result may be from the float64 one, as a fraction of its largest
# magnitude: each float32 input is rounded to a 10-bit mantissa (2**-11 relative) before
# the products, and a product's error grows with its number of terms.
TF32_TOLERANCE = 1e-2


@contextlib.contextmanager
def fastconv_tf32(enabled: bool) -> Iterator[None]:
    """fastconv's TF32 setting ``enabled`` inside the block, the previous one after it.

    Parameters
    ----------
    enabled : bool
        True: float32 GPU products on TF32 tensor cores; False: FP32.

    Examples
    --------
    >>> import fastconv
    >>> before = fastconv.get_tf32()
    >>> with fastconv_tf32(not before):
    ...     fastconv.get_tf32() is (not before)
    True
    >>> fastconv.get_tf32() is before
    True
    """
    from .._gpu.gemm import get_tf32, set_tf32
    previous = get_tf32()
    set_tf32(enabled)
    try:
        yield
    finally:
        set_tf32(previous)


@contextlib.contextmanager
def torch_tf32(torch: Any, enabled: bool) -> Iterator[None]:
    """PyTorch's cuBLAS and cuDNN TF32 switches both ``enabled`` inside the block.

    Parameters
    ----------
    torch : module
        The ``torch`` module.
    enabled : bool
        The value of ``torch.backends.cuda.matmul.allow_tf32`` and
        ``torch.backends.cudnn.allow_tf32`` inside the block; both are restored
        after it, even when it raises.

    Examples
    --------
    >>> import types
    >>> flag = types.SimpleNamespace(allow_tf32=False)
    >>> fake = types.SimpleNamespace(backends=types.SimpleNamespace(
    ...     cuda=types.SimpleNamespace(matmul=flag), cudnn=types.SimpleNamespace(allow_tf32=True)))
    >>> with torch_tf32(fake, True):
    ...     flag.allow_tf32, fake.backends.cudnn.allow_tf32
    (True, True)
    >>> flag.allow_tf32, fake.backends.cudnn.allow_tf32
    (False, True)
    """
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn)
    previous = [flag.allow_tf32 for flag in flags]
    for flag in flags:
        flag.allow_tf32 = enabled
    try:
        yield
    finally:
        for flag, value in zip(flags, previous):
            flag.allow_tf32 = value
