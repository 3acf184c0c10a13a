"""fastconv.interop.torch: fastconv ops as autograd Functions inside PyTorch, checked with
torch.autograd.gradcheck in float64 and against torch.nn.functional; memory shared through
DLPack; PyTorch's in-place check; and ``import fastconv`` importing no torch."""

import doctest
import subprocess
import sys

import numpy as np
import pytest

from torch_oracle import check


@pytest.fixture
def bridge(torch):
    import fastconv.interop.torch as bridge
    return bridge


def tensor(torch, shape, seed, dtype=None, grad=True):
    t = torch.from_numpy(np.random.default_rng(seed).standard_normal(shape))
    return t.to(dtype or torch.float64).requires_grad_(grad)


OPS = {  # name: (fastconv bridge call, torch call, input shapes)
    "conv2d": (lambda b, x, w, c: b.conv2d(x, w, c, stride=2, padding=1),
               lambda f, x, w, c: f.conv2d(x, w, c, stride=2, padding=1),
               [(2, 2, 5, 4), (3, 2, 3, 3), (3,)]),
    "conv2d_groups_same": (lambda b, x, w: b.conv2d(x, w, padding="same", dilation=2, groups=2),
                           lambda f, x, w: f.conv2d(x, w, padding="same", dilation=2, groups=2),
                           [(1, 4, 5, 5), (4, 2, 3, 3)]),
    "max_pool2d": (lambda b, x: b.max_pool2d(x, 3, 2, 1, ceil_mode=True),
                   lambda f, x: f.max_pool2d(x, 3, 2, 1, ceil_mode=True), [(2, 2, 5, 4)]),
    "avg_pool2d": (lambda b, x: b.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
                   lambda f, x: f.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
                   [(2, 2, 5, 4)]),
    "adaptive_avg_pool2d": (lambda b, x: b.adaptive_avg_pool2d(x, (3, 2)),
                            lambda f, x: f.adaptive_avg_pool2d(x, (3, 2)), [(2, 2, 5, 4)]),
}


@pytest.mark.parametrize("name", OPS)
def test_gradcheck_in_float64(torch, bridge, name):
    ours, _, shapes = OPS[name]
    inputs = [tensor(torch, s, i) for i, s in enumerate(shapes)]
    assert torch.autograd.gradcheck(lambda *t: ours(bridge, *t), inputs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", OPS)
def test_matches_torch_functional(torch, bridge, name, dtype):
    ours, theirs, shapes = OPS[name]
    tdtype = getattr(torch, np.dtype(dtype).name)
    inputs = [tensor(torch, s, 10 + i, tdtype) for i, s in enumerate(shapes)]
    out = ours(bridge, *inputs)
    want = theirs(torch.nn.functional, *inputs)
    assert out.dtype == tdtype and out.shape == want.shape
    dout = tensor(torch, tuple(out.shape), 20, tdtype, grad=False)
    got_grads = torch.autograd.grad(out, inputs, dout)
    want_grads = torch.autograd.grad(want, inputs, dout)
    check(f"interop.{name}", dtype, {
        "out": (out.detach().numpy(), want.detach().numpy()),
        **{f"d{i}": (g.numpy(), w.numpy()) for i, (g, w) in enumerate(zip(got_grads,
                                                                           want_grads))}})


def test_a_fastconv_layer_sits_inside_a_torch_model(torch, bridge):
    """Conv2d is torch.nn.Conv2d computed by fastconv: same parameters, same training step."""
    torch.manual_seed(0)
    ours = torch.nn.Sequential(bridge.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 5 * 5, 2)).double()
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                 torch.nn.Flatten(), torch.nn.Linear(4 * 5 * 5, 2)).double()
    theirs.load_state_dict(ours.state_dict())
    x, y = tensor(torch, (6, 3, 5, 5), 30, grad=False), torch.tensor([0, 1, 1, 0, 1, 0])
    for model in (ours, theirs):
        torch.nn.functional.cross_entropy(model(x), y).backward()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        check("interop.Conv2d in a model", np.float64, {name: (p.grad.numpy(), q.grad.numpy())})


@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("layout", [dict(padding=1), dict(padding=(2, 1), stride=2),
                                    dict(padding="same", dilation=2)])
def test_conv2d_pads_as_torch_in_every_padding_mode(torch, bridge, padding_mode, layout):
    """The layer used to refuse every padding mode but zeros, which fastconv's op has."""
    torch.manual_seed(1)
    ours = bridge.Conv2d(3, 4, 3, padding_mode=padding_mode, **layout).double()
    theirs = torch.nn.Conv2d(3, 4, 3, padding_mode=padding_mode, **layout).double()
    theirs.load_state_dict(ours.state_dict())
    x = tensor(torch, (2, 3, 7, 6), 31)
    out, want = ours(x), theirs(x)
    dout = tensor(torch, tuple(want.shape), 32, grad=False)
    got = torch.autograd.grad(out, (x, ours.weight, ours.bias), dout)
    expected = torch.autograd.grad(want, (x, theirs.weight, theirs.bias), dout)
    check(f"interop.Conv2d padding_mode={padding_mode}", np.float64, {
        "out": (out.detach().numpy(), want.detach().numpy()),
        **{name: (g.numpy(), e.numpy()) for name, g, e in zip(("dx", "dw", "db"), got, expected)}})


def test_memory_is_shared_both_ways_through_dlpack(torch, bridge):
    t = torch.zeros(2, 3)
    a = bridge.to_array(t)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    a[0, 1] = 5.0
    assert t[0, 1] == 5.0  # the array is the tensor's memory
    back = bridge.to_tensor(a)
    back[1, 2] = 7.0
    assert a[1, 2] == 7.0 and t[1, 2] == 7.0
    view = torch.zeros(3, 2).T  # not contiguous: copied, never misread
    np.testing.assert_array_equal(bridge.to_array(view), np.zeros((2, 3)))


def test_non_contiguous_inputs_give_the_same_results(torch, bridge):
    x = tensor(torch, (2, 3, 6, 6), 40).to(memory_format=torch.channels_last)
    out = bridge.max_pool2d(x, 2)
    np.testing.assert_array_equal(out.detach().numpy(),
                                  torch.nn.functional.max_pool2d(x, 2).detach().numpy())


def test_in_place_change_before_backward_raises_as_in_torch(torch, bridge):
    x = tensor(torch, (1, 2, 5, 5), 41) * 1.0
    w = tensor(torch, (3, 2, 3, 3), 42)
    out = bridge.conv2d(x, w)
    x.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_first_order_only_and_clear_dtype_errors(torch, bridge):
    x = tensor(torch, (1, 2, 4, 4), 43)
    (g,) = torch.autograd.grad(bridge.avg_pool2d(x, 2).sum(), x, create_graph=True)
    assert not g.requires_grad  # once differentiable: no graph through fastconv's backward
    with pytest.raises(TypeError, match="input is torch.bfloat16"):
        bridge.max_pool2d(x.detach().to(torch.bfloat16), 2)
    with pytest.raises(TypeError, match="weight must be a torch.Tensor"):
        bridge.conv2d(x, np.ones((1, 2, 3, 3)))


def test_module_example_runs(bridge):
    assert doctest.testmod(bridge).failed == 0


def test_importing_fastconv_imports_no_torch():
    code = ("import sys, fastconv, fastconv.nn, fastconv.functional, fastconv.compat.dlfs, "
            "fastconv.compat.cs231n, fastconv.compat.im2col_cython, fastconv.interop; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.gpu
def test_cuda_tensors_run_on_fastconvs_gpu_path(torch, bridge):
    import cupy
    if not torch.cuda.is_available():
        pytest.skip("this torch build has no CUDA")
    x = tensor(torch, (2, 3, 8, 8), 50).cuda().detach().requires_grad_(True)
    w = tensor(torch, (4, 3, 3, 3), 51).cuda().detach().requires_grad_(True)
    assert isinstance(bridge.to_array(x), cupy.ndarray)
    assert torch.autograd.gradcheck(lambda a, k: bridge.max_pool2d(bridge.conv2d(a, k, padding=1),
                                                                   2), (x, w))
    out = bridge.conv2d(x, w, padding=1)
    assert out.is_cuda
    np.testing.assert_allclose(out.detach().cpu().numpy(), torch.nn.functional.conv2d(
        x, w, padding=1).detach().cpu().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("call", [
    lambda F, t: F.conv2d_forward(t, np.ones((1, 1, 3, 3))),
    lambda F, t: F.max_pool2d_forward(t, 2),
    lambda F, t: F.relu_forward(t),
    lambda F, t: F.batchnorm_forward(t.reshape(4, 4), np.ones(4), np.zeros(4), None, None),
])
def test_a_torch_tensor_given_to_a_numpy_op_is_refused_by_name(torch, call):
    """Not an AttributeError from torch's dtype: a TypeError naming x and torch.Tensor (the
    bridge, fastconv.interop.torch, is the way to run fastconv ops on tensors)."""
    import fastconv.functional as F
    with pytest.raises(TypeError, match=r"x must be a NumPy or CuPy array, got torch\.Tensor"):
        call(F, torch.ones((1, 1, 4, 4), dtype=torch.float64))
