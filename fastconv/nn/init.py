"""The weight and bias of Conv2d and Linear: initialisation (He, Xavier, or a fixed normal
scale) and the storing of their gradients.

Weights are drawn with a NumPy generator on the CPU and then moved to the
requested device, so a seed gives the same network on the CPU and the GPU.
"""

import numbers

import numpy

from ..backend import resolve_device, to_device

INITS = ("he", "xavier")
FLOAT_DTYPES = (numpy.float32, numpy.float64)


def make_rng(seed=None, rng=None):
    """A ``numpy.random.Generator`` from ``rng`` or ``seed`` (not both)."""
    if seed is not None and rng is not None:
        raise ValueError("give seed or rng, not both")
    if rng is not None:
        if not isinstance(rng, numpy.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        return rng
    return numpy.random.default_rng(seed)


def check_dtype(dtype):
    """The parameter dtype as a numpy dtype; float32 or float64 only."""
    dt = numpy.dtype(dtype)
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def weight_std(init, weight_scale, fan_in, fan_out):
    """Standard deviation of the normal weights.

    ``weight_scale`` (a float, the course's convention) wins when given;
    otherwise ``init='he'`` gives sqrt(2 / fan_in) (for ReLU networks) and
    ``init='xavier'`` gives sqrt(2 / (fan_in + fan_out)) (Glorot normal).
    """
    if weight_scale is not None:
        if not isinstance(weight_scale, numbers.Real) or weight_scale < 0:
            raise ValueError(f"weight_scale must be a number >= 0, got {weight_scale!r}")
        return float(weight_scale)
    if init == "he":
        return (2.0 / fan_in) ** 0.5
    if init == "xavier":
        return (2.0 / (fan_in + fan_out)) ** 0.5
    raise ValueError(f"init must be one of {INITS}, got {init!r}")


def normal_weight(shape, std, dtype, device, rng):
    """Normal(0, std) weights of ``shape``, cast to ``dtype`` and put on ``device``."""
    w = (rng.standard_normal(shape) * std).astype(check_dtype(dtype))
    return to_device(w, resolve_device(device))


def constant(shape, value, dtype, device):
    """An array of ``shape`` filled with ``value`` on ``device`` (biases, batchnorm params)."""
    return to_device(numpy.full(shape, value, dtype=check_dtype(dtype)), resolve_device(device))


def add_weight_and_bias(module, w_shape, fan_in, fan_out, n_bias, bias, init, weight_scale,
                        dtype, device, seed, rng):
    """Register ``W`` (normal, see ``weight_std``) and, with ``bias``, a zero ``b`` on ``module``."""
    std = weight_std(init, weight_scale, fan_in, fan_out)
    module.add_param("W", normal_weight(w_shape, std, dtype, device, make_rng(seed, rng)))
    if bias:
        module.add_param("b", constant((n_bias,), 0.0, dtype, device))


def store_weight_and_bias_grads(module, dw, db):
    """Put ``dw`` into ``module.grads["W"]`` and, for a module with a bias, ``db`` into ``["b"]``."""
    module.grads["W"] = dw
    if db is not None:
        module.grads["b"] = db
