"""Bad input gets a clear ValueError/TypeError naming the argument and the shapes: one test per case."""

import re

import numpy as np
import pytest

import fastconv
import fastconv.functional as F


def _raises(exc, *fragments):
    """pytest.raises that also checks every fragment appears in the message."""
    return pytest.raises(exc, match="".join(f"(?=.*{re.escape(f)})" for f in fragments))


def x_(*shape, dtype=np.float64):
    return np.zeros(shape, dtype=dtype)


POOLS = [
    lambda x, **kw: F.max_pool2d_forward(x, 2, **kw),
    lambda x, **kw: F.avg_pool2d_forward(x, 2, **kw),
]


def test_x_not_4d():
    with _raises(ValueError, "x must be 4-D"):
        F.conv2d_forward(x_(3, 5, 5), x_(2, 3, 3, 3))


@pytest.mark.parametrize("pool", POOLS + [lambda x: F.adaptive_avg_pool2d_forward(x, 2)])
def test_pool_x_not_4d(pool):
    with _raises(ValueError, "x must be 4-D"):
        pool(x_(2, 3, 5, 5, 1))


def test_w_not_4d():
    with _raises(ValueError, "w must be 4-D"):
        F.conv2d_forward(x_(1, 3, 5, 5), x_(2, 27))


def test_w_without_filters():
    with _raises(ValueError, "w has no filters", "(0, 3, 3, 3)"):
        F.conv2d_forward(x_(1, 3, 5, 5), x_(0, 3, 3, 3))


def test_channel_mismatch_with_groups():
    with _raises(ValueError, "w expects 3 input channels per group, x has 4 channels with groups=2"):
        F.conv2d_forward(x_(1, 4, 5, 5), x_(2, 3, 3, 3), groups=2)


def test_channel_mismatch_without_groups():
    with _raises(ValueError, "w expects 3 input channels per group, x has 4 channels with groups=1"):
        F.conv2d_forward(x_(1, 4, 5, 5), x_(2, 3, 3, 3))


def test_in_channels_not_divisible_by_groups():
    with _raises(ValueError, "divisible by groups"):
        F.conv2d_forward(x_(1, 5, 5, 5), x_(2, 2, 3, 3), groups=2)


def test_out_channels_not_divisible_by_groups():
    with _raises(ValueError, "out channels", "divisible by groups"):
        F.conv2d_forward(x_(1, 4, 5, 5), x_(3, 2, 3, 3), groups=2)


@pytest.mark.parametrize("stride", [0, (1, 0), -2])
def test_stride_below_one(stride):
    with _raises(ValueError, "stride must be >= 1"):
        F.conv2d_forward(x_(1, 1, 5, 5), x_(1, 1, 3, 3), stride=stride)


@pytest.mark.parametrize("pool", POOLS)
def test_pool_stride_below_one(pool):
    with _raises(ValueError, "stride must be >= 1"):
        pool(x_(1, 1, 5, 5), stride=0)


@pytest.mark.parametrize("dilation", [0, (0, 1)])
def test_dilation_below_one(dilation):
    with _raises(ValueError, "dilation must be >= 1"):
        F.conv2d_forward(x_(1, 1, 5, 5), x_(1, 1, 3, 3), dilation=dilation)


def test_pool_dilation_below_one():
    with _raises(ValueError, "dilation must be >= 1"):
        F.max_pool2d_forward(x_(1, 1, 5, 5), 2, dilation=0)


def test_groups_below_one():
    with _raises(ValueError, "groups must be >= 1"):
        F.conv2d_forward(x_(1, 1, 5, 5), x_(1, 1, 3, 3), groups=0)


@pytest.mark.parametrize("padding", [-1, (0, -1)])
def test_negative_padding(padding):
    with _raises(ValueError, "padding must be >= 0"):
        F.conv2d_forward(x_(1, 1, 5, 5), x_(1, 1, 3, 3), padding=padding)


@pytest.mark.parametrize("pool", POOLS)
def test_pool_negative_padding(pool):
    with _raises(ValueError, "padding must be >= 0"):
        pool(x_(1, 1, 5, 5), padding=-1)


def test_dilated_kernel_taller_than_padded_input():
    with _raises(ValueError, "kernel height 5", "padded input height 4", "H=2"):
        F.conv2d_forward(x_(1, 1, 2, 6), x_(1, 1, 3, 3), padding=1, dilation=2)


def test_dilated_kernel_wider_than_padded_input():
    with _raises(ValueError, "kernel width 5", "padded input width 4", "W=2"):
        F.conv2d_forward(x_(1, 1, 6, 2), x_(1, 1, 3, 3), padding=1, dilation=2)


def test_pool_kernel_larger_than_padded_input():
    with _raises(ValueError, "kernel height 5", "H=2"):
        F.max_pool2d_forward(x_(1, 1, 2, 6), 3, padding=1, dilation=2)


def test_same_padding_with_stride():
    with _raises(ValueError, "same"):
        F.conv2d_forward(x_(1, 1, 5, 5), x_(1, 1, 3, 3), stride=2, padding="same")


def test_unknown_padding_string():
    with _raises(ValueError, "padding must be an int, a pair of ints or of (before, after) "
                             "pairs, 'valid' or 'same', got 'full'"):
        F.conv2d_forward(x_(1, 1, 5, 5), x_(1, 1, 3, 3), padding="full")


@pytest.mark.parametrize("pool", POOLS)
def test_pool_padding_more_than_half_the_kernel(pool):
    with _raises(ValueError, "at most half"):
        pool(x_(1, 1, 6, 6), padding=2)


def test_pool_padding_more_than_half_the_kernel_even_when_dilated():
    """As PyTorch: the bound is half the kernel size, not of the dilated span."""
    with _raises(ValueError, "at most half"):
        F.max_pool2d_forward(x_(1, 1, 9, 9), 3, padding=2, dilation=3)


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.complex128, np.int32])
def test_non_float_x(dtype):
    with _raises(TypeError, "floating-point", np.dtype(dtype).name):
        F.conv2d_forward(x_(1, 1, 5, 5, dtype=dtype), x_(1, 1, 3, 3))


@pytest.mark.parametrize("op", POOLS + [lambda x: F.adaptive_avg_pool2d_forward(x, 2)])
def test_pool_non_float_x(op):
    with _raises(TypeError, "floating-point", "int64"):
        op(x_(1, 1, 4, 4, dtype=np.int64))


def test_non_float_w():
    with _raises(TypeError, "floating-point", "int64"):
        F.conv2d_forward(x_(1, 1, 5, 5), x_(1, 1, 3, 3, dtype=np.int64))


@pytest.mark.parametrize("op, x, w", [
    (F.conv2d_forward, np.zeros((1, 1, 5, 5)).tolist(), x_(1, 1, 3, 3)),
    (F.conv2d_forward, x_(1, 1, 5, 5), np.zeros((1, 1, 3, 3)).tolist()),
    (F.conv1d_forward, np.zeros((1, 1, 5)).tolist(), x_(1, 1, 3)),
    (F.conv3d_forward, np.zeros((1, 1, 3, 3, 3)).tolist(), x_(1, 1, 2, 2, 2)),
    (F.conv_transpose2d_forward, np.zeros((1, 1, 5, 5)).tolist(), x_(1, 1, 3, 3)),
])
def test_convolution_operand_not_an_array(op, x, w):
    """A list is no array (a TypeError, as for the bias), not an array of the wrong rank."""
    name = "x" if isinstance(x, list) else "w"
    with _raises(TypeError, f"{name} must be a NumPy or CuPy array, got list"):
        op(x, w)


@pytest.mark.parametrize("op", [
    lambda x: F.max_pool1d_forward(x[0], 1), lambda x: F.avg_pool1d_forward(x[0], 1),
    lambda x: F.max_pool2d_forward(x, 1), lambda x: F.avg_pool2d_forward(x, 1),
    lambda x: F.max_pool3d_forward([x], 1), lambda x: F.avg_pool3d_forward([x], 1),
    lambda x: F.adaptive_avg_pool2d_forward(x, 1), lambda x: F.adaptive_max_pool2d_forward(x, 1),
    lambda x: F.max_unpool2d_forward(x, np.zeros((1, 1, 1, 1), np.int64), 1),
    lambda x: F.interpolate_forward(x, scale_factor=2),
], ids=["max1d", "avg1d", "max2d", "avg2d", "max3d", "avg3d", "adaptive-avg", "adaptive-max",
        "unpool", "interpolate"])
def test_pool_input_not_an_array(op):
    """As the convolutions: a list is no array (a TypeError), not an array of the wrong rank."""
    with _raises(TypeError, "x must be a NumPy or CuPy array, got list"):
        op(np.zeros((1, 1, 1, 1)).tolist())


def test_x_and_w_of_different_float_dtypes():
    with _raises(TypeError, "x is float32 but w is float64"):
        F.conv2d_forward(x_(1, 1, 5, 5, dtype=np.float32), x_(1, 1, 3, 3))


def test_bias_of_another_dtype():
    with _raises(TypeError, "b is float32"):
        F.conv2d_forward(x_(1, 1, 5, 5), x_(2, 1, 3, 3), x_(2, dtype=np.float32))


@pytest.mark.parametrize("b_shape", [(3,), (2, 1), ()])
def test_bias_of_wrong_shape(b_shape):
    with _raises(ValueError, "b must have shape"):
        F.conv2d_forward(x_(1, 1, 5, 5), x_(2, 1, 3, 3), x_(*b_shape))


def test_conv_dout_of_wrong_shape():
    out, cache = F.conv2d_forward(x_(2, 1, 5, 5), x_(2, 1, 3, 3))
    with _raises(ValueError, "forward output had shape", str(out.shape)):
        F.conv2d_backward(x_(2, 2, 3, 4), cache)


@pytest.mark.parametrize("forward, backward", [
    (lambda x: F.max_pool2d_forward(x, 2), F.max_pool2d_backward),
    (lambda x: F.avg_pool2d_forward(x, 2), F.avg_pool2d_backward),
    (lambda x: F.adaptive_avg_pool2d_forward(x, 2), F.adaptive_avg_pool2d_backward),
])
def test_pool_dout_of_wrong_shape(forward, backward):
    out, cache = forward(x_(2, 1, 6, 6))
    with _raises(ValueError, "forward output had shape"):
        backward(x_(2, 1, 3, 4), cache)


def test_cache_from_another_op():
    _, cache = F.max_pool2d_forward(x_(1, 1, 4, 4), 2)
    with _raises(TypeError, "cache comes from"):
        F.conv2d_backward(x_(1, 1, 2, 2), cache)


@pytest.mark.parametrize("backward", [F.max_pool2d_backward, F.avg_pool2d_backward,
                                      F.adaptive_avg_pool2d_backward])
def test_pool_cache_from_another_op(backward):
    _, cache = F.conv2d_forward(x_(1, 1, 4, 4), x_(1, 1, 3, 3))
    with _raises(TypeError, "cache comes from"):
        backward(x_(1, 1, 2, 2), cache)


@pytest.mark.parametrize("output_size", [0, (2, 0), -1])
def test_adaptive_output_size_below_one(output_size):
    with _raises(ValueError, "output_size"):
        F.adaptive_avg_pool2d_forward(x_(1, 1, 4, 4), output_size)


def test_im2col_x_not_4d():
    with _raises(ValueError, "x must be 4-D"):
        fastconv.im2col(x_(3, 5, 5), 3)


def test_im2col_kernel_larger_than_padded_input():
    with _raises(ValueError, "kernel height 7", "H=5"):
        fastconv.im2col(x_(1, 1, 5, 9), 7)


def test_col2im_cols_of_wrong_shape():
    with _raises(ValueError, "cols has shape (2, 26, 9)", "(2, 27, 9)"):
        fastconv.col2im(x_(2, 26, 9), (2, 3, 5, 5), 3)


# ---------------------------------------------------------------- refused before any work
def test_adaptive_pooling_of_an_empty_image_is_refused():
    """PyTorch refuses it; the average of no cells was NaN."""
    with _raises(ValueError, "height and width of at least 1", "(2, 2, 0, 6)"):
        F.adaptive_avg_pool2d_forward(x_(2, 2, 0, 6), 2)


@pytest.mark.parametrize("call", [
    lambda x: F.conv2d_forward(x, x_(1, 1, 1, 1), padding=1),
    lambda x: F.max_pool2d_forward(x, 2, padding=1),
    lambda x: F.avg_pool2d_forward(x, 2, padding=1),
    lambda x: fastconv.im2col(x, 1, padding=1),
], ids=["conv2d", "max_pool2d", "avg_pool2d", "im2col"])
def test_windows_over_an_empty_image_are_refused(call):
    """With padding a window fits an empty image, but it reads only padding (PyTorch refuses)."""
    with _raises(ValueError, "height and width must be >= 1", "(1, 1, 0, 5)"):
        call(x_(1, 1, 0, 5))


@pytest.mark.parametrize("flag, call", [
    ("ceil_mode", lambda v: F.max_pool2d_forward(x_(1, 1, 5, 5), 2, ceil_mode=v)),
    ("ceil_mode", lambda v: F.avg_pool2d_forward(x_(1, 1, 5, 5), 2, ceil_mode=v)),
    ("count_include_pad", lambda v: F.avg_pool2d_forward(x_(1, 1, 5, 5), 2, count_include_pad=v)),
    ("return_indices", lambda v: F.max_pool2d_forward(x_(1, 1, 5, 5), 2, return_indices=v)),
    ("batchnorm: train", lambda v: F.batchnorm_forward(x_(4, 2), np.ones(2), np.zeros(2),
                                                        None, None, train=v)),
    ("dropout: train", lambda v: F.dropout_forward(x_(4, 2), 0.5, train=v)),
    ("ceil_mode", lambda v: fastconv.conv_output_size(5, 2, 2, ceil_mode=v)),
])
def test_flags_must_be_bools(flag, call):
    """"no" is truthy: ceil_mode="no" turned ceil mode on (PyTorch raises a TypeError)."""
    with _raises(TypeError, f"{flag} must be a bool", "'no'"):
        call("no")
    call(np.bool_(False))  # NumPy's bool is a bool


@pytest.mark.parametrize("kwargs, exc, fragment", [
    (dict(size=5, kernel_size=0), ValueError, "kernel_size must be >= 1, got 0"),
    (dict(size=5, kernel_size=3, dilation=0), ValueError, "dilation must be >= 1, got 0"),
    (dict(size=5, kernel_size=3, stride=0), ValueError, "stride must be >= 1, got 0"),
    (dict(size=5.0, kernel_size=3), TypeError, "size must be an int, got 5.0"),
    (dict(size=-1, kernel_size=1), ValueError, "size must be >= 0, got -1"),
    (dict(size=5, kernel_size=3, padding=-1), ValueError, "padding must be >= 0"),
    (dict(size=5, kernel_size=3, padding=(1, 2, 3)), TypeError, "padding must be an int or a pair"),
])
def test_conv_output_size_checks_its_arguments(kwargs, exc, fragment):
    """It returned 6 for kernel 0, 5 for dilation 0, 3.0 for size 5.0, or divided by zero."""
    with _raises(exc, fragment):
        fastconv.conv_output_size(**kwargs)


def test_conv_output_size_still_computes_pytorchs_sizes():
    assert fastconv.conv_output_size(32, 3, stride=2, padding=1) == 16
    assert fastconv.conv_output_size(5, 2, 2, ceil_mode=True) == 3
    assert fastconv.conv_output_size(np.int64(7), 3, padding=(0, 1)) == 6


def test_a_huge_workspace_limit_means_unlimited():
    """2**63 was accepted, and conv2d_backward then raised an OverflowError."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 2, 6, 6)), rng.standard_normal((4, 2, 3, 3))
    want_out, want_cache = F.conv2d_forward(x, w, padding=1)
    want = F.conv2d_backward(np.ones_like(want_out), want_cache)
    for limit in (2**63, 2**200):
        with fastconv.workspace_limit(limit):
            out, cache = F.conv2d_forward(x, w, padding=1)
            got = F.conv2d_backward(np.ones_like(out), cache)
        np.testing.assert_array_equal(out, want_out)
        for g, r in zip(got[:2], want[:2]):
            np.testing.assert_allclose(g, r, rtol=1e-12)


@pytest.mark.parametrize("x_shape", [None, (1, 1, 3), (1, 1, 3.0, 3), "1133"])
def test_col2im_names_a_bad_image_shape(x_shape):
    with pytest.raises((TypeError, ValueError), match="x_shape"):
        fastconv.col2im(x_(1, 9, 1), x_shape, 3)


def test_a_big_endian_array_is_refused_by_its_byte_order():
    """It was refused as 'not a floating-point array'; the message now says what to do."""
    big = x_(1, 1, 5, 5).astype(">f8")
    with _raises(TypeError, "x has the non-native byte order >f8", "astype('float64')"):
        F.conv2d_forward(big, x_(1, 1, 3, 3))


def test_an_optimizer_refuses_an_integer_parameter_by_name():
    """Adam over an int64 parameter failed with NumPy's casting error."""
    from fastconv import optim
    opt = optim.Adam({"W": np.zeros(3, np.int64)})
    with _raises(TypeError, "params['W'] must be a floating-point array", "int64"):
        opt.step({"W": np.ones(3)})


def test_conv2d_layer_refuses_same_padding_with_a_stride_when_built():
    """It was built and failed at its first forward."""
    from fastconv import nn
    with _raises(ValueError, "padding='same' needs stride 1"):
        nn.Conv2d(2, 2, 3, padding="same", stride=2)
    with _raises(ValueError, "padding must be >= 0"):
        nn.Conv2d(2, 2, 3, padding=-1)
    with _raises(ValueError, "Conv2d: stride must be >= 1"):
        nn.Conv2d(2, 2, 3, stride=0)
