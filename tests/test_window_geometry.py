"""The one window geometry of 1, 2 and 3 spatial axes, and the N-dimensional im2col/col2im
passes: output sizes against PyTorch's, the 3-D columns against a loop, col2im as im2col's
adjoint, and the GPU backend's array passes against the CPU's."""

import itertools
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import require_torch
from fastconv import _window_arrays
from fastconv._cpu import im2col as cpu_im2col
from fastconv.shapes import WindowGeometry, window_geometry
from torch_oracle import hypothesis_settings


@st.composite
def windows(draw):
    """x's shape and a window over 1 to 3 spatial axes (padding at most half the kernel, so
    that torch's pools take it too)."""
    ndim = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    dilation = tuple(draw(st.sampled_from([1, 1, 2, 3])) for _ in range(ndim))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 4))
                 for k, d, p in zip(kernel, dilation, padding))
    return (1, 1) + size, kernel, stride, padding, dilation, draw(st.booleans())


@hypothesis_settings(120)
@given(window=windows())
def test_output_sizes_are_torchs_in_1_2_and_3_dimensions(window):
    torch = require_torch()
    shape, kernel, stride, padding, dilation, ceil_mode = window
    geometry = window_geometry(shape, kernel, stride, padding, dilation, ceil_mode)
    ndim = len(kernel)
    pool = getattr(torch.nn.functional, f"max_pool{ndim}d")
    want = pool(torch.zeros(shape), kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    assert geometry.out == tuple(want.shape[2:])
    assert geometry.ndim == ndim and len(geometry.phase_size) == ndim
    # every kernel offset reads one element per window, inside the padded extent
    for offset in geometry.kernel_offsets():
        for sl, o, extent in zip(geometry.offset_slices(*offset), geometry.out, geometry.padded):
            assert len(range(extent)[sl]) == o


def test_a_2d_geometry_keeps_its_pairs():
    """The CUDA kernel wrappers read a 2-D geometry's attributes as (h, w) pairs."""
    g = window_geometry((2, 3, 7, 9), (3, 2), (2, 1), ((1, 0), (0, 1)), (1, 2))
    assert (g.size, g.kernel, g.stride, g.dilation) == ((7, 9), (3, 2), (2, 1), (1, 2))
    assert g.pads == ((1, 0), (0, 1)) and g.out == (3, 8) and g.padded == (8, 10)
    assert g.phase_size == (4, 10) and g.offset_slices(2, 1) == (slice(2, 7, 2), slice(2, 10, 1))
    assert not g.is_identity and window_geometry((1, 1, 3, 3), 1, 1, 0, 1).is_identity
    assert list(g.kernel_offsets()) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]


def test_a_3d_geometry():
    g = WindowGeometry((4, 5, 6), (2, 3, 1), (1, 2, 3), ((0, 1), (1, 1), (0, 0)), (2, 1, 1))
    assert g.out == (3, 3, 2) and g.padded == (5, 7, 6) and g.phase_size == (5, 4, 2)
    assert g.interior == (slice(0, 4), slice(1, 6), slice(0, 6))
    assert window_geometry((1, 2, 3, 3, 3), 1, 1, 0, 1).is_identity
    assert not window_geometry((1, 2, 3, 3, 3), 1, (1, 1, 2), 0, 1).is_identity


@pytest.mark.parametrize("op", ["conv2d", "max_pool2d", "avg_pool2d"])
def test_a_stride_past_the_input_gives_one_window_as_torch(torch, op):
    """A stride beyond int64's byte strides (10**30) is one window per axis, as any stride
    past the input is: it used to raise NumPy's OverflowError. torch, whose strides are
    int64, takes 10**6 for the same windows."""
    from fastconv import functional as F

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 6))
    w = rng.standard_normal((4, 3, 3, 2))
    args = {"conv2d": (w,), "max_pool2d": (3,), "avg_pool2d": (3,)}[op]
    tx = torch.tensor(x, requires_grad=True)
    t_args = [torch.tensor(a, requires_grad=True) if isinstance(a, np.ndarray) else a
              for a in args]
    for stride in (10**30, (2, 10**20)):
        t_stride = tuple(min(s, 10**6) for s in np.broadcast_to(np.array(stride, object), 2))
        out, cache = getattr(F, f"{op}_forward")(x, *args, stride=stride, padding=1)
        want = getattr(torch.nn.functional, op)(tx, *t_args, stride=t_stride, padding=1)
        np.testing.assert_allclose(out, want.detach().numpy(), rtol=1e-12, atol=1e-12)
        dout = rng.standard_normal(out.shape)
        got = getattr(F, f"{op}_backward")(dout, cache)
        want_grads = torch.autograd.grad(want, [tx] + [a for a in t_args
                                                       if isinstance(a, torch.Tensor)],
                                         torch.tensor(dout))
        for g, e in zip((got,) if op != "conv2d" else got[:2], want_grads):
            np.testing.assert_allclose(g, e.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, fragment", [
    ((1, 1, 0), "the input's length must be >= 1"),
    ((1, 1, 2, 0, 2), "the input's depth, height and width must be >= 1"),
    ((1, 1, 2, 2, 2, 2), "windows need 1 to 3 spatial axes after (N, C)"),
])
def test_geometry_refuses_empty_or_unsupported_inputs(shape, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        window_geometry(shape, 1, 1, 1, 1)


# ------------------------------------------------------------------------- the 3-D passes
@st.composite
def volumes(draw):
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(3))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(3))
    dilation = tuple(draw(st.sampled_from([1, 2])) for _ in range(3))
    pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(3))
    size = tuple(max(1, d * (k - 1) + 1 - sum(p)) + draw(st.integers(0, 2))
                 for k, d, p in zip(kernel, dilation, pads))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + size, kernel, stride, pads, \
        dilation, draw(st.integers(0, 2**32 - 1))


def _loop_columns(x, g):
    """The columns (N, C, KD, KH, KW, OD, OH, OW) by a loop over every entry."""
    cols = np.zeros(x.shape[:2] + g.kernel + g.out, x.dtype)
    for k in itertools.product(*map(range, g.kernel)):
        for o in itertools.product(*map(range, g.out)):
            position = [oi * s + ki * d - before for oi, ki, s, d, (before, _) in
                        zip(o, k, g.stride, g.dilation, g.pads)]
            if all(0 <= p < n for p, n in zip(position, g.size)):
                cols[(slice(None), slice(None)) + k + o] = x[(slice(None), slice(None))
                                                             + tuple(position)]
    return cols


@hypothesis_settings(40)
@given(case=volumes())
def test_3d_columns_match_a_loop_and_col2im_is_their_adjoint(case):
    shape, kernel, stride, pads, dilation, seed = case
    rng = np.random.default_rng(seed)
    g = window_geometry(shape, kernel, stride, pads, dilation)
    x = rng.standard_normal(shape)
    buffers = {"padded": np.empty(shape[:2] + g.padded)}
    cols = cpu_im2col.im2col_into(x, g, np.empty(shape[:2] + g.kernel + g.out), buffers)
    np.testing.assert_array_equal(cols, _loop_columns(x, g))
    c = rng.standard_normal(cols.shape)
    summed = cpu_im2col.col2im_into(c, g, np.empty(shape), {"col2im padded": np.empty(
        shape[:2] + g.padded)})
    np.testing.assert_allclose(np.vdot(cols, c), np.vdot(x, summed), rtol=1e-12)
    # image by image, the same bits as the CPU's threads and cache blocks
    by_image = _window_arrays.im2col_into(x, g, np.empty_like(cols), buffers, image_by_image)
    np.testing.assert_array_equal(by_image, cols)
    by_image = _window_arrays.col2im_into(c, g, np.empty(shape), {"col2im padded": np.empty(
        shape[:2] + g.padded)}, image_by_image)
    np.testing.assert_array_equal(by_image, summed)


def image_by_image(work, batch, nbytes, passes=1):
    """A split that runs each image on its own."""
    for image in range(batch):
        work(slice(image, image + 1))


def test_pad_into_writes_every_border_cell_in_3d():
    g = window_geometry((1, 1, 2, 2, 2), 3, 1, ((1, 0), (0, 2), (1, 1)), 1)
    padded = np.full((1, 1) + g.padded, np.nan)
    _window_arrays.pad_into(np.ones((1, 1, 2, 2, 2)), g, -1.0, padded)
    assert padded.sum() == 8 - (padded.size - 8)


def test_a_geometry_is_memoised_read_only_and_refused_args_raise_every_time():
    """The same arguments give the same instance, which cannot be changed; arguments equal
    to valid ones but of another type (True for 1, 1.0 for 1) are still refused after the
    valid ones were memoised, and a list padding gives an equal geometry uncached."""
    first = window_geometry((2, 3, 9, 9), 3, 1, 1, 1)
    assert window_geometry((2, 3, 9, 9), 3, 1, 1, 1) is first
    with pytest.raises(AttributeError, match="read-only"):
        first.stride = (2, 2)
    assert first.stride == (1, 1)
    for stride in (True, (1, True), 1.0):
        with pytest.raises(TypeError, match="stride"):
            window_geometry((2, 3, 9, 9), 3, stride, 1, 1)
    listed = window_geometry([2, 3, 9, 9], [3, 3], 1, [1, 1], 1)
    assert listed is not first and (listed.out, listed.pads) == (first.out, first.pads)
    with pytest.raises(ValueError, match="larger than the padded input"):
        window_geometry((2, 3, 1, 1), 3, 1, 0, 1)
    with pytest.raises(ValueError, match="larger than the padded input"):
        window_geometry((2, 3, 1, 1), 3, 1, 0, 1)


def test_a_geometry_copies_deep_copies_and_pickles():
    """Read-only, a copy is the geometry itself; a pickle round trip rebuilds every attribute
    (a network's caches, geometries included, are deep-copied and pickled by users)."""
    import copy
    import pickle

    geometry = window_geometry((2, 3, 9, 7), (3, 2), (2, 1), ((1, 0), (2, 2)), (1, 2), True)
    assert copy.copy(geometry) is geometry and copy.deepcopy([geometry])[0] is geometry
    restored = pickle.loads(pickle.dumps(geometry))
    assert [getattr(restored, name) for name in WindowGeometry.__slots__] == \
        [getattr(geometry, name) for name in WindowGeometry.__slots__]
    with pytest.raises(AttributeError, match="read-only"):
        restored.out = (1, 1)
