"""fastconv.nn layers: against PyTorch CPU, numerical gradients (float64), state dicts, devices, errors."""

import re

import numpy as np
import pytest

import fastconv.nn as nn
from fastconv import gradcheck
from fastconv.backend import get_array_module, gpu_available
from torch_oracle import check

GRAD_TOL = 1e-6


def randn(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def distinct(shape, seed=0):
    """float64 values that are pairwise at least 0.1 apart (no max-pool ties within +-h)."""
    values = np.random.default_rng(seed).permutation(int(np.prod(shape))) * 0.1
    return (values - values.mean() + 0.037).reshape(shape)  # and none within 0.01 of 0


def torch_run(torch, module, x, dout):
    """Forward ``x`` through a torch module, backward ``dout``; returns (out, dx)."""
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    out = module(tx)
    out.backward(torch.from_numpy(dout))
    return out.detach().numpy(), tx.grad.numpy()


# ----------------------------------------------------------------- against PyTorch

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kw", [dict(stride=1, padding=1), dict(stride=2, padding=(1, 2)),
                                dict(dilation=2, groups=2, bias=False)])
def test_conv2d_matches_torch(torch, dtype, kw):
    layer = nn.Conv2d(4, 6, (3, 2), dtype=dtype, seed=1, **kw)
    ref = torch.nn.Conv2d(4, 6, (3, 2), dtype=torch.float64 if dtype == np.float64 else torch.float32,
                          **kw)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.params["W"]))
        if "b" in layer.params:
            layer.params["b"][...] = randn(6, dtype, 5)  # a non-zero bias
            ref.bias.copy_(torch.from_numpy(layer.params["b"]))
    x = randn((3, 4, 9, 8), dtype, 2)
    out = layer.forward(x)
    dout = randn(out.shape, dtype, 3)
    dx = layer.backward(dout)
    want, want_dx = torch_run(torch, ref, x, dout)
    pairs = {"out": (out, want), "dx": (dx, want_dx),
             "dW": (layer.grads["W"], ref.weight.grad.numpy())}
    if "b" in layer.params:
        pairs["db"] = (layer.grads["b"], ref.bias.grad.numpy())
    check("Conv2d", dtype, pairs)
    assert out.dtype == dx.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_linear_matches_torch_on_image_input(torch, dtype):
    layer = nn.Linear(2 * 3 * 4, 5, dtype=dtype, seed=3)
    layer.params["b"][...] = randn(5, dtype, 6)
    ref = torch.nn.Linear(24, 5, dtype=torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.params["W"].T.copy()))  # torch stores (out, in)
        ref.bias.copy_(torch.from_numpy(layer.params["b"]))
    x = randn((4, 2, 3, 4), dtype, 7)
    out = layer.forward(x)
    dout = randn(out.shape, dtype, 8)
    dx = layer.backward(dout)
    want, want_dx = torch_run(torch, lambda t: ref(t.reshape(4, -1)), x, dout)
    check("Linear", dtype, {"out": (out, want), "dx": (dx, want_dx),
                            "dW": (layer.grads["W"], ref.weight.grad.numpy().T),
                            "db": (layer.grads["b"], ref.bias.grad.numpy())})
    assert dx.shape == x.shape


@pytest.mark.parametrize("ours, theirs, shape", [
    (nn.BatchNorm1d, "BatchNorm1d", (6, 5)),
    (nn.BatchNorm2d, "BatchNorm2d", (4, 5, 3, 2)),
])
def test_batchnorm_matches_torch_train_then_eval(torch, ours, theirs, shape):
    layer = ours(5, momentum=0.2, eps=1e-4, dtype=np.float64)
    layer.params["gamma"][...] = randn(5, seed=1)
    layer.params["beta"][...] = randn(5, seed=2)
    ref = getattr(torch.nn, theirs)(5, momentum=0.2, eps=1e-4, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.params["gamma"]))
        ref.bias.copy_(torch.from_numpy(layer.params["beta"]))
    for step in range(2):  # two training steps: the running statistics accumulate
        x = randn(shape, seed=10 + step) * 3 + 1
        dout = randn(shape, seed=20 + step)
        ref.weight.grad = ref.bias.grad = None
        out, dx = layer.forward(x), None
        dx = layer.backward(dout)
        want, want_dx = torch_run(torch, ref, x, dout)
        check(theirs, np.float64, {"out": (out, want), "dx": (dx, want_dx),
                                   "dgamma": (layer.grads["gamma"], ref.weight.grad.numpy()),
                                   "dbeta": (layer.grads["beta"], ref.bias.grad.numpy())})
    check(theirs, np.float64, {
        "running_mean": (layer.buffers["running_mean"], ref.running_mean.numpy()),
        "running_var": (layer.buffers["running_var"], ref.running_var.numpy())})
    layer.eval()
    ref.eval()
    x, dout = randn(shape, seed=30), randn(shape, seed=31)
    out = layer.forward(x)
    dx = layer.backward(dout)
    want, want_dx = torch_run(torch, ref, x, dout)
    check(theirs, np.float64, {"eval out": (out, want), "eval dx": (dx, want_dx)})


@pytest.mark.parametrize("ours, theirs", [
    (nn.MaxPool2d(3, stride=2, padding=1), "max_pool2d"),
    (nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False), "avg_pool2d"),
    (nn.AdaptiveAvgPool2d((2, 3)), "adaptive_avg_pool2d"),
    (nn.LeakyReLU(0.2), "leaky_relu"),
])
def test_parameter_free_layers_match_torch(torch, ours, theirs):
    f = torch.nn.functional
    fns = {"max_pool2d": lambda t: f.max_pool2d(t, 3, stride=2, padding=1),
           "avg_pool2d": lambda t: f.avg_pool2d(t, 2, ceil_mode=True, count_include_pad=False),
           "adaptive_avg_pool2d": lambda t: f.adaptive_avg_pool2d(t, (2, 3)),
           "leaky_relu": lambda t: f.leaky_relu(t, 0.2)}
    x = distinct((2, 3, 7, 5), seed=4)
    out = ours.forward(x)
    dout = randn(out.shape, seed=5)
    dx = ours.backward(dout)
    want, want_dx = torch_run(torch, fns[theirs], x, dout)
    check(theirs, np.float64, {"out": (out, want), "dx": (dx, want_dx)})


# ----------------------------------------------------------------- numerical gradients

class FixedMaskDropout(nn.Dropout):
    """Dropout drawing the same mask on every call, so the function is differentiable."""

    def _generator(self, x):
        return get_array_module(x).random.default_rng(self.seed)


def f64(**kw):
    return dict(dtype=np.float64, seed=0, **kw)


LAYERS = {
    "Conv2d": (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1, **f64()), (2, 3, 7, 6)),
    "Conv2d groups+dilation": (lambda: nn.Conv2d(4, 4, 2, dilation=2, groups=2, **f64()),
                               (2, 4, 6, 6)),
    "Linear": (lambda: nn.Linear(12, 5, **f64()), (3, 3, 2, 2)),
    "MaxPool2d": (lambda: nn.MaxPool2d(2, stride=1), (2, 2, 4, 5)),
    "AvgPool2d": (lambda: nn.AvgPool2d(3, stride=2, padding=1), (2, 2, 5, 5)),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d(3), (2, 2, 5, 4)),
    "ReLU": (nn.ReLU, (3, 7)),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.1), (3, 7)),
    "Tanh": (nn.Tanh, (3, 7)),
    "Sigmoid": (nn.Sigmoid, (3, 7)),
    "Dropout (fixed mask)": (lambda: FixedMaskDropout(0.4, seed=3), (4, 6)),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(4, dtype=np.float64), (5, 4)),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(3, dtype=np.float64), (3, 3, 2, 2)),
    "Flatten": (nn.Flatten, (2, 3, 2)),
    "Sequential": (lambda: nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, bias=False, **f64()), nn.BatchNorm2d(3, dtype=np.float64),
        nn.Tanh(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(12, 4, **f64())), (3, 2, 4, 4)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_gradients_match_numerical(name):
    make, shape = LAYERS[name]
    layer = make()
    x = distinct(shape, seed=1)  # distinct values, none at 0: no kinks within +-h
    err = gradcheck.check_layer(layer, x)
    assert err < GRAD_TOL, f"{name}: relative error {err:.2e}"


def test_gradcheck_catches_a_wrong_layer_gradient():
    class Doubled(nn.Linear):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads["W"] = 2 * self.grads["W"]
            return dx
    assert gradcheck.check_layer(Doubled(4, 3, **f64()), randn((2, 4))) > 0.1


# ----------------------------------------------------------------- Module machinery

def small_net(seed=0, dtype=np.float32):
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, dtype=dtype, seed=seed),
                         nn.BatchNorm2d(2, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8, 3, dtype=dtype, seed=seed + 1), nn.Dropout(0.5, seed=seed))


def test_container_names_and_live_views():
    net = small_net()
    assert list(net.params) == ["0.W", "0.b", "1.gamma", "1.beta", "5.W", "5.b"]
    assert list(net.grads) == list(net.params)
    assert list(net.buffers) == ["1.running_mean", "1.running_var"]
    new = np.zeros((8, 3), np.float32)
    net.params["5.W"] = new  # an optimizer assigning through the container's view
    assert net[5].params["W"] is new
    with pytest.raises(KeyError):
        net.params["9.W"]
    with pytest.raises(KeyError, match="no such entry"):
        net.params["5.extra"] = new
    with pytest.raises(KeyError, match="no such entry"):  # a param without a grad
        net.params["extra"] = new
    with pytest.raises(ValueError, match=r"params\['5.W'\] has shape \(8, 3\)"):
        net.params["5.W"] = np.zeros((3, 8), np.float32)


def test_sequential_slices_and_train_mode_like_torch():
    net = small_net()
    head = net[1:3]
    assert isinstance(head, nn.Sequential) and list(head) == [net[1], net[2]]
    with pytest.raises(TypeError, match="mode must be a bool"):
        net.train("False")


@pytest.mark.parametrize("bad, error", [(1.5, ValueError), (True, TypeError), ("0.5", TypeError)])
def test_dropout_layer_checks_p_when_built(bad, error):
    with pytest.raises(error, match="drop probability"):
        nn.Dropout(bad)


NAN = float("nan")


@pytest.mark.parametrize("build, err, message", [
    # each was stored as given, and refused (or not) at the first forward
    (lambda: nn.MaxPool2d(0), ValueError, "kernel_size must be >= 1, got 0"),
    (lambda: nn.MaxPool2d(2, padding=2), ValueError,
     "padding 2 must be at most half of kernel_size 2"),
    (lambda: nn.MaxPool2d(3, stride=(1, 0)), ValueError, "stride must be >= 1"),
    (lambda: nn.MaxPool2d(3, dilation=0), ValueError, "dilation must be >= 1, got 0"),
    (lambda: nn.MaxPool2d(2, ceil_mode="no"), TypeError, "ceil_mode must be a bool"),
    (lambda: nn.MaxPool2d(2, return_indices=1), TypeError, "return_indices must be a bool"),
    (lambda: nn.AvgPool2d(3, padding=2), ValueError, "padding 2 must be at most half"),
    (lambda: nn.AvgPool2d(2, divisor_override=0), ValueError, "divisor_override must not be 0"),
    (lambda: nn.AvgPool2d(2, count_include_pad=None), TypeError,
     "count_include_pad must be a bool"),
    (lambda: nn.MaxPool1d(0), ValueError, "kernel_size must be >= 1, got 0"),
    (lambda: nn.MaxPool1d(2, padding=2), ValueError,
     "padding 2 must be at most half of kernel_size 2"),
    (lambda: nn.MaxPool1d(2, return_indices=1), TypeError, "return_indices must be a bool"),
    (lambda: nn.AvgPool1d(2, ceil_mode=1), TypeError, "ceil_mode must be a bool"),
    (lambda: nn.AvgPool1d(2, count_include_pad=None), TypeError,
     "count_include_pad must be a bool"),
    (lambda: nn.MaxPool3d(2, dilation=(1, 0, 1)), ValueError, "dilation must be >= 1"),
    (lambda: nn.MaxPool3d(2, return_indices="no"), TypeError, "return_indices must be a bool"),
    (lambda: nn.AvgPool3d((2, 2, 3), padding=(0, 0, 2)), ValueError,
     "padding (0, 0, 2) must be at most half of kernel_size (2, 2, 3)"),
    (lambda: nn.AvgPool3d(2, divisor_override=0), ValueError, "divisor_override must not be 0"),
    (lambda: nn.AdaptiveAvgPool2d(0), ValueError, "output_size must be >= 1, got 0"),
    (lambda: nn.AdaptiveAvgPool2d(2.5), TypeError, "output_size must be an int"),
    (lambda: nn.AdaptiveAvgPool2d(10**12), ValueError,
     "output_size=1000000000000 gives output planes of (1000000000000, 1000000000000), "
     "too large"),
    (lambda: nn.AdaptiveMaxPool2d((None, 2**31)), ValueError,
     "output_size=(None, 2147483648) (None counted as 1) gives output planes of "
     "(1, 2147483648), too large"),
    (lambda: nn.AdaptiveMaxPool2d(2, return_indices="yes"), TypeError,
     "return_indices must be a bool"),
    (lambda: nn.MaxUnpool2d(2, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: nn.Upsample(size=2, scale_factor=2), ValueError,
     "give exactly one of size and scale_factor, got both"),
    (lambda: nn.BatchNorm2d(3, momentum=2), ValueError,
     "BatchNorm2d: momentum must be in [0.0, 1.0], got 2.0"),
    (lambda: nn.BatchNorm1d(3, momentum=None), TypeError,
     "BatchNorm1d: momentum must be a number in [0, 1]"),
    (lambda: nn.BatchNorm2d(3, eps=0), ValueError, "BatchNorm2d: eps must be > 0.0, got 0.0"),
    (lambda: nn.BatchNorm1d(3, eps=NAN), ValueError, "BatchNorm1d: eps must be > 0.0, got nan"),
    (lambda: nn.LayerNorm(3, eps=0), ValueError, "LayerNorm: eps must be > 0.0"),
    (lambda: nn.GroupNorm(1, 3, eps=-1e-5), ValueError, "GroupNorm: eps must be > 0.0"),
    (lambda: nn.Conv2d(3, 4, 3, weight_scale=NAN), ValueError,  # '< 0' let NaN through
     "weight_scale must be a number >= 0 and finite, got nan"),
    (lambda: nn.Conv2d(3, 4, 3, weight_scale=float("inf")), ValueError,
     "weight_scale must be a number >= 0 and finite"),
    (lambda: nn.Conv2d(3, 4, 3, weight_scale="0.1"), TypeError, "weight_scale must be a number"),
    (lambda: nn.Conv2d(3, 4, 3, weight_scale=0.1, init="lecun"), ValueError,
     "init must be one of ('he', 'xavier'), got 'lecun'"),
    (lambda: nn.Conv2d(3, 4, 3, seed=-1), ValueError,  # NumPy's: "expected non-negative integer"
     "seed must be >= 0, got -1"),
    (lambda: nn.Conv2d(3, 4, 3, seed=True), TypeError, "seed must be an int, got True"),
    (lambda: nn.Linear(3, 4, seed=[1, -2]), ValueError, "seed[1] must be >= 0, got -2"),
    (lambda: nn.Conv2d(3, 4, 3, dtype="foo"), TypeError,  # NumPy's: "data type 'foo' not ..."
     "dtype must be float32 or float64, got 'foo'"),
    (lambda: nn.Conv2d(3, 4, 3, bias="no"), TypeError, "bias must be a bool"),
])
def test_layers_refuse_bad_settings_when_built(build, err, message):
    with pytest.raises(err, match=re.escape(message)):
        build()


def test_settings_are_checked_before_the_weights_are_drawn():
    """A dtype or device refused after drawing 10**10 normal weights (80 GB): NumPy's
    MemoryError came first."""
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        nn.Linear(10**5, 10**5, dtype="foo")
    with pytest.raises(ValueError, match="device must be 'cpu' or 'gpu'"):
        nn.Linear(10**5, 10**5, device="tpu")


@pytest.mark.parametrize("layer", [
    nn.Conv1d(1, 1, 1), nn.Conv2d(1, 1, 1), nn.Conv3d(1, 1, 1), nn.ConvTranspose2d(1, 1, 1),
    nn.MaxPool1d(1), nn.MaxPool2d(1), nn.MaxPool3d(1), nn.AvgPool2d(1),
    nn.AdaptiveAvgPool2d(1), nn.Upsample(scale_factor=2), nn.BatchNorm1d(1),
    nn.BatchNorm2d(1), nn.Linear(1, 1), nn.Flatten(),
    nn.ThreeLayerConvNet(input_dim=(1, 4, 4), num_filters=1, filter_size=1, hidden_dim=1, seed=0),
], ids=lambda layer: type(layer).__name__)
def test_layers_refuse_an_input_that_is_no_array(layer):
    """A TypeError naming x, as the functional ops raise, not a ValueError about a shape ()."""
    with pytest.raises(TypeError, match=r"^x must be a NumPy or CuPy array, got list$"):
        layer.forward([[1.0]])


def test_layer_settings_that_fit_some_input_still_build():
    """What only an input can refuse is left to the forward: a window larger than a small
    input, an output size kept from the input (None)."""
    pool = nn.MaxPool2d(3, stride=1, padding=1, dilation=2)
    assert pool.forward(np.zeros((1, 1, 5, 5))).shape == (1, 1, 3, 3)
    with pytest.raises(ValueError, match="larger than the padded input"):
        nn.MaxPool2d(5).forward(np.zeros((1, 1, 4, 4)))
    assert nn.AdaptiveAvgPool2d((None, 2)).forward(np.zeros((1, 1, 3, 4))).shape == (1, 1, 3, 2)
    layer = nn.BatchNorm2d(2, momentum=0, eps=1e-3)
    assert (layer.momentum, layer.eps) == (0.0, 1e-3)
    assert nn.Conv2d(1, 1, 1, seed=np.random.SeedSequence(1), weight_scale=0).params["W"] == 0


def test_modules_lists_the_tree_and_dropout_reseeds():
    net = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU(), nn.Dropout(0.5, seed=1)))
    assert [type(m).__name__ for m in net.modules()] == [
        "Sequential", "Linear", "Sequential", "ReLU", "Dropout"]
    dropout = net.modules()[-1]
    x = np.ones((6, 40))
    first = dropout.forward(x)
    dropout.reseed(1)
    np.testing.assert_array_equal(dropout.forward(x), first)  # the same seed, the same masks
    dropout.reseed([1, 1])
    assert not np.array_equal(dropout.forward(x), first)


def test_a_module_used_twice_in_one_network_is_refused():
    """Each layer keeps the cache of its last forward: a reused ReLU silently gave the
    first position the second position's gradient."""
    relu = nn.ReLU()
    with pytest.raises(ValueError, match="already in this network"):
        nn.Sequential(nn.Linear(3, 4), relu, nn.Linear(4, 4), relu)
    inner = nn.Sequential(nn.Tanh())
    with pytest.raises(ValueError, match="already in this network"):
        nn.Sequential(inner, inner[0])
    net = nn.Sequential(nn.ReLU())
    with pytest.raises(ValueError, match="already in this network"):
        net.append(net)


def test_load_state_dict_checks_every_entry_before_copying_any():
    net = small_net()
    before = net.state_dict()
    bad = dict(before)
    bad["5.b"] = np.array(["a", "b", "c"])  # "5.W" comes first and would have been copied
    bad["5.W"] = before["5.W"] + 1
    with pytest.raises(TypeError, match="'5.b' must be a real-valued array"):
        net.load_state_dict(bad)
    bad["5.b"] = before["5.b"] + 1j
    with pytest.raises(TypeError, match="'5.b'"):
        net.load_state_dict(bad)
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_load_state_dict_reads_entries_that_alias_the_modules_own_arrays_as_passed():
    """The entries are copied in one after another: a swap of two weights given as the
    module's own arrays lost one side (2.W kept its value), as did a view of them."""
    net = nn.Sequential(nn.Linear(4, 4, seed=0), nn.ReLU(), nn.Linear(4, 4, seed=1))
    w0, w2, b0 = (net.params[k].copy() for k in ("0.W", "2.W", "0.b"))
    net.load_state_dict({"0.W": net.params["2.W"], "2.W": net.params["0.W"]}, strict=False)
    np.testing.assert_array_equal(net.params["0.W"], w2)
    np.testing.assert_array_equal(net.params["2.W"], w0)
    # views of other keys' arrays (a transpose, a row) in a rotation of all four
    net.load_state_dict({"0.W": net.params["2.W"].T, "2.W": net.params["0.W"],
                         "0.b": net.params["2.W"][0], "2.b": net.params["0.b"]})
    np.testing.assert_array_equal(net.params["0.W"], w0.T)
    np.testing.assert_array_equal(net.params["2.W"], w2)
    np.testing.assert_array_equal(net.params["0.b"], w0[0])
    np.testing.assert_array_equal(net.params["2.b"], b0)
    own = dict(net.params)  # each key given its own array: unchanged, still the same arrays
    before = {k: v.copy() for k, v in own.items()}
    net.load_state_dict(own)
    for key, value in net.params.items():
        assert value is own[key]
        np.testing.assert_array_equal(value, before[key])


def test_train_eval_switch_recursively_and_change_behaviour():
    net = small_net()
    x = randn((4, 1, 4, 4), np.float32, 1)
    net.eval()
    assert all(not layer.training for layer in net)
    np.testing.assert_array_equal(net.forward(x), net.forward(x))  # no dropout, running stats
    net.train()
    assert all(layer.training for layer in net)
    assert not np.array_equal(net.forward(x), net.forward(x))  # dropout masks differ


def test_state_dict_round_trip_includes_buffers():
    a, b = small_net(seed=0), small_net(seed=5)
    x = randn((4, 1, 4, 4), np.float32, 2)
    a.forward(x)  # one training step moves the running statistics
    state = a.state_dict()
    assert set(state) == set(a.params) | set(a.buffers)
    assert not np.array_equal(state["1.running_mean"], 0)
    b.load_state_dict(state)
    a.eval()
    b.eval()
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    state["0.W"][...] = 7  # a copy, not the module's array
    assert not np.any(a.params["0.W"] == 7)


def test_load_state_dict_names_missing_unexpected_and_mismatched_keys():
    net = small_net()
    state = net.state_dict()
    del state["1.running_var"]
    with pytest.raises(ValueError, match=r"missing '1.running_var'"):
        net.load_state_dict(state)
    state = net.state_dict()
    state["5.W"] = np.zeros((9, 3), np.float32)
    with pytest.raises(ValueError, match=r"'5.W' has shape \(9, 3\).*\(8, 3\)"):
        net.load_state_dict(state)
    state = net.state_dict()
    state["7.W"] = np.zeros(1)
    with pytest.raises(ValueError, match="unexpected key '7.W'"):
        net.load_state_dict(state)


def test_load_state_dict_casts_to_the_parameter_dtype():
    net = small_net(dtype=np.float32)
    state = {k: v.astype(np.float64) + 1 for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    assert net.params["0.W"].dtype == np.float32
    np.testing.assert_allclose(net.params["0.W"], state["0.W"], rtol=1e-6)


def test_to_cpu_keeps_numpy_arrays_and_returns_the_module():
    net = small_net()
    assert net.to("cpu") is net and net.device == "cpu"
    assert all(type(v) is np.ndarray for v in list(net.params.values()) + list(net.buffers.values()))


def test_parameters_default_to_float32_on_the_default_device(monkeypatch):
    monkeypatch.setenv("FASTCONV_DEVICE", "cpu")
    layer = nn.Conv2d(2, 3, 3)
    assert type(layer.params["W"]) is np.ndarray and layer.params["W"].dtype == np.float32
    assert not layer.params["b"].any() and not layer.grads["W"].any()


def test_parameters_on_an_unusable_gpu_fail_clearly(monkeypatch):
    if gpu_available():
        pytest.skip("a GPU is usable here; the error path cannot be reached")
    monkeypatch.setenv("FASTCONV_DEVICE", "gpu")
    with pytest.raises(RuntimeError, match="GPU was asked for but none is usable"):
        nn.Linear(3, 4)


def test_seeding_through_rng_and_bad_init_arguments():
    a = nn.Linear(5, 4, rng=np.random.default_rng(3)).params["W"]
    np.testing.assert_array_equal(a, nn.Linear(5, 4, seed=3).params["W"])
    with pytest.raises(ValueError, match="seed or rng, not both"):
        nn.Linear(5, 4, seed=1, rng=np.random.default_rng(1))
    with pytest.raises(ValueError, match="weight_scale must be a number >= 0"):
        nn.Conv2d(1, 1, 1, weight_scale=-1.0)


def test_zero_grad_children_append_and_repr():
    net = nn.Sequential(nn.Linear(3, 2, seed=0))
    net.append(nn.ReLU())
    assert len(net) == 2 and net.children() == list(net) and isinstance(net[1], nn.ReLU)
    net.forward(np.ones((4, 3), np.float32))
    net.backward(np.ones((4, 2), np.float32))
    assert net.grads["0.W"].any()
    net.zero_grad()
    assert not any(g.any() for g in net.grads.values())
    assert repr(net) == "Sequential(\n  (0): Linear(3, 2, bias=True)\n  (1): ReLU()\n)"


def test_initialisations_have_the_documented_scale():
    fan_in, fan_out = 64 * 3 * 3, 128 * 3 * 3
    he = nn.Conv2d(64, 128, 3, seed=0).params["W"]
    xavier = nn.Conv2d(64, 128, 3, init="xavier", seed=0).params["W"]
    scaled = nn.Linear(500, 400, weight_scale=1e-3, seed=0).params["W"]
    assert he.std() == pytest.approx((2 / fan_in) ** 0.5, rel=0.02)
    assert xavier.std() == pytest.approx((2 / (fan_in + fan_out)) ** 0.5, rel=0.02)
    assert scaled.std() == pytest.approx(1e-3, rel=0.02)
    np.testing.assert_array_equal(he, nn.Conv2d(64, 128, 3, seed=0).params["W"])  # seeded


def test_bad_input_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"Linear\(in_features=10\).*\(2, 3, 4\) with 12 features"):
        nn.Linear(10, 4).forward(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"Conv2d\(in_channels=3\).*\(N, 3, H, W\).*\(2, 4, 5, 5\)"):
        nn.Conv2d(3, 2, 3).forward(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(num_features=4\).*\(2, 5\)"):
        nn.BatchNorm1d(4).forward(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="init must be one of"):
        nn.Linear(3, 4, init="lecun")
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        nn.Linear(3, 4, dtype=np.int32)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        nn.ReLU().backward(np.zeros(3))
    with pytest.raises(ValueError, match="drop probability"):
        nn.Dropout(1.5)


def test_dropout_eval_is_identity_and_train_keeps_expectation():
    layer = nn.Dropout(0.25, seed=0)
    x = np.ones((400, 50))
    out = layer.forward(x)
    assert set(np.unique(out)) == {0.0, 1 / 0.75}
    assert abs(out.mean() - 1) < 0.02
    np.testing.assert_array_equal(layer.backward(x), out)  # dout times the same mask
    np.testing.assert_array_equal(layer.eval().forward(x), x)


def test_a_model_with_dropout_deep_copies_and_pickles_after_training():
    """The course Solver pickles its model; "keep a deepcopy of the best model" is common."""
    import copy
    import pickle
    model = nn.mlp(12, 3, dropout=0.5, dtype=np.float64, seed=0)
    x, y = np.random.default_rng(1).standard_normal((4, 12)), np.array([0, 1, 2, 0])
    model.loss(x, y)  # a training-mode forward draws a mask on the CPU
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        np.testing.assert_array_equal(clone.loss(x), model.loss(x))


# ----------------------------------------------------------------- GPU

@pytest.mark.gpu
def test_whole_network_on_cupy_matches_numpy():
    import cupy
    cpu = small_net(dtype=np.float64)
    cpu[6].p = 0.0  # dropout masks differ by device; compare the deterministic rest
    gpu = small_net(dtype=np.float64)
    gpu[6].p = 0.0
    gpu.to("gpu")
    assert gpu.device == "gpu" and isinstance(gpu.params["0.W"], cupy.ndarray)
    x = randn((4, 1, 4, 4), seed=3)
    out_c, out_g = cpu.forward(x), gpu.forward(cupy.asarray(x))
    assert isinstance(out_g, cupy.ndarray)
    np.testing.assert_allclose(out_g.get(), out_c, rtol=1e-10, atol=1e-12)
    dout = randn(out_c.shape, seed=4)
    dx_c, dx_g = cpu.backward(dout), gpu.backward(cupy.asarray(dout))
    np.testing.assert_allclose(dx_g.get(), dx_c, rtol=1e-10, atol=1e-12)
    for k in cpu.grads:
        np.testing.assert_allclose(gpu.grads[k].get(), cpu.grads[k], rtol=1e-10, atol=1e-12)
    gpu.to("cpu")
    assert type(gpu.params["0.W"]) is np.ndarray


@pytest.mark.gpu
def test_dropout_mask_is_drawn_on_the_gpu():
    import cupy
    out = nn.Dropout(0.5, seed=0).forward(cupy.ones((64, 64), cupy.float32))
    assert isinstance(out, cupy.ndarray) and 0.3 < float((out == 0).mean()) < 0.7
