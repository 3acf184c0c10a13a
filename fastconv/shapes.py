"""One source of truth for output sizes, used by every op (CPU, GPU and reference).

:class:`WindowGeometry` describes the sliding windows of one conv or pool call over 1, 2 or 3
spatial axes (one entry per axis in each of its tuples, in (D, H, W) order); the 2-D ops read
its tuples as (h, w) pairs. :func:`window_geometry` builds it from an input shape, taking the
spatial axes from ``x_shape[2:]``.
"""

from __future__ import annotations

import functools
import itertools
import numbers
from collections.abc import Iterator, Sequence
from typing import TypeAlias

from . import _validate

#: The names of the spatial axes of a 1-, 2- and 3-D op, in errors, and their shape symbols.
AXIS_NAMES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}
AXIS_SYMBOLS = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
_TUPLE_NAMES = {1: "a 1-tuple", 2: "a pair", 3: "a triple"}

IntOrTuple: TypeAlias = int | Sequence[int]  # one value for every spatial axis, or one per axis
Pads: TypeAlias = tuple[tuple[int, int], ...]  # (before, after) per spatial axis


def spatial_ints(value: object, name: str, ndim: int, low: int | None = None) -> tuple[int, ...]:
    """An int (for every axis) or a tuple or list of ``ndim`` ints, as a tuple of ints >= ``low``.

    Parameters
    ----------
    value : int or sequence of int
        One value for every spatial axis, or one per axis.
    name : str
        The argument's name, for the errors.
    ndim : int
        The number of spatial axes, 1 to 3.
    low : int, optional
        The smallest allowed value (None: unbounded).

    Returns
    -------
    tuple of int
        ``ndim`` Python ints.

    Raises
    ------
    TypeError
        Naming ``name`` when ``value`` is neither an int nor ``ndim`` ints (bools are refused).
    ValueError
        Naming ``name`` when a value is below ``low``.

    Examples
    --------
    >>> spatial_ints(3, "kernel_size", 3), spatial_ints((1, 2), "stride", 2, low=1)
    ((3, 3, 3), (1, 2))
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        values = (int(value),) * ndim
    elif isinstance(value, (tuple, list)) and len(value) == ndim and all(map(_is_int, value)):
        values = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{name} must be an int or {_TUPLE_NAMES[ndim]} of ints, got {value!r}")
    if low is not None and min(values) < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return values


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def spatial_pads(value: object, ndim: int, name: str = "padding") -> Pads:
    """Zero padding as ``((before, after),) * ndim``, each >= 0.

    Parameters
    ----------
    value : int, sequence of int, or sequence of (int, int)
        One pad for every side, one per axis (both sides), or ``(before, after)`` per axis.
    ndim : int
        The number of spatial axes, 1 to 3.
    name : str
        The argument's name, for the errors.

    Returns
    -------
    tuple of (int, int)

    Raises
    ------
    TypeError, ValueError
        Naming ``name``: a malformed value, or a negative pad.

    Examples
    --------
    >>> spatial_pads(1, 3), spatial_pads(((0, 1), (2, 2)), 2)
    (((1, 1), (1, 1), (1, 1)), ((0, 1), (2, 2)))
    """
    if isinstance(value, (tuple, list)) and len(value) == ndim and all(
            isinstance(v, (tuple, list)) for v in value):
        pads = tuple(_validate.pair(v, name) for v in value)
    else:
        pads = tuple((p, p) for p in spatial_ints(value, name, ndim))
    if min(min(p) for p in pads) < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return pads


def conv_output_size(size: int, kernel_size: int, stride: int = 1,
                     padding: int | Sequence[int] = 0, dilation: int = 1,
                     ceil_mode: bool = False) -> int:
    """Output length along one axis, PyTorch's formula.

    The dilated kernel spans ``dilation * (kernel_size - 1) + 1`` inputs. With
    ``ceil_mode`` the division rounds up, but, as in PyTorch, the last window
    must start inside the input or its left padding, so a window that would
    start in the right padding is dropped. Rounding up also lets a kernel
    overhang the padded input by up to ``stride - 1`` and still give one
    window, as in PyTorch.

    Parameters
    ----------
    size : int
        The input length, at least 0.
    kernel_size, stride, dilation : int
        Each at least 1.
    padding : int or (int, int)
        Both sides, or ``(before, after)``; at least 0.
    ceil_mode : bool

    Returns
    -------
    int
        The output length (0 when no window fits; callers raise).

    Raises
    ------
    TypeError, ValueError
        Naming an argument that is not an int (a bool for ``ceil_mode``) or out of range.

    Examples
    --------
    >>> conv_output_size(32, 3, stride=2, padding=1)
    16
    """
    size = _validate.check_int("size", size, 0)
    kernel_size = _validate.check_int("kernel_size", kernel_size, 1)
    stride = _validate.check_int("stride", stride, 1)
    dilation = _validate.check_int("dilation", dilation, 1)
    before, after = _validate.pair(padding, "padding")
    if min(before, after) < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    span = dilation * (kernel_size - 1) + 1
    room = size + before + after - span
    if not _validate.check_bool("ceil_mode", ceil_mode):
        return max(room // stride + 1, 0)
    out = max(-(-room // stride) + 1, 0)
    if (out - 1) * stride >= size + before:
        out -= 1
    return out


class WindowGeometry:
    """Where the sliding windows of one conv or pool call fall, along each spatial axis.

    Built once per call from validated arguments; every CPU and GPU path and the reference
    loops read their output size and padding from here. The same class serves 1, 2 and 3
    spatial axes: each attribute holds one entry per axis, in (D, H, W) order, so a 2-D
    geometry's are (h, w) pairs.

    Parameters
    ----------
    size : sequence of int
        The input's spatial size, e.g. (H, W) or (D, H, W).
    kernel, stride, dilation : sequence of int
        One per axis.
    pads : sequence of (int, int)
        ``(before, after)`` per axis.
    ceil_mode : bool
        Round the output size up (PyTorch's pools).

    Attributes
    ----------
    size, kernel, stride, dilation, out : tuple of int
        ``out`` is the output's spatial size, e.g. (OH, OW). An axis of one window holds
        ``min(stride, padded)``: its window is the same for any stride.
    pads : tuple of (int, int)
        E.g. ((top, bottom), (left, right)).
    padded : tuple of int
        The extent of the padded input that the windows touch (with ``ceil_mode`` this can
        exceed the requested padding).

    Examples
    --------
    >>> g = WindowGeometry((4, 8, 8), (1, 3, 3), (1, 2, 2), ((0, 0), (1, 1), (1, 1)), (1, 1, 1))
    >>> g.out, g.padded, g.ndim
    ((4, 4, 4), (4, 10, 10), 3)
    """

    __slots__ = ("kernel", "stride", "dilation", "pads", "size", "out", "padded")
    size: tuple[int, ...]; kernel: tuple[int, ...]; stride: tuple[int, ...]  # noqa: E702
    dilation: tuple[int, ...]; out: tuple[int, ...]; padded: tuple[int, ...]  # noqa: E702
    pads: tuple[tuple[int, ...], ...]

    def __init__(self, size: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                 pads: Sequence[Sequence[int]], dilation: Sequence[int],
                 ceil_mode: bool = False) -> None:
        size = tuple(int(n) for n in size)  # Python ints: NumPy int32 sizes could wrap
        kernel = tuple(int(k) for k in kernel)
        stride = tuple(int(s) for s in stride)
        pads = tuple(tuple(int(p) for p in pair) for pair in pads)
        dilation = tuple(int(d) for d in dilation)
        out = tuple(conv_output_size(n, k, s, p, d, ceil_mode)
                    for n, k, s, p, d in zip(size, kernel, stride, pads, dilation))
        padded = tuple(max(n + before + after, (o - 1) * s + d * (k - 1) + 1)
                       for n, (before, after), o, s, d, k in zip(size, pads, out, stride,
                                                                 dilation, kernel))
        # An axis of one window has the same window whatever its stride, and what reads the
        # stride (the byte strides of window views, stride phases, tap offsets o*d % s) gives
        # the same with one no larger than the padded extent: so a stride past the input
        # (PyTorch takes any) never overflows an int64 stride or index.
        stride = tuple(min(s, p) if o == 1 else s for s, p, o in zip(stride, padded, out))
        for name, value in (("size", size), ("kernel", kernel), ("stride", stride),
                            ("pads", pads), ("dilation", dilation), ("out", out),
                            ("padded", padded)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        # window_geometry hands the same instance to every call with the same arguments
        raise AttributeError(f"a WindowGeometry is read-only: cannot set {name!r}")

    # Read-only, so a copy is the geometry itself (as for a tuple), and pickling rebuilds it
    # from its attributes without the __setattr__ above.
    def __copy__(self) -> WindowGeometry:
        return self

    def __deepcopy__(self, memo: dict) -> WindowGeometry:
        return self

    def __reduce__(self) -> tuple:
        return _restore_geometry, (tuple(getattr(self, name) for name in self.__slots__),)

    @property
    def ndim(self) -> int:
        """The number of spatial axes."""
        return len(self.size)

    @property
    def is_identity(self) -> bool:
        """True for a kernel of ones with stride 1 and no padding: the columns are the input."""
        ones = (1,) * len(self.size)
        return (self.kernel == ones and self.stride == ones
                and self.pads == ((0, 0),) * len(self.size))

    @property
    def windows_overlap(self) -> bool:
        """True where neighbouring windows share input cells along some axis (a window's span,
        (kernel - 1) * dilation + 1, wider than the stride).

        Examples
        --------
        >>> window_geometry((1, 1, 8, 8), 3, 2, 1, 1).windows_overlap
        True
        >>> window_geometry((1, 1, 8, 8), 2, 2, 0, 1).windows_overlap
        False
        """
        return any(d * (k - 1) + 1 > s for k, s, d in zip(self.kernel, self.stride, self.dilation))

    @property
    def phase_size(self) -> tuple[int, ...]:
        """One stride phase of the padded input: ceil(padded / stride) per axis, e.g. (Hq, Wq).

        Phase (a, b) holds the padded positions (y*sh + a, x*sw + b). Kernel offset
        (i, j) of every window falls in phase (i*dh % sh, j*dw % sw), at a shift of
        (i*dh // sh, j*dw // sw) from the window's (oh, ow): inside a phase, any
        stride is stride 1. The same holds per axis in any number of axes.
        """
        return tuple(-(-p // s) for p, s in zip(self.padded, self.stride))

    @property
    def interior(self) -> tuple[slice, ...]:
        """The slices of the padded input (per spatial axis) that hold the input itself."""
        return tuple(slice(before, before + n) for n, (before, _) in zip(self.size, self.pads))

    def kernel_offsets(self) -> Iterator[tuple[int, ...]]:
        """Every kernel offset, e.g. (i, j), in row-major window order (offset k is the k-th)."""
        return itertools.product(*(range(k) for k in self.kernel))

    def offset_slices(self, *offset: int) -> tuple[slice, ...]:
        """The slices of the padded input (per spatial axis) that kernel ``offset`` reads.

        Examples
        --------
        >>> window_geometry((1, 1, 5, 5), 3, 2, 0, 1).offset_slices(1, 2)
        (slice(1, 4, 2), slice(2, 5, 2))
        """
        return tuple(slice(i * d, i * d + s * (o - 1) + 1, s)
                     for i, s, d, o in zip(offset, self.stride, self.dilation, self.out))

    def __repr__(self) -> str:
        return (f"WindowGeometry(size={self.size}, kernel={self.kernel}, stride={self.stride}, "
                f"pads={self.pads}, dilation={self.dilation}, out={self.out})")


def conv_padding(padding: object, kernel_size: IntOrTuple, stride: IntOrTuple,
                 dilation: IntOrTuple) -> Pads:
    """A convolution's padding with 'valid' and 'same' resolved, as :func:`window_geometry` takes it.

    'valid' is no padding; 'same' is PyTorch's: a total of ``dilation * (kernel
    - 1)`` per axis, the odd one on the bottom/right, and needs stride 1. Any
    other value is checked here as an int, one per axis or ``(before, after)`` per axis.

    Parameters
    ----------
    padding : int, tuple, 'valid' or 'same'
    kernel_size : int or tuple of int
        A tuple's length is the number of spatial axes (an int: 2).
    stride, dilation : int or tuple of int

    Returns
    -------
    tuple of (int, int)
        ``(before, after)`` per spatial axis.

    Raises
    ------
    ValueError, TypeError
        Naming ``padding`` (or the stride 'same' cannot have).

    Examples
    --------
    >>> conv_padding("same", (3, 4, 1), 1, 1)
    ((1, 1), (1, 2), (0, 0))
    """
    ndim = len(kernel_size) if isinstance(kernel_size, (tuple, list)) else 2
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * ndim
        if padding == "same":
            stride = spatial_ints(stride, "stride", ndim, 1)
            if stride != (1,) * ndim:
                raise ValueError(f"padding='same' needs stride 1, got stride={stride}")
            totals = [d * (k - 1) for k, d in zip(spatial_ints(kernel_size, "kernel_size", ndim, 1),
                                                  spatial_ints(dilation, "dilation", ndim, 1))]
            return tuple((t // 2, t - t // 2) for t in totals)
        pairs = "" if ndim == 1 else " or of (before, after) pairs"  # conv1d takes none
        raise ValueError(f"padding must be an int, {_TUPLE_NAMES[ndim]} of ints{pairs}, 'valid' "
                         f"or 'same', got {padding!r}")
    return spatial_pads(padding, ndim)


def _restore_geometry(values: tuple) -> WindowGeometry:
    """A pickled WindowGeometry from its attributes, in ``__slots__`` order."""
    geometry = object.__new__(WindowGeometry)
    for name, value in zip(WindowGeometry.__slots__, values):
        object.__setattr__(geometry, name, value)
    return geometry


def window_geometry(x_shape: Sequence[int], kernel_size: IntOrTuple, stride: IntOrTuple,
                    padding: object, dilation: IntOrTuple,
                    ceil_mode: bool = False) -> WindowGeometry:
    """Validate window arguments against an input shape and build the geometry.

    The spatial axes are ``x_shape[2:]``: (N, C, H, W) gives a 2-D geometry, (N, C, D, H, W)
    a 3-D one.

    Parameters
    ----------
    x_shape : sequence of int
        The input's shape (N, C, *spatial), 1 to 3 spatial axes.
    kernel_size, stride, dilation : int or tuple of int
        One for every axis or one per axis; each at least 1.
    padding : int, tuple of int or tuple of (int, int)
        Zero or more, one for every side, one per axis, or ``(before, after)`` per axis
        (2-D: ((top, bottom), (left, right))).
    ceil_mode : bool
        Round the output size up, as PyTorch's pools do.

    Returns
    -------
    WindowGeometry

    Raises
    ------
    ValueError
        Naming the axis, the padding and the dilated kernel when no window fits
        in the padded input (``ceil_mode`` allows an overhang of up to
        stride - 1, as PyTorch's pools do); TypeError or ValueError naming a
        malformed argument.

    Notes
    -----
    Memoised for exact ints, strs and tuples of them and a bool ``ceil_mode`` (a training
    loop asks for the same few): the same read-only instance comes back; bad ones raise.

    Examples
    --------
    >>> window_geometry((2, 3, 8, 16, 16), 3, (1, 2, 2), 1, 1).out
    (8, 8, 8)
    """
    args = (tuple(x_shape), kernel_size, stride, padding, dilation, ceil_mode)
    if all(_plain(arg) for arg in args[:5]) and type(ceil_mode) is bool:
        return _memoised_geometry(*args)
    return _validated_geometry(*args)


def _plain(value: object) -> bool:
    """Whether ``value`` is an int (not a bool), a str or a tuple of such: a memo key equal
    to another only where their validation agrees (not so True == 1, 1.0 == 1)."""
    if type(value) is tuple:
        return all(map(_plain, value))
    return type(value) is int or type(value) is str


def _validated_geometry(x_shape, kernel_size, stride, padding, dilation, ceil_mode):
    """:func:`window_geometry`, validated and built anew."""
    ndim = len(x_shape) - 2
    if ndim not in AXIS_NAMES:
        raise ValueError(f"windows need 1 to 3 spatial axes after (N, C), got x shape "
                         f"{tuple(x_shape)}")
    kernel = spatial_ints(kernel_size, "kernel_size", ndim, 1)
    stride = spatial_ints(stride, "stride", ndim, 1)
    dilation = spatial_ints(dilation, "dilation", ndim, 1)
    pads = spatial_pads(padding, ndim)
    size = tuple(x_shape[2:])
    axes, symbols = AXIS_NAMES[ndim], AXIS_SYMBOLS[ndim]
    if min(size) < 1:  # PyTorch refuses too: a window over an empty image reads only padding
        raise ValueError(f"the input's {_joined(axes)} must be >= 1, got x shape "
                         f"{tuple(x_shape)}")
    for axis, name, n, k, s, d, (before, after) in zip(
            axes, symbols, size, kernel, stride, dilation, pads):
        if conv_output_size(n, k, s, (before, after), d, ceil_mode) < 1:
            span = d * (k - 1) + 1
            pad_text = before if before == after else (before, after)
            raise ValueError(
                f"dilated kernel {axis} {span} is larger than the padded input {axis} "
                f"{n + before + after} ({name}={n}, padding={pad_text})")
    return WindowGeometry(size, kernel, stride, pads, dilation, ceil_mode)


_memoised_geometry = functools.lru_cache(maxsize=256)(_validated_geometry)


def _joined(words):
    """'height and width', 'depth, height and width'."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]

