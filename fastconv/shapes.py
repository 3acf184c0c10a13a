"""One source of truth for output sizes, used by every op (CPU, GPU and reference)."""


def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    """Output length along one axis, PyTorch's formula.

    ``padding`` is an int (both sides) or a pair ``(before, after)``. The
    dilated kernel spans ``dilation * (kernel_size - 1) + 1`` inputs. With
    ``ceil_mode`` the division rounds up, but, as in PyTorch, the last window
    must start inside the input or its left padding, so a window that would
    start in the right padding is dropped.

    Returns the size (may be < 1 when the kernel does not fit; callers raise).
    """
    before, after = (padding, padding) if isinstance(padding, int) else padding
    span = dilation * (kernel_size - 1) + 1
    room = size + before + after - span
    if room < 0:
        return 0
    if not ceil_mode:
        return room // stride + 1
    out = -(-room // stride) + 1
    if (out - 1) * stride >= size + before:
        out -= 1
    return out
