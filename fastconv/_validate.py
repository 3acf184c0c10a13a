"""Argument checks shared by every op: clear errors that name the argument and the shapes."""

import dataclasses
import numbers

import numpy

FLOAT_DTYPES = (numpy.float16, numpy.float32, numpy.float64)


def pair(value, name):
    """Normalise an int or a pair of ints to a tuple ``(height, width)``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value), int(value)
    if (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")


def positive_pair(value, name):
    """A pair of ints, each >= 1 (stride, dilation, kernel size)."""
    result = pair(value, name)
    if min(result) < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return result


def padding_pairs(value, name="padding"):
    """int, (ph, pw) or ((top, bottom), (left, right)) -> ((top, bottom), (left, right)), each >= 0."""
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (tuple, list)) for v in value):
        pads = tuple(pair(v, name) for v in value)
    else:
        ph, pw = pair(value, name)
        pads = ((ph, ph), (pw, pw))
    if min(min(p) for p in pads) < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return pads


def check_int(name, value, low=None):
    """Return ``value`` as a Python int after checking it is an int (not a bool) >= ``low``.

    A non-integer is a TypeError naming ``name``; an int below ``low`` (None:
    unbounded) a ValueError. NumPy integers are accepted.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def check_bool(name, value):
    """Return ``value`` as a Python bool after checking it is one (NumPy's bool too).

    A flag given as a string or a number is a TypeError, as in PyTorch: ``"no"``
    would otherwise read as true.
    """
    if not isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"{name} must be a bool (True or False), got {value!r}")
    return bool(value)


def check_real(name, value, low=None, high=None, low_open=False, high_open=False):
    """Return ``value`` as a Python float after checking it is a real number in the range.

    ``low``/``high`` bound it (None: unbounded), open or closed; NaN is never in
    range. The Python float keeps float32 arrays float32 in the arithmetic that
    follows, where a NumPy float64 scalar would promote them.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    if not (above and below):
        if high is None:
            bound = f"{'>' if low_open else '>='} {low}"
        else:
            bound = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def check_ndim(x, ndim, name, layout):
    """Raise ValueError unless ``x`` has ``ndim`` dimensions laid out as ``layout``."""
    if getattr(x, "ndim", None) != ndim:
        got = f"shape {tuple(x.shape)}" if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"{name} must be {ndim}-D {layout}, got {got}")


def check_float(x, name):
    """Raise TypeError unless ``x`` is a float16/32/64 array (no ints, bools, complex).

    A float array in the other byte order (``>f8`` on a little-endian machine)
    is refused by name, as PyTorch does: the kernels and BLAS read native floats.
    """
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        raise TypeError(f"{name} must be a NumPy or CuPy array, got {type(x).__name__}")
    if dtype.kind == "f" and not dtype.isnative:
        raise TypeError(f"{name} has the non-native byte order {dtype.str}; convert it first, "
                        f"e.g. {name}.astype({dtype.newbyteorder('=').name!r})")
    if dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a floating-point array (float16, float32 or float64), got {dtype}")


def check_same_dtype(reference, reference_name, other, other_name):
    """Raise TypeError when two arrays of one op have different float dtypes."""
    if other.dtype != reference.dtype:
        raise TypeError(f"{reference_name} is {reference.dtype} but {other_name} is {other.dtype}")


def check_dout(dout, expected_shape, expected_dtype):
    """Validate the upstream gradient against the forward output's shape and dtype."""
    check_float(dout, "dout")
    if tuple(dout.shape) != tuple(expected_shape):
        raise ValueError(
            f"dout has shape {tuple(dout.shape)} but the forward output had shape {tuple(expected_shape)}")
    if dout.dtype != expected_dtype:
        raise TypeError(f"dout is {dout.dtype} but the forward output was {expected_dtype}")


#: The decorator of every op's cache class: a frozen dataclass with slots, compared by
#: identity (it holds arrays). The class names its forward op in ``op: ClassVar[str]``.
op_cache = dataclasses.dataclass(frozen=True, slots=True, eq=False)


def check_cache(cache, expected_type, op_name):
    """Raise TypeError when a backward function gets a cache from another op."""
    if not isinstance(cache, expected_type):
        origin = getattr(cache, "op", None) or type(cache).__name__
        raise TypeError(f"cache comes from {origin}, not {op_name}")
