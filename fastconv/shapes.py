"""One source of truth for output sizes, used by every op (CPU, GPU and reference)."""

from . import _validate


def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
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
    """Where the sliding windows of one conv or pool call fall, along H and W.

    Built once per call from validated arguments; every CPU and GPU path and
    the reference loops read their output size and padding from here.

    kernel, stride, dilation: (h, w) pairs. pads: ((top, bottom), (left, right)).
    out: (OH, OW). padded: (Hp, Wp), the extent of the padded input that the
    windows touch (with ``ceil_mode`` this can exceed the requested padding).
    """

    __slots__ = ("kernel", "stride", "dilation", "pads", "size", "out", "padded")

    def __init__(self, size, kernel, stride, pads, dilation, ceil_mode=False):
        self.size = tuple(int(n) for n in size)  # Python ints: NumPy int32 sizes could wrap
        self.kernel = tuple(int(k) for k in kernel)
        self.stride = tuple(int(s) for s in stride)
        self.pads = tuple(tuple(int(p) for p in pair) for pair in pads)
        self.dilation = tuple(int(d) for d in dilation)
        self.out = tuple(
            conv_output_size(n, k, s, p, d, ceil_mode)
            for n, k, s, p, d in zip(self.size, self.kernel, self.stride, self.pads, self.dilation))
        self.padded = tuple(
            max(n + before + after, (o - 1) * s + d * (k - 1) + 1)
            for n, (before, after), o, s, d, k in zip(
                self.size, self.pads, self.out, self.stride, self.dilation, self.kernel))

    @property
    def is_identity(self):
        """True for a 1x1 kernel with stride 1 and no padding: the columns are the input."""
        return (self.kernel == (1, 1) and self.stride == (1, 1)
                and self.pads == ((0, 0), (0, 0)))

    @property
    def phase_size(self):
        """(Hq, Wq): one stride phase of the padded input, ceil(Hp/sh) x ceil(Wp/sw).

        Phase (a, b) holds the padded positions (y*sh + a, x*sw + b). Kernel offset
        (i, j) of every window falls in phase (i*dh % sh, j*dw % sw), at a shift of
        (i*dh // sh, j*dw // sw) from the window's (oh, ow): inside a phase, any
        stride is stride 1.
        """
        (hp, wp), (sh, sw) = self.padded, self.stride
        return -(-hp // sh), -(-wp // sw)

    def offset_slices(self, i, j):
        """The (H, W) slices of the padded input that kernel offset (i, j) reads."""
        (sh, sw), (dh, dw), (oh, ow) = self.stride, self.dilation, self.out
        return (slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
                slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))

    def __repr__(self):
        return (f"WindowGeometry(size={self.size}, kernel={self.kernel}, stride={self.stride}, "
                f"pads={self.pads}, dilation={self.dilation}, out={self.out})")


def conv_padding(padding, kernel_size, stride, dilation):
    """A convolution's padding with 'valid' and 'same' resolved, as :func:`window_geometry` takes it.

    'valid' is no padding; 'same' is PyTorch's: a total of ``dilation * (kernel
    - 1)`` per axis, the odd one on the bottom/right, and needs stride 1. Any
    other value is checked here as an int, a pair or ((top, bottom), (left, right)).

    Raises
    ------
    ValueError, TypeError
        Naming ``padding`` (or the stride 'same' cannot have).
    """
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            stride = _validate.positive_pair(stride, "stride")
            if stride != (1, 1):
                raise ValueError(f"padding='same' needs stride 1, got stride={stride}")
            kernel = _validate.positive_pair(kernel_size, "kernel_size")
            totals = [d * (k - 1) for k, d in
                      zip(kernel, _validate.positive_pair(dilation, "dilation"))]
            return tuple((t // 2, t - t // 2) for t in totals)
        raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    return _validate.padding_pairs(padding)


def window_geometry(x_shape, kernel_size, stride, padding, dilation, ceil_mode=False):
    """Validate window arguments against an (N, C, H, W) shape and build the geometry.

    Parameters
    ----------
    x_shape : tuple of int
        The input's shape (N, C, H, W).
    kernel_size, stride, dilation : int or (int, int)
        Each at least 1.
    padding : int, (int, int) or ((int, int), (int, int))
        Zero or more, per side as ((top, bottom), (left, right)).
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
    """
    kernel = _validate.positive_pair(kernel_size, "kernel_size")
    stride = _validate.positive_pair(stride, "stride")
    dilation = _validate.positive_pair(dilation, "dilation")
    pads = _validate.padding_pairs(padding)
    size = tuple(x_shape[2:])
    if min(size) < 1:  # PyTorch refuses too: a window over an empty image reads only padding
        raise ValueError(f"the input's height and width must be >= 1, got x shape "
                         f"{tuple(x_shape)}")
    for axis, name, n, k, s, d, (before, after) in zip(
            ("height", "width"), ("H", "W"), size, kernel, stride, dilation, pads):
        if conv_output_size(n, k, s, (before, after), d, ceil_mode) < 1:
            span = d * (k - 1) + 1
            pad_text = before if before == after else (before, after)
            raise ValueError(
                f"dilated kernel {axis} {span} is larger than the padded input {axis} "
                f"{n + before + after} ({name}={n}, padding={pad_text})")
    return WindowGeometry(size, kernel, stride, pads, dilation, ceil_mode)
