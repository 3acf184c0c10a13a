"""The Dropout layer: inverted dropout in training mode, the identity in eval mode."""

from __future__ import annotations

from typing import Any

from .._typing import Array
from .._validate import check_real
from ..backend import device_of, get_array_module
from ..functional.dropout import dropout_backward, dropout_forward
from .module import Module


class Dropout(Module):
    """Zero each input with probability ``p`` (the DROP probability) while training.

    The mask is drawn on the input's device from a generator seeded with
    ``seed``, created on first use and again after the layer moves to another
    device. See :func:`fastconv.functional.dropout_forward`.

    Parameters
    ----------
    p : float, default 0.5
        The drop probability, in [0, 1].
    seed : int or sequence of int, optional
        Seeds the masks' generator; None: fresh entropy.

    Raises
    ------
    ValueError
        When ``p`` is outside [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> layer = Dropout(0.5, seed=0)
    >>> sorted(set(layer.forward(np.ones(100)).tolist()))
    [0.0, 2.0]
    >>> layer.eval().forward(np.ones(3))
    array([1., 1., 1.])
    """

    def __init__(self, p: float = 0.5, seed: Any = None) -> None:
        super().__init__()
        self.p = check_real("Dropout: p (the drop probability)", p, 0.0, 1.0)
        self.seed = seed
        self._rng: Any = None
        self._rng_device: str | None = None  # "cpu" or "gpu": a module object would not pickle
        self._cache: Any = None

    def reseed(self, seed: Any) -> None:
        """Draw the next masks from a fresh generator seeded with ``seed``.

        Parameters
        ----------
        seed : int or sequence of int
            As ``default_rng`` takes it (data-parallel training adds the rank).
        """
        self.seed = seed
        self._rng_device = None

    def _generator(self, x: Array) -> Any:
        if self._rng_device != device_of(x):
            self._rng = get_array_module(x).random.default_rng(self.seed)
            self._rng_device = device_of(x)
        return self._rng

    def forward(self, x: Array) -> Array:
        """Drop and rescale in training mode; return ``x`` unchanged in eval mode.

        Parameters
        ----------
        x : array
            A float array.

        Returns
        -------
        array
            x's shape and dtype.
        """
        rng = self._generator(x) if self.training else None
        out, self._cache = dropout_forward(x, self.p, train=self.training, rng=rng)
        return out

    def backward(self, dout: Array) -> Array:
        """``dout`` times the mask of the last forward.

        Parameters
        ----------
        dout : array
            The gradient of the loss with respect to the last output.

        Returns
        -------
        array
            The gradient with respect to the last input.
        """
        return dropout_backward(dout, self._take_cache())

    def extra_repr(self) -> str:
        return f"p={self.p}"
