"""Bad input to the 3-D ops and layers: each argument refused with an error naming it and the
shapes, before any work."""

import re

import numpy as np
import pytest

import fastconv.functional as F
import fastconv.nn as nn


def _raises(exc, *fragments):
    return pytest.raises(exc, match="".join(f"(?=.*{re.escape(f)})" for f in fragments))


def x_(*shape, dtype=np.float64):
    return np.zeros(shape, dtype)


X, W = x_(1, 4, 5, 5, 5), x_(2, 4, 3, 3, 3)


# ------------------------------------------------------------------------------- conv3d
@pytest.mark.parametrize("op", [
    lambda x: F.conv3d_forward(x, W),
    lambda x: F.max_pool3d_forward(x, 2),
    lambda x: F.avg_pool3d_forward(x, 2),
], ids=["conv3d", "max_pool3d", "avg_pool3d"])
def test_x_not_5d(op):
    with _raises(ValueError, "x must be 5-D (N, C, D, H, W)", "(1, 4, 5, 5)"):
        op(x_(1, 4, 5, 5))


def test_w_not_5d():
    with _raises(ValueError, "w must be 5-D (F, C/groups, KD, KH, KW)", "(2, 4, 3, 3)"):
        F.conv3d_forward(X, x_(2, 4, 3, 3))


def test_x_not_float():
    with _raises(TypeError, "x must be a floating-point array", "int64"):
        F.conv3d_forward(np.zeros((1, 4, 5, 5, 5), np.int64), W)


def test_w_dtype_unlike_x():
    with _raises(TypeError, "x is float64 but w is float32"):
        F.conv3d_forward(X, x_(2, 4, 3, 3, 3, dtype=np.float32))


def test_b_of_the_wrong_shape():
    with _raises(ValueError, "b must have shape (2,)", "(2, 4, 3, 3, 3)", "(3,)"):
        F.conv3d_forward(X, W, x_(3))


def test_b_dtype_unlike_x():
    with _raises(TypeError, "x is float64 but b is float32"):
        F.conv3d_forward(X, W, x_(2, dtype=np.float32))


def test_w_in_channels_unlike_x_over_groups():
    with _raises(ValueError, "w expects 4 input channels per group", "x has 4 channels",
                 "groups=2", "(1, 4, 5, 5, 5)", "(2, 4, 3, 3, 3)"):
        F.conv3d_forward(X, W, groups=2)


def test_x_channels_not_divisible_by_groups():
    with _raises(ValueError, "x has 4 channels, which is not divisible by groups=3"):
        F.conv3d_forward(X, x_(3, 1, 3, 3, 3), groups=3)


def test_filters_not_divisible_by_groups():
    with _raises(ValueError, "out channels (w.shape[0]=3) must be divisible by groups=2"):
        F.conv3d_forward(X, x_(3, 2, 3, 3, 3), groups=2)


def test_w_without_filters():
    with _raises(ValueError, "w has no filters", "(0, 4, 3, 3, 3)"):
        F.conv3d_forward(X, x_(0, 4, 3, 3, 3))


@pytest.mark.parametrize("value, exc, fragment", [
    (0, ValueError, "groups must be >= 1, got 0"), (1.0, TypeError, "groups must be an int")])
def test_groups_not_a_positive_int(value, exc, fragment):
    with _raises(exc, fragment):
        F.conv3d_forward(X, W, groups=value)


@pytest.mark.parametrize("name, value, exc, fragment", [
    ("stride", (1, 2), TypeError, "stride must be an int or a triple of ints, got (1, 2)"),
    ("stride", 0, ValueError, "stride must be >= 1, got 0"),
    ("dilation", (1, 0, 1), ValueError, "dilation must be >= 1, got (1, 0, 1)"),
    ("dilation", 1.5, TypeError, "dilation must be an int or a triple of ints"),
    ("padding", -1, ValueError, "padding must be >= 0, got -1"),
    ("padding", (1, 1), TypeError, "padding must be an int or a triple of ints"),
    ("padding", "full", ValueError,
     "padding must be an int, a triple of ints or of (before, after) pairs, 'valid' or 'same'"),
])
def test_conv3d_window_arguments(name, value, exc, fragment):
    with _raises(exc, fragment):
        F.conv3d_forward(X, W, **{name: value})


def test_same_padding_with_a_stride():
    with _raises(ValueError, "padding='same' needs stride 1, got stride=(1, 2, 1)"):
        F.conv3d_forward(X, W, stride=(1, 2, 1), padding="same")


@pytest.mark.parametrize("x_shape, kw, fragments", [
    ((1, 4, 2, 5, 5), {}, ("dilated kernel depth 3 is larger than the padded input depth 2",
                           "D=2, padding=0")),
    ((1, 4, 5, 4, 5), dict(dilation=(1, 3, 1), padding=(0, 1, 0)),
     ("dilated kernel height 7 is larger than the padded input height 6", "H=4, padding=1")),
    ((1, 4, 5, 5, 1), dict(padding=((0, 0), (0, 0), (0, 1))),
     ("dilated kernel width 3 is larger than the padded input width 2", "W=1, padding=(0, 1)")),
])
def test_kernel_larger_than_the_padded_input(x_shape, kw, fragments):
    with _raises(ValueError, *fragments):
        F.conv3d_forward(x_(*x_shape), W, **kw)


def test_a_kernel_exactly_the_padded_input_is_allowed():
    out, _ = F.conv3d_forward(X, W, dilation=(1, 3, 1), padding=(0, 1, 0))
    assert out.shape == (1, 2, 3, 1, 3)


def test_an_empty_volume_is_refused():
    with _raises(ValueError, "the input's depth, height and width must be >= 1",
                 "(1, 4, 0, 5, 5)"):
        F.conv3d_forward(x_(1, 4, 0, 5, 5), W, padding=1)


def test_backward_dout_unlike_the_output():
    out, cache = F.conv3d_forward(X, W)
    with _raises(ValueError, "dout has shape (1, 2, 3, 3, 2)", "(1, 2, 3, 3, 3)"):
        F.conv3d_backward(x_(1, 2, 3, 3, 2), cache)
    with _raises(TypeError, "dout is float32 but the forward output was float64"):
        F.conv3d_backward(out.astype(np.float32), cache)


def test_backward_needs_input_grad_not_a_bool():
    out, cache = F.conv3d_forward(X, W)
    with _raises(TypeError, "needs_input_grad must be a bool", "'no'"):
        F.conv3d_backward(out, cache, needs_input_grad="no")


def test_caches_of_the_2d_and_3d_convolutions_are_not_interchangeable():
    out3, cache3 = F.conv3d_forward(X, W)
    out2, cache2 = F.conv2d_forward(x_(1, 4, 5, 5), x_(2, 4, 3, 3))
    with _raises(TypeError, "cache comes from conv2d_forward, not conv3d_forward"):
        F.conv3d_backward(out3, cache2)
    with _raises(TypeError, "cache comes from conv3d_forward, not conv2d_forward"):
        F.conv2d_backward(out2, cache3)


# -------------------------------------------------------------------------------- pools
@pytest.mark.parametrize("op", [F.max_pool3d_forward, F.avg_pool3d_forward])
@pytest.mark.parametrize("kw, exc, fragment", [
    (dict(kernel_size=0), ValueError, "kernel_size must be >= 1, got 0"),
    (dict(kernel_size=(2, 2)), TypeError, "kernel_size must be an int or a triple of ints"),
    (dict(kernel_size=2, stride=(1, 0, 1)), ValueError, "stride must be >= 1, got (1, 0, 1)"),
    (dict(kernel_size=2, stride=[2, 2]), TypeError, "stride must be an int or a triple of ints"),
    (dict(kernel_size=2, padding=-1), ValueError, "padding must be >= 0, got -1"),
    (dict(kernel_size=3, padding=(0, 2, 0)), ValueError,
     "padding (0, 2, 0) must be at most half of kernel_size 3"),
    (dict(kernel_size=2, ceil_mode="no"), TypeError, "ceil_mode must be a bool"),
    (dict(kernel_size=(1, 6, 1)), ValueError,
     "dilated kernel height 6 is larger than the padded input height 5"),
])
def test_pool3d_window_arguments(op, kw, exc, fragment):
    with _raises(exc, fragment):
        op(X, **kw)


@pytest.mark.parametrize("kw, exc, fragment", [
    (dict(dilation=0), ValueError, "dilation must be >= 1, got 0"),
    (dict(dilation=(1, 2)), TypeError, "dilation must be an int or a triple of ints"),
    (dict(return_indices=1), TypeError, "return_indices must be a bool"),
])
def test_max_pool3d_arguments(kw, exc, fragment):
    with _raises(exc, fragment):
        F.max_pool3d_forward(X, 2, **kw)


@pytest.mark.parametrize("kw, exc, fragment", [
    (dict(count_include_pad=None), TypeError, "count_include_pad must be a bool"),
    (dict(divisor_override=0), ValueError, "divisor_override must not be 0"),
    (dict(divisor_override=2.5), TypeError, "divisor_override must be an int, got 2.5"),
])
def test_avg_pool3d_arguments(kw, exc, fragment):
    with _raises(exc, fragment):
        F.avg_pool3d_forward(X, 2, **kw)


def test_pool3d_of_an_empty_volume_is_refused():
    with _raises(ValueError, "the input's depth, height and width must be >= 1",
                 "(1, 4, 5, 0, 5)"):
        F.max_pool3d_forward(x_(1, 4, 5, 0, 5), 2, padding=1)


@pytest.mark.parametrize("forward, backward", [
    (F.max_pool3d_forward, F.max_pool3d_backward), (F.avg_pool3d_forward, F.avg_pool3d_backward)])
def test_pool3d_backward_dout_unlike_the_output(forward, backward):
    _, cache = forward(X, 2)
    with _raises(ValueError, "dout has shape (1, 4, 2, 2, 3)", "(1, 4, 2, 2, 2)"):
        backward(x_(1, 4, 2, 2, 3), cache)


@pytest.mark.parametrize("backward, cache_of, origin", [
    (F.max_pool3d_backward, lambda: F.avg_pool3d_forward(X, 2), "avg_pool3d_forward"),
    (F.avg_pool3d_backward, lambda: F.max_pool3d_forward(X, 2), "max_pool3d_forward"),
    (F.max_pool3d_backward, lambda: F.max_pool2d_forward(X[:, :, 0], 2), "max_pool2d_forward"),
    (F.max_pool2d_backward, lambda: F.max_pool3d_forward(X, 2), "max_pool3d_forward"),
    (F.avg_pool2d_backward, lambda: F.avg_pool3d_forward(X, 2), "avg_pool3d_forward"),
])
def test_pool_caches_of_another_op_are_refused(backward, cache_of, origin):
    out, cache = cache_of()
    with _raises(TypeError, f"cache comes from {origin}"):
        backward(out, cache)


# ------------------------------------------------------------------------------- layers
def test_conv3d_layer_checks_its_input():
    with _raises(ValueError, "Conv3d(in_channels=3) expects x of shape (N, 3, D, H, W)",
                 "(2, 3, 4, 4)"):
        nn.Conv3d(3, 2, 3).forward(x_(2, 3, 4, 4, dtype=np.float32))


@pytest.mark.parametrize("kw, exc, fragment", [
    (dict(stride=(2, 2)), TypeError, "Conv3d: stride must be an int or a triple of ints"),
    (dict(dilation=0), ValueError, "Conv3d: dilation must be >= 1"),
    (dict(kernel_size=(3, 3)), TypeError, "kernel_size must be an int or a triple of ints"),
    (dict(stride=2, padding="same"), ValueError, "padding='same' needs stride 1"),
    (dict(padding_mode="reflect"), ValueError, "padding_mode must be one of"),
    (dict(groups=2, in_channels=3), ValueError,
     "in_channels (3) and out_channels (2) must both be divisible by groups (2)"),
    (dict(needs_input_grad=1), TypeError, "Conv3d: needs_input_grad must be a bool"),
])
def test_conv3d_layer_arguments(kw, exc, fragment):
    args = dict(in_channels=4, out_channels=2, kernel_size=3)
    args.update(kw)
    with _raises(exc, fragment):
        nn.Conv3d(**args)


def test_pool3d_layers_check_their_input_at_forward():
    with _raises(ValueError, "x must be 5-D (N, C, D, H, W)"):
        nn.MaxPool3d(2).forward(x_(1, 2, 4, 4))
    with _raises(ValueError, "padding 2 must be at most half of kernel_size 2"):
        nn.AvgPool3d(2, padding=2).forward(X)
