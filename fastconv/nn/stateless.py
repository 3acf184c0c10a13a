"""Layers without parameters that wrap one functional forward/backward pair."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from .._typing import Array
from .module import Module


class FunctionalLayer(Module):
    """A parameter-free layer: ``forward`` calls ``forward_fn(x, **options)``.

    Subclasses set ``forward_fn`` and ``backward_fn`` (functional ops of the
    ``(out, cache)`` / ``backward(dout, cache)`` convention) and pass the op's
    keyword options to ``__init__``; the cache of the last forward is kept for
    ``backward``.

    Parameters
    ----------
    **options
        The keyword arguments of ``forward_fn`` besides x.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.functional import relu_backward, relu_forward
    >>> class MyReLU(FunctionalLayer):
    ...     forward_fn = relu_forward
    ...     backward_fn = relu_backward
    >>> layer = MyReLU()
    >>> layer.forward(np.array([-1.0, 2.0])), layer.backward(np.ones(2))
    (array([0., 2.]), array([0., 1.]))
    """

    forward_fn: ClassVar[Callable[..., Any]]
    backward_fn: ClassVar[Callable[..., Any]]

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.options = options
        self._cache: Any = None

    def forward(self, x: Array) -> Any:
        """Apply the op to ``x``; keeps the cache for ``backward``.

        Parameters
        ----------
        x : array
            The input.

        Returns
        -------
        array
            The op's output.
        """
        out, self._cache = type(self).forward_fn(x, **self.options)
        return out

    def backward(self, dout: Array) -> Any:
        """dL/dx of the last forward.

        Parameters
        ----------
        dout : array
            The gradient of the loss with respect to the last output.

        Returns
        -------
        array
            The gradient with respect to the last input.

        Raises
        ------
        RuntimeError
            When no forward has run.
        """
        return type(self).backward_fn(dout, self._take_cache())

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())
