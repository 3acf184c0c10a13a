"""Shared by the tests of the 3-D convolution and pools: hypothesis cases and the PyTorch runs
of them.

The cases reach the degenerate sizes: inputs of 1x1x1, a (dilated) kernel exactly the padded
input, strides above the kernel, groups, dilation, asymmetric and 'same' padding, ceil_mode.
"""

import numpy as np
from hypothesis import strategies as st


DTYPES = [np.float64, np.float32]


def _axis(draw, kernel_max, dilations, pads_of):
    """One spatial axis: kernel, dilation, (before, after) padding and the smallest input size
    with a window (a size of exactly the padded kernel span is kept often)."""
    kernel, dilation = draw(st.integers(1, kernel_max)), draw(st.sampled_from(dilations))
    before, after = pads_of(kernel, dilation)
    span = dilation * (kernel - 1) + 1
    size = max(1, span - before - after) + draw(st.sampled_from([0, 0, 1, 3]))
    return kernel, dilation, (before, after), size


@st.composite
def conv3d_cases(draw):
    """A 3-D convolution: x, w and b shapes and the keyword arguments, in PyTorch's terms too
    (``torch_pads``: the (before, after) pads torch needs as an explicit F.pad, or None)."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin, fout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    form = draw(st.sampled_from(["int", "triple", "pairs", "valid", "same"]))
    same = form == "same"
    one_pad = draw(st.integers(0, 2))  # the padding of every axis for an int

    def pads_of(kernel, dilation):
        if same:
            total = dilation * (kernel - 1)
            return total // 2, total - total // 2
        if form == "valid":
            return 0, 0
        if form == "pairs":
            return draw(st.integers(0, 2)), draw(st.integers(0, 2))
        p = one_pad if form == "int" else draw(st.integers(0, 2))
        return p, p

    axes = [_axis(draw, 3, [1, 1, 2], pads_of) for _ in range(3)]
    kernel, dilation, pads, size = (tuple(a[i] for a in axes) for i in range(4))
    stride = (1, 1, 1) if same else tuple(draw(st.integers(1, 4)) for _ in range(3))
    if form == "int":
        padding = one_pad
    else:
        padding = {"triple": tuple(p for p, _ in pads), "pairs": pads}.get(form, form)
    return dict(x_shape=(draw(st.integers(1, 2)), cin) + size,
                w_shape=(fout, cin // groups) + kernel,
                b_size=draw(st.sampled_from([fout, None])), seed=draw(st.integers(0, 2**32 - 1)),
                kw=dict(stride=stride, padding=padding, dilation=dilation, groups=groups),
                torch_pads=pads if form == "pairs" else None)


def torch_conv3d(torch, case):
    """torch's conv3d for ``case`` as a function of (x, w, b); asymmetric pads by F.pad."""
    kw = dict(case["kw"])

    def run(x, w, b):
        if case["torch_pads"] is not None:
            (front, back), (top, bottom), (left, right) = case["torch_pads"]
            x = torch.nn.functional.pad(x, (left, right, top, bottom, front, back))
            kw["padding"] = 0
        return torch.nn.functional.conv3d(x, w, b, **kw)
    return run


@st.composite
def pool3d_cases(draw):
    """A 3-D pool's x shape and window (PyTorch's rule: padding at most half the kernel), with
    the max pool's dilation (x fits the dilated window) and the average pool's options drawn
    alongside."""
    def pads_of(kernel, dilation):
        p = draw(st.integers(0, kernel // 2))
        return p, p

    axes = [_axis(draw, 3, [1, 1, 2], pads_of) for _ in range(3)]
    kernel, dilation, pads, size = (tuple(a[i] for a in axes) for i in range(4))
    stride = draw(st.sampled_from([None, "drawn", "drawn"]))
    if stride == "drawn":
        stride = tuple(draw(st.integers(1, 4)) for _ in range(3))
    ceil_mode = draw(st.booleans())
    return dict(x_shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3))) + size, kernel=kernel,
                kw=dict(stride=stride, padding=tuple(p for p, _ in pads), ceil_mode=ceil_mode),
                dilation=dilation, count_include_pad=draw(st.booleans()),
                divisor_override=draw(st.sampled_from([None, None, None, 3, -2])),
                ties=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))


def pool_input(case, dtype):
    """x for a pool case: small integers (many ties) or values pairwise apart."""
    shape = case["x_shape"]
    rng = np.random.default_rng(case["seed"])
    if case["ties"]:
        return (rng.integers(-2, 3, size=shape) * 0.5).astype(dtype)
    return (rng.permutation(int(np.prod(shape))) * 0.25 - 3.1).reshape(shape).astype(dtype)
