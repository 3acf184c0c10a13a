"""Batch normalisation with the running-average rule that the course and the book share.

Both keep ``running = momentum * running + (1 - momentum) * batch`` with the
biased batch variance, starting from zeros, where fastconv's op (PyTorch's
rule) updates ``(1 - momentum) * running + momentum * batch`` in place with
the unbiased variance. So the op normalises with the batch statistics and
this module keeps the running ones.
"""

from ..backend import get_array_module, promoted
from ._lenient import lenient


def course_batchnorm(forward, x, gamma, beta, train, running_mean, running_var, momentum, eps,
                     axes):
    """One batchnorm step under the course's rule; ``(out, cache, running_mean, running_var)``.

    ``forward`` is ``fastconv.functional.batchnorm_forward`` or its spatial
    form, ``axes`` the axes its statistics run over. Missing running
    statistics (None) start as zeros on x's device; the returned ones are in
    x's dtype after promotion. x, gamma and beta are promoted as NumPy would;
    the cache is wrapped for ``lenient_backward``.
    """
    x, gamma, beta = promoted(x, gamma, beta, names=("x", "gamma", "beta"))
    channels = x.shape[1] if getattr(x, "ndim", 0) >= 2 else 0
    running_mean, running_var = (
        get_array_module(x).zeros(channels, dtype=x.dtype) if r is None else r
        for r in (running_mean, running_var))
    if train:  # normalise with the batch statistics; the running average kept here
        out, cache = forward(x, gamma, beta, None, None, train=True, eps=eps)
        running_mean = momentum * running_mean + (1 - momentum) * x.mean(axis=axes)
        running_var = momentum * running_var + (1 - momentum) * x.var(axis=axes)
    else:
        out, cache = forward(x, gamma, beta, running_mean, running_var, train=False, eps=eps)
    return (*lenient(out, cache), running_mean.astype(x.dtype, copy=False),
            running_var.astype(x.dtype, copy=False))
