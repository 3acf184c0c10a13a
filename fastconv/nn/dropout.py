"""The Dropout layer: inverted dropout in training mode, the identity in eval mode."""

from .._validate import check_real
from ..backend import device_of, get_array_module
from ..functional.dropout import dropout_backward, dropout_forward
from .module import Module


class Dropout(Module):
    """Zero each input with probability ``p`` (the DROP probability) while training.

    The mask is drawn on the input's device from a generator seeded with
    ``seed`` (fresh entropy when None), created on first use and again after
    the layer moves to another device.
    """

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        self.p = check_real("Dropout: p (the drop probability)", p, 0.0, 1.0)
        self.seed = seed
        self._rng = None
        self._rng_device = None  # "cpu" or "gpu": a module object would not pickle
        self._cache = None

    def reseed(self, seed):
        """Draw the next masks from a fresh generator seeded with ``seed`` (an int or a
        sequence of ints, as ``default_rng`` takes; data-parallel training adds the rank)."""
        self.seed = seed
        self._rng_device = None

    def _generator(self, x):
        if self._rng_device != device_of(x):
            self._rng = get_array_module(x).random.default_rng(self.seed)
            self._rng_device = device_of(x)
        return self._rng

    def forward(self, x):
        """Drop and rescale in training mode; return ``x`` unchanged in eval mode."""
        rng = self._generator(x) if self.training else None
        out, self._cache = dropout_forward(x, self.p, train=self.training, rng=rng)
        return out

    def backward(self, dout):
        """``dout`` times the mask of the last forward."""
        return dropout_backward(dout, self._take_cache())

    def extra_repr(self):
        return f"p={self.p}"
