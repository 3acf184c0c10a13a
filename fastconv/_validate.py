"""Argument checks shared by every op: clear errors that name the argument and the shapes."""

from __future__ import annotations

import dataclasses
import numbers
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy

if TYPE_CHECKING:  # typing has it from Python 3.11; type checkers know typing_extensions'
    from typing_extensions import dataclass_transform
else:
    def dataclass_transform(**_options):
        return lambda decorator: decorator

from ._typing import Array, DTypeLike

FLOAT_DTYPES = (numpy.float16, numpy.float32, numpy.float64)


def pair(value: object, name: str) -> tuple[int, int]:
    """Normalise an int or a pair of ints to a tuple ``(height, width)``.

    Parameters
    ----------
    value : int or pair of int
        The argument.
    name : str
        Its name, for the error.

    Returns
    -------
    tuple of int
        ``(value, value)`` for an int, else the pair as Python ints.

    Raises
    ------
    TypeError
        When ``value`` is neither (bools are not ints here).

    Examples
    --------
    >>> pair(3, "stride"), pair([1, 2], "stride")
    ((3, 3), (1, 2))
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value), int(value)
    if (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")


def positive_pair(value: object, name: str) -> tuple[int, int]:
    """A pair of ints, each at least 1 (stride, dilation, kernel size).

    Parameters
    ----------
    value : int or pair of int
        The argument.
    name : str
        Its name, for the errors.

    Returns
    -------
    tuple of int
        ``(height, width)``.

    Raises
    ------
    TypeError
        When ``value`` is not an int or a pair of ints.
    ValueError
        When an entry is below 1.

    Examples
    --------
    >>> positive_pair(2, "stride")
    (2, 2)
    >>> positive_pair(0, "stride")
    Traceback (most recent call last):
    ValueError: stride must be >= 1, got 0
    """
    result = pair(value, name)
    if min(result) < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return result


def padding_pairs(value: object, name: str = "padding") -> tuple[tuple[int, int], tuple[int, int]]:
    """Normalise a padding to ``((top, bottom), (left, right))``, each at least 0.

    Parameters
    ----------
    value : int, pair of int or pair of pairs of int
        ``p``, ``(ph, pw)`` or ``((top, bottom), (left, right))``.
    name : str, default "padding"
        Its name, for the errors.

    Returns
    -------
    tuple of tuple of int
        ``((top, bottom), (left, right))``.

    Raises
    ------
    TypeError
        When ``value`` has none of the forms above.
    ValueError
        When an entry is negative.

    Examples
    --------
    >>> padding_pairs(1), padding_pairs((1, 2)), padding_pairs(((0, 1), (2, 3)))
    (((1, 1), (1, 1)), ((1, 1), (2, 2)), ((0, 1), (2, 3)))
    """
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (tuple, list)) for v in value):
        top_bottom, left_right = (pair(v, name) for v in value)
    else:
        ph, pw = pair(value, name)
        top_bottom, left_right = (ph, ph), (pw, pw)
    if min(top_bottom + left_right) < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return top_bottom, left_right


def check_int(name: str, value: object, low: int | None = None) -> int:
    """Check that ``value`` is an int (not a bool) of at least ``low``, and return it.

    Parameters
    ----------
    name : str
        The argument's name, for the errors.
    value : object
        The argument; NumPy integers are accepted.
    low : int, optional
        The least value allowed; None: unbounded.

    Returns
    -------
    int
        ``value`` as a Python int.

    Raises
    ------
    TypeError
        When ``value`` is not an integer, or is a bool.
    ValueError
        When it is below ``low``.

    Examples
    --------
    >>> import numpy as np
    >>> check_int("groups", np.int64(2), 1)
    2
    >>> check_int("groups", 2.0)
    Traceback (most recent call last):
    TypeError: groups must be an int, got 2.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    result = int(value)
    if low is not None and result < low:
        raise ValueError(f"{name} must be >= {low}, got {result}")
    return result


def check_bool(name: str, value: object) -> bool:
    """Check that ``value`` is a bool (NumPy's bool too), and return it.

    Parameters
    ----------
    name : str
        The argument's name, for the error.
    value : object
        The argument.

    Returns
    -------
    bool
        ``value`` as a Python bool.

    Raises
    ------
    TypeError
        When ``value`` is not a bool.

    Examples
    --------
    >>> check_bool("ceil_mode", True)
    True
    >>> check_bool("ceil_mode", "no")
    Traceback (most recent call last):
    TypeError: ceil_mode must be a bool (True or False), got 'no'
    """
    # A flag given as a string or a number is refused, as in PyTorch: "no"
    # would otherwise read as true.
    if not isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"{name} must be a bool (True or False), got {value!r}")
    return bool(value)


def check_real(name: str, value: object, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """Check that ``value`` is a real number in a range, and return it.

    Parameters
    ----------
    name : str
        The argument's name, for the errors.
    value : object
        The argument.
    low, high : float, optional
        The range's bounds; None: unbounded. NaN is never in range.
    low_open, high_open : bool, default False
        Whether a bound is excluded.

    Returns
    -------
    float
        ``value`` as a Python float.

    Raises
    ------
    TypeError
        When ``value`` is not a real number, or is a bool.
    ValueError
        When it is out of range.

    Examples
    --------
    >>> check_real("p", 0.5, 0, 1, high_open=True)
    0.5
    >>> check_real("p", 1, 0, 1, high_open=True)
    Traceback (most recent call last):
    ValueError: p must be in [0, 1), got 1.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    # A Python float keeps float32 arrays float32 in the arithmetic that
    # follows, where a NumPy float64 scalar would promote them.
    result = float(value)
    above = low is None or (result > low if low_open else result >= low)
    below = high is None or (result < high if high_open else result <= high)
    if not (above and below):
        if high is None:
            bound = f"{'>' if low_open else '>='} {low}"
        else:
            bound = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be {bound}, got {result}")
    return result


def check_ndim(x: object, ndim: int, name: str, layout: str) -> None:
    """Check that ``x`` has ``ndim`` dimensions.

    Parameters
    ----------
    x : array
        The argument.
    ndim : int
        The dimensions it must have.
    name : str
        Its name, for the error.
    layout : str
        What the dimensions are, e.g. ``"(N, C, H, W)"``, for the error.

    Raises
    ------
    ValueError
        When ``x`` has another number of dimensions, or none.

    Examples
    --------
    >>> import numpy as np
    >>> check_ndim(np.zeros((2, 3)), 4, "x", "(N, C, H, W)")
    Traceback (most recent call last):
    ValueError: x must be 4-D (N, C, H, W), got shape (2, 3)
    """
    if getattr(x, "ndim", None) != ndim:
        got = f"shape {tuple(x.shape)}" if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"{name} must be {ndim}-D {layout}, got {got}")


def check_float(x: object, name: str) -> None:
    """Check that ``x`` is a float16, float32 or float64 array of the native byte order.

    Parameters
    ----------
    x : array
        The argument.
    name : str
        Its name, for the errors.

    Raises
    ------
    TypeError
        When ``x`` is not an array, is not floating point (ints, bools, complex)
        or is a float array in the other byte order.

    Examples
    --------
    >>> import numpy as np
    >>> check_float(np.zeros(2, np.float32), "x")
    >>> check_float(np.zeros(2, np.int64), "x")
    Traceback (most recent call last):
    TypeError: x must be a floating-point array (float16, float32 or float64), got int64
    """
    dtype: Any = getattr(x, "dtype", None)
    if not isinstance(dtype, numpy.dtype):  # no dtype, or another library's (torch.float32)
        kind = type(x)
        where = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
        raise TypeError(f"{name} must be a NumPy or CuPy array, got {where}{kind.__qualname__}")
    # The other byte order (>f8 on a little-endian machine) is refused by name,
    # as PyTorch does: the kernels and BLAS read native floats.
    if dtype.kind == "f" and not dtype.isnative:
        raise TypeError(f"{name} has the non-native byte order {dtype.str}; convert it first, "
                        f"e.g. {name}.astype({dtype.newbyteorder('=').name!r})")
    if dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a floating-point array (float16, float32 or float64), got {dtype}")


def check_same_dtype(reference: Array, reference_name: str, other: Array, other_name: str) -> None:
    """Check that two arrays of one op have the same dtype.

    Parameters
    ----------
    reference, other : array
        The arrays.
    reference_name, other_name : str
        Their names, for the error.

    Raises
    ------
    TypeError
        When their dtypes differ.

    Examples
    --------
    >>> import numpy as np
    >>> check_same_dtype(np.zeros(1, np.float32), "x", np.zeros(1), "w")
    Traceback (most recent call last):
    TypeError: x is float32 but w is float64
    """
    if other.dtype != reference.dtype:
        raise TypeError(f"{reference_name} is {reference.dtype} but {other_name} is {other.dtype}")


def check_dout(dout: Array, expected_shape: tuple[int, ...], expected_dtype: DTypeLike) -> None:
    """Check the upstream gradient against the forward output's shape and dtype.

    Parameters
    ----------
    dout : array
        The gradient of the loss with respect to the forward's output.
    expected_shape : tuple of int
        The forward output's shape.
    expected_dtype : dtype-like
        The forward output's dtype.

    Raises
    ------
    TypeError
        When ``dout`` is not a float array, or its dtype is not the output's.
    ValueError
        When its shape is not the output's.

    Examples
    --------
    >>> import numpy as np
    >>> check_dout(np.zeros((2, 3)), (2, 4), np.float64)
    Traceback (most recent call last):
    ValueError: dout has shape (2, 3) but the forward output had shape (2, 4)
    """
    check_float(dout, "dout")
    if tuple(dout.shape) != tuple(expected_shape):
        raise ValueError(
            f"dout has shape {tuple(dout.shape)} but the forward output had shape {tuple(expected_shape)}")
    if dout.dtype != expected_dtype:
        raise TypeError(f"dout is {dout.dtype} but the forward output was {expected_dtype}")


_Cache = TypeVar("_Cache", bound=type)


@dataclass_transform(eq_default=False, frozen_default=True)
def op_cache(cls: _Cache) -> _Cache:
    """The decorator of every op's cache class: a frozen dataclass with slots, compared by identity.

    Compared by identity because it holds arrays. The class names its forward
    op in ``op: ClassVar[str]``.

    Parameters
    ----------
    cls : type
        The class, with its fields annotated.

    Returns
    -------
    type
        The dataclass (a new class: slots need one).

    Examples
    --------
    >>> @op_cache
    ... class ScaleCache:
    ...     factor: float
    >>> ScaleCache(2.0)
    ScaleCache(factor=2.0)
    """
    return cast(_Cache, dataclasses.dataclass(frozen=True, slots=True, eq=False)(cls))


def check_cache(cache: object, expected_type: type, op_name: str) -> None:
    """Check that a backward function got a cache of its own forward op.

    Parameters
    ----------
    cache : object
        The cache passed to the backward.
    expected_type : type
        The cache class of the backward's forward op.
    op_name : str
        That op's name, for the error.

    Raises
    ------
    TypeError
        When ``cache`` is not an ``expected_type``; the message names the op
        it comes from.

    Examples
    --------
    >>> check_cache((1, 2), dict, "conv2d_forward")
    Traceback (most recent call last):
    TypeError: cache comes from tuple, not conv2d_forward
    """
    if not isinstance(cache, expected_type):
        origin = getattr(cache, "op", None) or type(cache).__name__
        raise TypeError(f"cache comes from {origin}, not {op_name}")
